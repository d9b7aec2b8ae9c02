//! The steps of the method, each against one [`BenchCluster`] (Roster or
//! r-nacos; etcd's persistent writes are in [`super::etcd`]). Each returns a
//! JSON object of figures; counts in it say what was sent, acknowledged,
//! refused and seen, so a reader (and the smoke test) can tell a fast run
//! from a broken one. Errors are counted per step and never retried: a
//! server that refuses the load shows it.
//!
//! # Layout
//! - this file: [`Settings`], the worker driver ([`drive`]) and what the
//!   steps share.
//! - [`naming`]: gRPC and HTTP registration, gRPC and HTTP queries,
//!   persistent writes.
//! - [`latency`]: convergence (A → B and C) and push to a subscriber on B.
//! - [`large`]: the large data set behind `memory` and `bootstrap`.

pub mod large;
pub mod latency;
pub mod naming;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinSet;

use super::client::{NacosClient, Push};
use super::cluster::{BenchCluster, Endpoint};
use super::stats::{round3, Latencies};

/// Sizes and rates of every step.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Operations per throughput step (registrations, queries, writes).
    pub operations: usize,
    /// Concurrent workers of a throughput step, each one request at a time.
    pub workers: usize,
    /// gRPC connections (and HTTP clients) the workers share.
    pub connections: usize,
    /// Services of the query data set, the registrations and the large load.
    pub services: usize,
    /// Instances per queried service.
    pub query_hosts: usize,
    /// `convergence`, `push`: samples taken.
    pub samples: usize,
    /// `convergence`, `push`: samples in flight at once.
    pub sample_concurrency: usize,
    /// `convergence`: pause between two polls of the other nodes.
    pub poll_interval: Duration,
    /// `push`: subscriber connections (on the second node) per sample.
    pub subscribers: usize,
    /// `persistent` against etcd: bytes of each value.
    pub value_bytes: usize,
    /// `memory`, `bootstrap`: ephemeral instances loaded.
    pub instances: usize,
    /// `memory`, `bootstrap`: connections holding them.
    pub load_connections: usize,
    /// `memory`, `bootstrap`: instances per `BatchInstanceRequest`.
    pub batch: usize,
    /// `memory`, `bootstrap`: batches in flight at once.
    pub load_concurrency: usize,
    /// `memory`: pause after loading before memory is read.
    pub settle: Duration,
}

/// Splits `total` into `parts` shares that differ by at most one.
pub(crate) fn shares(total: usize, parts: usize) -> Vec<usize> {
    (0..parts).map(|i| total / parts + usize::from(i < total % parts)).collect()
}

/// Opens `n` connections, the i-th to `nodes[i % len]`, a few dozen at a time.
pub(crate) async fn connect_many(
    nodes: &[Endpoint],
    n: usize,
    pushes: Option<mpsc::UnboundedSender<Push>>,
) -> Result<Vec<Arc<NacosClient>>> {
    let mut out: Vec<Option<Arc<NacosClient>>> = (0..n).map(|_| None).collect();
    let gate = Arc::new(Semaphore::new(32));
    let mut set = JoinSet::new();
    for i in 0..n {
        let grpc = nodes[i % nodes.len()].grpc;
        let pushes = pushes.clone();
        let gate = gate.clone();
        set.spawn(async move {
            let _permit = gate.acquire_owned().await;
            (i, NacosClient::connect(grpc, i, pushes).await)
        });
    }
    while let Some(joined) = set.join_next().await {
        let (i, client) = joined.context("connect task")?;
        out[i] = Some(Arc::new(client.with_context(|| format!("connection {i}"))?));
    }
    Ok(out.into_iter().flatten().collect())
}

