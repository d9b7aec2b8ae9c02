//! `roster-cluster`: a local Roster cluster on loopback, no Kubernetes.
//!
//! Starts `--nodes` `roster-node` processes on one host (default
//! `127.0.0.1`), with main ports spaced by 10 from `--base-port` (8848,
//! 8858, ...; gRPC and peer ports follow by their offsets). It feeds them
//! their member list from the operator's own address-server code, and prints
//! where clients connect and a table of the members whenever it changes.
//! While it runs, standard input takes `scale N`, `status` and `quit`. Ctrl-C
//! stops every node with SIGTERM and waits for it.
//!
//! ```sh
//! cargo run --release -p roster-e2e --bin roster-cluster
//! ```

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use roster_operator::address_server::{AddressServer, ServerLists};
use serde_json::Value;

/// The namespace and name the local cluster's list is served under.
const NAMESPACE: &str = "local";
const NAME: &str = "roster";
/// Spacing of the nodes' main ports.
const PORT_STEP: u16 = 10;

#[derive(Debug, Parser)]
#[command(name = "roster-cluster", about = "Run a local Roster cluster on loopback")]
struct Args {
    /// Nodes to start with.
    #[arg(long, default_value_t = 3)]
    nodes: u16,
    /// Loopback address every node binds to.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Main HTTP port of the first node; the others follow 10 apart.
    #[arg(long, default_value_t = 8848)]
    base_port: u16,
    /// Port of the address server (0 picks a free one).
    #[arg(long, default_value_t = 0)]
    address_server_port: u16,
    /// Where the nodes keep their data and logs (one folder per node).
    #[arg(long, default_value = "./data/roster-cluster")]
    data_dir: PathBuf,
    /// The `roster-node` binary (default: built next to this one).
    #[arg(long)]
    node_bin: Option<PathBuf>,
    /// Extra flags passed to every node, after `--`.
    #[arg(last = true)]
    node_args: Vec<String>,
}

/// One running node process.
struct Node {
    member: String,
    child: Child,
}

struct LocalCluster {
    args: Args,
    node_bin: PathBuf,
    /// The cluster secret every node gets (random per run, passed in the
    /// environment so it does not show in the process list).
    secret: String,
    lists: ServerLists,
    list_url: String,
    nodes: BTreeMap<u16, Node>,
}

impl LocalCluster {
    fn member(&self, index: u16) -> Result<String> {
        let port = self
            .args
            .base_port
            .checked_add(index.checked_mul(PORT_STEP).context("too many nodes")?)
            .filter(|p| p.checked_add(1001).is_some())
            .context("the node ports run past 65535")?;
        Ok(format!("{}:{port}", self.args.host))
    }

    fn members(&self, n: u16) -> Result<Vec<String>> {
        (0..n).map(|i| self.member(i)).collect()
    }

    fn start_node(&mut self, index: u16) -> Result<()> {
        let member = self.member(index)?;
        let port = member.rsplit(':').next().unwrap_or_default().to_owned();
        let dir = self.args.data_dir.join(format!("node-{index}"));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let log = std::fs::File::create(dir.join("node.log")).context("creating the node log")?;
        let child = Command::new(&self.node_bin)
            .args(["--bind", &self.args.host, "--port", &port, "--advertise", &member])
            .args(["--lookup", "address-server", "--address-server-url", &self.list_url])
            .args(["--address-server-poll-interval", "1s", "--data-dir"])
            .arg(dir.join("data"))
            .args(&self.args.node_args)
            .env("ROSTER_CLUSTER_SECRET", &self.secret)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", self.node_bin.display()))?;
        println!("started {member} (pid {}, log {})", child.id(), dir.join("node.log").display());
        self.nodes.insert(index, Node { member, child });
        Ok(())
    }

