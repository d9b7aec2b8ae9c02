//! `roster register`, `deregister` and `beat`: the Open API v1 instance
//! routes (`POST`/`DELETE /nacos/v1/ns/instance`, `PUT
//! /nacos/v1/ns/instance/beat`), so the member applies the same checks and
//! rights as for any HTTP client. A registered ephemeral instance lives
//! while it beats (every 5 s; unhealthy after 15 s, removed after 30 s).

use reqwest::Method;
use serde_json::json;

use super::{borrowed, ServiceRef};
use crate::error::{Error, Result};
use crate::member::Member;
use crate::output::{Report, Table};

/// Nacos's beat code for an instance the member does not hold.
const BEAT_NOT_FOUND: i64 = 20404;

/// An instance address in a service.
#[derive(Debug, Clone)]
pub struct InstanceRef {
    /// The service.
    pub service: ServiceRef,
    /// IP or host.
    pub ip: String,
    /// Port.
    pub port: u16,
    /// Cluster (`DEFAULT` by default).
    pub cluster: String,
    /// Persistent (Raft) instead of ephemeral.
    pub persistent: bool,
}

impl InstanceRef {
    fn params(&self) -> Vec<(&'static str, String)> {
        let mut p = self.service.params();
        p.push(("ip", self.ip.clone()));
        p.push(("port", self.port.to_string()));
        p.push(("clusterName", self.cluster.clone()));
        p.push(("ephemeral", (!self.persistent).to_string()));
        p
    }

    fn address(&self) -> String {
        format!("{}:{}", self.ip, self.port)
    }
}

/// What `roster register` sets besides the address.
#[derive(Debug, Clone, Default)]
pub struct Registration {
    /// Load-balancing weight.
    pub weight: Option<f64>,
    /// Metadata as `k=v,k=v` (or JSON).
    pub metadata: Option<String>,
    /// Register it disabled.
    pub disabled: bool,
}

fn done(what: &str, i: &InstanceRef) -> Report {
    let data = json!({
        "result": what, "namespace": i.service.namespace, "group": i.service.group, "service": i.service.name,
        "ip": i.ip, "port": i.port, "cluster": i.cluster, "ephemeral": !i.persistent,
    });
    let mut table = Table::default();
    table.note(format!("{what} {} ({}) in {}", i.address(), i.cluster, i.service.grouped()));
    Report { data, table }
}

/// `roster register`.
pub async fn register(member: &Member, i: &InstanceRef, r: &Registration) -> Result<Report> {
    let mut params = i.params();
    if let Some(w) = r.weight {
        if !(0.0..=10_000.0).contains(&w) {
            return Err(Error::bad_input(format!("--weight {w}: must be 0..10000")));
        }
        params.push(("weight", w.to_string()));
    }
    if let Some(m) = &r.metadata {
        params.push(("metadata", m.clone()));
    }
    if r.disabled {
        params.push(("enabled", "false".into()));
    }
    member.send(Method::POST, "/nacos/v1/ns/instance", &borrowed(&params)).await?;
    Ok(done("registered", i))
}

/// `roster deregister`.
pub async fn deregister(member: &Member, i: &InstanceRef) -> Result<Report> {
    member.send(Method::DELETE, "/nacos/v1/ns/instance", &borrowed(&i.params())).await?;
    Ok(done("deregistered", i))
}

/// `roster beat`: one light beat; an instance the member does not hold is
/// an error (register it again).
pub async fn beat(member: &Member, i: &InstanceRef) -> Result<Report> {
    let mut params = i.service.params();
    params.push(("ip", i.ip.clone()));
    params.push(("port", i.port.to_string()));
    params.push(("clusterName", i.cluster.clone()));
    let answer = member.send(Method::PUT, "/nacos/v1/ns/instance/beat", &borrowed(&params)).await?;
    if answer["code"].as_i64() == Some(BEAT_NOT_FOUND) {
        return Err(Error::Server {
            target: member.address.authority(),
            status: 404,
            message: format!("{} is not registered in {}; register it again", i.address(), i.service.grouped()),
        });
    }
    let mut table = Table::default();
    let interval = answer["clientBeatInterval"].as_u64().unwrap_or(5000);
    table.note(format!("beat {} in {}: next beat within {interval} ms", i.address(), i.service.grouped()));
    Ok(Report { data: answer, table })
}
