//! The admin plane: the status document (`docs/ARCHITECTURE.md`), health endpoints and
//! the Prometheus exposition of store sizes and connections.

use crate::common;

use roster_node::naming::{ClientKind, Instance, ServiceKey};
use serde_json::Value;

use common::{eventually, start, test_config};

#[tokio::test]
async fn status_health_and_metrics() {
    let node = start(test_config()).await;
    let base = format!("http://{}", node.http_addr);
    let key = ServiceKey::new("public", "DEFAULT_GROUP", "svc");
    let instance = Instance::new("10.0.0.1", 80);
    node.store().register_ephemeral("10.0.0.1:80#true", ClientKind::IpPort, &key, instance);

    // A standalone node is ready once it leads its single-voter Raft group.
    let status: Value = eventually("the standalone node is ready", std::time::Duration::from_secs(10), || async {
        let status: Value = reqwest::get(format!("{base}/roster/v1/status")).await.ok()?.json().await.ok()?;
        (status["ready"] == true).then_some(status)
    })
    .await;
    assert_eq!(status["member"], format!("127.0.0.1:{}", node.http_addr.port()));
    assert_eq!(status["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(status["lookup"], "standalone");
    assert_eq!(status["ready"], true);
    assert_eq!(status["members"][0]["address"], status["member"]);
    assert_eq!(status["members"][0]["state"], "UP");
    // Standalone: initialized at once, from no peer, responsible for everything.
    assert_eq!(status["distro"]["initialized"], true);
    assert!(status["distro"]["snapshotSource"].is_null());
    assert!(status["distro"]["snapshotLoadedAt"].as_str().is_some_and(|t| t.ends_with('Z')));
    assert_eq!(status["distro"]["responsibleClients"], 1);
    assert_eq!(status["distro"]["clients"], 1);
    assert_eq!(status["distro"]["pendingSyncs"], 0);
    let raft = &status["raft"];
    assert_eq!(raft["role"], "Leader", "{raft}");
    assert_eq!(raft["leader"], status["member"]);
    assert_eq!(raft["voters"], serde_json::json!([status["member"]]));
    assert_eq!(raft["learners"], serde_json::json!([]));
    assert!(raft["term"].as_u64().is_some_and(|t| t >= 1), "{raft}");
    assert!(raft["id"].as_str().is_some_and(|id| id.parse::<u64>().is_ok_and(|id| id != 0)), "{raft}");
    for index in ["lastLogIndex", "committedIndex", "appliedIndex"] {
        assert!(raft[index].as_u64().is_some(), "{index} in {raft}");
    }
    assert_eq!(status["store"]["instances"], 1);
    assert_eq!(status["store"]["services"], 1);

    for path in ["/nacos/v1/console/health/liveness", "/nacos/v1/console/health/readiness"] {
        let r = reqwest::get(format!("{base}{path}")).await.expect("GET");
        assert_eq!(r.status(), 200, "{path}");
    }

    let text = reqwest::get(format!("{base}/metrics")).await.expect("GET").text().await.expect("text");
    for line in ["roster_instances 1", "roster_services 1", "roster_clients 1", "roster_connections 0"] {
        assert!(text.lines().any(|l| l == line), "missing {line:?} in:\n{text}");
    }
    // Fault injection is off unless asked for: the path does not exist.
    let faults = reqwest::get(format!("{base}/roster/v1/faults")).await.expect("GET");
    assert_eq!(faults.status(), 404);
    node.shutdown().await;
}
