//! The controller: reconcile each RegistryCluster toward its spec.
//!
//! One reconcile, in this order (the order is the safety argument):
//!
//! 1. publish the server list `0..spec.replicas` to the address server, so
//!    on scale-down the departing members leave the list *before* anything
//!    else happens;
//! 2. server-side apply the ConfigMap, the two Services and the
//!    PodDisruptionBudget;
//! 3. read the StatefulSet and every member's `/roster/v1/status`;
//! 4. let the [scale planner](crate::scaling) pick the StatefulSet size and
//!    apply the StatefulSet with it; when no scaling is under way and pods
//!    lag behind the template, let the [upgrade planner](crate::upgrade)
//!    pick the one pod to restart next (the Raft leader last) and evict it;
//! 5. [aggregate](crate::status) the status with its conditions and apply
//!    it to the status subresource;
//! 6. record Events for scaling, bootstrap, availability and leader changes.
//!
//! Errors are retried with a per-object exponential backoff (5 s doubling up
//! to 5 min) and counted in the metrics. A successful reconcile requeues
//! itself (5 s while something moves, 30 s when stable), because member
//! statuses change without any Kubernetes event.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, EvictParams, ListParams, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType, Recorder};
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use roster_crds::{
    find_condition, RegistryCluster, RegistryClusterStatus, CONDITION_AVAILABLE, CONDITION_PROGRESSING,
    CONDITION_SNAPSHOT_BOOTSTRAPPED, STATUS_TRUE,
};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tracing::{info, instrument, warn};

use crate::address_server::ServerLists;
use crate::desired::{self, OperatorSettings, Target};
use crate::metrics::{ClusterLabels, ErrorLabels, Metrics};
use crate::names::{self, FIELD_MANAGER};
use crate::node_status::{Observation, Observations, StatusClient};
use crate::scaling::{self, ScaleInput, ScaleStep, WaitReason};
use crate::status::{self, StatefulSetView, StatusInput};
use crate::upgrade::{self, PodView, UpgradeInput, UpgradeStep};
use crate::{Error, Result};

/// Requeue interval while the cluster is moving.
pub const REQUEUE_ACTIVE: Duration = Duration::from_secs(5);
/// Requeue interval when the cluster is stable.
pub const REQUEUE_STABLE: Duration = Duration::from_secs(30);
/// First retry delay after an error; doubles per consecutive failure.
pub const BACKOFF_START: Duration = Duration::from_secs(5);
/// Longest retry delay after errors.
pub const BACKOFF_MAX: Duration = Duration::from_secs(300);

/// What every reconcile shares.
pub struct Context {
    /// Kubernetes client.
    pub client: Client,
    /// Event recorder.
    pub recorder: Recorder,
    /// Settings that end up in the owned objects.
    pub settings: OperatorSettings,
    /// The lists the address server serves.
    pub server_lists: ServerLists,
    /// Reads member statuses.
    pub status_client: StatusClient,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Consecutive failures per `namespace/name`, for the backoff.
    failures: Mutex<HashMap<String, u32>>,
    /// HTTPS status clients per `namespace/name` of clusters with
    /// `spec.tls`, with the CA they trust: rebuilt only when the CA changes,
    /// so connections to the members are reused between reconciles.
    tls_clients: Mutex<HashMap<String, (Vec<u8>, StatusClient)>>,
}

impl Context {
    /// A context; `recorder` is built from `client` under the reporter name
    /// `roster-operator`.
    pub fn new(
        client: Client,
        settings: OperatorSettings,
        server_lists: ServerLists,
        status_client: StatusClient,
        metrics: Arc<Metrics>,
    ) -> Context {
        let recorder = Recorder::new(client.clone(), "roster-operator".into());
        Context {
            client,
            recorder,
            settings,
            server_lists,
            status_client,
            metrics,
            failures: Mutex::default(),
            tls_clients: Mutex::default(),
        }
    }

