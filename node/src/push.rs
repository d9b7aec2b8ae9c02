//! Pushes to subscribers: every change of a watched service reaches every
//! gRPC connection subscribed to it as a `NotifySubscriberRequest`.
//!
//! Changes to one service within the push delay are merged. Pushes to one
//! subscriber of one service are serialised and always carry the view at
//! send time, so a subscriber never sees an older view after a newer one. A
//! push that is not acknowledged within the push timeout is retried after the
//! retry delay for as long as the subscriber stays connected and subscribed.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use tokio::sync::broadcast::error::RecvError;
use tracing::{debug, warn, Instrument};

use crate::api::grpc::connection::Connections;
use crate::api::grpc::payload;
use crate::metrics::Metrics;
use crate::naming::{NamingStore, Selection, ServiceInfo, ServiceKey};
use serde::Serialize;

/// Who watches which service, with the clusters each asked for.
#[derive(Debug, Default)]
pub struct Subscribers {
    by_service: RwLock<HashMap<ServiceKey, HashMap<String, Vec<String>>>>,
    by_connection: RwLock<HashMap<String, HashSet<ServiceKey>>>,
    /// Subscriptions made since the push service last looked. Each one is
    /// pushed the current view, as Nacos does (`ServiceSubscribedEvent`):
    /// the SDK's redo of a subscription after a reconnect ignores the
    /// answer and waits for that push, so without it a subscriber that
    /// reconnected keeps a stale view until the service changes again.
    fresh: Mutex<Vec<(ServiceKey, String)>>,
    fresh_added: tokio::sync::Notify,
}

impl Subscribers {
    /// Subscribes a connection to a service (replacing its cluster filter).
    pub fn add(&self, connection_id: &str, key: &ServiceKey, clusters: Vec<String>) {
        self.by_service.write().entry(key.clone()).or_default().insert(connection_id.to_owned(), clusters);
        self.by_connection.write().entry(connection_id.to_owned()).or_default().insert(key.clone());
        self.fresh.lock().push((key.clone(), connection_id.to_owned()));
        self.fresh_added.notify_one();
    }

    /// Waits until a subscription was made since the last
    /// [`Subscribers::take_fresh`].
    pub async fn fresh_added(&self) {
        self.fresh_added.notified().await;
    }

    /// The subscriptions made since the last call.
    pub fn take_fresh(&self) -> Vec<(ServiceKey, String)> {
        std::mem::take(&mut *self.fresh.lock())
    }

    /// Unsubscribes a connection from a service.
    pub fn remove(&self, connection_id: &str, key: &ServiceKey) {
        let mut by_service = self.by_service.write();
        if let Some(subs) = by_service.get_mut(key) {
            subs.remove(connection_id);
            if subs.is_empty() {
                by_service.remove(key);
            }
        }
        drop(by_service);
        let mut by_connection = self.by_connection.write();
        if let Some(keys) = by_connection.get_mut(connection_id) {
            keys.remove(key);
            if keys.is_empty() {
                by_connection.remove(connection_id);
            }
        }
    }

    /// Drops every subscription of a connection.
    pub fn remove_connection(&self, connection_id: &str) {
        let keys = self.by_connection.write().remove(connection_id).unwrap_or_default();
        let mut by_service = self.by_service.write();
        for key in keys {
            if let Some(subs) = by_service.get_mut(&key) {
                subs.remove(connection_id);
                if subs.is_empty() {
                    by_service.remove(&key);
                }
            }
        }
    }

    /// The subscribers of a service with their cluster filters.
    pub fn of(&self, key: &ServiceKey) -> Vec<(String, Vec<String>)> {
        self.by_service
            .read()
            .get(key)
            .map(|subs| subs.iter().map(|(c, cl)| (c.clone(), cl.clone())).collect())
            .unwrap_or_default()
    }

    /// The services a connection watches, sorted.
    pub fn services_of(&self, connection_id: &str) -> Vec<ServiceKey> {
        let mut keys: Vec<ServiceKey> =
            self.by_connection.read().get(connection_id).map(|keys| keys.iter().cloned().collect()).unwrap_or_default();
        keys.sort_unstable();
        keys
    }

    /// The cluster filter of one subscription, if it exists.
    pub fn clusters(&self, connection_id: &str, key: &ServiceKey) -> Option<Vec<String>> {
        self.by_service.read().get(key)?.get(connection_id).cloned()
    }

    /// Every watched service.
    pub fn services(&self) -> Vec<ServiceKey> {
        self.by_service.read().keys().cloned().collect()
    }

    /// Total number of subscriptions.
    pub fn count(&self) -> usize {
        self.by_service.read().values().map(HashMap::len).sum()
    }
}

/// An empty JSON object (`headers`).
#[derive(Serialize)]
struct Empty {}

/// The body of a `NotifySubscriberRequest`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct NotifySubscriber<'a> {
    headers: Empty,
    namespace: &'a str,
    service_name: &'a str,
    group_name: &'a str,
    service_info: &'a ServiceInfo,
    module: &'static str,
}

/// Push timings.
#[derive(Debug, Clone, Copy)]
pub struct PushTimings {
    /// Changes within this window are merged.
    pub delay: Duration,
    /// Time to wait for a client's ack.
    pub timeout: Duration,
    /// Pause before retrying an unacknowledged push.
    pub retry_delay: Duration,
}

