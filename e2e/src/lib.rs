//! Multi-process test harness for Roster.
//!
//! Tests here run the real `roster-node` binary (and real client processes)
//! on loopback, find their bound ports from the node's structured log, and
//! kill every process they started by its own handle when done.
//!
//! # Layout
//! - [`binary`]: locating (and if needed building) workspace binaries.
//! - [`NodeProcess`]: one running node process.
//! - [`eventually`]: bounded polling for a condition.
//! - [`cluster`]: reading nodes over HTTP, the fault switch, node flags and
//!   member files, and a killable SDK client, for tests of several nodes.
//! - [`bench`]: the load generator and scenarios behind `roster-bench`.
//! - [`chaos`]: the chaos suite: a seeded workload, faults and a checker.
//! - [`kubernetes`]: the Kubernetes e2e suite on a real control plane.
//! - `src/bin/sdk-client.rs`: a client process using the official Rust
//!   Nacos client, so tests can kill a client the way a crash would.
#![deny(missing_docs)]

pub mod bench;
pub mod chaos;
pub mod cluster;
pub mod kubernetes;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};

/// Makes sure `roster-node` is next to this executable and returns its
/// path. Run through `cargo run` (`CARGO` is set), it is built first with
/// this package's binary `this_bin` too, so features resolve as for the
/// `cargo run` that started us and nothing is built twice; in the profile
/// this executable was built with.
pub fn node_beside_this_executable(this_bin: &str) -> Result<PathBuf> {
    let exe = std::env::current_exe().context("locating this executable")?;
    let dir = exe.parent().context("this executable has no folder")?;
    if let Some(cargo) = std::env::var_os("CARGO") {
        let mut build = Command::new(cargo);
        // `cargo run` gave us its package's variables (CARGO_PKG_NAME, ...);
        // build scripts that watch them (ring's) would otherwise rebuild.
        for (key, _) in std::env::vars_os() {
            let name = key.to_string_lossy();
            let from_run = name.starts_with("CARGO_PKG_")
                || name.starts_with("CARGO_MANIFEST_")
                || matches!(name.as_ref(), "CARGO_CRATE_NAME" | "CARGO_BIN_NAME" | "CARGO_PRIMARY_PACKAGE" | "OUT_DIR");
            if from_run {
                build.env_remove(&key);
            }
        }
        build.args(["build", "-p", "roster-e2e", "-p", "roster-node", "--bin", "roster-node", "--bin", this_bin]);
        if dir.file_name().is_some_and(|n| n == "release") {
            build.arg("--release");
        }
        if !build.status().context("building roster-node")?.success() {
            bail!("building roster-node failed");
        }
    }
    let path = dir.join("roster-node");
    if !path.exists() {
        bail!("{} not found: build it with `cargo build -p roster-e2e -p roster-node`", path.display());
    }
    Ok(path)
}

/// Path of a binary of this workspace, built with the profile the tests run
/// under. `cargo test --workspace` builds every binary before running tests;
/// when one is missing (a test run for this crate alone), it is built.
pub fn binary(package: &str, name: &str) -> Result<PathBuf> {
    let exe = std::env::current_exe().context("current test executable")?;
    // target/<profile>/deps/<test> → target/<profile>; a binary such as
    // roster-bench runs from target/<profile> itself.
    let parent = exe.parent().ok_or_else(|| anyhow!("unexpected executable path {exe:?}"))?;
    let dir = if parent.file_name().is_some_and(|n| n == "deps") { parent.parent() } else { Some(parent) };
    let dir = dir.ok_or_else(|| anyhow!("unexpected test path {exe:?}"))?;
    let path = dir.join(name);
    if !path.exists() {
        let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        cmd.args(["build", "-p", package, "--bin", name]);
        if dir.file_name().is_some_and(|n| n == "release") {
            cmd.arg("--release");
        }
        let status = cmd.status().context("running cargo build")?;
        if !status.success() || !path.exists() {
            bail!("could not build {package}/{name}");
        }
    }
    Ok(path)
}

