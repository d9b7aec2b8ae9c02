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
/// Long enough for a message on an undelayed link (paused time: every
/// task runs what falls due before the clock moves on).
const SETTLE: Duration = Duration::from_millis(10);

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
    cluster.run_for(SETTLE).await;
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
async fn an_idle_link_sends_at_once_and_changes_during_a_send_travel_together_next() {
    let cluster = started(&[A, B]).await;
    let before = cluster.net.sent(A, B, Kind::Sync).len();
    // Every message from A to B takes 50 ms.
    let rtt = Duration::from_millis(50);
    cluster.net.delay(A, B, rtt);
    let t0 = tokio::time::Instant::now();
    cluster.node(A).register("conn-1", "orders", "192.168.0.1");
    cluster.run_for(SETTLE).await;
    let first = cluster.net.sent(A, B, Kind::Sync);
    assert_eq!(first.len(), before + 1, "the idle link sent at once");
    assert_eq!(first[before].at, t0, "without waiting for a window");
    // While that send is in flight, three more changes arrive.
    cluster.node(A).register("conn-1", "orders", "192.168.0.2");
    cluster.node(A).register("conn-2", "orders", "192.168.0.3");
    cluster.node(A).register("conn-3", "orders", "192.168.0.4");
    cluster.run_for(rtt / 2).await;
    assert_eq!(cluster.net.sent(A, B, Kind::Sync).len(), before + 1, "one send in flight at a time");
    cluster.run_for(rtt * 2).await;
    let syncs = cluster.net.sent(A, B, Kind::Sync);
    assert_eq!(syncs.len(), before + 2, "what gathered during the send left in one message");
    assert_eq!(syncs[before + 1].at, t0 + rtt, "as soon as the first was answered");
    assert_eq!(syncs[before + 1].clients, 3, "conn-1 once, with conn-2 and conn-3");
    for client in ["conn-1", "conn-2", "conn-3"] {
        assert!(cluster.node(B).holds(client), "B holds {client}");
    }
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
async fn a_member_held_down_that_reports_is_seen_up_within_a_round_trip_not_at_the_next_round() {
    // Found on a real control plane: a member restarted by a roll turned
    // Ready while its peers still held it DOWN until their next round, and
    // the operator read the cluster as degraded for that moment.
    let mut cluster = started(&[A, B]).await;
    cluster.net.partition(&[A], &[B]);
    cluster.run_for(REPORT_INTERVAL * 3).await;
    assert_eq!(cluster.node(A).sees(B), Some(MemberState::Down));
    // Halfway to A's next round, B comes back as a new run and reports;
    // for its first 300 ms A cannot reach it yet (a new pod's name does not
    // resolve at once), so A's first tries fail.
    cluster.run_for(REPORT_INTERVAL / 2).await;
    cluster.net.heal();
    cluster.net.cut_one_way(A, B);
    cluster.restart(B, settings()).await;
    cluster.run_for(Duration::from_millis(300)).await;
    assert_eq!(cluster.node(A).sees(B), Some(MemberState::Down), "A cannot reach B yet");
    cluster.net.heal();
    cluster.run_for(Duration::from_millis(250)).await;
    assert_eq!(cluster.node(A).sees(B), Some(MemberState::Up), "B's report made A try B until it answered");
    cluster.stop().await;
}

#[tokio::test(start_paused = true)]
async fn an_unverified_copy_expires_after_the_copy_expiry_and_not_before() {
    let cluster = started(&[A, B]).await;
    let s = settings();
    cluster.node(A).register("conn-1", "orders", "192.168.0.1");
    cluster.run_for(SETTLE).await;
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

#[tokio::test(start_paused = true)]
async fn two_members_writing_one_ip_port_client_while_loading_keep_both_writes() {
    // Found on a real control plane: while the members load their
    // snapshots, each picks the responsible member from its own view, so
    // two of them take writes for one ip:port client (one address
    // published in two services). A whole-client merge kept one side.
    let cluster = Cluster::start(&[A, B, C], settings());
    cluster.node(A).register_http("orders", "10.9.0.1", 8080);
    cluster.node(B).register_http("billing", "10.9.0.1", 8080);
    cluster.run_for(REPORT_INTERVAL * 2).await;
    for node in &cluster.nodes {
        assert!(node.distro.is_initialized(), "{} loaded", node.name);
        assert_eq!(node.hosts("orders"), ["10.9.0.1:8080"], "A's write on {}", node.name);
        assert_eq!(node.hosts("billing"), ["10.9.0.1:8080"], "B's write on {}", node.name);
    }
    let client = "10.9.0.1:8080#true";
    let version = cluster.node(A).version_of(client);
    assert!(cluster.nodes.iter().all(|n| n.version_of(client) == version), "one revision and digest everywhere");
    // Verify rounds find nothing to repair, and nothing is lost later.
    cluster.run_for(settings().verify_interval * 2).await;
    for node in &cluster.nodes {
        assert_eq!((node.hosts("orders").len(), node.hosts("billing").len()), (1, 1), "{}", node.name);
    }
    cluster.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_lost_delta_at_an_equal_revision_is_found_by_the_digest_and_merged_on_both_sides() {
    let cluster = started(&[A, B]).await;
    let client = "10.9.0.2:8080#true";
    // A's write of the client is lost on its way to B, after B accepted it.
    cluster.net.swallow(A, B, Kind::Sync, 1);
    cluster.node(A).register_http("orders", "10.9.0.2", 8080);
    cluster.run_for(SETTLE).await;
    // B writes the same client in another service; its delta reaches A.
    cluster.node(B).register_http("billing", "10.9.0.2", 8080);
    cluster.run_for(SETTLE).await;
    let (a, b) = (cluster.node(A).version_of(client), cluster.node(B).version_of(client));
    let ((rev_a, digest_a), (rev_b, digest_b)) = (a.expect("held on A"), b.expect("held on B"));
    assert_eq!(rev_a, rev_b, "A took B's revision with B's delta");
    assert_ne!(digest_a, digest_b, "but B lacks A's write: only the digest tells");
    assert!(cluster.node(B).hosts("orders").is_empty());
    // The next verify round merges the two copies on both sides.
    cluster.run_for(settings().verify_interval + SETTLE).await;
    for node in &cluster.nodes {
        assert_eq!(node.hosts("orders"), ["10.9.0.2:8080"], "{}", node.name);
        assert_eq!(node.hosts("billing"), ["10.9.0.2:8080"], "{}", node.name);
    }
    assert_eq!(cluster.node(A).version_of(client), cluster.node(B).version_of(client));
    assert!(
        cluster.node(A).metrics.count(DistroEvent::VerifyMissing)
            + cluster.node(B).metrics.count(DistroEvent::VerifyMissing)
            >= 1
    );
    cluster.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_partition_with_both_sides_writing_one_client_heals_to_both_writes() {
    let cluster = started(&[A, B, C]).await;
    cluster.net.partition(&[A], &[B, C]);
    cluster.run_for(REPORT_INTERVAL * 4).await;
    // Each side takes writes for one ip:port client; both sides also
    // remove what the other side does not know of.
    cluster.node(A).register_http("orders", "10.9.0.3", 8080);
    cluster.node(C).register_http("billing", "10.9.0.3", 8080);
    cluster.node(C).register_http("billing", "10.9.0.4", 8080);
    cluster.run_for(SETTLE).await;
    cluster.node(C).store.deregister_ephemeral(
        "10.9.0.4:8080#true",
        &crate::harness::service_key("billing"),
        &roster_node::naming::Instance::new("10.9.0.4", 8080).key(),
        false,
    );
    cluster.net.heal();
    cluster.run_for(settings().verify_interval * 2 + REPORT_INTERVAL).await;
    for node in &cluster.nodes {
        assert_eq!(node.hosts("orders"), ["10.9.0.3:8080"], "{}", node.name);
        assert_eq!(node.hosts("billing"), ["10.9.0.3:8080"], "{}", node.name);
    }
    let client = "10.9.0.3:8080#true";
    let version = cluster.node(A).version_of(client);
    assert!(cluster.nodes.iter().all(|n| n.version_of(client) == version));
    cluster.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_restarted_member_s_old_connections_vanish_from_its_peers_at_once() {
    let mut cluster = started(&[A, B, C]).await;
    cluster.node(A).register("conn-a", "orders", "192.168.1.1");
    cluster.run_for(SETTLE).await;
    assert!(cluster.nodes.iter().all(|n| n.holds("conn-a")));
    // A restarts: its connections died with its first run.
    cluster.restart(A, settings()).await;
    cluster.node(A).register("conn-a2", "orders", "192.168.1.2");
    cluster.run_for(REPORT_INTERVAL * 2).await;
    assert!(REPORT_INTERVAL * 2 < settings().copy_expiry / 10, "long before the copies would expire");
    for node in &cluster.nodes {
        assert!(!node.holds("conn-a"), "{} dropped the old run's connection", node.name);
        assert_eq!(node.hosts("orders"), ["192.168.1.2:80"], "{}: the new run's connection stays", node.name);
    }
    assert!(cluster.node(B).metrics.count(DistroEvent::RestartedConnections) >= 1);
    assert!(cluster.node(A).distro.is_initialized(), "the new run loaded its snapshot without its old connection");
    cluster.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_member_whose_lookup_produced_no_list_does_not_load_from_nobody() {
    const D: &str = "10.0.0.4:8848";
    let mut cluster = started(&[A, B]).await;
    cluster.node(A).register("conn-a", "orders", "192.168.2.1");
    cluster.add_without_list(D, settings());
    cluster.run_for(settings().load_retry_delay * 4).await;
    let d = cluster.node(D);
    assert!(!d.distro.is_initialized(), "no list is no cluster of one: D waits, not ready");
    assert!(d.hosts("orders").is_empty());
    // The lookup produces the list: D loads from a peer.
    d.membership.apply_member_list(&[A.to_string(), B.to_string(), D.to_string()]);
    cluster.run_for(settings().load_retry_delay + SETTLE).await;
    let d = cluster.node(D);
    assert!(d.distro.is_initialized());
    assert_eq!(d.hosts("orders"), ["192.168.2.1:80"]);
    let source = d.distro.status(d.store.counts()).snapshot_source;
    assert!(source.as_deref() == Some(A) || source.as_deref() == Some(B), "{source:?}");
    // A list that names only this member is a cluster of one: loaded at once.
    const E: &str = "10.0.0.5:8848";
    cluster.add_without_list(E, settings());
    cluster.node(E).membership.apply_member_list(&[E.to_string()]);
    cluster.run_for(SETTLE).await;
    let e = cluster.node(E);
    assert!(e.distro.is_initialized());
    assert_eq!(e.distro.status(e.store.counts()).snapshot_source, None);
    cluster.stop().await;
}
