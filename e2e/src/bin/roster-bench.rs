//! `roster-bench`: the Roster benchmark, side by side with its peers.
//!
//! For each repetition it starts a 3-member Roster cluster and a 3-member
//! r-nacos cluster on loopback (one after the other, the order alternating
//! between repetitions) and runs the same steps against each with a load
//! generator that speaks the Nacos 2.x gRPC protocol and the HTTP Open API;
//! persistent writes also run against a 3-member etcd cluster. It prints
//! each run's figures, then the medians over the repetitions side by side
//! with Roster's ratio to each peer, and writes everything as JSON. Every
//! process it started is killed when it ends, on error and on Ctrl-C too.
//!
//! ```sh
//! cargo run --release -p roster-e2e --bin roster-bench -- --json bench.json
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use roster_e2e::bench::cluster::{BenchCluster, Flavor};
use roster_e2e::bench::compare::{self, SYSTEMS};
use roster_e2e::bench::etcd::{self, EtcdCluster};
use roster_e2e::bench::scenarios::{large, latency, naming, Settings};
use roster_e2e::bench::stats::{load_average, machine, round3, rss_kb};
use roster_e2e::bench::{report, STEPS};
use roster_node::config::parse_duration;
use serde_json::{json, Value};

#[derive(Debug, Parser)]
#[command(name = "roster-bench", about = "Benchmark Roster side by side with r-nacos and etcd")]
struct Args {
    /// Steps to run (comma-separated or repeated): grpc-register,
    /// grpc-query, http-register, http-query, convergence, push, persistent,
    /// memory, bootstrap, or all.
    #[arg(long, value_delimiter = ',', default_value = "all")]
    steps: Vec<String>,
    /// Systems to measure: roster, rnacos, etcd (etcd runs `persistent` only).
    #[arg(long, value_delimiter = ',', default_value = "roster,rnacos,etcd")]
    systems: Vec<String>,
    /// Repetitions; the summary shows medians over them.
    #[arg(long, default_value_t = 3)]
    repetitions: usize,
    /// Write the figures as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Main HTTP addresses (`host:port`, comma-separated) of an existing
    /// Roster cluster to load instead of starting one; gRPC is the port +
    /// 1000. `memory` and `bootstrap` need local nodes and are skipped.
    #[arg(long, value_delimiter = ',')]
    target: Vec<SocketAddr>,
    /// Members of each cluster.
    #[arg(long, default_value_t = 3)]
    nodes: usize,
    /// Operations per throughput step.
    #[arg(long, default_value_t = 20_000)]
    operations: usize,
    /// Concurrent workers of a throughput step (each one request at a time).
    #[arg(long, default_value_t = 64)]
    workers: usize,
    /// gRPC connections (and HTTP clients) the workers share.
    #[arg(long, default_value_t = 8)]
    connections: usize,
    /// Services of the query data set, the registrations and the large load.
    #[arg(long, default_value_t = 1_000)]
    services: usize,
    /// Instances per queried service.
    #[arg(long, default_value_t = 10)]
    query_hosts: usize,
    /// convergence, push: samples.
    #[arg(long, default_value_t = 200)]
    samples: usize,
    /// convergence, push: samples in flight at once.
    #[arg(long, default_value_t = 4)]
    sample_concurrency: usize,
    /// convergence: pause between polls of the other nodes.
    #[arg(long, default_value = "10ms", value_parser = parse_duration)]
    poll_interval: Duration,
    /// push: subscriber connections on the second node.
    #[arg(long, default_value_t = 10)]
    subscribers: usize,
    /// persistent against etcd: bytes per value.
    #[arg(long, default_value_t = 256)]
    value_bytes: usize,
    /// memory, bootstrap: ephemeral instances loaded.
    #[arg(long, default_value_t = 1_000_000)]
    instances: usize,
    /// memory, bootstrap: connections holding them.
    #[arg(long, default_value_t = 1_000)]
    load_connections: usize,
    /// memory, bootstrap: instances per BatchInstanceRequest.
    #[arg(long, default_value_t = 100)]
    batch: usize,
    /// memory, bootstrap: batches in flight at once.
    #[arg(long, default_value_t = 64)]
    load_concurrency: usize,
    /// memory: pause after loading before memory is read.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    settle: Duration,
    /// Extra flags for every local Roster node, after `--`.
    #[arg(last = true)]
    node_args: Vec<String>,
}

impl Args {
    fn settings(&self) -> Settings {
        Settings {
            operations: self.operations,
            workers: self.workers.max(1),
            connections: self.connections.max(1),
            services: self.services.max(1),
            query_hosts: self.query_hosts.max(1),
            samples: self.samples,
            sample_concurrency: self.sample_concurrency.max(1),
            poll_interval: self.poll_interval,
            subscribers: self.subscribers.max(1),
            value_bytes: self.value_bytes,
            instances: self.instances,
            load_connections: self.load_connections.max(1),
            batch: self.batch.max(1),
            load_concurrency: self.load_concurrency.max(1),
            settle: self.settle,
        }
    }

