//! Pushes to subscribers: every change of a watched service reaches every
//! gRPC connection subscribed to it as a `NotifySubscriberRequest`.
//!
//! Batching adapts to the subscriber: a change to a service whose
//! subscriber has no push of it in flight is pushed at once; changes that
//! arrive while a push is in flight are merged into one push, sent when the
//! first is acknowledged, and no sooner than the push delay after it
//! (`--push-delay`: in a burst of changes, one subscriber gets at most one
//! push of a service per delay). A light load thus waits for nothing, and a
//! heavy one is merged by the subscriber's own pace. Pushes to one
//! subscriber of one service are serialised and always carry the view at
//! send time, so a subscriber never sees an older view after a newer one. A
//! push that is not acknowledged within the push timeout is retried after the
//! retry delay for as long as the subscriber stays connected and subscribed.
//! The view is the service's encoded answer (`NamingStore::answer`), shared
//! by every push and query until the service changes.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use tokio::sync::broadcast::error::RecvError;
use tokio::time::Instant;
use tracing::{debug, warn, Instrument};

use crate::api::grpc::connection::Connections;
use crate::api::grpc::payload::{self, write_json_str};
use crate::metrics::Metrics;
use crate::naming::store::now_millis;
use crate::naming::{EncodedView, Form, NamingStore, Selection, ServiceKey};

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

    /// How many services `connection_id` subscribes to, and whether `key`
    /// is one of them (a cheap check for the per-connection limit).
    pub fn subscribed(&self, connection_id: &str, key: &ServiceKey) -> (usize, bool) {
        self.by_connection.read().get(connection_id).map_or((0, false), |keys| (keys.len(), keys.contains(key)))
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

/// The body of a `NotifySubscriberRequest` carrying `view` of `key`,
/// answered at `now`, with the push's `request_id`: the fields in the order
/// Nacos's `NotifySubscriberRequest` has them (and Roster always sent).
fn notify_body(key: &ServiceKey, view: &EncodedView, now: i64, request_id: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(view.len() + 160);
    out.extend_from_slice(b"{\"headers\":{},\"namespace\":");
    write_json_str(&mut out, &key.namespace);
    out.extend_from_slice(b",\"serviceName\":");
    write_json_str(&mut out, &key.name);
    out.extend_from_slice(b",\"groupName\":");
    write_json_str(&mut out, &key.group);
    out.extend_from_slice(b",\"serviceInfo\":");
    view.write(now, &mut out);
    out.extend_from_slice(b",\"module\":\"naming\",\"requestId\":");
    write_json_str(&mut out, request_id);
    out.push(b'}');
    out
}

/// Push timings.
#[derive(Debug, Clone, Copy)]
pub struct PushTimings {
    /// Shortest time between two pushes of one service to one subscriber
    /// when changes arrive while a push is in flight.
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
    /// A task is pushing (or pausing between two pushes) and another change
    /// arrived: push again after it.
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
        let slot = (key, connection_id);
        {
            let mut pending = self.pending.lock();
            match pending.get_mut(&slot) {
                Some(state) => {
                    *state = Pending::Dirty;
                    return;
                }
                None => {
                    pending.insert(slot.clone(), Pending::Running);
                }
            }
        }
        let this = self.clone();
        let span = tracing::debug_span!("push", service = %slot.0, connection = %slot.1);
        tokio::spawn(
            async move {
                loop {
                    let sent = this.push_until_acked(&slot).await;
                    {
                        let mut pending = this.pending.lock();
                        if pending.get(&slot) != Some(&Pending::Dirty) {
                            pending.remove(&slot);
                            return;
                        }
                    }
                    // Changes came during the push: they go in one more
                    // push, no sooner than the delay after the last one
                    // (more changes meanwhile join it).
                    if let Some(sent) = sent {
                        tokio::time::sleep_until(sent + this.timings.delay).await;
                    }
                }
            }
            .instrument(span),
        );
    }

    /// Pushes the current view until the subscriber acknowledges it, leaves,
    /// or unsubscribes; returns when the last push was sent (none: the
    /// subscriber left before one was).
    async fn push_until_acked(&self, slot: &(ServiceKey, String)) -> Option<Instant> {
        let (key, connection_id) = slot;
        let mut sent = None;
        loop {
            let Some(clusters) = self.subscribers.clusters(connection_id, key) else { return sent };
            let Some(conn) = self.connections.get(connection_id) else { return sent };
            // The view is taken now: changes from here on need another push.
            if let Some(state) = self.pending.lock().get_mut(slot) {
                *state = Pending::Running;
            }
            let selection = Selection { clusters, healthy_only: false, grouped_name: false };
            let view = self.store.answer(key, &selection, Form::Fields);
            let now = now_millis();
            sent = Some(Instant::now());
            let body = |request_id: &str| notify_body(key, &view, now, request_id);
            match conn.request_with("NotifySubscriberRequest", body, self.timings.timeout).await {
                Ok(answer) if payload::result_code(&answer) == Some(200) => {
                    self.metrics.push("ok");
                    debug!(hosts = view.hosts, "pushed");
                    return sent;
                }
                Ok(_) => self.metrics.push("failed"),
                Err(e) => {
                    self.metrics.push("timeout");
                    debug!(error = %e, "push not acknowledged");
                }
            }
            if conn.is_closed() {
                return sent;
            }
            self.metrics.push("retry");
            tokio::time::sleep(self.timings.retry_delay).await;
        }
    }
}

