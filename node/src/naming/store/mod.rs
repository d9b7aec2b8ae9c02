//! The naming store: every service, its settings and its instances.
//!
//! One lock guards the whole store. Reads (queries, pushes) take it shared
//! and writes take it exclusively for a few map operations, which keeps the
//! code simple and is far from being the bottleneck at the sizes a registry
//! holds (a million instances is a few hundred MB of maps, not of contention).
//!
//! Every write that changes what a service's consumers see sends the
//! service's key on [`NamingStore::subscribe_changes`], which drives pushes.
//!
//! # Layout
//! Each file adds the methods of one job to [`NamingStore`]:
//! - `entry`: a service as stored, the view of its instances, and the
//!   emptied services kept until the empty-service cleaner removes them;
//! - `tombstone`: what is left of removed clients (their floor and
//!   removal records), so an older copy cannot bring them back;
//! - `ephemeral`: clients' instances (gRPC connections, ip:port clients);
//! - `persistent`: the instances and settings Raft owns;
//! - `beat`: beats of ip:port clients and their expiry;
//! - `query`: the consumer view and the protect threshold;
//! - `overlay`: the instance-metadata overrides Raft holds, laid over
//!   ephemeral instances wherever they are shown;
//! - `service`: services created, updated, deleted and listed;
//! - `catalog`: what is held rather than what consumers see, for the
//!   console: each service's counts, each instance with its holder,
//!   disabled ones included;
//! - `copies` and `verify`: the store as Distro sees it (clients, whole
//!   or in part, copied in and out and merged by the rules of
//!   `naming::replica`; verify rounds and the expiry of copies);
//! - `index`: lookups by address for the client introspection API.

use std::collections::{BTreeMap, HashMap};

use parking_lot::RwLock;
use tokio::sync::broadcast;

use super::client::Client;
use super::model::{BeatTimeouts, InstanceKey, ServiceKey};
use super::overlay::InstanceOverride;
use super::replica::Slot;

mod beat;
mod catalog;
mod copies;
mod entry;
mod ephemeral;
mod index;
mod overlay;
mod persistent;
mod query;
mod service;
mod tombstone;
mod verify;

pub use super::clock::now_millis;
pub use beat::BeatOutcome;
pub use catalog::{HeldInstance, Holder, ServiceSummary};
pub use copies::{Applied, ClientCopy};
pub use index::{AddressFilter, PublisherRef};
pub use query::{EncodedView, Form, Selection};
pub use service::ServiceDetail;
pub use verify::{CopyExpiry, VerifyOutcome, Vouched};

use entry::ServiceEntry;
use tombstone::Tombstone;

/// Capacity of the change channel; a lagging listener resynchronises fully.
const CHANGE_CHANNEL: usize = 4096;
/// Capacity of the local client-change channel (Distro's input); a lagging
/// listener resynchronises every local client.
const LOCAL_CHANGE_CHANNEL: usize = 16384;

/// Everything under the store's one lock.
#[derive(Debug, Default)]
struct Inner {
    /// Every client held, local or copied, by id.
    clients: HashMap<String, Client>,
    /// Every service known, explicit or with instances.
    services: BTreeMap<ServiceKey, ServiceEntry>,
    /// What is left of removed clients, by id.
    tombstones: HashMap<String, Tombstone>,
    /// Overrides of ephemeral instances, as Raft holds them.
    overrides: HashMap<ServiceKey, BTreeMap<InstanceKey, InstanceOverride>>,
    /// Whether implicit services that lose their last instance are kept
    /// until the empty-service cleaner removes them.
    keep_emptied: bool,
}

/// A change made on this node to one client: the slots it touched, or
/// `None` for the whole client (it was removed, or every slot may have
/// changed). Distro sends the current state of exactly these.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalChange {
    /// The client.
    pub client: String,
    /// The slots changed; `None`: the whole client.
    pub slots: Option<Vec<Slot>>,
}

/// Counts shown in metrics and status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreCounts {
    /// Services, explicit or with instances.
    pub services: usize,
    /// Instances, ephemeral and persistent.
    pub instances: usize,
    /// Clients holding ephemeral instances (or none yet).
    pub clients: usize,
}

/// The registry's data.
#[derive(Debug)]
pub struct NamingStore {
    inner: RwLock<Inner>,
    changes: broadcast::Sender<ServiceKey>,
    local_changes: broadcast::Sender<LocalChange>,
    timeouts: BeatTimeouts,
}

