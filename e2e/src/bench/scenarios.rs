//! The named scenarios. Each returns a JSON object of figures; counts in
//! it say what was sent, acknowledged and seen, so a reader (and the smoke
//! test) can tell a fast run from a broken one.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use parking_lot::Mutex;
use serde_json::{json, Value};
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinSet;

use super::client::{self, fake_address, host_count, NacosClient, Push};
use super::cluster::{BenchCluster, Endpoint};
use super::stats::{per_second, round3, rss_kb, Latencies};
use crate::cluster::status;

/// Sizes and rates of every scenario.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `register`: instances registered (one `InstanceRequest` each).
    pub registrations: usize,
    /// `register`, `query`: client connections, each running one request at a time.
    pub connections: usize,
    /// `query`: how long each of the gRPC and HTTP phases runs.
    pub duration: Duration,
    /// `query`: services in the queried data set.
    pub query_services: usize,
    /// `query`: instances per queried service.
    pub query_hosts: usize,
    /// `convergence`, `push`: samples taken.
    pub samples: usize,
    /// `convergence`, `push`: samples in flight at once.
    pub sample_concurrency: usize,
    /// `convergence`: pause between two polls of the other nodes.
    pub poll_interval: Duration,
    /// `push`: subscriber connections (on the second node) per sample.
    pub subscribers: usize,
    /// `raft`: persistent instances written.
    pub raft_writes: usize,
    /// `raft`: writes in flight at once (one connection each).
    pub raft_concurrency: usize,
    /// `memory`, `bootstrap`: ephemeral instances loaded.
    pub instances: usize,
    /// `memory`, `bootstrap`: connections holding them.
    pub load_connections: usize,
    /// `memory`, `bootstrap`: instances per `BatchInstanceRequest`.
    pub batch: usize,
    /// `memory`, `bootstrap`: services the instances are spread over.
    pub services: usize,
    /// `memory`, `bootstrap`: batches in flight at once.
    pub load_concurrency: usize,
    /// `memory`: pause after loading before memory is read.
    pub settle: Duration,
}

/// Splits `total` into `parts` shares that differ by at most one.
fn shares(total: usize, parts: usize) -> Vec<usize> {
    (0..parts).map(|i| total / parts + usize::from(i < total % parts)).collect()
}

