//! A node with peers is not ready until it has loaded the Distro snapshot:
//! with every peer unreachable it keeps retrying, answers 503 and reports
//! `distro.initialized=false`; once its list has no peer left, it is loaded
//! (with no source) and ready. A node whose address server has never
//! answered knows no list and does not load from nobody; restarted while
//! its address server is down, it starts from the list it kept.

use crate::common;

use std::time::Duration;

use crate::common::address_server::{self, Answer};

use axum::http::StatusCode;
use roster_node::cluster::LookupMode;
use roster_node::Config;
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(10);

async fn readiness(base: &str) -> u16 {
    reqwest::get(format!("{base}/nacos/v1/console/health/readiness")).await.expect("GET").status().as_u16()
}

/// The count of a metric line `name` (labels included), 0 when absent.
async fn counter(base: &str, name: &str) -> u64 {
    let Ok(answer) = reqwest::get(format!("{base}/metrics")).await else { return 0 };
    let text = answer.text().await.unwrap_or_default();
    text.lines().find_map(|l| l.strip_prefix(name)?.trim().parse::<u64>().ok()).unwrap_or(0)
}

async fn distro(base: &str) -> Value {
    let status: Value =
        reqwest::get(format!("{base}/roster/v1/status")).await.expect("GET").json().await.expect("json");
    status["distro"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_ready_until_the_snapshot_is_loaded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let conf = dir.path().join("cluster.conf");
    // A peer nobody serves (port 9 on loopback: discard, closed here).
    common::write_conf(&conf, "127.0.0.1:9\n");
    let config = {
        let mut c = common::test_config();
        c.cluster.lookup.mode = LookupMode::File;
        c.cluster.lookup.cluster_conf = conf.clone();
        c.cluster.lookup.file_poll_interval = Duration::from_millis(50);
        c.distro.load_retry_delay = Duration::from_millis(100);
        c.distro.sync_timeout = Duration::from_millis(300);
        c
    };
    let node = common::start(config).await;
    let base = common::http_base(&node);

    // Several load rounds fail: still not ready, nothing loaded.
    common::eventually("two failed load rounds", WAIT, || async {
        let metrics = reqwest::get(format!("{base}/metrics")).await.ok()?.text().await.ok()?;
        let rounds = metrics.lines().find_map(|l| {
            l.strip_prefix("roster_distro_events_total{event=\"snapshot_round_failed\"} ")?.trim().parse::<u64>().ok()
        })?;
        (rounds >= 2).then_some(())
    })
    .await;
    assert_eq!(readiness(&base).await, 503);
    let d = distro(&base).await;
    assert_eq!(d["initialized"], false, "{d}");
    assert!(d["snapshotSource"].is_null() && d["snapshotLoadedAt"].is_null(), "{d}");
    let own = node.membership().member(node.membership().local()).expect("self");
    assert!(!own.distro_initialized, "reports tell peers it has not loaded");
    // A light beat for an instance it does not hold: it cannot know the
    // instance is gone, so no 20404 (which makes clients register again).
    let beat_url = format!("{base}/nacos/v1/ns/instance/beat");
    let beat_params = [("serviceName", "svc-beat"), ("ip", "10.8.1.1"), ("port", "80")];
    let beat = || common::http_form(reqwest::Method::PUT, &beat_url, &beat_params);
    let (status, body) = beat().await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("STARTING"), "{body}");

    // The unreachable peer leaves the list: nothing to load from, so loaded.
    common::write_conf(&conf, &format!("{}\n", node.member()));
    common::eventually("readiness after the peer left", WAIT, || async {
        (readiness(&base).await == 200).then_some(())
    })
    .await;
    let d = distro(&base).await;
    assert_eq!(d["initialized"], true, "{d}");
    assert!(d["snapshotSource"].is_null(), "no peer served it: {d}");
    assert!(d["snapshotLoadedAt"].as_str().is_some_and(|t| t.ends_with('Z')), "{d}");
    let (status, body) = beat().await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("20404"), "loaded, it knows the instance is unknown: {body}");
    node.shutdown().await;
}

