//! The Raft-owned part of the store: persistent instances and explicit
//! service settings.
//!
//! Raft's state machine is the only writer here (see `raft::state_machine`):
//! it applies committed commands one by one and installs whole snapshots.
//! Ephemeral publishers of the same services are left alone; Distro owns
//! them.

use std::collections::{BTreeMap, BTreeSet};

use super::{Inner, NamingStore};
use crate::naming::model::{Instance, InstanceKey, ServiceKey, ServiceMeta};

impl Inner {
    /// Sets a service's explicit settings and persistent instances; returns
    /// whether anything changed. A service whose explicit settings go (it
    /// was deleted) is forgotten at once if it holds nothing; one whose last
    /// persistent instance goes is an emptied service like any other.
    fn set_persistent(&mut self, key: &ServiceKey, meta: Option<ServiceMeta>, instances: Vec<Instance>) -> bool {
        let meta = meta.map(|m| ServiceMeta { explicit: true, ..m }).unwrap_or_default();
        let persistent: BTreeMap<InstanceKey, Instance> =
            instances.into_iter().map(|i| (i.key(), Instance { ephemeral: false, ..i })).collect();
        let (was_explicit, unchanged) = match self.services.get(key) {
            Some(entry) => (entry.meta.explicit, entry.meta == meta && entry.persistent == persistent),
            None => (false, meta == ServiceMeta::default() && persistent.is_empty()),
        };
        if unchanged {
            return false;
        }
        let deleted = was_explicit && !meta.explicit;
        let entry = self.entry(key);
        entry.meta = meta;
        entry.persistent = persistent;
        if deleted {
            self.forget_deleted(key);
        } else {
            self.forget_if_empty(key);
        }
        true
    }
}

impl NamingStore {
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
}

#[cfg(test)]
mod tests {
    use super::super::tests::{hosts, inst, svc};
    use super::*;
    use crate::naming::model::BeatTimeouts;
    use crate::naming::ClientKind;

    #[test]
    fn replacing_the_persistent_part_leaves_ephemeral_instances_alone() {
        let store = NamingStore::new(BeatTimeouts::default());
        let persistent = |ip: &str| Instance { ephemeral: false, ..inst(ip, 80) };
        store.register_ephemeral("c", ClientKind::Connection, &svc("a"), inst("10.0.0.1", 80));
        store.register_persistent(&svc("a"), persistent("10.0.0.2"));
        store.register_persistent(&svc("b"), persistent("10.0.0.3"));
        let mut changes = store.subscribe_changes();
        store.replace_persistent(vec![(svc("c"), Some(ServiceMeta::default()), vec![persistent("10.0.0.4")])]);
        assert_eq!(hosts(&store, "a"), ["10.0.0.1:80"], "the connection's instance stays");
        assert!(store.service(&svc("b")).is_none(), "a service with only Raft's instances is forgotten");
        assert_eq!(hosts(&store, "c"), ["10.0.0.4:80"]);
        assert!(store.service(&svc("c")).is_some_and(|d| d.meta.explicit));
        let mut announced = BTreeSet::new();
        while let Ok(key) = changes.try_recv() {
            announced.insert(key.name);
        }
        assert_eq!(announced, BTreeSet::from(["a".to_owned(), "b".to_owned(), "c".to_owned()]));
        // The same state again changes nothing and announces nothing.
        store.replace_persistent(vec![(svc("c"), Some(ServiceMeta::default()), vec![persistent("10.0.0.4")])]);
        assert!(changes.try_recv().is_err());
    }

    #[test]
    fn deregistering_a_persistent_instance_says_whether_it_existed() {
        let store = NamingStore::new(BeatTimeouts::default());
        store.register_persistent(&svc("a"), Instance { ephemeral: false, ..inst("10.0.0.1", 80) });
        assert!(store.deregister_persistent(&svc("a"), &inst("10.0.0.1", 80).key()));
        assert!(!store.deregister_persistent(&svc("a"), &inst("10.0.0.1", 80).key()));
        assert!(store.service(&svc("a")).is_none(), "the implicit service went with it");
    }
}
