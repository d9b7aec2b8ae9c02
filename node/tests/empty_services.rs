//! Emptied services (Nacos's `EmptyServiceAutoCleanerV2`): a service whose
//! last instance leaves stays listed, with no hosts, in every list and query
//! until the cleaner finds it empty for the retention, on every member; a
//! deleted one goes at once. The timer logic itself is tested on paused time
//! in `naming::cleaner`; here the retention is shortened and the nodes real.

use crate::common;

use std::time::{Duration, Instant};

use reqwest::Method;
use roster_node::{Config, RunningNode};
use serde_json::{json, Value};

use common::grpc::{register, RawClient};
use common::{eventually, http_base, http_form, http_json, http_query, start, test_config};

const WAIT: Duration = Duration::from_secs(20);

/// `config` with the given retention and a clean run every 100 ms.
fn shortened(mut config: Config, retention: Duration) -> Config {
    shorten(&mut config, retention);
    config
}

fn shorten(config: &mut Config, retention: Duration) {
    config.empty_services.retention = retention;
    config.empty_services.clean_interval = Duration::from_millis(100);
}

/// The names every list shows for the default group: the gRPC
/// `ServiceListRequest`, `/nacos/v1/ns/service/list` and
/// `/nacos/v2/ns/service/list`, which must agree.
async fn listed(node: &RunningNode, grpc: &mut RawClient) -> Vec<String> {
    let (_, v) = grpc.call("ServiceListRequest", json!({"namespace": "public", "pageNo": 1, "pageSize": 100})).await;
    let names = |v: &Value| -> Vec<String> {
        v.as_array().map(|a| a.iter().filter_map(|n| n.as_str().map(str::to_owned)).collect()).unwrap_or_default()
    };
    let from_grpc = names(&v["serviceNames"]);
    let params = [("pageNo", "1"), ("pageSize", "100")];
    let v1 = http_json(&format!("{}/nacos/v1/ns/service/list", http_base(node)), &params).await;
    let v2 = http_json(&format!("{}/nacos/v2/ns/service/list", http_base(node)), &params).await;
    assert_eq!(names(&v1["doms"]), from_grpc, "v1 and gRPC lists agree: {v1}");
    let v2_names: Vec<String> =
        names(&v2["data"]["services"]).iter().map(|n| n.trim_start_matches("DEFAULT_GROUP@@").to_owned()).collect();
    assert_eq!(v2_names, from_grpc, "v2 (grouped names) and gRPC lists agree: {v2}");
    from_grpc
}

async fn v1_hosts(node: &RunningNode, service: &str) -> Value {
    let list = http_json(&format!("{}/nacos/v1/ns/instance/list", http_base(node)), &[("serviceName", service)]).await;
    list["hosts"].clone()
}

#[tokio::test]
async fn an_emptied_service_stays_listed_with_no_hosts_until_the_retention_has_passed() {
    // Long enough that the lists below are read well within it, however
    // loaded the machine.
    let retention = Duration::from_secs(2);
    let node = start(shortened(test_config(), retention)).await;
    let mut c = RawClient::connect(&node, true).await;
    c.call("InstanceRequest", register("emptied", "10.0.0.1", 80)).await;
    c.call("InstanceRequest", register("busy", "10.0.0.1", 80)).await;
    let mut dereg = register("emptied", "10.0.0.1", 80);
    dereg["type"] = json!("deregisterInstance");
    // Taken before the request: the store empties the service after it.
    let emptied = Instant::now();
    let (_, v) = c.call("InstanceRequest", dereg).await;
    assert_eq!(v["resultCode"], 200, "{v}");

    assert_eq!(listed(&node, &mut c).await, ["busy", "emptied"], "kept, in every list");
    assert_eq!(v1_hosts(&node, "emptied").await, json!([]), "with no hosts");
    let (status, detail) =
        http_query(Method::GET, &format!("{}/nacos/v1/ns/service", http_base(&node)), &[("serviceName", "emptied")])
            .await;
    assert_eq!(status, 200, "the detail still answers: {detail}");

    eventually("the cleaner removes the emptied service", WAIT, || {
        let gone = {
            let store = node.store();
            store.list_services("public", "DEFAULT_GROUP", 1, 100).1 == ["busy"]
        };
        async move { gone.then_some(()) }
    })
    .await;
    assert!(emptied.elapsed() >= retention, "not before the retention ({:?})", emptied.elapsed());
    assert_eq!(listed(&node, &mut c).await, ["busy"], "gone from every list, the busy one stays");
    assert_eq!(node.metrics().cleaner.cleaned(), 1);
    node.shutdown().await;
}

