//! Read-only views for operators: every service of a namespace with its
//! counts, every instance of a service, and every instance with the
//! client that holds it, disabled ones included (a console must show what
//! it can re-enable).
//!
//! Queries ([`NamingStore::query`]) answer what consumers see; these
//! answer what is held, under one shared lock per call, each ephemeral
//! instance with its override laid over (an operator's edit, see
//! [`crate::naming::overlay`]), as consumers are shown it.

use std::borrow::Cow;

use super::NamingStore;
use crate::naming::client::{ClientKind, Origin};
use crate::naming::model::{Instance, ServiceKey};

/// One service of a namespace as a catalog lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceSummary {
    /// The service.
    pub key: ServiceKey,
    /// Clusters its instances are in.
    pub clusters: usize,
    /// Instances, enabled or not (an instance two clients publish alike
    /// counts once, as consumers see it).
    pub instances: usize,
    /// Of those, the healthy ones.
    pub healthy: usize,
    /// The service's protect threshold (0 when it has no settings).
    pub protect_threshold: f32,
}

/// Who holds an instance: the client publishing an ephemeral one, or Raft.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Holder {
    /// An ephemeral instance of a client (a connection or an ip:port client).
    Client {
        /// The client id.
        id: String,
        /// Connection or ip:port.
        kind: ClientKind,
        /// Whether this node or a peer wrote its current data.
        origin: Origin,
    },
    /// A persistent instance, owned by Raft.
    Raft,
}

/// One instance as held, with its holder.
#[derive(Debug, Clone, PartialEq)]
pub struct HeldInstance {
    /// The instance.
    pub instance: Instance,
    /// Who holds it.
    pub holder: Holder,
}

impl NamingStore {
    /// Every service of `namespace` (explicit or with instances), sorted by
    /// group then name, with its counts.
    pub fn service_summaries(&self, namespace: &str) -> Vec<ServiceSummary> {
        let inner = self.inner.read();
        inner
            .services
            .iter()
            .filter(|(key, _)| key.namespace == namespace)
            .map(|(key, entry)| {
                let instances = inner.instances(key, entry);
                let mut clusters: Vec<&str> = instances.iter().map(|i| i.cluster.as_str()).collect();
                clusters.sort_unstable();
                clusters.dedup();
                ServiceSummary {
                    key: key.clone(),
                    clusters: clusters.len(),
                    instances: instances.len(),
                    healthy: instances.iter().filter(|i| i.healthy).count(),
                    protect_threshold: entry.meta.protect_threshold,
                }
            })
            .collect()
    }

    /// Every instance of `key`, enabled or not, sorted by cluster and
    /// address, each once however many clients publish it alike (as
    /// consumers see it); `None` when the service does not exist.
    pub fn catalog_instances(&self, key: &ServiceKey) -> Option<Vec<Instance>> {
        let inner = self.inner.read();
        let entry = inner.services.get(key)?;
        Some(inner.instances(key, entry).into_iter().map(Cow::into_owned).collect())
    }