#[cfg(test)]
mod tests {
    //! The push timers (merge window, ack timeout, retry delay) run on paused
    //! time: a test waits for the next push and reads the virtual time it
    //! came at, so each timer is checked to the millisecond without sleeping.
    //! The subscriber is a real [`Connection`] whose outbound stream the test
    //! reads and answers.

    use std::net::SocketAddr;

    use tokio::sync::mpsc;
    use tokio::time::Instant;

    use serde::Serialize;

    use super::*;
    use crate::api::grpc::connection::{ClientInfo, Connection};
    use crate::api::grpc::payload::Envelope;
    use crate::naming::model::BeatTimeouts;
    use crate::naming::{ClientKind, Instance};
    use roster_proto::nacos::Payload;

    const TIMINGS: PushTimings = PushTimings {
        delay: Duration::from_millis(100),
        timeout: Duration::from_millis(1000),
        retry_delay: Duration::from_millis(500),
    };
    /// Long enough for any timer of [`TIMINGS`] to have fired many times.
    const QUIET: Duration = Duration::from_secs(60);

    /// A push as the subscriber received it.
    #[derive(Debug)]
    struct Pushed {
        request_id: String,
        hosts: Vec<String>,
        /// Virtual time since the harness started.
        at: Duration,
    }

    /// One subscriber (connection `c1`) of one service, and the push
    /// service, on paused time.
    struct Harness {
        push: Arc<PushService>,
        store: Arc<NamingStore>,
        subscribers: Arc<Subscribers>,
        conn: Arc<Connection>,
        outbound: mpsc::Receiver<std::result::Result<Payload, tonic::Status>>,
        key: ServiceKey,
        started: Instant,
    }

    impl Harness {
        fn new() -> Harness {
            let metrics = Arc::new(Metrics::new());
            let connections = Arc::new(Connections::new(metrics.clone()));
            let (sender, outbound) = mpsc::channel(16);
            let remote: SocketAddr = "127.0.0.1:5555".parse().expect("address");
            let conn = Arc::new(Connection::new("c1".into(), remote, ClientInfo::default(), sender));
            connections.register(conn.clone());
            let key = ServiceKey::new("public", "DEFAULT_GROUP", "orders");
            let subscribers = Arc::new(Subscribers::default());
            subscribers.add("c1", &key, Vec::new());
            let store = Arc::new(NamingStore::new(BeatTimeouts::default()));
            let push = PushService::new(store.clone(), connections, subscribers.clone(), metrics, TIMINGS);
            Harness { push, store, subscribers, conn, outbound, key, started: Instant::now() }
        }

