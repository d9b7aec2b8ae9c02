//! A service as stored, and the view of its instances.
//!
//! A service entry holds what belongs to the service itself: its settings,
//! its persistent instances (Raft owns them) and the ids of the clients
//! publishing ephemeral instances in it. The ephemeral instances stay with
//! their clients, because a client is what Distro copies and what a closed
//! connection or a silent ip:port client takes away; [`Inner::instances`]
//! puts the two together, with the overrides of `super::overlay` laid
//! over the ephemeral ones.
//!
//! An implicit service whose last instance leaves is kept, listed and
//! empty, until the empty-service cleaner removes it (Nacos's
//! `EmptyServiceAutoCleanerV2`; see [`crate::naming::cleaner`]), when the
//! store is told to keep emptied services; otherwise it is forgotten at
//! once. An explicit service stays until it is deleted; a deleted one goes
//! at once.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use super::query::AnswerCache;
use super::{Inner, NamingStore};
use crate::naming::clock;
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
    /// The encoded views of the current state (`query.rs`), emptied by
    /// every change the service announces.
    pub(super) answers: AnswerCache,
    /// Since when an implicit service has held nothing: it is kept, listed
    /// and empty, until the cleaner finds it so for the retention. `None`
    /// while it holds something (or is explicit).
    pub(super) emptied_at: Option<Instant>,
}

impl ServiceEntry {
    /// An implicit service with nothing in it, which the store forgets (at
    /// once, or after the retention).
    fn is_disposable(&self) -> bool {
        !self.meta.explicit && self.publishers.is_empty() && self.persistent.is_empty()
    }
}

impl Inner {
    /// The entry of `key`, created (implicit and empty) if absent. Callers
    /// are about to put something in it: it is no longer an emptied one.
    pub(super) fn entry(&mut self, key: &ServiceKey) -> &mut ServiceEntry {
        let entry = self.services.entry(key.clone()).or_default();
        entry.emptied_at = None;
        entry
    }

    /// Called after something left `key`: if it is implicit and holds
    /// nothing any more, it is forgotten, or (when emptied services are
    /// kept) marked emptied now unless it already was.
    pub(super) fn forget_if_empty(&mut self, key: &ServiceKey) {
        let keep = self.keep_emptied;
        let Some(entry) = self.services.get_mut(key) else { return };
        if !entry.is_disposable() {
            return;
        }
        if keep {
            entry.emptied_at.get_or_insert_with(clock::now);
        } else {
            self.services.remove(key);
        }
    }

    /// Forgets `key` if it holds nothing, kept or not: its explicit
    /// settings were deleted, which takes it away at once, as in Nacos.
    pub(super) fn forget_deleted(&mut self, key: &ServiceKey) {
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

    /// The ephemeral instances of a service as their clients publish them.
    pub(super) fn published_instances<'a>(
        &'a self,
        key: &'a ServiceKey,
        entry: &'a ServiceEntry,
    ) -> impl Iterator<Item = &'a Instance> + 'a {
        entry
            .publishers
            .iter()
            .filter_map(|id| self.clients.get(id))
            .filter_map(move |c| c.published.get(key))
            .flat_map(|m| m.values().map(|p| &p.instance))
    }

    /// Every instance of a service as consumers see it: ephemeral ones from
    /// publishers with their overrides laid over, then persistent, sorted
    /// by cluster and address.
    pub(super) fn instances<'a>(&'a self, key: &'a ServiceKey, entry: &'a ServiceEntry) -> Vec<Cow<'a, Instance>> {
        let mut out: Vec<Cow<'a, Instance>> = self
            .published_instances(key, entry)
            .map(|i| self.overridden(key, i))
            .chain(entry.persistent.values().map(Cow::Borrowed))
            .collect();
        out.sort_by(|a, b| (&a.cluster, &a.ip, a.port).cmp(&(&b.cluster, &b.ip, b.port)));
        // Two clients can publish the very same instance for a while: an SDK
        // that reconnected to another member registers again under its new
        // connection before the old connection's copy is gone. A view shows
        // such an instance once, as Nacos does (its views are sets of
        // instances); instances that differ in anything stay apart.
        let mut unique: Vec<Cow<'a, Instance>> = Vec::with_capacity(out.len());
        for instance in out {
            let same_address = |u: &&Cow<'a, Instance>| {
                (&u.cluster, &u.ip, u.port) == (&instance.cluster, &instance.ip, instance.port)
            };
            if !unique.iter().rev().take_while(same_address).any(|u| *u == instance) {
                unique.push(instance);
            }
        }
        unique
    }
}

impl NamingStore {
    /// Keeps implicit services that lose their last instance, listed and
    /// empty, until [`NamingStore::clean_empty_services`] removes them
    /// (instead of forgetting them at once).
    pub fn keeping_emptied_services(self) -> Self {
        self.inner.write().keep_emptied = true;
        self
    }

    /// Removes the emptied services that have stayed empty and unchanged
    /// for at least `retention` by `now`; returns them. Each member runs
    /// this on its own replicated view, so all members drop a service
    /// within one clean interval of each other.
    pub fn clean_empty_services(&self, now: Instant, retention: Duration) -> Vec<ServiceKey> {
        let mut inner = self.inner.write();
        let expired: Vec<ServiceKey> = inner
            .services
            .iter()
            .filter(|(_, e)| e.is_disposable())
            .filter(|(_, e)| e.emptied_at.is_some_and(|at| now.saturating_duration_since(at) >= retention))
            .map(|(k, _)| k.clone())
            .collect();
        for key in &expired {
            inner.services.remove(key);
        }
        expired
    }

    /// Whether `client_id` publishes anything in `key`.
    pub fn publishes_in(&self, client_id: &str, key: &ServiceKey) -> bool {
        self.inner.read().services.get(key).is_some_and(|e| e.publishers.contains(client_id))
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
