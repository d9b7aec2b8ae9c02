//! The story's frame: setting up the control plane's pieces, running the
//! steps in order, judging each, and the report.
//!
//! By default the first failed check ends the run with the step's name and
//! what was wrong. With `ROSTER_KUBE_E2E_KEEP_GOING=1` every failure is
//! recorded and the later steps still run, so one run shows every problem;
//! the run fails at the end all the same.

use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use k8s_openapi::jiff::Timestamp;
use kube::config::{KubeConfigOptions, Kubeconfig};
use tokio::task::JoinHandle;

use super::env::{service_account_kubeconfig, Chart, Env, Kubectl, OPERATOR_NAMESPACE};
use super::observe::Observer;
use super::procs::{Kubelet, Operator};
use super::workload::{SdkClient, Shared};
use crate::binary;

/// The RegistryCluster's name.
pub const NAME: &str = "demo";
/// Label on the namespaces the suite creates, so a later run removes what
/// an interrupted one left.
const NAMESPACE_LABEL: &str = "roster.dev/e2e";

/// Whose promise a check tests: the operator's (objects, ordering,
/// conditions, Events) or the registry nodes' (data, membership, Raft).
/// The report groups failures by it, because the two are fixed in
/// different places.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The operator, its chart and its CRD.
    Operator,
    /// The `roster-node` members.
    Node,
}

/// A check that failed: the step and what was wrong.
#[derive(Debug, Clone)]
pub struct Failure {
    /// The step.
    pub step: String,
    /// Whose promise it broke.
    pub side: Side,
    /// What was wrong.
    pub what: String,
}

/// Raised to stop the story at the first failure (fail-fast mode).
#[derive(Debug)]
pub struct Stop;

/// Everything the steps share.
pub struct Story {
    /// The environment.
    pub env: Env,
    /// `kubectl` as the admin.
    pub kubectl: Kubectl,
    /// A client as the admin, for watching and reading.
    pub client: kube::Client,
    /// The namespace of the RegistryCluster.
    pub namespace: String,
    /// The temporary folder: logs, the kubelet's state, kubeconfigs.
    pub dir: tempfile::TempDir,
    /// The test kubelet (dropped last but one: it stops the pods).
    pub kubelet: Option<Kubelet>,
    /// The operator.
    pub operator: Operator,
    /// The workload's shared state.
    pub shared: Shared,
    /// Watchers and samplers, once the RegistryCluster exists.
    pub observer: Option<Observer>,
    /// The SDK subscriber.
    pub subscriber: Option<SdkClient>,
    /// SDK publishers, by name.
    pub publishers: Vec<(String, SdkClient)>,
    /// HTTP clients, persistent writers, health-check listeners.
    pub tasks: Vec<JoinHandle<()>>,
    /// Failed checks.
    pub failures: Vec<Failure>,
    /// Whether a failed check lets the story go on.
    pub keep_going: bool,
    /// Each step's name, duration and number of failed checks.
    pub timeline: Vec<(String, Duration, usize)>,
    /// Things seen that are no failure but worth a reader's eye, by step.
    pub notes: Vec<(String, String)>,
    /// The step running now and since when (monotonic and wall clock).
    pub current: (String, Instant, Timestamp),
    /// When the story began.
    pub started: Instant,
}

impl Story {
    /// Installs the chart's CRD and RBAC, starts the kubelet and the
    /// operator (under the chart's ServiceAccount) and creates a fresh
    /// namespace.
    pub async fn set_up(env: Env) -> Result<Story> {
        let kubectl = Kubectl::new(&env.kubeconfig);
        let kubeconfig = Kubeconfig::read_from(&env.kubeconfig).context("reading the admin kubeconfig")?;
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?;
        let client = kube::Client::try_from(config)?;
        let dir = tempfile::Builder::new().prefix("roster-kube-e2e-").tempdir()?;
        let node = binary("roster-node", "roster-node")?;
        let operator_binary = binary("roster-operator", "roster-operator")?;
        // What an interrupted run left behind goes first (the kubelet
        // force-deletes pods nobody runs).
        let stale = kubectl.run(&["get", "namespaces", "-l", NAMESPACE_LABEL, "-o", "name"])?;
        let kubelet = Kubelet::start(&env, &node, dir.path())?;
        for ns in stale.lines().filter(|l| !l.is_empty()) {
            kubectl.run(&["delete", ns, "--wait=true", "--timeout=60s"])?;
        }
        let namespace = format!("kube-e2e-{}", std::process::id());
        kubectl.run(&["create", "namespace", &namespace])?;
        kubectl.run(&["label", "namespace", &namespace, &format!("{NAMESPACE_LABEL}=kube")])?;
        let ns_yaml = format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {OPERATOR_NAMESPACE}\n");
        kubectl.apply(&ns_yaml)?;
        let operator_kubeconfig = dir.path().join("operator.kubeconfig");
        let operator = Operator::new(&operator_binary, &operator_kubeconfig, &dir.path().join("operator.log"));
        let now = (String::from("set-up"), Instant::now(), Timestamp::now());
        let story = Story {
            env,
            kubectl,
            client,
            namespace,
            dir,
            kubelet: Some(kubelet),
            operator,
            shared: Shared::default(),
            observer: None,
            subscriber: None,
            publishers: Vec::new(),
            tasks: Vec::new(),
            failures: Vec::new(),
            keep_going: std::env::var("ROSTER_KUBE_E2E_KEEP_GOING").is_ok_and(|v| v == "1"),
            timeline: Vec::new(),
            notes: Vec::new(),
            started: now.1,
            current: now,
        };
        Ok(story)
    }

