//! Beats of HTTP-registered (ip:port client) instances: renewal, expiry to
//! unhealthy and then removal, revival, and Nacos's 20404 / auto-register
//! answers for unknown instances (research/nacos.md §3, §4).

use crate::common;

use std::time::{Duration, Instant};

use reqwest::Method;
use roster_node::{Config, RunningNode};
use serde_json::{json, Value};

use common::{eventually, http_base, http_form, http_json, http_query, start, test_config};

const INSTANCE: &str = "/nacos/v1/ns/instance";
const BEAT: &str = "/nacos/v1/ns/instance/beat";
const LIST: &str = "/nacos/v1/ns/instance/list";
/// Bound on every wait for expiry.
const WAIT: Duration = Duration::from_secs(10);

/// Short beat timers: unhealthy after 600 ms of silence, removed after 1.2 s.
fn beat_config() -> Config {
    let mut config = test_config();
    config.beats.timeout = Duration::from_millis(600);
    config.beats.delete_timeout = Duration::from_millis(1200);
    config.beats.check_interval = Duration::from_millis(100);
    config
}

fn url(node: &RunningNode, path: &str) -> String {
    format!("{}{path}", http_base(node))
}

async fn register(node: &RunningNode, extra: &[(&str, &str)]) {
    let mut params = vec![("serviceName", "beating"), ("ip", "10.1.0.1"), ("port", "9000")];
    params.extend_from_slice(extra);
    let (status, body) = http_form(Method::POST, &url(node, INSTANCE), &params).await;
    assert_eq!((status, body.as_str()), (200, "ok"));
}

/// A light beat (no `beat` JSON) for the registered instance.
async fn light_beat(node: &RunningNode) -> Value {
    let params = [("serviceName", "beating"), ("ip", "10.1.0.1"), ("port", "9000")];
    let (status, body) = http_query(Method::PUT, &url(node, BEAT), &params).await;
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("beat answered non-JSON ({e}): {body}"))
}

/// The instance's `healthy` in the full list, `None` once it is gone.
async fn health(node: &RunningNode) -> Option<bool> {
    let info = http_json(&url(node, LIST), &[("serviceName", "beating")]).await;
    info["hosts"].get(0).map(|h| h["healthy"] == true)
}

#[tokio::test]
async fn a_beat_renews_and_tells_the_interval() {
    let node = start(beat_config()).await;
    register(&node, &[]).await;
    assert_eq!(light_beat(&node).await, json!({"clientBeatInterval": 5000, "code": 10200, "lightBeatEnabled": true}));
    // The interval comes from the instance's preserved metadata when set.
    register(&node, &[("metadata", "preserved.heart.beat.interval=300")]).await;
    assert_eq!(light_beat(&node).await["clientBeatInterval"], 300);
    node.shutdown().await;
}

#[tokio::test]
async fn a_silent_instance_turns_unhealthy_then_is_removed() {
    let node = start(beat_config()).await;
    register(&node, &[]).await;
    assert_eq!(health(&node).await, Some(true));

    eventually("instance turns unhealthy", WAIT, || async { (health(&node).await == Some(false)).then_some(()) }).await;
    let healthy_only = http_json(&url(&node, LIST), &[("serviceName", "beating"), ("healthyOnly", "true")]).await;
    assert_eq!(healthy_only["hosts"], json!([]));

    eventually("instance is removed", WAIT, || async { health(&node).await.is_none().then_some(()) }).await;
    eventually("its ip:port client is removed", WAIT, || async {
        (!node.store().has_client("10.1.0.1:9000#true")).then_some(())
    })
    .await;
    assert_eq!(node.store().counts().instances, 0);
    // A light beat now gets "unknown instance".
    assert_eq!(light_beat(&node).await["code"], 20404);
    node.shutdown().await;
}

/// When the node last recorded a beat (or the registration) of the instance.
fn last_beat(node: &RunningNode) -> Instant {
    let client = node.store().client("10.1.0.1:9000#true").expect("the instance's ip:port client");
    client.published().values().flat_map(|set| set.values()).map(|p| p.last_beat).next().expect("its instance")
}