/// The state of one (service, subscriber) push task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pending {
    /// A task is pushing; nothing new since it took its view.
    Running,
    /// A task is pushing and another change arrived: push again after it.
    Dirty,
}

/// Turns store changes into pushes.
#[derive(Debug)]
pub struct PushService {
    store: Arc<NamingStore>,
    connections: Arc<Connections>,
    subscribers: Arc<Subscribers>,
    metrics: Arc<Metrics>,
    timings: PushTimings,
    pending: Mutex<HashMap<(ServiceKey, String), Pending>>,
}

impl PushService {
    /// A push service over the node's store and connections.
    pub fn new(
        store: Arc<NamingStore>,
        connections: Arc<Connections>,
        subscribers: Arc<Subscribers>,
        metrics: Arc<Metrics>,
        timings: PushTimings,
    ) -> Arc<Self> {
        Arc::new(PushService { store, connections, subscribers, metrics, timings, pending: Mutex::new(HashMap::new()) })
    }

    /// Listens to store changes until the store's channel closes, and
    /// pushes the current view to every new subscription.
    pub async fn run(self: Arc<Self>) {
        let mut changes = self.store.subscribe_changes();
        loop {
            let change = tokio::select! {
                change = changes.recv() => change,
                () = self.subscribers.fresh_added() => {
                    for (key, connection_id) in self.subscribers.take_fresh() {
                        self.schedule(key, connection_id);
                    }
                    continue;
                }
            };
            match change {
                Ok(key) => self.service_changed(&key),
                Err(RecvError::Lagged(missed)) => {
                    warn!(missed, "push listener lagged; pushing every watched service");
                    for key in self.subscribers.services() {
                        self.service_changed(&key);
                    }
                }
                Err(RecvError::Closed) => return,
            }
        }
    }

    /// Schedules a push of `key` to each of its subscribers.
    pub fn service_changed(self: &Arc<Self>, key: &ServiceKey) {
        for (connection_id, _) in self.subscribers.of(key) {
            self.schedule(key.clone(), connection_id);
        }
    }

    fn schedule(self: &Arc<Self>, key: ServiceKey, connection_id: String) {
        {
            let mut pending = self.pending.lock();
            match pending.get_mut(&(key.clone(), connection_id.clone())) {
                Some(state) => {
                    *state = Pending::Dirty;
                    return;
                }
                None => {
                    pending.insert((key.clone(), connection_id.clone()), Pending::Running);
                }
            }
        }
        let this = self.clone();
        let span = tracing::debug_span!("push", service = %key, connection = %connection_id);
        tokio::spawn(
            async move {
                tokio::time::sleep(this.timings.delay).await;
                loop {
                    if let Some(state) = this.pending.lock().get_mut(&(key.clone(), connection_id.clone())) {
                        *state = Pending::Running;
                    }
                    this.push_until_acked(&key, &connection_id).await;
                    let mut pending = this.pending.lock();
                    let slot = (key.clone(), connection_id.clone());
                    if pending.get(&slot) == Some(&Pending::Dirty) {
                        continue;
                    }
                    pending.remove(&slot);
                    return;
                }
            }
            .instrument(span),
        );
    }

    /// Pushes the current view until the subscriber acknowledges it, leaves,
    /// or unsubscribes.
    async fn push_until_acked(&self, key: &ServiceKey, connection_id: &str) {
        loop {
            let Some(clusters) = self.subscribers.clusters(connection_id, key) else { return };
            let Some(conn) = self.connections.get(connection_id) else { return };
            let selection = Selection { clusters, healthy_only: false, grouped_name: false };
            let info = self.store.query(key, &selection);
            let body = NotifySubscriber {
                headers: Empty {},
                namespace: &key.namespace,
                service_name: &key.name,
                group_name: &key.group,
                service_info: &info,
                module: "naming",
            };
            match conn.request("NotifySubscriberRequest", &body, self.timings.timeout).await {
                Ok(answer) if payload::result_code(&answer) == Some(200) => {
                    self.metrics.push("ok");
                    debug!(hosts = info.hosts.len(), "pushed");
                    return;
                }
                Ok(_) => self.metrics.push("failed"),
                Err(e) => {
                    self.metrics.push("timeout");
                    debug!(error = %e, "push not acknowledged");
                }
            }
            if conn.is_closed() {
                return;
            }
            self.metrics.push("retry");
            tokio::time::sleep(self.timings.retry_delay).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscriptions_are_tracked_both_ways() {
        let subs = Subscribers::default();
        let a = ServiceKey::new("public", "DEFAULT_GROUP", "a");
        let b = ServiceKey::new("public", "DEFAULT_GROUP", "b");
        subs.add("c1", &a, vec![]);
        subs.add("c1", &b, vec!["east".into()]);
        subs.add("c2", &a, vec![]);
        assert_eq!(subs.count(), 3);
        assert_eq!(subs.clusters("c1", &b), Some(vec!["east".to_owned()]));
        assert_eq!(subs.services_of("c1"), vec![a.clone(), b.clone()]);
        assert_eq!(subs.services_of("c2"), vec![a.clone()]);
        subs.remove("c2", &a);
        assert!(subs.services_of("c2").is_empty());
        assert_eq!(subs.of(&a).len(), 1);
        subs.remove_connection("c1");
        assert_eq!(subs.count(), 0);
        assert!(subs.services().is_empty());
    }
}
