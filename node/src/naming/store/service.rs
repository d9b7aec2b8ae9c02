//! Services as such: created, updated, deleted, described and listed.
//!
//! A service exists *implicitly* while it has instances and *explicitly*
//! once created (or set through Raft); only an explicit one outlives its
//! instances, and only an empty one can be deleted, as in Nacos.

use std::collections::BTreeSet;

use super::NamingStore;
use crate::error::{Error, Result};
use crate::naming::model::{ServiceKey, ServiceMeta};

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

/// The Nacos error for a service that does not exist.
fn not_found(key: &ServiceKey) -> Error {
    Error::NotFound(format!("service {} not found!", key.grouped_name()))
}

impl NamingStore {
    /// Creates a service explicitly. Fails if it exists already.
    pub fn create_service(&self, key: &ServiceKey, meta: ServiceMeta) -> Result<()> {
        {
            let mut inner = self.inner.write();
            if inner.services.get(key).is_some_and(|entry| entry.meta.explicit) {
                return Err(Error::Conflict(format!(
                    "specified service already exists, serviceName : {}",
                    key.grouped_name()
                )));
            }
            // Created implicitly by a registration, or new: it takes the settings.
            inner.entry(key).meta = ServiceMeta { explicit: true, ..meta };
        }
        self.notify(key);
        Ok(())
    }

    /// Replaces a service's settings. Fails if it does not exist.
    pub fn update_service(&self, key: &ServiceKey, meta: ServiceMeta) -> Result<()> {
        {
            let mut inner = self.inner.write();
            let entry = inner.services.get_mut(key).ok_or_else(|| not_found(key))?;
            entry.meta = ServiceMeta { explicit: true, ..meta };
        }
        self.notify(key);
        Ok(())
    }

    /// Deletes a service. Fails if it does not exist or still has instances.
    pub fn delete_service(&self, key: &ServiceKey) -> Result<()> {
        {
            let mut inner = self.inner.write();
            let entry = inner.services.get(key).ok_or_else(|| not_found(key))?;
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

    /// Forgets a service deleted through Raft if it holds nothing: an
    /// emptied one kept listed goes at once, on every member.
    pub fn forget_deleted_service(&self, key: &ServiceKey) {
        self.inner.write().forget_deleted(key);
    }

    /// Whether `key` is an emptied service: implicit and holding nothing,
    /// kept listed until the cleaner removes it.
    pub fn is_emptied(&self, key: &ServiceKey) -> bool {
        self.inner.read().services.get(key).is_some_and(|e| e.emptied_at.is_some() && !e.meta.explicit)
    }

    /// Whether a service has ephemeral instances (checked before a service
    /// deletion is proposed to Raft, which cannot see them).
    pub fn has_ephemeral_instances(&self, key: &ServiceKey) -> bool {
        self.inner.read().services.get(key).is_some_and(|e| !e.publishers.is_empty())
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
}

#[cfg(test)]
mod tests {
    use super::super::tests::{inst, svc};
    use super::*;
    use crate::naming::model::BeatTimeouts;
    use crate::naming::ClientKind;

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
    fn creating_a_service_a_registration_made_adopts_the_settings() {
        let store = NamingStore::new(BeatTimeouts::default());
        store.register_ephemeral("c", ClientKind::Connection, &svc("a"), inst("10.0.0.1", 80));
        assert!(!store.service(&svc("a")).expect("implicit").meta.explicit);
        let meta = ServiceMeta { protect_threshold: 0.5, ..ServiceMeta::default() };
        store.create_service(&svc("a"), meta).expect("an implicit service can be created");
        let detail = store.service(&svc("a")).expect("explicit");
        assert!(detail.meta.explicit);
        assert_eq!(detail.meta.protect_threshold, 0.5);
        assert_eq!(detail.clusters, ["DEFAULT"]);
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
}
