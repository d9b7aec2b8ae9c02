//! Distro and membership in one process, on paused time ([`crate::harness`]):
//! partitions, lost and delayed messages, and every timer of the two
//! protocols, checked at the virtual instants they fire.

use std::time::Duration;

use roster_node::cluster::MemberState;
use roster_node::distro::metrics::DistroEvent;

use crate::harness::{settings, Cluster, Kind, REPORT_INTERVAL};

const A: &str = "10.0.0.1:8848";
const B: &str = "10.0.0.2:8848";
const C: &str = "10.0.0.3:8848";

/// Starts `names`, lets them load their snapshots and see each other UP.
async fn started(names: &[&str]) -> Cluster {
    let cluster = Cluster::start(names, settings());
    cluster.run_for(REPORT_INTERVAL * 2).await;
    for node in &cluster.nodes {
        assert!(node.distro.is_initialized(), "{} loaded", node.name);
        for other in names {
            assert_eq!(node.sees(other), Some(MemberState::Up), "{} sees {other}", node.name);
        }
    }
    cluster
}

#[tokio::test(start_paused = true)]
async fn a_partition_keeps_both_sides_writing_and_heals_to_the_same_data() {
    let cluster = started(&[A, B, C]).await;
    cluster.node(A).register("conn-a1", "orders", "192.168.0.1");
    cluster.run_for(Duration::from_secs(1)).await;
    assert!(cluster.nodes.iter().all(|n| n.holds("conn-a1")), "synced before the partition");

    cluster.net.partition(&[A], &[B, C]);
    cluster.node(A).register("conn-a2", "orders", "192.168.0.2");
    cluster.node(B).register("conn-b1", "orders", "192.168.0.3");
    // Three report rounds: each side sees the other DOWN; writes go on.
    cluster.run_for(REPORT_INTERVAL * 4).await;
    assert_eq!(cluster.node(A).sees(B), Some(MemberState::Down));
    assert_eq!(cluster.node(B).sees(A), Some(MemberState::Down));
    assert_eq!(cluster.node(C).sees(B), Some(MemberState::Up), "C and B still reach each other");
    assert!(cluster.node(A).holds("conn-a2") && !cluster.node(B).holds("conn-a2"));
    assert!(cluster.node(C).holds("conn-b1") && !cluster.node(A).holds("conn-b1"));
    assert!(cluster.node(A).metrics.count(DistroEvent::SyncFailed) >= 1, "A keeps retrying B and C");

    cluster.net.heal();
    cluster.run_for(settings().verify_interval + REPORT_INTERVAL).await;
    for node in &cluster.nodes {
        for client in ["conn-a1", "conn-a2", "conn-b1"] {
            assert!(node.holds(client), "{} holds {client} after the heal", node.name);
        }
        for other in [A, B, C] {
            assert_eq!(node.sees(other), Some(MemberState::Up), "{} sees {other} after the heal", node.name);
        }
    }
    cluster.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_sync_lost_after_it_was_accepted_is_repaired_by_the_next_verify() {
    let cluster = started(&[A, B]).await;
    cluster.net.swallow(A, B, Kind::Sync, 1);
    cluster.node(A).register("conn-1", "orders", "192.168.0.1");
    cluster.run_for(settings().sync_delay * 2).await;
    assert!(!cluster.node(B).holds("conn-1"), "the only sync was lost");
    assert_eq!(cluster.node(A).metrics.count(DistroEvent::SyncFailed), 0, "A believes it arrived");

    // The next verify round finds the gap and re-syncs the client.
    cluster.run_for(settings().verify_interval).await;
    assert!(cluster.node(B).holds("conn-1"), "verify repaired the lost sync");
    assert_eq!(cluster.node(A).metrics.count(DistroEvent::VerifyMissing), 1);
    assert_eq!(cluster.net.sent(A, B, Kind::Sync).iter().filter(|s| s.delivered).count(), 1);
    cluster.stop().await;
}

#[tokio::test(start_paused = true)]
async fn changes_within_the_merge_window_travel_in_one_sync() {
    let cluster = started(&[A, B]).await;
    let before = cluster.net.sent(A, B, Kind::Sync).len();
    let window = settings().sync_delay;
    cluster.node(A).register("conn-1", "orders", "192.168.0.1");
    cluster.run_for(window / 4).await;
    cluster.node(A).register("conn-1", "orders", "192.168.0.2");
    cluster.node(A).register("conn-2", "orders", "192.168.0.3");
    cluster.run_for(window / 4).await;
    assert_eq!(cluster.net.sent(A, B, Kind::Sync).len(), before, "nothing leaves within the window");
    cluster.run_for(window).await;
    let syncs = cluster.net.sent(A, B, Kind::Sync);
    assert_eq!(syncs.len(), before + 1, "three changes, one message");
    assert!(cluster.node(B).holds("conn-1") && cluster.node(B).holds("conn-2"));
    // A change after the window is a message of its own.
    cluster.node(A).register("conn-3", "orders", "192.168.0.4");
    cluster.run_for(window * 2).await;
    assert_eq!(cluster.net.sent(A, B, Kind::Sync).len(), before + 2);
    cluster.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_failed_sync_is_retried_after_the_retry_delay_until_it_arrives() {
    let cluster = started(&[A, B]).await;
    let s = settings();
    cluster.net.cut_one_way(A, B);
    cluster.node(A).register("conn-1", "orders", "192.168.0.1");
    cluster.run_for(s.sync_delay + s.sync_retry_delay * 3 + s.sync_retry_delay / 2).await;
    let attempts: Vec<_> = cluster.net.sent(A, B, Kind::Sync).into_iter().filter(|m| !m.delivered).collect();
    assert_eq!(attempts.len(), 4, "the first send and three retries");
    for pair in attempts.windows(2) {
        assert_eq!(pair[1].at - pair[0].at, s.sync_retry_delay, "retries are spaced by the retry delay");
    }
    assert!(!cluster.node(B).holds("conn-1"));
    cluster.net.heal();
    cluster.run_for(s.sync_retry_delay).await;
    assert!(cluster.node(B).holds("conn-1"), "the retry after the heal arrives");
    cluster.stop().await;
}

#[tokio::test(start_paused = true)]
async fn one_failed_report_makes_a_member_suspicious_three_make_it_down_one_answer_up() {
    let cluster = started(&[A, B]).await;
    let rounds = |n: u32| cluster.run_for(REPORT_INTERVAL * n);
    cluster.net.cut_one_way(A, B);
    rounds(1).await;
    assert_eq!(cluster.node(A).sees(B), Some(MemberState::Suspicious));
    rounds(1).await;
    assert_eq!(cluster.node(A).sees(B), Some(MemberState::Suspicious), "two failures");
    rounds(1).await;
    assert_eq!(cluster.node(A).sees(B), Some(MemberState::Down), "three failures");
    assert_eq!(cluster.node(B).sees(A), Some(MemberState::Up), "only A's reports fail");
    cluster.net.heal();
    rounds(1).await;
    assert_eq!(cluster.node(A).sees(B), Some(MemberState::Up), "one answered report");
    cluster.stop().await;
}

#[tokio::test(start_paused = true)]
async fn an_unverified_copy_expires_after_the_copy_expiry_and_not_before() {
    let cluster = started(&[A, B]).await;
    let s = settings();
    cluster.node(A).register("conn-1", "orders", "192.168.0.1");
    cluster.run_for(s.sync_delay * 2).await;
    assert!(cluster.node(B).holds("conn-1"));
    // A's verify rounds stop reaching B (B still reaches A).
    cluster.net.cut_one_way(A, B);
    cluster.run_for(s.copy_expiry - s.verify_interval * 2).await;
    assert!(cluster.node(B).holds("conn-1"), "within the expiry the copy stays");
    cluster.run_for(s.verify_interval * 3).await;
    assert!(!cluster.node(B).holds("conn-1"), "unconfirmed for the expiry: gone");
    assert!(cluster.node(B).metrics.count(DistroEvent::CopiesExpired) >= 1);
    assert!(cluster.node(A).holds("conn-1"), "the owner keeps its client");
    cluster.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_slow_link_past_the_timeout_counts_as_a_failure_and_is_retried() {
    let cluster = started(&[A, B]).await;
    let s = settings();
    cluster.net.delay(A, B, s.sync_timeout * 2);
    cluster.node(A).register("conn-1", "orders", "192.168.0.1");
    // The send times out at the sync timeout; the retry waits the retry delay.
    cluster.run_for(s.sync_delay + s.sync_timeout + s.sync_retry_delay / 2).await;
    assert_eq!(cluster.node(A).metrics.count(DistroEvent::SyncFailed), 1, "timed out once");
    assert!(!cluster.node(B).holds("conn-1"));
    cluster.net.delay(A, B, Duration::ZERO);
    cluster.run_for(s.sync_retry_delay * 2).await;
    assert!(cluster.node(B).holds("conn-1"));
    cluster.stop().await;
}
