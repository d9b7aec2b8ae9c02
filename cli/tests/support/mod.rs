//! What the CLI and console tests share: a real three-member cluster on
//! loopback (node processes, `cluster.conf` lookup, authentication on), a
//! login, and running the `roster` binary.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use roster_e2e::cluster::{is_ready, node_args, wait_member_states, write_member_file, Lookup};
use roster_e2e::{eventually, loopback_ips, NodeProcess};
use roster_node::auth::password::{PasswordHash, MIN_ITERATIONS};

/// Bound of every wait.
pub const WAIT: Duration = Duration::from_secs(30);

/// Users of the test cluster: `(name, password, role)`.
pub const USERS: [(&str, &str, &str); 2] = [("admin", "admin-pw", "admin"), ("viewer", "viewer-pw", "read-only")];

/// Three node processes, formed, ready, with authentication on.
pub struct TestCluster {
    /// Holds `cluster.conf` and the auth files.
    dir: tempfile::TempDir,
    /// `host:8848` of each member, in start order.
    pub members: Vec<String>,
    /// The processes (killed when dropped).
    pub nodes: Vec<NodeProcess>,
}

impl TestCluster {
    /// Starts the cluster and waits until every member sees every other
    /// `UP` and is ready.
    pub async fn start() -> TestCluster {
        let dir = tempfile::tempdir().expect("tempdir");
        let auth = write_auth(dir.path());
        let ips = loopback_ips(3);
        let members: Vec<String> = ips.iter().map(|ip| format!("{ip}:8848")).collect();
        let conf = dir.path().join("cluster.conf");
        write_member_file(&conf, &members);
        let nodes: Vec<NodeProcess> = ips
            .iter()
            .map(|ip| {
                let mut args = node_args(ip, Lookup::File(&conf));
                for (flag, value) in [
                    ("--distro-sync-delay", "50ms"),
                    ("--distro-verify-interval", "500ms"),
                    ("--distro-load-retry-delay", "300ms"),
                    ("--push-delay", "20ms"),
                    ("--auth-dir", auth.to_str().expect("utf-8 path")),
                ] {
                    args.extend([flag.to_string(), value.to_string()]);
                }
                args.push("--auth-enabled".into());
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                NodeProcess::start(&args, &[]).expect("node starts")
            })
            .collect();
        let all_up: Vec<(String, &str)> = members.iter().map(|m| (m.clone(), "UP")).collect();
        for node in &nodes {
            wait_member_states(node.http, &all_up, "every member UP", WAIT).await;
            eventually("ready", WAIT, || async { is_ready(node.http).await.then_some(()) }).await;
        }
        TestCluster { dir, members, nodes }
    }

    /// The main HTTP address of member `i`.
    pub fn http(&self, i: usize) -> SocketAddr {
        self.nodes[i].http
    }

    /// Where the test may write files.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

/// Writes `token-key` and `users.json` (see [`USERS`]) into `dir/auth`.
fn write_auth(dir: &Path) -> PathBuf {
    let auth = dir.join("auth");
    std::fs::create_dir_all(&auth).expect("auth dir");
    std::fs::write(auth.join("token-key"), "console-test-signing-key-0123456789-abcdefgh\n").expect("key");
    let users: Vec<serde_json::Value> = USERS
        .iter()
        .map(|(name, pw, role)| {
            let hash = PasswordHash::new(pw, MIN_ITERATIONS).expect("hash").encode();
            serde_json::json!({"username": name, "password": hash, "role": role})
        })
        .collect();
    std::fs::write(auth.join("users.json"), serde_json::json!({ "users": users }).to_string()).expect("users");
    auth
}

/// Logs in over HTTP and returns the token.
pub async fn login(http: SocketAddr, user: &str, password: &str) -> String {
    let answer: serde_json::Value = reqwest::Client::new()
        .post(format!("http://{http}/nacos/v1/auth/login"))
        .form(&[("username", user), ("password", password)])
        .send()
        .await
        .expect("login answered")
        .json()
        .await
        .expect("login JSON");
    answer["accessToken"].as_str().expect("a token").to_owned()
}

/// `roster args` with only the `envs` given among the `ROSTER_*` variables.
pub fn roster(args: &[&str], envs: &[(&str, &str)]) -> Output {
    command(env!("CARGO_BIN_EXE_roster"), args, envs).output().expect("roster runs")
}

/// A command for one of this crate's binaries, without the caller's
/// `ROSTER_*` variables.
pub fn command(bin: &str, args: &[&str], envs: &[(&str, &str)]) -> Command {
    let mut command = Command::new(bin);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("ROSTER_") {
            command.env_remove(key);
        }
    }
    command.args(args).envs(envs.iter().copied()).stdin(std::process::Stdio::null());
    command
}

/// Stdout of a successful run, failing with its stderr otherwise.
pub fn ok(output: &Output) -> String {
    assert!(
        output.status.success(),
        "expected success, got {:?}: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The exit code and the (single) stderr line of a failed run.
pub fn failed(output: &Output) -> (i32, String) {
    let stderr = String::from_utf8_lossy(&output.stderr).trim().to_owned();
    assert!(!output.status.success(), "expected a failure, got success: {}", String::from_utf8_lossy(&output.stdout));
    (output.status.code().unwrap_or(-1), stderr)
}