    /// Every instance held in `key`, enabled or not, with its holder,
    /// sorted by cluster, IP and port; `None` when the service does not
    /// exist. An instance two clients publish (an SDK that reconnected to
    /// another member, while its old connection's copy is still held) is
    /// listed once per client.
    pub fn held_instances(&self, key: &ServiceKey) -> Option<Vec<HeldInstance>> {
        let guard = self.inner.read();
        let inner = &*guard;
        let entry = inner.services.get(key)?;
        let mut out: Vec<HeldInstance> = entry
            .publishers
            .iter()
            .filter_map(|id| inner.clients.get(id))
            .flat_map(|client| {
                client.published.get(key).into_iter().flat_map(|set| set.values()).map(move |p| HeldInstance {
                    instance: inner.overridden(key, &p.instance).into_owned(),
                    holder: Holder::Client { id: client.id.clone(), kind: client.kind, origin: client.origin.clone() },
                })
            })
            .chain(entry.persistent.values().map(|i| HeldInstance { instance: i.clone(), holder: Holder::Raft }))
            .collect();
        out.sort_by(|a, b| {
            let (a, b) = (&a.instance, &b.instance);
            (&a.cluster, &a.ip, a.port, a.ephemeral).cmp(&(&b.cluster, &b.ip, b.port, b.ephemeral))
        });
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{inst, svc};
    use super::*;
    use crate::naming::model::{BeatTimeouts, ServiceMeta};

    #[test]
    fn summaries_count_disabled_and_unhealthy_instances_of_one_namespace() {
        let store = NamingStore::new(BeatTimeouts::default());
        store.register_ephemeral("c1", ClientKind::Connection, &svc("b"), inst("10.0.0.1", 80));
        store.register_ephemeral(
            "c2",
            ClientKind::Connection,
            &svc("b"),
            Instance { enabled: false, cluster: "east".into(), ..inst("10.0.0.2", 80) },
        );
        store.register_persistent(&svc("b"), Instance { healthy: false, ephemeral: false, ..inst("10.0.0.3", 80) });
        let meta = ServiceMeta { protect_threshold: 0.5, ..ServiceMeta::default() };
        store.create_service(&svc("a"), meta).expect("create");
        store.create_service(&ServiceKey::new("dev", "DEFAULT_GROUP", "x"), ServiceMeta::default()).expect("create");

        let all = store.service_summaries("public");
        let names: Vec<&str> = all.iter().map(|s| s.key.name.as_str()).collect();
        assert_eq!(names, ["a", "b"], "sorted, and only this namespace");
        assert_eq!((all[0].instances, all[0].healthy, all[0].clusters), (0, 0, 0));
        assert_eq!(all[0].protect_threshold, 0.5);
        assert_eq!((all[1].instances, all[1].healthy, all[1].clusters), (3, 2, 2));
        assert!(store.service_summaries("nowhere").is_empty());
    }

    #[test]
    fn held_instances_name_their_holders_and_include_disabled_ones() {
        let store = NamingStore::new(BeatTimeouts::default());
        store.register_ephemeral(
            "conn",
            ClientKind::Connection,
            &svc("a"),
            Instance { enabled: false, ..inst("10.0.0.2", 80) },
        );
        store.register_ephemeral("10.0.0.1:80#true", ClientKind::IpPort, &svc("a"), inst("10.0.0.1", 80));
        store.register_persistent(&svc("a"), Instance { ephemeral: false, ..inst("10.0.0.3", 80) });
        let held = store.held_instances(&svc("a")).expect("service exists");
        let rows: Vec<(String, bool, Holder)> =
            held.into_iter().map(|h| (h.instance.ip.clone(), h.instance.enabled, h.holder)).collect();
        let client = |id: &str, kind| Holder::Client { id: id.into(), kind, origin: Origin::Local };
        assert_eq!(
            rows,
            [
                ("10.0.0.1".to_string(), true, client("10.0.0.1:80#true", ClientKind::IpPort)),
                ("10.0.0.2".to_string(), false, client("conn", ClientKind::Connection)),
                ("10.0.0.3".to_string(), true, Holder::Raft),
            ]
        );
        assert_eq!(store.held_instances(&svc("missing")), None);
    }

    #[test]
    fn the_views_show_an_edited_instance_as_edited() {
        use crate::naming::overlay::InstanceOverride;
        use std::collections::BTreeMap;
        let store = NamingStore::new(BeatTimeouts::default());
        store.register_ephemeral("conn", ClientKind::Connection, &svc("a"), inst("10.0.0.1", 80));
        let edit = InstanceOverride { enabled: Some(false), weight: Some(3.0), ..InstanceOverride::default() };
        store.set_overrides(&svc("a"), BTreeMap::from([(inst("10.0.0.1", 80).key(), edit)]));
        let held = store.held_instances(&svc("a")).expect("service exists");
        assert_eq!((held[0].instance.enabled, held[0].instance.weight), (false, 3.0), "held, as edited");
        let shown = store.catalog_instances(&svc("a")).expect("service exists");
        assert_eq!((shown[0].enabled, shown[0].weight), (false, 3.0), "in the catalog, as edited");
    }

    #[test]
    fn catalog_instances_include_disabled_ones_and_show_a_shared_instance_once() {
        let store = NamingStore::new(BeatTimeouts::default());
        store.register_ephemeral("old", ClientKind::Connection, &svc("a"), inst("10.0.0.1", 80));
        store.register_ephemeral("new", ClientKind::Connection, &svc("a"), inst("10.0.0.1", 80));
        store.register_ephemeral(
            "other",
            ClientKind::Connection,
            &svc("a"),
            Instance { enabled: false, ..inst("10.0.0.2", 80) },
        );
        let shown: Vec<(String, bool)> = store
            .catalog_instances(&svc("a"))
            .expect("service exists")
            .into_iter()
            .map(|i| (i.ip, i.enabled))
            .collect();
        assert_eq!(shown, [("10.0.0.1".to_string(), true), ("10.0.0.2".to_string(), false)]);
        assert_eq!(store.held_instances(&svc("a")).expect("service exists").len(), 3, "held: once per client");
        assert_eq!(store.catalog_instances(&svc("missing")), None);
    }
}