    /// The steps asked for.
    fn steps(&self) -> Result<Vec<&'static str>> {
        pick(&self.steps, &STEPS, "step")
    }

    /// The systems asked for.
    fn systems(&self) -> Result<Vec<&'static str>> {
        pick(&self.systems, &SYSTEMS, "system")
    }
}

/// The known names among `given` (or all of them for `all`), in `known` order.
fn pick(given: &[String], known: &[&'static str], what: &str) -> Result<Vec<&'static str>> {
    let mut wanted = Vec::new();
    for s in given.iter().map(|s| s.trim()) {
        if s == "all" {
            return Ok(known.to_vec());
        }
        match known.iter().find(|n| **n == s) {
            Some(n) => wanted.push(*n),
            None => bail!("unknown {what} '{s}' (known: {}, all)", known.join(", ")),
        }
    }
    Ok(known.iter().copied().filter(|n| wanted.contains(n)).collect())
}

/// The steps of one system's run, recorded with the load around each.
#[derive(Default)]
struct Run {
    steps: Vec<Value>,
    failed: bool,
}

impl Run {
    /// Records `outcome` of step `name` that began at `start`; a failed step
    /// is kept as `{error}` and fails the whole benchmark at the end.
    fn record(&mut self, name: &str, start: Instant, load_before: &str, outcome: Result<Value>) {
        let mut v = outcome.unwrap_or_else(|e| {
            self.failed = true;
            eprintln!("   {name} failed: {e:#}");
            json!({"error": format!("{e:#}")})
        });
        if v.get("error").is_some() {
            // A step that ran but could not finish (its figures say how far it got).
            self.failed = true;
        }
        if let Value::Object(map) = &mut v {
            map.insert("name".into(), name.into());
            map.insert("step_secs".into(), round3(start.elapsed().as_secs_f64()).into());
            map.insert("load_average_before".into(), load_before.into());
            map.insert("load_average_after".into(), load_average().into());
        }
        eprint!("{}", report::table(std::slice::from_ref(&v)));
        self.steps.push(v);
    }

    /// Runs one step and records it.
    async fn step<F: std::future::Future<Output = Result<Value>>>(&mut self, name: &str, run: F) {
        eprintln!("== {name} (load average {})", load_average());
        let (start, load) = (Instant::now(), load_average());
        let outcome = run.await;
        self.record(name, start, &load, outcome);
    }
}

/// The steps that run on the 3-member cluster, in run order: `http-register`
/// last, since its instances are not beaten for and expire later.
const SMALL: [&str; 7] =
    ["grpc-register", "grpc-query", "http-query", "convergence", "push", "persistent", "http-register"];

/// One run of `steps` against Roster or r-nacos.
async fn nacos_run(flavor: Flavor, args: &Args, steps: &[&str], s: &Settings, run: &mut Run) -> Result<()> {
    let small: Vec<&str> = SMALL.iter().copied().filter(|n| steps.contains(n)).collect();
    if !small.is_empty() {
        eprintln!("starting {} {} members", args.nodes, flavor.name());
        let cluster = match flavor {
            Flavor::Roster if !args.target.is_empty() => BenchCluster::target(&args.target).await?,
            Flavor::Roster => BenchCluster::start(args.nodes, 0, &args.node_args).await?,
            Flavor::Rnacos => BenchCluster::start_rnacos(args.nodes, 0).await?,
        };
        for name in small {
            if matches!(name, "grpc-query" | "http-query") {
                if name == "http-query" && steps.contains(&"grpc-query") {
                    continue; // measured with grpc-query, on the same data set
                }
                eprintln!("== query (load average {})", load_average());
                let (start, load) = (Instant::now(), load_average());
                match naming::query(&cluster, s).await {
                    Ok((grpc, http)) => {
                        for (step, v) in [("grpc-query", grpc), ("http-query", http)] {
                            if steps.contains(&step) {
                                run.record(step, start, &load, Ok(v));
                            }
                        }
                    }
                    Err(e) => run.record(name, start, &load, Err(e)),
                }
                continue;
            }
            let step = async {
                match name {
                    "grpc-register" => naming::grpc_register(&cluster, s).await,
                    "convergence" => latency::convergence(&cluster, s).await,
                    "push" => latency::push(&cluster, s).await,
                    "persistent" => naming::persistent(&cluster, s).await,
                    "http-register" => naming::http_register_step(&cluster, s).await,
                    other => bail!("unknown step {other}"),
                }
            };
            run.step(name, step).await;
        }
    }
    let large: Vec<&str> = ["memory", "bootstrap"].into_iter().filter(|n| steps.contains(n)).collect();
    if large.is_empty() {
        return Ok(());
    }
    if flavor == Flavor::Roster && !args.target.is_empty() {
        for name in large {
            run.steps.push(json!({"name": name, "skipped": "needs nodes started by the benchmark (no --target)"}));
        }
        return Ok(());
    }
    eprintln!("starting {} {} members for {} instances", args.nodes, flavor.name(), s.instances);
    let mut cluster = match flavor {
        Flavor::Roster => BenchCluster::start(args.nodes, 1, &args.node_args).await?,
        Flavor::Rnacos => BenchCluster::start_rnacos(args.nodes, 1).await?,
    };
    let baseline_kb: Vec<u64> =
        cluster.nodes.iter().map(|n| n.pid.and_then(rss_kb).map_or(0, |(rss, _)| rss)).collect();
    eprintln!("== loading {} instances (load average {})", s.instances, load_average());
    let loaded = large::load(&cluster, s).await?;
    eprintln!("   loaded: {}", loaded.figures);
    if large.contains(&"memory") {
        run.step("memory", large::memory(&cluster, s, &baseline_kb, &loaded)).await;
    }
    if large.contains(&"bootstrap") {
        run.step("bootstrap", large::bootstrap(&mut cluster, s, &loaded)).await;
    }
    Ok(())
}

/// One system's run; a system that could not be started is recorded as failed.
async fn one_run(system: &str, args: &Args, steps: &[&str], s: &Settings) -> Run {
    let mut run = Run::default();
    let outcome = match system {
        "roster" => nacos_run(Flavor::Roster, args, steps, s, &mut run).await,
        "rnacos" => nacos_run(Flavor::Rnacos, args, steps, s, &mut run).await,
        _ if !steps.contains(&"persistent") => Ok(()),
        _ if etcd::binary().is_none() => {
            eprintln!("etcd is not installed: its persistent writes are skipped");
            run.steps.push(json!({"name": "persistent", "skipped": "etcd is not installed"}));
            Ok(())
        }
        _ => {
            async {
                eprintln!("starting {} etcd members", args.nodes);
                let cluster = EtcdCluster::start(args.nodes).await?;
                run.step("persistent", etcd::persistent(&cluster, s)).await;
                Ok(())
            }
            .await
        }
    };
    if let Err(e) = outcome {
        eprintln!("   {system} failed: {e:#}");
        run.failed = true;
        run.steps.push(json!({"name": "setup", "error": format!("{e:#}")}));
    }
    run
}

async fn run(args: Args) -> Result<bool> {
    let steps = args.steps()?;
    let systems = args.systems()?;
    let settings = args.settings();
    if systems.contains(&"roster") && args.target.is_empty() {
        roster_e2e::node_beside_this_executable("roster-bench")?;
    }
    let mut runs = Vec::new();
    let mut failed = false;
    for repetition in 1..=args.repetitions.max(1) {
        // The order alternates, so a drift of the machine's load does not
        // always fall on the same system.
        let mut order = systems.clone();
        if repetition % 2 == 0 {
            order.reverse();
        }
        for system in order {
            eprintln!("=== repetition {repetition}: {system}");
            let run = one_run(system, &args, &steps, &settings).await;
            failed |= run.failed;
            runs.push(json!({"system": system, "repetition": repetition, "steps": run.steps}));
        }
    }
    let summary = compare::summary(&runs);
    let document = json!({
        "tool": "roster-bench",
        "version": env!("CARGO_PKG_VERSION"),
        "date": roster_node::distro::rfc3339(std::time::SystemTime::now()),
        "command": std::env::args().collect::<Vec<_>>().join(" "),
        "machine": machine(),
        "repetitions": args.repetitions.max(1),
        "roster": if args.target.is_empty() {
            json!({"mode": "local", "nodes": args.nodes, "node_args": args.node_args})
        } else {
            json!({"mode": "target", "targets": args.target.iter().map(ToString::to_string).collect::<Vec<_>>()})
        },
        "runs": runs,
        "summary": summary,
    });
    println!("{}", compare::table(&summary));
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&document)?;
        std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    Ok(!failed)
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    use tokio::signal::unix::{signal, SignalKind};
    let mut interrupt = signal(SignalKind::interrupt()).context("listening for Ctrl-C")?;
    let mut terminate = signal(SignalKind::terminate()).context("listening for SIGTERM")?;
    // Dropping the run future (on a signal) drops the clusters, whose
    // processes are killed by their handles.
    let ok = tokio::select! {
        r = run(args) => r?,
        _ = interrupt.recv() => bail!("interrupted; every process started was stopped"),
        _ = terminate.recv() => bail!("terminated; every process started was stopped"),
    };
    if !ok {
        bail!("some steps failed (see the tables)");
    }
    Ok(())
}