    /// Installs the chart's CRD and RBAC and writes the operator's
    /// ServiceAccount kubeconfig.
    pub fn install_chart(&self) -> Result<Chart> {
        let chart = Chart::render(&self.env)?;
        self.kubectl.apply(&chart.crd)?;
        self.kubectl.run(&[
            "wait",
            "--for=condition=Established",
            "crd/registryclusters.roster.dev",
            "--timeout=30s",
        ])?;
        self.kubectl.apply(&chart.rbac)?;
        service_account_kubeconfig(&self.kubectl, &chart, self.dir.path())?;
        Ok(chart)
    }

    /// Begins a step: its name is what failures and the timeline carry.
    pub fn begin(&mut self, step: &str) {
        self.current = (step.to_owned(), Instant::now(), Timestamp::now());
        let since = self.current.1.saturating_duration_since(self.started).as_secs_f64();
        if let Some(o) = &self.observer {
            o.mark(format!("step {step} at {since:.2}"));
        }
        if let Ok(mut s) = self.shared.step.lock() {
            step.clone_into(&mut s);
        }
        eprintln!("== kube e2e: {step}");
    }

    /// Ends the current step.
    pub fn end(&mut self) {
        let (step, since, _) = &self.current;
        let failed = self.failures.iter().filter(|f| &f.step == step).count();
        eprintln!("   {step}: {:.1} s{}", since.elapsed().as_secs_f64(), if failed > 0 { ", FAILED" } else { "" });
        self.timeline.push((step.clone(), since.elapsed(), failed));
    }

    /// Judges one check of the operator's behaviour in the current step.
    pub fn check(&mut self, outcome: std::result::Result<(), String>) -> std::result::Result<(), Stop> {
        self.check_on(Side::Operator, outcome)
    }

    /// Judges one check of the members' behaviour in the current step.
    pub fn check_node(&mut self, outcome: std::result::Result<(), String>) -> std::result::Result<(), Stop> {
        self.check_on(Side::Node, outcome)
    }

    fn check_on(&mut self, side: Side, outcome: std::result::Result<(), String>) -> std::result::Result<(), Stop> {
        match outcome {
            Ok(()) => Ok(()),
            Err(what) => {
                let step = self.current.0.clone();
                eprintln!("   FAILED ({side:?} side) in {step}: {what}");
                self.failures.push(Failure { step, side, what });
                if self.keep_going {
                    Ok(())
                } else {
                    Err(Stop)
                }
            }
        }
    }

    /// Records a note for the report.
    pub fn note(&mut self, what: String) {
        eprintln!("   note: {what}");
        self.notes.push((self.current.0.clone(), what));
    }

    /// A harness error (the suite itself could not do something) as a
    /// failed check.
    pub fn harness<T>(&mut self, result: Result<T>) -> std::result::Result<T, Stop> {
        result.map_err(|e| {
            let step = self.current.0.clone();
            eprintln!("   FAILED in {step}: {e:#}");
            self.failures.push(Failure { step, side: Side::Operator, what: format!("harness: {e:#}") });
            Stop
        })
    }

    /// The observer (the steps after creation have one).
    pub fn observer(&self) -> &Observer {
        self.observer.as_ref().unwrap_or_else(|| panic!("the observer starts with the RegistryCluster"))
    }

    /// Member names `0..n`.
    pub fn members(&self, n: i32) -> Vec<String> {
        (0..n).map(|i| format!("{NAME}-{i}.{NAME}-headless.{}.svc:8848", self.namespace)).collect()
    }

    /// The report: the timeline, then every failure by step.
    pub fn report(&self, total: Duration) -> String {
        let count = |side| self.failures.iter().filter(|f| f.side == side).count();
        let mut out = format!(
            "Kubernetes e2e suite, {:.1} s in all; failed checks: {} operator side, {} node side\n",
            total.as_secs_f64(),
            count(Side::Operator),
            count(Side::Node)
        );
        for (step, took, failed) in &self.timeline {
            let outcome = if *failed == 0 { "ok".to_owned() } else { format!("{failed} failed check(s)") };
            out.push_str(&format!("  {step:<28} {:>6.1} s  {outcome}\n", took.as_secs_f64()));
        }
        let model = self.shared.model();
        out.push_str(&format!(
            "  persistent writes: {} acknowledged, {} not; HTTP re-registrations after a lost instance: {}\n",
            model.persistent_acks,
            model.persistent_unacked,
            model.http_lost.len()
        ));
        for (step, what) in &self.notes {
            out.push_str(&format!("note {step}: {what}\n"));
        }
        for side in [Side::Operator, Side::Node] {
            for f in self.failures.iter().filter(|f| f.side == side) {
                out.push_str(&format!("FAILED ({side:?} side) {}: {}\n", f.step, f.what));
            }
        }
        out.push_str(&format!(
            "logs: {} (history.txt, kubelet.log, operator.log, kubelet/logs/)\n",
            self.dir.path().display()
        ));
        out
    }

    /// Stops everything the story started, clients first, the kubelet (and
    /// so the pods) last, and deletes the namespace.
    pub fn tear_down(&mut self) {
        for task in self.tasks.drain(..) {
            task.abort();
        }
        self.publishers.clear();
        self.subscriber = None;
        if let Some(observer) = self.observer.take() {
            let _ = std::fs::write(self.dir.path().join("history.txt"), observer.history(self.started));
        }
        self.operator.stop();
        let _ = self.kubectl.run(&["delete", "namespace", &self.namespace, "--wait=true", "--timeout=60s"]);
        self.kubelet = None;
        // The logs of a failed run stay for whoever reads the report.
        self.dir.disable_cleanup(!self.failures.is_empty());
    }
}
