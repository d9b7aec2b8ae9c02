//! The large data set (`instances` ephemeral instances held by
//! `load_connections` connections, loaded in `BatchInstanceRequest`s) and
//! the two steps measured on it: `memory` (resident memory of every member
//! after the load settles, and its peak) and `bootstrap` (a new member
//! until it holds every instance).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::{baseline, connect_many, join_tallies, merge, replication, replication_limit, shares, Settings, Tally};
use crate::bench::client::{self, fake_address, NacosClient};
use crate::bench::cluster::{BenchCluster, Flavor};
use crate::bench::stats::{per_second, round3, rss_kb};
use crate::cluster::status;

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

/// Resident memory of every local node, as JSON, against `baseline_kb`:
/// settled (`VmRSS`) and peak (`VmHWM`) bytes per instance the node holds
/// (`held`, the intended count where a node did not answer), each node's
/// and the largest over the nodes (the figure compared).
fn memory_figures(cluster: &BenchCluster, baseline_kb: &[u64], held: &[Option<u64>], instances: usize) -> Value {
    let mut nodes = Vec::new();
    let (mut settled, mut peak) = (Vec::new(), Vec::new());
    for (i, node) in cluster.nodes.iter().enumerate() {
        let Some((rss, hwm)) = node.pid.and_then(rss_kb) else { continue };
        let base = baseline_kb.get(i).copied().unwrap_or(0);
        let count = held.get(i).copied().flatten().unwrap_or(instances as u64);
        let per = |kb: u64, base: u64| (kb.saturating_sub(base) * 1024) as f64 / count.max(1) as f64;
        settled.push(per(rss, base));
        peak.push(per(hwm, base));
        nodes.push(json!({
            "member": node.http.to_string(), "instances_held": count, "baseline_rss_mib": mib(base), "rss_mib": mib(rss),
            "hwm_mib": mib(hwm), "bytes_per_instance": per(rss, base).round(),
            "peak_bytes_per_instance": per(hwm, base).round(),
        }));
    }
    let max = |v: &[f64]| v.iter().copied().fold(0.0, f64::max).round();
    let mean = settled.iter().sum::<f64>() / settled.len().max(1) as f64;
    json!({
        "nodes": nodes, "mean_bytes_per_instance": mean.round(),
        "max_bytes_per_instance": max(&settled), "max_peak_bytes_per_instance": max(&peak),
    })
}

/// `memory`: resident memory of each node before and after loading, and the
/// difference per instance.
pub async fn memory(cluster: &BenchCluster, s: &Settings, baseline_kb: &[u64], loaded: &Loaded) -> Result<Value> {
    if !cluster.is_local() {
        bail!("memory is read from /proc and needs nodes started by the benchmark");
    }
    tokio::time::sleep(s.settle).await;
    let mut out = json!({"instances": s.instances, "settle_secs": s.settle.as_secs_f64(), "load": loaded.figures});
    let held = cluster.instance_counts().await;
    merge(&mut out, memory_figures(cluster, baseline_kb, &held, s.instances));
    Ok(out)
}

/// `bootstrap`: with the data set loaded, a new node is listed and started;
/// times from its start until it serves, until (Roster) its status shows
/// the Distro snapshot loaded, and until it holds every instance.
pub async fn bootstrap(cluster: &mut BenchCluster, s: &Settings, loaded: &Loaded) -> Result<Value> {
    let expected = cluster.instance_counts().await.first().copied().flatten().context("no instance count")?;
    let (node, spawned) = cluster.add_node().await?;
    let serving = spawned.elapsed();
    let limit = Duration::from_secs(120).max(Duration::from_millis(s.instances as u64 / 2));
    let roster = cluster.flavor == Flavor::Roster;
    // r-nacos is counted from its whole service list: polled less often.
    let poll = Duration::from_millis(if roster { 20 } else { 100 });
    let (mut snapshot_loaded, mut all) = (None, None);
    let (mut last, mut seen) = (Value::Null, None);
    while spawned.elapsed() < limit && (all.is_none() || (roster && snapshot_loaded.is_none())) {
        if roster {
            if let Some(st) = status(node.http).await {
                if snapshot_loaded.is_none() && st["distro"]["initialized"] == Value::Bool(true) {
                    snapshot_loaded = Some(spawned.elapsed());
                }
                seen = st["store"]["instances"].as_u64();
                last = st;
            }
        } else {
            seen = cluster.instance_count(node.http).await.or(seen);
        }
        if all.is_none() && seen == Some(expected) {
            all = Some(spawned.elapsed());
        }
        tokio::time::sleep(poll).await;
    }
    let secs = |d: Option<Duration>| d.map(|d| round3(d.as_secs_f64()));
    let rss = node.pid.and_then(rss_kb);
    let mut out = json!({
        "instances": expected, "loaded_by": loaded.clients.len(),
        "serving_secs": round3(serving.as_secs_f64()),
        "snapshot_loaded_secs": secs(snapshot_loaded), "all_instances_secs": secs(all),
        "complete": all.is_some(),
        "snapshot_source": last["distro"]["snapshotSource"], "instances_seen": seen,
        "new_node_rss_mib": rss.map(|(r, _)| mib(r)), "new_node_hwm_mib": rss.map(|(_, h)| mib(h)),
    });
    if all.is_none() {
        merge(&mut out, json!({"error": format!("the new node did not hold {expected} instances within {limit:?}")}));
    }
    Ok(out)
}