    fn failures(&self) -> std::sync::MutexGuard<'_, HashMap<String, u32>> {
        self.failures.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn key(rc: &RegistryCluster) -> String {
    format!("{}/{}", rc.namespace().unwrap_or_default(), rc.name_any())
}

/// Delay before retry number `failures` (1-based): 5 s, 10 s, 20 s, ... up
/// to 5 minutes.
pub fn backoff(failures: u32) -> Duration {
    let exp = failures.saturating_sub(1).min(16);
    BACKOFF_START.saturating_mul(1 << exp).min(BACKOFF_MAX)
}

/// Reconciles one RegistryCluster. See the module docs for the steps.
#[instrument(skip(rc, ctx), fields(cluster = %key(&rc)))]
pub async fn reconcile(rc: Arc<RegistryCluster>, ctx: Arc<Context>) -> Result<Action> {
    let _timer = ctx.metrics.start_reconcile();
    let action = reconcile_inner(&rc, &ctx).await?;
    ctx.failures().remove(&key(&rc));
    Ok(action)
}

/// What the controller does after a failed reconcile: count it and retry
/// with exponential backoff.
pub fn error_policy(rc: Arc<RegistryCluster>, error: &Error, ctx: Arc<Context>) -> Action {
    let cluster = key(&rc);
    ctx.metrics
        .failures
        .get_or_create(&ErrorLabels { cluster: cluster.clone(), error: error.metric_label().into() })
        .inc();
    let n = {
        let mut failures = ctx.failures();
        let n = failures.entry(cluster.clone()).or_insert(0);
        *n += 1;
        *n
    };
    let delay = backoff(n);
    warn!(%cluster, error = %error, failures = n, retry_in = ?delay, "reconcile failed");
    Action::requeue(delay)
}

async fn apply<K>(api: &Api<K>, name: &str, object: &K) -> Result<K>
where
    K: Resource + Serialize + DeserializeOwned + Clone + std::fmt::Debug,
{
    let params = PatchParams::apply(FIELD_MANAGER).force();
    Ok(api.patch(name, &params, &Patch::Apply(object)).await?)
}

/// Whether the StatefulSet controller has seen the current template (its
/// `observedGeneration` caught up), so `updateRevision` names it.
fn template_observed(sts: &StatefulSet) -> bool {
    match (sts.metadata.generation, sts.status.as_ref().and_then(|s| s.observed_generation)) {
        (Some(generation), Some(observed)) => observed >= generation,
        _ => true,
    }
}

fn statefulset_view(sts: &StatefulSet, replicas: i32) -> StatefulSetView {
    let status = sts.status.as_ref();
    let ready_replicas = status.and_then(|s| s.ready_replicas).unwrap_or(0);
    let updated = status.and_then(|s| s.updated_replicas).unwrap_or(0);
    // With `OnDelete` the StatefulSet never moves `currentRevision` forward,
    // so the pods that run the current template are what counts.
    StatefulSetView {
        replicas,
        ready_replicas,
        rolling: (status.is_some() && updated < replicas.min(status.map_or(0, |s| s.replicas)))
            || !template_observed(sts),
        rollout: None,
    }
}

/// The StatefulSet revision a member pod runs.
const REVISION_LABEL: &str = "controller-revision-hash";

fn pod_view(cluster: &str, pod: &Pod) -> Option<PodView> {
    let ordinal = names::ordinal_of(cluster, &pod.name_any())?;
    let ready = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
    Some(PodView {
        ordinal,
        revision: pod.labels().get(REVISION_LABEL).cloned(),
        ready,
        terminating: pod.metadata.deletion_timestamp.is_some(),
    })
}

/// One step of a rolling update: read the pods, let the planner pick, evict
/// the pod it picks. Returns the step and a sentence for the status. An
/// eviction the PodDisruptionBudget refuses (429) is a wait, not an error.
async fn roll(
    ctx: &Context,
    t: &Target<'_>,
    sts: &StatefulSet,
    observations: &Observations,
) -> Result<Option<(UpgradeStep, String)>> {
    let Some(update_revision) = sts.status.as_ref().and_then(|s| s.update_revision.as_deref()) else {
        return Ok(None);
    };
    if !template_observed(sts) {
        return Ok(None);
    }
    let (ns, name) = (t.namespace.as_str(), t.name.as_str());
    let pods = Api::<Pod>::namespaced(ctx.client.clone(), ns);
    let listed = pods.list(&ListParams::default().labels(&names::selector_string(name))).await?;
    let views: Vec<PodView> = listed.items.iter().filter_map(|p| pod_view(name, p)).collect();
    let step = upgrade::plan(UpgradeInput {
        cluster: name,
        namespace: ns,
        replicas: sts.spec.replicas.unwrap_or(0),
        update_revision,
        pods: &views,
        observations,
    });
    if let UpgradeStep::Restart { ordinal, .. } = &step {
        let pod = names::pod(name, *ordinal);
        match pods.evict(&pod, &EvictParams::default()).await {
            Ok(_) => info!(%pod, "rolling update: evicted"),
            Err(kube::Error::Api(e)) if e.code == 429 => {
                let wait = UpgradeStep::Wait(upgrade::UpgradeWait::EvictionRefused(*ordinal));
                let message = wait.describe(name);
                return Ok(Some((wait, message)));
            }
            Err(e) => return Err(e.into()),
        }
    }
    let message = step.describe(name);
    Ok(Some((step, message)))
}

/// The client that reads member statuses: HTTPS trusting the `ca.crt` of
/// the cluster's TLS Secret when `spec.tls` is set, else plain HTTP.
async fn status_client(ctx: &Context, rc: &RegistryCluster, ns: &str) -> Result<StatusClient> {
    let Some(tls) = &rc.spec.tls else {
        return Ok(ctx.status_client.clone());
    };
    let secret = Api::<Secret>::namespaced(ctx.client.clone(), ns).get(&tls.secret_name).await?;
    let ca = secret.data.as_ref().and_then(|d| d.get("ca.crt")).ok_or_else(|| {
        Error::InvalidResource(format!("the TLS Secret {} has no ca.crt to verify the members with", tls.secret_name))
    })?;
    let mut cached = ctx.tls_clients.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    match cached.get(&key(rc)) {
        Some((trusted, client)) if *trusted == ca.0 => Ok(client.clone()),
        _ => {
            let client = ctx.status_client.with_ca(&ca.0)?;
            cached.insert(key(rc), (ca.0.clone(), client.clone()));
            Ok(client)
        }
    }
}

/// Creates the cluster Secret when it does not exist; an existing one is
/// never touched ([`desired::secret`]).
async fn ensure_cluster_secret(api: &Api<Secret>, t: &Target<'_>) -> Result<()> {
    let name = names::cluster_secret(&t.name);
    if api.get_opt(&name).await?.is_some() {
        return Ok(());
    }
    match api.create(&kube::api::PostParams::default(), &desired::secret::cluster_secret(t)?).await {
        Ok(_) => {
            info!(secret = %name, "created the cluster secret");
            Ok(())
        }
        // Created meanwhile (another operator replica): use that one.
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

async fn reconcile_inner(rc: &RegistryCluster, ctx: &Context) -> Result<Action> {
    let t = Target::new(rc)?;
    let ns = t.namespace.clone();
    let name = t.name.clone();
    let desired = rc.spec.replicas.max(1);

    // 1. The server list first: on scale-down the departing members leave it
    //    before the StatefulSet is touched.
    let published = names::member_addresses(&name, &ns, desired);
    if ctx.server_lists.set(&ns, &name, published) {
        info!(members = desired, "published the server list");
    }

    // 2. The objects that do not depend on observations.
    let client = ctx.client.clone();
    apply(
        &Api::<ConfigMap>::namespaced(client.clone(), &ns),
        &names::configmap(&name),
        &desired::configmap::configmap(&t),
    )
    .await?;
    let services = Api::<Service>::namespaced(client.clone(), &ns);
    apply(&services, &names::headless_service(&name), &desired::services::headless_service(&t)).await?;
    apply(&services, &names::client_service(&name), &desired::services::client_service(&t)).await?;
    apply(
        &Api::<PodDisruptionBudget>::namespaced(client.clone(), &ns),
        &names::pdb(&name),
        &desired::pdb::pod_disruption_budget(&t, desired),
    )
    .await?;
    ensure_cluster_secret(&Api::<Secret>::namespaced(client.clone(), &ns), &t).await?;

    // 3. Observe.
    let statefulsets = Api::<StatefulSet>::namespaced(client.clone(), &ns);
    let existing = statefulsets.get_opt(&names::statefulset(&name)).await?;
    let current = existing.as_ref().and_then(|s| s.spec.replicas);
    let observations: Observations = match current {
        // No StatefulSet, no pods: nothing to ask.
        None => Observations::new(),
        Some(c) => {
            status_client(ctx, rc, &ns).await?.observe(&names::member_addresses(&name, &ns, c.max(desired))).await
        }
    };
    let unreachable = observations.values().filter(|o| matches!(o, Observation::Unreachable(_))).count();
    if unreachable > 0 {
        ctx.metrics
            .status_read_failures
            .get_or_create(&ClusterLabels { cluster: format!("{ns}/{name}") })
            .inc_by(unreachable as u64);
    }

    // 4. Decide the size and apply the StatefulSet.
    let step =
        scaling::plan(ScaleInput { cluster: &name, namespace: &ns, desired, current, observations: &observations });
    let replicas = step.statefulset_replicas();
    let sts = desired::statefulset::statefulset(&t, &ctx.settings, replicas);
    let applied = apply(&statefulsets, &names::statefulset(&name), &sts).await?;
    match &step {
        ScaleStep::Steady { .. } => {}
        other => info!(step = ?other, "scaling"),
    }

    let mut view = statefulset_view(&applied, replicas);
    let mut rollout = None;
    if matches!(step, ScaleStep::Steady { .. }) && view.rolling {
        if let Some((upgrade_step, message)) = roll(ctx, &t, &applied, &observations).await? {
            view.rollout = Some(message);
            rollout = Some(upgrade_step);
        }
    }

    // 5. Status.
    let new_status = status::aggregate(StatusInput {
        cluster: &name,
        namespace: &ns,
        generation: rc.metadata.generation,
        desired,
        step: &step,
        statefulset: &view,
        observations: &observations,
        previous: rc.status.as_ref(),
        now: Time(Timestamp::now()),
    });
    let patch = serde_json::json!({
        "apiVersion": RegistryCluster::api_version(&()),
        "kind": RegistryCluster::kind(&()),
        "status": new_status,
    });
    Api::<RegistryCluster>::namespaced(client, &ns)
        .patch_status(&name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&patch))
        .await?;

    // 6. Events.
    let reference = rc.object_ref(&());
    let mut events = planned_events(rc.status.as_ref(), &new_status, &step);
    if let (Some(UpgradeStep::Restart { .. }), Some(message)) = (&rollout, &view.rollout) {
        events.insert(0, normal("RollingUpdate", "RestartMember", message.clone()));
    }
    for event in events {
        ctx.recorder.publish(&event, &reference).await?;
    }

    let settled = !step.in_progress()
        && find_condition(&new_status.conditions, CONDITION_PROGRESSING).is_some_and(|c| c.status != STATUS_TRUE)
        && find_condition(&new_status.conditions, CONDITION_AVAILABLE).is_some_and(|c| c.status == STATUS_TRUE);
    Ok(Action::requeue(if settled { REQUEUE_STABLE } else { REQUEUE_ACTIVE }))
}

fn normal(reason: &str, action: &str, note: String) -> Event {
    Event { type_: EventType::Normal, reason: reason.into(), note: Some(note), action: action.into(), secondary: None }
}

fn condition_status<'a>(s: Option<&'a RegistryClusterStatus>, type_: &str) -> Option<&'a str> {
    s.and_then(|s| find_condition(&s.conditions, type_)).map(|c| c.status.as_str())
}