/// Opens `n` connections, the i-th to `nodes[i % len]`, a few dozen at a time.
async fn connect_many(
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

/// The instance count every node agrees on before a scenario.
async fn baseline(cluster: &BenchCluster) -> Result<u64> {
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
/// every node is back at `base`, so the next scenario starts clean.
async fn release(cluster: &BenchCluster, clients: Vec<Arc<NacosClient>>, base: u64) {
    drop(clients);
    let _ = cluster.wait_instances(base, Duration::from_secs(60)).await;
}

/// How long to wait for `n` instances to reach every node.
fn replication_limit(n: usize) -> Duration {
    Duration::from_secs(60).max(Duration::from_millis(n as u64 / 5))
}

/// The outcome of a replication wait, as JSON fields.
fn replication(result: Result<Duration>) -> Value {
    match result {
        Ok(d) => json!({"visible_on_every_node": true, "replicated_secs": round3(d.as_secs_f64())}),
        Err(e) => json!({"visible_on_every_node": false, "replication_error": format!("{e:#}")}),
    }
}

fn merge(into: &mut Value, more: Value) {
    if let (Value::Object(a), Value::Object(b)) = (into, more) {
        a.extend(b);
    }
}

/// What a worker did: latencies, successes, failures and the first error.
#[derive(Debug, Default)]
struct Tally {
    latency: Latencies,
    ok: u64,
    errors: u64,
    first_error: Option<String>,
}

impl Tally {
    fn fail(&mut self, e: impl std::fmt::Display) {
        self.errors += 1;
        if self.first_error.is_none() {
            self.first_error = Some(e.to_string());
        }
    }

    /// One call that began at `began` succeeded and accounted for `count`.
    fn succeed(&mut self, began: Instant, count: u64) {
        self.latency.record(began.elapsed());
        self.ok += count;
    }

    fn add(&mut self, other: Tally) {
        self.latency.merge(&other.latency);
        self.ok += other.ok;
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }
}

async fn join_tallies(mut set: JoinSet<Tally>) -> Result<Tally> {
    let mut total = Tally::default();
    while let Some(t) = set.join_next().await {
        total.add(t.context("worker task")?);
    }
    Ok(total)
}

/// `register`: `InstanceRequest`s from many connections spread over every
/// node; throughput, latency to the acknowledgement, then time until every
/// node holds them all.
pub async fn register(cluster: &BenchCluster, s: &Settings) -> Result<Value> {
    let base = baseline(cluster).await?;
    let clients = connect_many(&cluster.nodes, s.connections, None).await?;
    let mut set = JoinSet::new();
    let start = Instant::now();
    for (i, count) in shares(s.registrations, clients.len()).into_iter().enumerate() {
        let c = clients[i].clone();
        set.spawn(async move {
            let mut t = Tally::default();
            let (ip, port) = fake_address(i, 0);
            for k in 0..count {
                let began = Instant::now();
                match c.call("InstanceRequest", client::register(&format!("bench-reg-{k}"), &ip, port)).await {
                    Ok(_) => t.succeed(began, 1),
                    Err(e) => t.fail(format!("{e:#}")),
                }
            }
            t
        });
    }
    let t = join_tallies(set).await?;
    let elapsed = start.elapsed();
    let replicated = cluster.wait_instances(base + t.ok, replication_limit(s.registrations)).await;
    let mut out = json!({
        "connections": clients.len(), "nodes": cluster.nodes.len(),
        "sent": s.registrations, "acknowledged": t.ok, "errors": t.errors, "first_error": t.first_error,
        "elapsed_secs": round3(elapsed.as_secs_f64()),
        "throughput_per_sec": per_second(t.ok, elapsed),
        "latency": t.latency.summary(),
    });
    merge(&mut out, replication(replicated));
    release(cluster, clients, base).await;
    Ok(out)
}

/// `query`: `ServiceQueryRequest` (gRPC) and `GET /nacos/v1/ns/instance/list`
/// (HTTP) of random services of a fixed data set, from many connections on
/// every node; every answer's host count is checked.
pub async fn query(cluster: &BenchCluster, s: &Settings) -> Result<Value> {
    let base = baseline(cluster).await?;
    // The data set: `query_hosts` publishers, each with one instance in every service.
    let publishers = connect_many(&cluster.nodes, s.query_hosts, None).await?;
    for (i, p) in publishers.iter().enumerate() {
        let (ip, port) = fake_address(i, 0);
        for svc in 0..s.query_services {
            p.call("InstanceRequest", client::register(&format!("bench-query-{svc}"), &ip, port)).await?;
        }
    }
    let loaded = (s.query_hosts * s.query_services) as u64;
    cluster.wait_instances(base + loaded, replication_limit(loaded as usize)).await?;
    let hosts = s.query_hosts;
    let services = s.query_services;

    // gRPC.
    let clients = connect_many(&cluster.nodes, s.connections, None).await?;
    let mut set = JoinSet::new();
    let start = Instant::now();
    let deadline = start + s.duration;
    for c in &clients {
        let c = c.clone();
        set.spawn(async move {
            let mut t = Tally::default();
            while Instant::now() < deadline {
                let svc = fastrand::usize(..services);
                let began = Instant::now();
                match c.call("ServiceQueryRequest", client::query(&format!("bench-query-{svc}"))).await {
                    Ok(answer) if host_count(&answer) == hosts => t.succeed(began, 1),
                    Ok(answer) => t.fail(format!("{} hosts instead of {hosts}", host_count(&answer))),
                    Err(e) => t.fail(format!("{e:#}")),
                }
            }
            t
        });
    }
    let grpc = join_tallies(set).await?;
    let grpc_elapsed = start.elapsed();
    drop(clients);

    // HTTP: each worker its own client from its own loopback address, as
    // many clients would be (the nodes limit the request rate per client IP).
    let mut set = JoinSet::new();
    let start = Instant::now();
    let deadline = start + s.duration;
    for i in 0..s.connections {
        let local = std::net::Ipv4Addr::new(127, 99, (i / 250 % 250) as u8, (i % 250) as u8 + 1);
        let http = reqwest::Client::builder()
            .timeout(client::REQUEST_TIMEOUT)
            .local_address(std::net::IpAddr::V4(local))
            .build()?;
        let url = format!("http://{}/nacos/v1/ns/instance/list", cluster.nodes[i % cluster.nodes.len()].http);
        set.spawn(async move {
            let mut t = Tally::default();
            while Instant::now() < deadline {
                let svc = format!("bench-query-{}", fastrand::usize(..services));
                let began = Instant::now();
                let answer = async {
                    let r = http.get(&url).query(&[("serviceName", svc.as_str())]).send().await?;
                    let status = r.status();
                    let v: Value = r.json().await?;
                    anyhow::Ok((status, v))
                }
                .await;
                match answer {
                    Ok((status, v)) if status.is_success() && v["hosts"].as_array().map_or(0, Vec::len) == hosts => {
                        t.succeed(began, 1)
                    }
                    Ok((status, v)) => t.fail(format!("HTTP {status}, {} hosts instead of {hosts}", v["hosts"])),
                    Err(e) => t.fail(format!("{e:#}")),
                }
            }
            t
        });
    }
    let over_http = join_tallies(set).await?;
    let http_elapsed = start.elapsed();
    let phase = |t: &Tally, elapsed: Duration| {
        json!({
            "queries": t.ok, "errors": t.errors, "first_error": t.first_error,
            "elapsed_secs": round3(elapsed.as_secs_f64()),
            "throughput_per_sec": per_second(t.ok, elapsed), "latency": t.latency.summary(),
        })
    };
    let out = json!({
        "connections": s.connections, "nodes": cluster.nodes.len(),
        "services": services, "hosts_per_service": hosts,
        "grpc": phase(&grpc, grpc_elapsed), "http": phase(&over_http, http_elapsed),
    });
    release(cluster, publishers, base).await;
    Ok(out)
}

/// `convergence`: register on the first node; from its acknowledgement,
/// poll every other node with `ServiceQueryRequest` until the instance is
/// visible there. One sample is the time until it is visible on all.
pub async fn convergence(cluster: &BenchCluster, s: &Settings) -> Result<Value> {
    if cluster.nodes.len() < 2 {
        bail!("convergence needs at least two nodes");
    }
    let base = baseline(cluster).await?;
    let writers = connect_many(&cluster.nodes[..1], s.sample_concurrency, None).await?;
    // Each sampler polls over its own connections (one per other node), so
    // no connection carries more than one poll per interval (the nodes
    // limit each connection's request rate).
    let others = cluster.nodes.len() - 1;
    let observers = connect_many(&cluster.nodes[1..], others * writers.len(), None).await?;
    let mut set = JoinSet::new();
    let workers = writers.len();
    let poll = s.poll_interval;
    let samples = s.samples;
    for (w, writer) in writers.iter().enumerate() {
        let writer = writer.clone();
        let observers: Vec<Arc<NacosClient>> = observers[w * others..(w + 1) * others].to_vec();
        set.spawn(async move {
            let mut all = Tally::default();
            let mut first = Latencies::new();
            for j in (w..samples).step_by(workers) {
                let service = format!("bench-conv-{j}");
                let (ip, port) = fake_address(w, j);
                if let Err(e) = writer.call("InstanceRequest", client::register(&service, &ip, port)).await {
                    all.fail(format!("{e:#}"));
                    continue;
                }
                let acked = Instant::now();
                let mut waiting: Vec<usize> = (0..observers.len()).collect();
                let mut seen_first = false;
                while !waiting.is_empty() && acked.elapsed() < Duration::from_secs(30) {
                    let mut still = Vec::new();
                    for o in waiting {
                        match observers[o].call("ServiceQueryRequest", client::query(&service)).await {
                            Ok(answer) if host_count(&answer) > 0 => {
                                if !seen_first {
                                    first.record(acked.elapsed());
                                    seen_first = true;
                                }
                            }
                            _ => still.push(o),
                        }
                    }
                    waiting = still;
                    if !waiting.is_empty() {
                        tokio::time::sleep(poll).await;
                    }
                }
                if waiting.is_empty() {
                    all.latency.record(acked.elapsed());
                    all.ok += 1;
                } else {
                    all.fail(format!("{service} not visible on {} node(s) after 30 s", waiting.len()));
                }
            }
            (all, first)
        });
    }
    let mut all = Tally::default();
    let mut first = Latencies::new();
    while let Some(joined) = set.join_next().await {
        let (a, f) = joined.context("sampler task")?;
        all.add(a);
        first.merge(&f);
    }
    let out = json!({
        "nodes": cluster.nodes.len(), "samples": samples, "converged": all.ok, "errors": all.errors,
        "first_error": all.first_error, "sample_concurrency": workers, "poll_interval_ms": poll.as_millis() as u64,
        "visible_on_all": all.latency.summary(), "visible_on_first_other": first.summary(),
    });
    let mut clients = writers;
    clients.extend(observers);
    release(cluster, clients, base).await;
    Ok(out)
}

/// `push`: subscribers connected to the second node, a registration
/// acknowledged by the first; time from the acknowledgement until each
/// subscriber's `NotifySubscriberRequest` showing the new instance arrives.
pub async fn push(cluster: &BenchCluster, s: &Settings) -> Result<Value> {
    if cluster.nodes.len() < 2 {
        bail!("push needs at least two nodes");
    }
    let base = baseline(cluster).await?;
    type Waiters = Arc<Mutex<HashMap<String, mpsc::UnboundedSender<Push>>>>;
    let waiters: Waiters = Arc::default();
    let (push_tx, mut push_rx) = mpsc::unbounded_channel::<Push>();
    let router = {
        let waiters = waiters.clone();
        tokio::spawn(async move {
            while let Some(p) = push_rx.recv().await {
                if let Some(w) = waiters.lock().get(&p.service) {
                    let _ = w.send(p);
                }
            }
        })
    };
    let subscribers = Arc::new(connect_many(&cluster.nodes[1..2], s.subscribers, Some(push_tx)).await?);
    let publishers = connect_many(&cluster.nodes[..1], s.sample_concurrency, None).await?;
    let mut set = JoinSet::new();
    let workers = publishers.len();
    let samples = s.samples;
    for (w, publisher) in publishers.iter().enumerate() {
        let publisher = publisher.clone();
        let subscribers = subscribers.clone();
        let waiters = waiters.clone();
        set.spawn(async move {
            let mut t = Tally::default();
            let mut before_ack = 0u64;
            for j in (w..samples).step_by(workers) {
                let service = format!("bench-push-{j}");
                let (tx, mut rx) = mpsc::unbounded_channel();
                waiters.lock().insert(service.clone(), tx);
                let mut subscribed = true;
                for sub in subscribers.iter() {
                    if let Err(e) = sub.call("SubscribeServiceRequest", client::subscribe(&service)).await {
                        t.fail(format!("{e:#}"));
                        subscribed = false;
                    }
                }
                let (ip, port) = fake_address(w, j);
                let sent = Instant::now();
                if !subscribed {
                    waiters.lock().remove(&service);
                    continue;
                }
                if let Err(e) = publisher.call("InstanceRequest", client::register(&service, &ip, port)).await {
                    t.fail(format!("{e:#}"));
                    waiters.lock().remove(&service);
                    continue;
                }
                let acked = Instant::now();
                let wanted = format!("{ip}:{port}");
                let mut pending: HashSet<usize> = (0..subscribers.len()).collect();
                let deadline = tokio::time::Instant::from_std(acked + Duration::from_secs(30));
                while !pending.is_empty() {
                    let Ok(Some(p)) = tokio::time::timeout_at(deadline, rx.recv()).await else { break };
                    if p.hosts.contains(&wanted) && pending.remove(&p.client) {
                        if p.at < acked {
                            before_ack += 1;
                        }
                        // A push that beat the acknowledgement counts from the send.
                        let from = if p.at < acked { sent } else { acked };
                        t.latency.record(p.at.saturating_duration_since(from));
                        t.ok += 1;
                    }
                }
                if !pending.is_empty() {
                    t.fail(format!("{} subscriber(s) got no push for {service} within 30 s", pending.len()));
                }
                waiters.lock().remove(&service);
            }
            (t, before_ack)
        });
    }
    let mut t = Tally::default();
    let mut before_ack = 0;
    while let Some(joined) = set.join_next().await {
        let (x, b) = joined.context("push sampler")?;
        t.add(x);
        before_ack += b;
    }
    router.abort();
    let out = json!({
        "nodes": cluster.nodes.len(), "samples": samples, "subscribers_per_sample": subscribers.len(),
        "pushes_expected": samples * subscribers.len(), "pushes_received": t.ok, "errors": t.errors,
        "first_error": t.first_error, "pushes_before_ack": before_ack, "latency": t.latency.summary(),
    });
    let mut clients = publishers;
    clients.extend(subscribers.iter().cloned());
    drop(subscribers);
    release(cluster, clients, base).await;
    Ok(out)
}

/// `raft`: `PersistentInstanceRequest`s from connections spread over every
/// node (followers forward to the leader); each is acknowledged once
/// committed (fsync'd on a majority). Then the time until every node has
/// applied them all.
pub async fn raft(cluster: &BenchCluster, s: &Settings) -> Result<Value> {
    let base = baseline(cluster).await?;
    let leader = match status(cluster.nodes[0].http).await {
        Some(st) => st["raft"]["leader"].clone(),
        None => Value::Null,
    };
    let clients = connect_many(&cluster.nodes, s.raft_concurrency, None).await?;
    let mut set = JoinSet::new();
    let start = Instant::now();
    for (w, count) in shares(s.raft_writes, clients.len()).into_iter().enumerate() {
        let c = clients[w].clone();
        set.spawn(async move {
            let mut t = Tally::default();
            for k in 0..count {
                // A client index far from the ephemeral scenarios' keeps the addresses apart.
                let (ip, port) = fake_address(60_000 + w, k);
                let began = Instant::now();
                let body = client::register_persistent(&format!("bench-raft-{}", w % 8), &ip, port);
                match c.call("PersistentInstanceRequest", body).await {
                    Ok(_) => t.succeed(began, 1),
                    Err(e) => t.fail(format!("{e:#}")),
                }
            }
            t
        });
    }
    let t = join_tallies(set).await?;
    let elapsed = start.elapsed();
    let replicated = cluster.wait_instances(base + t.ok, replication_limit(s.raft_writes)).await;
    let mut out = json!({
        "connections": clients.len(), "nodes": cluster.nodes.len(), "leader": leader,
        "sent": s.raft_writes, "acknowledged": t.ok, "errors": t.errors, "first_error": t.first_error,
        "elapsed_secs": round3(elapsed.as_secs_f64()),
        "throughput_per_sec": per_second(t.ok, elapsed), "latency": t.latency.summary(),
    });
    merge(&mut out, replication(replicated));
    // Persistent instances stay (they belong to no connection).
    drop(clients);
    Ok(out)
}

/// A large data set held by live connections, loaded for `memory` and
/// `bootstrap`.
pub struct Loaded {
    /// The connections owning the instances (dropping them removes them).
    pub clients: Vec<Arc<NacosClient>>,
    /// Figures of the load itself.
    pub figures: Value,
}

/// Loads `s.instances` ephemeral instances: `load_connections`
/// connections spread over the nodes, each publishing its share in
/// `BatchInstanceRequest`s of `batch` instances, one per service.
pub async fn load(cluster: &BenchCluster, s: &Settings) -> Result<Loaded> {
    let per_connection = s.instances.div_ceil(s.load_connections.max(1));
    let batches_per_connection = per_connection.div_ceil(s.batch.max(1));
    if batches_per_connection > s.services {
        bail!(
            "{} instances over {} connections in batches of {} need {} services per connection, but --services is {}",
            s.instances,
            s.load_connections,
            s.batch,
            batches_per_connection,
            s.services
        );
    }
    if per_connection >= 65_534 {
        bail!("at most 65533 instances per connection (raise --load-connections)");
    }
    let base = baseline(cluster).await?;
    let connect_start = Instant::now();
    let clients = connect_many(&cluster.nodes, s.load_connections, None).await?;
    let connect_secs = connect_start.elapsed().as_secs_f64();
    let gate = Arc::new(Semaphore::new(s.load_concurrency.max(1)));
    let mut set = JoinSet::new();
    let start = Instant::now();
    let batch = s.batch.max(1);
    let services = s.services;
    for (c, count) in shares(s.instances, clients.len()).into_iter().enumerate() {
        let client = clients[c].clone();
        let gate = gate.clone();
        set.spawn(async move {
            let mut t = Tally::default();
            let n_batches = count.div_ceil(batch);
            for b in 0..n_batches {
                let service = format!("bench-load-{}", (c * n_batches + b) % services);
                let instances: Vec<Value> = (b * batch..count.min((b + 1) * batch))
                    .map(|n| {
                        let (ip, port) = fake_address(c, n);
                        client::instance(&ip, port, true)
                    })
                    .collect();
                let sent = instances.len() as u64;
                let Ok(_permit) = gate.acquire().await else { break };
                let began = Instant::now();
                match client.call("BatchInstanceRequest", client::batch_register(&service, instances)).await {
                    Ok(_) => t.succeed(began, sent),
                    Err(e) => t.fail(format!("{e:#}")),
                }
            }
            t
        });
    }
    let t = join_tallies(set).await?;
    let elapsed = start.elapsed();
    let replicated = cluster.wait_instances(base + t.ok, replication_limit(s.instances)).await;
    let mut figures = json!({
        "instances": s.instances, "acknowledged": t.ok, "errors": t.errors, "first_error": t.first_error,
        "connections": clients.len(), "batch": batch, "services": services,
        "connect_secs": round3(connect_secs),
        "elapsed_secs": round3(elapsed.as_secs_f64()),
        "instances_per_sec": per_second(t.ok, elapsed), "batch_latency": t.latency.summary(),
    });
    merge(&mut figures, replication(replicated));
    Ok(Loaded { clients, figures })
}

fn mib(kb: u64) -> f64 {
    round3(kb as f64 / 1024.0)
}

/// Resident memory of every local node, as JSON, against `baseline_kb`.
fn memory_figures(cluster: &BenchCluster, baseline_kb: &[u64], instances: usize) -> Value {
    let mut nodes = Vec::new();
    let mut per_instance = Vec::new();
    for (i, node) in cluster.nodes.iter().enumerate() {
        let Some((rss, hwm)) = node.pid.and_then(rss_kb) else { continue };
        let base = baseline_kb.get(i).copied().unwrap_or(0);
        let bytes = (rss.saturating_sub(base) * 1024) as f64 / instances.max(1) as f64;
        per_instance.push(bytes);
        nodes.push(json!({
            "member": node.http.to_string(), "baseline_rss_mib": mib(base), "rss_mib": mib(rss),
            "hwm_mib": mib(hwm), "bytes_per_instance": bytes.round(),
        }));
    }
    let mean = per_instance.iter().sum::<f64>() / per_instance.len().max(1) as f64;
    json!({"nodes": nodes, "mean_bytes_per_instance": mean.round()})
}

/// `memory`: resident memory of each node before and after loading, and the
/// difference per instance.
pub async fn memory(cluster: &BenchCluster, s: &Settings, baseline_kb: &[u64], loaded: &Loaded) -> Result<Value> {
    if !cluster.is_local() {
        bail!("memory is read from /proc and needs nodes started by the benchmark");
    }
    tokio::time::sleep(s.settle).await;
    let mut out = json!({"instances": s.instances, "settle_secs": s.settle.as_secs_f64(), "load": loaded.figures});
    merge(&mut out, memory_figures(cluster, baseline_kb, s.instances));
    Ok(out)
}

/// `bootstrap`: with the data set loaded, a new node is listed and started;
/// times from its start until it serves, until its status shows the Distro
/// snapshot loaded, and until it holds every instance.
pub async fn bootstrap(cluster: &mut BenchCluster, s: &Settings, loaded: &Loaded) -> Result<Value> {
    let expected = cluster.instance_counts().await.first().copied().flatten().context("no instance count")?;
    let (node, spawned) = cluster.add_node().await?;
    let serving = spawned.elapsed();
    let limit = Duration::from_secs(120).max(Duration::from_millis(s.instances as u64 / 2));
    let mut snapshot_loaded = None;
    let mut all = None;
    let mut last = Value::Null;
    while spawned.elapsed() < limit && (all.is_none() || snapshot_loaded.is_none()) {
        if let Some(st) = status(node.http).await {
            if snapshot_loaded.is_none() && st["distro"]["initialized"] == Value::Bool(true) {
                snapshot_loaded = Some(spawned.elapsed());
            }
            if all.is_none() && st["store"]["instances"].as_u64() == Some(expected) {
                all = Some(spawned.elapsed());
            }
            last = st;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let secs = |d: Option<Duration>| d.map(|d| round3(d.as_secs_f64()));
    let rss = node.pid.and_then(rss_kb);
    let mut out = json!({
        "instances": expected, "loaded_by": loaded.clients.len(),
        "serving_secs": round3(serving.as_secs_f64()),
        "snapshot_loaded_secs": secs(snapshot_loaded), "all_instances_secs": secs(all),
        "complete": all.is_some(),
        "snapshot_source": last["distro"]["snapshotSource"], "instances_seen": last["store"]["instances"],
        "new_node_rss_mib": rss.map(|(r, _)| mib(r)), "new_node_hwm_mib": rss.map(|(_, h)| mib(h)),
    });
    if all.is_none() {
        merge(&mut out, json!({"error": format!("the new node did not hold {expected} instances within {limit:?}")}));
    }
    Ok(out)
}
