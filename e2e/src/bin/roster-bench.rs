//! `roster-bench`: the Roster benchmark.
//!
//! Starts its own local cluster of `roster-node` processes on loopback (or
//! targets an existing one with `--target`), runs named scenarios with a
//! load generator that speaks the Nacos 2.x gRPC protocol, prints a table
//! and writes the figures as JSON. Every node it started is killed when it
//! ends, on error and on Ctrl-C too.
//!
//! ```sh
//! cargo run --release -p roster-e2e --bin roster-bench -- --scenario all --json bench.json
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use roster_e2e::bench::cluster::BenchCluster;
use roster_e2e::bench::scenarios::{self, Settings};
use roster_e2e::bench::stats::{load_average, machine, round3, rss_kb};
use roster_e2e::bench::{report, SCENARIOS};
use roster_node::config::parse_duration;
use serde_json::{json, Value};

#[derive(Debug, Parser)]
#[command(name = "roster-bench", about = "Benchmark a Roster cluster with Nacos gRPC load")]
struct Args {
    /// Scenarios to run (comma-separated or repeated): register, query,
    /// convergence, push, raft, memory, bootstrap, or all.
    #[arg(long, value_delimiter = ',', default_value = "all")]
    scenario: Vec<String>,
    /// Write the figures as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Main HTTP addresses (`host:port`, comma-separated) of an existing
    /// cluster to load instead of starting one; gRPC is the port + 1000.
    /// `memory` and `bootstrap` need local nodes and are skipped.
    #[arg(long, value_delimiter = ',')]
    target: Vec<SocketAddr>,
    /// Nodes of the local cluster.
    #[arg(long, default_value_t = 3)]
    nodes: usize,
    /// register: instances registered, one InstanceRequest each.
    #[arg(long, default_value_t = 20_000)]
    registrations: usize,
    /// register, query: client connections (each one request at a time).
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// query: how long each of the gRPC and HTTP phases runs.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
    /// query: services in the queried data set.
    #[arg(long, default_value_t = 100)]
    query_services: usize,
    /// query: instances per queried service.
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
    /// raft: persistent instances written.
    #[arg(long, default_value_t = 2_000)]
    raft_writes: usize,
    /// raft: writes in flight at once.
    #[arg(long, default_value_t = 16)]
    raft_concurrency: usize,
    /// memory, bootstrap: ephemeral instances loaded.
    #[arg(long, default_value_t = 100_000)]
    instances: usize,
    /// memory, bootstrap: connections holding them.
    #[arg(long, default_value_t = 1_000)]
    load_connections: usize,
    /// memory, bootstrap: instances per BatchInstanceRequest.
    #[arg(long, default_value_t = 100)]
    batch: usize,
    /// memory, bootstrap: services the instances are spread over.
    #[arg(long, default_value_t = 1_000)]
    services: usize,
    /// memory, bootstrap: batches in flight at once.
    #[arg(long, default_value_t = 64)]
    load_concurrency: usize,
    /// memory: pause after loading before memory is read.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    settle: Duration,
    /// Extra flags for every local node, after `--`.
    #[arg(last = true)]
    node_args: Vec<String>,
}

impl Args {
    fn settings(&self) -> Settings {
        Settings {
            registrations: self.registrations,
            connections: self.connections.max(1),
            duration: self.duration,
            query_services: self.query_services.max(1),
            query_hosts: self.query_hosts.max(1),
            samples: self.samples,
            sample_concurrency: self.sample_concurrency.max(1),
            poll_interval: self.poll_interval,
            subscribers: self.subscribers.max(1),
            raft_writes: self.raft_writes,
            raft_concurrency: self.raft_concurrency.max(1),
            instances: self.instances,
            load_connections: self.load_connections.max(1),
            batch: self.batch.max(1),
            services: self.services.max(1),
            load_concurrency: self.load_concurrency.max(1),
            settle: self.settle,
        }
    }

    /// The scenarios asked for, in run order.
    fn scenarios(&self) -> Result<Vec<&'static str>> {
        let mut wanted = Vec::new();
        for s in &self.scenario {
            let s = s.trim();
            if s == "all" {
                return Ok(SCENARIOS.to_vec());
            }
            match SCENARIOS.iter().find(|n| **n == s) {
                Some(n) => wanted.push(*n),
                None => bail!("unknown scenario '{s}' (known: {}, all)", SCENARIOS.join(", ")),
            }
        }
        Ok(SCENARIOS.iter().copied().filter(|n| wanted.contains(n)).collect())
    }
}

