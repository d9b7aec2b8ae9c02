//! The naming store: every service, its settings and its instances.
//!
//! One lock guards the whole store. Reads (queries, pushes) take it shared
//! and writes take it exclusively for a few map operations, which keeps the
//! code simple and is far from being the bottleneck at the sizes a registry
//! holds (a million instances is a few hundred MB of maps, not of contention).
//!
//! Every write that changes what a service's consumers see sends the
//! service's key on [`NamingStore::subscribe_changes`], which drives pushes.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::{Hash, Hasher};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use parking_lot::RwLock;
use tokio::sync::broadcast;

use super::client::{distro_tag, next_revision, Client, ClientKind, Published};
use super::model::{BeatTimeouts, Instance, InstanceKey, ServiceInfo, ServiceKey, ServiceMeta, CACHE_MILLIS};
use crate::error::{Error, Result};

mod catalog;
mod index;
mod replica;
pub use catalog::{HeldInstance, Holder, ServiceSummary};
pub use index::{AddressFilter, PublisherRef};
pub use replica::{Applied, ClientCopy, VerifyOutcome};

/// Capacity of the change channel; a lagging listener resynchronises fully.
const CHANGE_CHANNEL: usize = 4096;
/// Capacity of the local client-change channel (Distro's input); a lagging
/// listener resynchronises every local client.
const LOCAL_CHANGE_CHANNEL: usize = 16384;

/// A service as stored: its settings, the clients publishing into it and its
/// persistent instances.
#[derive(Debug, Default)]
struct ServiceEntry {
    meta: ServiceMeta,
    /// Ids of clients with at least one instance in this service.
    publishers: BTreeSet<String>,
    /// Persistent instances (`ephemeral=false`).
    persistent: BTreeMap<InstanceKey, Instance>,
}

impl ServiceEntry {
    /// An implicit service with nothing in it is forgotten.
    fn is_disposable(&self) -> bool {
        !self.meta.explicit && self.publishers.is_empty() && self.persistent.is_empty()
    }
}

/// What is left of a removed client: the revision of its removal, so that
/// an older copy arriving later (a partition healing, a late send) cannot
/// bring it back. Kept for the Distro copy expiry.
#[derive(Debug, Clone, Copy)]
struct Tombstone {
    revision: u64,
    at: Instant,
}

#[derive(Debug, Default)]
struct Inner {
    clients: HashMap<String, Client>,
    services: BTreeMap<ServiceKey, ServiceEntry>,
    tombstones: HashMap<String, Tombstone>,
}

impl Inner {
    /// The client `id`, created if absent; a client created again after its
    /// removal continues from the removal's revision.
    fn client_entry(&mut self, id: &str, kind: ClientKind) -> &mut Client {
        let tombstones = &mut self.tombstones;
        self.clients.entry(id.to_owned()).or_insert_with(|| {
            let mut client = Client::new(id, kind);
            client.revision = tombstones.remove(id).map_or(0, |t| t.revision);
            client
        })
    }

    /// Records that a client was removed at `revision`.
    fn bury(&mut self, id: &str, revision: u64) {
        let at = Instant::now();
        let held = self.tombstones.entry(id.to_owned()).or_insert(Tombstone { revision, at });
        if held.revision <= revision {
            *held = Tombstone { revision, at };
        }
    }

    /// The revision of a client's removal, if it was removed.
    fn removed_at(&self, id: &str) -> Option<u64> {
        self.tombstones.get(id).map(|t| t.revision)
    }

    fn entry(&mut self, key: &ServiceKey) -> &mut ServiceEntry {
        self.services.entry(key.clone()).or_default()
    }

    fn forget_if_empty(&mut self, key: &ServiceKey) {
        if self.services.get(key).is_some_and(ServiceEntry::is_disposable) {
            self.services.remove(key);
        }
    }

    /// Sets a service's explicit settings and persistent instances; returns
    /// whether anything changed.
    fn set_persistent(&mut self, key: &ServiceKey, meta: Option<ServiceMeta>, instances: Vec<Instance>) -> bool {
        let meta = meta.map(|m| ServiceMeta { explicit: true, ..m }).unwrap_or_default();
        let persistent: BTreeMap<InstanceKey, Instance> =
            instances.into_iter().map(|i| (i.key(), Instance { ephemeral: false, ..i })).collect();
        let entry = self.entry(key);
        let changed = entry.meta != meta || entry.persistent != persistent;
        entry.meta = meta;
        entry.persistent = persistent;
        self.forget_if_empty(key);
        changed
    }

