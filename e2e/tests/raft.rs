//! Raft (DESIGN §6) with real `roster-node` processes on distinct loopback
//! addresses, members listed in a `cluster.conf`:
//!
//! - a persistent write acknowledged by any node is readable on every node;
//! - `kill -9` of the leader: a new leader within the election bound, writes
//!   go on, the old leader rejoins and catches up;
//! - every node killed and restarted: every acknowledged write is there;
//! - a member down while the log is compacted catches up by snapshot install;
//! - 3 → 5 → 3 members by editing the list, with writes running throughout;
//! - random kills and restarts under concurrent writers (`ROSTER_CHAOS=1`
//!   for a longer run): every acknowledged write on every node, and nothing
//!   that nobody wrote.
//!
//! A write is a persistent instance of one service whose port is the write's
//! unique number and whose metadata carries the value written.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use roster_e2e::cluster::{instance_list, node_args, write_member_file, Lookup};
use roster_e2e::{eventually, loopback_ips, NodeProcess};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(30);
/// Raft timing of the test nodes.
const ELECTION_MIN: &str = "300ms";
const ELECTION_MAX_MS: u64 = 600;
const HEARTBEAT: &str = "100ms";
/// A lost leader must be replaced within this: detection (at most the
/// election timeout) plus a few election rounds on a loaded 2-core machine.
const ELECTION_BOUND: Duration = Duration::from_millis(ELECTION_MAX_MS * 5);
const SERVICE: &str = "acked";

/// What writer tasks did: port → value of every acknowledged write, and of
/// every attempted one.
#[derive(Default)]
struct Acked {
    acked: Mutex<BTreeMap<u16, String>>,
    attempted: Mutex<BTreeMap<u16, String>>,
}

fn http() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(10)).build().expect("client")
}

/// A cluster of node processes sharing one `cluster.conf`.
struct Cluster {
    dir: tempfile::TempDir,
    conf: PathBuf,
    ips: Vec<String>,
    nodes: Vec<Option<NodeProcess>>,
    extra: Vec<String>,
}

impl Cluster {
    /// `capacity` addresses, the first `listed` of them in the list, none started.
    fn new(capacity: u8, listed: usize, extra: &[&str]) -> Cluster {
        let dir = tempfile::tempdir().expect("tempdir");
        let conf = dir.path().join("cluster.conf");
        let ips = loopback_ips(capacity);
        let nodes = ips.iter().map(|_| None).collect();
        let c = Cluster { dir, conf, ips, nodes, extra: extra.iter().map(|s| s.to_string()).collect() };
        c.write_conf(&(0..listed).collect::<Vec<_>>());
        c
    }

    fn member(&self, i: usize) -> String {
        format!("{}:8848", self.ips[i])
    }

    fn base(&self, i: usize) -> String {
        format!("http://{}:8848", self.ips[i])
    }

    /// Rewrites the list atomically.
    fn write_conf(&self, members: &[usize]) {
        let list: Vec<String> = members.iter().map(|i| self.member(*i)).collect();
        write_member_file(&self.conf, &list);
    }

    fn start(&mut self, i: usize) {
        let mut args = node_args(&self.ips[i], Lookup::File(&self.conf));
        let data = self.dir.path().join(format!("data-{i}")).to_string_lossy().into_owned();
        args.extend(["--data-dir".to_string(), data]);
        let raft = [
            ("--raft-election-timeout-min", ELECTION_MIN),
            ("--raft-election-timeout-max", "600ms"),
            ("--raft-heartbeat-interval", HEARTBEAT),
            ("--raft-write-timeout", "5s"),
        ];
        args.extend(raft.iter().flat_map(|(flag, value)| [flag.to_string(), value.to_string()]));
        // No health checks unless a test asks for them.
        if !self.extra.iter().any(|a| a == "--health-check-interval") {
            args.extend(["--health-check-interval".to_string(), "0".to_string()]);
        }
        args.extend(self.extra.iter().cloned());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.nodes[i] = Some(NodeProcess::start(&args, &[]).expect("node starts"));
    }

    fn kill(&mut self, i: usize) {
        if let Some(mut node) = self.nodes[i].take() {
            node.kill();
        }
    }

    fn running(&self) -> Vec<usize> {
        (0..self.nodes.len()).filter(|i| self.nodes[*i].is_some()).collect()
    }
}

async fn status(base: &str) -> Option<Value> {
    http().get(format!("{base}/roster/v1/status")).send().await.ok()?.json().await.ok()
}