/// One scenario's result with its name, duration and the load around it.
async fn timed<F>(name: &str, results: &mut Vec<Value>, failed: &mut bool, run: F)
where
    F: std::future::Future<Output = Result<Value>>,
{
    eprintln!("== {name} (load average {})", load_average());
    let load_before = load_average();
    let start = Instant::now();
    let outcome = run.await;
    let mut v = match outcome {
        Ok(v) => v,
        Err(e) => {
            *failed = true;
            eprintln!("   {name} failed: {e:#}");
            json!({"error": format!("{e:#}")})
        }
    };
    if let Value::Object(map) = &mut v {
        map.insert("name".into(), name.into());
        map.insert("scenario_secs".into(), round3(start.elapsed().as_secs_f64()).into());
        map.insert("load_average_before".into(), load_before.into());
        map.insert("load_average_after".into(), load_average().into());
    }
    eprint!("{}", report::table(std::slice::from_ref(&v)));
    results.push(v);
}

async fn run(args: Args) -> Result<bool> {
    let wanted = args.scenarios()?;
    let settings = args.settings();
    let local = args.target.is_empty();
    if local {
        roster_e2e::node_beside_this_executable("roster-bench")?;
    }
    let mut results = Vec::new();
    let mut failed = false;
    let small: Vec<&str> = wanted.iter().copied().filter(|n| !matches!(*n, "memory" | "bootstrap")).collect();
    if !small.is_empty() {
        let cluster = if local {
            eprintln!("starting {} nodes", args.nodes);
            BenchCluster::start(args.nodes, 0, &args.node_args).await?
        } else {
            BenchCluster::target(&args.target).await?
        };
        for name in small {
            let run = async {
                match name {
                    "register" => scenarios::register(&cluster, &settings).await,
                    "query" => scenarios::query(&cluster, &settings).await,
                    "convergence" => scenarios::convergence(&cluster, &settings).await,
                    "push" => scenarios::push(&cluster, &settings).await,
                    "raft" => scenarios::raft(&cluster, &settings).await,
                    other => bail!("unknown scenario {other}"),
                }
            };
            timed(name, &mut results, &mut failed, run).await;
        }
    }
    let large: Vec<&str> = wanted.iter().copied().filter(|n| matches!(*n, "memory" | "bootstrap")).collect();
    if !large.is_empty() && !local {
        for name in large {
            results.push(json!({"name": name, "skipped": "needs nodes started by the benchmark (no --target)"}));
        }
    } else if !large.is_empty() {
        eprintln!("starting {} nodes for {} instances", args.nodes, settings.instances);
        let mut cluster = BenchCluster::start(args.nodes, 1, &args.node_args).await?;
        let baseline_kb: Vec<u64> =
            cluster.nodes.iter().map(|n| n.pid.and_then(rss_kb).map_or(0, |(rss, _)| rss)).collect();
        eprintln!("== loading {} instances (load average {})", settings.instances, load_average());
        let loaded = scenarios::load(&cluster, &settings).await?;
        eprintln!("   loaded: {}", loaded.figures);
        if large.contains(&"memory") {
            timed("memory", &mut results, &mut failed, scenarios::memory(&cluster, &settings, &baseline_kb, &loaded))
                .await;
        }
        if large.contains(&"bootstrap") {
            let run = scenarios::bootstrap(&mut cluster, &settings, &loaded);
            timed("bootstrap", &mut results, &mut failed, run).await;
        }
    }
    let document = json!({
        "tool": "roster-bench",
        "version": env!("CARGO_PKG_VERSION"),
        "date": roster_node::distro::rfc3339(std::time::SystemTime::now()),
        "command": std::env::args().collect::<Vec<_>>().join(" "),
        "machine": machine(),
        "cluster": if local {
            json!({"mode": "local", "nodes": args.nodes, "node_args": args.node_args})
        } else {
            json!({"mode": "target", "targets": args.target.iter().map(ToString::to_string).collect::<Vec<_>>()})
        },
        "scenarios": results,
    });
    println!("{}", report::table(document["scenarios"].as_array().map(Vec::as_slice).unwrap_or(&[])));
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
    // Dropping the run future (on a signal) drops the clusters, whose nodes
    // are killed by their handles.
    let ok = tokio::select! {
        r = run(args) => r?,
        _ = interrupt.recv() => bail!("interrupted; every node started was stopped"),
        _ = terminate.recv() => bail!("terminated; every node started was stopped"),
    };
    if !ok {
        bail!("some scenarios failed (see the table)");
    }
    Ok(())
}
