//! The console's routes on one in-process node: Nacos's catalog API (what
//! is held, disabled instances included, filters, pages, bad input), the
//! service view with each instance's responsible member and why, the
//! signed connection question between members, the embedded files, and
//! the admin plane's cluster view; with authentication on, the read right
//! and the bounds that stand in for the per-IP rate (the browser test in
//! `cli/tests/console_browser.rs` drives the same routes against three
//! members).

use std::time::Duration;

use reqwest::Method;
use roster_node::security::{ClusterSecret, PeerAuth};
use roster_node::RunningNode;
use serde_json::{json, Value};

use crate::common::grpc::{register, RawClient};
use crate::common::{
    auth_dir, cluster_secret, eventually, http_base, http_form, http_json, http_query, start, test_config,
};

const WAIT: Duration = Duration::from_secs(20);

/// Waits until the standalone node's Raft is leader (persistent writes).
async fn ready(node: &RunningNode) {
    let url = format!("{}/nacos/v1/console/health/readiness", http_base(node));
    eventually("ready", WAIT, || async { (reqwest::get(&url).await.ok()?.status() == 200).then_some(()) }).await;
}

/// `orders`: an ip:port instance, a disabled one, a persistent one and one
/// a gRPC connection published; `payments`: created, empty.
async fn populate(node: &RunningNode) -> RawClient {
    let base = http_base(node);
    let instance = format!("{base}/nacos/v1/ns/instance");
    for (ip, ephemeral) in [("10.0.0.1", "true"), ("10.0.0.2", "true"), ("10.0.0.3", "false")] {
        let params = [("serviceName", "orders"), ("ip", ip), ("port", "80"), ("ephemeral", ephemeral)];
        assert_eq!(http_form(Method::POST, &instance, &params).await, (200, "ok".into()), "{ip}");
    }
    let disable = [("serviceName", "orders"), ("ip", "10.0.0.2"), ("port", "80"), ("enabled", "false")];
    assert_eq!(http_form(Method::PUT, &instance, &disable).await, (200, "ok".into()));
    let service = [("serviceName", "payments")];
    assert_eq!(http_form(Method::POST, &format!("{base}/nacos/v1/ns/service"), &service).await, (200, "ok".into()));
    let mut grpc = RawClient::connect(node, true).await;
    let (_, answer) = grpc.call("InstanceRequest", register("orders", "10.0.0.4", 80)).await;
    assert_eq!(answer["resultCode"], 200, "{answer}");
    grpc
}

#[tokio::test]
async fn the_catalog_lists_what_is_held_as_nacos_console_does() {
    let node = start(test_config()).await;
    ready(&node).await;
    let _grpc = populate(&node).await;
    let services = format!("{}/nacos/v1/ns/catalog/services", http_base(&node));
    let instances = format!("{}/nacos/v1/ns/catalog/instances", http_base(&node));

    let all = http_json(&services, &[("namespaceId", "public")]).await;
    assert_eq!(all["count"], 2, "{all}");
    assert_eq!(
        all["serviceList"][0],
        json!({"name": "orders", "groupName": "DEFAULT_GROUP", "clusterCount": 1, "ipCount": 4,
               "healthyInstanceCount": 4, "triggerFlag": "false"}),
        "disabled instances count, as in Nacos"
    );
    assert_eq!(all["serviceList"][1]["name"], "payments");
    let non_empty = http_json(&services, &[("hasIpCount", "true")]).await;
    assert_eq!(non_empty["count"], 1, "{non_empty}");
    let found = http_json(&services, &[("serviceNameParam", "pay")]).await;
    assert_eq!(found["serviceList"][0]["name"], "payments", "{found}");
    let paged = http_json(&services, &[("pageNo", "2"), ("pageSize", "1")]).await;
    assert_eq!((paged["count"].as_u64(), paged["serviceList"][0]["name"].as_str()), (Some(2), Some("payments")));

    let held = http_json(&instances, &[("serviceName", "orders")]).await;
    assert_eq!(held["count"], 4, "{held}");
    let enabled: Vec<(&str, bool)> = held["list"]
        .as_array()
        .expect("list")
        .iter()
        .map(|i| (i["ip"].as_str().unwrap_or(""), i["enabled"].as_bool().unwrap_or(true)))
        .collect();
    assert_eq!(enabled, [("10.0.0.1", true), ("10.0.0.2", false), ("10.0.0.3", true), ("10.0.0.4", true)]);

    for (url, params, status) in [
        (&services, vec![("pageSize", "0")], 400),
        (&services, vec![("pageNo", "x")], 400),
        (&services, vec![("withInstances", "true")], 400),
        (&services, vec![("namespaceId", "bad namespace!")], 400),
        (&instances, vec![("serviceName", "missing")], 404),
        (&instances, vec![("serviceName", "orders"), ("clusterName", "nowhere")], 404),
        (&instances, vec![], 400),
    ] {
        let (code, body) = http_query(Method::GET, url, &params).await;
        assert_eq!(code, status, "{url} {params:?}: {body}");
    }
    node.shutdown().await;
}

