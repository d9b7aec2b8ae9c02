//! Raft on a standalone node (`docs/ARCHITECTURE.md`, "One persistent
//! write"): persistent instances and service settings survive a restart
//! from the same data directory; the member keeps
//! its Raft id; validation errors come back as before; the leader's health
//! checks mark persistent instances unhealthy and healthy again.

use crate::common;

use std::time::Duration;

use reqwest::Method;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use common::{eventually, http_form, http_json, http_query, start, test_config};

const WAIT: Duration = Duration::from_secs(10);

async fn status(base: &str) -> Value {
    http_json(&format!("{base}/roster/v1/status"), &[]).await
}

#[tokio::test]
async fn persistent_data_survives_a_restart() {
    let mut config = test_config();
    let data_dir = config.data_dir.clone();
    let node = start(config.clone()).await;
    let base = common::http_base(&node);
    let id = status(&base).await["raft"]["id"].clone();

    let instance = [("serviceName", "db"), ("ip", "127.0.0.1"), ("port", "5432"), ("ephemeral", "false")];
    assert_eq!(http_form(Method::POST, &format!("{base}/nacos/v1/ns/instance"), &instance).await, (200, "ok".into()));
    let service = [("serviceName", "orders"), ("protectThreshold", "0.5"), ("metadata", "team=a")];
    assert_eq!(http_form(Method::POST, &format!("{base}/nacos/v1/ns/service"), &service).await, (200, "ok".into()));
    // Validation decided in apply: same errors as before Raft, nothing changed.
    let (code, body) = http_form(Method::POST, &format!("{base}/nacos/v1/ns/service"), &service).await;
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("already exists"), "{body}");
    let (code, body) =
        http_query(Method::DELETE, &format!("{base}/nacos/v1/ns/service"), &[("serviceName", "db")]).await;
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("not empty"), "{body}");
    let (code, _) =
        http_query(Method::DELETE, &format!("{base}/nacos/v1/ns/service"), &[("serviceName", "none")]).await;
    assert_eq!(code, 404);
    let (code, _) = http_form(
        Method::PUT,
        &format!("{base}/nacos/v1/ns/instance"),
        &[("serviceName", "db"), ("ip", "127.0.0.1"), ("port", "5432"), ("weight", "7")],
    )
    .await;
    assert_eq!(code, 200);
    let before = status(&base).await["raft"]["appliedIndex"].as_u64().unwrap_or(0);
    // Raft metrics: writes by outcome (three refusals: the existing service,
    // the non-empty delete and the 404 delete), and the gauges.
    eventually("Raft metrics exposed", WAIT, || async {
        let text = reqwest::get(format!("{base}/metrics")).await.ok()?.text().await.ok()?;
        let has = |l: &str| text.lines().any(|x| x == l);
        (has("roster_raft_writes_total{result=\"ok\"} 3")
            && has("roster_raft_writes_total{result=\"refused\"} 3")
            && has("roster_raft_leader 1")
            && has("roster_raft_voters 1"))
        .then_some(())
    })
    .await;
    node.shutdown().await;

    config.data_dir = data_dir;
    let node = start(config).await;
    let base = common::http_base(&node);
    // Present at once (loaded from disk), before any election.
    let list = http_json(&format!("{base}/nacos/v1/ns/instance/list"), &[("serviceName", "db")]).await;
    assert_eq!(list["hosts"].as_array().map(Vec::len), Some(1), "{list}");
    assert_eq!(list["hosts"][0]["ephemeral"], false);
    assert_eq!(list["hosts"][0]["weight"], 7.0);
    let detail = http_json(&format!("{base}/nacos/v1/ns/service"), &[("serviceName", "orders")]).await;
    assert_eq!(detail["protectThreshold"], 0.5);
    assert_eq!(detail["metadata"]["team"], "a");
    let s = status(&base).await;
    assert_eq!(s["raft"]["id"], id, "the Raft id is kept in the data directory");
    assert!(s["raft"]["appliedIndex"].as_u64().unwrap_or(0) >= before, "{s}");
    // And writable again once it leads.
    let (code, body) = http_query(
        Method::DELETE,
        &format!("{base}/nacos/v1/ns/instance"),
        &[("serviceName", "db"), ("ip", "127.0.0.1"), ("port", "5432"), ("ephemeral", "false")],
    )
    .await;
    assert_eq!((code, body.as_str()), (200, "ok"));
    let list = http_json(&format!("{base}/nacos/v1/ns/instance/list"), &[("serviceName", "db")]).await;
    assert_eq!(list["hosts"].as_array().map(Vec::len), Some(0), "{list}");
    node.shutdown().await;
}

async fn healthy_of(base: &str, service: &str) -> Option<bool> {
    let list = http_json(&format!("{base}/nacos/v1/ns/instance/list"), &[("serviceName", service)]).await;
    list["hosts"][0]["healthy"].as_bool()
}

/// Serves `status` to every HTTP request until dropped.
async fn http_server(status: &'static str) -> (u16, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let task = tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf).await;
            let _ = s.write_all(format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n").as_bytes()).await;
        }
    });
    (port, task)
}

#[tokio::test]
async fn the_leader_health_checks_persistent_instances() {
    let mut config = test_config();
    config.raft.health_check_interval = Duration::from_millis(100);
    config.raft.health_check_timeout = Duration::from_millis(500);
    let node = start(config).await;
    let base = common::http_base(&node);

    // TCP: a listener we hold, then close.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port().to_string();
    let tcp = [("serviceName", "tcp"), ("ip", "127.0.0.1"), ("port", port.as_str()), ("ephemeral", "false")];
    assert_eq!(http_form(Method::POST, &format!("{base}/nacos/v1/ns/instance"), &tcp).await.0, 200);
    // HTTP: a server answering 503, registered healthy.
    let (bad_port, bad) = http_server("503 Service Unavailable").await;
    let bad_port = bad_port.to_string();
    let http = [
        ("serviceName", "http"),
        ("ip", "127.0.0.1"),
        ("port", bad_port.as_str()),
        ("ephemeral", "false"),
        ("metadata", r#"{"preserved.health.checker":"HTTP","preserved.health.check.path":"/health"}"#),
    ];
    assert_eq!(http_form(Method::POST, &format!("{base}/nacos/v1/ns/instance"), &http).await.0, 200);
    eventually("the 503 instance turns unhealthy", WAIT, || async {
        (healthy_of(&base, "http").await == Some(false)).then_some(())
    })
    .await;
    assert_eq!(healthy_of(&base, "tcp").await, Some(true), "a listening TCP instance stays healthy");
    drop(listener);
    eventually("the closed TCP instance turns unhealthy", WAIT, || async {
        (healthy_of(&base, "tcp").await == Some(false)).then_some(())
    })
    .await;
    // Registered unhealthy, answering 200: turns healthy.
    bad.abort();
    let (good_port, good) = http_server("200 OK").await;
    let good_port = good_port.to_string();
    let good_http = [
        ("serviceName", "good"),
        ("ip", "127.0.0.1"),
        ("port", good_port.as_str()),
        ("ephemeral", "false"),
        ("healthy", "false"),
        ("metadata", r#"{"preserved.health.checker":"HTTP"}"#),
    ];
    assert_eq!(http_form(Method::POST, &format!("{base}/nacos/v1/ns/instance"), &good_http).await.0, 200);
    eventually("the 200 instance turns healthy", WAIT, || async {
        (healthy_of(&base, "good").await == Some(true)).then_some(())
    })
    .await;
    good.abort();
    node.shutdown().await;
}
