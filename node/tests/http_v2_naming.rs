//! The Nacos Open API v2 naming routes against a real node: each route's
//! success shape and its error shapes, with Nacos's `ErrorCode`s
//! (see `roster_node::api::http::v2_naming`).

use crate::common;

use reqwest::Method;
use roster_node::RunningNode;
use serde_json::{json, Value};

use common::{http_base, http_form, http_query, start, test_config};

const INSTANCE: &str = "/nacos/v2/ns/instance";
const LIST: &str = "/nacos/v2/ns/instance/list";
const BATCH: &str = "/nacos/v2/ns/instance/metadata/batch";
const SERVICE: &str = "/nacos/v2/ns/service";
const SERVICES: &str = "/nacos/v2/ns/service/list";
const HEALTH: &str = "/nacos/v2/ns/health/instance";

/// A v2 request: form body for writes, query string for reads; the status
/// and the parsed `Result`.
async fn v2(node: &RunningNode, method: Method, path: &str, params: &[(&str, &str)]) -> (u16, Value) {
    let url = format!("{}{path}", http_base(node));
    let (status, body) = if method == Method::GET || method == Method::DELETE {
        http_query(method.clone(), &url, params).await
    } else {
        http_form(method.clone(), &url, params).await
    };
    let value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{method} {path}: not JSON ({e}): {body}"));
    (status, value)
}

/// A request that must succeed with `data`.
async fn ok(node: &RunningNode, method: Method, path: &str, params: &[(&str, &str)]) -> Value {
    let (status, body) = v2(node, method.clone(), path, params).await;
    assert_eq!(status, 200, "{method} {path} {params:?}: {body}");
    assert_eq!((&body["code"], &body["message"]), (&json!(0), &json!("success")), "{body}");
    body["data"].clone()
}

/// A request that must fail with `status` and `code`; returns `data`.
async fn fails(
    node: &RunningNode,
    method: Method,
    path: &str,
    params: &[(&str, &str)],
    status: u16,
    code: i64,
) -> String {
    let (got, body) = v2(node, method.clone(), path, params).await;
    assert_eq!((got, body["code"].as_i64()), (status, Some(code)), "{method} {path} {params:?}: {body}");
    assert!(body["message"].is_string(), "{body}");
    body["data"].as_str().unwrap_or_else(|| panic!("data is the message: {body}")).to_owned()
}