#[tokio::test]
async fn the_service_view_names_who_is_responsible_for_each_instance() {
    let node = start(test_config()).await;
    ready(&node).await;
    let grpc = populate(&node).await;
    let url = format!("{}/roster/v1/console/service", http_base(&node));
    let view = http_json(&url, &[("serviceName", "orders")]).await;
    let member = node.member();
    assert_eq!((view["member"].as_str(), view["leader"].as_str()), (Some(member), Some(member)), "{view}");
    let rows: Vec<Value> = view["instances"]
        .as_array()
        .expect("instances")
        .iter()
        .map(|r| json!([r["ip"], r["clientKind"], r["enabled"], r["responsible"], r["basis"]]))
        .collect();
    assert_eq!(
        rows,
        [
            json!(["10.0.0.1", "ipPort", true, member, "distroHash"]),
            json!(["10.0.0.2", "ipPort", false, member, "distroHash"]),
            json!(["10.0.0.3", "persistent", true, member, "raftLeader"]),
            json!(["10.0.0.4", "connection", true, member, "connectedHere"]),
        ]
    );
    assert_eq!(view["instances"][3]["clientId"], grpc.connection_id.as_str());
    assert_eq!(view["service"]["name"], "orders");
    let (code, body) = http_query(Method::GET, &url, &[("serviceName", "missing")]).await;
    assert_eq!(code, 404, "{body}");
    node.shutdown().await;
}

/// Only a member that signed with the cluster secret learns which
/// connections a member holds; the answer names only those it holds.
#[tokio::test]
async fn only_members_may_ask_which_connections_a_member_holds() {
    let node = start(test_config()).await;
    let grpc = RawClient::connect(&node, true).await;
    let url = format!("{}/roster/v1/console/connections", http_base(&node));
    let path = "/roster/v1/console/connections";
    let ask = |auth: Option<PeerAuth>, body: Value| {
        let url = url.clone();
        async move {
            let body = serde_json::to_vec(&body).expect("JSON");
            let mut headers = http::HeaderMap::new();
            if let Some(auth) = auth {
                auth.sign(&mut headers, "POST", path, &body);
            }
            let answer = reqwest::Client::new().post(url).headers(headers).body(body).send().await.expect("answer");
            (answer.status().as_u16(), answer.text().await.expect("body"))
        }
    };
    let secret = ClusterSecret::new(cluster_secret().as_bytes()).expect("secret");
    let question = json!({"ids": [grpc.connection_id, "nobody"]});

    let (code, body) = ask(Some(PeerAuth::new(&secret, node.member())), question.clone()).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(serde_json::from_str::<Value>(&body).expect("JSON"), json!({"connected": [grpc.connection_id]}));

    let (code, _) = ask(None, question.clone()).await;
    assert_eq!(code, 403, "unsigned");
    let (code, _) = ask(Some(PeerAuth::new(&secret, "127.0.0.9:8848")), question.clone()).await;
    assert_eq!(code, 403, "signed, but not by a member");
    let stranger = ClusterSecret::new(b"another cluster's secret, 32 bytes long").expect("secret");
    let (code, _) = ask(Some(PeerAuth::new(&stranger, node.member())), question).await;
    assert_eq!(code, 403, "another cluster's secret");
    let (code, body) = ask(Some(PeerAuth::new(&secret, node.member())), json!({"ids": "x"})).await;
    assert_eq!(code, 400, "{body}");

    // A signature covers the body: the same headers over another question are refused.
    let signed = serde_json::to_vec(&json!({"ids": ["nobody"]})).expect("JSON");
    let mut headers = http::HeaderMap::new();
    PeerAuth::new(&secret, node.member()).sign(&mut headers, "POST", path, &signed);
    let swapped = serde_json::to_vec(&json!({"ids": [grpc.connection_id]})).expect("JSON");
    let answer = reqwest::Client::new().post(url.clone()).headers(headers).body(swapped).send().await.expect("answer");
    assert_eq!(answer.status().as_u16(), 403, "a signature over another body");
    let too_many = json!({"ids": vec!["x"; 10_001]});
    let (code, body) = ask(Some(PeerAuth::new(&secret, node.member())), too_many).await;
    assert_eq!(code, 400, "{body}");
    node.shutdown().await;
}

