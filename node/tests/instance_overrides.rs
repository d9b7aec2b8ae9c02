//! Instance-metadata overrides (Nacos 2's
//! `NamingMetadataOperateService.updateInstanceMetadata`): an edit of an
//! ephemeral instance's weight, enabled flag or metadata through
//! `PUT /nacos/v1/ns/instance` (what the console sends) is Raft data laid
//! over what the instance's client publishes, so it survives the client
//! registering again, reconnecting and the node restarting, is the same on
//! every member, and is cleared by the leader once the instance has been
//! gone for the expiry. The pure parts (merging, laying over, the expiry
//! count) are tested in `naming::overlay`, `naming::store::overlay` and
//! `raft::override_cleaner`.

use crate::common;

use std::time::{Duration, Instant};

use reqwest::Method;
use roster_node::naming::{InstanceKey, ServiceKey};
use roster_node::RunningNode;
use serde_json::{json, Value};

use common::grpc::{register, RawClient};
use common::{eventually, http_base, http_form, http_json, start, test_config};

const WAIT: Duration = Duration::from_secs(20);

fn key(service: &str) -> ServiceKey {
    ServiceKey::new("public", "DEFAULT_GROUP", service)
}

fn ikey(ip: &str) -> InstanceKey {
    InstanceKey { ip: ip.into(), port: 80, cluster: "DEFAULT".into() }
}

/// Registers `ip`:80 in `service` over `client`'s connection, with the
/// weight 1 and the metadata `zone=a` the publisher always sends.
async fn publish(client: &mut RawClient, service: &str, ip: &str) {
    let mut body = register(service, ip, 80);
    body["instance"]["metadata"] = json!({"zone": "a"});
    let (_, v) = client.call("InstanceRequest", body).await;
    assert_eq!(v["resultCode"], 200, "{v}");
}

/// `PUT /nacos/v1/ns/instance` with `edit` on `ip`:80 of `service`, as the
/// console sends it.
async fn edit(node: &RunningNode, service: &str, ip: &str, edit: &[(&str, &str)]) -> (u16, String) {
    let mut form = vec![("serviceName", service), ("ip", ip), ("port", "80")];
    form.extend_from_slice(edit);
    http_form(Method::PUT, &format!("{}/nacos/v1/ns/instance", http_base(node)), &form).await
}

/// The hosts of `service` in the v1 list (enabled instances only).
async fn listed(node: &RunningNode, service: &str) -> Vec<Value> {
    let list = http_json(&format!("{}/nacos/v1/ns/instance/list", http_base(node)), &[("serviceName", service)]).await;
    list["hosts"].as_array().cloned().unwrap_or_default()
}

/// `(weight, metadata)` of `ip`:80 as the v1 list and the v1 instance
/// detail show it; both must agree.
async fn shown(node: &RunningNode, service: &str, ip: &str) -> (f64, Value) {
    let hosts = listed(node, service).await;
    let host = hosts.iter().find(|h| h["ip"] == ip).unwrap_or_else(|| panic!("{ip} not listed: {hosts:?}"));
    let params = [("serviceName", service), ("ip", ip), ("port", "80")];
    let detail = http_json(&format!("{}/nacos/v1/ns/instance", http_base(node)), &params).await;
    assert_eq!((&detail["weight"], &detail["metadata"]), (&host["weight"], &host["metadata"]), "{detail}");
    (host["weight"].as_f64().unwrap_or(f64::NAN), host["metadata"].clone())
}

/// Waits until a standalone node has elected itself (edits are Raft
/// writes).
async fn leading(node: &RunningNode) {
    eventually("the node leads", WAIT, || async { node.raft().has_leader().then_some(()) }).await;
}

#[tokio::test]
async fn an_edit_survives_the_publisher_registering_again_reconnecting_and_a_restart() {
    let mut config = test_config();
    let data_dir = config.data_dir.clone();
    let node = start(config.clone()).await;
    leading(&node).await;
    // One connection each: a connection's registration in a service
    // replaces what it published there before, as in Nacos.
    let mut a = RawClient::connect(&node, true).await;
    let mut other = RawClient::connect(&node, true).await;
    publish(&mut a, "svc", "10.0.0.1").await;
    publish(&mut other, "svc", "10.0.0.2").await;

    assert_eq!(edit(&node, "svc", "10.0.0.1", &[("weight", "5"), ("metadata", "owner=ops")]).await, (200, "ok".into()));
    let edited = (5.0, json!({"owner": "ops"}));
    assert_eq!(shown(&node, "svc", "10.0.0.1").await, edited, "the edit is shown: a full metadata replaces");
    assert_eq!(shown(&node, "svc", "10.0.0.2").await, (1.0, json!({"zone": "a"})), "the other is untouched");
    let published = node.store().published_instance(&key("svc"), &ikey("10.0.0.1")).expect("published");
    assert_eq!(published.weight, 1.0, "what the client publishes is its own");

    // The publisher registers again, as an SDK does after every reconnect.
    publish(&mut a, "svc", "10.0.0.1").await;
    assert_eq!(shown(&node, "svc", "10.0.0.1").await, edited, "registering again keeps the edit");
    // A disabled instance leaves the consumers' view, whatever it publishes.
    assert_eq!(edit(&node, "svc", "10.0.0.2", &[("enabled", "false")]).await.0, 200);
    publish(&mut other, "svc", "10.0.0.2").await;
    let ips: Vec<Value> = listed(&node, "svc").await.iter().map(|h| h["ip"].clone()).collect();
    assert_eq!(ips, [json!("10.0.0.1")], "disabled stays disabled");

    // Another connection (the SDK reconnected) publishes the same instance.
    drop((a, other));
    eventually("the old connection's instances are gone", WAIT, || async {
        (common::grpc::hosts(&node, "svc") == 0).then_some(())
    })
    .await;
    let mut b = RawClient::connect(&node, true).await;
    publish(&mut b, "svc", "10.0.0.1").await;
    assert_eq!(shown(&node, "svc", "10.0.0.1").await, edited, "a new connection finds the edit");
    drop(b);
    node.shutdown().await;

    // Raft data: the edit is loaded from disk with the rest.
    config.data_dir = data_dir;
    let node = start(config).await;
    assert!(node.store().instance_override(&key("svc"), &ikey("10.0.0.1")).is_some(), "loaded at start");
    let mut c = RawClient::connect(&node, true).await;
    publish(&mut c, "svc", "10.0.0.1").await;
    assert_eq!(shown(&node, "svc", "10.0.0.1").await, edited, "the edit outlives a restart");
    node.shutdown().await;
}

