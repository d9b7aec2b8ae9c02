//! Read-only lookups by address: the questions Nacos answers from its
//! client-service index, asked by the client introspection API
//! (`/nacos/v2/ns/client...`; the ids of all clients come from
//! [`NamingStore::client_ids`]).
//!
//! Persistent instances belong to no client here (Raft owns them per
//! service), while Nacos 2 files them under an ip:port client
//! `ip:port#false`. These lookups name them that way so that an id one
//! route answers can be asked about on the others.

use std::collections::BTreeSet;

use super::NamingStore;
use crate::naming::client::persistent_client_id;
use crate::naming::model::{Instance, ServiceKey};

/// A client publishing an instance at one address of a service.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct PublisherRef {
    /// The client's id (`ip:port#false` for a persistent instance).
    pub client_id: String,
    /// The instance's IP.
    pub ip: String,
    /// The instance's port.
    pub port: u16,
}

/// An instance address to look for: an IP and a port, `None` for any.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddressFilter {
    /// The IP, or any.
    pub ip: Option<String>,
    /// The port, or any.
    pub port: Option<u16>,
}

impl AddressFilter {
    /// Whether `ip:port` is an address looked for.
    pub fn matches(&self, ip: &str, port: u16) -> bool {
        self.ip.as_deref().is_none_or(|want| want == ip) && self.port.is_none_or(|want| want == port)
    }
}

impl NamingStore {
    /// `ip:port#false` for every address with a persistent instance in
    /// any service, sorted: the persistent clients Nacos 2 would hold.
    pub fn persistent_client_ids(&self) -> Vec<String> {
        let inner = self.inner.read();
        let addresses: BTreeSet<(&str, u16)> =
            inner.services.values().flat_map(|e| e.persistent.values()).map(|i| (i.ip.as_str(), i.port)).collect();
        addresses.into_iter().map(|(ip, port)| persistent_client_id(ip, port)).collect()
    }

    /// The persistent instances at `ip:port`, with their services, in
    /// service order: what the client `ip:port#false` publishes.
    pub fn persistent_published(&self, ip: &str, port: u16) -> Vec<(ServiceKey, Instance)> {
        let inner = self.inner.read();
        inner
            .services
            .iter()
            .flat_map(|(key, e)| e.persistent.values().map(move |i| (key, i)))
            .filter(|(_, i)| i.ip == ip && i.port == port)
            .map(|(key, i)| (key.clone(), i.clone()))
            .collect()
    }

