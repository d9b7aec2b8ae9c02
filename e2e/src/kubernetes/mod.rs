//! The Kubernetes e2e suite: the user's whole story on a real control
//! plane (kube-apiserver and kube-controller-manager v1.32 from
//! `../shared/kube`, pods run as local processes by its `kubelet.py`), with
//! real clients connected throughout.
//!
//! The story ([`run`]): install the chart's CRD and RBAC; run the operator
//! as a local process under the chart's ServiceAccount (RBAC enforced);
//! apply a 3-member RegistryCluster and `kubectl wait` for `Available`;
//! write at once and keep writing; scale to 5 and back to 3; roll the pod
//! template; `kill -9` the Raft leader; stop and restart the operator in
//! the middle of a roll; delete the RegistryCluster and create it again
//! over its kept volumes. After each step: every acknowledged persistent
//! write on every member, every live client's instance on every member and
//! never missing longer than a reconnect, the members agreeing, the
//! subscriber's pushes, the conditions' trail and the step's Events.
//!
//! # Layout
//!
//! * [`env`]: finding the control plane, `kubelet.py`, Helm and kubectl;
//!   rendering the chart; the ServiceAccount's kubeconfig.
//! * [`procs`]: the kubelet and operator processes.
//! * [`workload`]: the clients and the model of what they were told.
//! * [`observe`]: watchers of the RegistryCluster and its pods, samplers of
//!   the members and of the live clients' instances.
//! * [`checks`]: data convergence, Events, condition trails.
//! * [`story`]: set-up, judging, report, tear-down.
//! * `steps.rs` and `restarts.rs`: the steps.

pub mod checks;
pub mod env;
pub mod observe;
pub mod procs;
mod restarts;
mod steps;
pub mod story;
pub mod workload;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::Value;

use env::{Preflight, OPERATOR_NAMESPACE};
use story::{Stop, Story};

/// Runs the suite. Without a control plane it fails under `CI=true` and
/// skips, saying so loudly, otherwise.
pub async fn run() {
    let env = match Preflight::check() {
        Preflight::Ready(env) => env,
        Preflight::Missing(why) => {
            assert!(std::env::var("CI").as_deref() != Ok("true"), "the Kubernetes e2e suite must run in CI, but {why}");
            eprintln!("\n==========\nSKIPPED the Kubernetes e2e suite: {why}\n==========\n");
            return;
        }
    };
    let started = Instant::now();
    let mut story = Story::set_up(env).await.unwrap_or_else(|e| panic!("setting up the Kubernetes e2e suite: {e:#}"));
    let outcome = steps(&mut story).await;
    if outcome.is_err() {
        story.end();
    }
    story.tear_down();
    let report = story.report(started.elapsed());
    eprintln!("{report}");
    assert!(story.failures.is_empty(), "{report}");
}

async fn steps(s: &mut Story) -> Result<(), Stop> {
    install(s).await?;
    s.create().await?;
    s.scale_up().await?;
    s.scale_down().await?;
    s.rolling_update().await?;
    s.kill_leader().await?;
    s.operator_restart_mid_roll().await?;
    s.delete_and_recreate().await?;
    Ok(())
}

/// The chart's CRD and RBAC, the CRD's short name and image validation
/// against the real API server, the operator under the chart's
/// ServiceAccount, and its Lease in the kubeconfig's namespace.
async fn install(s: &mut Story) -> Result<(), Stop> {
    s.begin("install");
    let chart = s.install_chart();
    s.harness(chart)?;

    let short_names = live_short_names(s);
    let short_names = s.harness(short_names)?;
    let ours: Vec<&(String, String)> = short_names.iter().filter(|(_, r)| r == "registryclusters.roster.dev").collect();
    let clashes: Vec<&(String, String)> = short_names
        .iter()
        .filter(|(name, r)| r != "registryclusters.roster.dev" && ours.iter().any(|(n, _)| n == name))
        .collect();
    s.check(if ours.is_empty() {
        Err("the CRD has no short name".to_owned())
    } else if !clashes.is_empty() {
        Err(format!("the CRD's short name collides with {clashes:?}"))
    } else {
        Ok(())
    })?;
    let ns = s.namespace.clone();
    let listed = s.kubectl.run(&["-n", &ns, "get", &ours[0].0]);
    s.check(listed.map(|_| ()).map_err(|e| format!("kubectl get {} fails: {e:#}", ours[0].0)))?;

    let bad = steps::manifest(&ns, 3, "0").replace("image: roster-node:0.1.0", "image: \"roster-node:0.1.0 \"");
    let refused = s.kubectl.apply(&bad);
    s.check(match refused {
        Ok(_) => Err("an image with a trailing space was accepted".to_owned()),
        Err(e) if format!("{e:#}").contains("spec.image") => Ok(()),
        Err(e) => Err(format!("an image with a trailing space was refused for another reason: {e:#}")),
    })?;

    let started = s.operator.start();
    s.harness(started)?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let holder = s
            .kubectl
            .run(&[
                "-n",
                OPERATOR_NAMESPACE,
                "get",
                "lease",
                "roster-operator",
                "-o",
                "jsonpath={.spec.holderIdentity}",
            ])
            .unwrap_or_default();
        if !holder.trim().is_empty() {
            break;
        }
        if Instant::now() > deadline || !s.operator.running() {
            let log = s.operator.log();
            let tail: Vec<&str> = log.lines().rev().take(5).collect();
            return s.check(Err(format!(
                "the operator (no POD_NAMESPACE) took no Lease in {OPERATOR_NAMESPACE}, its kubeconfig's namespace: {tail:?}"
            )));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    s.end();
    Ok(())
}

/// `(short name, resource.group)` of every resource the API server serves.
fn live_short_names(s: &Story) -> anyhow::Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut versions = vec!["/api/v1".to_owned()];
    let groups: Value = serde_json::from_str(&s.kubectl.run(&["get", "--raw", "/apis"])?)?;
    for g in groups["groups"].as_array().into_iter().flatten() {
        if let Some(v) = g["preferredVersion"]["groupVersion"].as_str() {
            versions.push(format!("/apis/{v}"));
        }
    }
    let mut seen = BTreeSet::new();
    for path in versions {
        let list: Value = serde_json::from_str(&s.kubectl.run(&["get", "--raw", &path])?)?;
        let group = path.strip_prefix("/apis/").and_then(|v| v.split('/').next()).unwrap_or("");
        for r in list["resources"].as_array().into_iter().flatten() {
            let name = r["name"].as_str().unwrap_or_default();
            let resource = if group.is_empty() { name.to_owned() } else { format!("{name}.{group}") };
            for short in r["shortNames"].as_array().into_iter().flatten().filter_map(Value::as_str) {
                if seen.insert((short.to_owned(), resource.clone())) {
                    out.push((short.to_owned(), resource.clone()));
                }
            }
        }
    }
    Ok(out)
}
