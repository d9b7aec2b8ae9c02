//! The chaos suite (issue #6): a seeded workload of real clients against
//! three real node processes while nodes are killed with `kill -9`,
//! restarted, partitioned and healed at random, then a checker that polls,
//! within a bound, until the cluster holds exactly what the clients were
//! told, and otherwise reports every difference with the seed.
//!
//! # What runs
//! - **gRPC clients**: `sdk-client` processes (the official `nacos-sdk`)
//!   driven over stdin/stdout. Each registers a *pinned* instance it never
//!   removes, subscribes to two services, and registers, replaces and
//!   deregisters instances of the churn services. The first generation of
//!   client `k` talks to node `k mod 3` only (after a kill it reconnects to
//!   the same node once it is back); replacements of killed clients talk to
//!   one node or to all three (the SDK then fails over), as the seed says.
//!   With faults on, clients are also killed (a crash) and replaced.
//! - **HTTP clients**: ephemeral instances registered over HTTP on random
//!   nodes and kept alive by light beats every 500 ms (re-registered on
//!   code 20404, as Nacos clients do); some stop beating (they must expire),
//!   some are deregistered.
//! - **Persistent writes**: `ephemeral=false` registrations and
//!   deregistrations over HTTP; which ones were acknowledged (200 `ok`) is
//!   recorded. A write that errored has an unknown outcome.
//! - **Faults** (one at a time, so Raft always keeps its quorum of two):
//!   `kill -9` of a node and a restart on the same data directory,
//!   a partition of one node from the other two through the fault switch and
//!   its healing, or a few dropped Distro syncs (which verify repairs).
//!
//! # What is expected afterwards
//! After the faults stop and the cluster is formed again, within the bound:
//! every instance a live client holds is on every node (healthy); every
//! deregistered, expired or crashed client's instance is gone from every
//! node; every acknowledged persistent write is on every node with its value
//! and every acknowledged deregistration holds; nothing appears that nobody
//! wrote; every node answers the same list; and every live subscriber's last
//! pushed view equals that list. Operations whose outcome is unknown (an
//! error or a timeout) may go either way. See [`Discrepancy`] for each kind
//! of difference.
//!
//! # Replay
//! The seed (from `ROSTER_CHAOS_SEED`, else random) is printed at the start
//! and named in every report. Each task (fault schedule, each client slot,
//! HTTP clients, persistent writer) draws from its own generator derived
//! from the seed, so a replay makes the same decisions in the same order;
//! the timing between tasks is the machine's.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use roster_node::peer::FaultSettings;
use serde_json::Value;

use crate::cluster::{blocking, node_args, set_faults, write_member_file, Lookup};
use crate::{binary, loopback_ips, NodeProcess};

/// Nodes in a chaos cluster: one may be down or cut off at a time.
const NODES: usize = 3;
/// Services the churn of gRPC and HTTP instances goes to.
const CHURN_SERVICES: [&str; 3] = ["chaos-a", "chaos-b", "chaos-c"];
/// Service of the instances gRPC clients hold for their whole life.
const PINNED_SERVICE: &str = "chaos-pinned";
/// Service of the persistent instances.
const PERSISTENT_SERVICE: &str = "chaos-persistent";
/// Port of a client's pinned instance.
const PINNED_PORT: u16 = 6000;
/// IP of every persistent instance (the port tells them apart).
const PERSISTENT_IP: &str = "10.30.0.1";
/// How long the harness waits for one client command or node request.
const OP_TIMEOUT: Duration = Duration::from_secs(10);
/// Bound on a node's start, or a cluster forming again after a fault.
const FORM_BOUND: Duration = Duration::from_secs(40);

/// A fault armed on purpose, to show that the checker catches loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArmedFault {
    /// The node at this index drops every Distro sync it sends, for the
    /// whole run. With verify effectively off (a long
    /// `--distro-verify-interval`) nothing repairs them.
    DropEverySyncFrom(usize),
    /// The node at this index skips every Raft write its state machine
    /// applies, for the whole run: the log advances, its data does not,
    /// and writers are still told they succeeded.
    DropEveryApplyOn(usize),
}

/// One chaos run.
#[derive(Debug, Clone)]
pub struct ChaosConfig {
    /// Seed of every random decision.
    pub seed: u64,
    /// How long the workload (and the faults) run.
    pub chaos_for: Duration,
    /// gRPC client processes alive at a time.
    pub sdk_clients: usize,
    /// HTTP instances registered at the start (more come and go).
    pub http_instances: usize,
    /// Whether to kill, partition and drop syncs (and crash clients).
    pub inject_faults: bool,
    /// A fault armed for the whole run.
    pub armed: Option<ArmedFault>,
    /// How long the checker may wait for the cluster to match.
    pub bound: Duration,
    /// Node flags (`--flag value` pairs) replacing the suite's own.
    pub node_args: Vec<String>,
}

impl ChaosConfig {
    /// The configuration of a run with faults, lasting `default_secs` of
    /// chaos unless `ROSTER_CHAOS_SECS` says otherwise (`ROSTER_CHAOS=1`:
    /// ten minutes), seeded from `ROSTER_CHAOS_SEED` or at random.
    pub fn from_env(default_secs: u64) -> ChaosConfig {
        let secs = match (std::env::var("ROSTER_CHAOS_SECS"), std::env::var_os("ROSTER_CHAOS")) {
            (Ok(s), _) => s.trim().parse().unwrap_or(default_secs),
            (Err(_), Some(_)) => 600,
            (Err(_), None) => default_secs,
        };
        ChaosConfig {
            seed: seed_from_env(),
            chaos_for: Duration::from_secs(secs),
            sdk_clients: 4,
            http_instances: 8,
            inject_faults: true,
            armed: None,
            bound: Duration::from_secs(45),
            node_args: Vec::new(),
        }
    }
}

/// The seed in `ROSTER_CHAOS_SEED`, or a random one.
pub fn seed_from_env() -> u64 {
    std::env::var("ROSTER_CHAOS_SEED").ok().and_then(|s| s.trim().parse().ok()).unwrap_or_else(|| fastrand::u64(..))
}

/// A difference between the final state and what the clients were told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Discrepancy {
    /// The harness itself could not go on (a node did not come back).
    Harness(String),
    /// A node did not answer a read.
    Unreachable {
        /// Node index.
        node: usize,
        /// What was asked.
        what: String,
    },
    /// An instance a live client holds is missing on a node.
    Missing {
        /// Node index.
        node: usize,
        /// Service.
        service: String,
        /// `ip:port`.
        instance: String,
        /// Who holds it.
        owner: String,
    },
    /// An instance a live client holds is unhealthy on a node.
    Unhealthy {
        /// Node index.
        node: usize,
        /// Service.
        service: String,
        /// `ip:port`.
        instance: String,
    },
    /// An instance that must be gone (deregistered, expired, its client
    /// crashed) is still on a node.
    NotGone {
        /// Node index.
        node: usize,
        /// Service.
        service: String,
        /// `ip:port`.
        instance: String,
        /// Why it must be gone.
        why: String,
    },
    /// An instance nobody wrote (or with a value nobody wrote) is on a node.
    Unwritten {
        /// Node index.
        node: usize,
        /// Service.
        service: String,
        /// `ip:port`, with the value for persistent instances.
        instance: String,
    },
    /// An instance is listed twice on a node.
    Duplicate {
        /// Node index.
        node: usize,
        /// Service.
        service: String,
        /// `ip:port`.
        instance: String,
    },
    /// An acknowledged persistent write is missing on a node, or holds
    /// another value.
    LostWrite {
        /// Node index.
        node: usize,
        /// `ip:port`.
        instance: String,
        /// The acknowledged value.
        value: String,
        /// What the node holds instead.
        found: Option<String>,
    },
    /// Nodes answer different lists for a service.
    Diverged {
        /// Service.
        service: String,
        /// Each node's list.
        lists: Vec<Vec<String>>,
    },
    /// A subscriber's last pushed view differs from the final state.
    StaleView {
        /// The client.
        client: String,
        /// Service.
        service: String,
        /// Its last pushed view (`None`: nothing was pushed).
        pushed: Option<Vec<String>>,
        /// The nodes' list.
        actual: Vec<String>,
    },
}