    /// Every instance of a service: ephemeral ones from publishers, then persistent.
    fn instances<'a>(&'a self, key: &ServiceKey, entry: &'a ServiceEntry) -> Vec<&'a Instance> {
        let mut out: Vec<&Instance> = entry
            .publishers
            .iter()
            .filter_map(|id| self.clients.get(id))
            .filter_map(|c| c.published.get(key))
            .flat_map(|m| m.values().map(|p| &p.instance))
            .chain(entry.persistent.values())
            .collect();
        out.sort_by(|a, b| (&a.cluster, &a.ip, a.port).cmp(&(&b.cluster, &b.ip, b.port)));
        // Two clients can publish the very same instance for a while: an SDK
        // that reconnected to another member registers again under its new
        // connection before the old connection's copy is gone. A view shows
        // such an instance once, as Nacos does (its views are sets of
        // instances); instances that differ in anything stay apart.
        let mut unique: Vec<&Instance> = Vec::with_capacity(out.len());
        for instance in out {
            let same_address =
                |u: &&&Instance| (&u.cluster, &u.ip, u.port) == (&instance.cluster, &instance.ip, instance.port);
            if !unique.iter().rev().take_while(same_address).any(|u| *u == instance) {
                unique.push(instance);
            }
        }
        unique
    }
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

/// What `GET /nacos/v1/ns/service` shows.
#[derive(Debug, Clone)]
pub struct ServiceDetail {
    /// The service.
    pub key: ServiceKey,
    /// Its settings.
    pub meta: ServiceMeta,
    /// Names of the clusters its instances are in.
    pub clusters: Vec<String>,
}

/// How an instance is selected for a query.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// Clusters to include; empty means all.
    pub clusters: Vec<String>,
    /// Return only healthy instances (unless the protect threshold is reached).
    pub healthy_only: bool,
    /// Name the service `group@@name` (HTTP v1) instead of bare (gRPC).
    pub grouped_name: bool,
}

/// The outcome of a beat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BeatOutcome {
    /// The instance exists and was renewed; the client should beat at this interval (ms).
    Renewed {
        /// Interval the client should use.
        interval_ms: u64,
    },
    /// No such instance: the client should register again (Nacos code 20404).
    NotFound,
}

/// The registry's data.
#[derive(Debug)]
pub struct NamingStore {
    inner: RwLock<Inner>,
    changes: broadcast::Sender<ServiceKey>,
    local_changes: broadcast::Sender<String>,
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

    fn notify(&self, key: &ServiceKey) {
        // No receiver is fine: nobody subscribes to anything yet.
        let _ = self.changes.send(key.clone());
    }

    /// Receives the id of every client changed or removed *on this node*
    /// (registrations, deregistrations, beats that change health, expiry,
    /// closed connections); Distro sends these to the other members. Data
    /// applied from peers is not announced here.
    pub fn subscribe_local_changes(&self) -> broadcast::Receiver<String> {
        self.local_changes.subscribe()
    }

    fn changed_locally(&self, client_id: &str) {
        // No receiver: standalone, or Distro not started.
        let _ = self.local_changes.send(client_id.to_owned());
    }

    /// Makes sure a client exists (a connection after its setup, before it
    /// registers anything).
    pub fn ensure_client(&self, id: &str, kind: ClientKind) {
        let mut inner = self.inner.write();
        inner.client_entry(id, kind);
    }

    /// Registers an ephemeral instance for a client.
    ///
    /// A connection-based client publishes one instance per service, as in
    /// Nacos: registering again replaces it. An ip:port client may publish
    /// several (one per cluster).
    pub fn register_ephemeral(&self, client_id: &str, kind: ClientKind, key: &ServiceKey, instance: Instance) {
        let now = Instant::now();
        {
            let mut inner = self.inner.write();
            let client = inner.client_entry(client_id, kind);
            let set = client.published.entry(key.clone()).or_default();
            if kind == ClientKind::Connection {
                set.clear();
            }
            set.insert(instance.key(), Published { instance, last_beat: now });
            client.touch_local();
            inner.entry(key).publishers.insert(client_id.to_owned());
        }
        self.notify(key);
        self.changed_locally(client_id);
    }