/// A set-up request (loading a data set, not measured): retried for a while
/// when refused, so a server's rate limit slows the set-up without
/// failing it. The measured steps never retry.
pub(crate) async fn setup_call(client: &NacosClient, type_name: &str, body: Value) -> Result<Value> {
    let mut attempt = 0;
    loop {
        match client.call(type_name, body.clone()).await {
            Ok(v) => return Ok(v),
            Err(e) if attempt >= 50 => return Err(e.context(format!("{type_name} refused 50 times in set-up"))),
            Err(_) => attempt += 1,
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The instance count every node agrees on before a step.
pub(crate) async fn baseline(cluster: &BenchCluster) -> Result<u64> {
    let start = Instant::now();
    loop {
        let counts = cluster.instance_counts().await;
        if let Some(Some(first)) = counts.first() {
            if counts.iter().all(|c| *c == Some(*first)) {
                return Ok(*first);
            }
        }
        if start.elapsed() > Duration::from_secs(60) {
            bail!("the nodes do not agree on an instance count: {counts:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Drops `clients` (their instances go with them) and waits, bounded, until
/// every node is back at `base`, so the next step starts clean.
pub(crate) async fn release<T>(cluster: &BenchCluster, clients: T, base: u64) {
    drop(clients);
    let _ = cluster.wait_instances(base, Duration::from_secs(60)).await;
}

/// How long to wait for `n` instances to reach every node.
pub(crate) fn replication_limit(n: usize) -> Duration {
    Duration::from_secs(60).max(Duration::from_millis(n as u64 / 5))
}

/// The outcome of a replication wait, as JSON fields.
pub(crate) fn replication(result: Result<Duration>) -> Value {
    match result {
        Ok(d) => json!({"visible_on_every_node": true, "replicated_secs": round3(d.as_secs_f64())}),
        Err(e) => json!({"visible_on_every_node": false, "replication_error": format!("{e:#}")}),
    }
}

/// Adds the fields of `more` to the object `into`.
pub(crate) fn merge(into: &mut Value, more: Value) {
    if let (Value::Object(a), Value::Object(b)) = (into, more) {
        a.extend(b);
    }
}

/// What workers did: latencies, successes, failures by kind and the first error.
#[derive(Debug, Default)]
pub struct Tally {
    /// Latency of each successful call.
    pub latency: Latencies,
    /// Successful operations.
    pub ok: u64,
    /// Failed operations.
    pub errors: u64,
    /// The first failure's message.
    pub first_error: Option<String>,
    /// Failures counted by the start of their message (numbers blanked), so
    /// a rate limit's refusals and timeouts show apart.
    pub kinds: BTreeMap<String, u64>,
}

impl Tally {
    /// Counts one failure.
    pub fn fail(&mut self, e: impl std::fmt::Display) {
        let text = e.to_string();
        self.errors += 1;
        let kind: String = text.chars().take(90).map(|c| if c.is_ascii_digit() { '#' } else { c }).collect::<String>();
        *self.kinds.entry(kind).or_default() += 1;
        if self.first_error.is_none() {
            self.first_error = Some(text);
        }
    }

    /// One call that began at `began` succeeded and accounted for `count`.
    pub fn succeed(&mut self, began: Instant, count: u64) {
        self.latency.record(began.elapsed());
        self.ok += count;
    }

    /// Adds another tally.
    pub fn add(&mut self, other: Tally) {
        self.latency.merge(&other.latency);
        self.ok += other.ok;
        self.errors += other.errors;
        for (k, n) in other.kinds {
            *self.kinds.entry(k).or_default() += n;
        }
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }

    /// `{errors, first_error, error_kinds}`.
    pub fn errors_json(&self) -> Value {
        json!({"errors": self.errors, "first_error": self.first_error, "error_kinds": self.kinds})
    }
}

/// Joins worker tasks and adds up their tallies.
pub(crate) async fn join_tallies(mut set: JoinSet<Tally>) -> Result<Tally> {
    let mut total = Tally::default();
    while let Some(t) = set.join_next().await {
        total.add(t.context("worker task")?);
    }
    Ok(total)
}

/// Runs `ops` operations on `workers` concurrent workers, each doing one at
/// a time: worker `w` does operations `n = w, w + workers, ...` by calling
/// `op(w, n)`. Returns the tally and the wall time of the whole run.
pub async fn drive<F, Fut>(ops: usize, workers: usize, op: F) -> Result<(Tally, Duration)>
where
    F: Fn(usize, usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<()>> + Send + 'static,
{
    let workers = workers.max(1);
    let op = Arc::new(op);
    let mut set = JoinSet::new();
    let start = Instant::now();
    for w in 0..workers.min(ops) {
        let op = op.clone();
        set.spawn(async move {
            let mut t = Tally::default();
            for n in (w..ops).step_by(workers) {
                let began = Instant::now();
                match op(w, n).await {
                    Ok(()) => t.succeed(began, 1),
                    Err(e) => t.fail(format!("{e:#}")),
                }
            }
            t
        });
    }
    let t = join_tallies(set).await?;
    Ok((t, start.elapsed()))
}

/// The figures of a throughput step: counts, errors, rate and latency.
pub(crate) fn throughput(t: &Tally, sent: usize, elapsed: Duration) -> Value {
    let mut out = json!({
        "sent": sent, "acknowledged": t.ok,
        "elapsed_secs": round3(elapsed.as_secs_f64()),
        "throughput_per_sec": super::stats::per_second(t.ok, elapsed),
        "latency": t.latency.summary(),
    });
    merge(&mut out, t.errors_json());
    out
}