impl fmt::Display for Discrepancy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Discrepancy::Harness(what) => write!(f, "harness: {what}"),
            Discrepancy::Unreachable { node, what } => write!(f, "node {node}: no answer to {what}"),
            Discrepancy::Missing { node, service, instance, owner } => {
                write!(f, "node {node}: {service} lacks {instance}, held by {owner}")
            }
            Discrepancy::Unhealthy { node, service, instance } => {
                write!(f, "node {node}: {service} has {instance} unhealthy, its client is alive")
            }
            Discrepancy::NotGone { node, service, instance, why } => {
                write!(f, "node {node}: {service} still has {instance}, which {why}")
            }
            Discrepancy::Unwritten { node, service, instance } => {
                write!(f, "node {node}: {service} has {instance}, which nobody wrote")
            }
            Discrepancy::Duplicate { node, service, instance } => {
                write!(f, "node {node}: {service} lists {instance} more than once")
            }
            Discrepancy::LostWrite { node, instance, value, found } => {
                write!(f, "node {node}: acknowledged persistent write {instance} v={value} lost (found {found:?})")
            }
            Discrepancy::Diverged { service, lists } => write!(f, "nodes disagree on {service}: {lists:?}"),
            Discrepancy::StaleView { client, service, pushed, actual } => {
                write!(f, "subscriber {client} of {service}: last pushed {pushed:?}, final state {actual:?}")
            }
        }
    }
}

/// What a failed run found.
#[derive(Debug, Clone)]
pub struct ChaosReport {
    /// The run's seed.
    pub seed: u64,
    /// The nodes' member names, by index.
    pub nodes: Vec<String>,
    /// Every difference at the end of the bound.
    pub discrepancies: Vec<Discrepancy>,
    /// The faults injected, in order.
    pub fault_log: Vec<String>,
    /// Which clients each node says publish the instances reported there
    /// (asked through `/nacos/v2/ns/client/...` while the nodes still ran).
    pub publishers: Vec<String>,
    /// The command and SDK-event history of every gRPC client a
    /// discrepancy names.
    pub clients: Vec<(String, Vec<String>)>,
}

impl fmt::Display for ChaosReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "chaos run with seed {} failed (replay with ROSTER_CHAOS_SEED={}): {} discrepancies",
            self.seed,
            self.seed,
            self.discrepancies.len()
        )?;
        for (i, node) in self.nodes.iter().enumerate() {
            writeln!(f, "  node {i} = {node}")?;
        }
        for d in &self.discrepancies {
            writeln!(f, "  - {d}")?;
        }
        if !self.publishers.is_empty() {
            writeln!(f, "publishers of the instances reported:")?;
            for line in &self.publishers {
                writeln!(f, "  {line}")?;
            }
        }
        writeln!(f, "fault log:")?;
        for entry in &self.fault_log {
            writeln!(f, "  {entry}")?;
        }
        for (client, history) in &self.clients {
            writeln!(f, "history of gRPC client {client}:")?;
            for entry in history {
                writeln!(f, "  {entry}")?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for ChaosReport {}

/// What a passing run did.
#[derive(Debug, Clone, Default)]
pub struct ChaosSummary {
    /// Faults injected.
    pub faults: usize,
    /// gRPC client commands acknowledged / failed or timed out.
    pub sdk_ops: (usize, usize),
    /// gRPC clients crashed on purpose.
    pub clients_crashed: usize,
    /// Acknowledged gRPC deregistrations the SDK's own redo may have undone
    /// (allowed to stay, see [`SdkOp`]), and how many of those instances
    /// were still there at the end (put back by the SDK).
    pub sdk_redo_overlaps: (usize, usize),
    /// HTTP instances registered in all.
    pub http_instances: usize,
    /// Persistent writes acknowledged / attempted.
    pub persistent_writes: (usize, usize),
    /// How long the checker took to see everything match.
    pub converged_after: Duration,
}

/// Runs the workload and the faults of `config`, then checks. Prints the
/// seed first.
pub async fn run(config: ChaosConfig) -> Result<ChaosSummary, ChaosReport> {
    eprintln!(
        "chaos: seed {} (replay with ROSTER_CHAOS_SEED={}), {:?} of chaos, bound {:?}",
        config.seed, config.seed, config.chaos_for, config.bound
    );
    let mut nodes = Nodes::new(&config).map_err(|e| harness_report(&config, &[], e))?;
    let world = Arc::new(World::new(&nodes.ips, config.armed));
    let outcome = run_on(&config, &mut nodes, &world).await;
    let fault_log = world.fault_log.lock().map(|l| l.clone()).unwrap_or_default();
    match outcome {
        Ok(summary) => {
            eprintln!("chaos: seed {} passed: {summary:?}", config.seed);
            Ok(summary)
        }
        Err(Failure { discrepancies, publishers }) => {
            let clients = world.histories_named_by(&discrepancies);
            Err(ChaosReport {
                seed: config.seed,
                nodes: nodes.members(),
                discrepancies,
                fault_log,
                publishers,
                clients,
            })
        }
    }
}

/// What [`run_on`] found wrong.
struct Failure {
    discrepancies: Vec<Discrepancy>,
    publishers: Vec<String>,
}

impl From<Vec<Discrepancy>> for Failure {
    fn from(discrepancies: Vec<Discrepancy>) -> Failure {
        Failure { discrepancies, publishers: Vec::new() }
    }
}

fn harness_report(config: &ChaosConfig, nodes: &[String], e: anyhow::Error) -> ChaosReport {
    ChaosReport {
        seed: config.seed,
        nodes: nodes.to_vec(),
        discrepancies: vec![Discrepancy::Harness(format!("{e:#}"))],
        fault_log: Vec::new(),
        publishers: Vec::new(),
        clients: Vec::new(),
    }
}

async fn run_on(config: &ChaosConfig, nodes: &mut Nodes, world: &Arc<World>) -> Result<ChaosSummary, Failure> {
    let harness = |e: anyhow::Error| Failure::from(vec![Discrepancy::Harness(format!("{e:#}"))]);
    for i in 0..NODES {
        nodes.start(i).await.map_err(harness)?;
    }
    world.wait_formed().await.map_err(harness)?;
    world.set_baseline_faults().await.map_err(harness)?;

    let deadline = Instant::now() + config.chaos_for;
    let stop = Arc::new(AtomicBool::new(false));
    let mut sdk_tasks = Vec::new();
    for slot in 0..config.sdk_clients {
        let (world, inject) = (world.clone(), config.inject_faults);
        let rng = fastrand::Rng::with_seed(config.seed ^ (0x5d_0000 + slot as u64));
        sdk_tasks.push(tokio::spawn(async move { sdk_slot(world, slot, rng, deadline, inject).await }));
    }
    let http_task = {
        let (world, stop, count) = (world.clone(), stop.clone(), config.http_instances);
        let rng = fastrand::Rng::with_seed(config.seed ^ 0x4877_7000);
        tokio::spawn(async move { http_clients(world, rng, count, deadline, stop).await })
    };
    let persistent_task = {
        let world = world.clone();
        let rng = fastrand::Rng::with_seed(config.seed ^ 0x9e55_0000);
        tokio::spawn(async move { persistent_writer(world, rng, deadline).await })
    };
    let mut faults = 0;
    let fault_result = if config.inject_faults {
        let mut rng = fastrand::Rng::with_seed(config.seed ^ 0xfa17_0000);
        fault_schedule(world, nodes, &mut rng, deadline, &mut faults).await
    } else {
        tokio::time::sleep_until(tokio::time::Instant::from_std(deadline)).await;
        Ok(())
    };
    // The workload stops; the HTTP clients go on beating until the check is over.
    let mut clients = Vec::new();
    for task in sdk_tasks {
        match task.await {
            Ok(client) => clients.extend(client),
            Err(e) => return Err(harness(anyhow!("a client task failed: {e}"))),
        }
    }
    if let Err(e) = persistent_task.await {
        return Err(harness(anyhow!("the persistent writer failed: {e}")));
    }
    let checked = match fault_result {
        Ok(()) => match world.wait_formed().await {
            Ok(()) => match check(world, config.bound).await {
                Ok(after) => Ok((after, world.put_back_by_redo().await)),
                // Asked before the clients stop, so that "connected" still means something.
                Err(discrepancies) => {
                    let publishers = world.publishers_of(&discrepancies).await;
                    Err(Failure { discrepancies, publishers })
                }
            },
            Err(e) => Err(harness(e)),
        },
        Err(e) => Err(harness(e)),
    };
    stop.store(true, Ordering::SeqCst);
    let _ = http_task.await;
    for mut client in clients {
        client.kill();
    }
    let (converged_after, put_back) = checked?;
    let model = world.model.lock().map_err(|_| harness(anyhow!("model lock poisoned")))?;
    Ok(ChaosSummary {
        faults,
        sdk_ops: (model.sdk_acked, model.sdk_failed),
        clients_crashed: model.crashed,
        sdk_redo_overlaps: (model.redo_overlaps_seen, put_back),
        http_instances: model.http.len(),
        persistent_writes: (
            model.persistent.values().filter(|w| w.register == Outcome::Acked).count(),
            model.persistent.len(),
        ),
        converged_after,
    })
}

// ---------------------------------------------------------------------------
// The cluster

/// Three node processes sharing a member file, each with its own data
/// directory kept across restarts.
struct Nodes {
    dir: tempfile::TempDir,
    conf: PathBuf,
    ips: Vec<String>,
    procs: Vec<Option<NodeProcess>>,
    extra: Vec<String>,
}

impl Nodes {
    fn new(config: &ChaosConfig) -> Result<Nodes> {
        let dir = tempfile::tempdir().context("tempdir")?;
        let conf = dir.path().join("cluster.conf");
        let ips = loopback_ips(NODES as u8);
        let members: Vec<String> = ips.iter().map(|ip| format!("{ip}:8848")).collect();
        write_member_file(&conf, &members);
        Ok(Nodes { dir, conf, ips, procs: (0..NODES).map(|_| None).collect(), extra: config.node_args.clone() })
    }

    fn members(&self) -> Vec<String> {
        self.ips.iter().map(|ip| format!("{ip}:8848")).collect()
    }

    /// Flags of node `i`: short membership, Distro, beat and Raft timers,
    /// the fault switch, no health checks of persistent instances (their
    /// addresses are made up), then the run's own flags.
    fn args(&self, i: usize) -> Vec<String> {
        let mut args = node_args(&self.ips[i], Lookup::File(&self.conf));
        let data = self.dir.path().join(format!("data-{i}")).to_string_lossy().into_owned();
        let timers = [
            ("--data-dir", data.as_str()),
            ("--distro-sync-delay", "50ms"),
            ("--distro-sync-retry-delay", "200ms"),
            ("--distro-sync-timeout", "1s"),
            ("--distro-verify-interval", "500ms"),
            ("--distro-copy-expiry", "3s"),
            ("--distro-load-retry-delay", "300ms"),
            ("--beat-timeout", "3s"),
            ("--beat-delete-timeout", "6s"),
            ("--beat-check-interval", "200ms"),
            ("--push-delay", "20ms"),
            ("--push-timeout", "2s"),
            ("--push-retry-delay", "200ms"),
            ("--raft-election-timeout-min", "300ms"),
            ("--raft-election-timeout-max", "600ms"),
            ("--raft-heartbeat-interval", "100ms"),
            ("--raft-write-timeout", "3s"),
            ("--health-check-interval", "0"),
        ];
        // A flag may be given once: the run's own flags replace the suite's.
        let timers = timers.iter().filter(|(flag, _)| !self.extra.iter().any(|e| e == flag));
        args.extend(timers.flat_map(|(flag, value)| [flag.to_string(), value.to_string()]));
        args.push("--fault-injection".into());
        args.extend(self.extra.iter().cloned());
        args
    }

    async fn start(&mut self, i: usize) -> Result<()> {
        let args = self.args(i);
        let node = tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            NodeProcess::start(&args, &[])
        })
        .await
        .context("starting a node")??;
        self.procs[i] = Some(node);
        Ok(())
    }

    fn kill(&mut self, i: usize) {
        if let Some(mut node) = self.procs[i].take() {
            node.kill();
        }
    }
}

