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
//!
//! # Layout
//! - `config`: a run's knobs and the environment that sets them.
//! - `nodes`: the node processes and the fault schedule.
//! - `world`: what every task shares, and the harness's requests to nodes.
//! - `model`: what the clients were told, recorded as it happens.
//! - `sdk`: the gRPC clients (`sdk-client` processes) and their slots.
//! - `http`: the HTTP clients and the persistent writer.
//! - `checker`: what the cluster must hold, polled until it does, and the
//!   diagnosis of what it does not.
//! - `report`: what a run found ([`ChaosReport`], [`Discrepancy`]) or did
//!   ([`ChaosSummary`]).

mod checker;
mod config;
mod http;
mod model;
mod nodes;
mod report;
mod sdk;
mod world;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::anyhow;

pub use config::{seed_from_env, ArmedFault, ChaosConfig};
pub use report::{ChaosReport, ChaosSummary, Discrepancy};

use checker::check;
use http::{http_clients, persistent_writer};
use model::Outcome;
use nodes::{fault_schedule, Nodes};
use sdk::sdk_slot;
use world::World;

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