#[tokio::test]
async fn bad_edits_are_refused_and_change_nothing() {
    let node = start(test_config()).await;
    leading(&node).await;
    let mut a = RawClient::connect(&node, true).await;
    publish(&mut a, "svc", "10.0.0.1").await;
    let before = node.raft().status().last_log_index;
    let (status, body) = edit(&node, "svc", "10.0.0.1", &[("weight", "-1")]).await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = edit(&node, "svc", "10.0.0.1", &[("metadata", "not-a-pair")]).await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = edit(&node, "svc", "10.0.0.9", &[("weight", "2")]).await;
    assert_eq!(status, 404, "an instance nobody publishes: {body}");
    assert_eq!(node.raft().status().last_log_index, before, "nothing was written");
    assert_eq!(node.store().instance_override(&key("svc"), &ikey("10.0.0.1")), None);
    assert_eq!(shown(&node, "svc", "10.0.0.1").await, (1.0, json!({"zone": "a"})));
    node.shutdown().await;
}

fn weight_on(node: &RunningNode, service: &str, ip: &str) -> Option<f64> {
    node.store().instance(&key(service), &ikey(ip)).map(|i| i.weight)
}

#[tokio::test]
async fn an_edit_through_one_member_is_shown_by_every_member() {
    let (_dir, nodes) = common::start_ready_cluster(|_| {}).await;
    let mut a = RawClient::connect(&nodes[0], true).await;
    publish(&mut a, "svc", "10.0.1.1").await;
    eventually("every member holds the instance", WAIT, || async {
        nodes.iter().all(|n| weight_on(n, "svc", "10.0.1.1") == Some(1.0)).then_some(())
    })
    .await;
    // Edited through a member that does not hold the publisher's connection.
    assert_eq!(edit(&nodes[2], "svc", "10.0.1.1", &[("weight", "3")]).await, (200, "ok".into()));
    eventually("every member shows the edit", WAIT, || async {
        nodes.iter().all(|n| weight_on(n, "svc", "10.0.1.1") == Some(3.0)).then_some(())
    })
    .await;
    // The publisher's own member re-registering it does not undo it anywhere.
    publish(&mut a, "svc", "10.0.1.1").await;
    for n in &nodes {
        assert_eq!(shown(n, "svc", "10.0.1.1").await.0, 3.0, "on {}", n.member());
    }
    drop(a);
    for n in nodes {
        n.shutdown().await;
    }
}

#[tokio::test]
async fn the_leader_clears_an_edit_once_its_instance_has_been_gone_for_the_expiry() {
    let expiry = Duration::from_secs(1);
    let mut config = test_config();
    config.overrides.expiry = expiry;
    config.overrides.clean_interval = Duration::from_millis(100);
    let node = start(config).await;
    leading(&node).await;
    let mut a = RawClient::connect(&node, true).await;
    publish(&mut a, "svc", "10.0.2.1").await;
    assert_eq!(edit(&node, "svc", "10.0.2.1", &[("weight", "4")]).await.0, 200);

    // While published, the edit is kept however long: several expiries and
    // many cleaner runs pass.
    tokio::time::sleep(expiry * 3).await;
    assert!(node.store().instance_override(&key("svc"), &ikey("10.0.2.1")).is_some(), "kept while published");
    assert_eq!(node.metrics().raft.overrides_cleared.get(), 0);

    // Taken before the connection closes: the instance leaves after it.
    let gone = Instant::now();
    drop(a);
    eventually("the edit of the gone instance is cleared", WAIT, || async {
        node.store().instance_override(&key("svc"), &ikey("10.0.2.1")).is_none().then_some(())
    })
    .await;
    assert!(gone.elapsed() >= expiry, "not before the expiry ({:?})", gone.elapsed());
    assert_eq!(node.metrics().raft.overrides_cleared.get(), 1);
    // Cleared in Raft: the instance coming back shows what it publishes.
    let mut b = RawClient::connect(&node, true).await;
    publish(&mut b, "svc", "10.0.2.1").await;
    assert_eq!(shown(&node, "svc", "10.0.2.1").await.0, 1.0);
    drop(b);
    node.shutdown().await;
}
