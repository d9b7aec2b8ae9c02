//! The Nacos-speaking cluster under test: `roster-node` processes this
//! benchmark starts on loopback (distinct `127.x.y.z` addresses, standard
//! ports, a `cluster.conf` lookup and otherwise the nodes' default
//! settings), an existing Roster cluster named with `--target`, or an
//! r-nacos cluster ([`super::rnacos`]). The scenarios see one
//! [`BenchCluster`] and the same Nacos protocols either way; only the
//! instance count and the formation check differ per [`Flavor`].
//!
//! Local nodes are [`NodeProcess`]es or [`super::process::PeerProcess`]es:
//! each is killed when dropped, so an error, a panic or Ctrl-C (which drops
//! the running scenario) stops every process this benchmark started.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::Value;

use super::rnacos;
use crate::cluster::{status, write_member_file};
use crate::{loopback_ips, NodeProcess};

/// Which server a cluster runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// Roster's `roster-node`.
    Roster,
    /// r-nacos 0.8.5.
    Rnacos,
}

impl Flavor {
    /// The name used in reports (`roster`, `rnacos`).
    pub fn name(self) -> &'static str {
        match self {
            Flavor::Roster => "roster",
            Flavor::Rnacos => "rnacos",
        }
    }
}

/// One node as the benchmark reaches it.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// `host:port` of the main HTTP port (the member name for local nodes).
    pub http: SocketAddr,
    /// The client gRPC port.
    pub grpc: SocketAddr,
    /// The process id, for nodes this benchmark started.
    pub pid: Option<u32>,
}

/// Roster nodes started by the benchmark.
#[derive(Debug)]
struct Local {
    /// Holds the member file (and is removed with the cluster).
    _dir: tempfile::TempDir,
    conf: PathBuf,
    /// Every address reserved for this cluster; the first `processes.len()` are in use.
    ips: Vec<String>,
    processes: Vec<NodeProcess>,
    node_args: Vec<String>,
}

/// The processes behind a cluster.
#[derive(Debug)]
enum Processes {
    /// An existing Roster cluster (`--target`): nothing started here.
    Target,
    Roster(Local),
    Rnacos(rnacos::Members),
}

/// The cluster a scenario runs against.
#[derive(Debug)]
pub struct BenchCluster {
    /// What it runs.
    pub flavor: Flavor,
    /// The nodes, in member order.
    pub nodes: Vec<Endpoint>,
    local: Processes,
}

/// How long a cluster may take to form.
const FORM_LIMIT: Duration = Duration::from_secs(120);
/// How long r-nacos may take to replicate the probe (it takes about a second).
const RNACOS_FORM_LIMIT: Duration = Duration::from_secs(30);
/// How many times an r-nacos cluster is started before its failure to
/// form fails the run.
const RNACOS_ATTEMPTS: u32 = 3;

impl BenchCluster {
    /// Starts `n` nodes (with room for `spare` more) and waits until every
    /// one is ready and sees every member `UP`. `node_args` go to every node.
    pub async fn start(n: usize, spare: usize, node_args: &[String]) -> Result<BenchCluster> {
        let count = u8::try_from(n + spare).context("too many nodes")?;
        let ips = loopback_ips(count);
        let dir = tempfile::tempdir().context("temporary folder")?;
        let conf = dir.path().join("cluster.conf");
        let members: Vec<String> = ips[..n].iter().map(|ip| format!("{ip}:8848")).collect();
        write_member_file(&conf, &members);
        let mut local = Local { _dir: dir, conf, ips, processes: Vec::new(), node_args: node_args.to_vec() };
        let mut nodes = Vec::new();
        for i in 0..n {
            nodes.push(local.spawn(i).await?);
        }
        let cluster = BenchCluster { flavor: Flavor::Roster, nodes, local: Processes::Roster(local) };
        cluster.wait_formed(FORM_LIMIT).await?;
        Ok(cluster)
    }

    /// Starts an r-nacos cluster of `n` members (room for `spare` more),
    /// the first initialising the Raft group, and waits until a probe
    /// instance registered on the first is listed by every member.
    ///
    /// A cluster that does not form is started again on other addresses, up
    /// to [`RNACOS_ATTEMPTS`] times: r-nacos' first member sometimes fails at
    /// start-up on a loaded machine (a thread of it panics, and its Raft
    /// mailbox closes), which is not what the benchmark measures. Each
    /// failure is printed, with the members' panic lines.
    pub async fn start_rnacos(n: usize, spare: usize) -> Result<BenchCluster> {
        let mut attempt = 1;
        loop {
            match Self::try_start_rnacos(n, spare).await {
                Ok(cluster) => return Ok(cluster),
                Err(e) if attempt < RNACOS_ATTEMPTS => {
                    eprintln!("   r-nacos did not form ({e:#}); starting it again on other addresses");
                    attempt += 1;
                }
                Err(e) => return Err(e.context(format!("r-nacos did not form in {RNACOS_ATTEMPTS} attempts"))),
            }
        }
    }

    async fn try_start_rnacos(n: usize, spare: usize) -> Result<BenchCluster> {
        let count = u8::try_from(n + spare).context("too many members")?;
        let mut members = rnacos::Members::new(loopback_ips(count))?;
        let mut nodes = Vec::new();
        for _ in 0..n {
            nodes.push(members.spawn().await?);
        }
        if let Err(e) = rnacos::wait_formed(&nodes, RNACOS_FORM_LIMIT).await {
            bail!("{e:#}; the members' logs end with:\n{}", members.log_tails());
        }
        Ok(BenchCluster { flavor: Flavor::Rnacos, nodes, local: Processes::Rnacos(members) })
    }