/// Registers write `port` with `value` through the node at `base`; true when acknowledged.
async fn write(base: &str, port: u16, value: &str) -> bool {
    let metadata = format!("v={value}");
    let port = port.to_string();
    let params = [
        ("serviceName", SERVICE),
        ("ip", "127.0.0.1"),
        ("port", port.as_str()),
        ("ephemeral", "false"),
        ("metadata", metadata.as_str()),
    ];
    match http().post(format!("{base}/nacos/v1/ns/instance")).form(&params).send().await {
        Ok(r) => r.status() == 200 && r.text().await.is_ok_and(|t| t == "ok"),
        Err(_) => false,
    }
}

/// The writes a node holds: port → value.
async fn holdings(base: &str) -> Option<BTreeMap<u16, String>> {
    let list = instance_list(base, SERVICE).await?;
    list["hosts"]
        .as_array()?
        .iter()
        .map(|h| Some((u16::try_from(h["port"].as_u64()?).ok()?, h["metadata"]["v"].as_str()?.to_owned())))
        .collect()
}

/// Waits until every node in `among` names the same leader, that leader
/// says it leads, and it has `voters` voters; returns the leader's index.
/// Three listed nodes started with `extra` flags, and the index of their leader.
async fn three_with_leader(extra: &[&str]) -> (Cluster, usize) {
    let mut c = Cluster::new(3, 3, extra);
    for i in 0..3 {
        c.start(i);
    }
    let leader = wait_leader(&c, &[0, 1, 2], 3, WAIT).await;
    (c, leader)
}

async fn wait_leader(c: &Cluster, among: &[usize], voters: usize, limit: Duration) -> usize {
    eventually(&format!("one leader with {voters} voters among {among:?}"), limit, || async {
        let mut leader = None;
        for i in among {
            let s = status(&c.base(*i)).await?;
            let l = s["raft"]["leader"].as_str()?.to_owned();
            if leader.get_or_insert(l.clone()) != &l || s["ready"] != true {
                return None;
            }
        }
        let leader = leader?;
        let index = among.iter().copied().find(|i| c.member(*i) == leader)?;
        let s = status(&c.base(index)).await?;
        (s["raft"]["role"] == "Leader" && s["raft"]["voters"].as_array()?.len() == voters).then_some(index)
    })
    .await
}

/// Waits until every node in `among` holds at least `expected` (same values).
async fn wait_holding(c: &Cluster, among: &[usize], expected: &BTreeMap<u16, String>, what: &str) {
    for i in among {
        eventually(&format!("{what}: node {i} holds every acknowledged write"), WAIT, || async {
            let held = holdings(&c.base(*i)).await?;
            expected.iter().all(|(p, v)| held.get(p) == Some(v)).then_some(())
        })
        .await;
    }
}

async fn write_all(c: &Cluster, via: usize, ports: std::ops::Range<u16>, acked: &mut BTreeMap<u16, String>) {
    for port in ports {
        let value = format!("n{via}-{port}");
        assert!(write(&c.base(via), port, &value).await, "write {port} through node {via} acknowledged");
        acked.insert(port, value);
    }
}

#[tokio::test]
async fn three_nodes_replicate_fail_over_and_survive_a_full_restart() {
    let (mut c, leader) = three_with_leader(&[]).await;
    // Writes through every node, followers included (forwarded to the leader).
    let mut acked = BTreeMap::new();
    for (n, via) in (0..3).enumerate() {
        let first = 1000 + 10 * n as u16;
        write_all(&c, via, first..first + 5, &mut acked).await;
    }
    wait_holding(&c, &[0, 1, 2], &acked, "three nodes").await;

    // kill -9 the leader: the others elect a new one within the bound.
    let killed_at = Instant::now();
    c.kill(leader);
    let survivors: Vec<usize> = c.running();
    let new_leader = wait_leader(&c, &survivors, 3, WAIT).await;
    let took = killed_at.elapsed();
    assert_ne!(new_leader, leader);
    assert!(took <= ELECTION_BOUND, "a new leader took {took:?} (bound {ELECTION_BOUND:?})");
    eprintln!("a new leader was elected {took:?} after the old one was killed");
    for via in &survivors {
        let first = 1100 + 10 * *via as u16;
        write_all(&c, *via, first..first + 5, &mut acked).await;
    }
    // The old leader rejoins and catches up.
    c.start(leader);
    wait_leader(&c, &[0, 1, 2], 3, WAIT).await;
    wait_holding(&c, &[0, 1, 2], &acked, "after the old leader rejoined").await;

    // Every node killed, then started again: every acknowledged write is there.
    for i in 0..3 {
        c.kill(i);
    }
    for i in 0..3 {
        c.start(i);
    }
    let leader = wait_leader(&c, &[0, 1, 2], 3, WAIT).await;
    wait_holding(&c, &[0, 1, 2], &acked, "after a full restart").await;
    // And the cluster still takes writes.
    write_all(&c, leader, 1200..1203, &mut acked).await;
    wait_holding(&c, &[0, 1, 2], &acked, "after a full restart, new writes").await;
}

