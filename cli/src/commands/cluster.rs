//! `roster cluster get NAME`: a `RegistryCluster`'s status as the operator
//! wrote it, read from Kubernetes with the user's kubeconfig (`KUBECONFIG`,
//! else `~/.kube/config`, else the in-cluster service account), in the
//! context's namespace unless `--namespace` says otherwise.

use kube::api::Api;
use kube::Client;
use roster_crds::RegistryCluster;
use serde_json::{json, Value};

use crate::error::{Error, Result};
use crate::output::{cell, Report, Table};

/// `roster cluster get NAME`.
pub async fn get(name: &str, namespace: Option<&str>) -> Result<Report> {
    let config = kube::Config::infer().await.map_err(|e| Error::Kube(format!("no usable kubeconfig: {e}")))?;
    let namespace = namespace.map_or_else(|| config.default_namespace.clone(), str::to_owned);
    let target = config.cluster_url.to_string();
    let client = Client::try_from(config).map_err(|e| Error::Kube(format!("client for {target}: {e}")))?;
    let api: Api<RegistryCluster> = Api::namespaced(client, &namespace);
    let rc = api.get(name).await.map_err(|e| match e {
        kube::Error::Api(status) if status.code == 404 => {
            Error::Kube(format!("registrycluster {namespace}/{name} not found"))
        }
        kube::Error::Api(status) if status.code == 401 || status.code == 403 => Error::AuthRefused {
            target: target.clone(),
            message: format!("reading registrycluster {namespace}/{name}: {}", status.message),
        },
        kube::Error::Api(status) => {
            Error::Kube(format!("reading registrycluster {namespace}/{name}: {}", status.message))
        }
        other => Error::Unreachable { target: target.clone(), detail: other.to_string() },
    })?;
    Ok(report(&rc, &namespace))
}

/// The report of one resource.
pub fn report(rc: &RegistryCluster, namespace: &str) -> Report {
    let status = rc.status.clone().unwrap_or_default();
    let name = rc.metadata.name.clone().unwrap_or_default();
    let data = json!({
        "name": name, "namespace": namespace, "generation": rc.metadata.generation,
        "spec": {"replicas": rc.spec.replicas, "image": rc.spec.image},
        "status": serde_json::to_value(&status).unwrap_or(Value::Null),
    });
    let mut table = Table::new(&["POD", "ADDRESS", "STATE", "READY", "DISTRO", "SNAPSHOT", "RAFT", "APPLIED"]);
    table.note(format!(
        "registrycluster {namespace}/{name}: {} of {} ready, leader {}",
        status.ready_replicas,
        rc.spec.replicas,
        status.leader.as_deref().unwrap_or("none")
    ));
    for c in &status.conditions {
        table.note(format!("  {:<22} {:<7} {}: {}", c.type_, c.status, c.reason, c.message));
    }
    for m in &status.members {
        let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
        table.row(vec![
            m.name.clone(),
            opt(&m.address),
            opt(&m.state),
            if m.ready { "yes".into() } else { "no".into() },
            if m.distro_initialized { "loaded".into() } else { "loading".into() },
            opt(&m.snapshot_source),
            opt(&m.raft_role),
            m.applied_index.map_or_else(|| "-".into(), |i| cell(&json!(i))),
        ]);
    }
    Report { data, table }
}
