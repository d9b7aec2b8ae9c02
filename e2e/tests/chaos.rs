//! The chaos suite (see `roster_e2e::chaos`): real node processes killed,
//! restarted, partitioned and healed at random under gRPC, HTTP and
//! persistent clients, then checked within a bound.
//!
//! - `chaos_run_loses_nothing`: the bounded CI run; `ROSTER_CHAOS_SECS=n`
//!   (or `ROSTER_CHAOS=1`, ten minutes) runs longer, `ROSTER_CHAOS_SEED=s`
//!   replays a seed.
//! - `an_armed_sync_fault_is_reported_with_the_seed_and_the_lost_instance`:
//!   one node drops every Distro sync it sends while verify is effectively
//!   off; the checker must fail and name the seed and what was lost.
//! - `an_armed_raft_fault_is_reported_with_the_seed_and_the_lost_writes`:
//!   one node's Raft state machine skips every write it applies; the checker
//!   must fail and name the seed and the acknowledged writes that node lost.

use std::time::Duration;

use roster_e2e::chaos::{run, seed_from_env, ArmedFault, ChaosConfig, ChaosReport, Discrepancy};

/// Runs `config`, which arms a fault, and returns the report the checker
/// must fail with, and its text, once that text names the seed and how to
/// replay it.
async fn caught(config: ChaosConfig, what: &str) -> (ChaosReport, String) {
    let seed = config.seed;
    let report = run(config).await.expect_err(what);
    let text = report.to_string();
    eprintln!("{text}");
    assert!(text.contains(&format!("seed {seed}")), "the report names the seed: {text}");
    assert!(text.contains(&format!("ROSTER_CHAOS_SEED={seed}")), "the report says how to replay: {text}");
    (report, text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn chaos_run_loses_nothing() {
    let config = ChaosConfig::from_env(50);
    if let Err(report) = run(config).await {
        panic!("{report}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_armed_sync_fault_is_reported_with_the_seed_and_the_lost_instance() {
    let seed = seed_from_env();
    let config = ChaosConfig {
        seed,
        chaos_for: Duration::from_secs(6),
        sdk_clients: 3,
        http_instances: 4,
        // Only the armed fault: whatever is lost, it lost.
        inject_faults: false,
        armed: Some(ArmedFault::DropEverySyncFrom(0)),
        bound: Duration::from_secs(8),
        // Verify effectively off, and copies that are never confirmed kept:
        // nothing repairs a dropped sync.
        node_args: ["--distro-verify-interval", "1h", "--distro-copy-expiry", "2h", "--distro-tombstone-ttl", "3h"]
            .map(String::from)
            .to_vec(),
    };
    let (report, text) = caught(config, "the checker must catch syncs dropped for good").await;
    // The first client talks to node 0 only: its pinned instance reached no
    // other node.
    let pinned = "10.10.0.1:6000";
    for node in [1, 2] {
        let lost = report.discrepancies.iter().any(|d| {
            matches!(d, Discrepancy::Missing { node: n, service, instance, .. }
                if *n == node && service == "chaos-pinned" && instance == pinned)
        });
        assert!(lost, "node {node} is reported to lack {pinned}: {text}");
    }
    assert!(text.contains(&format!("node 1: chaos-pinned lacks {pinned}")), "{text}");
    // Node 0 holds it: nothing is reported missing there.
    assert!(
        !report.discrepancies.iter().any(|d| matches!(d, Discrepancy::Missing { node: 0, .. })),
        "node 0 lost nothing: {text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_armed_raft_fault_is_reported_with_the_seed_and_the_lost_writes() {
    let seed = seed_from_env();
    let config = ChaosConfig {
        seed,
        chaos_for: Duration::from_secs(6),
        sdk_clients: 1,
        http_instances: 2,
        // Only the armed fault: whatever is lost, it lost.
        inject_faults: false,
        armed: Some(ArmedFault::DropEveryApplyOn(1)),
        bound: Duration::from_secs(8),
        node_args: Vec::new(),
    };
    let (report, text) = caught(config, "the checker must catch writes a member never applied").await;
    let lost_on = |node: usize| {
        report
            .discrepancies
            .iter()
            .filter(|d| matches!(d, Discrepancy::LostWrite { node: n, found: None, .. } if *n == node))
            .count()
    };
    // Node 1 applied none of them; each acknowledged write still standing is
    // reported lost there, by name, and nowhere else.
    assert!(lost_on(1) > 0, "node 1 is reported to lack acknowledged writes: {text}");
    assert!(text.contains("node 1: acknowledged persistent write 10.30.0.1:"), "{text}");
    assert_eq!(lost_on(0) + lost_on(2), 0, "nodes 0 and 2 applied every write: {text}");
}
