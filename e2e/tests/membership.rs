//! Three real `roster-node` processes finding each other through a
//! `cluster.conf` (DESIGN §4): every member sees the others `UP`; a member
//! killed with SIGKILL turns `DOWN` on the survivors and `UP` again when it
//! comes back; editing the file adds and removes members.

use std::path::Path;
use std::time::Duration;

use roster_e2e::cluster::{node_args, wait_member_states, write_member_file, Lookup};
use roster_e2e::{loopback_ips, NodeProcess};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(20);

fn start_node(ip: &str, conf: &Path) -> NodeProcess {
    let args = node_args(ip, Lookup::File(conf));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    NodeProcess::start(&args, &[]).expect("node starts")
}

async fn wait_for_states(node: &NodeProcess, expected: &[(String, &str)], what: &str) {
    wait_member_states(node.http, expected, what, WAIT).await;
}

#[tokio::test]
async fn members_find_each_other_lose_and_regain_a_member() {
    let dir = tempfile::tempdir().expect("tempdir");
    let conf = dir.path().join("cluster.conf");
    let ips = loopback_ips(4);
    let members: Vec<String> = ips.iter().map(|ip| format!("{ip}:8848")).collect();
    write_member_file(&conf, &members[..3]);
    let a = start_node(&ips[0], &conf);
    let b = start_node(&ips[1], &conf);
    let mut c = start_node(&ips[2], &conf);

    let all_up: Vec<(String, &str)> = members[..3].iter().map(|m| (m.clone(), "UP")).collect();
    for node in [&a, &b, &c] {
        wait_for_states(node, &all_up, "three members UP").await;
    }

    // SIGKILL one member: the others see it DOWN, in status and in the Nacos view.
    c.kill();
    let c_down = vec![(members[0].clone(), "UP"), (members[1].clone(), "UP"), (members[2].clone(), "DOWN")];
    wait_for_states(&a, &c_down, "killed member DOWN on a").await;
    wait_for_states(&b, &c_down, "killed member DOWN on b").await;
    let nodes: Value = reqwest::get(format!("http://{}/nacos/v1/core/cluster/nodes", a.http))
        .await
        .expect("GET")
        .json()
        .await
        .expect("json");
    let down = nodes["data"].as_array().expect("data").iter().find(|m| m["address"] == members[2].as_str()).cloned();
    assert_eq!(down.as_ref().map(|m| m["state"].clone()), Some(Value::from("DOWN")), "{nodes}");

    // It comes back on the same address: UP again everywhere.
    c = start_node(&ips[2], &conf);
    for node in [&a, &b, &c] {
        wait_for_states(node, &all_up, "restarted member UP again").await;
    }

    // Editing the file: a fourth member that never answers joins the list
    // (and turns DOWN); removing the third takes it off every list.
    write_member_file(&conf, &[members[0].clone(), members[1].clone(), members[3].clone()]);
    let edited = vec![(members[0].clone(), "UP"), (members[1].clone(), "UP"), (members[3].clone(), "DOWN")];
    wait_for_states(&a, &edited, "file edit applied on a").await;
    wait_for_states(&b, &edited, "file edit applied on b").await;
    drop((a, b, c));
}