#[tokio::test]
async fn a_member_behind_the_compacted_log_catches_up_by_snapshot() {
    let (mut c, leader) = three_with_leader(&["--raft-snapshot-logs", "10", "--raft-logs-to-keep", "0"]).await;
    let mut acked = BTreeMap::new();
    write_all(&c, leader, 2000..2003, &mut acked).await;
    wait_holding(&c, &[0, 1, 2], &acked, "before").await;
    let lagging = (leader + 1) % 3;
    let last = status(&c.base(lagging)).await.expect("status")["raft"]["lastLogIndex"].as_u64().expect("index");
    c.kill(lagging);
    write_all(&c, leader, 2003..2040, &mut acked).await;
    // The leader compacted past everything the lagging member has.
    eventually("the leader purged its log past the lagging member", WAIT, || async {
        let s = status(&c.base(leader)).await?;
        (s["raft"]["purgedIndex"].as_u64()? > last).then_some(())
    })
    .await;
    c.start(lagging);
    wait_holding(&c, &[lagging], &acked, "the lagging member").await;
    let s = status(&c.base(lagging)).await.expect("status");
    assert!(s["raft"]["snapshotIndex"].as_u64().expect("index") > last, "installed a snapshot: {s}");
}

#[tokio::test]
async fn membership_follows_the_list_from_three_to_five_and_back() {
    let mut c = Cluster::new(5, 3, &[]);
    for i in 0..5 {
        c.start(i);
    }
    wait_leader(&c, &[0, 1, 2], 3, WAIT).await;
    // Unlisted members start but join nothing.
    let s = status(&c.base(4)).await.expect("status");
    assert_eq!(s["raft"]["role"], "Learner", "{s}");

    let record = Arc::new(Acked::default());
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let bases: Vec<String> = (0..3).map(|i| c.base(i)).collect();
    let writer = tokio::spawn(writer_task(bases, 3000, record.clone(), stop_rx));

    let ack_count = || record.acked.lock().map(|a| a.len()).unwrap_or(0);
    let at_start = ack_count();
    c.write_conf(&[0, 1, 2, 3, 4]);
    let leader = wait_leader(&c, &[0, 1, 2, 3, 4], 5, WAIT).await;
    let s = status(&c.base(leader)).await.expect("status");
    let mut expected: Vec<String> = (0..5).map(|i| c.member(i)).collect();
    expected.sort();
    assert_eq!(s["raft"]["voters"], serde_json::json!(expected));
    eventually("writes go on at five voters", WAIT, || async { (ack_count() > at_start + 5).then_some(()) }).await;

    let at_five = ack_count();
    c.write_conf(&[0, 1, 2]);
    wait_leader(&c, &[0, 1, 2], 3, WAIT).await;
    eventually("writes go on at three voters", WAIT, || async { (ack_count() > at_five + 5).then_some(()) }).await;
    let _ = stop.send(true);
    let failed = writer.await.expect("writer");
    c.kill(3);
    c.kill(4);
    let acked = record.acked.lock().expect("lock").clone();
    wait_holding(&c, &[0, 1, 2], &acked, "after 3 -> 5 -> 3").await;
    // Quorum was never lost: writes hardly failed (a failure is a timeout
    // while a leader changed, which a membership change must not cause).
    assert!(failed <= 2, "{failed} writes failed during membership changes ({} acknowledged)", acked.len());
}