/// The fault schedule: until `deadline`, one fault at a time at random
/// moments, each healed (and the cluster formed again) before the next.
async fn fault_schedule(
    world: &Arc<World>,
    nodes: &mut Nodes,
    rng: &mut fastrand::Rng,
    deadline: Instant,
    count: &mut usize,
) -> Result<()> {
    loop {
        let pause = Duration::from_millis(rng.u64(500..2500));
        if Instant::now() + pause >= deadline {
            return Ok(());
        }
        tokio::time::sleep(pause).await;
        let victim = rng.usize(..NODES);
        *count += 1;
        match rng.u32(..100) {
            0..45 => {
                let outage = Duration::from_millis(rng.u64(300..3000));
                world.log(format!("kill -9 node {victim}, restart after {outage:?}"));
                world.up[victim].store(false, Ordering::SeqCst);
                nodes.kill(victim);
                tokio::time::sleep(outage).await;
                nodes.start(victim).await.with_context(|| format!("restarting node {victim}"))?;
                world.up[victim].store(true, Ordering::SeqCst);
                world.set_baseline_faults().await?;
            }
            45..85 => {
                let span = Duration::from_millis(rng.u64(500..4000));
                world.log(format!("partition node {victim} from the others for {span:?}"));
                let members = nodes.members();
                let others: Vec<&str> = (0..NODES).filter(|i| *i != victim).map(|i| members[i].as_str()).collect();
                let cut =
                    FaultSettings { blocked_members: blocking(&others).blocked_members, ..world.baseline(victim) };
                set_faults(world.http(victim), &cut).await?;
                for i in (0..NODES).filter(|i| *i != victim) {
                    let cut = FaultSettings {
                        blocked_members: blocking(&[&members[victim]]).blocked_members,
                        ..world.baseline(i)
                    };
                    set_faults(world.http(i), &cut).await?;
                }
                tokio::time::sleep(span).await;
                world.log(format!("heal node {victim}'s partition"));
                world.set_baseline_faults().await?;
            }
            _ => {
                let drops = rng.u64(1..5);
                world.log(format!("node {victim} drops its next {drops} syncs"));
                set_faults(world.http(victim), &FaultSettings { drop_syncs: drops, ..world.baseline(victim) }).await?;
                continue;
            }
        }
        world.wait_formed().await?;
    }
}

// ---------------------------------------------------------------------------
// Shared state

/// A client's last pushed view of each service it subscribed to, as
/// `ip:port:healthy` sorted.
type Views = Arc<Mutex<BTreeMap<String, Vec<String>>>>;

/// A gRPC client's commands and outcomes, and what its SDK did on its own
/// (reconnects, redone registrations), each with the run time in seconds.
type History = Arc<Mutex<Vec<String>>>;

/// How many times a client's SDK resent its register of each service on
/// its own (`event redo`), counted before any later line of the client is
/// read.
type Redone = Arc<Mutex<BTreeMap<String, u64>>>;

fn note(history: &History, at: Duration, entry: String) {
    if let Ok(mut h) = history.lock() {
        h.push(format!("{:>7.1}s {entry}", at.as_secs_f64()));
    }
}

/// The outcome of one write as the client saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Acked,
    Unknown,
}