/// The config of a member on `ip`:8848 whose list comes from the address
/// server at `server`, polled every 50 ms.
fn listed_by(ip: &str, server: std::net::SocketAddr) -> Config {
    let mut c = common::member_config(ip, std::path::Path::new("unused"));
    c.cluster.lookup.mode = LookupMode::AddressServer;
    c.cluster.lookup.address_server_url = Some(format!("http://{server}{}", address_server::PATH));
    c.cluster.lookup.address_server_poll_interval = Duration::from_millis(50);
    c.cluster.lookup.address_server_timeout = Duration::from_millis(500);
    c.distro.load_retry_delay = Duration::from_millis(100);
    c.distro.sync_timeout = Duration::from_millis(500);
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_address_server_never_answered_stays_not_ready() {
    let answer = Answer::new(StatusCode::SERVICE_UNAVAILABLE, "starting");
    let (server, stop, task) = address_server::serve(answer.clone()).await;
    let ip = common::loopback_ips(1).remove(0);
    let node = common::start(listed_by(&ip, server)).await;
    let base = common::http_base(&node);

    // Many lookups and load rounds later: no list, so nothing loaded from
    // nobody, and not ready.
    common::eventually("ten failed lookups", WAIT, || async {
        (counter(&base, "roster_member_lookup_refreshes_total{result=\"failed\"} ").await >= 10).then_some(())
    })
    .await;
    assert_eq!(readiness(&base).await, 503);
    assert_eq!(distro(&base).await["initialized"], false);
    assert!(!node.membership().knows_list());
    assert!(!node.distro().is_initialized());

    // The server answers a list naming this member alone: alone by
    // configuration, it loads from nobody and serves.
    answer.set(StatusCode::OK, &format!("{}\n", node.member()));
    common::eventually("ready once the list is known", WAIT, || async {
        (readiness(&base).await == 200).then_some(())
    })
    .await;
    let d = distro(&base).await;
    assert!(d["snapshotSource"].is_null(), "{d}");
    node.shutdown().await;
    let _ = stop.send(());
    let _ = task.await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_restart_while_the_address_server_is_down_starts_from_the_list_it_kept() {
    let ips = common::loopback_ips(2);
    let names: Vec<String> = ips.iter().map(|ip| format!("{ip}:8848")).collect();
    let answer = Answer::new(StatusCode::OK, &names.join("\n"));
    let (server, stop, task) = address_server::serve(answer.clone()).await;
    let (config_a, config_b) = (listed_by(&ips[0], server), listed_by(&ips[1], server));
    let mut nodes = vec![common::start(config_a.clone()).await, common::start(config_b).await];
    common::responsibility_split(&nodes, &names).await;
    let kept = std::fs::read_to_string(config_a.data_dir.join("members")).expect("the list kept in the data directory");
    assert_eq!(kept.lines().collect::<Vec<_>>(), names, "{kept}");
    let (status, body) = common::http_form(
        reqwest::Method::POST,
        &format!("{}/nacos/v1/ns/instance", common::http_base(&nodes[1])),
        &[("serviceName", "svc-kept"), ("ip", "10.8.0.1"), ("port", "80")],
    )
    .await;
    assert_eq!((status, body.as_str()), (200, "ok"));
    let hosts = |node: &roster_node::RunningNode| common::grpc::hosts(node, "svc-kept");
    common::eventually("the instance on A", WAIT, || async { (hosts(&nodes[0]) == 1).then_some(()) }).await;

    // The address server goes away, then A restarts on the same data.
    let _ = stop.send(());
    let _ = task.await;
    nodes.remove(0).shutdown().await;
    let a = common::start(config_a).await;
    let base = common::http_base(&a);
    common::eventually("A ready again, from the kept list", WAIT, || async {
        (readiness(&base).await == 200).then_some(())
    })
    .await;
    assert!(
        counter(&base, "roster_member_lookup_refreshes_total{result=\"failed\"} ").await >= 1,
        "the server was down"
    );
    assert_eq!(a.membership().peers(), [names[1].clone()]);
    assert_eq!(distro(&base).await["snapshotSource"], names[1].as_str(), "loaded from its peer, not from nobody");
    assert_eq!(hosts(&a), 1);
    a.shutdown().await;
    for node in nodes {
        node.shutdown().await;
    }
}
