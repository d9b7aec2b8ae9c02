//! `roster-bench` with tiny sizes, so the benchmark binary does not rot:
//! every scenario runs against real node processes and its JSON holds sane
//! figures (counts equal what was sent, latencies above zero). Performance
//! itself is never asserted here.

use std::process::Command;

use roster_e2e::bench::SCENARIOS;
use roster_e2e::binary;
use serde_json::Value;

fn latency_ok(v: &Value, count: u64) {
    assert_eq!(v["count"].as_u64(), Some(count), "latency count in {v}");
    let p50 = v["p50_ms"].as_f64().expect("p50");
    let p99 = v["p99_ms"].as_f64().expect("p99");
    let max = v["max_ms"].as_f64().expect("max");
    assert!(p50 > 0.0 && p50 <= p99 && p99 <= max, "ordered, positive percentiles in {v}");
}

#[test]
fn every_scenario_reports_sane_figures() {
    // The node binary must be next to roster-bench; `binary` builds both if missing.
    binary("roster-node", "roster-node").expect("roster-node");
    let bench = binary("roster-e2e", "roster-bench").expect("roster-bench");
    let dir = tempfile::tempdir().expect("tempdir");
    let json_path = dir.path().join("bench.json");
    let output = Command::new(bench)
        // Run by `cargo test`, the bench would see `CARGO` and build itself
        // again; both binaries are already there.
        .env_remove("CARGO")
        .args(["--scenario", "all", "--json"])
        .arg(&json_path)
        .args(["--registrations", "300", "--connections", "6", "--duration", "500ms"])
        .args(["--query-services", "20", "--query-hosts", "5"])
        .args(["--samples", "12", "--sample-concurrency", "3", "--subscribers", "3"])
        .args(["--raft-writes", "60", "--raft-concurrency", "4"])
        .args(["--instances", "600", "--load-connections", "12", "--batch", "25", "--services", "10"])
        .args(["--settle", "200ms"])
        .output()
        .expect("run roster-bench");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "roster-bench failed:\n{stderr}");
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&json_path).expect("json written")).expect("json");
    assert!(doc["machine"]["cpus"].as_u64().is_some_and(|n| n > 0));
    assert!(doc["date"].as_str().is_some_and(|d| d.ends_with('Z')));
    let scenarios = doc["scenarios"].as_array().expect("scenarios");
    let names: Vec<&str> = scenarios.iter().filter_map(|s| s["name"].as_str()).collect();
    assert_eq!(names, SCENARIOS.to_vec());
    let get = |name: &str| scenarios.iter().find(|s| s["name"] == name).expect(name);
    for s in scenarios {
        assert!(s.get("error").is_none(), "{s}");
        assert!(s["load_average_before"].as_str().is_some(), "{s}");
    }

    let register = get("register");
    assert_eq!(register["acknowledged"], 300);
    assert_eq!(register["errors"], 0);
    assert_eq!(register["visible_on_every_node"], true);
    assert!(register["throughput_per_sec"].as_f64().is_some_and(|t| t > 0.0));
    latency_ok(&register["latency"], 300);

    let query = get("query");
    for phase in ["grpc", "http"] {
        let q = &query[phase];
        let n = q["queries"].as_u64().expect("queries");
        assert!(n > 0, "{phase}: {q}");
        assert_eq!(q["errors"], 0, "{phase}: {q}");
        latency_ok(&q["latency"], n);
    }

    let convergence = get("convergence");
    assert_eq!(convergence["converged"], 12);
    latency_ok(&convergence["visible_on_all"], 12);

    let push = get("push");
    assert_eq!(push["pushes_expected"], 36);
    assert_eq!(push["pushes_received"], 36);
    latency_ok(&push["latency"], 36);

    let raft = get("raft");
    assert_eq!(raft["acknowledged"], 60);
    assert_eq!(raft["visible_on_every_node"], true);
    latency_ok(&raft["latency"], 60);

    let memory = get("memory");
    assert_eq!(memory["load"]["acknowledged"], 600);
    assert_eq!(memory["load"]["visible_on_every_node"], true);
    let nodes = memory["nodes"].as_array().expect("nodes");
    assert_eq!(nodes.len(), 3);
    for n in nodes {
        assert!(n["rss_mib"].as_f64().is_some_and(|r| r > 0.0), "{n}");
        assert!(n["hwm_mib"].as_f64() >= n["rss_mib"].as_f64(), "{n}");
    }

    let bootstrap = get("bootstrap");
    assert_eq!(bootstrap["complete"], true);
    assert_eq!(bootstrap["instances_seen"], 600);
    let loaded = bootstrap["snapshot_loaded_secs"].as_f64().expect("snapshot loaded");
    let all = bootstrap["all_instances_secs"].as_f64().expect("all instances");
    assert!(loaded > 0.0 && all > 0.0, "{bootstrap}");
    assert!(bootstrap["snapshot_source"].as_str().is_some_and(|s| s.ends_with(":8848")), "{bootstrap}");
}
