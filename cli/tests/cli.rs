//! The `roster` binary against a real three-member cluster with
//! authentication on: every subcommand, `watch` receiving a push, and the
//! error paths (unreachable member, bad input, refused auth), each with its
//! exit code and one line on stderr.

mod support;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::mpsc;

use roster_e2e::eventually;
use roster_node::cluster::responsible_member;
use serde_json::Value;
use support::{command, failed, login, ok, roster, TestCluster, WAIT};

fn json(output: &std::process::Output) -> Value {
    serde_json::from_str(&ok(output)).expect("JSON output")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_subcommand_against_a_three_member_cluster() {
    let cluster = TestCluster::start().await;
    let (a, b, c) = (cluster.members[0].as_str(), cluster.members[1].as_str(), cluster.members[2].as_str());
    let admin = login(cluster.http(0), "admin", "admin-pw").await;
    let viewer = login(cluster.http(0), "viewer", "viewer-pw").await;
    let with = |server: &str| vec![("ROSTER_SERVER", server.to_owned()), ("ROSTER_TOKEN", admin.clone())];
    let run = |server: &str, args: &[&str]| {
        let envs = with(server);
        let envs: Vec<(&str, &str)> = envs.iter().map(|(k, v)| (*k, v.as_str())).collect();
        roster(args, &envs)
    };

    // status, by a login with the password in the environment.
    let table = ok(&roster(&["status", "--server", a, "--username", "admin"], &[("ROSTER_PASSWORD", "admin-pw")]));
    let view = json(&run(b, &["-o", "json", "status"]));
    let leader = view["leader"].as_str().expect("a leader").to_owned();
    assert!(table.starts_with(&format!("leader: {leader}\n")), "{table}");
    for m in &cluster.members {
        let line = table.lines().find(|l| l.starts_with(m.as_str())).unwrap_or_else(|| panic!("{m} in {table}"));
        assert!(line.contains(" UP ") && line.contains(" yes "), "{line}");
        assert_eq!(line.contains("Leader*"), *m == leader, "{line}");
    }
    assert_eq!(view["members"].as_array().map(Vec::len), Some(3), "{view}");
    assert!(view["members"].as_array().expect("members").iter().all(|m| m["status"]["ready"] == true), "{view}");
    // The password on stdin, as a script would give it.
    let mut piped = command(env!("CARGO_BIN_EXE_roster"), &["--server", c, "--username", "viewer", "status"], &[]);
    let mut child = piped.stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().expect("roster runs");
    std::io::Write::write_all(&mut child.stdin.take().expect("stdin"), b"viewer-pw\n").expect("password");
    assert!(ok(&child.wait_with_output().expect("exits")).contains("leader: "));

    // raft: the same leader, three voters, no learners, every member's indices.
    let raft = json(&run(c, &["raft", "-o", "json"]));
    assert_eq!(raft["leader"], leader.as_str(), "{raft}");
    let mut voters: Vec<String> = serde_json::from_value(raft["voters"].clone()).expect("voters");
    voters.sort();
    let mut members = cluster.members.clone();
    members.sort();
    assert_eq!(voters, members);
    assert_eq!(raft["learners"], serde_json::json!([]));
    assert!(raft["members"].as_array().expect("rows").iter().all(|m| m["appliedIndex"].as_u64().is_some()), "{raft}");
    let yaml = ok(&run(a, &["raft", "-o", "yaml"]));
    assert!(yaml.contains(&format!("leader: {leader}")), "{yaml}");

    // register (ephemeral over A, persistent over B), then read them on the others.
    let registered = ok(&run(
        a,
        &["register", "cli-orders", "--ip", "10.9.0.1", "--port", "8080", "--weight", "2", "--metadata", "v=1"],
    ));
    assert_eq!(registered.trim(), "registered 10.9.0.1:8080 (DEFAULT) in DEFAULT_GROUP@@cli-orders");
    let persistent = ["register", "cli-orders", "--ip", "10.9.0.2", "--port", "8080", "--persistent", "--metadata"];
    ok(&run(b, &[&persistent[..], &["preserved.health.checker=NONE"]].concat()));
    let listed = eventually("both instances listed on C", WAIT, || async {
        let list = json(&run(c, &["services", "-o", "json", "--name", "cli-"]));
        (list["serviceList"][0]["ipCount"] == 2).then_some(list)
    })
    .await;
    assert_eq!(listed["count"], 1, "{listed}");
    assert_eq!(listed["serviceList"][0]["name"], "cli-orders");
    let services = ok(&run(c, &["services"]));
    assert!(services.lines().any(|l| l.starts_with("cli-orders") && l.contains("DEFAULT_GROUP")), "{services}");

    let shown = json(&run(c, &["instances", "cli-orders", "-o", "json"]));
    let rows = shown["instances"].as_array().expect("instances");
    assert_eq!(rows.len(), 2, "{shown}");
    let mut sorted = cluster.members.clone();
    sorted.sort();
    let hashed = responsible_member("10.9.0.1:8080", &sorted).expect("someone is responsible");
    assert_eq!((rows[0]["ip"].as_str(), rows[0]["weight"].as_f64()), (Some("10.9.0.1"), Some(2.0)));
    assert_eq!((rows[0]["responsible"].as_str(), rows[0]["basis"].as_str()), (Some(hashed), Some("distroHash")));
    assert_eq!(
        (rows[1]["responsible"].as_str(), rows[1]["basis"].as_str()),
        (Some(leader.as_str()), Some("raftLeader"))
    );
    let table = ok(&run(a, &["instances", "DEFAULT_GROUP@@cli-orders"]));
    assert!(table.contains("10.9.0.1:8080") && table.contains("ephemeral/http") && table.contains("v=1"), "{table}");
    assert!(table.contains("10.9.0.2:8080") && table.contains("persistent"), "{table}");

    // beat: a registered instance is renewed, an unknown one is an error.
    assert!(
        ok(&run(c, &["beat", "cli-orders", "--ip", "10.9.0.1", "--port", "8080"])).starts_with("beat 10.9.0.1:8080")
    );
    let (code, line) = failed(&run(c, &["beat", "cli-orders", "--ip", "10.9.0.9", "--port", "1"]));
    assert_eq!(code, 1, "{line}");
    assert!(line.starts_with("roster: ") && line.contains("not registered"), "{line}");

    // watch on B: the current view first, then the push after a deregistration on C.
    let envs = with(b);
    let mut watch = command(
        env!("CARGO_BIN_EXE_roster"),
        &["watch", "cli-orders", "--count", "2", "-o", "json"],
        &envs.iter().map(|(k, v)| (*k, v.as_str())).collect::<Vec<_>>(),
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .expect("watch runs");
    let (tx, pushes) = mpsc::channel();
    let stdout = watch.stdout.take().expect("stdout");
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let hosts = |line: &str| -> Vec<String> {
        let v: Value = serde_json::from_str(line).expect("a JSON line per push");
        let mut h: Vec<String> = v["hosts"]
            .as_array()
            .expect("hosts")
            .iter()
            .map(|h| format!("{}:{}", h["ip"].as_str().unwrap_or(""), h["port"]))
            .collect();
        h.sort();
        h
    };
    let first = pushes.recv_timeout(WAIT).expect("the current view is pushed");
    assert_eq!(hosts(&first), ["10.9.0.1:8080", "10.9.0.2:8080"]);
    ok(&run(c, &["deregister", "cli-orders", "--ip", "10.9.0.1", "--port", "8080"]));
    let second = pushes.recv_timeout(WAIT).expect("the change is pushed");
    assert_eq!(hosts(&second), ["10.9.0.2:8080"]);
    let status = watch.wait().expect("watch ends after two pushes");
    assert!(status.success(), "{status:?}");
    ok(&run(a, &["deregister", "cli-orders", "--ip", "10.9.0.2", "--port", "8080", "--persistent"]));

    // Refused auth: a forged token, a wrong password, a viewer writing, no token at all.
    let forged = roster(&["--server", a, "--token", "not-a-token", "services"], &[]);
    let (code, line) = failed(&forged);
    assert_eq!(code, 4, "{line}");
    assert!(line.starts_with("roster: refused by ") && line.contains("token"), "{line}");
    let wrong = roster(&["--server", a, "--username", "admin", "status"], &[("ROSTER_PASSWORD", "nope")]);
    let (code, line) = failed(&wrong);
    assert_eq!(code, 4, "{line}");
    let viewer_write =
        roster(&["--server", a, "--token", &viewer, "register", "cli-x", "--ip", "10.9.0.5", "--port", "1"], &[]);
    let (code, line) = failed(&viewer_write);
    assert_eq!(code, 4, "{line}");
    assert!(line.contains("authorization failed"), "{line}");
    let (code, _) = failed(&roster(&["--server", a, "instances", "cli-orders"], &[]));
    assert_eq!(code, 4);
    let (code, line) = failed(&roster(&["--server", b, "--token", "not-a-token", "watch", "cli-orders"], &[]));
    assert_eq!(code, 4, "{line}");
    assert_eq!(line.lines().count(), 1, "{line}");

    // Bad input: refused by the command line, and by the member.
    for args in [
        &["register", "s", "--ip", "10.0.0.1", "--port", "0"][..],
        &["services", "--page", "0"],
        &["--server", "ftp://x:1", "status"],
        &["--server", "x:99999", "status"],
        &["instances", "a@@b", "--group", "c"],
        &["register", "s", "--ip", "10.0.0.1", "--port", "1", "--weight", "-1"],
    ] {
        let (code, line) = failed(&run(a, args));
        assert_eq!(code, 2, "{args:?}: {line}");
    }
    let (code, line) = failed(&run(a, &["register", "bad name", "--ip", "10.0.0.1", "--port", "1"]));
    assert_eq!(code, 2, "{line}");
    assert!(line.contains("serviceName"), "{line}");
    let (code, line) = failed(&run(a, &["instances", "no-such-service"]));
    assert_eq!(code, 1, "{line}");
    assert!(line.contains("404") && line.contains("not found"), "{line}");

    // The plugin binary is the same tool.
    let plugin = command(env!("CARGO_BIN_EXE_kubectl-roster"), &["--server", c, "--token", &admin, "status"], &[])
        .output()
        .expect("kubectl-roster runs");
    assert!(ok(&plugin).contains(&format!("leader: {leader}")));
    drop(cluster);
}

#[test]
fn an_unreachable_member_is_one_line_and_exit_code_3() {
    // Nothing listens on port 1 of loopback.
    for args in
        [&["--server", "127.0.0.1:1", "status"][..], &["--server", "127.0.0.1:1", "--grpc-port", "1", "watch", "x"]]
    {
        let (code, line) = failed(&roster(args, &[]));
        assert_eq!(code, 3, "{args:?}: {line}");
        assert!(line.starts_with("roster: cannot reach 127.0.0.1:1"), "{line}");
        assert_eq!(line.lines().count(), 1, "{line}");
    }
}

#[test]
fn completions_for_each_shell() {
    for (shell, marker) in [("bash", "_roster()"), ("zsh", "#compdef roster"), ("fish", "complete -c roster")] {
        let script = ok(&roster(&["completions", shell], &[]));
        assert!(script.contains(marker), "{shell}: {}", &script[..script.len().min(200)]);
        assert!(script.contains("instances") && script.contains("watch"), "{shell} completes the subcommands");
    }
    let (code, _) = failed(&roster(&["completions", "tcsh"], &[]));
    assert_eq!(code, 2);
}