        /// Registers an instance at `ip` (its own connection-based client).
        fn register(&self, ip: &str) {
            self.store.register_ephemeral(ip, ClientKind::Connection, &self.key, Instance::new(ip, 80));
        }

        /// Registers an instance at `ip` and tells the push service, as its
        /// listener of store changes would.
        fn change(&self, ip: &str) {
            self.register(ip);
            self.push.service_changed(&self.key);
        }

        /// The next push within `within` (virtual time moves on to it).
        async fn next_push(&mut self, within: Duration) -> Option<Pushed> {
            let sent = tokio::time::timeout(within, self.outbound.recv()).await.ok()??;
            let env = Envelope::open(sent.expect("a push, not a status")).expect("a payload");
            assert_eq!(env.type_name, "NotifySubscriberRequest");
            let body: serde_json::Value = env.parse().expect("JSON");
            assert_eq!(body["serviceName"], "orders");
            let hosts = body["serviceInfo"]["hosts"].as_array().expect("hosts");
            Some(Pushed {
                request_id: env.request_id().expect("a requestId"),
                hosts: hosts.iter().map(|h| h["ip"].as_str().unwrap_or_default().to_owned()).collect(),
                at: self.started.elapsed(),
            })
        }

        /// Answers a push as a client does.
        fn ack(&self, pushed: &Pushed) {
            let answer = payload::ok_response("NotifySubscriberResponse", Some(&pushed.request_id), Default::default());
            assert!(self.conn.complete(&pushed.request_id, answer), "the push waits for this answer");
        }
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

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

    #[tokio::test(start_paused = true)]
    async fn a_change_is_pushed_at_once_and_changes_during_a_push_are_merged_into_one() {
        let mut h = Harness::new();
        h.change("10.0.0.1");
        let first = h.next_push(QUIET).await.expect("a push");
        assert_eq!((first.at, first.hosts.as_slice()), (ms(0), ["10.0.0.1".to_owned()].as_slice()), "at once");
        // Two changes while the first push waits for its answer.
        tokio::time::sleep(ms(40)).await;
        h.change("10.0.0.2");
        tokio::time::sleep(ms(20)).await;
        h.change("10.0.0.3");
        tokio::time::sleep(ms(20)).await;
        h.ack(&first);
        let merged = h.next_push(QUIET).await.expect("the merged push");
        assert_eq!(merged.at, TIMINGS.delay, "answered after 80 ms; the next push one delay after the first");
        assert_eq!(merged.hosts, ["10.0.0.1", "10.0.0.2", "10.0.0.3"], "both changes, the view at send time");
        h.ack(&merged);
        assert!(h.next_push(QUIET).await.is_none(), "both changes went in one push");
        // Quiet again: the next change is pushed at once, however soon.
        let changed_at = h.started.elapsed();
        h.change("10.0.0.4");
        let alone = h.next_push(QUIET).await.expect("a push");
        assert_eq!(alone.at, changed_at, "nothing in flight: no wait");
        h.ack(&alone);
    }

