//! The README's run command, `roster-cluster`: it starts a local cluster fed
//! by the operator's address server, a client can use it, it scales up and
//! down from standard input, and Ctrl-C stops every node.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use roster_e2e::cluster::{instances, register_http, status};
use roster_e2e::{binary, eventually, loopback_ips};

const WAIT: Duration = Duration::from_secs(60);

/// Waits for a line of the command's output that satisfies `want`.
fn wait_line(lines: &mpsc::Receiver<String>, what: &str, want: impl Fn(&str) -> bool) {
    let deadline = Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) if want(&line) => return,
            Ok(_) => {}
            Err(_) => panic!("roster-cluster never printed {what}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_run_command_serves_scales_and_stops_on_ctrl_c() {
    let host = loopback_ips(1).remove(0);
    let dir = tempfile::tempdir().expect("tempdir");
    let node_bin = binary("roster-node", "roster-node").expect("roster-node");
    let command = binary("roster-e2e", "roster-cluster").expect("roster-cluster");
    let mut child = Command::new(command)
        .args(["--host", &host, "--nodes", "3", "--data-dir"])
        .arg(dir.path())
        .arg("--node-bin")
        .arg(&node_bin)
        .args(["--", "--member-report-interval", "200ms", "--distro-load-retry-delay", "300ms"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn roster-cluster");
    let mut stdin = child.stdin.take().expect("stdin");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let node = |i: u16| -> SocketAddr { format!("{host}:{}", 8848 + 10 * i).parse().expect("address") };

    wait_line(&lines, "cluster ready: 3 nodes", |l| l == "cluster ready: 3 nodes");
    register_http(node(0), "svc-local", "10.7.0.1", 7700).await.expect("register on the first node");
    let want = vec!["10.7.0.1:7700:true".to_string()];
    eventually("the third node to hold the instance", WAIT, || async {
        (instances(node(2), "svc-local").await? == want).then_some(())
    })
    .await;

    // Scale up: the new node loads the data before it is ready.
    writeln!(stdin, "scale 4").expect("write");
    wait_line(&lines, "cluster ready: 4 nodes", |l| l == "cluster ready: 4 nodes");
    assert_eq!(instances(node(3), "svc-local").await.as_ref(), Some(&want));
    let s = status(node(3)).await.expect("status");
    assert!(s["distro"]["snapshotSource"].is_string(), "{s}");

    // Scale down: the highest members leave the list and stop.
    writeln!(stdin, "scale 2").expect("write");
    let (third, fourth) = (node(2).to_string(), node(3).to_string());
    wait_line(&lines, "the fourth node stopping", |l| l == format!("stopped {fourth}"));
    wait_line(&lines, "the third node stopping", |l| l == format!("stopped {third}"));
    eventually("the first node to see two members", WAIT, || async {
        (status(node(0)).await?["members"].as_array()?.len() == 2).then_some(())
    })
    .await;

    // Ctrl-C stops everything cleanly.
    let pid = child.id().to_string();
    assert!(Command::new("kill").args(["-INT", &pid]).status().expect("kill -INT").success());
    let exit = eventually("roster-cluster to stop on Ctrl-C", WAIT, || {
        let exited = child.try_wait().expect("wait");
        async move { exited }
    })
    .await;
    assert!(exit.success(), "{exit:?}");
    for i in 0..2 {
        assert!(status(node(i)).await.is_none(), "node {i} still answers after Ctrl-C");
    }
}