    /// Replaces everything a client publishes in one service with `instances`.
    pub fn batch_register(&self, client_id: &str, kind: ClientKind, key: &ServiceKey, instances: Vec<Instance>) {
        let now = Instant::now();
        {
            let mut inner = self.inner.write();
            let client = inner.client_entry(client_id, kind);
            let set: BTreeMap<InstanceKey, Published> =
                instances.into_iter().map(|i| (i.key(), Published { instance: i, last_beat: now })).collect();
            let empty = set.is_empty();
            if empty {
                client.published.remove(key);
            } else {
                client.published.insert(key.clone(), set);
            }
            client.touch_local();
            let entry = inner.entry(key);
            if empty {
                entry.publishers.remove(client_id);
            } else {
                entry.publishers.insert(client_id.to_owned());
            }
            inner.forget_if_empty(key);
        }
        self.notify(key);
        self.changed_locally(client_id);
    }

    /// Removes a client's instance from a service. Returns whether anything
    /// was removed; removing nothing is not an error (as in Nacos).
    pub fn deregister_ephemeral(&self, client_id: &str, key: &ServiceKey, instance: &InstanceKey) -> bool {
        let removed = {
            let mut inner = self.inner.write();
            let Some(client) = inner.clients.get_mut(client_id) else { return false };
            let Some(set) = client.published.get_mut(key) else { return false };
            if set.remove(instance).is_none() {
                return false;
            }
            let now_empty = set.is_empty();
            if now_empty {
                client.published.remove(key);
            }
            client.touch_local();
            // An ip:port client exists only through its instances.
            let client_gone = client.kind == ClientKind::IpPort && client.published.is_empty();
            let revision = client.revision;
            if client_gone {
                inner.clients.remove(client_id);
                inner.bury(client_id, next_revision(revision));
            }
            if now_empty {
                if let Some(entry) = inner.services.get_mut(key) {
                    entry.publishers.remove(client_id);
                }
                inner.forget_if_empty(key);
            }
            true
        };
        if removed {
            self.notify(key);
            self.changed_locally(client_id);
        }
        removed
    }

    /// Removes a client and all its instances (connection closed, client expired).
    pub fn remove_client(&self, client_id: &str) -> bool {
        let touched: Vec<ServiceKey> = {
            let mut inner = self.inner.write();
            let Some(client) = inner.clients.remove(client_id) else { return false };
            inner.bury(client_id, next_revision(client.revision));
            let keys: Vec<ServiceKey> = client.published.into_keys().collect();
            for key in &keys {
                if let Some(entry) = inner.services.get_mut(key) {
                    entry.publishers.remove(client_id);
                }
                inner.forget_if_empty(key);
            }
            keys
        };
        for key in &touched {
            self.notify(key);
        }
        self.changed_locally(client_id);
        true
    }

    /// Whether a client exists.
    pub fn has_client(&self, client_id: &str) -> bool {
        self.inner.read().clients.contains_key(client_id)
    }

    /// Adds or replaces a persistent instance.
    pub fn register_persistent(&self, key: &ServiceKey, instance: Instance) {
        {
            let mut inner = self.inner.write();
            inner.entry(key).persistent.insert(instance.key(), instance);
        }
        self.notify(key);
    }

    /// Removes a persistent instance; returns whether it existed.
    pub fn deregister_persistent(&self, key: &ServiceKey, instance: &InstanceKey) -> bool {
        let removed = {
            let mut inner = self.inner.write();
            let removed = inner.services.get_mut(key).and_then(|e| e.persistent.remove(instance)).is_some();
            inner.forget_if_empty(key);
            removed
        };
        if removed {
            self.notify(key);
        }
        removed
    }

    /// Makes one service's Raft-owned part what Raft holds: its explicit
    /// settings (`None`: none, the service is implicit) and its persistent
    /// instances. Ephemeral publishers are left alone (Distro owns them).
    pub fn set_persistent_service(&self, key: &ServiceKey, meta: Option<ServiceMeta>, instances: Vec<Instance>) {
        let changed = self.inner.write().set_persistent(key, meta, instances);
        if changed {
            self.notify(key);
        }
    }

    /// Replaces the Raft-owned part of the whole store (a Raft snapshot was
    /// installed, or the state was loaded at start): every service not in
    /// `services` loses its explicit settings and persistent instances.
    pub fn replace_persistent(&self, services: Vec<(ServiceKey, Option<ServiceMeta>, Vec<Instance>)>) {
        let mut touched = Vec::new();
        {
            let mut inner = self.inner.write();
            let keep: BTreeSet<&ServiceKey> = services.iter().map(|(k, _, _)| k).collect();
            let stale: Vec<ServiceKey> = inner
                .services
                .iter()
                .filter(|(k, e)| !keep.contains(k) && (e.meta.explicit || !e.persistent.is_empty()))
                .map(|(k, _)| k.clone())
                .collect();
            for key in stale {
                if inner.set_persistent(&key, None, Vec::new()) {
                    touched.push(key);
                }
            }
            for (key, meta, instances) in services {
                if inner.set_persistent(&key, meta, instances) {
                    touched.push(key);
                }
            }
        }
        for key in &touched {
            self.notify(key);
        }
    }

