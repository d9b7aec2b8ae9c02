//! The real `roster-node` binary: its command-line and environment contract,
//! and a client process that is killed (as a crash would) losing its
//! instances.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use roster_e2e::{binary, eventually, NodeProcess};
use serde_json::Value;

async fn get_json(url: &str) -> Value {
    reqwest::get(url).await.expect("GET").json().await.expect("json")
}

#[tokio::test]
async fn environment_variables_configure_the_node() {
    let mut node = NodeProcess::start(
        &[],
        &[
            ("ROSTER_BIND", "127.0.0.1"),
            ("ROSTER_PORT", "0"),
            ("ROSTER_ADVERTISE", "node-a.example:8848"),
            ("ROSTER_BEAT_TIMEOUT", "7s"),
            ("ROSTER_BEAT_DELETE_TIMEOUT", "9s"),
        ],
    )
    .expect("node starts");
    assert!(node.http.ip().is_loopback() && node.grpc.ip().is_loopback());
    let status = get_json(&format!("http://{}/roster/v1/status", node.http)).await;
    assert_eq!(status["member"], "node-a.example:8848");
    assert_eq!(status["lookup"], "standalone");
    // Ready once the node leads its single-voter Raft group.
    eventually("the standalone node is ready", Duration::from_secs(10), || async {
        let status: Value =
            reqwest::get(format!("http://{}/roster/v1/status", node.http)).await.ok()?.json().await.ok()?;
        (status["ready"] == true).then_some(())
    })
    .await;
    // The beat timeouts reach the instances' JSON.
    let client = reqwest::Client::new();
    let ok = client
        .post(format!("http://{}/nacos/v1/ns/instance", node.http))
        .form(&[("serviceName", "env-svc"), ("ip", "10.9.0.1"), ("port", "80")])
        .send()
        .await
        .expect("register");
    assert_eq!(ok.status(), 200);
    let list = get_json(&format!("http://{}/nacos/v1/ns/instance/list?serviceName=env-svc", node.http)).await;
    assert_eq!(list["hosts"][0]["instanceHeartBeatTimeOut"], 7000);
    assert_eq!(list["hosts"][0]["ipDeleteTimeout"], 9000);
    node.kill();
}

#[tokio::test]
async fn flags_configure_the_node_and_override_the_environment() {
    let mut node = NodeProcess::start(
        &["--bind", "127.0.0.1", "--port", "0", "--advertise", "127.0.0.9:8848"],
        &[("ROSTER_ADVERTISE", "ignored:1")],
    )
    .expect("node starts");
    let status = get_json(&format!("http://{}/roster/v1/status", node.http)).await;
    assert_eq!(status["member"], "127.0.0.9:8848");
    eventually("readiness answers 200", Duration::from_secs(10), || async {
        let ready = reqwest::get(format!("http://{}/nacos/v1/console/health/readiness", node.http)).await.ok()?;
        (ready.status() == 200).then_some(())
    })
    .await;
    node.kill();
}

#[test]
fn bad_configuration_is_refused_with_a_clear_message() {
    let bin = binary("roster-node", "roster-node").expect("binary");
    let out =
        Command::new(&bin).args(["--port", "0", "--bind", "127.0.0.1", "--beat-timeout", "40s"]).output().expect("run");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--beat-delete-timeout"), "stderr: {stderr}");

    let out = Command::new(&bin).args(["--push-delay", "soon"]).output().expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a duration"));

    let help = Command::new(&bin).arg("--help").output().expect("run");
    let text = String::from_utf8_lossy(&help.stdout);
    for flag in ["--bind", "--port", "--advertise", "--data-dir", "--lookup", "--cluster-conf", "--address-server-url"]
    {
        assert!(text.contains(flag), "--help lacks {flag}");
    }
    assert!(text.contains("ROSTER_PORT"), "--help names the environment variables");
}

#[tokio::test]
async fn killed_sdk_client_loses_its_instances() {
    let mut node = NodeProcess::start(&["--bind", "127.0.0.1", "--port", "0"], &[]).expect("node starts");
    let client_bin = binary("roster-e2e", "sdk-client").expect("sdk-client binary");
    let mut client = Command::new(client_bin)
        .args(["--server", &node.http.to_string(), "--grpc-port", &node.grpc.port().to_string()])
        .args(["--service", "crashy", "--ip", "10.8.0.1", "--port", "8080"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn sdk-client");
    let stdout = client.stdout.take().expect("stdout");
    let line = tokio::task::spawn_blocking(move || BufReader::new(stdout).lines().next())
        .await
        .expect("reader")
        .and_then(Result::ok);
    assert_eq!(line.as_deref(), Some("registered"));

    let list_url = format!("http://{}/nacos/v1/ns/instance/list?serviceName=crashy", node.http);
    let hosts = get_json(&list_url).await["hosts"].as_array().map(Vec::len);
    assert_eq!(hosts, Some(1));

    client.kill().expect("SIGKILL the client");
    client.wait().expect("reap the client");
    eventually("the killed client's instance to disappear", Duration::from_secs(15), || async {
        get_json(&list_url).await["hosts"].as_array().is_some_and(Vec::is_empty).then_some(())
    })
    .await;
    node.kill();
}

#[tokio::test]
async fn sigterm_stops_the_node_cleanly() {
    let mut node = NodeProcess::start(&["--bind", "127.0.0.1", "--port", "0"], &[]).expect("node starts");
    let status = Command::new("kill").args(["-TERM", &node.pid().to_string()]).status().expect("kill -TERM");
    assert!(status.success());
    let exit = eventually("the node to stop after SIGTERM", Duration::from_secs(15), || {
        let exited = node.try_wait().expect("try_wait");
        async move { exited }
    })
    .await;
    assert!(exit.success(), "node exited with {exit:?}");
}
