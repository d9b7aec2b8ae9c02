//! A service as stored, and the view of its instances.
//!
//! A service entry holds what belongs to the service itself: its settings,
//! its persistent instances (Raft owns them) and the ids of the clients
//! publishing ephemeral instances in it. The ephemeral instances stay with
//! their clients, because a client is what Distro copies and what a closed
//! connection or a silent ip:port client takes away; [`Inner::instances`]
//! puts the two together.

use std::collections::{BTreeMap, BTreeSet};

use super::Inner;
use crate::naming::model::{Instance, InstanceKey, ServiceKey, ServiceMeta};

/// A service as stored: its settings, the clients publishing into it and its
/// persistent instances.
#[derive(Debug, Default)]
pub(super) struct ServiceEntry {
    /// The settings; `explicit` once created or set through Raft.
    pub(super) meta: ServiceMeta,
    /// Ids of clients with at least one instance in this service.
    pub(super) publishers: BTreeSet<String>,
    /// Persistent instances (`ephemeral=false`).
    pub(super) persistent: BTreeMap<InstanceKey, Instance>,
}

impl ServiceEntry {
    /// An implicit service with nothing in it is forgotten.
    fn is_disposable(&self) -> bool {
        !self.meta.explicit && self.publishers.is_empty() && self.persistent.is_empty()
    }
}

impl Inner {
    /// The entry of `key`, created (implicit and empty) if absent.
    pub(super) fn entry(&mut self, key: &ServiceKey) -> &mut ServiceEntry {
        self.services.entry(key.clone()).or_default()
    }

    /// Forgets `key` if it is implicit and holds nothing any more.
    pub(super) fn forget_if_empty(&mut self, key: &ServiceKey) {
        if self.services.get(key).is_some_and(ServiceEntry::is_disposable) {
            self.services.remove(key);
        }
    }

    /// Records that `client_id` no longer publishes in `key`.
    pub(super) fn unpublish(&mut self, client_id: &str, key: &ServiceKey) {
        if let Some(entry) = self.services.get_mut(key) {
            entry.publishers.remove(client_id);
        }
        self.forget_if_empty(key);
    }

    /// Removes a client and returns the services it published in.
    pub(super) fn drop_client(&mut self, client_id: &str) -> Vec<ServiceKey> {
        let Some(client) = self.clients.remove(client_id) else { return Vec::new() };
        let keys: Vec<ServiceKey> = client.published.into_keys().collect();
        for key in &keys {
            self.unpublish(client_id, key);
        }
        keys
    }

    /// Every instance of a service: ephemeral ones from publishers, then
    /// persistent, sorted by cluster and address.
    pub(super) fn instances<'a>(&'a self, key: &ServiceKey, entry: &'a ServiceEntry) -> Vec<&'a Instance> {
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

#[cfg(test)]
mod tests {
    use super::super::tests::{inst, svc};
    use super::super::{NamingStore, Selection};
    use crate::naming::model::BeatTimeouts;
    use crate::naming::ClientKind;

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
}
