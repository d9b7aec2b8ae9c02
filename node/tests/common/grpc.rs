//! The Nacos gRPC envelope spoken by hand, for the tests that drive the
//! client port without an SDK.

use std::collections::HashMap;

use roster_node::naming::{Selection, ServiceKey};
use roster_node::RunningNode;
use roster_proto::nacos::{Metadata, Payload};
use serde_json::{json, Value};

/// A request of `type_name` with `body` as its JSON, from 127.0.0.1.
pub fn payload(type_name: &str, body: &Value) -> Payload {
    Payload {
        metadata: Some(Metadata { r#type: type_name.into(), client_ip: "127.0.0.1".into(), headers: HashMap::new() }),
        body: Some(prost_types::Any { type_url: String::new(), value: serde_json::to_vec(body).expect("json") }),
    }
}

/// The type and JSON body of an answer.
pub fn body(p: &Payload) -> (String, Value) {
    let t = p.metadata.as_ref().map(|m| m.r#type.clone()).unwrap_or_default();
    let v = serde_json::from_slice(&p.body.as_ref().expect("body").value).expect("json body");
    (t, v)
}

/// The body of an `InstanceRequest` registering `ip:port` in `service`
/// (public namespace, default group and cluster).
pub fn register(service: &str, ip: &str, port: i64) -> Value {
    json!({
        "headers": {}, "namespace": "public", "serviceName": service, "groupName": "DEFAULT_GROUP",
        "type": "registerInstance", "module": "naming",
        "instance": {"ip": ip, "port": port, "weight": 1.0, "healthy": true, "enabled": true, "ephemeral": true, "clusterName": "DEFAULT", "metadata": {}}
    })
}

/// How many instances `node` holds for `service` (public, default group).
pub fn hosts(node: &RunningNode, service: &str) -> usize {
    node.state.store.query(&ServiceKey::new("public", "DEFAULT_GROUP", service), &Selection::default()).hosts.len()
}