    /// An existing cluster: `targets` are main HTTP addresses; the gRPC
    /// port is the main port + 1000, as in Nacos.
    pub async fn target(targets: &[SocketAddr]) -> Result<BenchCluster> {
        let nodes = targets
            .iter()
            .map(|http| {
                let port = http.port().checked_add(1000).context("main port too high for the gRPC offset")?;
                Ok(Endpoint { http: *http, grpc: SocketAddr::new(http.ip(), port), pid: None })
            })
            .collect::<Result<Vec<_>>>()?;
        for node in &nodes {
            if status(node.http).await.is_none() {
                bail!("{} does not answer /roster/v1/status", node.http);
            }
        }
        Ok(BenchCluster { flavor: Flavor::Roster, nodes, local: Processes::Target })
    }

    /// Whether the nodes were started here (and can be added to, and
    /// their memory read).
    pub fn is_local(&self) -> bool {
        !matches!(self.local, Processes::Target)
    }

    /// Adds one node: lists it in the member file first (as an operator
    /// publishes a new member before its pod runs), then starts it. Returns
    /// its endpoint and the instant just before the process was spawned.
    /// An r-nacos member joins the Raft group through the first member.
    pub async fn add_node(&mut self) -> Result<(Endpoint, Instant)> {
        let local = match &mut self.local {
            Processes::Target => bail!("nodes can only be added to a local cluster"),
            Processes::Rnacos(members) => {
                let spawned = Instant::now();
                let endpoint = members.spawn().await?;
                self.nodes.push(endpoint.clone());
                return Ok((endpoint, spawned));
            }
            Processes::Roster(local) => local,
        };
        let index = local.processes.len();
        if index >= local.ips.len() {
            bail!("no address reserved for another node");
        }
        let members: Vec<String> = local.ips[..=index].iter().map(|ip| format!("{ip}:8848")).collect();
        write_member_file(&local.conf, &members);
        let spawned = Instant::now();
        let endpoint = local.spawn(index).await?;
        self.nodes.push(endpoint.clone());
        Ok((endpoint, spawned))
    }

    /// Waits until every node is ready and sees every member `UP` (r-nacos:
    /// until its members replicate a probe instance).
    pub async fn wait_formed(&self, limit: Duration) -> Result<()> {
        if self.flavor == Flavor::Rnacos {
            return rnacos::wait_formed(&self.nodes, limit).await;
        }
        let deadline = Instant::now() + limit;
        for node in &self.nodes {
            loop {
                let s = status(node.http).await;
                let formed = s.as_ref().is_some_and(|s| {
                    s["ready"] == Value::Bool(true)
                        && s["members"]
                            .as_array()
                            .is_some_and(|ms| ms.len() == self.nodes.len() && ms.iter().all(|m| m["state"] == "UP"))
                });
                if formed {
                    break;
                }
                if Instant::now() > deadline {
                    bail!("{} not ready with every member UP within {limit:?}; last status {s:?}", node.http);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        Ok(())
    }

    /// Each node's instance count (`None` for a node that did not answer).
    pub async fn instance_counts(&self) -> Vec<Option<u64>> {
        let mut out = Vec::new();
        for node in &self.nodes {
            out.push(self.instance_count(node.http).await);
        }
        out
    }

    /// One node's instance count: Roster's `store.instances` status, r-nacos'
    /// service catalogue.
    pub async fn instance_count(&self, http: SocketAddr) -> Option<u64> {
        match self.flavor {
            Flavor::Roster => status(http).await.and_then(|s| s["store"]["instances"].as_u64()),
            Flavor::Rnacos => rnacos::instance_count(http).await,
        }
    }

    /// Waits until every node holds exactly `expected` instances; returns
    /// how long that took, or the last counts seen after `limit`.
    pub async fn wait_instances(&self, expected: u64, limit: Duration) -> Result<Duration> {
        let start = Instant::now();
        loop {
            let counts = self.instance_counts().await;
            if counts.iter().all(|c| *c == Some(expected)) {
                return Ok(start.elapsed());
            }
            if start.elapsed() > limit {
                bail!("nodes hold {counts:?} instances, not {expected}, after {limit:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Local {
    /// Starts node `index` (blocking start-up runs off the async threads).
    async fn spawn(&mut self, index: usize) -> Result<Endpoint> {
        let ip = self.ips[index].clone();
        let mut args: Vec<String> = vec![
            "--bind".into(),
            ip.clone(),
            "--advertise".into(),
            format!("{ip}:8848"),
            "--lookup".into(),
            "file".into(),
            "--cluster-conf".into(),
            self.conf.to_string_lossy().into_owned(),
            "--cluster-conf-poll-interval".into(),
            "200ms".into(),
        ];
        args.extend(self.node_args.iter().cloned());
        // Members authenticate each other with a shared secret (in the
        // environment: command lines are visible to other local users).
        let secret = crate::cluster::cluster_secret();
        let process = tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            NodeProcess::start(&args, &[("ROSTER_CLUSTER_SECRET", secret.as_str())])
        })
        .await
        .context("node start-up task")?
        .with_context(|| format!("starting the node on {ip}"))?;
        let endpoint = Endpoint { http: process.http, grpc: process.grpc, pid: Some(process.pid()) };
        self.processes.push(process);
        Ok(endpoint)
    }
}