/// What one gRPC client holds in one service as far as it knows:
/// `required` is certainly registered; `allowed` may be (operations whose
/// outcome is unknown).
#[derive(Debug, Clone, Default)]
struct Held {
    required: Option<String>,
    allowed: BTreeSet<String>,
    /// The SDK's own resends of this service's register
    /// ([`Driven::redos`]) when the last register was acknowledged.
    redos_at_register: u64,
}

/// One gRPC client process (one generation of a slot).
#[derive(Debug)]
struct SdkModel {
    name: String,
    alive: bool,
    held: BTreeMap<String, Held>,
    /// Every instance it ever tried, per service.
    tried: BTreeMap<String, BTreeSet<String>>,
    subscriptions: Vec<String>,
    views: Views,
    history: History,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HttpState {
    Beating,
    Stopped,
    Deregistered,
}

#[derive(Debug, Clone)]
struct HttpModel {
    service: String,
    ip: String,
    port: u16,
    state: HttpState,
}

#[derive(Debug, Clone)]
struct PersistentModel {
    value: String,
    register: Outcome,
    deregister: Option<Outcome>,
}

#[derive(Debug, Default)]
struct Model {
    sdk: Vec<SdkModel>,
    http: Vec<HttpModel>,
    persistent: BTreeMap<u16, PersistentModel>,
    sdk_acked: usize,
    sdk_failed: usize,
    crashed: usize,
    /// Deregistrations the SDK's redo may have undone and that still
    /// stand: (client index, service, `ip:port`).
    redo_overlaps: Vec<(usize, String, String)>,
    /// All such deregistrations.
    redo_overlaps_seen: usize,
}

/// What every task shares: node addresses, which nodes run, the model of
/// what clients were told, and the fault log.
struct World {
    ips: Vec<String>,
    up: Vec<AtomicBool>,
    armed: Option<ArmedFault>,
    model: Mutex<Model>,
    fault_log: Mutex<Vec<String>>,
    started: Instant,
    client: reqwest::Client,
}

impl World {
    fn new(ips: &[String], armed: Option<ArmedFault>) -> World {
        World {
            ips: ips.to_vec(),
            up: (0..ips.len()).map(|_| AtomicBool::new(true)).collect(),
            armed,
            model: Mutex::new(Model::default()),
            fault_log: Mutex::new(Vec::new()),
            started: Instant::now(),
            client: reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap_or_default(),
        }
    }

    fn http(&self, i: usize) -> SocketAddr {
        SocketAddr::new(self.ips[i].parse().unwrap_or(std::net::Ipv4Addr::LOCALHOST.into()), 8848)
    }

    fn member(&self, i: usize) -> String {
        format!("{}:8848", self.ips[i])
    }

    fn log(&self, entry: String) {
        let entry = format!("{:>7.1}s {entry}", self.started.elapsed().as_secs_f64());
        eprintln!("chaos: {entry}");
        if let Ok(mut log) = self.fault_log.lock() {
            log.push(entry);
        }
    }

    /// A running node, at random.
    fn pick_up(&self, rng: &mut fastrand::Rng) -> Option<usize> {
        let up: Vec<usize> = (0..self.ips.len()).filter(|i| self.up[*i].load(Ordering::SeqCst)).collect();
        (!up.is_empty()).then(|| up[rng.usize(..up.len())])
    }

    /// The drops armed on node `i` for the whole run.
    fn baseline(&self, i: usize) -> FaultSettings {
        const EVERY: u64 = 1_000_000_000;
        match self.armed {
            Some(ArmedFault::DropEverySyncFrom(n)) if n == i => {
                FaultSettings { drop_syncs: EVERY, ..Default::default() }
            }
            Some(ArmedFault::DropEveryApplyOn(n)) if n == i => {
                FaultSettings { drop_applies: EVERY, ..Default::default() }
            }
            _ => FaultSettings::default(),
        }
    }

    /// Clears the faults on every running node, leaving only the armed one.
    async fn set_baseline_faults(&self) -> Result<()> {
        for i in 0..self.ips.len() {
            if self.up[i].load(Ordering::SeqCst) {
                set_faults(self.http(i), &self.baseline(i)).await?;
            }
        }
        Ok(())
    }