fn short(member: &str) -> &str {
    member.split('.').next().unwrap_or(member)
}

/// The Events a reconcile records, from the step it took and how the status
/// changed. Pure, so what gets announced is tested without a cluster.
pub fn planned_events(
    previous: Option<&RegistryClusterStatus>,
    new: &RegistryClusterStatus,
    step: &ScaleStep,
) -> Vec<Event> {
    let mut events = Vec::new();
    match step {
        ScaleStep::Create { replicas } => events.push(normal(
            "Creating",
            "CreateStatefulSet",
            format!("Created the StatefulSet with {replicas} members"),
        )),
        ScaleStep::ScaleUp { from, to } => events.push(normal(
            "ScalingUp",
            "ScaleStatefulSet",
            format!("Scaling up from {from} to {to} members: published the new members and raised the StatefulSet"),
        )),
        ScaleStep::ScaleDown { from, to } => events.push(normal(
            "ScalingDown",
            "ScaleStatefulSet",
            format!(
                "Raft no longer counts the members from ordinal {to} up; lowered the StatefulSet from {from} to {to}"
            ),
        )),
        ScaleStep::WaitForRaftRemoval { replicas, desired, reason } => {
            let already_waiting = previous
                .and_then(|s| find_condition(&s.conditions, CONDITION_PROGRESSING))
                .is_some_and(|c| c.reason == "WaitingForRaftRemoval");
            if !already_waiting {
                let why = match reason {
                    WaitReason::StillCounted(m) => {
                        format!("Raft still counts {}", m.iter().map(|m| short(m)).collect::<Vec<_>>().join(", "))
                    }
                    WaitReason::NoStayingMemberAnswered => "no staying member answered".to_owned(),
                };
                events.push(normal(
                    "WaitingForRaftRemoval",
                    "ScaleDown",
                    format!(
                        "Scaling down from {replicas} to {desired}: removed the highest members from the server list; \
                         the StatefulSet stays at {replicas} until Raft lets them go ({why})"
                    ),
                ));
            }
        }
        ScaleStep::Steady { .. } => {}
    }
    let prev_leader = previous.and_then(|s| s.leader.as_deref());
    if let Some(leader) = new.leader.as_deref() {
        if prev_leader != Some(leader) {
            let note = match prev_leader {
                Some(old) => format!("Raft leader changed from {} to {}", short(old), short(leader)),
                None => format!("Raft leader is {}", short(leader)),
            };
            events.push(normal("LeaderChanged", "ObserveLeader", note));
        }
    }
    let became_true = |type_: &str| {
        condition_status(Some(new), type_) == Some(STATUS_TRUE)
            && condition_status(previous, type_) != Some(STATUS_TRUE)
    };
    if became_true(CONDITION_SNAPSHOT_BOOTSTRAPPED) {
        events.push(normal(
            "SnapshotBootstrapped",
            "ObserveDistro",
            "Every member loaded its Distro snapshot".to_owned(),
        ));
    }
    if became_true(CONDITION_AVAILABLE) {
        let message =
            find_condition(&new.conditions, CONDITION_AVAILABLE).map(|c| c.message.clone()).unwrap_or_default();
        events.push(normal("Available", "ObserveAvailability", format!("The cluster is available: {message}")));
    }
    if condition_status(previous, CONDITION_AVAILABLE) == Some(STATUS_TRUE)
        && condition_status(Some(new), CONDITION_AVAILABLE) != Some(STATUS_TRUE)
    {
        let message =
            find_condition(&new.conditions, CONDITION_AVAILABLE).map(|c| c.message.clone()).unwrap_or_default();
        events.push(Event {
            type_: EventType::Warning,
            reason: "Unavailable".into(),
            note: Some(format!("The cluster is no longer available: {message}")),
            action: "ObserveAvailability".into(),
            secondary: None,
        });
    }
    events
}

