//! Ephemeral instances: what clients publish.
//!
//! As in Nacos 2, every ephemeral instance belongs to a client (see
//! `naming::client`): a gRPC connection, or an ip:port client of the HTTP
//! API. Each change made here is written at a new revision of the client
//! (`naming::replica`), and announced as a local change naming the slots
//! it touched, which Distro sends to the other members.

use std::collections::BTreeSet;

use super::NamingStore;
use crate::error::{Error, Result};
use crate::naming::client::ClientKind;
use crate::naming::clock;
use crate::naming::model::{Instance, InstanceKey, ServiceKey};
use crate::naming::replica::Slot;

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
    /// Nacos: registering again replaces it (the replaced one leaves a
    /// removal record). An ip:port client may publish several (one per
    /// cluster).
    pub fn register_ephemeral(&self, client_id: &str, kind: ClientKind, key: &ServiceKey, instance: Instance) {
        let now = clock::now();
        let ikey = instance.key();
        let mut slots: Vec<Slot> = vec![(key.clone(), ikey.clone())];
        {
            let mut inner = self.inner.write();
            let client = inner.client_entry(client_id, kind);
            let revision = client.touch_local();
            if kind == ClientKind::Connection {
                for other in client.live_keys(key).into_iter().filter(|k| *k != ikey) {
                    client.remove(key, &other, revision, now, false);
                    slots.push((key.clone(), other));
                }
            }
            client.write(key, instance, revision, now);
            inner.entry(key).publishers.insert(client_id.to_owned());
        }
        self.notify(key);
        self.changed_locally(client_id, Some(slots));
    }

    /// Replaces everything a client publishes in one service with `instances`.
    pub fn batch_register(&self, client_id: &str, kind: ClientKind, key: &ServiceKey, instances: Vec<Instance>) {
        let now = clock::now();
        let slots: Vec<Slot> = {
            let mut inner = self.inner.write();
            let client = inner.client_entry(client_id, kind);
            let revision = client.touch_local();
            let keep: BTreeSet<InstanceKey> = instances.iter().map(Instance::key).collect();
            let mut slots: Vec<Slot> = keep.iter().map(|k| (key.clone(), k.clone())).collect();
            for old in client.live_keys(key).into_iter().filter(|k| !keep.contains(k)) {
                client.remove(key, &old, revision, now, false);
                slots.push((key.clone(), old));
            }
            for instance in instances {
                client.write(key, instance, revision, now);
            }
            let publishes = client.published().contains_key(key);
            let gone = kind == ClientKind::IpPort && client.published().is_empty();
            if publishes {
                inner.entry(key).publishers.insert(client_id.to_owned());
            } else {
                inner.unpublish(client_id, key);
            }
            if gone {
                inner.take_and_bury(client_id);
            }
            slots
        };
        self.notify(key);
        self.changed_locally(client_id, Some(slots));
    }

    /// Removes a client's instance from a service. Returns whether anything
    /// was removed; removing nothing is not an error (as in Nacos).
    ///
    /// With `blind`, a removal record is left even when this node holds no
    /// such instance (creating the ip:port client's tombstone if needed):
    /// a node that has not loaded its Distro snapshot yet may not hold what
    /// the client registered elsewhere, and the record keeps that older
    /// write from coming back when the snapshot arrives (see
    /// `naming::replica`). Without it, removing nothing changes nothing.
    pub fn deregister_ephemeral(&self, client_id: &str, key: &ServiceKey, instance: &InstanceKey, blind: bool) -> bool {
        let now = clock::now();
        let removed = {
            let mut inner = self.inner.write();
            let held = inner
                .clients
                .get(client_id)
                .map(|c| (c.kind, c.published().get(key).is_some_and(|m| m.contains_key(instance))));
            let kind = match held {
                Some((kind, true)) => kind,
                Some((kind, false)) if blind => kind,
                None if blind => ClientKind::IpPort,
                _ => return false,
            };
            let client = inner.client_entry(client_id, kind);
            let revision = client.touch_local();
            let removed = client.remove(key, instance, revision, now, blind);
            let still_publishes = client.published().contains_key(key);
            let gone = client.kind == ClientKind::IpPort && client.published().is_empty();
            if !still_publishes {
                inner.unpublish(client_id, key);
            }
            // An ip:port client exists only through its instances.
            if gone {
                inner.take_and_bury(client_id);
            }
            removed
        };
        if removed {
            self.notify(key);
        }
        self.changed_locally(client_id, Some(vec![(key.clone(), instance.clone())]));
        removed
    }

    /// Removes a client and all its instances (connection closed, client
    /// expired): its floor rises past everything it published.
    ///
    /// A client that never changed (revision 0: a connection that set up
    /// and published nothing) was never announced to the peers, so its
    /// removal leaves no record and is not announced either: connections
    /// opened and closed in a loop, which need no credentials, leave
    /// nothing behind.
    pub fn remove_client(&self, client_id: &str) -> bool {
        let touched: Vec<ServiceKey> = {
            let mut inner = self.inner.write();
            let Some(client) = inner.clients.get_mut(client_id) else { return false };
            if client.revision() == 0 {
                inner.drop_client(client_id);
                return true;
            }
            let keys: Vec<ServiceKey> = client.published().keys().cloned().collect();
            let revision = client.touch_local();
            client.remove_all(revision);
            for key in &keys {
                inner.unpublish(client_id, key);
            }
            inner.take_and_bury(client_id);
            keys
        };
        for key in &touched {
            self.notify(key);
        }
        self.changed_locally(client_id, None);
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
                let Some(client) = clients.get_mut(id) else { continue };
                let Some(last_beat) = client.published().get(key).and_then(|m| m.get(&ikey)).map(|p| p.last_beat)
                else {
                    continue;
                };
                let revision = client.touch_local();
                client.write(key, Instance { ephemeral: true, ..update.clone() }, revision, last_beat);
                changed_clients.push(id.clone());
            }
            if changed_clients.is_empty() {
                return Err(Error::NotFound(format!("instance not found: {ikey} in {}", key.grouped_name())));
            }
        }
        self.notify(key);
        for id in &changed_clients {
            self.changed_locally(id, Some(vec![(key.clone(), ikey.clone())]));
        }
        Ok(())
    }

    /// Ids of this node's own connection clients, sorted (those whose
    /// connection closed while the node drains are among them, kept for
    /// their handover).
    pub fn local_connections(&self) -> Vec<String> {
        let inner = self.inner.read();
        let mut ids: Vec<String> =
            inner.clients.values().filter(|c| c.is_local_connection()).map(|c| c.id.clone()).collect();
        ids.sort();
        ids
    }

    /// Whether every instance `client_id` publishes is also published, in
    /// the same service, by another client that is not one of this node's
    /// connections: its client registered it again elsewhere (true for a
    /// client that publishes nothing, or is gone).
    pub fn republished_elsewhere(&self, client_id: &str) -> bool {
        let inner = self.inner.read();
        let Some(client) = inner.clients.get(client_id) else { return true };
        client.published().iter().all(|(service, set)| {
            let Some(entry) = inner.services.get(service) else { return false };
            set.keys().all(|key| {
                entry.publishers.iter().filter(|other| *other != client_id).any(|other| {
                    inner.clients.get(other).is_some_and(|c| {
                        !c.is_local_connection() && c.published().get(service).is_some_and(|m| m.contains_key(key))
                    })
                })
            })
        })
    }

    /// Which client publishes `instance` in `key`, if an ephemeral one does.
    pub fn owner_of(&self, key: &ServiceKey, instance: &InstanceKey) -> Option<(String, ClientKind)> {
        let inner = self.inner.read();
        let entry = inner.services.get(key)?;
        entry.publishers.iter().find_map(|id| {
            let c = inner.clients.get(id)?;
            c.published().get(key)?.get(instance).map(|_| (c.id.clone(), c.kind))
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
        let first = store.client("c1").map(|c| c.revision()).expect("client");
        store.register_ephemeral("c1", ClientKind::Connection, &svc("a"), inst("10.0.0.3", 80));
        let second = store.client("c1").map(|c| c.revision()).expect("client");
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
        assert!(store.deregister_ephemeral("10.0.0.1:80#true", &svc("a"), &i.key(), false));
        assert!(!store.has_client("10.0.0.1:80#true"));
        assert!(store.deregister_ephemeral("conn", &svc("b"), &inst("10.0.0.2", 80).key(), false));
        assert!(store.has_client("conn"), "a connection stays a client while connected");
    }

    #[test]
    fn a_drained_connection_is_republished_once_another_client_publishes_each_of_its_instances() {
        let store = NamingStore::new(BeatTimeouts::default());
        store.register_ephemeral("old", ClientKind::Connection, &svc("a"), inst("10.0.0.1", 80));
        store.register_ephemeral("old", ClientKind::Connection, &svc("b"), inst("10.0.0.1", 80));
        assert!(!store.republished_elsewhere("old"));
        // Another connection of this node is no handover.
        store.register_ephemeral("mine", ClientKind::Connection, &svc("a"), inst("10.0.0.1", 80));
        assert!(!store.republished_elsewhere("old"));
        // The client's new connection on another member, in one service of two.
        let moved = |services: &[(&str, &str, u16)]| {
            super::super::copies::tests::copy("new", ClientKind::Connection, 9, services)
        };
        super::super::copies::tests::apply(&store, clock::now(), &[moved(&[("a", "10.0.0.1", 80)])]);
        assert!(!store.republished_elsewhere("old"), "b is not registered again yet");
        super::super::copies::tests::apply(&store, clock::now(), &[moved(&[("b", "10.0.0.1", 80)])]);
        assert!(store.republished_elsewhere("old"));
        assert_eq!(store.local_connections(), ["mine", "old"]);
        assert!(store.republished_elsewhere("gone"), "nothing to hand over");
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
