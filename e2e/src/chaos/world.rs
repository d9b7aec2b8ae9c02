//! What every task shares ([`World`]): the nodes' addresses, which of them
//! run, the model and the fault log; and the harness's own requests to the
//! nodes (status, lists, instance writes, beats, fault settings).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use roster_node::peer::FaultSettings;
use serde_json::Value;

use super::config::ArmedFault;
use super::model::{HttpModel, Model, Outcome, SdkOp};
use super::FORM_BOUND;
use crate::cluster::set_faults;

/// What every task shares: node addresses, which nodes run, the model of
/// what clients were told, and the fault log.
pub(super) struct World {
    pub(super) ips: Vec<String>,
    pub(super) up: Vec<AtomicBool>,
    pub(super) armed: Option<ArmedFault>,
    pub(super) model: Mutex<Model>,
    pub(super) fault_log: Mutex<Vec<String>>,
    pub(super) started: Instant,
    pub(super) client: reqwest::Client,
}

impl World {
    /// The shared state of a run on the nodes at `ips`, all running.
    pub(super) fn new(ips: &[String], armed: Option<ArmedFault>) -> World {
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

    /// Node `i`'s HTTP address.
    pub(super) fn http(&self, i: usize) -> SocketAddr {
        SocketAddr::new(self.ips[i].parse().unwrap_or(std::net::Ipv4Addr::LOCALHOST.into()), 8848)
    }

    /// Node `i`'s member name.
    pub(super) fn member(&self, i: usize) -> String {
        format!("{}:8848", self.ips[i])
    }

    /// Adds a line to the fault log (and prints it), stamped with the run time.
    pub(super) fn log(&self, entry: String) {
        let entry = format!("{:>7.1}s {entry}", self.started.elapsed().as_secs_f64());
        eprintln!("chaos: {entry}");
        if let Ok(mut log) = self.fault_log.lock() {
            log.push(entry);
        }
    }

    /// A running node, at random.
    pub(super) fn pick_up(&self, rng: &mut fastrand::Rng) -> Option<usize> {
        let up: Vec<usize> = (0..self.ips.len()).filter(|i| self.up[*i].load(Ordering::SeqCst)).collect();
        (!up.is_empty()).then(|| up[rng.usize(..up.len())])
    }

    /// The drops armed on node `i` for the whole run.
    pub(super) fn baseline(&self, i: usize) -> FaultSettings {
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
    pub(super) async fn set_baseline_faults(&self) -> Result<()> {
        for i in 0..self.ips.len() {
            if self.up[i].load(Ordering::SeqCst) {
                set_faults(self.http(i), &self.baseline(i)).await?;
            }
        }
        Ok(())
    }

    /// Waits until every node is ready and sees every member `UP`.
    pub(super) async fn wait_formed(&self) -> Result<()> {
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

    /// A `GET` of `path` on node `i`; `None` if it does not answer JSON.
    pub(super) async fn get_json(&self, i: usize, path: &str, query: &[(&str, &str)]) -> Option<Value> {
        let url = format!("http://{}{path}", self.http(i));
        self.client.get(url).query(query).send().await.ok()?.json().await.ok()
    }

    /// `(ip:port, healthy, metadata v)` of a service on node `i`, sorted.
    pub(super) async fn hosts(&self, i: usize, service: &str) -> Option<Vec<(String, bool, Option<String>)>> {
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
    pub(super) async fn write(&self, i: usize, method: reqwest::Method, params: &[(&str, &str)]) -> Outcome {
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
    pub(super) async fn beat(&self, i: usize, inst: &HttpModel) -> Option<i64> {
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

    /// Adds to the history of gRPC client `index`.
    pub(super) fn note_sdk(&self, index: usize, at: Duration, entry: String) {
        if let Ok(model) = self.model.lock() {
            model.note_sdk(index, at, entry);
        }
    }

    /// Records a register or deregister by gRPC client `index`, answered now.
    pub(super) fn record_sdk(&self, index: usize, op: SdkOp<'_>) {
        let now = self.started.elapsed();
        if let Ok(mut model) = self.model.lock() {
            model.record_sdk(index, op, now);
        }
    }
}