    /// Whether a service has ephemeral instances (checked before a service
    /// deletion is proposed to Raft, which cannot see them).
    pub fn has_ephemeral_instances(&self, key: &ServiceKey) -> bool {
        self.inner.read().services.get(key).is_some_and(|e| !e.publishers.is_empty())
    }

    /// Replaces the mutable fields (weight, enabled, healthy, metadata) of an
    /// existing ephemeral instance. Persistent instances change only through
    /// Raft, never here.
    pub fn update_instance(&self, key: &ServiceKey, update: &Instance) -> Result<()> {
        let ikey = update.key();
        let mut changed_clients = Vec::new();
        {
            let mut inner = self.inner.write();
            let Inner { clients, services, .. } = &mut *inner;
            let entry = services
                .get_mut(key)
                .ok_or_else(|| Error::NotFound(format!("service not found: {}", key.grouped_name())))?;
            let mut found = false;
            for id in &entry.publishers {
                if let Some(client) = clients.get_mut(id) {
                    if let Some(p) = client.published.get_mut(key).and_then(|m| m.get_mut(&ikey)) {
                        p.instance = Instance { ephemeral: true, ..update.clone() };
                        client.touch_local();
                        changed_clients.push(id.clone());
                        found = true;
                    }
                }
            }
            if !found {
                return Err(Error::NotFound(format!("instance not found: {ikey} in {}", key.grouped_name())));
            }
        }
        self.notify(key);
        for id in &changed_clients {
            self.changed_locally(id);
        }
        Ok(())
    }

    /// Renews an ip:port client's instance. An unhealthy instance that beats
    /// again is healthy again at once.
    pub fn beat(&self, client_id: &str, key: &ServiceKey, instance: &InstanceKey, now: Instant) -> BeatOutcome {
        let (outcome, changed) = {
            let mut inner = self.inner.write();
            let Some(p) = inner
                .clients
                .get_mut(client_id)
                .and_then(|c| c.published.get_mut(key))
                .and_then(|m| m.get_mut(instance))
            else {
                return BeatOutcome::NotFound;
            };
            p.last_beat = now;
            let changed = !p.instance.healthy;
            p.instance.healthy = true;
            let interval_ms = p.instance.beat_interval_ms();
            if changed {
                if let Some(c) = inner.clients.get_mut(client_id) {
                    c.touch_local();
                }
            }
            (BeatOutcome::Renewed { interval_ms }, changed)
        };
        if changed {
            self.notify(key);
            self.changed_locally(client_id);
        }
        outcome
    }

