//! The environment the suite needs and how it finds it: a reachable
//! control plane (its admin kubeconfig), the test kubelet `kubelet.py`,
//! Helm's engine for rendering the chart, and `kubectl`.
//!
//! [`Preflight::check`] says what is missing in one sentence; the suite
//! fails on it under `CI=true` and skips (loudly) otherwise.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{anyhow, bail, Context as _, Result};
use serde_json::Value;

/// Where `up.sh` leaves the admin kubeconfig by default.
const DEFAULT_KUBECONFIG: &str = ".cache/roster-kube/run/admin.kubeconfig";
/// The interpreter for `kubelet.py`: a real binary (a pyenv shim would
/// give the shim's PID, not the kubelet's).
pub const SYSTEM_PYTHON: &str = "/usr/bin/python3";

/// What the suite runs against.
#[derive(Debug, Clone)]
pub struct Env {
    /// The admin kubeconfig (`system:masters`): used by the suite itself.
    pub kubeconfig: PathBuf,
    /// `kubelet.py`.
    pub kubelet_py: PathBuf,
    /// The Python that imports `helm_python` (`ROSTER_PYTHON` or `python3`).
    pub helm_python: String,
    /// The workspace root.
    pub root: PathBuf,
}

/// Whether the suite can run.
#[derive(Debug)]
pub enum Preflight {
    /// Everything is there.
    Ready(Env),
    /// What is missing, in a sentence that says how to get it.
    Missing(String),
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// `shared/kube/` beside the workspace or one of its ancestors (a worktree
/// lives one level deeper than a clone), or `ROSTER_KUBE_DIR`.
fn kube_dir(root: &Path) -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("ROSTER_KUBE_DIR") {
        return Some(PathBuf::from(dir));
    }
    root.ancestors().skip(1).map(|a| a.join("shared/kube")).find(|d| d.join("kubelet.py").is_file())
}

impl Preflight {
    /// Looks for the control plane, the kubelet, kubectl and Helm.
    pub fn check() -> Preflight {
        let root = workspace_root();
        let kubeconfig = match std::env::var_os("KUBECONFIG") {
            Some(k) => PathBuf::from(k),
            None => match std::env::var_os("HOME") {
                Some(home) => Path::new(&home).join(DEFAULT_KUBECONFIG),
                None => return Preflight::Missing("neither KUBECONFIG nor HOME is set".into()),
            },
        };
        if !kubeconfig.is_file() {
            return Preflight::Missing(format!(
                "no kubeconfig at {}: start the control plane with `eval \"$(../shared/kube/up.sh)\"`",
                kubeconfig.display()
            ));
        }
        let ready = Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .args(["get", "--raw", "/readyz", "--request-timeout=5s"])
            .stderr(Stdio::null())
            .output();
        match ready {
            Err(e) => return Preflight::Missing(format!("kubectl cannot run: {e}")),
            Ok(out) if String::from_utf8_lossy(&out.stdout).trim() != "ok" => {
                return Preflight::Missing(format!(
                    "the control plane of {} does not answer /readyz: start it with `../shared/kube/up.sh`",
                    kubeconfig.display()
                ))
            }
            Ok(_) => {}
        }
        let Some(dir) = kube_dir(&root) else {
            return Preflight::Missing("no shared/kube/kubelet.py beside the workspace (set ROSTER_KUBE_DIR)".into());
        };
        if !Path::new(SYSTEM_PYTHON).is_file() {
            return Preflight::Missing(format!("{SYSTEM_PYTHON} is needed to run kubelet.py"));
        }
        let helm_python = std::env::var("ROSTER_PYTHON").unwrap_or_else(|_| "python3".into());
        let helm = Command::new(&helm_python).args(["-c", "import helm_python"]).stderr(Stdio::null()).status();
        if !helm.is_ok_and(|s| s.success()) {
            return Preflight::Missing(format!(
                "{helm_python} cannot import helm_python (pip install helm-python-sdk==0.2.2, as .ci/run does)"
            ));
        }
        Preflight::Ready(Env { kubeconfig, kubelet_py: dir.join("kubelet.py"), helm_python, root })
    }
}

/// Runs `f`, which blocks, without starving the tasks of the current
/// worker thread: inside a multi-threaded Tokio runtime through
/// `block_in_place`, elsewhere directly.
pub fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => tokio::task::block_in_place(f),
        _ => f(),
    }
}

/// Runs `kubectl` with a kubeconfig, as a user would.
#[derive(Debug, Clone)]
pub struct Kubectl {
    kubeconfig: PathBuf,
}

impl Kubectl {
    /// `kubectl --kubeconfig <kubeconfig>`.
    pub fn new(kubeconfig: &Path) -> Kubectl {
        Kubectl { kubeconfig: kubeconfig.to_path_buf() }
    }

