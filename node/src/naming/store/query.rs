//! The consumer view of a service: what queries answer and pushes carry.
//!
//! Disabled instances are never shown. When the healthy share of the
//! selected instances is at or below the service's protect threshold,
//! every instance is shown as healthy: Nacos's protection against sending
//! all traffic to the few instances left healthy.

use std::hash::{Hash, Hasher};

use super::NamingStore;
use crate::naming::clock::now_millis;
use crate::naming::model::{Instance, InstanceKey, ServiceInfo, ServiceKey, CACHE_MILLIS};

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

/// Whether the protect threshold applies to `selected`: some are selected,
/// the service has a threshold, and the healthy share is at or below it.
fn protection_reached(selected: &[&Instance], protect_threshold: f32) -> bool {
    let healthy = selected.iter().filter(|i| i.healthy).count();
    !selected.is_empty() && protect_threshold > 0.0 && (healthy as f32 / selected.len() as f32) <= protect_threshold
}

impl NamingStore {
    /// Builds the consumer view of a service.
    ///
    /// Disabled instances are never returned. When the healthy share of the
    /// selected instances is at or below the protect threshold, every instance
    /// is returned as healthy (Nacos's protection against starving consumers).
    pub fn query(&self, key: &ServiceKey, selection: &Selection) -> ServiceInfo {
        let inner = self.inner.read();
        let (protect_threshold, instances) = match inner.services.get(key) {
            Some(entry) => (entry.meta.protect_threshold, inner.instances(key, entry)),
            None => (0.0, Vec::new()),
        };
        let selected: Vec<&Instance> = instances
            .iter()
            .map(|i| &**i)
            .filter(|i| i.enabled)
            .filter(|i| selection.clusters.is_empty() || selection.clusters.iter().any(|c| c == &i.cluster))
            .collect();
        let protect = protection_reached(&selected, protect_threshold);
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

    /// One instance of a service as consumers see it (with its override),
    /// if it exists.
    pub fn instance(&self, key: &ServiceKey, instance: &InstanceKey) -> Option<Instance> {
        let inner = self.inner.read();
        let entry = inner.services.get(key)?;
        inner.instances(key, entry).into_iter().find(|i| &i.key() == instance).map(std::borrow::Cow::into_owned)
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{inst, svc};
    use super::*;
    use crate::naming::model::{BeatTimeouts, ServiceMeta};

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
    fn the_protect_threshold_is_reached_at_or_below_the_healthy_share() {
        let (up, down) = (inst("10.0.0.1", 80), Instance { healthy: false, ..inst("10.0.0.2", 80) });
        assert!(protection_reached(&[&up, &down], 0.5), "half healthy, threshold one half");
        assert!(!protection_reached(&[&up, &down], 0.49));
        assert!(!protection_reached(&[&down, &down], 0.0), "no threshold set");
        assert!(!protection_reached(&[], 0.9), "nothing selected");
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
}