#[tokio::test]
async fn a_retention_of_zero_forgets_an_emptied_service_at_once() {
    let node = start(shortened(test_config(), Duration::ZERO)).await;
    let mut c = RawClient::connect(&node, true).await;
    c.call("InstanceRequest", register("emptied", "10.0.0.1", 80)).await;
    drop(c);
    eventually("the closed connection's instance goes, and its service with it", WAIT, || async {
        node.store().list_services("public", "DEFAULT_GROUP", 1, 100).1.is_empty().then_some(())
    })
    .await;
    node.shutdown().await;
}

fn services(node: &RunningNode) -> Vec<String> {
    node.store().list_services("public", "DEFAULT_GROUP", 1, 100).1
}

#[tokio::test]
async fn every_member_keeps_an_emptied_service_then_drops_it() {
    let retention = Duration::from_secs(3);
    let (_dir, nodes) = common::start_ready_cluster(|c| shorten(c, retention)).await;
    // An HTTP instance: its ip:port client lives on its responsible member
    // and reaches the others through Distro, as its removal does.
    let url = |n: &RunningNode| format!("{}/nacos/v1/ns/instance", http_base(n));
    let form = [("serviceName", "replicated"), ("ip", "10.0.2.1"), ("port", "80")];
    assert_eq!(http_form(Method::POST, &url(&nodes[0]), &form).await, (200, "ok".into()));
    eventually("every member holds the instance", WAIT, || async {
        nodes.iter().all(|n| common::grpc::hosts(n, "replicated") == 1).then_some(())
    })
    .await;
    // Taken before the request: every member empties the service after it.
    let emptied = Instant::now();
    assert_eq!(http_query(Method::DELETE, &url(&nodes[1]), &form).await.0, 200);
    for n in &nodes {
        // Each member sees it empty out when Distro brings it the removal,
        // and keeps it listed from then on for the retention.
        eventually("the member holds it emptied, still listed", WAIT, || async {
            (common::grpc::hosts(n, "replicated") == 0 && services(n) == ["replicated"]).then_some(())
        })
        .await;
    }
    eventually("every member drops it", WAIT, || async { nodes.iter().all(|n| services(n).is_empty()).then_some(()) })
        .await;
    assert!(emptied.elapsed() >= retention);
    for n in nodes {
        n.shutdown().await;
    }
}

#[tokio::test]
async fn deleting_an_emptied_service_takes_it_off_every_member_at_once() {
    let (_dir, nodes) = common::start_ready_cluster(|c| shorten(c, Duration::from_secs(600))).await;
    let mut c = RawClient::connect(&nodes[0], true).await;
    c.call("InstanceRequest", register("doomed", "10.0.3.1", 80)).await;
    eventually("every member holds the instance", WAIT, || async {
        nodes.iter().all(|n| common::grpc::hosts(n, "doomed") == 1).then_some(())
    })
    .await;
    drop(c);
    eventually("every member holds it emptied", WAIT, || async {
        nodes.iter().all(|n| common::grpc::hosts(n, "doomed") == 0 && services(n) == ["doomed"]).then_some(())
    })
    .await;
    let service = |n: &RunningNode| format!("{}/nacos/v1/ns/service", http_base(n));
    let name = [("serviceName", "doomed")];
    assert_eq!(http_query(Method::DELETE, &service(&nodes[2]), &name).await, (200, "ok".into()));
    eventually("every member forgot it (Raft applied)", WAIT, || async {
        nodes.iter().all(|n| services(n).is_empty()).then_some(())
    })
    .await;
    let (status, body) = http_query(Method::DELETE, &service(&nodes[1]), &name).await;
    assert_eq!(status, 404, "gone: {body}");
    for n in nodes {
        n.shutdown().await;
    }
}
