//! Clients on the wire: [`ClientCopy`] to and from the peer protocol's
//! `ClientData`.
//!
//! An instance travels as protobuf fields (address, weight, health,
//! metadata) with the revision of its slot; a removal record as the slot's
//! key and the revision of its removal. What a peer sends is checked like
//! client input (the same validation), so a corrupt or hostile message is
//! refused whole and changes nothing.

use prost::Message;
use roster_proto::peer::{ClientData, PublishedInstance, RemovedInstance};

use crate::naming::validate::{self, Limits};
use crate::naming::{ClientCopy, ClientKind, Delta, Instance, InstanceKey, InstanceWire, Owner, ServiceKey};

/// Longest client id or owner name accepted from a peer, in bytes.
const MAX_ID_BYTES: usize = 512;

/// Encodes a client (whole or in part) for a peer.
pub fn encode(copy: &ClientCopy) -> ClientData {
    let delta = &copy.delta;
    let (owner, owner_incarnation) = match &copy.owner {
        Some(o) => (o.member.clone(), o.incarnation),
        None => (String::new(), 0),
    };
    ClientData {
        client_id: copy.id.clone(),
        revision: delta.revision,
        connection_based: copy.kind == ClientKind::Connection,
        instances: delta
            .live
            .iter()
            .map(|(service, i, revision)| PublishedInstance {
                namespace: service.namespace.clone(),
                group: service.group.clone(),
                service: service.name.clone(),
                ip: i.ip.clone(),
                port: u32::from(i.port),
                cluster: i.cluster.clone(),
                weight: i.weight,
                healthy: i.healthy,
                enabled: i.enabled,
                metadata: i.metadata.clone(),
                revision: *revision,
            })
            .collect(),
        removed: delta
            .removed
            .iter()
            .map(|(service, key, revision)| RemovedInstance {
                namespace: service.namespace.clone(),
                group: service.group.clone(),
                service: service.name.clone(),
                ip: key.ip.clone(),
                port: u32::from(key.port),
                cluster: key.cluster.clone(),
                revision: *revision,
            })
            .collect(),
        floor: delta.floor,
        owner,
        owner_incarnation,
    }
}

/// Encoded bytes one sync message or snapshot chunk aims to stay under.
/// Far below the peer port's message limit ([`crate::peer::MIN_MESSAGE_BYTES`] and up):
/// clients vary in size (a connection may publish thousands of instances),
/// so a count of clients alone does not bound a message, and smaller
/// messages keep both sides' memory flat.
pub const MESSAGE_BUDGET_BYTES: usize = 4 * 1024 * 1024;

/// Splits encoded clients into groups of at most `max_clients` whose
/// encoded size stays within `max_bytes`, in order. A client larger than
/// `max_bytes` travels alone. Never returns an empty group.
pub fn split_by_size(clients: Vec<ClientData>, max_clients: usize, max_bytes: usize) -> Vec<Vec<ClientData>> {
    let mut groups = Vec::new();
    let mut current = Vec::new();
    let mut bytes = 0usize;
    for data in clients {
        // Field tag and length prefix of the repeated field: a few bytes each.
        let len = data.encoded_len() + 8;
        if !current.is_empty() && (current.len() >= max_clients.max(1) || bytes + len > max_bytes) {
            groups.push(std::mem::take(&mut current));
            bytes = 0;
        }
        bytes += len;
        current.push(data);
    }
    if !current.is_empty() {
        groups.push(current);
    }
    groups
}

/// Why a client sent by a peer was refused.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// An empty client id, or one longer than 512 bytes.
    #[error("client id of {0} bytes")]
    ClientId(usize),
    /// An owner name longer than 512 bytes, or one on an ip:port client.
    #[error("client {0}: an owner only a connection can have, or one too long")]
    Owner(String),
    /// A service name a client could not have used.
    #[error("client {client}: {error}")]
    Service {
        /// The client.
        client: String,
        /// What the name check said.
        error: crate::error::Error,
    },
    /// An instance a client could not have registered.
    #[error("client {client} in {service}: {error}")]
    Instance {
        /// The client.
        client: String,
        /// Its service (`namespace/group@@name`).
        service: String,
        /// What is wrong with the instance.
        error: crate::error::Error,
    },
}