    /// Grows or shrinks the cluster to `n` nodes. Shrinking drops the
    /// highest members from the list first, waits until Raft no longer
    /// counts them (when the nodes report Raft), then stops them.
    async fn scale(&mut self, n: u16) -> Result<()> {
        if n == 0 {
            bail!("a cluster needs at least one node");
        }
        let current = u16::try_from(self.nodes.len()).unwrap_or(u16::MAX);
        self.lists.set(NAMESPACE, NAME, self.members(n)?);
        if n > current {
            for index in current..n {
                self.start_node(index)?;
            }
            return Ok(());
        }
        let leaving: Vec<u16> = self.nodes.keys().copied().filter(|i| *i >= n).collect();
        let gone: Vec<String> = leaving.iter().filter_map(|i| self.nodes.get(i)).map(|n| n.member.clone()).collect();
        let stay: Vec<SocketAddr> = self.nodes.range(..n).filter_map(|(_, n)| n.member.parse().ok()).collect();
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline && raft_counts_any(&stay, &gone).await {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        for index in leaving.into_iter().rev() {
            if let Some(mut node) = self.nodes.remove(&index) {
                stop(&mut node);
            }
        }
        Ok(())
    }

    /// The member table, one line per node.
    async fn table(&self) -> String {
        let mut out = format!("{:<22} {:<10} {:<6} {:<22} {:<10}\n", "MEMBER", "STATE", "READY", "SNAPSHOT", "RAFT");
        let first = self.nodes.values().next().and_then(|n| n.member.parse::<SocketAddr>().ok());
        let states: BTreeMap<String, String> = match first {
            Some(addr) => status(addr)
                .await
                .and_then(|s| {
                    s["members"].as_array().map(|ms| {
                        ms.iter()
                            .map(|m| (text(&m["address"]), text(&m["state"])))
                            .collect::<BTreeMap<String, String>>()
                    })
                })
                .unwrap_or_default(),
            None => BTreeMap::new(),
        };
        for node in self.nodes.values() {
            let s = match node.member.parse::<SocketAddr>() {
                Ok(addr) => status(addr).await,
                Err(_) => None,
            };
            let (ready, snapshot, raft) = match &s {
                Some(s) => (
                    text(&s["ready"]),
                    s["distro"]["snapshotSource"].as_str().unwrap_or("-").to_owned(),
                    s["raft"]["role"].as_str().unwrap_or("-").to_owned(),
                ),
                None => ("no answer".to_owned(), "-".to_owned(), "-".to_owned()),
            };
            let state = states.get(&node.member).cloned().unwrap_or_else(|| "-".to_owned());
            out.push_str(&format!("{:<22} {:<10} {:<6} {:<22} {:<10}\n", node.member, state, ready, snapshot, raft));
        }
        out
    }

    async fn all_ready(&self) -> bool {
        for node in self.nodes.values() {
            let Ok(addr) = node.member.parse::<SocketAddr>() else { return false };
            if !status(addr).await.is_some_and(|s| s["ready"] == Value::Bool(true)) {
                return false;
            }
        }
        !self.nodes.is_empty()
    }

    fn stop_all(&mut self) {
        let mut nodes: Vec<Node> = std::mem::take(&mut self.nodes).into_values().collect();
        nodes.reverse();
        for node in &mut nodes {
            stop(node);
        }
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        self.stop_all();
    }
}

/// SIGTERM, then up to 10 s for a clean exit, then SIGKILL.
fn stop(node: &mut Node) {
    let pid = node.child.id().to_string();
    let _ = Command::new("kill").args(["-TERM", &pid]).status();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = node.child.try_wait() {
            println!("stopped {}", node.member);
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = node.child.kill();
    let _ = node.child.wait();
    println!("killed {} (it did not stop within 10 s)", node.member);
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".to_owned(),
        other => other.to_string(),
    }
}

async fn status(addr: SocketAddr) -> Option<Value> {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(1)).build().ok()?;
    client.get(format!("http://{addr}/roster/v1/status")).send().await.ok()?.json().await.ok()
}

