//! The latency steps at light load: `convergence` (a registration
//! acknowledged by the first node, polled for on the others) and `push`
//! (its `NotifySubscriberRequest` at subscribers on the second node).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use parking_lot::Mutex;
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::{baseline, connect_many, release, Settings, Tally};
use crate::bench::client::{self, fake_address, host_count, NacosClient, Push};
use crate::bench::cluster::BenchCluster;
use crate::bench::stats::Latencies;

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