#[tokio::test]
async fn instance_routes_answer_the_v2_shapes() {
    let node = start(test_config()).await;
    let registered = ok(
        &node,
        Method::POST,
        INSTANCE,
        &[("serviceName", "v2-orders"), ("ip", "10.1.0.1"), ("port", "8080"), ("weight", "2"), ("metadata", "zone=a")],
    )
    .await;
    assert_eq!(registered, "ok");

    let detail =
        ok(&node, Method::GET, INSTANCE, &[("serviceName", "v2-orders"), ("ip", "10.1.0.1"), ("port", "8080")]).await;
    assert_eq!(
        detail,
        json!({
            "serviceName": "DEFAULT_GROUP@@v2-orders", "ip": "10.1.0.1", "port": 8080, "clusterName": "DEFAULT",
            "weight": 2.0, "healthy": true, "instanceId": "10.1.0.1#8080#DEFAULT#DEFAULT_GROUP@@v2-orders",
            "metadata": {"zone": "a"}
        })
    );

    // An update keeps what it does not name.
    let updated = ok(
        &node,
        Method::PUT,
        INSTANCE,
        &[("serviceName", "v2-orders"), ("ip", "10.1.0.1"), ("port", "8080"), ("metadata", r#"{"zone":"b"}"#)],
    )
    .await;
    assert_eq!(updated, "ok");
    let list = ok(&node, Method::GET, LIST, &[("serviceName", "v2-orders")]).await;
    assert_eq!(list["name"], "DEFAULT_GROUP@@v2-orders");
    assert_eq!(list["hosts"][0]["metadata"], json!({"zone": "b"}));
    assert_eq!(list["hosts"][0]["weight"], 2.0);
    let other_cluster = ok(&node, Method::GET, LIST, &[("serviceName", "v2-orders"), ("clusterName", "east")]).await;
    assert_eq!((other_cluster["hosts"].clone(), other_cluster["clusters"].clone()), (json!([]), json!("east")));

    assert_eq!(
        ok(&node, Method::DELETE, INSTANCE, &[("serviceName", "v2-orders"), ("ip", "10.1.0.1"), ("port", "8080")])
            .await,
        "ok"
    );
    let gone = fails(
        &node,
        Method::GET,
        INSTANCE,
        &[("serviceName", "v2-orders"), ("ip", "10.1.0.1"), ("port", "8080")],
        404,
        20004,
    )
    .await;
    assert!(gone.contains("no ips found for cluster DEFAULT"), "{gone}");
    node.shutdown().await;
}

#[tokio::test]
async fn instance_routes_refuse_bad_input_with_nacos_codes_and_change_nothing() {
    let node = start(test_config()).await;
    let missing = fails(&node, Method::POST, INSTANCE, &[("ip", "10.1.0.1"), ("port", "80")], 400, 10000).await;
    assert_eq!(missing, "Required parameter 'serviceName' type String is not present");
    fails(&node, Method::POST, INSTANCE, &[("serviceName", "v2-bad"), ("port", "80")], 400, 10000).await;
    fails(&node, Method::POST, INSTANCE, &[("serviceName", "v2-bad"), ("ip", "10.1.0.1")], 400, 10000).await;
    let weight = fails(
        &node,
        Method::POST,
        INSTANCE,
        &[("serviceName", "v2-bad"), ("ip", "10.1.0.1"), ("port", "80"), ("weight", "10001")],
        400,
        21001,
    )
    .await;
    assert!(weight.contains("weights range from 0.0 to 10000.0"), "{weight}");
    let metadata = fails(
        &node,
        Method::POST,
        INSTANCE,
        &[("serviceName", "v2-bad"), ("ip", "10.1.0.1"), ("port", "80"), ("metadata", "novalue")],
        400,
        21002,
    )
    .await;
    assert_eq!(metadata, "metadata format incorrect:novalue");
    fails(
        &node,
        Method::POST,
        INSTANCE,
        &[("serviceName", "v2-bad"), ("ip", "10.1.0.1"), ("port", "99999")],
        400,
        20002,
    )
    .await;
    fails(&node, Method::POST, INSTANCE, &[("serviceName", "v2-bad"), ("ip", "10.1.0.1"), ("port", "x")], 400, 20002)
        .await;
    let update = fails(
        &node,
        Method::PUT,
        INSTANCE,
        &[("serviceName", "v2-nowhere"), ("ip", "10.1.0.1"), ("port", "80")],
        400,
        21004,
    )
    .await;
    assert!(update.starts_with("service not found"), "{update}");
    fails(&node, Method::GET, LIST, &[], 400, 10000).await;
    // Nothing was registered by any of them.
    let list = ok(&node, Method::GET, LIST, &[("serviceName", "v2-bad")]).await;
    assert_eq!(list["hosts"], json!([]));
    let services = ok(&node, Method::GET, SERVICES, &[]).await;
    assert_eq!(services, json!({"count": 0, "services": []}));
    node.shutdown().await;
}

#[tokio::test]
async fn batch_metadata_changes_the_named_or_all_instances() {
    let node = start(test_config()).await;
    for ip in ["10.2.0.1", "10.2.0.2"] {
        ok(
            &node,
            Method::POST,
            INSTANCE,
            &[("serviceName", "v2-batch"), ("ip", ip), ("port", "80"), ("metadata", "keep=1")],
        )
        .await;
    }
    let one = ok(
        &node,
        Method::PUT,
        BATCH,
        &[
            ("serviceName", "v2-batch"),
            ("metadata", r#"{"tier":"gold"}"#),
            ("instances", r#"[{"ip":"10.2.0.1","port":80,"clusterName":"DEFAULT"},{"ip":"10.9.9.9","port":1}]"#),
        ],
    )
    .await;
    assert_eq!(one, json!({"updated": ["10.2.0.1:80:unknown:DEFAULT:ephemeral"]}));
    let all = ok(&node, Method::PUT, BATCH, &[("serviceName", "v2-batch"), ("metadata", "color=red")]).await;
    assert_eq!(
        all,
        json!({"updated": ["10.2.0.1:80:unknown:DEFAULT:ephemeral", "10.2.0.2:80:unknown:DEFAULT:ephemeral"]})
    );
    let removed = ok(&node, Method::DELETE, BATCH, &[("serviceName", "v2-batch"), ("metadata", "tier=x")]).await;
    assert_eq!(removed["updated"].as_array().map(Vec::len), Some(2));
    let list = ok(&node, Method::GET, LIST, &[("serviceName", "v2-batch")]).await;
    let metadata: Vec<Value> = list["hosts"].as_array().expect("hosts").iter().map(|h| h["metadata"].clone()).collect();
    assert_eq!(metadata, vec![json!({"keep": "1", "color": "red"}); 2]);

    fails(&node, Method::PUT, BATCH, &[("serviceName", "v2-batch")], 400, 10000).await;
    fails(&node, Method::PUT, BATCH, &[("metadata", "a=b")], 400, 10000).await;
    fails(&node, Method::PUT, BATCH, &[("serviceName", "v2-batch"), ("metadata", "a")], 400, 21002).await;
    // A malformed list is refused (Nacos would change every instance).
    fails(
        &node,
        Method::PUT,
        BATCH,
        &[("serviceName", "v2-batch"), ("metadata", "a=b"), ("instances", "[{")],
        400,
        20002,
    )
    .await;
    let list = ok(&node, Method::GET, LIST, &[("serviceName", "v2-batch")]).await;
    assert!(list["hosts"].as_array().expect("hosts").iter().all(|h| h["metadata"].get("a").is_none()));
    node.shutdown().await;
}

#[tokio::test]
async fn service_routes_answer_the_v2_shapes_and_naming_codes() {
    let node = start(test_config()).await;
    let create = [("serviceName", "v2-svc"), ("protectThreshold", "0.5"), ("metadata", "owner=ops")];
    assert_eq!(ok(&node, Method::POST, SERVICE, &create).await, "ok");
    let again = fails(&node, Method::POST, SERVICE, &create, 400, 21007).await;
    assert!(again.contains("already exist"), "{again}");
    let detail = ok(&node, Method::GET, SERVICE, &[("serviceName", "v2-svc")]).await;
    assert_eq!(
        detail,
        json!({
            "namespace": "public", "serviceName": "v2-svc", "groupName": "DEFAULT_GROUP", "clusterMap": {},
            "metadata": {"owner": "ops"}, "protectThreshold": 0.5, "selector": {"type": "none"}, "ephemeral": false
        })
    );
    assert_eq!(ok(&node, Method::PUT, SERVICE, &[("serviceName", "v2-svc"), ("protectThreshold", "0.2")]).await, "ok");
    let detail = ok(&node, Method::GET, SERVICE, &[("serviceName", "v2-svc")]).await;
    assert_eq!((detail["protectThreshold"].as_f64(), &detail["metadata"]), (Some(0.2), &json!({"owner": "ops"})));

    ok(
        &node,
        Method::POST,
        INSTANCE,
        &[("serviceName", "v2-svc"), ("ip", "10.3.0.1"), ("port", "80"), ("clusterName", "east")],
    )
    .await;
    let detail = ok(&node, Method::GET, SERVICE, &[("serviceName", "v2-svc")]).await;
    assert_eq!(
        detail["clusterMap"],
        json!({"east": {"clusterName": "east", "healthChecker": {"type": "TCP"}, "metadata": {}, "hosts": null}})
    );
    assert_eq!(detail["ephemeral"], true);
    let busy = fails(&node, Method::DELETE, SERVICE, &[("serviceName", "v2-svc")], 400, 21009).await;
    assert!(busy.contains("is not empty"), "{busy}");

    ok(&node, Method::POST, SERVICE, &[("serviceName", "v2-other"), ("groupName", "g2")]).await;
    let page = ok(&node, Method::GET, SERVICES, &[("pageNo", "1"), ("pageSize", "10")]).await;
    assert_eq!(page, json!({"count": 1, "services": ["DEFAULT_GROUP@@v2-svc"]}));
    let g2 = ok(&node, Method::GET, SERVICES, &[("groupName", "g2")]).await;
    assert_eq!(g2, json!({"count": 1, "services": ["g2@@v2-other"]}));
    fails(&node, Method::GET, SERVICES, &[("pageNo", "0")], 400, 20002).await;

    assert_eq!(ok(&node, Method::DELETE, SERVICE, &[("serviceName", "v2-other"), ("groupName", "g2")]).await, "ok");
    let unknown =
        fails(&node, Method::GET, SERVICE, &[("serviceName", "v2-other"), ("groupName", "g2")], 400, 21008).await;
    assert_eq!(unknown, "service not found, namespace: public, serviceName: g2@@v2-other");
    fails(&node, Method::PUT, SERVICE, &[("serviceName", "v2-other"), ("groupName", "g2")], 400, 21008).await;
    fails(&node, Method::DELETE, SERVICE, &[("serviceName", "v2-other"), ("groupName", "g2")], 400, 21008).await;
    fails(&node, Method::POST, SERVICE, &[], 400, 10000).await;
    fails(
        &node,
        Method::POST,
        SERVICE,
        &[("serviceName", "v2-sel"), ("selector", r#"{"type":"mystery"}"#)],
        400,
        21006,
    )
    .await;
    fails(&node, Method::POST, SERVICE, &[("serviceName", "v2-th"), ("protectThreshold", "2")], 400, 20002).await;
    let page = ok(&node, Method::GET, SERVICES, &[]).await;
    assert_eq!(page["count"], 1, "the refused creates made nothing: {page}");
    node.shutdown().await;
}

#[tokio::test]
async fn health_is_set_only_where_the_server_does_not_check() {
    let node = start(test_config()).await;
    let unchecked = [
        ("serviceName", "v2-health"),
        ("ip", "10.4.0.1"),
        ("port", "80"),
        ("ephemeral", "false"),
        ("metadata", "preserved.health.checker=NONE"),
    ];
    ok(&node, Method::POST, INSTANCE, &unchecked).await;
    let checked = [("serviceName", "v2-health"), ("ip", "10.4.0.2"), ("port", "80"), ("ephemeral", "false")];
    ok(&node, Method::POST, INSTANCE, &checked).await;
    ok(&node, Method::POST, INSTANCE, &[("serviceName", "v2-health"), ("ip", "10.4.0.3"), ("port", "80")]).await;

    let set = [("serviceName", "v2-health"), ("ip", "10.4.0.1"), ("port", "80"), ("healthy", "false")];
    assert_eq!(ok(&node, Method::PUT, HEALTH, &set).await, "ok");
    let detail =
        ok(&node, Method::GET, INSTANCE, &[("serviceName", "v2-health"), ("ip", "10.4.0.1"), ("port", "80")]).await;
    assert_eq!(detail["healthy"], false);

    for ip in ["10.4.0.2", "10.4.0.3"] {
        let refused = fails(
            &node,
            Method::PUT,
            "/nacos/v2/ns/health",
            &[("serviceName", "v2-health"), ("ip", ip), ("port", "80"), ("healthy", "false")],
            400,
            30000,
        )
        .await;
        assert_eq!(refused, "health check is still working, service: DEFAULT_GROUP@@v2-health, cluster: DEFAULT");
    }
    fails(&node, Method::PUT, HEALTH, &[("serviceName", "v2-health"), ("ip", "10.4.0.1"), ("port", "80")], 400, 10000)
        .await;
    fails(
        &node,
        Method::PUT,
        HEALTH,
        &[("serviceName", "v2-health"), ("ip", "10.4.0.9"), ("port", "80"), ("healthy", "true")],
        404,
        20004,
    )
    .await;
    node.shutdown().await;
}

#[tokio::test]
async fn operator_metrics_answer_status_or_counts() {
    let node = start(test_config()).await;
    ok(&node, Method::POST, INSTANCE, &[("serviceName", "v2-m"), ("ip", "10.5.0.1"), ("port", "80")]).await;
    assert_eq!(ok(&node, Method::GET, "/nacos/v2/ns/operator/metrics", &[]).await, json!({"status": "UP"}));
    let full = ok(&node, Method::GET, "/nacos/v2/ns/ops/metrics", &[("onlyStatus", "false")]).await;
    assert_eq!((&full["status"], &full["serviceCount"], &full["instanceCount"]), (&json!("UP"), &json!(1), &json!(1)));
    fails(&node, Method::GET, "/nacos/v2/ns/operator/metrics", &[("onlyStatus", "maybe")], 400, 20002).await;
    node.shutdown().await;
}

/// With `--auth-enabled`, a token with the right for the namespace and
/// method, as on the v1 routes.
#[tokio::test]
async fn v2_routes_need_the_same_rights_as_v1() {
    let mut config = test_config();
    config.auth.enabled = true;
    config.auth.dir = Some(common::auth_dir());
    let node = start(config).await;
    let login = |user: &'static str| {
        let node = &node;
        async move {
            let url = format!("{}/nacos/v1/auth/login", http_base(node));
            let password = format!("{user}-pw");
            let (status, body) = http_form(Method::POST, &url, &[("username", user), ("password", &password)]).await;
            assert_eq!(status, 200, "{body}");
            let v: Value = serde_json::from_str(&body).expect("login JSON");
            v["accessToken"].as_str().expect("token").to_owned()
        }
    };
    let (team, viewer) = (login("team").await, login("viewer").await);
    let register = |token: &str, namespace: &str| {
        [
            ("serviceName", "v2-auth".to_owned()),
            ("ip", "10.6.0.1".to_owned()),
            ("port", "80".to_owned()),
            ("namespaceId", namespace.to_owned()),
            ("accessToken", token.to_owned()),
        ]
    };
    let url = format!("{}{INSTANCE}", http_base(&node));
    let send = |params: [(&'static str, String); 5]| {
        let url = url.clone();
        async move {
            let pairs: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
            http_form(Method::POST, &url, &pairs).await.0
        }
    };
    assert_eq!(send(register("", "team-a")).await, 403, "no token");
    assert_eq!(send(register(&viewer, "team-a")).await, 403, "read-only");
    assert_eq!(send(register(&team, "public")).await, 403, "another namespace");
    assert_eq!(send(register(&team, "team-a")).await, 200);
    let list_url = format!("{}{LIST}", http_base(&node));
    let read = |token: String| {
        let list_url = list_url.clone();
        async move {
            let params = [("serviceName", "v2-auth"), ("namespaceId", "team-a"), ("accessToken", token.as_str())];
            http_query(Method::GET, &list_url, &params).await
        }
    };
    let (status, body) = read(viewer.clone()).await;
    assert_eq!(status, 200, "{body}");
    let list: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(list["data"]["hosts"][0]["ip"], "10.6.0.1");
    assert_eq!(read(String::new()).await.0, 403);
    let metrics = format!("{}/nacos/v2/ns/operator/metrics", http_base(&node));
    assert_eq!(http_query(Method::GET, &metrics, &[]).await.0, 403, "the summary needs a login");
    assert_eq!(http_query(Method::GET, &metrics, &[("accessToken", viewer.as_str())]).await.0, 200);
    node.shutdown().await;
}

/// A v2 write of an ip:port client another member is responsible for is
/// forwarded to that member's v2 route, whose v2 answer is passed on.
#[tokio::test]
async fn forwarded_v2_writes_answer_in_the_v2_shape() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ips = common::loopback_ips(2);
    let (conf, members) = common::member_file(dir.path(), &ips);
    let mut nodes = Vec::new();
    for ip in &ips {
        nodes.push(start(common::member_config(ip, &conf)).await);
    }
    common::responsibility_split(&nodes, &members).await;
    let a = &nodes[0];
    // One address each member is responsible for.
    let responsibility = a.membership().responsibility();
    let owned_by = |member: &str| {
        (1..=250)
            .map(|i| format!("10.8.0.{i}"))
            .find(|ip| responsibility.member_for(&format!("{ip}:80")) == Some(member))
            .expect("an address of that member")
    };
    let targets = [owned_by(&members[0]), owned_by(&members[1])];
    for ip in &targets {
        let params = [("serviceName", "v2-fwd"), ("ip", ip.as_str()), ("port", "80")];
        assert_eq!(ok(a, Method::POST, INSTANCE, &params).await, "ok");
        let bad = [("serviceName", "v2-fwd"), ("ip", ip.as_str()), ("port", "80"), ("weight", "-1")];
        fails(a, Method::PUT, INSTANCE, &bad, 400, 21001).await;
    }
    // Only the other member's write travelled: bad input is refused where
    // it arrives.
    assert_eq!(a.metrics().distro.count(roster_node::distro::metrics::DistroEvent::HttpForwarded), 1);
    common::eventually("both members hold both", std::time::Duration::from_secs(10), || async {
        let mut all = true;
        for node in &nodes {
            let list = ok(node, Method::GET, LIST, &[("serviceName", "v2-fwd")]).await;
            all &= list["hosts"].as_array().map(Vec::len) == Some(2);
        }
        all.then_some(())
    })
    .await;
    for node in nodes {
        node.shutdown().await;
    }
}
