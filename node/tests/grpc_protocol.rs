//! The Nacos gRPC protocol spoken by hand: the handshake, connection
//! lifecycle (a dropped or silent connection loses its instances) and every
//! kind of bad input, each asserting the error and an unchanged store.

use crate::common;

use std::collections::HashMap;
use std::time::Duration;

use roster_node::naming::{Selection, ServiceKey, StoreCounts};
use roster_node::RunningNode;
use roster_proto::nacos::request_client::RequestClient;
use roster_proto::nacos::{Metadata, Payload};
use serde_json::{json, Value};
use tonic::transport::Channel;

use common::grpc::{body, hosts, payload, register, RawClient};
use common::{eventually, start, test_config};

const WAIT: Duration = Duration::from_secs(10);

fn raw_payload(type_name: &str, body: &[u8]) -> Payload {
    Payload {
        metadata: Some(Metadata { r#type: type_name.into(), client_ip: String::new(), headers: HashMap::new() }),
        body: Some(prost_types::Any { type_url: String::new(), value: body.to_vec() }),
    }
}

#[tokio::test]
async fn handshake_register_and_query() {
    let node = start(test_config()).await;
    let mut c = RawClient::connect(&node, true).await;
    assert!(c.answers);
    let (t, v) = c.call("InstanceRequest", register("svc", "10.0.0.1", 80)).await;
    assert_eq!(t, "InstanceResponse");
    assert_eq!(v["resultCode"], 200);
    assert_eq!(v["type"], "registerInstance");
    let (t, v) = c
        .call("ServiceQueryRequest", json!({"serviceName": "svc", "groupName": "DEFAULT_GROUP", "namespace": "public", "cluster": "", "healthyOnly": false, "udpPort": 0, "module": "naming", "requestId": "r1"}))
        .await;
    assert_eq!(t, "QueryServiceResponse");
    assert_eq!(v["requestId"], "r1");
    let info = &v["serviceInfo"];
    assert_eq!(info["name"], "svc");
    assert_eq!(info["groupName"], "DEFAULT_GROUP");
    assert_eq!(info["cacheMillis"], 10000);
    assert_eq!(info["hosts"][0]["ip"], "10.0.0.1");
    assert_eq!(info["hosts"][0]["instanceId"], "10.0.0.1#80#DEFAULT#DEFAULT_GROUP@@svc");
    let (t, _) = c.call("HealthCheckRequest", json!({"headers": {}, "module": "internal"})).await;
    assert_eq!(t, "HealthCheckResponse");
    node.shutdown().await;
}

#[tokio::test]
async fn closed_connection_loses_its_instances() {
    let node = start(test_config()).await;
    let mut c = RawClient::connect(&node, true).await;
    c.call("InstanceRequest", register("svc", "10.0.0.1", 80)).await;
    let (t, v) =
        c.call("SubscribeServiceRequest", json!({"serviceName": "other", "subscribe": true, "clusters": ""})).await;
    assert_eq!((t.as_str(), v["resultCode"].as_i64()), ("SubscribeServiceResponse", Some(200)));
    assert_eq!(hosts(&node, "svc"), 1);
    assert_eq!(node.subscribers().count(), 1);
    assert!(node.store().has_client(&c.connection_id));
    drop(c);
    eventually("instances of the closed connection removed", WAIT, || async {
        (hosts(&node, "svc") == 0).then_some(())
    })
    .await;
    assert_eq!(node.connections().count(), 0);
    assert_eq!(node.subscribers().count(), 0, "subscriptions go with the connection");
    node.shutdown().await;
}

#[tokio::test]
async fn silent_connection_is_ejected() {
    let mut config = test_config();
    config.connections.idle_timeout = Duration::from_millis(300);
    config.connections.detection_timeout = Duration::from_millis(300);
    config.connections.check_interval = Duration::from_millis(100);
    let node = start(config).await;
    let mut silent = RawClient::connect(&node, false).await;
    let mut alive = RawClient::connect(&node, true).await;
    silent.call("InstanceRequest", register("svc", "10.0.0.1", 80)).await;
    alive.call("InstanceRequest", register("svc", "10.0.0.2", 80)).await;
    eventually("silent connection ejected", WAIT, || async { (hosts(&node, "svc") == 1).then_some(()) }).await;
    assert!(!node.store().has_client(&silent.connection_id));
    assert!(node.store().has_client(&alive.connection_id), "a client that answers detection stays");
    // The ejected client's next request is refused as unregistered.
    let (t, v) = silent.call("InstanceRequest", register("svc", "10.0.0.9", 80)).await;
    assert_eq!((t.as_str(), v["errorCode"].as_i64()), ("ErrorResponse", Some(301)));
    assert_eq!(hosts(&node, "svc"), 1);
    drop(silent.to_server.take());
    node.shutdown().await;
}

#[tokio::test]
async fn request_before_setup_is_unregistered() {
    let node = start(test_config()).await;
    let channel =
        Channel::from_shared(format!("http://{}", node.grpc_addr)).expect("uri").connect().await.expect("connect");
    let mut unary = RequestClient::new(channel);
    let answer = unary.request(payload("InstanceRequest", &register("svc", "10.0.0.1", 80))).await.expect("call");
    let (t, v) = body(answer.get_ref());
    assert_eq!(t, "ErrorResponse");
    assert_eq!(v["errorCode"], 301);
    assert_eq!(node.store().counts(), StoreCounts::default());
    node.shutdown().await;
}

/// Every malformed request is refused with a Nacos error and leaves the
/// store exactly as it was.
#[tokio::test]
async fn bad_input_changes_nothing() {
    let mut config = test_config();
    config.limits.max_metadata_bytes = 64;
    config.limits.max_batch_instances = 2;
    let node = start(config).await;
    let mut c = RawClient::connect(&node, true).await;
    c.call("InstanceRequest", register("svc", "10.0.0.1", 80)).await;
    let before = node.store().counts();
    let view_before =
        node.store().query(&ServiceKey::new("public", "DEFAULT_GROUP", "svc"), &Selection::default()).hosts;

    let with = |f: &dyn Fn(&mut Value)| {
        let mut v = register("svc", "10.0.0.2", 81);
        f(&mut v);
        v
    };
    let cases: Vec<(&str, Value, i64, &str)> = vec![
        (
            "missing serviceName",
            with(&|v| {
                v.as_object_mut().map(|o| o.remove("serviceName"));
            }),
            400,
            "serviceName",
        ),
        ("blank serviceName", with(&|v| v["serviceName"] = json!("  ")), 400, "serviceName"),
        ("bad namespace", with(&|v| v["namespace"] = json!("has space")), 400, "namespaceId"),
        ("port 0", with(&|v| v["instance"]["port"] = json!(0)), 400, "port"),
        ("port 70000", with(&|v| v["instance"]["port"] = json!(70000)), 400, "port"),
        ("weight too high", with(&|v| v["instance"]["weight"] = json!(20000.0)), 400, "weight"),
        ("negative weight", with(&|v| v["instance"]["weight"] = json!(-1.0)), 400, "weight"),
        ("blank ip", with(&|v| v["instance"]["ip"] = json!("")), 400, "ip"),
        ("bad cluster", with(&|v| v["instance"]["clusterName"] = json!("a/b")), 400, "clusterName"),
        ("oversize metadata", with(&|v| v["instance"]["metadata"] = json!({"k": "x".repeat(100)})), 400, "metadata"),
        (
            "no instance",
            with(&|v| {
                v.as_object_mut().map(|o| o.remove("instance"));
            }),
            400,
            "instance",
        ),
        ("persistent through InstanceRequest", with(&|v| v["instance"]["ephemeral"] = json!(false)), 400, "ephemeral"),
        ("unknown operation", with(&|v| v["type"] = json!("renameInstance")), 400, "renameInstance"),
        ("port as text", with(&|v| v["instance"]["port"] = json!("eighty")), 502, "invalid"),
    ];
    for (what, request, code, needle) in cases {
        let (t, v) = c.call("InstanceRequest", request).await;
        assert_eq!(t, "ErrorResponse", "{what}: {v}");
        assert_eq!(v["errorCode"].as_i64(), Some(code), "{what}: {v}");
        assert_eq!(v["resultCode"], 500, "{what}");
        let message = v["message"].as_str().unwrap_or_default();
        assert!(message.contains(needle), "{what}: message {message:?} should mention {needle:?}");
    }

    let (t, v) = c.call_raw(raw_payload("InstanceRequest", b"{not json")).await;
    assert_eq!((t.as_str(), v["errorCode"].as_i64()), ("ErrorResponse", Some(502)));
    let (t, v) = c.call("NoSuchRequest", json!({})).await;
    assert_eq!((t.as_str(), v["errorCode"].as_i64()), ("ErrorResponse", Some(302)));
    let (t, v) = c.call_raw(Payload { metadata: None, body: None }).await;
    assert_eq!(t, "ErrorResponse");
    assert_eq!(v["errorCode"], 502);
    let batch = json!({"serviceName": "svc", "type": "batchRegisterInstance", "instances": [
        {"ip": "10.0.0.3", "port": 1}, {"ip": "10.0.0.4", "port": 1}, {"ip": "10.0.0.5", "port": 1}]});
    let (_, v) = c.call("BatchInstanceRequest", batch).await;
    assert_eq!(v["errorCode"], 400, "batch over the limit: {v}");
    let batch = json!({"serviceName": "svc", "type": "batchRegisterInstance", "instances": [
        {"ip": "10.0.0.3", "port": 1}, {"ip": "10.0.0.4", "port": 0}]});
    let (_, v) = c.call("BatchInstanceRequest", batch).await;
    assert_eq!(v["errorCode"], 400, "one bad instance refuses the whole batch: {v}");
    let (_, v) = c.call("ServiceListRequest", json!({"pageNo": 0, "pageSize": 10})).await;
    assert_eq!(v["errorCode"], 400);
    let (_, v) =
        c.call("ServiceListRequest", json!({"pageNo": 1, "pageSize": 10, "selector": "{\"type\":\"label\"}"})).await;
    assert_eq!(v["errorCode"], 400);

    assert_eq!(node.store().counts(), before);
    let view_after =
        node.store().query(&ServiceKey::new("public", "DEFAULT_GROUP", "svc"), &Selection::default()).hosts;
    assert_eq!(view_after, view_before);
    node.shutdown().await;
}

#[tokio::test]
async fn oversize_message_is_refused() {
    let mut config = test_config();
    config.limits.max_grpc_message_bytes = 4096;
    let node = start(config).await;
    let mut c = RawClient::connect(&node, true).await;
    let mut big = register("svc", "10.0.0.1", 80);
    big["instance"]["metadata"] = json!({"k": "x".repeat(8192)});
    let status = c.unary.request(payload("InstanceRequest", &big)).await.expect_err("too large");
    assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
    assert_eq!(node.store().counts().instances, 0);
    // The connection still works for normal requests.
    let (_, v) = c.call("InstanceRequest", register("svc", "10.0.0.1", 80)).await;
    assert_eq!(v["resultCode"], 200);
    node.shutdown().await;
}

#[tokio::test]
async fn persistent_instances_outlive_the_connection() {
    let node = start(test_config()).await;
    let mut c = RawClient::connect(&node, true).await;
    let mut req = register("db", "10.0.0.7", 5432);
    req["instance"]["ephemeral"] = json!(false);
    let (t, v) = c.call("PersistentInstanceRequest", req).await;
    assert_eq!((t.as_str(), v["resultCode"].as_i64()), ("InstanceResponse", Some(200)));
    drop(c);
    eventually("connection gone", WAIT, || async { (node.connections().count() == 0).then_some(()) }).await;
    let info = node.store().query(&ServiceKey::new("public", "DEFAULT_GROUP", "db"), &Selection::default());
    assert_eq!(info.hosts.len(), 1);
    assert!(!info.hosts[0].ephemeral);
    node.shutdown().await;
}

#[tokio::test]
async fn a_new_subscription_is_pushed_the_current_view() {
    // Nacos pushes the view to a new subscriber (`ServiceSubscribedEvent`).
    // The SDK's redo of a subscription after a reconnect ignores the answer
    // and relies on that push; without it the chaos suite saw a subscriber
    // keep a stale view once its node had been killed.
    let node = start(test_config()).await;
    let mut c = RawClient::connect(&node, true).await;
    c.call("InstanceRequest", register("svc", "10.0.0.1", 80)).await;
    let pushed_ok = |node: &RunningNode| {
        let text = node.metrics_text();
        text.lines().find_map(|l| l.strip_prefix("roster_pushes_total{result=\"ok\"} ")).map(|n| n.trim().to_owned())
    };
    assert_eq!(pushed_ok(&node), None, "nobody subscribed yet");
    let (t, v) =
        c.call("SubscribeServiceRequest", json!({"serviceName": "svc", "subscribe": true, "clusters": ""})).await;
    assert_eq!((t.as_str(), v["resultCode"].as_i64()), ("SubscribeServiceResponse", Some(200)));
    eventually("the new subscriber is pushed the view", WAIT, || async {
        (pushed_ok(&node).as_deref() == Some("1")).then_some(())
    })
    .await;
    node.shutdown().await;
}

/// `ip:port` of every host of `service` as `node` shows it, sorted.
fn addresses(node: &RunningNode, service: &str) -> Vec<String> {
    let key = ServiceKey::new("public", "DEFAULT_GROUP", service);
    let mut out: Vec<String> =
        node.store().query(&key, &Selection::default()).hosts.iter().map(|h| format!("{}:{}", h.ip, h.port)).collect();
    out.sort();
    out
}

fn deregister(service: &str, ip: &str, port: i64, cluster: &str) -> Value {
    let mut body = register(service, ip, port);
    body["type"] = json!("deregisterInstance");
    body["instance"]["clusterName"] = json!(cluster);
    body
}

/// Nacos's `EphemeralClientOperationServiceImpl.deregisterInstance`: a
/// connection's deregister removes whatever that connection publishes in
/// the service, whatever ip, port and cluster the request names; the other
/// services and the other connections keep theirs, and the HTTP deregister
/// stays exact.
#[tokio::test]
async fn a_deregister_removes_what_the_connection_published_in_the_service() {
    let node = start(test_config()).await;
    let mut a = RawClient::connect(&node, true).await;
    let mut b = RawClient::connect(&node, true).await;
    let instance = |ip: &str, cluster: &str| json!({"ip": ip, "port": 80, "weight": 1.0, "healthy": true, "enabled": true, "ephemeral": true, "clusterName": cluster, "metadata": {}});
    let batch = json!({"namespace": "public", "groupName": "DEFAULT_GROUP", "serviceName": "svc", "type": "batchRegisterInstance",
        "instances": [instance("10.0.0.1", "DEFAULT"), instance("10.0.0.2", "east")]});
    let (_, v) = a.call("BatchInstanceRequest", batch).await;
    assert_eq!(v["resultCode"], 200, "{v}");
    a.call("InstanceRequest", register("other", "10.0.0.1", 80)).await;
    b.call("InstanceRequest", register("svc", "10.0.0.9", 80)).await;
    assert_eq!(addresses(&node, "svc"), ["10.0.0.1:80", "10.0.0.2:80", "10.0.0.9:80"]);

    let (t, v) = a.call("InstanceRequest", deregister("svc", "10.9.9.9", 1, "nowhere")).await;
    assert_eq!(
        (t.as_str(), v["resultCode"].as_i64(), v["type"].as_str()),
        ("InstanceResponse", Some(200), Some("deregisterInstance"))
    );
    assert_eq!(addresses(&node, "svc"), ["10.0.0.9:80"], "the whole batch goes, the other connection's stays");
    assert_eq!(addresses(&node, "other"), ["10.0.0.1:80"], "other services keep theirs");

    // Nothing left to remove: success, and the client is not even touched.
    let revision = node.store().client(&a.connection_id).map(|c| c.revision());
    let (_, v) = a.call("InstanceRequest", deregister("svc", "10.0.0.1", 80, "DEFAULT")).await;
    assert_eq!(v["resultCode"], 200, "{v}");
    assert_eq!(node.store().client(&a.connection_id).map(|c| c.revision()), revision);
    // A malformed instance is still refused, and changes nothing.
    let (t, v) = b.call("InstanceRequest", deregister("svc", "10.0.0.9", 70000, "DEFAULT")).await;
    assert_eq!((t.as_str(), v["errorCode"].as_i64()), ("ErrorResponse", Some(400)), "{v}");
    assert_eq!(addresses(&node, "svc"), ["10.0.0.9:80"]);

    // HTTP (ip:port clients): only the instance named goes.
    let url = format!("{}/nacos/v1/ns/instance", common::http_base(&node));
    for ip in ["10.0.1.1", "10.0.1.2"] {
        let form = [("serviceName", "http-svc"), ("ip", ip), ("port", "80")];
        assert_eq!(common::http_form(reqwest::Method::POST, &url, &form).await.0, 200);
    }
    let named = [("serviceName", "http-svc"), ("ip", "10.0.1.1"), ("port", "80")];
    assert_eq!(common::http_query(reqwest::Method::DELETE, &url, &named).await.0, 200);
    assert_eq!(addresses(&node, "http-svc"), ["10.0.1.2:80"]);
    node.shutdown().await;
}