/// With authentication on and the client IP's rate spent: the console's
/// data routes still answer (they are bounded otherwise) but need the read
/// right; the cluster view and the files need no token.
#[tokio::test]
async fn the_console_answers_beside_a_spent_rate_with_the_callers_rights() {
    let node = start({
        let mut c = test_config();
        c.auth.enabled = true;
        c.auth.dir = Some(auth_dir());
        c.limits.http_rate_limit = 0.001;
        c.limits.http_rate_burst = 1;
        c
    })
    .await;
    let base = http_base(&node);
    let login = [("username", "viewer"), ("password", "viewer-pw")];
    let (code, body) = http_form(Method::POST, &format!("{base}/nacos/v1/auth/login"), &login).await;
    assert_eq!(code, 200, "{body}");
    let token = serde_json::from_str::<Value>(&body).expect("JSON")["accessToken"].as_str().expect("token").to_owned();
    let (code, _) =
        http_query(Method::GET, &format!("{base}/nacos/v1/ns/instance/list"), &[("serviceName", "a")]).await;
    assert_eq!(code, 429, "the rate is spent");

    let services = format!("{base}/nacos/v1/ns/catalog/services");
    assert_eq!(http_json(&services, &[("accessToken", &token)]).await["count"], 0);
    let (code, _) = http_query(Method::GET, &services, &[]).await;
    assert_eq!(code, 403, "no token");
    let (code, _) = http_query(Method::GET, &services, &[("accessToken", "forged")]).await;
    assert_eq!(code, 403, "a forged token");

    let info = http_json(&format!("{base}/roster/v1/console/info"), &[]).await;
    assert_eq!((info["member"].as_str(), info["authEnabled"].as_bool()), (Some(node.member()), Some(true)));
    let page = reqwest::get(format!("{base}/console/")).await.expect("page");
    assert_eq!(page.status(), 200);
    let csp = page.headers().get("content-security-policy").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    assert!(csp.starts_with("default-src 'self'"), "{csp}");
    assert!(page.text().await.expect("body").contains("app.js"));
    assert_eq!(reqwest::get(format!("{base}/console/nothing.js")).await.expect("answer").status(), 404);

    let cluster = eventually("the cluster view names the leader", WAIT, || async {
        let view = http_json(&format!("{base}/roster/v1/cluster"), &[]).await;
        view["leader"].is_string().then_some(view)
    })
    .await;
    assert_eq!(cluster["member"], node.member());
    let members = cluster["members"].as_array().expect("members");
    assert_eq!(members.len(), 1, "{cluster}");
    assert_eq!((members[0]["serving"].as_bool(), members[0]["state"].as_str()), (Some(true), Some("UP")));
    assert_eq!(members[0]["status"]["member"], node.member(), "its own status document");
    node.shutdown().await;
}