/// What [`sync_server_lists`] remembers between watch events.
#[derive(Debug, Default)]
pub struct ListSync {
    /// Clusters whose list is published.
    known: BTreeSet<(String, String)>,
    /// Clusters seen since the last `Init`, while a re-list is under way.
    relisting: Option<BTreeSet<(String, String)>>,
}

impl ListSync {
    /// Applies one watch event to `lists`.
    pub fn handle(&mut self, lists: &ServerLists, event: watcher::Event<RegistryCluster>) {
        let id = |rc: &RegistryCluster| (rc.namespace().unwrap_or_default(), rc.name_any());
        match event {
            watcher::Event::Apply(rc) | watcher::Event::InitApply(rc) => {
                let (ns, name) = id(&rc);
                lists.set(&ns, &name, names::member_addresses(&name, &ns, rc.spec.replicas.max(1)));
                if let Some(seen) = self.relisting.as_mut() {
                    seen.insert((ns.clone(), name.clone()));
                }
                self.known.insert((ns, name));
            }
            watcher::Event::Delete(rc) => {
                let (ns, name) = id(&rc);
                lists.remove(&ns, &name);
                self.known.remove(&(ns, name));
            }
            watcher::Event::Init => self.relisting = Some(BTreeSet::new()),
            watcher::Event::InitDone => {
                // What the re-list did not return was deleted while the watch was down.
                let seen = self.relisting.take().unwrap_or_default();
                for (ns, name) in self.known.difference(&seen) {
                    lists.remove(ns, name);
                }
                self.known = seen;
            }
        }
    }
}

