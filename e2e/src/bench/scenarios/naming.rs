//! The throughput steps: gRPC `InstanceRequest` registrations, gRPC
//! `ServiceQueryRequest` and HTTP `GET /nacos/v1/ns/instance/list` queries
//! of a fixed data set, HTTP ephemeral registrations and HTTP persistent
//! (`ephemeral=false`) registrations. Each is `operations` requests from
//! `workers` workers sharing `connections` gRPC connections (HTTP: as many
//! clients, all from one source address, as a gateway would send them).

use std::sync::Arc;

use anyhow::{bail, Result};
use serde_json::{json, Value};
use tokio::task::JoinSet;

use super::{
    baseline, connect_many, drive, merge, release, replication, replication_limit, setup_call, throughput, Settings,
};
use crate::bench::client::{self, fake_address, host_count, REQUEST_TIMEOUT};
use crate::bench::cluster::BenchCluster;

/// Instances registered by one publisher of the query data set, at most:
/// below Roster's default per-connection burst, so loading the data set is
/// not refused.
const PER_PUBLISHER: usize = 100;

/// `grpc-register`: operation `n` registers one instance with
/// `InstanceRequest` on connection `n % connections`, in a service of its
/// own on that connection (a connection holds one instance per service);
/// then the time until every node holds them all.
pub async fn grpc_register(cluster: &BenchCluster, s: &Settings) -> Result<Value> {
    let base = baseline(cluster).await?;
    let clients = Arc::new(connect_many(&cluster.nodes, s.connections, None).await?);
    let shared = clients.clone();
    let (t, elapsed) = drive(s.operations, s.workers, move |_, n| {
        let clients = shared.clone();
        async move {
            let c = n % clients.len();
            let (ip, port) = fake_address(c, 0);
            let body = client::register(&format!("bench-reg-{}", n / clients.len()), &ip, port);
            clients[c].call("InstanceRequest", body).await.map(|_| ())
        }
    })
    .await?;
    let replicated = cluster.wait_instances(base + t.ok, replication_limit(s.operations)).await;
    let mut out = json!({"connections": clients.len(), "workers": s.workers, "nodes": cluster.nodes.len()});
    merge(&mut out, throughput(&t, s.operations, elapsed));
    merge(&mut out, replication(replicated));
    release(cluster, clients, base).await;
    Ok(out)
}

/// HTTP clients for the HTTP steps.
fn http_clients(n: usize) -> Result<Arc<Vec<reqwest::Client>>> {
    let clients = (0..n.max(1)).map(|_| reqwest::Client::builder().timeout(REQUEST_TIMEOUT).build());
    Ok(Arc::new(clients.collect::<Result<_, _>>()?))
}

/// `grpc-query` and `http-query`: `services` services of `query_hosts`
/// instances each (loaded by publishers of at most [`PER_PUBLISHER`]
/// instances), then `operations` gRPC queries and `operations` HTTP queries
/// of random services; every answer's host count is checked.
pub async fn query(cluster: &BenchCluster, s: &Settings) -> Result<(Value, Value)> {
    let base = baseline(cluster).await?;
    let (services, hosts) = (s.services, s.query_hosts);
    // Publisher p = g * hosts + h puts host h into every service s ≡ g (mod groups).
    let groups = services.div_ceil(PER_PUBLISHER);
    let publishers = connect_many(&cluster.nodes, groups * hosts, None).await?;
    let mut set = JoinSet::new();
    for (p, publisher) in publishers.iter().enumerate() {
        let publisher = publisher.clone();
        set.spawn(async move {
            let (ip, port) = fake_address(10_000 + p, 0);
            for svc in (p / hosts..services).step_by(groups) {
                let body = client::register(&format!("bench-query-{svc}"), &ip, port);
                setup_call(&publisher, "InstanceRequest", body).await?;
            }
            anyhow::Ok(())
        });
    }
    while let Some(done) = set.join_next().await {
        done??;
    }
    let loaded = (services * hosts) as u64;
    cluster.wait_instances(base + loaded, replication_limit(loaded as usize)).await?;
    // Phase marks on stderr, for a profiler attached to the nodes.
    eprintln!("-- query: data set loaded, gRPC phase");

    let clients = Arc::new(connect_many(&cluster.nodes, s.connections, None).await?);
    let shared = clients.clone();
    let (t, elapsed) = drive(s.operations, s.workers, move |_, n| {
        let clients = shared.clone();
        async move {
            let body = client::query(&format!("bench-query-{}", fastrand::usize(..services)));
            let answer = clients[n % clients.len()].call("ServiceQueryRequest", body).await?;
            match host_count(&answer) {
                n if n == hosts => Ok(()),
                n => bail!("{n} hosts instead of {hosts}"),
            }
        }
    })
    .await?;
    let mut grpc =
        json!({"connections": clients.len(), "workers": s.workers, "services": services, "hosts_per_service": hosts});
    merge(&mut grpc, throughput(&t, s.operations, elapsed));
    drop(clients);
    eprintln!("-- query: HTTP phase");

    let http = http_clients(s.connections)?;
    let urls: Arc<Vec<String>> =
        Arc::new(cluster.nodes.iter().map(|n| format!("http://{}/nacos/v1/ns/instance/list", n.http)).collect());
    let shared = http.clone();
    let (t, elapsed) = drive(s.operations, s.workers, move |_, n| {
        let (http, urls) = (shared.clone(), urls.clone());
        async move {
            let svc = format!("bench-query-{}", fastrand::usize(..services));
            let r =
                http[n % http.len()].get(&urls[n % urls.len()]).query(&[("serviceName", svc.as_str())]).send().await?;
            let status = r.status();
            let body = r.text().await?;
            let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
            match v["hosts"].as_array().map(Vec::len) {
                Some(n) if status.is_success() && n == hosts => Ok(()),
                _ => bail!("HTTP {status}: {}", body.chars().take(120).collect::<String>()),
            }
        }
    })
    .await?;
    let mut over_http =
        json!({"clients": http.len(), "workers": s.workers, "services": services, "hosts_per_service": hosts});
    merge(&mut over_http, throughput(&t, s.operations, elapsed));
    release(cluster, publishers, base).await;
    Ok((grpc, over_http))
}

