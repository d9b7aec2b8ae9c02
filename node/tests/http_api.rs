//! The Nacos Open API v1 naming endpoints against a real node: parameters,
//! defaults and JSON shapes as Nacos answers them (the README's "Protocol
//! compatibility notes").

use crate::common;

use std::collections::BTreeSet;

use reqwest::Method;
use roster_node::metrics::HttpMethod;
use roster_node::RunningNode;
use serde_json::{json, Value};

use common::{http_base, http_form, http_json, http_query, start, test_config};

const INSTANCE: &str = "/nacos/v1/ns/instance";
const LIST: &str = "/nacos/v1/ns/instance/list";
const SERVICE: &str = "/nacos/v1/ns/service";

fn url(node: &RunningNode, path: &str) -> String {
    format!("{}{path}", http_base(node))
}

/// A write that must answer a plain `ok`.
async fn write_ok(node: &RunningNode, method: Method, path: &str, params: &[(&str, &str)]) {
    let (status, body) = http_form(method.clone(), &url(node, path), params).await;
    assert_eq!((status, body.as_str()), (200, "ok"), "{method} {path} {params:?}");
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object().map(|o| o.keys().cloned().collect()).unwrap_or_default()
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| (*s).to_owned()).collect()
}

#[tokio::test]
async fn instance_round_trip_has_nacos_shapes_and_defaults() {
    let node = start(test_config()).await;
    let reg = [("serviceName", "svc-a"), ("ip", "10.0.0.1"), ("port", "8080"), ("metadata", r#"{"version":"1.0"}"#)];
    write_ok(&node, Method::POST, INSTANCE, &reg).await;
    assert!(node.store().has_client("10.0.0.1:8080#true"), "an ephemeral HTTP instance belongs to its ip:port client");

    let info = http_json(&url(&node, LIST), &[("serviceName", "svc-a")]).await;
    assert_eq!(
        keys(&info),
        set(&[
            "name",
            "groupName",
            "clusters",
            "cacheMillis",
            "hosts",
            "lastRefTime",
            "checksum",
            "allIPs",
            "reachProtectionThreshold",
            "valid"
        ])
    );
    assert_eq!(info["name"], "DEFAULT_GROUP@@svc-a");
    assert_eq!(info["groupName"], "DEFAULT_GROUP");
    assert_eq!(info["clusters"], "");
    assert_eq!(info["cacheMillis"], 10000);
    assert_eq!(info["allIPs"], false);
    assert_eq!(info["reachProtectionThreshold"], false);
    assert_eq!(info["valid"], true);
    assert!(info["lastRefTime"].as_i64().is_some_and(|t| t > 0));
    let host = &info["hosts"][0];
    assert_eq!(host["instanceId"], "10.0.0.1#8080#DEFAULT#DEFAULT_GROUP@@svc-a");
    assert_eq!(host["ip"], "10.0.0.1");
    assert_eq!(host["port"], 8080);
    assert_eq!(host["weight"], 1.0);
    assert_eq!(host["healthy"], true);
    assert_eq!(host["enabled"], true);
    assert_eq!(host["ephemeral"], true);
    assert_eq!(host["clusterName"], "DEFAULT");
    assert_eq!(host["serviceName"], "DEFAULT_GROUP@@svc-a");
    assert_eq!(host["metadata"], json!({"version": "1.0"}));
    assert_eq!(host["instanceHeartBeatInterval"], 5000);
    assert_eq!(host["instanceHeartBeatTimeOut"], 15000);
    assert_eq!(host["ipDeleteTimeout"], 30000);
    assert_eq!(host["instanceIdGenerator"], "simple");

    let detail_params = [("serviceName", "svc-a"), ("ip", "10.0.0.1"), ("port", "8080")];
    let detail = http_json(&url(&node, INSTANCE), &detail_params).await;
    assert_eq!(
        detail,
        json!({
            "service": "DEFAULT_GROUP@@svc-a",
            "ip": "10.0.0.1",
            "port": 8080,
            "clusterName": "DEFAULT",
            "weight": 1.0,
            "healthy": true,
            "instanceId": "10.0.0.1#8080#DEFAULT#DEFAULT_GROUP@@svc-a",
            "metadata": {"version": "1.0"}
        })
    );

    // Update: given fields change, absent ones are kept.
    write_ok(
        &node,
        Method::PUT,
        INSTANCE,
        &[
            ("serviceName", "svc-a"),
            ("ip", "10.0.0.1"),
            ("port", "8080"),
            ("weight", "3.5"),
            ("metadata", "zone=a,rack=7"),
        ],
    )
    .await;
    let detail = http_json(&url(&node, INSTANCE), &detail_params).await;
    assert_eq!(detail["weight"], 3.5);
    assert_eq!(detail["healthy"], true);
    assert_eq!(detail["metadata"], json!({"zone": "a", "rack": "7"}));

    // A disabled instance is kept but no longer listed.
    write_ok(
        &node,
        Method::PUT,
        INSTANCE,
        &[("serviceName", "svc-a"), ("ip", "10.0.0.1"), ("port", "8080"), ("enabled", "false")],
    )
    .await;
    let info = http_json(&url(&node, LIST), &[("serviceName", "svc-a")]).await;
    assert_eq!(info["hosts"], json!([]));
    assert_eq!(node.store().counts().instances, 1);

    // Updating an instance that does not exist is a 404.
    let (status, body) = http_form(
        Method::PUT,
        &url(&node, INSTANCE),
        &[("serviceName", "svc-a"), ("ip", "10.0.0.9"), ("port", "8080"), ("weight", "2")],
    )
    .await;
    assert_eq!(status, 404, "{body}");
    assert!(body.starts_with("caused: ") && body.contains("10.0.0.9"), "{body}");

    // Deregister (with params in the query, as SDKs send DELETE), twice: both `ok`.
    for _ in 0..2 {
        let (status, body) = http_query(Method::DELETE, &url(&node, INSTANCE), &detail_params).await;
        assert_eq!((status, body.as_str()), (200, "ok"));
    }
    let (status, body) = http_query(Method::GET, &url(&node, INSTANCE), &detail_params).await;
    assert_eq!(status, 404, "{body}");
    assert!(body.starts_with("caused: ") && body.ends_with(';'), "{body}");
    let info = http_json(&url(&node, LIST), &[("serviceName", "svc-a")]).await;
    assert_eq!(info["hosts"], json!([]));
    assert_eq!(node.store().counts().instances, 0);
    node.shutdown().await;
}

#[tokio::test]
async fn persistent_instances_belong_to_no_client_and_need_ephemeral_false_to_go() {
    let node = start(test_config()).await;
    let params =
        [("serviceName", "db"), ("ip", "10.0.0.2"), ("port", "5432"), ("ephemeral", "false"), ("healthy", "false")];
    write_ok(&node, Method::POST, INSTANCE, &params).await;
    assert!(!node.store().has_client("10.0.0.2:5432#true"));
    let counts = node.store().counts();
    assert_eq!((counts.instances, counts.clients), (1, 0));
    let info = http_json(&url(&node, LIST), &[("serviceName", "db")]).await;
    assert_eq!(info["hosts"][0]["ephemeral"], false);
    assert_eq!(info["hosts"][0]["healthy"], false);
    let healthy = http_json(&url(&node, LIST), &[("serviceName", "db"), ("healthyOnly", "true")]).await;
    assert_eq!(healthy["hosts"], json!([]));

    // `ephemeral` defaults to true, which names another (absent) instance.
    let key = [("serviceName", "db"), ("ip", "10.0.0.2"), ("port", "5432")];
    let (status, body) = http_query(Method::DELETE, &url(&node, INSTANCE), &key).await;
    assert_eq!((status, body.as_str()), (200, "ok"));
    assert_eq!(node.store().counts().instances, 1);
    let mut persistent = key.to_vec();
    persistent.push(("ephemeral", "false"));
    let (status, body) = http_query(Method::DELETE, &url(&node, INSTANCE), &persistent).await;
    assert_eq!((status, body.as_str()), (200, "ok"));
    assert_eq!(node.store().counts().instances, 0);
    node.shutdown().await;
}

#[tokio::test]
async fn namespaces_groups_clusters_and_aliases() {
    let node = start(test_config()).await;
    for (ip, cluster_param) in [("10.0.1.1", "clusterName"), ("10.0.1.2", "cluster")] {
        let cluster = if ip.ends_with('1') { "east" } else { "west" };
        write_ok(
            &node,
            Method::POST,
            INSTANCE,
            &[
                ("namespaceId", "dev"),
                ("groupName", "g1"),
                ("serviceName", "svc"),
                ("ip", ip),
                ("port", "80"),
                (cluster_param, cluster),
                ("weight", "2"),
            ],
        )
        .await;
    }
    // `group@@service` in serviceName is the same service.
    let all = http_json(&url(&node, LIST), &[("namespaceId", "dev"), ("serviceName", "g1@@svc")]).await;
    assert_eq!(all["name"], "g1@@svc");
    assert_eq!(all["groupName"], "g1");
    let clusters: Vec<&str> = all["hosts"]
        .as_array()
        .map(|h| h.iter().filter_map(|i| i["clusterName"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(clusters, ["east", "west"]);
    assert_eq!(all["hosts"][0]["instanceId"], "10.0.1.1#80#east#g1@@svc");

    let east = http_json(
        &url(&node, LIST),
        &[("namespaceId", "dev"), ("groupName", "g1"), ("serviceName", "svc"), ("clusters", "east")],
    )
    .await;
    assert_eq!(east["clusters"], "east");
    assert_eq!(east["hosts"].as_array().map(Vec::len), Some(1));

    // Other namespace or group: nothing.
    for params in [vec![("serviceName", "g1@@svc")], vec![("namespaceId", "dev"), ("serviceName", "svc")]] {
        let info = http_json(&url(&node, LIST), &params).await;
        assert_eq!(info["hosts"], json!([]), "{params:?}");
    }

    // The `enable` alias and cluster-scoped detail.
    write_ok(
        &node,
        Method::PUT,
        INSTANCE,
        &[
            ("namespaceId", "dev"),
            ("serviceName", "g1@@svc"),
            ("ip", "10.0.1.2"),
            ("port", "80"),
            ("cluster", "west"),
            ("enable", "false"),
        ],
    )
    .await;
    let all = http_json(&url(&node, LIST), &[("namespaceId", "dev"), ("serviceName", "g1@@svc")]).await;
    assert_eq!(all["hosts"].as_array().map(Vec::len), Some(1));
    let (status, _) = http_query(
        Method::GET,
        &url(&node, INSTANCE),
        &[("namespaceId", "dev"), ("serviceName", "g1@@svc"), ("ip", "10.0.1.2"), ("port", "80")],
    )
    .await;
    assert_eq!(status, 404, "detail without clusterName looks in DEFAULT");
    node.shutdown().await;
}

#[tokio::test]
async fn service_lifecycle_matches_nacos() {
    let node = start(test_config()).await;
    let svc = [("serviceName", "orders")];
    write_ok(
        &node,
        Method::POST,
        SERVICE,
        &[("serviceName", "orders"), ("protectThreshold", "0.5"), ("metadata", "owner=team-a")],
    )
    .await;
    let (status, body) = http_form(Method::POST, &url(&node, SERVICE), &svc).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("already exists"), "{body}");

    let detail = http_json(&url(&node, SERVICE), &svc).await;
    assert_eq!(
        detail,
        json!({
            "namespaceId": "public",
            "groupName": "DEFAULT_GROUP",
            "name": "orders",
            "protectThreshold": 0.5,
            "metadata": {"owner": "team-a"},
            "selector": {"type": "none"},
            "clusters": []
        })
    );

    write_ok(
        &node,
        Method::POST,
        INSTANCE,
        &[("serviceName", "orders"), ("ip", "10.0.2.1"), ("port", "80"), ("clusterName", "c1")],
    )
    .await;
    let detail = http_json(&url(&node, SERVICE), &svc).await;
    assert_eq!(detail["clusters"], json!([{"name": "c1", "healthChecker": {"type": "TCP"}, "metadata": {}}]));

    // Update: given settings change, the others stay.
    write_ok(&node, Method::PUT, SERVICE, &[("serviceName", "orders"), ("protectThreshold", "0.8")]).await;
    let detail = http_json(&url(&node, SERVICE), &svc).await;
    assert!((detail["protectThreshold"].as_f64().unwrap_or(0.0) - 0.8).abs() < 1e-6);
    assert_eq!(detail["metadata"], json!({"owner": "team-a"}));
    let (status, body) = http_form(Method::PUT, &url(&node, SERVICE), &[("serviceName", "nope")]).await;
    assert_eq!(status, 404, "{body}");

    write_ok(&node, Method::POST, SERVICE, &[("serviceName", "billing")]).await;
    write_ok(&node, Method::POST, SERVICE, &[("serviceName", "other"), ("groupName", "g2")]).await;
    let page = [("pageNo", "1"), ("pageSize", "10")];
    let list = http_json(&url(&node, "/nacos/v1/ns/service/list"), &page).await;
    assert_eq!(list, json!({"count": 2, "doms": ["billing", "orders"]}));
    let list = http_json(&url(&node, "/nacos/v1/ns/service/list"), &[("pageNo", "2"), ("pageSize", "1")]).await;
    assert_eq!(list, json!({"count": 2, "doms": ["orders"]}));
    let list = http_json(
        &url(&node, "/nacos/v1/ns/service/list"),
        &[("pageNo", "1"), ("pageSize", "10"), ("groupName", "g2")],
    )
    .await;
    assert_eq!(list, json!({"count": 1, "doms": ["other"]}));

    // A service with instances cannot be deleted.
    let (status, body) = http_query(Method::DELETE, &url(&node, SERVICE), &svc).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("not empty"), "{body}");
    assert!(node.store().service(&roster_node::naming::ServiceKey::new("public", "DEFAULT_GROUP", "orders")).is_some());
    let (status, _) = http_query(
        Method::DELETE,
        &url(&node, INSTANCE),
        &[("serviceName", "orders"), ("ip", "10.0.2.1"), ("port", "80"), ("clusterName", "c1")],
    )
    .await;
    assert_eq!(status, 200);
    // The explicit service outlives its instances, then goes on delete.
    assert_eq!(http_json(&url(&node, SERVICE), &svc).await["clusters"], json!([]));
    let (status, body) = http_query(Method::DELETE, &url(&node, SERVICE), &svc).await;
    assert_eq!((status, body.as_str()), (200, "ok"));
    let (status, body) = http_query(Method::DELETE, &url(&node, SERVICE), &svc).await;
    assert_eq!(status, 404, "{body}");
    let (status, _) = http_query(Method::GET, &url(&node, SERVICE), &svc).await;
    assert_eq!(status, 404);
    let list = http_json(&url(&node, "/nacos/v1/ns/service/list"), &page).await;
    assert_eq!(list, json!({"count": 1, "doms": ["billing"]}));
    node.shutdown().await;
}

#[tokio::test]
async fn cluster_nodes_and_operator_metrics() {
    let node = start(test_config()).await;
    let nodes = http_json(&url(&node, "/nacos/v1/core/cluster/nodes"), &[]).await;
    assert_eq!(nodes["code"], 200);
    assert_eq!(nodes["message"], Value::Null);
    let me = &nodes["data"][0];
    assert_eq!(nodes["data"].as_array().map(Vec::len), Some(1));
    assert_eq!(me["ip"], "127.0.0.1");
    assert_eq!(me["port"], node.http_addr.port());
    assert_eq!(me["state"], "UP");
    assert_eq!(me["address"], node.member());
    assert_eq!(me["extendInfo"], json!({"version": env!("CARGO_PKG_VERSION")}));
    assert_eq!(me["abilities"], json!({}));
    assert_eq!(me["failAccessCnt"], 0);
    let filtered = http_json(&url(&node, "/nacos/v1/core/cluster/nodes"), &[("keyword", "no-such")]).await;
    assert_eq!(filtered["data"], json!([]));
    let own = http_json(&url(&node, "/nacos/v1/core/cluster/nodes/self"), &[]).await;
    assert_eq!(&own["data"], me);

    write_ok(&node, Method::POST, INSTANCE, &[("serviceName", "m"), ("ip", "10.0.3.1"), ("port", "1")]).await;
    write_ok(
        &node,
        Method::POST,
        INSTANCE,
        &[("serviceName", "m"), ("ip", "10.0.3.2"), ("port", "1"), ("ephemeral", "false")],
    )
    .await;
    let metrics = http_json(&url(&node, "/nacos/v1/ns/operator/metrics"), &[]).await;
    assert_eq!(metrics["status"], "UP");
    assert_eq!(metrics["serviceCount"], 1);
    assert_eq!(metrics["instanceCount"], 2);
    assert_eq!(metrics["clientCount"], 1);
    assert_eq!(metrics["connectionBasedClientCount"], 0);
    assert_eq!(metrics["subscribeCount"], 0);
    assert_eq!(metrics["responsibleClientCount"], 1);
    assert_eq!(metrics["responsibleInstanceCount"], 2);
    node.shutdown().await;
}

#[tokio::test]
async fn requests_are_counted_by_route_method_and_status() {
    let node = start(test_config()).await;
    let count = |route: &str, method: &str, status: u16| {
        let method = HttpMethod::ALL.iter().copied().find(|m| m.label() == method).expect("a method label");
        node.metrics().api.http_request_count(route, method, status)
    };
    http_json(&url(&node, LIST), &[("serviceName", "x")]).await;
    let (status, _) = http_query(Method::GET, &url(&node, LIST), &[]).await;
    assert_eq!(status, 400);
    let (status, body) = http_query(Method::GET, &url(&node, "/nacos/v1/ns/nothing"), &[]).await;
    assert_eq!(status, 404);
    assert!(body.starts_with("caused: "), "{body}");
    assert_eq!(count(LIST, "GET", 200), 1);
    assert_eq!(count(LIST, "GET", 400), 1);
    assert_eq!(count("unmatched", "GET", 404), 1);

    // The same counters are exposed to Prometheus.
    let (status, text) = http_query(Method::GET, &url(&node, "/metrics"), &[]).await;
    assert_eq!(status, 200);
    assert!(
        text.contains(r#"roster_http_requests_total{route="/nacos/v1/ns/instance/list",method="GET",status="400"} 1"#),
        "{text}"
    );
    node.shutdown().await;
}
