//! A node with peers is not ready until it has loaded the Distro snapshot:
//! with every peer unreachable it keeps retrying, answers 503 and reports
//! `distro.initialized=false`; once its list has no peer left, it is loaded
//! (with no source) and ready.

use crate::common;

use std::time::Duration;

use roster_node::cluster::LookupMode;
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(10);

async fn readiness(base: &str) -> u16 {
    reqwest::get(format!("{base}/nacos/v1/console/health/readiness")).await.expect("GET").status().as_u16()
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
    node.shutdown().await;
}
