//! Three in-process nodes forming a Raft group through a `cluster.conf`:
//! writes reaching followers (over HTTP, and through `RaftNode::write`, which
//! the gRPC `PersistentInstanceRequest` handler calls) are forwarded to the
//! leader, errors decided when applied come back through the forward
//! unchanged, and every member applies every write.

use crate::common;

use std::time::Duration;

use reqwest::Method;
use roster_node::RunningNode;
use serde_json::Value;

use common::{eventually, http_form, http_json, http_query, start};

const WAIT: Duration = Duration::from_secs(20);

/// Three loopback addresses of this test's own.
fn ips() -> Vec<String> {
    common::loopback_ips(3)
}

async fn start_cluster() -> (tempfile::TempDir, Vec<RunningNode>, Vec<String>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let ips = ips();
    let (conf, members) = common::member_file(dir.path(), &ips);
    let mut nodes = Vec::new();
    for ip in &ips {
        let mut config = common::member_config(ip, &conf);
        config.cluster.lookup.file_poll_interval = Duration::from_millis(100);
        config.cluster.report_timeout = Duration::from_millis(300);
        nodes.push(start(config).await);
    }
    (dir, nodes, members)
}

async fn leader(nodes: &[RunningNode]) -> usize {
    eventually("a leader all members agree on", WAIT, || async {
        let mut seen = Vec::new();
        for n in nodes {
            let s = http_json(&format!("http://{}/roster/v1/status", n.http_addr), &[]).await;
            seen.push((s["raft"]["leader"].as_str()?.to_owned(), s["raft"]["voters"].as_array()?.len()));
        }
        let (l, voters) = seen[0].clone();
        if voters != 3 || seen.iter().any(|x| x.0 != l) {
            return None;
        }
        nodes.iter().position(|n| n.member() == l)
    })
    .await
}

#[tokio::test]
async fn followers_forward_writes_and_errors_to_the_leader() {
    let (_dir, nodes, _members) = start_cluster().await;
    let l = leader(&nodes).await;
    let f1 = &nodes[(l + 1) % 3];
    let f2 = &nodes[(l + 2) % 3];
    let base = |n: &RunningNode| format!("http://{}", n.http_addr);

    // Create through one follower; the conflict is decided when applied and
    // travels back through the forward from the other follower.
    let svc = [("serviceName", "orders"), ("metadata", "k=v")];
    assert_eq!(http_form(Method::POST, &format!("{}/nacos/v1/ns/service", base(f1)), &svc).await, (200, "ok".into()));
    let (code, body) = http_form(Method::POST, &format!("{}/nacos/v1/ns/service", base(f2)), &svc).await;
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("already exists"), "{body}");

    // A persistent instance written on a follower the way the gRPC handler does.
    let raft = f2.raft();
    let key = roster_node::naming::ServiceKey::new("public", "DEFAULT_GROUP", "orders");
    let instance =
        roster_node::naming::Instance { ephemeral: false, ..roster_node::naming::Instance::new("127.0.0.1", 7001) };
    raft.write(roster_node::raft::Command::RegisterInstance { service: key.clone(), instance: instance.clone() })
        .await
        .expect("forwarded write");
    // Deleting the non-empty service through a follower: refused, unchanged.
    let (code, body) =
        http_query(Method::DELETE, &format!("{}/nacos/v1/ns/service", base(f1)), &[("serviceName", "orders")]).await;
    assert_eq!(code, 400, "{body}");
    // Every member applies both writes.
    for n in &nodes {
        eventually("every member holds the instance and the settings", WAIT, || async {
            let list: Value =
                http_json(&format!("{}/nacos/v1/ns/instance/list", base(n)), &[("serviceName", "orders")]).await;
            let detail: Value =
                http_json(&format!("{}/nacos/v1/ns/service", base(n)), &[("serviceName", "orders")]).await;
            (list["hosts"][0]["port"] == 7001 && detail["metadata"]["k"] == "v").then_some(())
        })
        .await;
    }
    for n in nodes {
        n.shutdown().await;
    }
}