/// Polls `check` every 50 ms until it returns `Some`, panicking with `what`
/// after `limit`.
pub async fn eventually<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = std::time::Instant::now() + limit;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(std::time::Instant::now() < deadline, "timed out after {limit:?} waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `n` distinct loopback addresses, different for every call in this
/// process and for every test process, so nodes of concurrent tests can all
/// use the standard ports (8848, 9848, 9849) without colliding.
pub fn loopback_ips(n: u8) -> Vec<String> {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let call = NEXT.fetch_add(1, Ordering::Relaxed);
    let pid = std::process::id();
    let second = 16 + (pid % 200) as u8;
    let third = ((pid / 200).wrapping_add(call.wrapping_mul(7))) % 250;
    (1..=n).map(|i| format!("127.{second}.{}.{i}", third + 2)).collect()
}

/// A `roster-node` process on loopback. Killed when dropped.
#[derive(Debug)]
pub struct NodeProcess {
    child: Child,
    /// The data directory the harness made for it (when the test gave none),
    /// removed with the process.
    _data_dir: Option<tempfile::TempDir>,
    /// Bound main HTTP address.
    pub http: SocketAddr,
    /// Bound client gRPC address.
    pub grpc: SocketAddr,
}

impl NodeProcess {
    /// Starts `roster-node` with `args` and `envs`, waiting (bounded) until
    /// it logs the addresses it serves on. Pass `--port 0` (or
    /// `ROSTER_PORT=0`) for ephemeral ports. Without `--data-dir` (or
    /// `ROSTER_DATA_DIR`) the node gets a fresh temporary one; pass one to
    /// keep data across a restart.
    pub fn start(args: &[&str], envs: &[(&str, &str)]) -> Result<NodeProcess> {
        let bin = binary("roster-node", "roster-node")?;
        let given =
            args.iter().any(|a| a.starts_with("--data-dir")) || envs.iter().any(|(k, _)| *k == "ROSTER_DATA_DIR");
        let data_dir = if given { None } else { Some(tempfile::tempdir().context("temporary data dir")?) };
        let mut command = Command::new(bin);
        if let Some(dir) = &data_dir {
            command.arg("--data-dir").arg(dir.path());
        }
        let mut child = command
            .args(args)
            .envs(envs.iter().copied())
            .env("ROSTER_LOG_FORMAT", "json")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("spawning roster-node")?;
        let stderr = child.stderr.take().ok_or_else(|| anyhow!("no stderr"))?;
        let (tx, rx) = mpsc::channel::<Result<(SocketAddr, SocketAddr)>>();
        std::thread::spawn(move || {
            let mut sent = false;
            // The last lines before an early exit say why (a refused flag).
            let mut last = std::collections::VecDeque::new();
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if !sent {
                    if let Some(addrs) = serving_addresses(&line) {
                        let _ = tx.send(Ok(addrs));
                        sent = true;
                    } else {
                        if last.len() == 3 {
                            last.pop_front();
                        }
                        last.push_back(line.clone());
                    }
                }
                if std::env::var_os("ROSTER_E2E_LOGS").is_some() {
                    eprintln!("[node] {line}");
                }
            }
            if !sent {
                let said: Vec<String> = last.into_iter().collect();
                let _ = tx.send(Err(anyhow!("roster-node exited before serving: {}", said.join(" | "))));
            }
        });
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(Ok((http, grpc))) => Ok(NodeProcess { child, _data_dir: data_dir, http, grpc }),
            Ok(Err(e)) => {
                let _ = child.kill();
                let status = child.wait().ok();
                Err(e.context(format!("exit status {status:?}")))
            }
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                bail!("roster-node did not start serving within 30 s")
            }
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process has exited, with its status.
    pub fn try_wait(&mut self) -> Result<Option<std::process::ExitStatus>> {
        Ok(self.child.try_wait()?)
    }

    /// Asks the process to stop (SIGTERM, as Kubernetes does); it drains
    /// and exits on its own. Reap it with [`NodeProcess::try_wait`].
    pub fn terminate(&self) -> Result<()> {
        let sent = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status()?;
        if !sent.success() {
            bail!("kill -TERM {} failed: {sent}", self.child.id());
        }
        Ok(())
    }

    /// Kills the process (SIGKILL) and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Reads the `roster node serving` log line (JSON) for the bound addresses.
fn serving_addresses(line: &str) -> Option<(SocketAddr, SocketAddr)> {
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    let fields = v.get("fields")?;
    if fields.get("message")?.as_str()? != "roster node serving" {
        return None;
    }
    let http = fields.get("http")?.as_str()?.parse().ok()?;
    let grpc = fields.get("grpc")?.as_str()?.parse().ok()?;
    Some((http, grpc))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_serving_line() {
        let line = r#"{"timestamp":"t","level":"INFO","fields":{"message":"roster node serving","member":"127.0.0.1:1","http":"127.0.0.1:1234","grpc":"127.0.0.1:2345"},"target":"roster_node::server"}"#;
        let (http, grpc) = serving_addresses(line).expect("parsed");
        assert_eq!(http.port(), 1234);
        assert_eq!(grpc.port(), 2345);
        assert!(serving_addresses(r#"{"fields":{"message":"other"}}"#).is_none());
        assert!(serving_addresses("not json").is_none());
    }
}