    /// The push's JSON is the one the serialised structs gave, field for
    /// field and byte for byte, with the encoded view of the store.
    #[test]
    fn the_push_body_is_the_serialised_notify_request() {
        #[derive(Serialize)]
        struct Empty {}
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct NotifySubscriber<'a> {
            headers: Empty,
            namespace: &'a str,
            service_name: &'a str,
            group_name: &'a str,
            service_info: &'a crate::naming::ServiceInfo,
            module: &'static str,
            request_id: &'a str,
        }
        let store = NamingStore::new(BeatTimeouts::default());
        let key = ServiceKey::new("team \"a\"", "DEFAULT_GROUP", "orders");
        let mut tagged = Instance::new("10.0.0.1", 80);
        tagged.metadata.insert("lastRefTime".into(), "0".into());
        store.register_ephemeral("c", ClientKind::Connection, &key, tagged);
        let selection = Selection::default();
        let mut info = store.query(&key, &selection);
        info.last_ref_time = 1_700_000_000_123;
        let expected = serde_json::to_vec(&NotifySubscriber {
            headers: Empty {},
            namespace: &key.namespace,
            service_name: &key.name,
            group_name: &key.group,
            service_info: &info,
            module: "naming",
            request_id: "42",
        })
        .expect("json");
        let view = store.answer(&key, &selection, Form::Fields);
        assert_eq!(
            String::from_utf8_lossy(&notify_body(&key, &view, info.last_ref_time, "42")),
            String::from_utf8_lossy(&expected)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_unacknowledged_push_is_retried_with_the_view_at_send_time() {
        let mut h = Harness::new();
        h.change("10.0.0.1");
        let first = h.next_push(QUIET).await.expect("a push");
        assert_eq!((first.at, first.hosts.as_slice()), (ms(0), ["10.0.0.1".to_owned()].as_slice()));
        // Not answered. The store changes meanwhile, unannounced.
        h.register("10.0.0.2");
        let retry = h.next_push(QUIET).await.expect("a retry");
        assert_eq!(retry.at, TIMINGS.timeout + TIMINGS.retry_delay, "after the timeout and the retry delay");
        assert_eq!(retry.hosts, ["10.0.0.1", "10.0.0.2"], "a retry carries the current view");
        assert_ne!(retry.request_id, first.request_id);
        // The first push's answer comes too late to count.
        let late = payload::ok_response("NotifySubscriberResponse", Some(&first.request_id), Default::default());
        assert!(!h.conn.complete(&first.request_id, late));
        h.ack(&retry);
        assert!(h.next_push(QUIET).await.is_none(), "acknowledged: no more retries");
    }

    #[tokio::test(start_paused = true)]
    async fn a_change_during_a_push_is_pushed_right_after_it_never_beside_it() {
        let mut h = Harness::new();
        h.change("10.0.0.1");
        let first = h.next_push(QUIET).await.expect("a push");
        h.change("10.0.0.2");
        // Pushes to one subscriber are serialised: nothing more while the
        // first one waits for its answer (it times out at the timeout).
        assert!(h.next_push(TIMINGS.timeout - ms(100)).await.is_none(), "no second push beside the first");
        let answered_at = h.started.elapsed();
        h.ack(&first);
        let second = h.next_push(QUIET).await.expect("the change pushed after the first");
        assert_eq!(second.at, answered_at, "at once: the first push went out more than a delay ago");
        assert_eq!(second.hosts, ["10.0.0.1", "10.0.0.2"]);
        h.ack(&second);
        assert!(h.next_push(QUIET).await.is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn retries_end_when_the_subscriber_unsubscribes_or_its_connection_closes() {
        let mut h = Harness::new();
        h.change("10.0.0.1");
        h.next_push(QUIET).await.expect("a push");
        h.subscribers.remove("c1", &h.key);
        assert!(h.next_push(QUIET).await.is_none(), "no retry to a subscription that ended");

        // The push task is gone: subscribing again and a change push anew.
        h.subscribers.add("c1", &h.key, Vec::new());
        let changed_at = h.started.elapsed();
        h.change("10.0.0.2");
        let again = h.next_push(QUIET).await.expect("a push to the new subscription");
        assert_eq!(again.at, changed_at);
        h.conn.close();
        assert!(h.next_push(QUIET).await.is_none(), "no retry to a closed connection");
    }

    #[tokio::test(start_paused = true)]
    async fn the_service_pushes_new_subscriptions_and_store_changes() {
        let mut h = Harness::new();
        let run = tokio::spawn(h.push.clone().run());
        // The subscription made in `Harness::new` is pushed the current view.
        let fresh = h.next_push(QUIET).await.expect("the view of the new subscription");
        assert_eq!((fresh.at, fresh.hosts.len()), (ms(0), 0));
        h.ack(&fresh);
        let registered_at = h.started.elapsed();
        h.register("10.0.0.1");
        let changed = h.next_push(QUIET).await.expect("the change");
        assert_eq!((changed.at, changed.hosts.as_slice()), (registered_at, ["10.0.0.1".to_owned()].as_slice()));
        h.ack(&changed);
        run.abort();
    }
}
