//! Ephemeral instances: what clients publish.
//!
//! As in Nacos 2, every ephemeral instance belongs to a client (see
//! `naming::client`): a gRPC connection, or an ip:port client of the HTTP
//! API. Each change made here raises the client's revision and is
//! announced as a local change, which Distro sends to the other members.

use std::collections::BTreeMap;

use super::NamingStore;
use crate::error::{Error, Result};
use crate::naming::client::{next_revision, ClientKind, Published};
use crate::naming::clock;
use crate::naming::model::{Instance, InstanceKey, ServiceKey};

impl NamingStore {
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
        let now = clock::now();
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
        let now = clock::now();
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
            if empty {
                inner.unpublish(client_id, key);
            } else {
                inner.entry(key).publishers.insert(client_id.to_owned());
            }
        }
        self.notify(key);
        self.changed_locally(client_id);
    }

    /// Removes a client's instance from a service. Returns whether anything
    /// was removed; removing nothing is not an error (as in Nacos).
    pub fn deregister_ephemeral(&self, client_id: &str, key: &ServiceKey, instance: &InstanceKey) -> bool {
        {
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
                inner.unpublish(client_id, key);
            }
        }
        self.notify(key);
        self.changed_locally(client_id);
        true
    }

    /// Removes a client and all its instances (connection closed, client expired).
    ///
    /// A client that never changed (revision 0: a connection that set up
    /// and published nothing) was never announced to the peers, so its
    /// removal leaves no record and is not announced either: connections
    /// opened and closed in a loop, which need no credentials, leave
    /// nothing behind.
    pub fn remove_client(&self, client_id: &str) -> bool {
        let touched: Vec<ServiceKey> = {
            let mut inner = self.inner.write();
            let Some(revision) = inner.clients.get(client_id).map(|c| c.revision) else { return false };
            let keys = inner.drop_client(client_id);
            if revision == 0 {
                return true;
            }
            inner.bury(client_id, next_revision(revision));
            keys
        };
        for key in &touched {
            self.notify(key);
        }
        self.changed_locally(client_id);
        true
    }

    /// Replaces the mutable fields (weight, enabled, healthy, metadata) of an
    /// existing ephemeral instance. Persistent instances change only through
    /// Raft, never here.
    pub fn update_instance(&self, key: &ServiceKey, update: &Instance) -> Result<()> {
        let ikey = update.key();
        let mut changed_clients = Vec::new();
        {
            let mut inner = self.inner.write();
            let super::Inner { clients, services, .. } = &mut *inner;
            let entry = services
                .get_mut(key)
                .ok_or_else(|| Error::NotFound(format!("service not found: {}", key.grouped_name())))?;
            for id in &entry.publishers {
                if let Some(client) = clients.get_mut(id) {
                    if let Some(p) = client.published.get_mut(key).and_then(|m| m.get_mut(&ikey)) {
                        p.instance = Instance { ephemeral: true, ..update.clone() };
                        client.touch_local();
                        changed_clients.push(id.clone());
                    }
                }
            }
            if changed_clients.is_empty() {
                return Err(Error::NotFound(format!("instance not found: {ikey} in {}", key.grouped_name())));
            }
        }
        self.notify(key);
        for id in &changed_clients {
            self.changed_locally(id);
        }
        Ok(())
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

#[cfg(test)]
mod tests {
    use super::super::tests::{inst, svc};
    use super::super::{Selection, StoreCounts};
    use super::*;
    use crate::naming::model::BeatTimeouts;

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
}
