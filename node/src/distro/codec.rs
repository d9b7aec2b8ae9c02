//! Clients on the wire: [`ClientCopy`] to and from the peer protocol's
//! `ClientData`.
//!
//! An instance travels as the JSON of Roster's stored [`Instance`]. What a
//! peer sends is checked like client input (the same validation), so a
//! corrupt or hostile message is refused whole and changes nothing.

use prost::Message;
use roster_proto::peer::{ClientData, PublishedInstance};

use crate::naming::validate::{self, Limits};
use crate::naming::{ClientCopy, ClientKind, Instance, InstanceWire};

/// Encodes a client for a peer.
pub fn encode(copy: &ClientCopy) -> ClientData {
    ClientData {
        client_id: copy.id.clone(),
        revision: copy.revision,
        connection_based: copy.kind == ClientKind::Connection,
        instances: copy
            .instances
            .iter()
            .map(|(service, instance)| PublishedInstance {
                namespace: service.namespace.clone(),
                group: service.group.clone(),
                service: service.name.clone(),
                // Serialising plain data to JSON cannot fail.
                instance_json: serde_json::to_string(instance).unwrap_or_default(),
            })
            .collect(),
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
        error: InstanceError,
    },
}

/// What is wrong with one instance sent by a peer.
#[derive(Debug, thiserror::Error)]
pub enum InstanceError {
    /// Not the JSON of an instance.
    #[error("instance JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// Persistent instances travel by Raft only.
    #[error("a persistent instance cannot travel by Distro")]
    Persistent,
    /// Refused by the client-input checks.
    #[error("{0}")]
    Invalid(crate::error::Error),
}

/// Decodes a client sent by a peer, refusing anything a client could not
/// have registered.
pub fn decode(data: ClientData, limits: &Limits) -> Result<ClientCopy, DecodeError> {
    if data.client_id.is_empty() || data.client_id.len() > 512 {
        return Err(DecodeError::ClientId(data.client_id.len()));
    }
    let kind = if data.connection_based { ClientKind::Connection } else { ClientKind::IpPort };
    let mut instances = Vec::with_capacity(data.instances.len());
    for published in data.instances {
        let service =
            validate::service_key(Some(&published.namespace), Some(&published.group), Some(&published.service))
                .map_err(|error| DecodeError::Service { client: data.client_id.clone(), error })?;
        let instance = decode_instance(&published.instance_json, limits).map_err(|error| DecodeError::Instance {
            client: data.client_id.clone(),
            service: service.to_string(),
            error,
        })?;
        instances.push((service, instance));
    }
    Ok(ClientCopy { id: data.client_id, kind, revision: data.revision, instances })
}

fn decode_instance(json: &str, limits: &Limits) -> Result<Instance, InstanceError> {
    let instance: Instance = serde_json::from_str(json)?;
    if !instance.ephemeral {
        return Err(InstanceError::Persistent);
    }
    // Run it through the client-input checks, so nothing a client could not
    // register enters through a peer.
    let wire = InstanceWire {
        ip: instance.ip.clone(),
        port: i64::from(instance.port),
        weight: instance.weight,
        healthy: instance.healthy,
        enabled: instance.enabled,
        ephemeral: true,
        cluster_name: Some(instance.cluster.clone()),
        metadata: instance.metadata.clone(),
        ..InstanceWire::default()
    };
    validate::instance(&wire, Some(true), limits).map_err(InstanceError::Invalid)?;
    Ok(instance)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::naming::ServiceKey;

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

    #[test]
    fn round_trip() {
        let copy = ClientCopy {
            id: "10.0.0.1:80#true".into(),
            kind: ClientKind::IpPort,
            revision: 42,
            instances: vec![(ServiceKey::new("dev", "g", "s"), instance())],
        };
        let data = encode(&copy);
        let published = &data.instances[0];
        assert_eq!(
            (published.namespace.as_str(), published.group.as_str(), published.service.as_str()),
            ("dev", "g", "s")
        );
        assert_eq!(decode(data, &limits()).ok(), Some(copy));
    }

    #[test]
    fn groups_stay_within_the_byte_budget() {
        let client = |id: &str, n: usize| {
            encode(&ClientCopy {
                id: id.into(),
                kind: ClientKind::Connection,
                revision: 1,
                instances: (0..n)
                    .map(|i| {
                        let mut inst = instance();
                        inst.port = u16::try_from(i + 1).expect("small");
                        (ServiceKey::new("public", "DEFAULT_GROUP", "s"), inst)
                    })
                    .collect(),
            })
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
        let good = encode(&ClientCopy {
            id: "c".into(),
            kind: ClientKind::Connection,
            revision: 1,
            instances: vec![(ServiceKey::new("public", "DEFAULT_GROUP", "s"), instance())],
        });
        let mut bad_json = good.clone();
        bad_json.instances[0].instance_json = "{".into();
        let mut bad_service = good.clone();
        bad_service.instances[0].service = String::new();
        let mut bad_port = good.clone();
        bad_port.instances[0].instance_json = bad_port.instances[0].instance_json.replace("\"port\":80", "\"port\":0");
        let mut persistent = good.clone();
        persistent.instances[0].instance_json =
            persistent.instances[0].instance_json.replace("\"ephemeral\":true", "\"ephemeral\":false");
        let mut no_id = good.clone();
        no_id.client_id = String::new();
        for (what, data) in [
            ("json", bad_json),
            ("service", bad_service),
            ("port", bad_port),
            ("persistent", persistent),
            ("id", no_id),
        ] {
            assert!(decode(data, &limits()).is_err(), "{what} accepted");
        }
        assert!(decode(good, &limits()).is_ok());
    }
}