    /// Waits until every node is ready and sees every member `UP`.
    async fn wait_formed(&self) -> Result<()> {
        let deadline = Instant::now() + FORM_BOUND;
        loop {
            let mut formed = true;
            for i in 0..self.ips.len() {
                formed &= self.is_formed(i).await;
            }
            if formed {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!("the cluster did not form again within {FORM_BOUND:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn is_formed(&self, i: usize) -> bool {
        let Some(status) = self.get_json(i, "/roster/v1/status", &[]).await else { return false };
        let Some(members) = status["members"].as_array() else { return false };
        status["ready"] == true && members.len() == self.ips.len() && members.iter().all(|m| m["state"] == "UP")
    }

    async fn get_json(&self, i: usize, path: &str, query: &[(&str, &str)]) -> Option<Value> {
        let url = format!("http://{}{path}", self.http(i));
        self.client.get(url).query(query).send().await.ok()?.json().await.ok()
    }

    /// `(ip:port, healthy, metadata v)` of a service on node `i`, sorted.
    async fn hosts(&self, i: usize, service: &str) -> Option<Vec<(String, bool, Option<String>)>> {
        let list = self.get_json(i, "/nacos/v1/ns/instance/list", &[("serviceName", service)]).await?;
        let mut hosts: Vec<(String, bool, Option<String>)> = list["hosts"]
            .as_array()?
            .iter()
            .map(|h| {
                let address = format!("{}:{}", h["ip"].as_str().unwrap_or(""), h["port"]);
                let value = h["metadata"]["v"].as_str().map(str::to_owned);
                (address, h["healthy"].as_bool().unwrap_or(false), value)
            })
            .collect();
        hosts.sort();
        Some(hosts)
    }

    /// A v1 instance write; `Ok` only for 200 `ok`.
    async fn write(&self, i: usize, method: reqwest::Method, params: &[(&str, &str)]) -> Outcome {
        let url = format!("http://{}/nacos/v1/ns/instance", self.http(i));
        match self.client.request(method, url).form(params).send().await {
            Ok(r) if r.status() == 200 => match r.text().await {
                Ok(body) if body == "ok" => Outcome::Acked,
                _ => Outcome::Unknown,
            },
            _ => Outcome::Unknown,
        }
    }

    /// A light beat; the answer's `code`.
    async fn beat(&self, i: usize, inst: &HttpModel) -> Option<i64> {
        let port = inst.port.to_string();
        let params = [("serviceName", inst.service.as_str()), ("ip", inst.ip.as_str()), ("port", port.as_str())];
        let url = format!("http://{}/nacos/v1/ns/instance/beat", self.http(i));
        let r = self.client.put(url).form(&params).send().await.ok()?;
        if r.status() != 200 {
            return None;
        }
        let v: Value = r.json().await.ok()?;
        v["code"].as_i64()
    }
}

// ---------------------------------------------------------------------------
// gRPC clients

/// A `sdk-client --commands` process.
struct Driven {
    child: Child,
    stdin: ChildStdin,
    done: tokio::sync::mpsc::UnboundedReceiver<(u64, Result<(), String>)>,
    next: u64,
    redone: Redone,
}

impl Driven {
    /// Starts a client of `servers` (member names) and waits for it to be
    /// connected; pushed views land in `views`, the SDK's own events in
    /// `history` (times since `started`).
    fn start(servers: &[String], views: Views, history: History, started: Instant) -> Result<Driven> {
        let bin = binary("roster-e2e", "sdk-client")?;
        let mut child = Command::new(bin)
            .args(["--server", &servers.join(","), "--grpc-port", "9848", "--commands"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("spawning sdk-client")?;
        let stdout = child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
        let stdin = child.stdin.take().ok_or_else(|| anyhow!("no stdin"))?;
        // Why a client gave up: its `Error: ...` line (a backtrace may
        // follow it), else its last line.
        let stderr = child.stderr.take().ok_or_else(|| anyhow!("no stderr"))?;
        let said = Arc::new(Mutex::new(String::new()));
        let why = said.clone();
        std::thread::spawn(move || {
            let mut error_seen = false;
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if error_seen {
                    continue;
                }
                error_seen = line.starts_with("Error: ");
                if let Ok(mut why) = why.lock() {
                    *why = line;
                }
            }
        });
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (done_tx, done) = tokio::sync::mpsc::unbounded_channel();
        let redone: Redone = Arc::default();
        let counts = redone.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let mut words = line.splitn(3, ' ');
                match (words.next(), words.next(), words.next()) {
                    (Some("ready"), None, None) => {
                        let _ = ready_tx.send(());
                    }
                    (Some("push"), Some(service), Some(hosts)) => {
                        let hosts: Vec<String> =
                            if hosts == "-" { Vec::new() } else { hosts.split(',').map(str::to_owned).collect() };
                        if let Ok(mut views) = views.lock() {
                            views.insert(service.to_owned(), hosts);
                        }
                    }
                    (Some("event"), Some(what), detail) => {
                        if let (Ok(mut counts), ("redo", Some(service))) = (counts.lock(), (what, detail)) {
                            *counts.entry(service.to_owned()).or_default() += 1;
                        }
                        note(&history, started.elapsed(), format!("sdk: {what} {}", detail.unwrap_or("")));
                    }
                    (Some("done"), Some(id), Some(rest)) => {
                        let Ok(id) = id.parse() else { continue };
                        let result = if rest == "ok" { Ok(()) } else { Err(rest.to_owned()) };
                        let _ = done_tx.send((id, result));
                    }
                    _ => {}
                }
            }
        });
        let mut driven = Driven { child, stdin, done, next: 0, redone };
        if ready_rx.recv_timeout(Duration::from_secs(30)).is_err() {
            driven.kill();
            let said = said.lock().map(|s| s.clone()).unwrap_or_default();
            bail!("sdk-client of {servers:?} did not connect within 30 s (it said {said:?})");
        }
        Ok(driven)
    }

    /// Sends one command and waits for its answer; `Unknown` on an error
    /// or a timeout.
    async fn command(&mut self, command: &str) -> Outcome {
        self.next += 1;
        let id = self.next;
        if writeln!(self.stdin, "{id} {command}").and_then(|()| self.stdin.flush()).is_err() {
            return Outcome::Unknown;
        }
        let deadline = tokio::time::Instant::now() + OP_TIMEOUT;
        loop {
            match tokio::time::timeout_at(deadline, self.done.recv()).await {
                Ok(Some((got, result))) if got == id => {
                    return if result.is_ok() { Outcome::Acked } else { Outcome::Unknown };
                }
                Ok(Some(_)) => continue,
                Ok(None) | Err(_) => return Outcome::Unknown,
            }
        }
    }

    /// How many times the SDK has resent its register of `service` on its
    /// own so far (every such event before the last answer is counted).
    fn redos(&self, service: &str) -> u64 {
        self.redone.lock().map(|c| c.get(service).copied().unwrap_or(0)).unwrap_or(0)
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Driven {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One client slot: a client process at a time, doing random operations
/// until `deadline`; with faults on, sometimes crashed and replaced.
/// Returns the live client at the end.
async fn sdk_slot(
    world: Arc<World>,
    slot: usize,
    mut rng: fastrand::Rng,
    deadline: Instant,
    inject_faults: bool,
) -> Option<Driven> {
    let mut generation = 0usize;
    let mut current: Option<(usize, Driven)> = None;
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(rng.u64(200..900))).await;
        let Some((index, client)) = current.as_mut() else {
            current = start_client(&world, slot, generation, &mut rng).await;
            generation += 1;
            continue;
        };
        let index = *index;
        let ip = client_ip(slot, generation - 1);
        let roll = rng.u32(..100);
        if inject_faults && roll < 2 {
            client.kill();
            if let Ok(mut model) = world.model.lock() {
                model.sdk[index].alive = false;
                model.crashed += 1;
            }
            world.log(format!("crash gRPC client {}", client_name(slot, generation - 1)));
            world.note_sdk(index, world.started.elapsed(), "killed".to_owned());
            current = None;
            continue;
        }
        let service = CHURN_SERVICES[rng.usize(..CHURN_SERVICES.len())];
        if roll < 70 {
            let instance = format!("{ip}:{}", rng.u16(7000..8000));
            let began = world.started.elapsed();
            let outcome = client.command(&format!("register {service} {}", instance.replace(':', " "))).await;
            let redos = client.redos(service);
            world.record_sdk(index, SdkOp { service, instance: &instance, register: true, outcome, began, redos });
        } else {
            let held = world.model.lock().ok().and_then(|m| m.sdk[index].held.get(service).cloned());
            let Some(instance) = held.and_then(|h| h.required.or_else(|| h.allowed.iter().next().cloned())) else {
                continue;
            };
            let began = world.started.elapsed();
            let outcome = client.command(&format!("deregister {service} {}", instance.replace(':', " "))).await;
            let redos = client.redos(service);
            world.record_sdk(index, SdkOp { service, instance: &instance, register: false, outcome, began, redos });
        }
    }
    current.map(|(_, client)| client)
}

fn client_ip(slot: usize, generation: usize) -> String {
    format!("10.{}.{}.1", 10 + slot % 40, generation % 250)
}

fn client_name(slot: usize, generation: usize) -> String {
    format!("grpc-{slot}.{generation}")
}

/// Starts generation `generation` of a slot: connects (the first
/// generation to node `slot mod 3`, later ones to one node or all, at
/// random), registers its pinned instance and subscribes to two services.
async fn start_client(
    world: &Arc<World>,
    slot: usize,
    generation: usize,
    rng: &mut fastrand::Rng,
) -> Option<(usize, Driven)> {
    let servers: Vec<String> = if generation == 0 {
        vec![world.member(slot % world.ips.len())]
    } else if rng.bool() {
        (0..world.ips.len()).map(|i| world.member(i)).collect()
    } else {
        vec![world.member(world.pick_up(rng)?)]
    };
    let mut services: Vec<&str> = CHURN_SERVICES.iter().copied().chain([PINNED_SERVICE, PERSISTENT_SERVICE]).collect();
    rng.shuffle(&mut services);
    let subscriptions: Vec<String> = services[..2].iter().map(|s| s.to_string()).collect();
    let views = Arc::new(Mutex::new(BTreeMap::new()));
    let history: History = Arc::new(Mutex::new(Vec::new()));
    let name = client_name(slot, generation);
    note(&history, world.started.elapsed(), format!("start, servers {servers:?}"));
    let started = {
        let (servers, views, history, since) = (servers.clone(), views.clone(), history.clone(), world.started);
        tokio::task::spawn_blocking(move || Driven::start(&servers, views, history, since)).await
    };
    let mut client = match started {
        Ok(Ok(client)) => client,
        Ok(Err(e)) => {
            world.log(format!("gRPC client {name} of {servers:?} could not start: {e:#}"));
            return None;
        }
        Err(_) => return None,
    };
    let index = {
        let mut model = world.model.lock().ok()?;
        model.sdk.push(SdkModel {
            name: format!("{name} (of {})", servers.join(",")),
            alive: true,
            held: BTreeMap::new(),
            tried: BTreeMap::new(),
            subscriptions: Vec::new(),
            views,
            history,
        });
        model.sdk.len() - 1
    };
    let pinned = format!("{}:{PINNED_PORT}", client_ip(slot, generation));
    let began = world.started.elapsed();
    let outcome = client.command(&format!("register {PINNED_SERVICE} {}", pinned.replace(':', " "))).await;
    let redos = client.redos(PINNED_SERVICE);
    let op = SdkOp { service: PINNED_SERVICE, instance: &pinned, register: true, outcome, began, redos };
    world.record_sdk(index, op);
    for service in subscriptions {
        // An unknown subscription is redone by the SDK; it is checked either way.
        let began = world.started.elapsed();
        let outcome = client.command(&format!("subscribe {service}")).await;
        world.note_sdk(index, began, format!("subscribe {service}: {outcome:?}"));
        if let Ok(mut model) = world.model.lock() {
            model.sdk[index].subscriptions.push(service);
        }
    }
    Some((index, client))
}

impl World {
    /// The histories of the gRPC clients the discrepancies name.
    fn histories_named_by(&self, discrepancies: &[Discrepancy]) -> Vec<(String, Vec<String>)> {
        let texts: Vec<String> = discrepancies.iter().map(ToString::to_string).collect();
        let Ok(model) = self.model.lock() else { return Vec::new() };
        model
            .sdk
            .iter()
            .filter(|c| texts.iter().any(|t| t.contains(&c.name)))
            .map(|c| (c.name.clone(), c.history.lock().map(|h| h.clone()).unwrap_or_default()))
            .collect()
    }

    /// For each ephemeral instance a discrepancy names, the clients each
    /// node says publish it, and what the node knows of them.
    async fn publishers_of(&self, discrepancies: &[Discrepancy]) -> Vec<String> {
        let mut asked = BTreeSet::new();
        for d in discrepancies {
            match d {
                Discrepancy::Missing { service, instance, .. }
                | Discrepancy::Unhealthy { service, instance, .. }
                | Discrepancy::NotGone { service, instance, .. }
                | Discrepancy::Unwritten { service, instance, .. }
                | Discrepancy::Duplicate { service, instance, .. }
                    if service != PERSISTENT_SERVICE =>
                {
                    asked.insert((service.clone(), instance.clone()));
                }
                _ => {}
            }
        }
        let mut lines = Vec::new();
        for (service, instance) in asked {
            let Some((ip, port)) = instance.rsplit_once(':') else { continue };
            for node in 0..self.ips.len() {
                let query = [("serviceName", service.as_str()), ("ip", ip), ("port", port)];
                let Some(list) = self.get_json(node, "/nacos/v2/ns/client/service/publisher/list", &query).await else {
                    lines.push(format!("node {node}: {service} {instance}: no answer"));
                    continue;
                };
                let ids: Vec<&str> = list["data"]
                    .as_array()
                    .map(|a| a.iter().filter_map(|c| c["clientId"].as_str()).collect())
                    .unwrap_or_default();
                if ids.is_empty() {
                    lines.push(format!("node {node}: {service} {instance}: published by no client"));
                }
                for id in ids {
                    let detail = self.get_json(node, "/nacos/v2/ns/client", &[("clientId", id)]).await;
                    let described = match detail.as_ref().map(|d| &d["data"]) {
                        Some(d) if d.is_object() => {
                            let kind = d["clientType"].as_str().unwrap_or("?");
                            let written = d["source"].as_str().map_or_else(|| "here".to_owned(), |s| format!("on {s}"));
                            match kind {
                                "connection" => {
                                    format!("connection, connected here: {}, written {written}", d["connected"])
                                }
                                _ => format!("{kind}, written {written}"),
                            }
                        }
                        _ => "no detail".to_owned(),
                    };
                    lines.push(format!("node {node}: {service} {instance} published by client {id} ({described})"));
                }
            }
        }
        lines
    }

    /// How many instances whose deregistration the SDK's redo may have
    /// undone are on node 0 (after a passing check: on every node), their
    /// clients still alive.
    async fn put_back_by_redo(&self) -> usize {
        let overlaps: Vec<(String, String)> = match self.model.lock() {
            Ok(m) => m
                .redo_overlaps
                .iter()
                .filter(|(i, _, _)| m.sdk[*i].alive)
                .map(|(_, s, inst)| (s.clone(), inst.clone()))
                .collect(),
            Err(_) => return 0,
        };
        let mut put_back = 0;
        for (service, instance) in overlaps {
            if let Some(hosts) = self.hosts(0, &service).await {
                if hosts.iter().any(|(address, _, _)| *address == instance) {
                    put_back += 1;
                    eprintln!("chaos: the SDK's redo put back {service} {instance} after its deregistration");
                }
            }
        }
        put_back
    }

    /// Adds to the history of client `index`.
    fn note_sdk(&self, index: usize, at: Duration, entry: String) {
        let history = self.model.lock().ok().map(|m| m.sdk[index].history.clone());
        if let Some(history) = history {
            note(&history, at, entry);
        }
    }

    /// Records a register or deregister by client `index`.
    fn record_sdk(&self, index: usize, op: SdkOp<'_>) {
        let SdkOp { service, instance, register, outcome, began, redos } = op;
        let what = if register { "register" } else { "deregister" };
        let took = self.started.elapsed().saturating_sub(began);
        self.note_sdk(index, began, format!("{what} {service} {instance}: {outcome:?} after {took:.1?}"));
        let Ok(mut model) = self.model.lock() else { return };
        match outcome {
            Outcome::Acked => model.sdk_acked += 1,
            Outcome::Unknown => model.sdk_failed += 1,
        }
        let client = &mut model.sdk[index];
        client.tried.entry(service.to_owned()).or_default().insert(instance.to_owned());
        let held = client.held.entry(service.to_owned()).or_default();
        match (register, outcome) {
            // One instance per service and connection: a register replaces.
            (true, Outcome::Acked) => {
                *held = Held {
                    required: Some(instance.to_owned()),
                    allowed: [instance.to_owned()].into(),
                    redos_at_register: redos,
                };
                // It replaced whatever the SDK may have put back.
                model.redo_overlaps.retain(|(i, s, _)| *i != index || s != service);
            }
            (false, Outcome::Acked) if redos > held.redos_at_register => {
                // nacos-sdk 0.8.3 sends a deregister before it drops its redo
                // task, and its redo pass may resend the register meanwhile
                // (it does so after a reconnect, or after a register that
                // failed): the SDK itself may have put the instance back.
                held.required = None;
                held.allowed.insert(instance.to_owned());
                model.redo_overlaps_seen += 1;
                model.redo_overlaps.push((index, service.to_owned(), instance.to_owned()));
                drop(model);
                let why = "may stay: the SDK resent its register of this service on its own since the last one";
                self.note_sdk(index, began, format!("  {why}"));
            }
            (false, Outcome::Acked) => {
                // Gone; another one whose register had an unknown outcome may stay.
                held.required = None;
                held.allowed.remove(instance);
            }
            (_, Outcome::Unknown) => {
                // The SDK may still (re)do it; the previous one may stay too.
                held.required = None;
                held.allowed.insert(instance.to_owned());
            }
        }
    }
}

/// A register or deregister as a gRPC client saw it.
struct SdkOp<'a> {
    service: &'a str,
    /// `ip:port`.
    instance: &'a str,
    register: bool,
    outcome: Outcome,
    /// When it was sent (run time).
    began: Duration,
    /// The SDK's own resends of this service's register so far, counted
    /// when the answer came.
    redos: u64,
}

// ---------------------------------------------------------------------------
// HTTP clients and persistent writes

/// HTTP clients: registers `count` instances, then until `deadline` adds
/// more, stops beating some and deregisters some; beats every live one
/// every 500 ms until `stop`.
async fn http_clients(
    world: Arc<World>,
    mut rng: fastrand::Rng,
    count: usize,
    deadline: Instant,
    stop: Arc<AtomicBool>,
) {
    let mut next = 0u16;
    for _ in 0..count {
        http_register_new(&world, &mut rng, &mut next).await;
    }
    while !stop.load(Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_millis(500)).await;
        // Beat every beating instance through a random running node; one
        // the cluster lost is registered again, as Nacos clients do.
        let beating: Vec<HttpModel> = world
            .model
            .lock()
            .map(|m| m.http.iter().filter(|h| h.state == HttpState::Beating).cloned().collect())
            .unwrap_or_default();
        for inst in &beating {
            let Some(node) = world.pick_up(&mut rng) else { break };
            if world.beat(node, inst).await == Some(20404) {
                let port = inst.port.to_string();
                let params =
                    [("serviceName", inst.service.as_str()), ("ip", inst.ip.as_str()), ("port", port.as_str())];
                let _ = world.write(node, reqwest::Method::POST, &params).await;
            }
        }
        if Instant::now() >= deadline {
            continue;
        }
        match rng.u32(..100) {
            0..40 => http_register_new(&world, &mut rng, &mut next).await,
            40..60 => {
                if let Some(i) = random_beating(&world, &mut rng) {
                    if let Ok(mut model) = world.model.lock() {
                        model.http[i].state = HttpState::Stopped;
                    }
                }
            }
            60..80 => {
                let Some(i) = random_beating(&world, &mut rng) else { continue };
                let Some(inst) = world.model.lock().ok().map(|mut m| {
                    m.http[i].state = HttpState::Deregistered;
                    m.http[i].clone()
                }) else {
                    continue;
                };
                let Some(node) = world.pick_up(&mut rng) else { continue };
                let port = inst.port.to_string();
                let params =
                    [("serviceName", inst.service.as_str()), ("ip", inst.ip.as_str()), ("port", port.as_str())];
                // Acknowledged or not, it is gone in the end: its beats stopped.
                let _ = world.write(node, reqwest::Method::DELETE, &params).await;
            }
            _ => {}
        }
    }
}

fn random_beating(world: &World, rng: &mut fastrand::Rng) -> Option<usize> {
    let model = world.model.lock().ok()?;
    let beating: Vec<usize> = (0..model.http.len()).filter(|i| model.http[*i].state == HttpState::Beating).collect();
    (!beating.is_empty()).then(|| beating[rng.usize(..beating.len())])
}

async fn http_register_new(world: &World, rng: &mut fastrand::Rng, next: &mut u16) {
    let n = *next;
    *next += 1;
    let inst = HttpModel {
        service: CHURN_SERVICES[rng.usize(..CHURN_SERVICES.len())].to_owned(),
        ip: format!("10.50.{}.{}", n / 200, 1 + n % 200),
        port: 8000 + n,
        state: HttpState::Beating,
    };
    if let Ok(mut model) = world.model.lock() {
        model.http.push(inst.clone());
    }
    // Whatever the answer, it beats from now on and is registered again if
    // the cluster does not know it.
    if let Some(node) = world.pick_up(rng) {
        let port = inst.port.to_string();
        let params = [("serviceName", inst.service.as_str()), ("ip", inst.ip.as_str()), ("port", port.as_str())];
        let _ = world.write(node, reqwest::Method::POST, &params).await;
    }
}

/// Persistent writes through random running nodes until `deadline`: new
/// instances, and deregistrations of acknowledged ones.
async fn persistent_writer(world: Arc<World>, mut rng: fastrand::Rng, deadline: Instant) {
    let mut next = 20_000u16;
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(rng.u64(100..400))).await;
        let Some(node) = world.pick_up(&mut rng) else { continue };
        let deregister = rng.u32(..100) < 20;
        if deregister {
            let candidates: Vec<u16> = world
                .model
                .lock()
                .map(|m| {
                    m.persistent
                        .iter()
                        .filter(|(_, w)| w.register == Outcome::Acked && w.deregister.is_none())
                        .map(|(p, _)| *p)
                        .collect()
                })
                .unwrap_or_default();
            if candidates.is_empty() {
                continue;
            }
            let port = candidates[rng.usize(..candidates.len())];
            if let Ok(mut model) = world.model.lock() {
                if let Some(w) = model.persistent.get_mut(&port) {
                    w.deregister = Some(Outcome::Unknown);
                }
            }
            let port_text = port.to_string();
            let params = [
                ("serviceName", PERSISTENT_SERVICE),
                ("ip", PERSISTENT_IP),
                ("port", port_text.as_str()),
                ("ephemeral", "false"),
            ];
            let outcome = world.write(node, reqwest::Method::DELETE, &params).await;
            if let Ok(mut model) = world.model.lock() {
                if let Some(w) = model.persistent.get_mut(&port) {
                    w.deregister = Some(outcome);
                }
            }
        } else {
            let port = next;
            next += 1;
            let value = format!("w{port}-n{node}");
            if let Ok(mut model) = world.model.lock() {
                model.persistent.insert(
                    port,
                    PersistentModel { value: value.clone(), register: Outcome::Unknown, deregister: None },
                );
            }
            let (port_text, metadata) = (port.to_string(), format!("v={value}"));
            let params = [
                ("serviceName", PERSISTENT_SERVICE),
                ("ip", PERSISTENT_IP),
                ("port", port_text.as_str()),
                ("ephemeral", "false"),
                ("metadata", metadata.as_str()),
            ];
            let outcome = world.write(node, reqwest::Method::POST, &params).await;
            if let Ok(mut model) = world.model.lock() {
                if let Some(w) = model.persistent.get_mut(&port) {
                    w.register = outcome;
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------
// The checker

/// What one ephemeral service must and may hold.
#[derive(Debug, Default)]
struct ServiceExpectation {
    /// `ip:port` → who holds it.
    required: BTreeMap<String, String>,
    /// May be there (unknown outcomes), required ones included.
    allowed: BTreeSet<String>,
    /// Must be gone: `ip:port` → why.
    gone: BTreeMap<String, String>,
}

/// The final state the clients were told about.
#[derive(Debug, Default)]
struct Expectation {
    services: BTreeMap<String, ServiceExpectation>,
    /// Acknowledged and not deregistered: port → value.
    persistent_required: BTreeMap<u16, String>,
    /// Attempted: port → value.
    persistent_attempted: BTreeMap<u16, String>,
    /// Acknowledged deregistrations.
    persistent_gone: BTreeSet<u16>,
    /// (client, service, its views).
    subscribers: Vec<(String, String, Views)>,
}

impl Model {
    fn expectation(&self) -> Expectation {
        let mut e = Expectation::default();
        for service in CHURN_SERVICES.iter().chain([&PINNED_SERVICE]) {
            e.services.insert(service.to_string(), ServiceExpectation::default());
        }
        for client in &self.sdk {
            for (service, tried) in &client.tried {
                let Some(s) = e.services.get_mut(service) else { continue };
                let held = client.held.get(service).cloned().unwrap_or_default();
                for instance in tried {
                    if !client.alive {
                        s.gone.insert(instance.clone(), format!("belonged to crashed client {}", client.name));
                    } else if held.required.as_ref() == Some(instance) {
                        s.required.insert(instance.clone(), format!("live gRPC client {}", client.name));
                        s.allowed.insert(instance.clone());
                    } else if held.allowed.contains(instance) {
                        s.allowed.insert(instance.clone());
                    } else {
                        s.gone.insert(
                            instance.clone(),
                            format!("live gRPC client {} replaced or deregistered", client.name),
                        );
                    }
                }
            }
            if client.alive {
                for service in &client.subscriptions {
                    e.subscribers.push((client.name.clone(), service.clone(), client.views.clone()));
                }
            }
        }
        for inst in &self.http {
            let Some(s) = e.services.get_mut(&inst.service) else { continue };
            let address = format!("{}:{}", inst.ip, inst.port);
            match inst.state {
                HttpState::Beating => {
                    s.required.insert(address.clone(), "a beating HTTP client".to_owned());
                    s.allowed.insert(address);
                }
                HttpState::Stopped => {
                    s.gone.insert(address, "stopped beating (expired)".to_owned());
                }
                HttpState::Deregistered => {
                    s.gone.insert(address, "was deregistered and stopped beating".to_owned());
                }
            }
        }
        for (port, w) in &self.persistent {
            e.persistent_attempted.insert(*port, w.value.clone());
            match (w.register, w.deregister) {
                (_, Some(Outcome::Acked)) => {
                    e.persistent_gone.insert(*port);
                }
                (Outcome::Acked, None) => {
                    e.persistent_required.insert(*port, w.value.clone());
                }
                _ => {}
            }
        }
        e
    }
}

/// Polls until the cluster matches what the clients were told, or `bound`
/// passes; returns how long it took, or every difference of the last round.
async fn check(world: &World, bound: Duration) -> Result<Duration, Vec<Discrepancy>> {
    let expectation = world
        .model
        .lock()
        .map(|m| m.expectation())
        .map_err(|_| vec![Discrepancy::Harness("model lock poisoned".into())])?;
    let started = Instant::now();
    loop {
        let found = check_once(world, &expectation).await;
        if found.is_empty() {
            return Ok(started.elapsed());
        }
        if started.elapsed() >= bound {
            return Err(found);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn check_once(world: &World, e: &Expectation) -> Vec<Discrepancy> {
    let mut found = Vec::new();
    let mut agreed: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let services: Vec<&String> = e.services.keys().collect();
    for service in services.iter().map(|s| s.as_str()).chain([PERSISTENT_SERVICE]) {
        let mut lists = Vec::new();
        for node in 0..world.ips.len() {
            let Some(hosts) = world.hosts(node, service).await else {
                found.push(Discrepancy::Unreachable { node, what: format!("the list of {service}") });
                continue;
            };
            if service == PERSISTENT_SERVICE {
                check_persistent(node, &hosts, e, &mut found);
            } else if let Some(s) = e.services.get(service) {
                check_ephemeral(node, service, &hosts, s, &mut found);
            }
            lists.push(hosts.iter().map(|(a, h, _)| format!("{a}:{h}")).collect::<Vec<String>>());
        }
        if lists.windows(2).any(|w| w[0] != w[1]) {
            found.push(Discrepancy::Diverged { service: service.to_owned(), lists: lists.clone() });
        }
        if let Some(first) = lists.into_iter().next() {
            agreed.insert(service.to_owned(), first);
        }
    }
    for (client, service, views) in &e.subscribers {
        let pushed = views.lock().ok().and_then(|v| v.get(service).cloned());
        let actual = agreed.get(service).cloned().unwrap_or_default();
        if pushed.as_ref().unwrap_or(&Vec::new()) != &actual {
            found.push(Discrepancy::StaleView { client: client.clone(), service: service.clone(), pushed, actual });
        }
    }
    found
}

fn check_ephemeral(
    node: usize,
    service: &str,
    hosts: &[(String, bool, Option<String>)],
    s: &ServiceExpectation,
    found: &mut Vec<Discrepancy>,
) {
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for (address, healthy, _) in hosts {
        *seen.entry(address.as_str()).or_default() += 1;
        let instance = address.clone();
        let service = service.to_owned();
        if s.allowed.contains(address) {
            if s.required.contains_key(address) && !healthy {
                found.push(Discrepancy::Unhealthy { node, service, instance });
            }
        } else if let Some(why) = s.gone.get(address) {
            found.push(Discrepancy::NotGone { node, service, instance, why: why.clone() });
        } else {
            found.push(Discrepancy::Unwritten { node, service, instance });
        }
    }
    for (address, n) in &seen {
        if *n > 1 {
            found.push(Discrepancy::Duplicate { node, service: service.to_owned(), instance: address.to_string() });
        }
    }
    for (address, owner) in &s.required {
        if !seen.contains_key(address.as_str()) {
            found.push(Discrepancy::Missing {
                node,
                service: service.to_owned(),
                instance: address.clone(),
                owner: owner.clone(),
            });
        }
    }
}

fn check_persistent(
    node: usize,
    hosts: &[(String, bool, Option<String>)],
    e: &Expectation,
    found: &mut Vec<Discrepancy>,
) {
    let mut held: BTreeMap<u16, Option<String>> = BTreeMap::new();
    for (address, _, value) in hosts {
        let port = address.strip_prefix(&format!("{PERSISTENT_IP}:")).and_then(|p| p.parse::<u16>().ok());
        let service = PERSISTENT_SERVICE.to_owned();
        let Some(port) = port else {
            found.push(Discrepancy::Unwritten { node, service, instance: address.clone() });
            continue;
        };
        if held.insert(port, value.clone()).is_some() {
            found.push(Discrepancy::Duplicate { node, service, instance: address.clone() });
        } else if e.persistent_gone.contains(&port) {
            let why = "had an acknowledged deregistration".to_owned();
            found.push(Discrepancy::NotGone { node, service, instance: address.clone(), why });
        } else if e.persistent_attempted.get(&port) != value.as_ref() {
            found.push(Discrepancy::Unwritten { node, service, instance: format!("{address} v={value:?}") });
        }
    }
    for (port, value) in &e.persistent_required {
        let got = held.get(port).cloned().flatten();
        if got.as_ref() != Some(value) {
            found.push(Discrepancy::LostWrite {
                node,
                instance: format!("{PERSISTENT_IP}:{port}"),
                value: value.clone(),
                found: got,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A world with one live gRPC client that registered `ip:port` in
    /// `chaos-a` (acknowledged, with `redos` SDK resends counted then).
    fn world_with_registered(instance: &str, redos: u64) -> World {
        let world = World::new(&["127.0.0.1".to_owned()], None);
        if let Ok(mut model) = world.model.lock() {
            model.sdk.push(SdkModel {
                name: "grpc-0.0 (of test)".to_owned(),
                alive: true,
                held: BTreeMap::new(),
                tried: BTreeMap::new(),
                subscriptions: Vec::new(),
                views: Views::default(),
                history: History::default(),
            });
        }
        let began = Duration::ZERO;
        let op = SdkOp { service: "chaos-a", instance, register: true, outcome: Outcome::Acked, began, redos };
        world.record_sdk(0, op);
        world
    }

    fn deregister(world: &World, instance: &str, redos: u64) -> ServiceExpectation {
        let began = Duration::ZERO;
        let op = SdkOp { service: "chaos-a", instance, register: false, outcome: Outcome::Acked, began, redos };
        world.record_sdk(0, op);
        let mut e = world.model.lock().expect("model").expectation();
        e.services.remove("chaos-a").expect("the churn service is expected")
    }

    #[test]
    fn an_acknowledged_deregistration_must_be_gone() {
        let world = world_with_registered("10.0.0.1:7000", 2);
        // Resends before the register do not count: it replaced them.
        let e = deregister(&world, "10.0.0.1:7000", 2);
        assert!(e.gone.contains_key("10.0.0.1:7000"), "{e:?}");
        assert!(!e.allowed.contains("10.0.0.1:7000"), "{e:?}");
    }

    #[test]
    fn a_deregistration_the_sdk_may_have_undone_is_allowed_but_not_required() {
        let world = world_with_registered("10.0.0.1:7000", 2);
        // The SDK resent its register of the service after it (a reconnect).
        let e = deregister(&world, "10.0.0.1:7000", 3);
        assert!(e.allowed.contains("10.0.0.1:7000"), "{e:?}");
        assert!(!e.required.contains_key("10.0.0.1:7000"), "{e:?}");
        assert!(!e.gone.contains_key("10.0.0.1:7000"), "{e:?}");
        let history = world.model.lock().expect("model").sdk[0].history.lock().expect("history").join("\n");
        assert!(history.contains("may stay: the SDK resent its register"), "{history}");
        assert_eq!(world.model.lock().expect("model").redo_overlaps.len(), 1);
        // A later register replaces whatever the SDK put back.
        let began = Duration::ZERO;
        let op = SdkOp {
            service: "chaos-a",
            instance: "10.0.0.1:7001",
            register: true,
            outcome: Outcome::Acked,
            began,
            redos: 3,
        };
        world.record_sdk(0, op);
        let model = world.model.lock().expect("model");
        assert!(model.redo_overlaps.is_empty());
        assert_eq!(model.redo_overlaps_seen, 1);
    }
}
