//! The overrides of ephemeral instances (see [`crate::naming::overlay`]) as
//! the store holds them: a mirror of what Raft holds, written only by the
//! Raft state machine, and laid over the published instances by every
//! read that shows them (queries, pushes, instance and service details).
//!
//! Overrides are kept apart from the service entries: an override outlives
//! its instance for a while (the instance may come back), and an emptied
//! service may be forgotten meanwhile.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};

use super::{Inner, NamingStore};
use crate::naming::model::{Instance, InstanceKey, ServiceKey};
use crate::naming::overlay::InstanceOverride;

impl Inner {
    /// `instance` of `key` as shown: with its override, if it has one.
    pub(super) fn overridden<'a>(&self, key: &ServiceKey, instance: &'a Instance) -> Cow<'a, Instance> {
        match self.overrides.get(key).and_then(|m| m.get(&instance.key())) {
            Some(edit) => {
                let mut shown = instance.clone();
                edit.lay_over(&mut shown);
                Cow::Owned(shown)
            }
            None => Cow::Borrowed(instance),
        }
    }

    /// Makes the overrides of `key` `overrides`; whether anything changed.
    fn set_overrides(&mut self, key: &ServiceKey, overrides: BTreeMap<InstanceKey, InstanceOverride>) -> bool {
        let held = self.overrides.get(key);
        if held.map_or(overrides.is_empty(), |h| *h == overrides) {
            return false;
        }
        if overrides.is_empty() {
            self.overrides.remove(key);
        } else {
            self.overrides.insert(key.clone(), overrides);
        }
        true
    }
}

impl NamingStore {
    /// Makes the overrides of one service what Raft holds for it.
    pub fn set_overrides(&self, key: &ServiceKey, overrides: BTreeMap<InstanceKey, InstanceOverride>) {
        let changed = self.inner.write().set_overrides(key, overrides);
        if changed {
            self.notify(key);
        }
    }

    /// Replaces every override (a Raft snapshot was installed, or the state
    /// was loaded at start).
    pub fn replace_overrides(&self, all: BTreeMap<ServiceKey, BTreeMap<InstanceKey, InstanceOverride>>) {
        let mut touched = Vec::new();
        {
            let mut inner = self.inner.write();
            let keys: BTreeSet<ServiceKey> = inner.overrides.keys().chain(all.keys()).cloned().collect();
            let mut all = all;
            for key in keys {
                let overrides = all.remove(&key).unwrap_or_default();
                if inner.set_overrides(&key, overrides) {
                    touched.push(key);
                }
            }
        }
        for key in &touched {
            self.notify(key);
        }
    }

    /// The override of one instance, if it has one.
    pub fn instance_override(&self, key: &ServiceKey, instance: &InstanceKey) -> Option<InstanceOverride> {
        self.inner.read().overrides.get(key).and_then(|m| m.get(instance)).cloned()
    }

    /// One ephemeral instance as its client publishes it (no override).
    pub fn published_instance(&self, key: &ServiceKey, instance: &InstanceKey) -> Option<Instance> {
        let inner = self.inner.read();
        let entry = inner.services.get(key)?;
        let found = inner.published_instances(key, entry).find(|i| &i.key() == instance).cloned();
        found
    }

    /// Which of `overridden` (service, instance) pairs no client publishes
    /// here now: the overrides whose instance is gone.
    pub fn unpublished(&self, overridden: &[(ServiceKey, InstanceKey)]) -> Vec<(ServiceKey, InstanceKey)> {
        let inner = self.inner.read();
        overridden
            .iter()
            .filter(|(key, instance)| {
                !inner
                    .services
                    .get(key)
                    .is_some_and(|entry| inner.published_instances(key, entry).any(|i| &i.key() == instance))
            })
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{inst, svc};
    use super::super::Selection;
    use super::*;
    use crate::naming::model::BeatTimeouts;
    use crate::naming::ClientKind;

    fn heavier(weight: f64) -> BTreeMap<InstanceKey, InstanceOverride> {
        BTreeMap::from([(inst("10.0.0.1", 80).key(), InstanceOverride { weight: Some(weight), ..Default::default() })])
    }

    #[test]
    fn an_override_is_laid_over_the_published_instance_and_survives_its_re_registration() {
        let store = NamingStore::new(BeatTimeouts::default());
        store.register_ephemeral("c", ClientKind::Connection, &svc("a"), inst("10.0.0.1", 80));
        let mut changes = store.subscribe_changes();
        store.set_overrides(&svc("a"), heavier(7.0));
        assert_eq!(changes.try_recv().ok(), Some(svc("a")), "subscribers are pushed the edit");
        let weight = |store: &NamingStore| store.query(&svc("a"), &Selection::default()).hosts[0].weight;
        assert_eq!(weight(&store), 7.0);
        store.register_ephemeral("c", ClientKind::Connection, &svc("a"), inst("10.0.0.1", 80));
        assert_eq!(weight(&store), 7.0, "the client registering again keeps the edit");
        while changes.try_recv().is_ok() {}
        assert_eq!(store.instance(&svc("a"), &inst("10.0.0.1", 80).key()).map(|i| i.weight), Some(7.0));
        assert_eq!(store.published_instance(&svc("a"), &inst("10.0.0.1", 80).key()).map(|i| i.weight), Some(1.0));
        store.set_overrides(&svc("a"), heavier(7.0));
        assert!(changes.try_recv().is_err(), "the same overrides change nothing");
        store.set_overrides(&svc("a"), BTreeMap::new());
        assert_eq!(weight(&store), 1.0);
    }

    #[test]
    fn overrides_touch_ephemeral_instances_only() {
        let store = NamingStore::new(BeatTimeouts::default());
        store.register_persistent(&svc("a"), Instance { ephemeral: false, ..inst("10.0.0.1", 80) });
        store.set_overrides(&svc("a"), heavier(7.0));
        let hosts = store.query(&svc("a"), &Selection::default()).hosts;
        assert_eq!(hosts[0].weight, 1.0, "Raft edits persistent instances themselves");
        let pair = (svc("a"), inst("10.0.0.1", 80).key());
        assert_eq!(store.unpublished(std::slice::from_ref(&pair)), vec![pair.clone()]);
        store.register_ephemeral("c", ClientKind::Connection, &svc("a"), inst("10.0.0.1", 80));
        assert!(store.unpublished(std::slice::from_ref(&pair)).is_empty());
    }

    #[test]
    fn replacing_every_override_drops_those_not_given() {
        let store = NamingStore::new(BeatTimeouts::default());
        store.register_ephemeral("c", ClientKind::Connection, &svc("a"), inst("10.0.0.1", 80));
        store.register_ephemeral("c", ClientKind::Connection, &svc("b"), inst("10.0.0.1", 80));
        store.set_overrides(&svc("a"), heavier(7.0));
        store.replace_overrides(BTreeMap::from([(svc("b"), heavier(3.0))]));
        assert_eq!(store.instance_override(&svc("a"), &inst("10.0.0.1", 80).key()), None);
        assert_eq!(store.query(&svc("b"), &Selection::default()).hosts[0].weight, 3.0);
    }
}
