//! The Helm chart renders and lints with the real Helm engine, and every
//! rendered object parses as its Kubernetes type.
//!
//! Helm comes from the `helm-python-sdk` package (Helm's Go library behind a
//! C ABI, no `helm` binary). `.ci/run` installs it; on a machine without it
//! the test says so and passes (except under `CI`, where it fails). Set
//! `ROSTER_PYTHON` to pick the interpreter.

use std::path::{Path, PathBuf};
use std::process::Command;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Service, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde::Deserialize;
use serde_json::Value;

fn chart_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../charts/roster-operator")
}

fn python() -> String {
    std::env::var("ROSTER_PYTHON").unwrap_or_else(|_| "python3".into())
}

/// Renders the chart with `values` (JSON), or `None` when Helm is not installed.
fn render(values: &str) -> Option<Value> {
    let probe = Command::new(python()).args(["-c", "import helm_python"]).output();
    if !probe.is_ok_and(|o| o.status.success()) {
        // CI installs it (.ci/run); there a missing Helm is a failure, not a skip.
        assert!(std::env::var("CI").is_err(), "CI is set but helm-python-sdk is not importable by {}", python());
        println!("skipped: helm-python-sdk is not installed (pip install helm-python-sdk)");
        return None;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/helm_render.py");
    let out = Command::new(python()).arg(script).arg(chart_dir()).arg(values).output().expect("running python");
    assert!(out.status.success(), "helm render failed: {}", String::from_utf8_lossy(&out.stderr));
    Some(serde_json::from_slice(&out.stdout).expect("render output is JSON"))
}

/// Every rendered object, parsed as its Kubernetes type.
#[derive(Default)]
struct Objects {
    deployments: Vec<Deployment>,
    services: Vec<Service>,
    service_accounts: Vec<ServiceAccount>,
    cluster_roles: Vec<ClusterRole>,
    cluster_role_bindings: Vec<ClusterRoleBinding>,
    roles: Vec<Role>,
    role_bindings: Vec<RoleBinding>,
    crds: Vec<CustomResourceDefinition>,
}

fn parse<T: serde::de::DeserializeOwned>(doc: serde_norway::Value, source: &str) -> T {
    // Through JSON so the k8s-openapi deserializers see the same data the API server would.
    let json = serde_json::to_value(doc).expect("YAML maps to JSON");
    serde_json::from_value(json).unwrap_or_else(|e| panic!("{source}: not a valid {}: {e}", std::any::type_name::<T>()))
}

fn collect(objects: &mut Objects, source: &str, manifest: &str) {
    for document in serde_norway::Deserializer::from_str(manifest) {
        let doc = serde_norway::Value::deserialize(document).unwrap_or_else(|e| panic!("{source}: bad YAML: {e}"));
        if doc.is_null() {
            continue;
        }
        let kind = doc.get("kind").and_then(|k| k.as_str()).unwrap_or_default().to_owned();
        match kind.as_str() {
            "Deployment" => objects.deployments.push(parse(doc, source)),
            "Service" => objects.services.push(parse(doc, source)),
            "ServiceAccount" => objects.service_accounts.push(parse(doc, source)),
            "ClusterRole" => objects.cluster_roles.push(parse(doc, source)),
            "ClusterRoleBinding" => objects.cluster_role_bindings.push(parse(doc, source)),
            "Role" => objects.roles.push(parse(doc, source)),
            "RoleBinding" => objects.role_bindings.push(parse(doc, source)),
            "CustomResourceDefinition" => objects.crds.push(parse(doc, source)),
            other => panic!("{source}: unexpected kind {other:?}"),
        }
    }
}

fn objects_of(out: &Value) -> Objects {
    let mut objects = Objects::default();
    for (path, manifest) in out["rendered"].as_object().expect("rendered map") {
        if path.ends_with(".yaml") {
            collect(&mut objects, path, manifest.as_str().expect("manifest text"));
        }
    }
    for crd in out["crds"].as_array().expect("crds") {
        collect(&mut objects, crd["name"].as_str().unwrap_or("crd"), crd["data"].as_str().expect("crd text"));
    }
    objects
}

fn rule_allows(rules: &[PolicyRule], group: &str, resource: &str, verb: &str) -> bool {
    rules.iter().any(|r| {
        r.api_groups.as_ref().is_some_and(|g| g.iter().any(|g| g == group))
            && r.resources.as_ref().is_some_and(|rs| rs.iter().any(|x| x == resource))
            && r.verbs.iter().any(|v| v == verb)
    })
}

#[test]
fn chart_lints_and_renders_valid_objects() {
    let Some(out) = render("{}") else { return };
    let lint = &out["lint"];
    assert_eq!(lint["errors"], Value::Array(vec![]), "lint errors: {lint}");
    let serious: Vec<&Value> =
        lint["messages"].as_array().expect("messages").iter().filter(|m| m["severity"].as_i64() >= Some(2)).collect();
    assert!(serious.is_empty(), "lint warnings or errors: {serious:?}");

    let o = objects_of(&out);
    assert_eq!(o.deployments.len(), 1);
    assert_eq!(o.services.len(), 1);
    assert_eq!(o.service_accounts.len(), 1);
    assert_eq!((o.cluster_roles.len(), o.cluster_role_bindings.len()), (1, 1));
    assert_eq!((o.roles.len(), o.role_bindings.len()), (1, 1), "the Lease Role");
    assert_eq!(o.crds.len(), 1);

    // The CRD shipped with the chart is the one the Rust types generate.
    assert_eq!(o.crds[0], roster_crds::crd(), "charts/roster-operator/crds is stale: copy crds/registrycluster.yaml");

    // The operator tells member pods to poll its own Service.
    let svc = &o.services[0];
    let svc_name = svc.metadata.name.clone().expect("service name");
    let ports: Vec<i32> =
        svc.spec.as_ref().and_then(|s| s.ports.clone()).unwrap_or_default().iter().map(|p| p.port).collect();
    assert_eq!(ports, vec![8080, 9090]);
    let deployment = &o.deployments[0];
    let pod = deployment.spec.template.spec.as_ref().expect("pod spec");
    let env = pod.containers[0].env.clone().unwrap_or_default();
    let value = |name: &str| env.iter().find(|e| e.name == name).and_then(|e| e.value.clone());
    assert_eq!(value("ROSTER_OPERATOR_ADDRESS_SERVER_URL"), Some(format!("http://{svc_name}.roster-system.svc:8080")));
    assert_eq!(value("ROSTER_OPERATOR_LEADER_ELECTION").as_deref(), Some("true"));
    assert!(env.iter().any(|e| e.name == "POD_NAMESPACE" && e.value_from.is_some()));
    assert_eq!(pod.service_account_name, o.service_accounts[0].metadata.name);

    // Least privilege: what the controller needs, no wildcards, no delete.
    let rules = o.cluster_roles[0].rules.clone().unwrap_or_default();
    for (group, resource, verb) in [
        ("roster.dev", "registryclusters", "watch"),
        ("roster.dev", "registryclusters/status", "patch"),
        ("apps", "statefulsets", "patch"),
        ("", "services", "patch"),
        ("", "configmaps", "patch"),
        ("policy", "poddisruptionbudgets", "patch"),
        ("events.k8s.io", "events", "create"),
        ("", "pods", "list"),
        ("", "pods", "watch"),
        ("events.k8s.io", "events", "list"),
        ("", "pods/eviction", "create"),
        ("", "secrets", "create"),
    ] {
        assert!(rule_allows(&rules, group, resource, verb), "missing {verb} on {group}/{resource}");
    }
    for r in &rules {
        assert!(!r.verbs.iter().any(|v| v == "*" || v == "delete" || v == "deletecollection"), "{r:?}");
        assert!(!r.resources.iter().flatten().any(|x| x == "*"), "{r:?}");
        // Secrets: only the cluster secret's existence check and its one-time
        // creation; never list, watch, update or patch (no reading of others' Secrets in bulk).
        if r.resources.iter().flatten().any(|x| x == "secrets") {
            let mut verbs = r.verbs.clone();
            verbs.sort();
            assert_eq!(verbs, ["create", "get"], "{r:?}");
        }
    }
    assert!(!rule_allows(&rules, "coordination.k8s.io", "leases", "update"), "leases stay namespaced");
    let lease_rules = o.roles[0].rules.clone().unwrap_or_default();
    assert!(rule_allows(&lease_rules, "coordination.k8s.io", "leases", "update"));
}

#[test]
fn chart_values_switch_things_off() {
    let Some(out) = render(
        r#"{"rbac": {"create": false}, "serviceAccount": {"create": false}, "leaderElection": {"enabled": false}, "replicaCount": 2}"#,
    ) else {
        return;
    };
    let o = objects_of(&out);
    assert!(o.cluster_roles.is_empty() && o.roles.is_empty() && o.service_accounts.is_empty());
    let deployment = &o.deployments[0];
    assert_eq!(deployment.spec.replicas, Some(2));
    let env = deployment.spec.template.spec.as_ref().map(|p| p.containers[0].env.clone());
    let election = env.flatten().unwrap_or_default().into_iter().find(|e| e.name == "ROSTER_OPERATOR_LEADER_ELECTION");
    assert_eq!(election.and_then(|e| e.value).as_deref(), Some("false"));
}