/// Keeps `lists` equal to the desired members of every RegistryCluster the
/// API server has, on every operator replica: the leader's reconcile
/// publishes too, but followers serve the address server as well, and a
/// deleted cluster must turn into a 404. Runs until the task is dropped.
pub async fn sync_server_lists(api: Api<RegistryCluster>, lists: ServerLists) {
    let mut sync = ListSync::default();
    let mut stream = watcher::watcher(api, watcher::Config::default()).boxed();
    while let Some(event) = stream.next().await {
        match event {
            Ok(event) => sync.handle(&lists, event),
            Err(e) => {
                warn!(error = %e, "watching RegistryClusters for the server lists failed; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// Runs the controller over every namespace until `shutdown` completes.
pub async fn run(ctx: Arc<Context>, shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static) {
    let client = ctx.client.clone();
    let owned = watcher::Config::default().labels(&format!("{}=roster-operator", names::label::MANAGED_BY));
    Controller::new(Api::<RegistryCluster>::all(client.clone()), watcher::Config::default().any_semantic())
        .owns(Api::<StatefulSet>::all(client.clone()), owned.clone())
        .owns(Api::<Service>::all(client.clone()), owned.clone())
        .owns(Api::<ConfigMap>::all(client.clone()), owned.clone())
        .owns(Api::<PodDisruptionBudget>::all(client), owned)
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            if let Err(e) = result {
                warn!(error = %e, "controller event");
            }
        })
        .await;
}

#[cfg(test)]
mod tests;