    /// Expires ip:port clients' instances that stopped beating: unhealthy after
    /// the beat timeout, removed after the delete timeout. Only clients for
    /// which `responsible(tag)` holds are checked (Distro: the responsible
    /// member judges beats; the others hold copies). Returns the services
    /// that changed.
    ///
    /// The scan runs under the shared lock; the exclusive lock is taken only
    /// when some client actually has to change.
    pub fn expire_beats(&self, now: Instant, responsible: impl Fn(&str) -> bool) -> Vec<ServiceKey> {
        let timeouts = self.timeouts;
        let silent_ms = |p: &Published| u64::try_from(now.saturating_duration_since(p.last_beat).as_millis());
        let verdict = |p: &Published| -> Option<bool> {
            // Some(true): delete; Some(false): turn unhealthy; None: keep.
            let silent = silent_ms(p).unwrap_or(u64::MAX);
            if silent > p.instance.delete_timeout_ms(timeouts.delete_ms) {
                Some(true)
            } else if p.instance.healthy && silent > p.instance.beat_timeout_ms(timeouts.unhealthy_ms) {
                Some(false)
            } else {
                None
            }
        };
        let due: Vec<String> = {
            let inner = self.inner.read();
            inner
                .clients
                .values()
                .filter(|c| c.kind == ClientKind::IpPort && responsible(distro_tag(&c.id)))
                .filter(|c| c.published.values().flat_map(BTreeMap::values).any(|p| verdict(p).is_some()))
                .map(|c| c.id.clone())
                .collect()
        };
        if due.is_empty() {
            return Vec::new();
        }
        let mut changed: BTreeSet<ServiceKey> = BTreeSet::new();
        let mut changed_clients = Vec::new();
        {
            let mut inner = self.inner.write();
            let mut emptied: Vec<(String, ServiceKey)> = Vec::new();
            for id in &due {
                let Some(client) = inner.clients.get_mut(id) else { continue };
                let mut client_changed = false;
                for (service, set) in client.published.iter_mut() {
                    set.retain(|_, p| match verdict(p) {
                        Some(true) => {
                            changed.insert(service.clone());
                            client_changed = true;
                            false
                        }
                        Some(false) => {
                            p.instance.healthy = false;
                            changed.insert(service.clone());
                            client_changed = true;
                            true
                        }
                        None => true,
                    });
                    if set.is_empty() {
                        emptied.push((id.clone(), service.clone()));
                    }
                }
                client.published.retain(|_, set| !set.is_empty());
                if client_changed {
                    client.touch_local();
                    changed_clients.push(id.clone());
                }
                if client.published.is_empty() {
                    let revision = client.revision;
                    inner.clients.remove(id);
                    inner.bury(id, next_revision(revision));
                }
            }
            for (client_id, service) in emptied {
                if let Some(entry) = inner.services.get_mut(&service) {
                    entry.publishers.remove(&client_id);
                }
                inner.forget_if_empty(&service);
            }
        }
        for key in &changed {
            self.notify(key);
        }
        for id in &changed_clients {
            self.changed_locally(id);
        }
        changed.into_iter().collect()
    }

    /// Builds the consumer view of a service.
    ///
    /// Disabled instances are never returned. When the healthy share of the
    /// selected instances is at or below the protect threshold, every instance
    /// is returned as healthy (Nacos's protection against starving consumers).
    pub fn query(&self, key: &ServiceKey, selection: &Selection) -> ServiceInfo {
        let inner = self.inner.read();
        let (protect_threshold, instances): (f32, Vec<&Instance>) = match inner.services.get(key) {
            Some(entry) => (entry.meta.protect_threshold, inner.instances(key, entry)),
            None => (0.0, Vec::new()),
        };
        let selected: Vec<&Instance> = instances
            .into_iter()
            .filter(|i| i.enabled)
            .filter(|i| selection.clusters.is_empty() || selection.clusters.iter().any(|c| c == &i.cluster))
            .collect();
        let healthy = selected.iter().filter(|i| i.healthy).count();
        let protect = !selected.is_empty()
            && protect_threshold > 0.0
            && (healthy as f32 / selected.len() as f32) <= protect_threshold;
        // The checksum covers what a consumer sees of each host, hashed
        // directly rather than through its JSON.
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        let hosts: Vec<_> = selected
            .into_iter()
            .filter(|i| protect || !selection.healthy_only || i.healthy)
            .map(|i| {
                let mut wire = i.to_wire(key, &self.timeouts);
                if protect {
                    wire.healthy = true;
                }
                (&i.ip, i.port, &i.cluster, i.weight.to_bits(), wire.healthy, &i.metadata).hash(&mut hasher);
                wire
            })
            .collect();
        drop(inner);
        ServiceInfo {
            name: if selection.grouped_name { key.grouped_name() } else { key.name.clone() },
            group_name: key.group.clone(),
            clusters: selection.clusters.join(","),
            cache_millis: CACHE_MILLIS,
            hosts,
            last_ref_time: now_millis(),
            checksum: format!("{:016x}", hasher.finish()),
            all_ips: false,
            reach_protection_threshold: protect,
            valid: true,
        }
    }

    /// One instance of a service, if it exists.
    pub fn instance(&self, key: &ServiceKey, instance: &InstanceKey) -> Option<Instance> {
        let inner = self.inner.read();
        let entry = inner.services.get(key)?;
        inner.instances(key, entry).into_iter().find(|i| &i.key() == instance).cloned()
    }

    /// Creates a service explicitly. Fails if it exists already.
    pub fn create_service(&self, key: &ServiceKey, meta: ServiceMeta) -> Result<()> {
        {
            let mut inner = self.inner.write();
            if let Some(entry) = inner.services.get_mut(key) {
                if entry.meta.explicit {
                    return Err(Error::Conflict(format!(
                        "specified service already exists, serviceName : {}",
                        key.grouped_name()
                    )));
                }
                // Created implicitly by a registration: adopt the settings.
                entry.meta = ServiceMeta { explicit: true, ..meta };
            } else {
                inner.entry(key).meta = ServiceMeta { explicit: true, ..meta };
            }
        }
        self.notify(key);
        Ok(())
    }

