//! The two processes the suite starts and stops by their own PIDs: the
//! test kubelet (`kubelet.py`, which runs the member pods as its children)
//! and the operator (a local process under the chart's ServiceAccount).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};

use super::env::{Env, SYSTEM_PYTHON};

/// Where the operator's address server and admin endpoints listen, and the
/// address its Service name resolves to in the pods' hosts entries. Pods get
/// 127.0.1.x; the node tests use 127.16-215.x.y.
pub const OPERATOR_IP: &str = "127.0.2.1";
/// The address-server URL the member pods are given: the chart's Service.
pub const ADDRESS_SERVER_URL: &str = "http://roster-operator.roster-system.svc:8080";

/// Sends `signal` (`TERM`, `KILL`) to `pid` with the `kill` command.
pub fn signal(pid: u32, signal: &str) -> Result<()> {
    let status = Command::new("kill").arg(format!("-{signal}")).arg(pid.to_string()).status()?;
    anyhow::ensure!(status.success(), "kill -{signal} {pid} failed");
    Ok(())
}

/// SIGTERM, then SIGKILL if it is still running after `grace`; reaps it.
fn stop(child: &mut Child, grace: Duration) {
    super::env::blocking(|| stop_blocking(child, grace));
}

fn stop_blocking(child: &mut Child, grace: Duration) {
    if child.try_wait().ok().flatten().is_some() {
        return;
    }
    let _ = signal(child.id(), "TERM");
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if child.try_wait().ok().flatten().is_some() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// `kubelet.py` running every pod whose image starts with `roster-node` as
/// the node binary. Stopped (SIGTERM: it stops its pods) when dropped.
#[derive(Debug)]
pub struct Kubelet {
    child: Child,
    /// Its state directory: pod folders, PVC folders, container logs.
    pub state: PathBuf,
}

impl Kubelet {
    /// Starts it with short probe periods and grace times (the pods'
    /// timings are kept; the caps only shorten waits on our side).
    pub fn start(env: &Env, node_binary: &Path, dir: &Path) -> Result<Kubelet> {
        let state = dir.join("kubelet");
        std::fs::create_dir_all(&state)?;
        let log = File::create(dir.join("kubelet.log"))?;
        let mut command = Command::new(SYSTEM_PYTHON);
        command.arg(&env.kubelet_py);
        // `ROSTER_KUBE_E2E_NODE_LOG` (a `RUST_LOG` filter) reaches the
        // members' processes: the kubelet passes its own `RUST_LOG` on.
        if let Some(filter) = std::env::var_os("ROSTER_KUBE_E2E_NODE_LOG") {
            command.env("RUST_LOG", filter).args(["--pass-env", "RUST_LOG"]);
        }
        let child = command
            .arg("--kubeconfig")
            .arg(&env.kubeconfig)
            .arg("--state-dir")
            .arg(&state)
            .arg("--image-map")
            .arg(format!("roster-node={}", node_binary.display()))
            .arg("--service-ip")
            .arg(format!("roster-operator.roster-system={OPERATOR_IP}"))
            // Readiness is probed every second (the spec says 5 s) so a
            // step waits less for a pod that is ready already.
            .args(["--max-probe-period", "1", "--max-grace", "15", "--max-backoff", "2"])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting kubelet.py")?;
        Ok(Kubelet { child, state })
    }

    /// The container log of a pod.
    pub fn pod_log(&self, namespace: &str, pod: &str) -> PathBuf {
        self.state.join("logs").join(format!("{namespace}_{pod}.log"))
    }

    /// Whether it still runs.
    pub fn running(&mut self) -> bool {
        self.child.try_wait().ok().flatten().is_none()
    }
}

impl Drop for Kubelet {
    fn drop(&mut self) {
        stop(&mut self.child, Duration::from_secs(30));
    }
}

/// The operator binary, running with a kubeconfig (RBAC enforced) and no
/// `POD_NAMESPACE`: its leader Lease must land in the kubeconfig's
/// namespace. Stopped when dropped.
#[derive(Debug)]
pub struct Operator {
    binary: PathBuf,
    kubeconfig: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

impl Operator {
    /// An operator that is not running yet; its log goes to `log`.
    pub fn new(binary: &Path, kubeconfig: &Path, log: &Path) -> Operator {
        Operator {
            binary: binary.to_path_buf(),
            kubeconfig: kubeconfig.to_path_buf(),
            log: log.to_path_buf(),
            child: None,
        }
    }

    /// Starts it (appending to its log).
    pub fn start(&mut self) -> Result<()> {
        let log = File::options().create(true).append(true).open(&self.log)?;
        let child = Command::new(&self.binary)
            .args(["--address-server-addr", &format!("{OPERATOR_IP}:8080")])
            .args(["--admin-addr", &format!("{OPERATOR_IP}:9090")])
            .args(["--address-server-url", ADDRESS_SERVER_URL])
            .args(["--log-format", "json"])
            .env("KUBECONFIG", &self.kubeconfig)
            .env("RUST_LOG", "info,kube=warn,roster_operator::events=debug")
            .env_remove("POD_NAMESPACE")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting roster-operator")?;
        self.child = Some(child);
        Ok(())
    }

    /// SIGTERM and waits for it to exit (it releases its Lease first).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            stop(&mut child, Duration::from_secs(20));
        }
    }

    /// Whether it runs.
    pub fn running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        self.stop();
    }
}