/// Writes unique ports round-robin through `bases` until stopped; returns
/// how many writes were not acknowledged.
async fn writer_task(
    bases: Vec<String>,
    first: u16,
    record: Arc<Acked>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> usize {
    let mut failed = 0;
    for (n, port) in (first..first + 10_000).enumerate() {
        if *stop.borrow() {
            break;
        }
        let value = format!("w{first}-{port}");
        if let Ok(mut a) = record.attempted.lock() {
            a.insert(port, value.clone());
        }
        let base = &bases[n % bases.len()];
        let ok = tokio::select! {
            ok = write(base, port, &value) => ok,
            _ = stop.changed() => break,
        };
        if ok {
            if let Ok(mut a) = record.acked.lock() {
                a.insert(port, value);
            }
        } else {
            failed += 1;
        }
    }
    failed
}

#[tokio::test]
async fn random_kills_and_restarts_lose_no_acknowledged_write() {
    let rounds = if std::env::var_os("ROSTER_CHAOS").is_some() { 25 } else { 3 };
    let mut c = Cluster::new(3, 3, &["--raft-snapshot-logs", "50", "--raft-logs-to-keep", "20"]);
    for i in 0..3 {
        c.start(i);
    }
    wait_leader(&c, &[0, 1, 2], 3, WAIT).await;
    let record = Arc::new(Acked::default());
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let bases: Vec<String> = (0..3).map(|i| c.base(i)).collect();
    let writers: Vec<_> = [4000u16, 20000]
        .into_iter()
        .map(|first| {
            let mut order = bases.clone();
            order.rotate_left(usize::from(first % 3));
            tokio::spawn(writer_task(order, first, record.clone(), stop_rx.clone()))
        })
        .collect();
    let mut rng = fastrand_lite(std::process::id());
    for round in 0..rounds {
        let victim = (rng() % 3) as usize;
        c.kill(victim);
        // The outage lasts a random 0.2..1.5 s of writes (the fault schedule,
        // not a synchronisation).
        tokio::time::sleep(Duration::from_millis(200 + rng() % 1300)).await;
        c.start(victim);
        // Never two down at once: wait for the victim to be back in the group.
        wait_leader(&c, &[0, 1, 2], 3, WAIT).await;
        eprintln!("chaos round {round}: killed and restarted node {victim}");
    }
    let _ = stop.send(true);
    for w in writers {
        w.await.expect("writer");
    }
    let acked = record.acked.lock().expect("lock").clone();
    let attempted = record.attempted.lock().expect("lock").clone();
    assert!(acked.len() > 10, "writes went through: {}", acked.len());
    eprintln!("{rounds} chaos rounds: {} writes acknowledged of {} attempted", acked.len(), attempted.len());
    wait_holding(&c, &[0, 1, 2], &acked, "after chaos").await;
    // Converged: every node holds the same writes, each one somebody wrote.
    let held: Vec<BTreeMap<u16, String>> = eventually("every node holds the same writes", WAIT, || async {
        let mut all = Vec::new();
        for i in 0..3 {
            all.push(holdings(&c.base(i)).await?);
        }
        all.windows(2).all(|w| w[0] == w[1]).then_some(all)
    })
    .await;
    for (port, value) in &held[0] {
        assert_eq!(attempted.get(port), Some(value), "write {port}={value} was never attempted");
    }
    let missing: BTreeSet<&u16> = acked.keys().filter(|p| !held[0].contains_key(p)).collect();
    assert!(missing.is_empty(), "acknowledged writes lost: {missing:?}");
}

/// A small deterministic-per-run generator (xorshift), seeded by the pid.
fn fastrand_lite(seed: u32) -> impl FnMut() -> u64 {
    let mut x = u64::from(seed) | 1;
    move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    }
}

#[tokio::test]
async fn a_wiped_member_rejoins_under_a_new_id() {
    let (mut c, leader) = three_with_leader(&[]).await;
    let mut acked = BTreeMap::new();
    write_all(&c, leader, 5000..5005, &mut acked).await;
    let wiped = (leader + 1) % 3;
    let old_id = status(&c.base(wiped)).await.expect("status")["raft"]["id"].clone();
    c.kill(wiped);
    std::fs::remove_dir_all(c.dir.path().join(format!("data-{wiped}"))).expect("wipe the data directory");
    c.start(wiped);
    let new_id = status(&c.base(wiped)).await.expect("status")["raft"]["id"].clone();
    assert_ne!(old_id, new_id, "a wiped member gets a new Raft id");
    // The leader replaces the old id by the new one: three voters again, the
    // wiped member among them with everything written.
    eventually("the wiped member is a voter again", WAIT, || async {
        let s = status(&c.base(wiped)).await?;
        (s["raft"]["role"] == "Follower" || s["raft"]["role"] == "Leader").then_some(())
    })
    .await;
    let leader = wait_leader(&c, &[0, 1, 2], 3, WAIT).await;
    write_all(&c, leader, 5005..5008, &mut acked).await;
    wait_holding(&c, &[0, 1, 2], &acked, "after the wipe").await;
}

#[tokio::test]
async fn the_leader_health_checks_and_every_member_sees_the_verdict() {
    let (c, leader) = three_with_leader(&["--health-check-interval", "100ms", "--health-check-timeout", "300ms"]).await;
    // A loopback port nobody listens on (bound, then released).
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let follower = (leader + 1) % 3;
    let port = closed.to_string();
    let params = [("serviceName", "checked"), ("ip", "127.0.0.1"), ("port", port.as_str()), ("ephemeral", "false")];
    let r = http().post(format!("{}/nacos/v1/ns/instance", c.base(follower))).form(&params).send().await;
    assert_eq!(r.expect("register").status(), 200);
    for i in 0..3 {
        eventually(&format!("node {i} sees the instance unhealthy"), WAIT, || async {
            let list = instance_list(&c.base(i), "checked").await?;
            (list["hosts"][0]["healthy"] == false).then_some(())
        })
        .await;
    }
}
