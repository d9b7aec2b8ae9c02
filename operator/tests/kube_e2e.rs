//! Real-cluster test, run only when `ROSTER_E2E_KUBECONFIG` names a
//! kubeconfig (it prints "skipped: ROSTER_E2E_KUBECONFIG not set" and passes
//! otherwise). It installs the chart, applies the example RegistryCluster,
//! waits for `Available`, scales 3 → 5 and waits for `SnapshotBootstrapped`
//! and `MembershipConverged`, scales back to 3, changes the pod template and
//! waits until every pod runs it, deletes the cluster and
//! checks that the owned objects are gone.
//!
//! Needs `helm` on the PATH (or `ROSTER_E2E_HELM`) and the two images
//! reachable by the cluster:
//!
//! | variable | default |
//! |---|---|
//! | `ROSTER_E2E_KUBECONFIG` | (required) |
//! | `ROSTER_E2E_NAMESPACE` | `roster-e2e` (must exist; the chart goes there too) |
//! | `ROSTER_E2E_OPERATOR_IMAGE` | `roster-operator:0.1.0` |
//! | `ROSTER_E2E_NODE_IMAGE` | `roster-node:0.1.0` |
//! | `ROSTER_E2E_HELM` | `helm` |

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, ResourceExt};
use roster_crds::{is_condition_true, RegistryCluster, CONDITION_AVAILABLE};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(600);

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

async fn client(kubeconfig: &str) -> Client {
    let config = Kubeconfig::read_from(kubeconfig).expect("readable kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(config, &KubeConfigOptions::default()).await.expect("config");
    Client::try_from(config).expect("client")
}

/// Polls until `rc` satisfies `check`, with the current generation observed.
async fn wait_for(api: &Api<RegistryCluster>, what: &str, check: impl Fn(&RegistryCluster) -> bool) {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Ok(rc) = api.get("demo").await {
            let current = rc.status.as_ref().and_then(|s| s.observed_generation) == rc.metadata.generation;
            if current && check(&rc) {
                return;
            }
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

fn condition(types: &'static [&'static str]) -> impl Fn(&RegistryCluster) -> bool {
    move |rc| rc.status.as_ref().is_some_and(|s| types.iter().all(|t| is_condition_true(&s.conditions, t)))
}

async fn gone<K>(api: Api<K>, name: &str)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let deadline = Instant::now() + WAIT;
    while api.get_opt(name).await.ok().flatten().is_some() {
        assert!(Instant::now() < deadline, "{name} was not garbage-collected");
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

#[tokio::test]
async fn install_scale_and_delete_on_a_real_cluster() {
    let Ok(kubeconfig) = std::env::var("ROSTER_E2E_KUBECONFIG") else {
        println!("skipped: ROSTER_E2E_KUBECONFIG not set");
        return;
    };
    let ns = env_or("ROSTER_E2E_NAMESPACE", "roster-e2e");
    let operator_image = env_or("ROSTER_E2E_OPERATOR_IMAGE", "roster-operator:0.1.0");
    let node_image = env_or("ROSTER_E2E_NODE_IMAGE", "roster-node:0.1.0");
    let (repository, tag) = operator_image.rsplit_once(':').unwrap_or((operator_image.as_str(), "0.1.0"));
    let chart = Path::new(env!("CARGO_MANIFEST_DIR")).join("../charts/roster-operator");

    let helm = env_or("ROSTER_E2E_HELM", "helm");
    let status = Command::new(&helm)
        .args(["upgrade", "--install", "roster-operator"])
        .arg(&chart)
        .args(["--namespace", &ns, "--kubeconfig", &kubeconfig, "--wait", "--timeout", "5m"])
        .args(["--set", &format!("image.repository={repository}"), "--set", &format!("image.tag={tag}")])
        .status()
        .expect("running helm");
    assert!(status.success(), "helm install failed");

    let client = client(&kubeconfig).await;
    let api: Api<RegistryCluster> = Api::namespaced(client.clone(), &ns);
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../crds/examples/registrycluster.yaml");
    let text = std::fs::read_to_string(example).expect("example manifest");
    let mut rc: RegistryCluster = serde_norway::from_str(&text).expect("the example parses");
    rc.spec.image = node_image;
    rc.metadata.namespace = Some(ns.clone());
    let apply = PatchParams::apply("roster-e2e").force();
    api.patch("demo", &apply, &Patch::Apply(&rc)).await.expect("apply the example");
    wait_for(&api, "Available", condition(&[CONDITION_AVAILABLE])).await;

    // kubectl scale registrycluster/demo --replicas=5
    api.patch_scale("demo", &PatchParams::default(), &Patch::Merge(json!({"spec": {"replicas": 5}})))
        .await
        .expect("scale to 5");
    wait_for(&api, "5 members bootstrapped and converged", |rc| {
        condition(&["SnapshotBootstrapped", "MembershipConverged"])(rc)
            && rc.status.as_ref().is_some_and(|s| s.members.len() == 5)
    })
    .await;

    api.patch_scale("demo", &PatchParams::default(), &Patch::Merge(json!({"spec": {"replicas": 3}})))
        .await
        .expect("scale to 3");
    let statefulsets: Api<StatefulSet> = Api::namespaced(client.clone(), &ns);
    wait_for(&api, "back to 3 converged members", condition(&["MembershipConverged", CONDITION_AVAILABLE])).await;
    let sts = statefulsets.get("demo").await.expect("statefulset");
    assert_eq!(sts.spec.replicas, Some(3));

    // A change of pod settings rolls the members one at a time, leader last.
    let roll = json!({"spec": {"annotations": {"roster.dev/e2e-roll": "1"}}});
    api.patch("demo", &PatchParams::default(), &Patch::Merge(roll)).await.expect("change the pod template");
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let deadline = Instant::now() + WAIT;
    loop {
        let sts = statefulsets.get("demo").await.expect("statefulset");
        let revision = sts.status.as_ref().and_then(|s| s.update_revision.clone());
        let listed = pods
            .list(&ListParams::default().labels(&roster_operator::names::selector_string("demo")))
            .await
            .expect("pods");
        let rolled = listed.items.len() == 3
            && listed.items.iter().all(|p| p.labels().get("controller-revision-hash") == revision.as_ref());
        if rolled && api.get("demo").await.is_ok_and(|rc| condition(&[CONDITION_AVAILABLE])(&rc)) {
            break;
        }
        assert!(Instant::now() < deadline, "timed out waiting for the rolling update");
        tokio::time::sleep(Duration::from_secs(2)).await;
    }

    api.delete("demo", &DeleteParams::foreground()).await.expect("delete");
    gone(statefulsets, "demo").await;
    gone(Api::<Service>::namespaced(client.clone(), &ns), "demo").await;
    gone(Api::<Service>::namespaced(client.clone(), &ns), "demo-headless").await;
    gone(Api::<ConfigMap>::namespaced(client.clone(), &ns), "demo-config").await;
    gone(Api::<PodDisruptionBudget>::namespaced(client, &ns), "demo").await;
}