/// Decodes a client sent by a peer, refusing anything a client could not
/// have registered.
pub fn decode(data: ClientData, limits: &Limits) -> Result<ClientCopy, DecodeError> {
    let id = data.client_id;
    if id.is_empty() || id.len() > MAX_ID_BYTES {
        return Err(DecodeError::ClientId(id.len()));
    }
    let kind = if data.connection_based { ClientKind::Connection } else { ClientKind::IpPort };
    let owner = match (kind, data.owner.is_empty()) {
        (_, true) => None,
        (ClientKind::Connection, false) if data.owner.len() <= MAX_ID_BYTES => {
            Some(Owner { member: data.owner, incarnation: data.owner_incarnation })
        }
        _ => return Err(DecodeError::Owner(id)),
    };
    let service_of = |namespace: &str, group: &str, name: &str| {
        validate::service_key(Some(namespace), Some(group), Some(name))
            .map_err(|error| DecodeError::Service { client: id.clone(), error })
    };
    let refused =
        |service: &ServiceKey, error| DecodeError::Instance { client: id.clone(), service: service.to_string(), error };
    let mut live = Vec::with_capacity(data.instances.len());
    for published in data.instances {
        let service = service_of(&published.namespace, &published.group, &published.service)?;
        let instance = decode_instance(&published, limits).map_err(|e| refused(&service, e))?;
        live.push((service, instance, published.revision));
    }
    let mut removed = Vec::with_capacity(data.removed.len());
    for record in data.removed {
        let service = service_of(&record.namespace, &record.group, &record.service)?;
        let key = decode_key(&record.ip, record.port, &record.cluster).map_err(|e| refused(&service, e))?;
        removed.push((service, key, record.revision));
    }
    let delta = Delta { revision: data.revision, floor: data.floor, live, removed };
    Ok(ClientCopy { id, kind, owner, delta })
}

/// A peer's port, as the client-input check sees it.
fn port_of(port: u32) -> i64 {
    i64::from(port)
}

fn decode_key(ip: &str, port: u32, cluster: &str) -> crate::error::Result<InstanceKey> {
    Ok(InstanceKey {
        ip: validate::ip(Some(ip))?,
        port: validate::port(port_of(port))?,
        cluster: validate::cluster(Some(cluster))?,
    })
}

