//! `roster cluster get` against a mocked Kubernetes API server at the HTTP
//! level: a real HTTP server on loopback that a kubeconfig points at. It
//! answers one RegistryCluster and records every request, and the test
//! asserts each call (method, path, the kubeconfig's token).

mod support;

use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use support::{failed, ok, roster};

/// One request the API server received: method, path and bearer token.
type Seen = Arc<Mutex<Vec<(String, String, Option<String>)>>>;

fn demo() -> Value {
    json!({
        "apiVersion": "roster.dev/v1alpha1", "kind": "RegistryCluster",
        "metadata": {"name": "demo", "namespace": "team-a", "generation": 3},
        "spec": {"replicas": 3, "image": "roster-node:0.1.0"},
        "status": {
            "observedGeneration": 3, "replicas": 3, "readyReplicas": 2,
            "leader": "demo-0.demo-headless.team-a.svc:8848",
            "members": [
                {"name": "demo-0", "address": "demo-0.demo-headless.team-a.svc:8848", "state": "UP", "ready": true,
                 "distroInitialized": true, "raftRole": "Leader", "appliedIndex": 42},
                {"name": "demo-1", "address": "demo-1.demo-headless.team-a.svc:8848", "state": "UP", "ready": true,
                 "distroInitialized": true, "snapshotSource": "demo-0.demo-headless.team-a.svc:8848",
                 "raftRole": "Follower", "appliedIndex": 42},
                {"name": "demo-2", "address": "demo-2.demo-headless.team-a.svc:8848", "state": "DOWN", "ready": false,
                 "distroInitialized": false}
            ],
            "conditions": [
                {"type": "Available", "status": "True", "reason": "RaftQuorum", "message": "2 of 3 voters follow the leader",
                 "lastTransitionTime": "2026-01-01T00:00:00Z", "observedGeneration": 3},
                {"type": "Degraded", "status": "True", "reason": "MembersDown", "message": "demo-2 is DOWN",
                 "lastTransitionTime": "2026-01-01T00:00:00Z", "observedGeneration": 3}
            ]
        }
    })
}

async fn registry_cluster(
    State(seen): State<Seen>,
    Path((namespace, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> (StatusCode, Json<Value>) {
    let token = headers.get("authorization").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let path = format!("/apis/roster.dev/v1alpha1/namespaces/{namespace}/registryclusters/{name}");
    seen.lock().expect("lock").push(("GET".into(), path, token));
    if (namespace.as_str(), name.as_str()) == ("team-a", "demo") {
        return (StatusCode::OK, Json(demo()));
    }
    let status = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                        "message": format!("registryclusters.roster.dev \"{name}\" not found"),
                        "reason": "NotFound", "code": 404});
    (StatusCode::NOT_FOUND, Json(status))
}

/// Serves the mocked API on loopback; returns its address.
async fn api_server(seen: Seen) -> std::net::SocketAddr {
    let app = Router::new()
        .route("/apis/roster.dev/v1alpha1/namespaces/{namespace}/registryclusters/{name}", get(registry_cluster))
        .fallback(|State(seen): State<Seen>, method: axum::http::Method, uri: axum::http::Uri| async move {
            // Recorded, so that the list of calls the test asserts shows it.
            seen.lock().expect("lock").push((format!("unexpected {method}"), uri.to_string(), None));
            StatusCode::NOT_FOUND
        })
        .with_state(seen);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
    addr
}

fn kubeconfig(dir: &std::path::Path, server: &str) -> std::path::PathBuf {
    let path = dir.join("kubeconfig");
    let text = format!(
        "apiVersion: v1\nkind: Config\ncurrent-context: test\n\
         clusters:\n- name: mock\n  cluster:\n    server: {server}\n\
         users:\n- name: tester\n  user:\n    token: test-token\n\
         contexts:\n- name: test\n  context:\n    cluster: mock\n    user: tester\n    namespace: team-a\n"
    );
    std::fs::write(&path, text).expect("kubeconfig");
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_get_reads_the_status_with_the_kubeconfig() {
    let seen: Seen = Arc::default();
    let addr = api_server(seen.clone()).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = kubeconfig(dir.path(), &format!("http://{addr}")).to_str().expect("utf-8").to_owned();
    // The binary runs off the runtime's workers: the mocked API server answers meanwhile.
    let run = |args: &'static [&'static str]| {
        let config = config.clone();
        tokio::task::spawn_blocking(move || roster(args, &[("KUBECONFIG", config.as_str())]))
    };

    // The context's namespace, as a table.
    let out = run(&["cluster", "get", "demo"]).await.expect("ran");
    let table = ok(&out);
    assert!(
        table.starts_with("registrycluster team-a/demo: 2 of 3 ready, leader demo-0.demo-headless.team-a.svc:8848\n"),
        "{table}"
    );
    assert!(table.contains("Degraded") && table.contains("demo-2 is DOWN"), "{table}");
    let row = table.lines().find(|l| l.starts_with("demo-1")).expect("demo-1 row");
    for cell in ["UP", "yes", "loaded", "demo-0.demo-headless.team-a.svc:8848", "Follower", "42"] {
        assert!(row.contains(cell), "{cell} in {row}");
    }
    assert!(table.lines().any(|l| l.starts_with("demo-2") && l.contains("DOWN") && l.contains("loading")), "{table}");

    // An explicit namespace, as JSON: the status as the operator wrote it.
    let out = run(&["cluster", "get", "demo", "--namespace", "team-a", "-o", "json"]).await.expect("ran");
    let data: Value = serde_json::from_str(&ok(&out)).expect("JSON");
    assert_eq!(data["status"]["readyReplicas"], 2);
    assert_eq!(data["status"]["members"][1]["snapshotSource"], "demo-0.demo-headless.team-a.svc:8848");
    assert_eq!(data["spec"]["replicas"], 3);

    // Not there: one line, exit 1.
    let out = run(&["cluster", "get", "nope", "-n", "other"]).await.expect("ran");
    let (code, line) = failed(&out);
    assert_eq!(code, 1, "{line}");
    assert_eq!(line, "roster: kubernetes: registrycluster other/nope not found");

    let calls = seen.lock().expect("lock").clone();
    let bearer = Some("Bearer test-token".to_string());
    assert_eq!(
        calls,
        [
            ("GET".into(), "/apis/roster.dev/v1alpha1/namespaces/team-a/registryclusters/demo".into(), bearer.clone()),
            ("GET".into(), "/apis/roster.dev/v1alpha1/namespaces/team-a/registryclusters/demo".into(), bearer.clone()),
            ("GET".into(), "/apis/roster.dev/v1alpha1/namespaces/other/registryclusters/nope".into(), bearer),
        ]
    );
}

#[test]
fn cluster_get_without_a_kubeconfig_says_so() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("missing");
    let missing = missing.to_str().expect("utf-8");
    // No KUBECONFIG file, no home config, not in a pod.
    let (code, line) = failed(&roster(&["cluster", "get", "demo"], &[("KUBECONFIG", missing), ("HOME", missing)]));
    assert_eq!(code, 1, "{line}");
    assert!(line.starts_with("roster: kubernetes: no usable kubeconfig"), "{line}");
}
