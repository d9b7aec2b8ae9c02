//! Reading the world a reconcile decides from: the StatefulSet, the member
//! pods, the members' own statuses (over HTTPS when `spec.tls` is set) and,
//! when a member pod is missing, why the StatefulSet could not create it.

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{Pod, Secret};
use k8s_openapi::api::events::v1::Event as KubeEvent;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, ListParams};
use kube::ResourceExt;
use roster_crds::RegistryCluster;

use super::{key, Context};
use crate::desired::statefulset::CONTAINER;
use crate::desired::Target;
use crate::metrics::ClusterLabels;
use crate::names;
use crate::node_status::{Observation, Observations, StatusClient};
use crate::status::StatefulSetView;
use crate::upgrade::PodView;
use crate::{Error, Result};

/// The StatefulSet revision a member pod runs.
const REVISION_LABEL: &str = "controller-revision-hash";

/// How long a `FailedCreate` Event of the StatefulSet explains a missing
/// pod. The StatefulSet controller retries with a growing back-off and
/// records each failure, so a failure still going on is never older.
const FAILED_CREATE_WINDOW: std::time::Duration = std::time::Duration::from_secs(600);

/// What one reconcile observed.
pub(super) struct World {
    /// The StatefulSet, if it exists.
    pub statefulset: Option<StatefulSet>,
    /// The member pods that exist.
    pub pods: Vec<PodView>,
    /// Statuses of the members `0..max(spec.replicas, StatefulSet replicas)`.
    pub observations: Observations,
}

/// Whether the StatefulSet controller has seen the current template (its
/// `observedGeneration` caught up), so `updateRevision` names it.
pub(super) fn template_observed(sts: &StatefulSet) -> bool {
    match (sts.metadata.generation, sts.status.as_ref().and_then(|s| s.observed_generation)) {
        (Some(generation), Some(observed)) => observed >= generation,
        _ => true,
    }
}

/// The StatefulSet as the status sees it. With `OnDelete` the StatefulSet
/// never moves `currentRevision` forward, so the pods that run
/// `updateRevision` are what tells a roll.
pub(super) fn statefulset_view(sts: &StatefulSet, replicas: i32) -> StatefulSetView {
    StatefulSetView {
        replicas,
        update_revision: sts.status.as_ref().and_then(|s| s.update_revision.clone()),
        template_observed: template_observed(sts),
        rollout: None,
        failure: None,
    }
}

/// A member pod as the planners and the status see it.
pub(super) fn pod_view(cluster: &str, pod: &Pod) -> Option<PodView> {
    let ordinal = names::ordinal_of(cluster, &pod.name_any())?;
    let status = pod.status.as_ref();
    let ready = status
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
    let waiting = status
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|c| c.iter().find(|c| c.name == CONTAINER))
        .and_then(|c| c.state.as_ref()?.waiting.as_ref()?.reason.clone());
    Some(PodView {
        ordinal,
        revision: pod.labels().get(REVISION_LABEL).cloned(),
        ready,
        terminating: pod.metadata.deletion_timestamp.is_some(),
        waiting,
    })
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

/// Reads the StatefulSet, the member pods and the member statuses.
pub(super) async fn observe(ctx: &Context, t: &Target<'_>, desired: i32) -> Result<World> {
    let (ns, name) = (t.namespace.as_str(), t.name.as_str());
    let statefulset = Api::<StatefulSet>::namespaced(ctx.client.clone(), ns).get_opt(&names::statefulset(name)).await?;
    // No StatefulSet, no pods: nothing to ask.
    let Some(current) = statefulset.as_ref().and_then(|s| s.spec.replicas) else {
        return Ok(World { statefulset, pods: Vec::new(), observations: Observations::new() });
    };
    let client = status_client(ctx, t.rc, ns).await?;
    let observations = client.observe(&names::member_addresses(name, ns, current.max(desired))).await;
    let unreachable = observations.values().filter(|o| matches!(o, Observation::Unreachable(_))).count();
    if unreachable > 0 {
        ctx.metrics
            .status_read_failures
            .get_or_create(&ClusterLabels { cluster: format!("{ns}/{name}") })
            .inc_by(unreachable as u64);
    }
    let listed = Api::<Pod>::namespaced(ctx.client.clone(), ns)
        .list(&ListParams::default().labels(&names::selector_string(name)))
        .await?;
    let pods = listed.items.iter().filter_map(|p| pod_view(name, p)).collect();
    Ok(World { statefulset, pods, observations })
}

/// When a member pod `0..replicas` is missing, the latest `FailedCreate`
/// Event of the StatefulSet within [`FAILED_CREATE_WINDOW`] of `now`: why
/// the StatefulSet controller cannot create it (a refused pod, a quota).
pub(super) async fn failed_create(
    ctx: &Context,
    t: &Target<'_>,
    replicas: i32,
    pods: &[PodView],
    now: &Time,
) -> Result<Option<String>> {
    if (0..replicas).all(|i| pods.iter().any(|p| p.ordinal == i)) {
        return Ok(None);
    }
    let fields =
        format!("regarding.kind=StatefulSet,regarding.name={},reason=FailedCreate", names::statefulset(&t.name));
    let events = Api::<KubeEvent>::namespaced(ctx.client.clone(), &t.namespace)
        .list(&ListParams::default().fields(&fields))
        .await?;
    let seen = |e: &KubeEvent| {
        let series = e.series.as_ref().map(|s| s.last_observed_time.0);
        let legacy = e.deprecated_last_timestamp.as_ref().map(|t| t.0);
        series.or(e.event_time.as_ref().map(|t| t.0)).or(legacy)
    };
    let since = now.0 - FAILED_CREATE_WINDOW;
    let latest = events
        .items
        .iter()
        .filter_map(|e| Some((seen(e)?, e)))
        .filter(|(at, _)| *at >= since)
        .max_by_key(|(at, _)| *at);
    Ok(latest.map(|(_, e)| e.note.clone().unwrap_or_else(|| "FailedCreate without a message".to_owned())))
}