/// Whether any node in `stay` still lists one of `gone` as a Raft voter or
/// learner. Nodes that report no Raft section count nothing.
async fn raft_counts_any(stay: &[SocketAddr], gone: &[String]) -> bool {
    for addr in stay {
        let Some(s) = status(*addr).await else { continue };
        for key in ["voters", "learners"] {
            let listed = s["raft"][key].as_array().cloned().unwrap_or_default();
            if listed.iter().any(|v| v.as_str().is_some_and(|m| gone.iter().any(|g| g == m))) {
                return true;
            }
        }
    }
    false
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    if args.nodes == 0 {
        bail!("--nodes must be at least 1");
    }
    std::fs::create_dir_all(&args.data_dir).with_context(|| format!("creating {}", args.data_dir.display()))?;
    let node_bin = match args.node_bin.clone() {
        Some(path) => path,
        None => roster_e2e::node_beside_this_executable("roster-cluster")?,
    };
    let lists = ServerLists::new();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let bind: SocketAddr = format!("{}:{}", args.host, args.address_server_port)
        .parse()
        .with_context(|| format!("--host {} is not an IP address", args.host))?;
    let (server_addr, server) = AddressServer::new(lists.clone())
        .spawn(bind, async move {
            let _ = stop_rx.await;
        })
        .await?;
    let list_url = format!("http://{server_addr}/v1/clusters/{NAMESPACE}/{NAME}/serverlist");
    let secret = roster_node::security::ClusterSecret::generate_hex()?;
    let mut cluster = LocalCluster { args, node_bin, secret, lists, list_url, nodes: BTreeMap::new() };
    let initial = cluster.args.nodes;
    cluster.scale(initial).await?;

    println!();
    println!("Roster local cluster: {initial} nodes on {}", cluster.args.host);
    println!("  Nacos clients: server {} (gRPC port + 1000)", cluster.member(0)?);
    println!("  member list:   {}", cluster.list_url);
    println!("  logs and data: {}", cluster.args.data_dir.display());
    println!("  commands:      scale N | status | quit (or Ctrl-C)");
    println!();

    // Signal streams, not `ctrl_c()` futures: a signal that arrives while the
    // loop is busy elsewhere is kept until the loop looks again.
    use tokio::signal::unix::{signal, SignalKind};
    let mut interrupt = signal(SignalKind::interrupt()).context("listening for Ctrl-C")?;
    let mut terminate = signal(SignalKind::terminate()).context("listening for SIGTERM")?;
    // Standard input is read on a plain thread: tokio's stdin would keep the
    // runtime (and the process) alive at exit while a read is pending.
    let (line_tx, mut lines) = tokio::sync::mpsc::unbounded_channel::<String>();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::stdin().lock().lines().map_while(Result::ok) {
            if line_tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut stdin_open = true;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut last_table = String::new();
    let mut announced_ready = false;
    loop {
        tokio::select! {
            _ = interrupt.recv() => break,
            _ = terminate.recv() => break,
            line = lines.recv(), if stdin_open => match line {
                Some(line) => {
                    let words: Vec<&str> = line.split_whitespace().collect();
                    match words.as_slice() {
                        ["scale", n] => match n.parse::<u16>() {
                            Ok(n) => {
                                if let Err(e) = cluster.scale(n).await {
                                    println!("cannot scale to {n}: {e:#}");
                                } else {
                                    announced_ready = false;
                                }
                            }
                            Err(_) => println!("scale takes a number of nodes, e.g. `scale 5`"),
                        },
                        ["status"] => print!("{}", cluster.table().await),
                        ["quit"] | ["exit"] => break,
                        [] => {}
                        _ => println!("commands: scale N | status | quit"),
                    }
                }
                // Standard input closed (a script, `< /dev/null`): keep running until Ctrl-C.
                None => stdin_open = false,
            },
            _ = tick.tick() => {
                let table = cluster.table().await;
                if table != last_table {
                    print!("{table}");
                    last_table = table;
                }
                if !announced_ready && cluster.all_ready().await {
                    println!("cluster ready: {} nodes", cluster.nodes.len());
                    announced_ready = true;
                }
            }
        }
    }
    println!("stopping");
    cluster.stop_all();
    let _ = stop_tx.send(());
    let _ = server.await;
    Ok(())
}
