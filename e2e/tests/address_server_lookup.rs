//! A real `roster-node` pointed at the operator's address server follows
//! the list it serves (DESIGN §4, §8): members added to the list appear in
//! the node's member view, members removed from it disappear.

use std::time::Duration;

use roster_e2e::{eventually, loopback_ips, NodeProcess};
use roster_operator::{AddressServer, ServerLists};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(20);

async fn member_addresses(node: &NodeProcess) -> Option<Vec<String>> {
    let status: Value = reqwest::get(format!("http://{}/roster/v1/status", node.http)).await.ok()?.json().await.ok()?;
    let mut members: Vec<String> =
        status["members"].as_array()?.iter().filter_map(|m| m["address"].as_str().map(str::to_owned)).collect();
    members.sort();
    Some(members)
}

async fn wait_for_members(node: &NodeProcess, expected: &[String], what: &str) {
    let mut expected = expected.to_vec();
    expected.sort();
    eventually(what, WAIT, || {
        let expected = expected.clone();
        async move { (member_addresses(node).await? == expected).then_some(()) }
    })
    .await;
}

#[tokio::test]
async fn a_node_follows_the_address_server_list() {
    let lists = ServerLists::new();
    let ips = loopback_ips(3);
    let members: Vec<String> = ips.iter().map(|ip| format!("{ip}:8848")).collect();
    lists.set("ns", "demo", vec![members[0].clone()]);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (addr, server) = AddressServer::new(lists.clone())
        .spawn("127.0.0.1:0".parse().expect("addr"), async {
            let _ = stopped.await;
        })
        .await
        .expect("address server starts");

    let url = format!("http://{addr}/v1/clusters/ns/demo/serverlist");
    let secret = roster_e2e::cluster::cluster_secret();
    let args = [
        "--cluster-secret",
        &secret,
        "--bind",
        &ips[0],
        "--advertise",
        &members[0],
        "--lookup",
        "address-server",
        "--address-server-url",
        &url,
        "--address-server-poll-interval",
        "100ms",
        "--member-report-interval",
        "200ms",
        "--member-report-timeout",
        "200ms",
    ];
    let mut node = NodeProcess::start(&args, &[]).expect("node starts");
    wait_for_members(&node, &members[..1], "the node alone on the initial list").await;

    // Scale up: two more members are published.
    lists.set("ns", "demo", members.clone());
    wait_for_members(&node, &members, "the node sees the grown list").await;

    // Scale down: the highest member leaves the list first.
    lists.set("ns", "demo", members[..2].to_vec());
    wait_for_members(&node, &members[..2], "the node drops the removed member").await;

    node.kill();
    let _ = stop.send(());
    server.await.expect("task").expect("address server stops cleanly");
}