impl NamingStore {
    /// An empty store using `timeouts` as the default beat expiry.
    pub fn new(timeouts: BeatTimeouts) -> Self {
        let (changes, _) = broadcast::channel(CHANGE_CHANNEL);
        let (local_changes, _) = broadcast::channel(LOCAL_CHANGE_CHANNEL);
        NamingStore { inner: RwLock::new(Inner::default()), changes, local_changes, timeouts }
    }

    /// Default beat expiry.
    pub fn timeouts(&self) -> BeatTimeouts {
        self.timeouts
    }

    /// Receives the key of every service whose visible state changed.
    pub fn subscribe_changes(&self) -> broadcast::Receiver<ServiceKey> {
        self.changes.subscribe()
    }

    /// Announces that what `key`'s consumers see changed. Every write that
    /// changes it calls this after the change, outside the store's lock:
    /// pushes follow the announcement, and the service's encoded views
    /// (`query.rs`) are forgotten here.
    fn notify(&self, key: &ServiceKey) {
        if let Some(entry) = self.inner.read().services.get(key) {
            entry.answers.clear();
        }
        // No receiver is fine: nobody subscribes to anything yet.
        let _ = self.changes.send(key.clone());
    }

    /// Receives every change made to a client *on this node*
    /// (registrations, deregistrations, beats that change health, expiry,
    /// closed connections), with the slots it touched; Distro sends these
    /// to the other members. Data applied from peers is not announced here.
    pub fn subscribe_local_changes(&self) -> broadcast::Receiver<LocalChange> {
        self.local_changes.subscribe()
    }

    fn changed_locally(&self, client_id: &str, slots: Option<Vec<Slot>>) {
        // No receiver: standalone, or Distro not started.
        let _ = self.local_changes.send(LocalChange { client: client_id.to_owned(), slots });
    }

    /// Whether a client exists.
    pub fn has_client(&self, client_id: &str) -> bool {
        self.inner.read().clients.contains_key(client_id)
    }

    /// A copy of one client (for inspection and, later, replication).
    pub fn client(&self, client_id: &str) -> Option<Client> {
        self.inner.read().clients.get(client_id).cloned()
    }

    /// How many services `client_id` publishes instances in, and whether
    /// `key` is one of them (a cheap check for the per-connection limit).
    pub fn published_services(&self, client_id: &str, key: &ServiceKey) -> (usize, bool) {
        self.inner
            .read()
            .clients
            .get(client_id)
            .map_or((0, false), |c| (c.published.len(), c.published.contains_key(key)))
    }

    /// Sizes for metrics and status.
    pub fn counts(&self) -> StoreCounts {
        let inner = self.inner.read();
        let ephemeral: usize = inner.clients.values().map(Client::instance_count).sum();
        let persistent: usize = inner.services.values().map(|e| e.persistent.len()).sum();
        StoreCounts { services: inner.services.len(), instances: ephemeral + persistent, clients: inner.clients.len() }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    //! Helpers the tests of every part of the store (and of the naming and
    //! Raft modules) share.

    use super::*;
    use crate::naming::model::Instance;
    use crate::naming::ClientKind;

    pub(crate) fn inst(ip: &str, port: u16) -> Instance {
        Instance::new(ip, port)
    }

    pub(crate) fn svc(name: &str) -> ServiceKey {
        ServiceKey::new("public", "DEFAULT_GROUP", name)
    }

    /// `ip:port` of every host the full view of `service` shows.
    pub(super) fn hosts(store: &NamingStore, service: &str) -> Vec<String> {
        store.query(&svc(service), &Selection::default()).hosts.iter().map(|h| format!("{}:{}", h.ip, h.port)).collect()
    }

    #[test]
    fn counts_cover_both_kinds_of_instances_and_every_client() {
        let store = NamingStore::new(BeatTimeouts::default());
        store.register_ephemeral("c1", ClientKind::Connection, &svc("a"), inst("10.0.0.1", 80));
        store.ensure_client("c2", ClientKind::Connection);
        store.register_persistent(&svc("b"), Instance { ephemeral: false, ..inst("10.0.0.2", 80) });
        assert_eq!(store.counts(), StoreCounts { services: 2, instances: 2, clients: 2 });
    }

    #[tokio::test]
    async fn changes_are_announced() {
        let store = NamingStore::new(BeatTimeouts::default());
        let mut rx = store.subscribe_changes();
        store.register_ephemeral("c", ClientKind::Connection, &svc("a"), inst("10.0.0.1", 80));
        assert_eq!(rx.recv().await.expect("change"), svc("a"));
    }
}
