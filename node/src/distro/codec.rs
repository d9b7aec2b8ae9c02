//! Clients on the wire: [`ClientCopy`] to and from the peer protocol's
//! `ClientData`.
//!
//! An instance travels as the JSON of Roster's stored [`Instance`]. What a
//! peer sends is checked like client input (the same validation), so a
//! corrupt or hostile message is refused whole and changes nothing.

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

/// Decodes a client sent by a peer, refusing anything a client could not
/// have registered.
pub fn decode(data: ClientData, limits: &Limits) -> Result<ClientCopy, String> {
    if data.client_id.is_empty() || data.client_id.len() > 512 {
        return Err(format!("client id of {} bytes", data.client_id.len()));
    }
    let kind = if data.connection_based { ClientKind::Connection } else { ClientKind::IpPort };
    let mut instances = Vec::with_capacity(data.instances.len());
    for published in data.instances {
        let service =
            validate::service_key(Some(&published.namespace), Some(&published.group), Some(&published.service))
                .map_err(|e| format!("client {}: {e}", data.client_id))?;
        let instance = decode_instance(&published.instance_json, limits)
            .map_err(|e| format!("client {} in {service}: {e}", data.client_id))?;
        instances.push((service, instance));
    }
    Ok(ClientCopy { id: data.client_id, kind, revision: data.revision, instances })
}

fn decode_instance(json: &str, limits: &Limits) -> Result<Instance, String> {
    let instance: Instance = serde_json::from_str(json).map_err(|e| format!("instance JSON: {e}"))?;
    if !instance.ephemeral {
        return Err("a persistent instance cannot travel by Distro".into());
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
    validate::instance(&wire, Some(true), limits).map_err(|e| e.to_string())?;
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
        assert_eq!(decode(data, &limits()), Ok(copy));
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
