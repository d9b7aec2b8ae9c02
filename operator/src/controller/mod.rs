//! The controller: runs the kube-runtime `Controller` over every
//! RegistryCluster and dispatches each reconcile to [`Reconcile`], the
//! `reconcile`/`cleanup` pair of one cluster (the shape of
//! kube-rs/controller-rs: span + timer + dispatch here, the work there).
//!
//! One reconcile, in this order (the order is the safety argument; see
//! [`cluster`]):
//!
//! 1. publish the server list `0..spec.replicas` to the address server, so
//!    on scale-down the departing members leave the list *before* anything
//!    else happens;
//! 2. server-side apply the ConfigMap, the two Services and the
//!    PodDisruptionBudget, and create the cluster Secret once;
//! 3. read the StatefulSet, the member pods and every member's
//!    `/roster/v1/status` ([`observe`]);
//! 4. let the [scale planner](crate::scaling) pick the StatefulSet size and
//!    apply the StatefulSet with it; when no scaling is under way and pods
//!    lag behind the template, let the [upgrade planner](crate::upgrade)
//!    pick the one pod to restart next (the Raft leader last) and evict it;
//! 5. [aggregate](crate::status) the status with its conditions and apply
//!    it to the status subresource;
//! 6. record one Event per step ([`crate::events`]).
//!
//! Errors are retried with a per-object exponential backoff (5 s doubling up
//! to 5 min) and counted in the metrics. A successful reconcile requeues
//! itself (5 s while something moves, 30 s when stable), because member
//! statuses change without any Kubernetes event; changes of the member pods
//! (readiness above all) trigger a reconcile at once.

mod cluster;
mod observe;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::Api;
use kube::runtime::controller::{self as runtime, Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use roster_crds::RegistryCluster;
use tracing::{debug, instrument, warn};

use crate::address_server::ServerLists;
use crate::desired::OperatorSettings;
use crate::events::EventRecorder;
use crate::metrics::{ErrorLabels, Metrics};
use crate::names;
use crate::node_status::StatusClient;
use crate::Error;

pub use cluster::Reconcile;

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
    pub recorder: EventRecorder,
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
    /// A context; the Event recorder reports as `roster-operator`.
    pub fn new(
        client: Client,
        settings: OperatorSettings,
        server_lists: ServerLists,
        status_client: StatusClient,
        metrics: Arc<Metrics>,
    ) -> Context {
        let recorder = EventRecorder::new(client.clone(), "roster-operator");
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

/// Reconciles one RegistryCluster: a span and a timer around
/// [`Reconcile::reconcile`], or [`Reconcile::cleanup`] once it is being
/// deleted.
#[instrument(skip(rc, ctx), fields(cluster = %key(&rc)))]
pub async fn reconcile(rc: Arc<RegistryCluster>, ctx: Arc<Context>) -> crate::Result<Action> {
    let _timer = ctx.metrics.start_reconcile();
    let action =
        if rc.metadata.deletion_timestamp.is_some() { rc.cleanup(&ctx).await? } else { rc.reconcile(&ctx).await? };
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

/// The RegistryCluster a member pod belongs to, from its labels.
fn owner_of_pod(pod: Pod) -> Option<ObjectRef<RegistryCluster>> {
    let namespace = pod.namespace()?;
    let cluster = pod.labels().get(names::label::INSTANCE)?;
    Some(ObjectRef::new(cluster).within(&namespace))
}

/// Runs the controller over every namespace until `shutdown` completes.
pub async fn run(ctx: Arc<Context>, shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static) {
    let client = ctx.client.clone();
    let owned = watcher::Config::default().labels(&format!("{}=roster-operator", names::label::MANAGED_BY));
    // Member pods are the StatefulSet's, not ours: they are watched (by
    // their labels) so that a pod turning Ready reconciles at once.
    let pods = watcher::Config::default().labels(&format!("{}={}", names::label::NAME, names::APP_NAME));
    Controller::new(Api::<RegistryCluster>::all(client.clone()), watcher::Config::default().any_semantic())
        .owns(Api::<StatefulSet>::all(client.clone()), owned.clone())
        .owns(Api::<Service>::all(client.clone()), owned.clone())
        .owns(Api::<ConfigMap>::all(client.clone()), owned.clone())
        .owns(Api::<PodDisruptionBudget>::all(client.clone()), owned)
        .watches(Api::<Pod>::all(client), pods, owner_of_pod)
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            match result {
                Ok(_) => {}
                // A deleted cluster's owned objects go away after it and
                // each wakes the controller once more: nothing to do.
                Err(runtime::Error::ObjectNotFound(object)) => {
                    debug!(%object, "reconcile of a deleted cluster skipped")
                }
                // error_policy has counted and logged it.
                Err(runtime::Error::ReconcilerFailed(error, object)) => debug!(%object, %error, "reconcile failed"),
                Err(e) => warn!(error = %e, "controller event"),
            }
        })
        .await;
}

#[cfg(test)]
mod tests;