#[tokio::test]
async fn beats_keep_an_instance_healthy_and_revive_it() {
    // Beat timers far longer than the test: the node's own expiry never
    // acts here. The test judges the silence itself, at instants counted
    // from the last beat the node recorded, so no time has to pass.
    let timeout = Duration::from_secs(3600);
    let mut config = beat_config();
    config.beats.timeout = timeout;
    config.beats.delete_timeout = 2 * timeout;
    let node = start(config).await;
    register(&node, &[]).await;
    let expire_after = |silence: Duration| {
        node.store().expire_beats(last_beat(&node) + silence, |_| true);
    };

    // Each beat renews the instance: up to its beat timeout after the last
    // beat, it is healthy.
    for _ in 0..3 {
        let before = last_beat(&node);
        assert_eq!(light_beat(&node).await["code"], 10200);
        assert!(last_beat(&node) > before, "a beat renews the instance");
        expire_after(timeout);
        assert_eq!(health(&node).await, Some(true), "a beating instance stays healthy");
    }

    expire_after(timeout + Duration::from_millis(1));
    assert_eq!(health(&node).await, Some(false), "silent past its beat timeout");
    assert_eq!(light_beat(&node).await["code"], 10200);
    assert_eq!(health(&node).await, Some(true), "a beat revives at once");
    node.shutdown().await;
}

#[tokio::test]
async fn a_light_beat_for_an_unknown_instance_gets_20404_and_changes_nothing() {
    let node = start(beat_config()).await;
    let before = node.store().counts();
    assert_eq!(light_beat(&node).await, json!({"clientBeatInterval": 5000, "code": 20404, "lightBeatEnabled": true}));
    assert_eq!(node.store().counts(), before);
    assert!(!node.store().has_client("10.1.0.1:9000#true"));
    node.shutdown().await;
}

#[tokio::test]
async fn a_full_beat_for_an_unknown_instance_registers_it() {
    let node = start(beat_config()).await;
    // As the Java 1.x client sends it: `beat` JSON in the form body, the rest in the query.
    let beat = json!({
        "ip": "10.1.0.2",
        "port": 9100,
        "cluster": "c1",
        "serviceName": "g1@@auto",
        "weight": 2.0,
        "metadata": {"zone": "a"},
        "scheduled": false,
        "period": 5000,
        "stopped": false
    })
    .to_string();
    let url_with_query =
        format!("{}?serviceName=g1%40%40auto&namespaceId=dev&clusterName=c1&ip=10.1.0.2&port=9100", url(&node, BEAT));
    let (status, body) = http_form(Method::PUT, &url_with_query, &[("beat", beat.as_str())]).await;
    assert_eq!(status, 200, "{body}");
    let answer: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    assert_eq!(answer, json!({"clientBeatInterval": 5000, "code": 10200, "lightBeatEnabled": true}));

    let info = http_json(&url(&node, LIST), &[("namespaceId", "dev"), ("serviceName", "g1@@auto")]).await;
    let host = &info["hosts"][0];
    assert_eq!(host["instanceId"], "10.1.0.2#9100#c1#g1@@auto");
    assert_eq!(host["weight"], 2.0);
    assert_eq!(host["ephemeral"], true);
    assert_eq!(host["healthy"], true);
    assert_eq!(host["metadata"], json!({"zone": "a"}));
    assert!(node.store().has_client("10.1.0.2:9100#true"));

    // Beats with the JSON keep working once it exists.
    let (status, body) = http_form(Method::PUT, &url_with_query, &[("beat", beat.as_str())]).await;
    assert_eq!(status, 200);
    assert!(body.contains("10200"), "{body}");
    assert_eq!(node.store().counts().instances, 1);
    node.shutdown().await;
}

#[tokio::test]
async fn a_malformed_beat_is_refused() {
    let node = start(beat_config()).await;
    let before = node.store().counts();
    for (params, needle) in [
        (vec![("serviceName", "beating"), ("beat", "{not json")], "'beat'"),
        (vec![("serviceName", "beating"), ("ip", "10.1.0.1"), ("port", "abc")], "'port'"),
        (vec![("serviceName", "beating"), ("ip", "10.1.0.1")], "'port'"),
        (vec![("ip", "10.1.0.1"), ("port", "1")], "'serviceName'"),
        (vec![("serviceName", "beating"), ("beat", r#"{"ip":"10.1.0.1","port":70000}"#)], "'port'"),
    ] {
        let (status, body) = http_form(Method::PUT, &url(&node, BEAT), &params).await;
        assert_eq!(status, 400, "{params:?}: {body}");
        assert!(body.starts_with("caused: ") && body.contains(needle), "{params:?}: {body}");
    }
    assert_eq!(node.store().counts(), before);
    node.shutdown().await;
}
