//! Three real `roster-node` processes finding each other through a
//! `cluster.conf` (DESIGN §4): every member sees the others `UP`; a member
//! killed with SIGKILL turns `DOWN` on the survivors and `UP` again when it
//! comes back; editing the file adds and removes members.

use std::path::Path;
use std::time::{Duration, Instant};

use roster_e2e::{loopback_ips, NodeProcess};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(20);

fn start_node(ip: &str, conf: &Path) -> NodeProcess {
    let advertise = format!("{ip}:8848");
    let conf = conf.to_string_lossy().into_owned();
    let args = [
        "--bind",
        ip,
        "--advertise",
        &advertise,
        "--lookup",
        "file",
        "--cluster-conf",
        &conf,
        "--cluster-conf-poll-interval",
        "100ms",
        "--member-report-interval",
        "200ms",
        "--member-report-timeout",
        "300ms",
        "--member-down-after-failures",
        "2",
    ];
    NodeProcess::start(&args, &[]).expect("node starts")
}

/// Writes the file atomically (temp file + rename), as operators should.
fn write_conf(path: &Path, members: &[String]) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, members.iter().map(|m| format!("{m}\n")).collect::<String>()).expect("write");
    std::fs::rename(&tmp, path).expect("rename");
}

async fn member_states(node: &NodeProcess) -> Option<Vec<(String, String)>> {
    let status: Value = reqwest::get(format!("http://{}/roster/v1/status", node.http)).await.ok()?.json().await.ok()?;
    let mut out: Vec<(String, String)> = status["members"]
        .as_array()?
        .iter()
        .map(|m| (m["address"].as_str().unwrap_or("").to_owned(), m["state"].as_str().unwrap_or("").to_owned()))
        .collect();
    out.sort();
    Some(out)
}

async fn wait_for_states(node: &NodeProcess, expected: &[(String, &str)], what: &str) {
    let mut expected: Vec<(String, String)> = expected.iter().map(|(a, s)| (a.clone(), (*s).to_owned())).collect();
    expected.sort();
    let deadline = Instant::now() + WAIT;
    loop {
        let seen = member_states(node).await;
        if seen.as_ref() == Some(&expected) {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: expected {expected:?}, last seen {seen:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn members_find_each_other_lose_and_regain_a_member() {
    let dir = tempfile::tempdir().expect("tempdir");
    let conf = dir.path().join("cluster.conf");
    let ips = loopback_ips(4);
    let members: Vec<String> = ips.iter().map(|ip| format!("{ip}:8848")).collect();
    write_conf(&conf, &members[..3]);
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
    write_conf(&conf, &[members[0].clone(), members[1].clone(), members[3].clone()]);
    let edited = vec![(members[0].clone(), "UP"), (members[1].clone(), "UP"), (members[3].clone(), "DOWN")];
    wait_for_states(&a, &edited, "file edit applied on a").await;
    wait_for_states(&b, &edited, "file edit applied on b").await;
    drop((a, b, c));
}