    /// Replaces a service's settings. Fails if it does not exist.
    pub fn update_service(&self, key: &ServiceKey, meta: ServiceMeta) -> Result<()> {
        {
            let mut inner = self.inner.write();
            let entry = inner
                .services
                .get_mut(key)
                .ok_or_else(|| Error::NotFound(format!("service {} not found!", key.grouped_name())))?;
            entry.meta = ServiceMeta { explicit: true, ..meta };
        }
        self.notify(key);
        Ok(())
    }

    /// Deletes a service. Fails if it does not exist or still has instances.
    pub fn delete_service(&self, key: &ServiceKey) -> Result<()> {
        {
            let mut inner = self.inner.write();
            let entry = inner
                .services
                .get(key)
                .ok_or_else(|| Error::NotFound(format!("service {} not found!", key.grouped_name())))?;
            if !entry.publishers.is_empty() || !entry.persistent.is_empty() {
                return Err(Error::Conflict(format!(
                    "Service {} is not empty, can't be delete. Please unregister instance first",
                    key.grouped_name()
                )));
            }
            inner.services.remove(key);
        }
        self.notify(key);
        Ok(())
    }

    /// A service's settings and clusters.
    pub fn service(&self, key: &ServiceKey) -> Option<ServiceDetail> {
        let inner = self.inner.read();
        let entry = inner.services.get(key)?;
        let clusters: BTreeSet<String> = inner.instances(key, entry).iter().map(|i| i.cluster.clone()).collect();
        Some(ServiceDetail { key: key.clone(), meta: entry.meta.clone(), clusters: clusters.into_iter().collect() })
    }

    /// Services of a namespace and group, sorted by name, one page of them
    /// (`page_no` from 1), with the total count.
    pub fn list_services(
        &self,
        namespace: &str,
        group: &str,
        page_no: usize,
        page_size: usize,
    ) -> (usize, Vec<String>) {
        let inner = self.inner.read();
        let names: Vec<&str> = inner
            .services
            .keys()
            .filter(|k| k.namespace == namespace && k.group == group)
            .map(|k| k.name.as_str())
            .collect();
        let start = page_no.saturating_sub(1).saturating_mul(page_size);
        let page = names.iter().skip(start).take(page_size).map(|s| (*s).to_owned()).collect();
        (names.len(), page)
    }

    /// Sizes for metrics and status.
    pub fn counts(&self) -> StoreCounts {
        let inner = self.inner.read();
        let ephemeral: usize = inner.clients.values().map(Client::instance_count).sum();
        let persistent: usize = inner.services.values().map(|e| e.persistent.len()).sum();
        StoreCounts { services: inner.services.len(), instances: ephemeral + persistent, clients: inner.clients.len() }
    }

    /// A copy of one client (for inspection and, later, replication).
    pub fn client(&self, client_id: &str) -> Option<Client> {
        self.inner.read().clients.get(client_id).cloned()
    }

