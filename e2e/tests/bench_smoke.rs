//! `roster-bench` side by side at tiny sizes, so the benchmark binary does
//! not rot: every step runs against real Roster nodes, a real r-nacos
//! cluster (unpacked from the project's `shared/peers` into the cache on
//! first use) and, when Debian's `etcd-server` is installed, a real etcd
//! cluster; its JSON must hold sane figures (counts equal what was sent, no
//! errors at these sizes, latencies above zero, a summary with ratios).
//! Performance itself is never asserted here.

use std::process::Command;

use roster_e2e::bench::{etcd, STEPS};
use roster_e2e::binary;
use serde_json::Value;

fn latency_ok(v: &Value, count: u64) {
    assert_eq!(v["count"].as_u64(), Some(count), "latency count in {v}");
    let p50 = v["p50_ms"].as_f64().expect("p50");
    let p99 = v["p99_ms"].as_f64().expect("p99");
    let max = v["max_ms"].as_f64().expect("max");
    assert!(p50 > 0.0 && p50 <= p99 && p99 <= max, "ordered, positive percentiles in {v}");
}

/// A throughput step: everything sent acknowledged, nothing refused.
fn throughput_ok(step: &Value, sent: u64) {
    assert_eq!(step["sent"], sent, "{step}");
    assert_eq!(step["acknowledged"], sent, "{step}");
    assert_eq!(step["errors"], 0, "{step}");
    assert!(step["throughput_per_sec"].as_f64().is_some_and(|t| t > 0.0), "{step}");
    latency_ok(&step["latency"], sent);
}

#[test]
fn side_by_side_run_reports_sane_figures() {
    // The node binary must be next to roster-bench; `binary` builds both if missing.
    binary("roster-node", "roster-node").expect("roster-node");
    let bench = binary("roster-e2e", "roster-bench").expect("roster-bench");
    let dir = tempfile::tempdir().expect("tempdir");
    let json_path = dir.path().join("bench.json");
    let with_etcd = etcd::binary().is_some();
    if !with_etcd {
        eprintln!("etcd is not installed (Debian etcd-server): its persistent writes are skipped in this run");
    }
    let output = Command::new(bench)
        // Run by `cargo test`, the bench would see `CARGO` and build itself
        // again; both binaries are already there.
        .env_remove("CARGO")
        .args(["--repetitions", "1", "--json"])
        .arg(&json_path)
        .args(["--operations", "120", "--workers", "6", "--connections", "2", "--services", "20", "--query-hosts", "3"])
        .args(["--samples", "6", "--sample-concurrency", "2", "--subscribers", "2"])
        .args(["--instances", "600", "--load-connections", "12", "--batch", "25", "--settle", "200ms"])
        .output()
        .expect("run roster-bench");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "roster-bench failed:\n{stderr}");
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&json_path).expect("json written")).expect("json");
    assert!(doc["machine"]["cpus"].as_u64().is_some_and(|n| n > 0));
    assert!(doc["date"].as_str().is_some_and(|d| d.ends_with('Z')));
    let runs = doc["runs"].as_array().expect("runs");
    let systems: Vec<&str> = runs.iter().filter_map(|r| r["system"].as_str()).collect();
    assert_eq!(systems, ["roster", "rnacos", "etcd"]);

    for run in &runs[..2] {
        let steps = run["steps"].as_array().expect("steps");
        let mut names: Vec<&str> = steps.iter().filter_map(|s| s["name"].as_str()).collect();
        names.sort_by_key(|n| STEPS.iter().position(|s| s == n));
        assert_eq!(names, STEPS.to_vec(), "{}", run["system"]);
        let get = |name: &str| steps.iter().find(|s| s["name"] == name).expect(name);
        for s in steps {
            assert!(s.get("error").is_none(), "{} {s}", run["system"]);
        }
        for step in ["grpc-register", "grpc-query", "http-query", "http-register", "persistent"] {
            throughput_ok(get(step), 120);
        }
        for step in ["grpc-register", "http-register", "persistent"] {
            assert_eq!(get(step)["visible_on_every_node"], true, "{step}: {}", get(step));
        }
        let convergence = get("convergence");
        assert_eq!(convergence["converged"], 6, "{convergence}");
        latency_ok(&convergence["visible_on_all"], 6);
        let push = get("push");
        assert_eq!(push["pushes_received"], 12, "{push}");
        latency_ok(&push["latency"], 12);
        let memory = get("memory");
        assert_eq!(memory["load"]["acknowledged"], 600, "{memory}");
        assert_eq!(memory["load"]["visible_on_every_node"], true, "{memory}");
        let nodes = memory["nodes"].as_array().expect("nodes");
        assert_eq!(nodes.len(), 3);
        for n in nodes {
            assert!(n["rss_mib"].as_f64().is_some_and(|r| r > 0.0), "{n}");
            assert!(n["hwm_mib"].as_f64() >= n["rss_mib"].as_f64(), "{n}");
        }
        let bootstrap = get("bootstrap");
        assert_eq!(bootstrap["complete"], true, "{bootstrap}");
        assert_eq!(bootstrap["instances_seen"], 600, "{bootstrap}");
        assert!(bootstrap["all_instances_secs"].as_f64().is_some_and(|s| s > 0.0), "{bootstrap}");
    }
    let etcd_steps = runs[2]["steps"].as_array().expect("etcd steps");
    assert_eq!(etcd_steps.len(), 1);
    if with_etcd {
        throughput_ok(&etcd_steps[0], 120);
        assert_eq!(etcd_steps[0]["visible_on_every_node"], true, "{}", etcd_steps[0]);
    } else {
        assert!(etcd_steps[0]["skipped"].is_string());
    }

    // The summary compares the medians: Roster against r-nacos everywhere,
    // against etcd on persistent writes.
    let summary = doc["summary"].as_array().expect("summary");
    let row = |step: &str, figure: &str| {
        summary.iter().find(|r| r["step"] == step && r["figure"] == figure).unwrap_or_else(|| panic!("{step} {figure}"))
    };
    for step in ["grpc-register", "grpc-query", "http-register", "http-query", "persistent"] {
        assert!(row(step, "throughput /s")["roster_vs_rnacos"].as_f64().is_some_and(|r| r > 0.0), "{step}");
    }
    assert!(row("memory", "settled B/instance (max member)")["values"]["rnacos"]["median"].is_number());
    assert_eq!(row("persistent", "throughput /s")["roster_vs_etcd"].is_number(), with_etcd);
    let table = String::from_utf8_lossy(&output.stdout);
    assert!(table.contains("ROSTER/RNACOS") && table.contains("grpc-register"), "{table}");
}