/// Runs an instance through the client-input checks, so nothing a client
/// could not register enters through a peer. Distro carries ephemeral
/// instances only: persistent ones travel by Raft.
fn decode_instance(published: &PublishedInstance, limits: &Limits) -> crate::error::Result<Instance> {
    let wire = InstanceWire {
        ip: published.ip.clone(),
        port: port_of(published.port),
        weight: published.weight,
        healthy: published.healthy,
        enabled: published.enabled,
        ephemeral: true,
        cluster_name: Some(published.cluster.clone()),
        metadata: published.metadata.clone(),
        ..InstanceWire::default()
    };
    validate::instance(&wire, Some(true), limits)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn limits() -> Limits {
        Limits { max_metadata_bytes: 1024, max_batch_instances: 10 }
    }

    fn instance() -> Instance {
        Instance {
            ip: "10.0.0.1".into(),
            port: 80,
            weight: 2.0,
            healthy: false,
            enabled: true,
            ephemeral: true,
            cluster: "east".into(),
            metadata: BTreeMap::from([("k".to_string(), "v".to_string())]),
        }
    }

    fn copy_of(id: &str, kind: ClientKind, live: Vec<(ServiceKey, Instance, u64)>) -> ClientCopy {
        ClientCopy { id: id.into(), kind, owner: None, delta: Delta { revision: 42, live, ..Delta::default() } }
    }

    #[test]
    fn round_trip() {
        let service = ServiceKey::new("dev", "g", "s");
        let copy = ClientCopy {
            id: "1700000000000_10.0.0.9_5555".into(),
            kind: ClientKind::Connection,
            owner: Some(Owner { member: "a:8848".into(), incarnation: 17 }),
            delta: Delta {
                revision: 42,
                floor: 7,
                live: vec![(service.clone(), instance(), 40)],
                removed: vec![(
                    service.clone(),
                    InstanceKey { ip: "10.0.0.2".into(), port: 81, cluster: "DEFAULT".into() },
                    41,
                )],
            },
        };
        let data = encode(&copy);
        let published = &data.instances[0];
        assert_eq!(
            (published.namespace.as_str(), published.group.as_str(), published.service.as_str(), published.revision),
            ("dev", "g", "s", 40)
        );
        assert_eq!(decode(data, &limits()).ok(), Some(copy));
    }

    #[test]
    fn groups_stay_within_the_byte_budget() {
        let client = |id: &str, n: usize| {
            let live = (0..n)
                .map(|i| {
                    let mut inst = instance();
                    inst.port = u16::try_from(i + 1).expect("small");
                    (ServiceKey::new("public", "DEFAULT_GROUP", "s"), inst, 1)
                })
                .collect();
            encode(&copy_of(id, ClientKind::Connection, live))
        };
        let big = client("big", 100);
        let big_len = big.encoded_len();
        let small = client("small", 1);
        let budget = big_len + 200;
        // Many small clients are cut by count, big ones by bytes, in order.
        let groups = split_by_size(vec![small.clone(); 5], 2, budget);
        assert_eq!(groups.iter().map(Vec::len).collect::<Vec<_>>(), [2, 2, 1]);
        let groups = split_by_size(vec![big.clone(), small.clone(), big.clone(), big.clone()], 500, budget);
        let ids: Vec<Vec<&str>> = groups.iter().map(|g| g.iter().map(|c| c.client_id.as_str()).collect()).collect();
        assert_eq!(ids, [vec!["big", "small"], vec!["big"], vec!["big"]]);
        for g in &groups {
            let total: usize = g.iter().map(|c| c.encoded_len() + 8).sum();
            assert!(total <= budget, "{total} > {budget}");
        }
        // A client above the budget travels alone; nothing yields an empty group.
        let groups = split_by_size(vec![big.clone(), big], 500, 10);
        assert_eq!(groups.iter().map(Vec::len).collect::<Vec<_>>(), [1, 1]);
        assert!(split_by_size(Vec::new(), 500, 10).is_empty());
    }

    #[test]
    fn bad_peer_data_is_refused() {
        let good = encode(&copy_of(
            "c",
            ClientKind::Connection,
            vec![(ServiceKey::new("public", "DEFAULT_GROUP", "s"), instance(), 1)],
        ));
        type Break = fn(&mut ClientData);
        let broken: Vec<(&str, Break)> = vec![
            ("service", |d| d.instances[0].service = String::new()),
            ("port zero", |d| d.instances[0].port = 0),
            ("port too high", |d| d.instances[0].port = 70_000),
            ("ip", |d| d.instances[0].ip = "10.0.0.1/24".into()),
            ("weight", |d| d.instances[0].weight = f64::NAN),
            ("metadata", |d| {
                d.instances[0].metadata.insert("k".into(), "x".repeat(2000));
            }),
            ("removed ip", |d| {
                d.removed.push(RemovedInstance {
                    namespace: "public".into(),
                    group: "DEFAULT_GROUP".into(),
                    service: "s".into(),
                    ip: String::new(),
                    port: 80,
                    cluster: "DEFAULT".into(),
                    revision: 1,
                })
            }),
            ("id", |d| d.client_id = String::new()),
            ("long id", |d| d.client_id = "x".repeat(513)),
            ("owner of an ip:port client", |d| {
                d.connection_based = false;
                d.owner = "a:8848".into();
            }),
        ];
        for (what, change) in broken {
            let mut data = good.clone();
            change(&mut data);
            assert!(decode(data, &limits()).is_err(), "{what} accepted");
        }
        assert!(decode(good, &limits()).is_ok());
    }
}
