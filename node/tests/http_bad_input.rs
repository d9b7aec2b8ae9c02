//! Bad input on the v1 API gets a clear Nacos-style error (status from the
//! error kind, body `caused: <message>;` naming the problem) and changes
//! nothing in the store (the README's "What works today", Validation).

use crate::common;

use reqwest::Method;
use roster_node::naming::StoreCounts;
use roster_node::{Config, RunningNode};
use serde_json::Value;

use common::{http_base, http_form, http_json, http_query, start, test_config};

const INSTANCE: &str = "/nacos/v1/ns/instance";
const LIST: &str = "/nacos/v1/ns/instance/list";
const SERVICE: &str = "/nacos/v1/ns/service";
/// Metadata limit of the node under test (keys plus values, bytes).
const MAX_METADATA: usize = 64;
/// Body limit of the node under test (bytes).
const MAX_BODY: usize = 2048;

fn small_limits() -> Config {
    let mut config = test_config();
    config.limits.max_metadata_bytes = MAX_METADATA;
    config.limits.max_body_bytes = MAX_BODY;
    config
}

/// What must not change: store sizes and the baseline service's instances.
async fn snapshot(node: &RunningNode) -> (StoreCounts, Value) {
    let info = http_json(&format!("{}{LIST}", http_base(node)), &[("serviceName", "base")]).await;
    (node.store().counts(), info["hosts"].clone())
}

/// A node with one known instance (`base`, 10.2.0.1:80) to compare against.
async fn node_with_baseline() -> RunningNode {
    let node = start(small_limits()).await;
    let (status, body) = http_form(
        Method::POST,
        &format!("{}{INSTANCE}", http_base(&node)),
        &[("serviceName", "base"), ("ip", "10.2.0.1"), ("port", "80"), ("metadata", "k=v")],
    )
    .await;
    assert_eq!((status, body.as_str()), (200, "ok"));
    node
}

/// Sends `params` as a form body and checks the refusal and that nothing changed.
async fn refused(node: &RunningNode, method: Method, path: &str, params: &[(&str, &str)], status: u16, needle: &str) {
    let before = snapshot(node).await;
    let (got, body) = http_form(method.clone(), &format!("{}{path}", http_base(node)), params).await;
    assert_eq!(got, status, "{method} {path} {params:?}: {body}");
    assert!(body.starts_with("caused: ") && body.ends_with(';'), "not a Nacos error body: {body}");
    assert!(body.contains(needle), "{method} {path} {params:?}: '{needle}' not in: {body}");
    assert_eq!(snapshot(node).await, before, "{method} {path} {params:?} changed the store");
}

/// Register parameters of a valid new instance with `name` set to `value`,
/// or removed for `None`.
fn register_with<'a>(name: &'a str, value: Option<&'a str>) -> Vec<(&'a str, &'a str)> {
    let mut params = vec![("serviceName", "base"), ("ip", "10.2.0.9"), ("port", "81")];
    params.retain(|(k, _)| *k != name);
    if let Some(v) = value {
        params.push((name, v));
    }
    params
}