    /// Runs `kubectl args...` (with `stdin` piped in when given) and
    /// returns its stdout; a failure carries its stderr. Called from async
    /// code (on a multi-threaded runtime), it tells the runtime it blocks,
    /// so the watchers and clients on the same worker keep running.
    pub fn run_with(&self, args: &[&str], stdin: Option<&str>) -> Result<String> {
        blocking(|| self.run_blocking(args, stdin))
    }

    fn run_blocking(&self, args: &[&str], stdin: Option<&str>) -> Result<String> {
        use std::io::Write;
        let mut child = Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args)
            .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("running kubectl")?;
        if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
            pipe.write_all(input.as_bytes()).context("writing to kubectl")?;
        }
        let out = child.wait_with_output().context("waiting for kubectl")?;
        if !out.status.success() {
            bail!("kubectl {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Runs `kubectl args...`.
    pub fn run(&self, args: &[&str]) -> Result<String> {
        self.run_with(args, None)
    }

    /// `kubectl apply -f -` of `manifest`.
    pub fn apply(&self, manifest: &str) -> Result<String> {
        self.run_with(&["apply", "--server-side", "--force-conflicts", "-f", "-"], Some(manifest))
    }
}

/// The chart's objects the suite installs: the CRD and the RBAC (the
/// ServiceAccount, ClusterRole and binding, the Lease Role and binding),
/// rendered by Helm's engine exactly as `helm install` would.
#[derive(Debug)]
pub struct Chart {
    /// The CRD manifest from `charts/roster-operator/crds/`.
    pub crd: String,
    /// The RBAC manifests, one YAML stream.
    pub rbac: String,
    /// The operator's ServiceAccount name and namespace.
    pub service_account: (String, String),
}

/// The namespace the chart is rendered for (as `helm install -n`).
pub const OPERATOR_NAMESPACE: &str = "roster-system";

impl Chart {
    /// Renders `charts/roster-operator` with its defaults.
    pub fn render(env: &Env) -> Result<Chart> {
        let script = env.root.join("operator/tests/helm_render.py");
        let chart = env.root.join("charts/roster-operator");
        let out = Command::new(&env.helm_python).arg(script).arg(chart).arg("{}").output().context("rendering")?;
        if !out.status.success() {
            bail!("helm render: {}", String::from_utf8_lossy(&out.stderr));
        }
        let rendered: Value = serde_json::from_slice(&out.stdout).context("render output")?;
        let templates = rendered["rendered"].as_object().ok_or_else(|| anyhow!("no rendered templates"))?;
        let pick = |suffix: &str| -> Result<String> {
            templates
                .iter()
                .find(|(path, _)| path.ends_with(suffix))
                .and_then(|(_, m)| m.as_str().map(str::to_owned))
                .ok_or_else(|| anyhow!("the chart renders no {suffix}"))
        };
        let rbac = format!("{}\n---\n{}", pick("templates/serviceaccount.yaml")?, pick("templates/rbac.yaml")?);
        let crd = rendered["crds"][0]["data"].as_str().ok_or_else(|| anyhow!("the chart ships no CRD"))?.to_owned();
        let sa = rbac
            .lines()
            .skip_while(|l| !l.starts_with("kind: ServiceAccount"))
            .find_map(|l| l.trim().strip_prefix("name: "))
            .ok_or_else(|| anyhow!("no ServiceAccount in the chart"))?
            .to_owned();
        Ok(Chart { crd, rbac, service_account: (sa, OPERATOR_NAMESPACE.to_owned()) })
    }
}

/// Writes a kubeconfig that authenticates as the chart's ServiceAccount
/// (a token from `kubectl create token`) against the admin kubeconfig's
/// server and CA, with `namespace` as the context's namespace. Returns the
/// file's path.
pub fn service_account_kubeconfig(kubectl: &Kubectl, chart: &Chart, dir: &Path) -> Result<PathBuf> {
    let (sa, ns) = &chart.service_account;
    let token = kubectl.run(&["-n", ns, "create", "token", sa, "--duration=2h"])?.trim().to_owned();
    let view = kubectl.run(&["config", "view", "--raw", "--minify", "-o", "json"])?;
    let view: Value = serde_json::from_str(&view).context("kubeconfig JSON")?;
    let cluster = &view["clusters"][0]["cluster"];
    let server = cluster["server"].as_str().ok_or_else(|| anyhow!("no server in the kubeconfig"))?;
    let ca = cluster["certificate-authority-data"].as_str().ok_or_else(|| anyhow!("no CA in the kubeconfig"))?;
    // JSON is YAML: kube-rs and kubectl read it as a kubeconfig.
    let config = serde_json::json!({
        "apiVersion": "v1", "kind": "Config", "current-context": "operator",
        "clusters": [{"name": "roster", "cluster": {"server": server, "certificate-authority-data": ca}}],
        "users": [{"name": sa, "user": {"token": token}}],
        "contexts": [{"name": "operator", "context": {"cluster": "roster", "user": sa, "namespace": ns}}],
    });
    let path = dir.join("operator.kubeconfig");
    std::fs::write(&path, serde_json::to_vec_pretty(&config)?).context("writing the operator kubeconfig")?;
    Ok(path)
}