    /// Which client publishes `instance` in `key`, if an ephemeral one does.
    pub fn owner_of(&self, key: &ServiceKey, instance: &InstanceKey) -> Option<(String, ClientKind)> {
        let inner = self.inner.read();
        let entry = inner.services.get(key)?;
        entry.publishers.iter().find_map(|id| {
            let c = inner.clients.get(id)?;
            c.published.get(key)?.get(instance).map(|_| (c.id.clone(), c.kind))
        })
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_millis() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    pub(super) fn inst(ip: &str, port: u16) -> Instance {
        Instance::new(ip, port)
    }

    pub(super) fn svc(name: &str) -> ServiceKey {
        ServiceKey::new("public", "DEFAULT_GROUP", name)
    }

    #[test]
    fn connection_client_replaces_its_instance_per_service() {
        let store = NamingStore::new(BeatTimeouts::default());
        store.register_ephemeral("c1", ClientKind::Connection, &svc("a"), inst("10.0.0.1", 80));
        store.register_ephemeral("c1", ClientKind::Connection, &svc("a"), inst("10.0.0.2", 80));
        let info = store.query(&svc("a"), &Selection::default());
        assert_eq!(info.hosts.len(), 1);
        assert_eq!(info.hosts[0].ip, "10.0.0.2");
        let first = store.client("c1").map(|c| c.revision).expect("client");
        store.register_ephemeral("c1", ClientKind::Connection, &svc("a"), inst("10.0.0.3", 80));
        let second = store.client("c1").map(|c| c.revision).expect("client");
        assert!(second > first, "every change raises the revision ({first} → {second})");
    }

    #[test]
    fn an_instance_two_clients_publish_is_shown_once() {
        let store = NamingStore::new(BeatTimeouts::default());
        store.register_ephemeral("old-connection", ClientKind::Connection, &svc("a"), inst("10.0.0.1", 80));
        store.register_ephemeral("new-connection", ClientKind::Connection, &svc("a"), inst("10.0.0.1", 80));
        let info = store.query(&svc("a"), &Selection::default());
        assert_eq!(info.hosts.len(), 1, "the same instance from two clients is one host");

        let mut tagged = inst("10.0.0.1", 80);
        tagged.metadata.insert("version".into(), "2".into());
        store.register_ephemeral("third-connection", ClientKind::Connection, &svc("a"), tagged);
        let info = store.query(&svc("a"), &Selection::default());
        assert_eq!(info.hosts.len(), 2, "an instance that differs in its metadata stays apart");

        store.remove_client("old-connection");
        store.remove_client("third-connection");
        assert_eq!(store.query(&svc("a"), &Selection::default()).hosts.len(), 1);
    }

    #[test]
    fn removing_a_client_removes_its_instances_and_implicit_services() {
        let store = NamingStore::new(BeatTimeouts::default());
        store.register_ephemeral("c1", ClientKind::Connection, &svc("a"), inst("10.0.0.1", 80));
        store.register_ephemeral("c2", ClientKind::Connection, &svc("a"), inst("10.0.0.2", 80));
        store.register_ephemeral("c1", ClientKind::Connection, &svc("b"), inst("10.0.0.1", 81));
        assert!(store.remove_client("c1"));
        assert_eq!(store.query(&svc("a"), &Selection::default()).hosts.len(), 1);
        assert!(store.service(&svc("b")).is_none(), "implicit empty service is forgotten");
        assert_eq!(store.counts(), StoreCounts { services: 1, instances: 1, clients: 1 });
    }

    #[test]
    fn beats_expire_to_unhealthy_then_removed() {
        let store = NamingStore::new(BeatTimeouts { unhealthy_ms: 100, delete_ms: 200 });
        let t0 = Instant::now();
        let i = inst("10.0.0.1", 80);
        store.register_ephemeral("10.0.0.1:80#true", ClientKind::IpPort, &svc("a"), i.clone());
        assert!(store.expire_beats(t0 + Duration::from_millis(50), |_| true).is_empty());
        assert_eq!(store.expire_beats(t0 + Duration::from_millis(150), |_| true), vec![svc("a")]);
        assert!(!store.query(&svc("a"), &Selection::default()).hosts[0].healthy);
        let healthy_only = Selection { healthy_only: true, ..Selection::default() };
        assert!(store.query(&svc("a"), &healthy_only).hosts.is_empty());
        // A beat revives it.
        let outcome = store.beat("10.0.0.1:80#true", &svc("a"), &i.key(), t0 + Duration::from_millis(160));
        assert_eq!(outcome, BeatOutcome::Renewed { interval_ms: 5000 });
        assert!(store.query(&svc("a"), &Selection::default()).hosts[0].healthy);
        // Silence past the delete timeout removes it and its client.
        store.expire_beats(t0 + Duration::from_millis(400), |_| true);
        assert!(store.query(&svc("a"), &Selection::default()).hosts.is_empty());
        assert!(!store.has_client("10.0.0.1:80#true"));
        assert_eq!(
            store.beat("10.0.0.1:80#true", &svc("a"), &i.key(), t0 + Duration::from_millis(401)),
            BeatOutcome::NotFound
        );
    }

    #[test]
    fn deregistering_the_last_instance_drops_an_ip_port_client() {
        let store = NamingStore::new(BeatTimeouts::default());
        let i = inst("10.0.0.1", 80);
        store.register_ephemeral("10.0.0.1:80#true", ClientKind::IpPort, &svc("a"), i.clone());
        store.register_ephemeral("conn", ClientKind::Connection, &svc("b"), inst("10.0.0.2", 80));
        assert!(store.deregister_ephemeral("10.0.0.1:80#true", &svc("a"), &i.key()));
        assert!(!store.has_client("10.0.0.1:80#true"));
        assert!(store.deregister_ephemeral("conn", &svc("b"), &inst("10.0.0.2", 80).key()));
        assert!(store.has_client("conn"), "a connection stays a client while connected");
    }

    #[test]
    fn protect_threshold_returns_all_as_healthy() {
        let store = NamingStore::new(BeatTimeouts::default());
        let meta = ServiceMeta { protect_threshold: 0.6, ..ServiceMeta::default() };
        store.create_service(&svc("a"), meta).expect("create");
        store.register_persistent(&svc("a"), Instance { healthy: false, ephemeral: false, ..inst("10.0.0.1", 80) });
        store.register_persistent(&svc("a"), Instance { ephemeral: false, ..inst("10.0.0.2", 80) });
        let info = store.query(&svc("a"), &Selection { healthy_only: true, ..Selection::default() });
        assert!(info.reach_protection_threshold);
        assert_eq!(info.hosts.len(), 2);
        assert!(info.hosts.iter().all(|h| h.healthy));
    }

    #[test]
    fn disabled_and_other_clusters_are_filtered() {
        let store = NamingStore::new(BeatTimeouts::default());
        store.register_persistent(&svc("a"), Instance { enabled: false, ..inst("10.0.0.1", 80) });
        store.register_persistent(&svc("a"), Instance { cluster: "east".into(), ..inst("10.0.0.2", 80) });
        store.register_persistent(&svc("a"), inst("10.0.0.3", 80));
        let all = store.query(&svc("a"), &Selection::default());
        assert_eq!(all.hosts.len(), 2);
        let east = store.query(&svc("a"), &Selection { clusters: vec!["east".into()], ..Selection::default() });
        assert_eq!(east.hosts.len(), 1);
        assert_eq!(east.clusters, "east");
    }

    #[test]
    fn an_ephemeral_update_never_touches_a_persistent_twin() {
        let store = NamingStore::new(BeatTimeouts::default());
        store.register_persistent(&svc("a"), Instance { ephemeral: false, ..inst("10.0.0.1", 80) });
        store.register_ephemeral("c", ClientKind::Connection, &svc("a"), inst("10.0.0.1", 80));
        store.update_instance(&svc("a"), &Instance { weight: 7.0, ..inst("10.0.0.1", 80) }).expect("update");
        let weights: Vec<f64> = store.query(&svc("a"), &Selection::default()).hosts.iter().map(|h| h.weight).collect();
        assert_eq!(weights.iter().filter(|w| **w == 7.0).count(), 1, "only the ephemeral one: {weights:?}");
        // With no ephemeral instance of that key, nothing is updated here.
        store.remove_client("c");
        assert!(store.update_instance(&svc("a"), &inst("10.0.0.1", 80)).is_err());
    }

    #[test]
    fn service_lifecycle() {
        let store = NamingStore::new(BeatTimeouts::default());
        assert!(store.update_service(&svc("a"), ServiceMeta::default()).is_err());
        store.create_service(&svc("a"), ServiceMeta::default()).expect("create");
        assert!(matches!(store.create_service(&svc("a"), ServiceMeta::default()), Err(Error::Conflict(_))));
        store.register_ephemeral("c", ClientKind::Connection, &svc("a"), inst("10.0.0.1", 80));
        assert!(matches!(store.delete_service(&svc("a")), Err(Error::Conflict(_))));
        store.remove_client("c");
        assert!(store.service(&svc("a")).is_some(), "explicit service survives its instances");
        store.delete_service(&svc("a")).expect("delete");
        assert!(store.service(&svc("a")).is_none());
    }

    #[test]
    fn list_services_pages() {
        let store = NamingStore::new(BeatTimeouts::default());
        for n in ["c", "a", "b"] {
            store.create_service(&svc(n), ServiceMeta::default()).expect("create");
        }
        assert_eq!(store.list_services("public", "DEFAULT_GROUP", 1, 2), (3, vec!["a".into(), "b".into()]));
        assert_eq!(store.list_services("public", "DEFAULT_GROUP", 2, 2), (3, vec!["c".into()]));
        assert_eq!(store.list_services("dev", "DEFAULT_GROUP", 1, 2), (0, vec![]));
    }

    #[tokio::test]
    async fn changes_are_announced() {
        let store = NamingStore::new(BeatTimeouts::default());
        let mut rx = store.subscribe_changes();
        store.register_ephemeral("c", ClientKind::Connection, &svc("a"), inst("10.0.0.1", 80));
        assert_eq!(rx.recv().await.expect("change"), svc("a"));
    }
}