#[tokio::test]
async fn bad_registrations_are_refused_and_change_nothing() {
    let node = node_with_baseline().await;
    let big_metadata = format!("k={}", "x".repeat(MAX_METADATA));
    let cases = [
        ("serviceName", None, "'serviceName' is required"),
        ("serviceName", Some("   "), "'serviceName' is required"),
        ("serviceName", Some("a@@b@@c"), "'serviceName'"),
        ("groupName", Some("bad group"), "'groupName'"),
        ("namespaceId", Some("bad/ns"), "'namespaceId'"),
        ("ip", None, "'ip' is required"),
        ("port", None, "'port' is required"),
        ("port", Some("0"), "'port' is out of range"),
        ("port", Some("70000"), "'port' is out of range"),
        ("port", Some("abc"), "'port' is not a whole number"),
        ("weight", Some("-1"), "'weight' is out of range"),
        ("weight", Some("20000"), "'weight' is out of range"),
        ("weight", Some("abc"), "'weight' is not a number"),
        ("weight", Some("NaN"), "'weight' is out of range"),
        ("metadata", Some(r#"{"k": "#), "'metadata' is not valid JSON"),
        ("metadata", Some("[1,2]"), "'metadata'"),
        ("metadata", Some("novalue"), "'metadata' is illegal"),
        ("metadata", Some(big_metadata.as_str()), "'metadata' is too large"),
        ("clusterName", Some("bad/cluster"), "'clusterName' is illegal"),
        ("healthy", Some("yes"), "'healthy' must be 'true' or 'false'"),
        ("enabled", Some("1"), "'enabled' must be 'true' or 'false'"),
        ("ephemeral", Some("maybe"), "'ephemeral' must be 'true' or 'false'"),
    ];
    for (name, value, needle) in cases {
        refused(&node, Method::POST, INSTANCE, &register_with(name, value), 400, needle).await;
    }
    node.shutdown().await;
}

#[tokio::test]
async fn oversize_bodies_get_413() {
    let node = node_with_baseline().await;
    let padding = "x".repeat(MAX_BODY * 2);
    let params = [("serviceName", "base"), ("ip", "10.2.0.9"), ("port", "81"), ("padding", padding.as_str())];
    refused(&node, Method::POST, INSTANCE, &params, 413, &format!("limit of {MAX_BODY} bytes")).await;
    refused(&node, Method::PUT, "/nacos/v1/ns/instance/beat", &params, 413, "limit").await;
    // Just under the limit is fine (and unknown parameters are ignored).
    let padding = "x".repeat(MAX_BODY - 200);
    let params = [("serviceName", "base"), ("ip", "10.2.0.9"), ("port", "81"), ("padding", padding.as_str())];
    let (status, body) = http_form(Method::POST, &format!("{}{INSTANCE}", http_base(&node)), &params).await;
    assert_eq!((status, body.as_str()), (200, "ok"));
    node.shutdown().await;
}

#[tokio::test]
async fn bad_updates_deregistrations_and_queries_change_nothing() {
    let node = node_with_baseline().await;
    let base = [("serviceName", "base"), ("ip", "10.2.0.1"), ("port", "80")];
    let with = |extra: (&'static str, &'static str)| {
        let mut p = base.to_vec();
        p.push(extra);
        p
    };
    refused(&node, Method::PUT, INSTANCE, &with(("weight", "abc")), 400, "'weight'").await;
    refused(&node, Method::PUT, INSTANCE, &with(("weight", "10001")), 400, "'weight'").await;
    refused(&node, Method::PUT, INSTANCE, &with(("healthy", "nope")), 400, "'healthy'").await;
    refused(&node, Method::PUT, INSTANCE, &with(("metadata", "{bad")), 400, "'metadata'").await;
    refused(&node, Method::PATCH, INSTANCE, &with(("enable", "off")), 400, "'enable'").await;
    refused(
        &node,
        Method::DELETE,
        INSTANCE,
        &[("serviceName", "base"), ("ip", "10.2.0.1"), ("port", "abc")],
        400,
        "'port'",
    )
    .await;
    refused(&node, Method::DELETE, INSTANCE, &with(("ephemeral", "x")), 400, "'ephemeral'").await;
    refused(&node, Method::DELETE, INSTANCE, &with(("clusterName", "a b")), 400, "'clusterName'").await;
    refused(&node, Method::GET, INSTANCE, &[("serviceName", "base"), ("ip", "10.2.0.1")], 400, "'port'").await;

    // Queries: GET with parameters in the query string.
    let list = format!("{}{LIST}", http_base(&node));
    for (params, needle) in [
        (vec![("serviceName", "base"), ("healthyOnly", "perhaps")], "'healthyOnly'"),
        (vec![("serviceName", "base"), ("clusters", "ok,bad/one")], "Param 'clusters'"),
        (vec![("serviceName", "")], "'serviceName'"),
    ] {
        let (status, body) = http_query(Method::GET, &list, &params).await;
        assert_eq!(status, 400, "{params:?}: {body}");
        assert!(body.starts_with("caused: ") && body.contains(needle), "{params:?}: {body}");
    }
    // reqwest escapes '%' itself, so the malformed escape goes in by hand.
    let (status, body) = http_query(Method::GET, &format!("{list}?serviceName=base%zz"), &[]).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("malformed '%' escape"), "{body}");
    let (counts, hosts) = snapshot(&node).await;
    assert_eq!(counts.instances, 1);
    assert_eq!(hosts[0]["metadata"]["k"], "v");
    assert_eq!(hosts[0]["weight"], 1.0);
    node.shutdown().await;
}

#[tokio::test]
async fn bad_service_requests_change_nothing() {
    let node = node_with_baseline().await;
    let big_metadata = format!("k={}", "x".repeat(MAX_METADATA));
    for (params, needle) in [
        (vec![("serviceName", "s"), ("protectThreshold", "2")], "'protectThreshold' is out of range"),
        (vec![("serviceName", "s"), ("protectThreshold", "abc")], "'protectThreshold' is not a number"),
        (vec![("serviceName", "s"), ("selector", "{bad")], "'selector' is not valid JSON"),
        (vec![("serviceName", "s"), ("selector", r#"{"type":"magic"}"#)], "unknown type 'magic'"),
        (vec![("serviceName", "s"), ("metadata", big_metadata.as_str())], "'metadata' is too large"),
        (vec![("serviceName", "s s")], "'serviceName'"),
        (vec![("protectThreshold", "0.5")], "'serviceName' is required"),
    ] {
        refused(&node, Method::POST, SERVICE, &params, 400, needle).await;
    }
    assert!(node.store().service(&roster_node::naming::ServiceKey::new("public", "DEFAULT_GROUP", "s")).is_none());

    let list = format!("{}/nacos/v1/ns/service/list", http_base(&node));
    for (params, needle) in [
        (vec![("pageSize", "10")], "'pageNo' is required"),
        (vec![("pageNo", "1")], "'pageSize' is required"),
        (vec![("pageNo", "0"), ("pageSize", "10")], "'pageNo' is out of range"),
        (vec![("pageNo", "1"), ("pageSize", "0")], "'pageSize' is out of range"),
        (vec![("pageNo", "1"), ("pageSize", "100000")], "'pageSize' is out of range"),
        (vec![("pageNo", "x"), ("pageSize", "10")], "'pageNo' is not a whole number"),
        (vec![("pageNo", "1"), ("pageSize", "10"), ("namespaceId", "bad ns")], "'namespaceId'"),
    ] {
        let (status, body) = http_query(Method::GET, &list, &params).await;
        assert_eq!(status, 400, "{params:?}: {body}");
        assert!(body.starts_with("caused: ") && body.contains(needle), "{params:?}: {body}");
    }
    node.shutdown().await;
}

#[tokio::test]
async fn unknown_paths_and_methods_are_refused() {
    let node = node_with_baseline().await;
    let before = snapshot(&node).await;
    let (status, body) = http_form(Method::POST, &format!("{}/nacos/v1/ns/nothing", http_base(&node)), &[]).await;
    assert_eq!(status, 404);
    assert!(body.starts_with("caused: ") && body.contains("/nacos/v1/ns/nothing"), "{body}");
    let (status, _) = http_form(Method::POST, &format!("{}{LIST}", http_base(&node)), &[("serviceName", "base")]).await;
    assert_eq!(status, 405);
    assert_eq!(snapshot(&node).await, before);
    node.shutdown().await;
}