/// Sends `POST /nacos/v1/ns/instance` with `params` on one of `http`.
async fn http_register(http: &reqwest::Client, url: &str, params: &[(&str, &str)]) -> Result<()> {
    let r = http.post(url).form(params).send().await?;
    let status = r.status();
    let body = r.text().await?;
    if !status.is_success() || body.trim() != "ok" {
        bail!("HTTP {status}: {}", body.chars().take(120).collect::<String>());
    }
    Ok(())
}

/// An HTTP registration step: operation `n` registers an instance in
/// service `{prefix}-{n % services}` at an address unique for `n`, with
/// `extra` form parameters, on node `n % nodes`; then the time until every
/// node holds them all.
async fn http_step(
    cluster: &BenchCluster,
    s: &Settings,
    prefix: &'static str,
    first_address: usize,
    extra: &'static [(&'static str, &'static str)],
) -> Result<Value> {
    let base = baseline(cluster).await?;
    let http = http_clients(s.connections)?;
    let urls: Arc<Vec<String>> =
        Arc::new(cluster.nodes.iter().map(|n| format!("http://{}/nacos/v1/ns/instance", n.http)).collect());
    let services = s.services;
    let shared = http.clone();
    let (t, elapsed) = drive(s.operations, s.workers, move |_, n| {
        let (http, urls) = (shared.clone(), urls.clone());
        async move {
            let (ip, port) = fake_address(first_address + n / services, 0);
            let (service, port) = (format!("{prefix}-{}", n % services), port.to_string());
            let mut params = vec![("serviceName", service.as_str()), ("ip", ip.as_str()), ("port", port.as_str())];
            params.extend_from_slice(extra);
            http_register(&http[n % http.len()], &urls[n % urls.len()], &params).await
        }
    })
    .await?;
    let replicated = cluster.wait_instances(base + t.ok, replication_limit(s.operations)).await;
    let mut out =
        json!({"clients": http.len(), "workers": s.workers, "nodes": cluster.nodes.len(), "services": services});
    merge(&mut out, throughput(&t, s.operations, elapsed));
    merge(&mut out, replication(replicated));
    Ok(out)
}

/// `http-register`: ephemeral HTTP registrations (the Nacos 1.x client
/// path). They are not beaten for, so they expire later: run it last.
pub async fn http_register_step(cluster: &BenchCluster, s: &Settings) -> Result<Value> {
    http_step(cluster, s, "bench-http", 20_000, &[("ephemeral", "true")]).await
}

/// `persistent`: HTTP registrations with `ephemeral=false` (their server
/// health check off: the addresses are made up). Roster answers once the
/// write is committed (fsync'd on a majority); what r-nacos' answer means
/// is in BENCHMARKS.md.
pub async fn persistent(cluster: &BenchCluster, s: &Settings) -> Result<Value> {
    let extra = &[("ephemeral", "false"), ("metadata", r#"{"preserved.health.checker":"NONE"}"#)];
    http_step(cluster, s, "bench-persist", 40_000, extra).await
}