    /// The clients publishing an instance of `key` at an address `address`
    /// matches, sorted and each address once per client (an ip:port
    /// client may publish one address in several clusters). `ephemeral`
    /// picks the kind: clients' instances, or persistent instances under
    /// their `ip:port#false` id. A service here may hold both kinds, which
    /// a Nacos service cannot.
    pub fn publishers(&self, key: &ServiceKey, ephemeral: bool, address: &AddressFilter) -> Vec<PublisherRef> {
        let matches = |i: &Instance| address.matches(&i.ip, i.port);
        let inner = self.inner.read();
        let Some(entry) = inner.services.get(key) else { return Vec::new() };
        let found: BTreeSet<PublisherRef> = if ephemeral {
            entry
                .publishers
                .iter()
                .filter_map(|id| inner.clients.get(id))
                .flat_map(|c| c.published.get(key).into_iter().flat_map(|m| m.values()).map(move |p| (c, p)))
                .filter(|(_, p)| matches(&p.instance))
                .map(|(c, p)| PublisherRef {
                    client_id: c.id.clone(),
                    ip: p.instance.ip.clone(),
                    port: p.instance.port,
                })
                .collect()
        } else {
            entry
                .persistent
                .values()
                .filter(|i| matches(i))
                .map(|i| PublisherRef {
                    client_id: persistent_client_id(&i.ip, i.port),
                    ip: i.ip.clone(),
                    port: i.port,
                })
                .collect()
        };
        found.into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{inst, svc};
    use super::*;
    use crate::naming::client::ClientKind;
    use crate::naming::model::BeatTimeouts;

    fn at(ip: Option<&str>, port: Option<u16>) -> AddressFilter {
        AddressFilter { ip: ip.map(str::to_owned), port }
    }

    fn publisher(client_id: &str, ip: &str, port: u16) -> PublisherRef {
        PublisherRef { client_id: client_id.into(), ip: ip.into(), port }
    }

    fn store() -> NamingStore {
        let store = NamingStore::new(BeatTimeouts::default());
        store.register_ephemeral("conn-1", ClientKind::Connection, &svc("a"), inst("10.0.0.1", 80));
        store.register_ephemeral("conn-2", ClientKind::Connection, &svc("a"), inst("10.0.0.1", 81));
        store.register_ephemeral("conn-3", ClientKind::Connection, &svc("b"), inst("10.0.0.1", 80));
        // One ip:port client, one address in two clusters.
        let id = "10.0.0.2:90#true";
        store.register_ephemeral(id, ClientKind::IpPort, &svc("a"), inst("10.0.0.2", 90));
        let east = Instance { cluster: "east".into(), ..inst("10.0.0.2", 90) };
        store.register_ephemeral(id, ClientKind::IpPort, &svc("a"), east);
        store.register_persistent(&svc("a"), Instance { ephemeral: false, ..inst("10.0.0.9", 5432) });
        store.register_persistent(&svc("b"), Instance { ephemeral: false, ..inst("10.0.0.9", 5432) });
        store.register_persistent(&svc("b"), Instance { ephemeral: false, ..inst("10.0.0.8", 5432) });
        store
    }

    #[test]
    fn publishers_filter_by_address_and_only_where_given() {
        let store = store();
        assert_eq!(
            store.publishers(&svc("a"), true, &at(Some("10.0.0.1"), Some(80))),
            vec![publisher("conn-1", "10.0.0.1", 80)],
            "conn-3 publishes the same address in another service"
        );
        assert_eq!(store.publishers(&svc("a"), true, &at(Some("10.0.0.1"), Some(82))), vec![]);
        assert_eq!(
            store.publishers(&svc("a"), true, &at(Some("10.0.0.1"), None)),
            vec![publisher("conn-1", "10.0.0.1", 80), publisher("conn-2", "10.0.0.1", 81)]
        );
        assert_eq!(
            store.publishers(&svc("a"), true, &at(None, Some(90))),
            vec![publisher("10.0.0.2:90#true", "10.0.0.2", 90)],
            "two clusters, one address: listed once"
        );
        assert_eq!(store.publishers(&svc("a"), true, &at(None, None)).len(), 3);
        assert_eq!(store.publishers(&svc("missing"), true, &at(None, None)), vec![]);
    }

    #[test]
    fn persistent_instances_answer_under_their_ip_port_false_id() {
        let store = store();
        assert_eq!(
            store.publishers(&svc("a"), false, &at(Some("10.0.0.9"), Some(5432))),
            vec![publisher("10.0.0.9:5432#false", "10.0.0.9", 5432)]
        );
        assert_eq!(
            store.publishers(&svc("a"), false, &at(Some("10.0.0.1"), Some(80))),
            vec![],
            "ephemeral ones are not"
        );
        assert_eq!(store.publishers(&svc("a"), true, &at(Some("10.0.0.9"), None)), vec![], "nor the other way round");
        assert_eq!(store.persistent_client_ids(), vec!["10.0.0.8:5432#false", "10.0.0.9:5432#false"]);
        let published: Vec<String> =
            store.persistent_published("10.0.0.9", 5432).iter().map(|(k, _)| k.name.clone()).collect();
        assert_eq!(published, vec!["a", "b"]);
        assert!(store.persistent_published("10.0.0.9", 5433).is_empty());
    }
}
