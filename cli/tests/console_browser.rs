//! The web console in a real browser (Debian's chromium, headless, driven
//! through chromedriver) against a three-member cluster with
//! authentication on: log in, find a service an SDK client registered over
//! gRPC, see its instances and who is responsible for each, disable one
//! and see a subscriber on another member receive the change (and every
//! member hold it), see a read-only user refused, and the members table
//! with the Raft leader.
//!
//! In CI (`CI=true`) a missing browser fails the test; elsewhere the test
//! skips, saying so. With `ROSTER_CONSOLE_SCREENSHOTS=<dir>` the
//! screenshots of the README are written there (`docs/images`).

mod support;
#[path = "support/webdriver.rs"]
mod webdriver;

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;

use roster_e2e::{binary, eventually};
use serde_json::Value;
use support::{login, TestCluster, WAIT};
use webdriver::{Browser, CHROMEDRIVER, CHROMIUM};

const SERVICE: &str = "console-orders";

/// An `sdk-client` process (the official nacos-sdk) logged in as admin,
/// with its stdout lines on a channel. Killed when dropped.
struct Sdk {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Sdk {
    fn start(http: std::net::SocketAddr, extra: &[&str]) -> Sdk {
        let mut child = Command::new(binary("roster-e2e", "sdk-client").expect("sdk-client"))
            .args(["--server", &http.to_string(), "--grpc-port", &(http.port() + 1000).to_string()])
            .args(["--username", "admin"])
            .args(extra)
            .env("ROSTER_SDK_PASSWORD", "admin-pw")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("sdk-client starts");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Sdk { child, lines }
    }

    /// Waits for a line `want` accepts.
    fn expect(&self, what: &str, want: impl Fn(&str) -> bool) -> String {
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if want(&line) => return line,
                Ok(_) => {}
                Err(_) => panic!("sdk-client never printed {what}"),
            }
        }
    }

    fn send(&mut self, command: &str) {
        let stdin = self.child.stdin.as_mut().expect("stdin");
        writeln!(stdin, "{command}").expect("command sent");
    }
}

impl Drop for Sdk {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether the browser is there; in CI its absence is a failure.
fn browser_installed() -> bool {
    let present = std::path::Path::new(CHROMIUM).exists() && std::path::Path::new(CHROMEDRIVER).exists();
    if !present {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true but {CHROMIUM} or {CHROMEDRIVER} is missing: .ci/run installs chromium and chromium-driver"
        );
        eprintln!("\n*** SKIPPED the console browser test: {CHROMIUM} or {CHROMEDRIVER} is missing ***");
        eprintln!("*** install them with: apt-get install -y chromium chromium-driver ***\n");
    }
    present
}

/// `enabled` of `ip` in `service` as the member at `http` holds it.
async fn enabled_on(http: std::net::SocketAddr, token: &str, ip: &str) -> Option<bool> {
    let url = format!("http://{http}/nacos/v1/ns/catalog/instances");
    let query = [("serviceName", SERVICE), ("accessToken", token), ("pageSize", "100")];
    let list: Value = reqwest::Client::new().get(url).query(&query).send().await.ok()?.json().await.ok()?;
    list["list"].as_array()?.iter().find(|i| i["ip"] == ip)?["enabled"].as_bool()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_in_a_browser() {
    if !browser_installed() {
        return;
    }
    let shots = std::env::var_os("ROSTER_CONSOLE_SCREENSHOTS").map(PathBuf::from);
    let cluster = TestCluster::start().await;
    let (a, b, c) = (cluster.http(0), cluster.http(1), cluster.http(2));
    let shots = shots.unwrap_or_else(|| cluster.dir().to_path_buf());
    let token = login(a, "admin", "admin-pw").await;

    // Two SDK clients publish over gRPC on A and on B; a third subscribes on B.
    let first = Sdk::start(a, &["--service", SERVICE, "--ip", "10.8.0.1", "--port", "8080"]);
    first.expect("registered", |l| l == "registered");
    let second = Sdk::start(b, &["--service", SERVICE, "--ip", "10.8.0.2", "--port", "8080"]);
    second.expect("registered", |l| l == "registered");
    let mut subscriber = Sdk::start(b, &["--commands"]);
    subscriber.expect("ready", |l| l == "ready");
    subscriber.send(&format!("1 subscribe {SERVICE}"));
    let both = format!("push {SERVICE} 10.8.0.1:8080:true,10.8.0.2:8080:true");
    subscriber.expect("a push of both instances", |l| l == both);

    // The console of C: the login comes first.
    let browser = Browser::start().await.expect("headless chromium");
    browser.goto(&format!("http://{c}/console/")).await.expect("console page");
    eventually("the login form", WAIT, || async { browser.visible("#login-username").await.ok()?.then_some(()) }).await;
    browser.type_into("#login-username", "admin").await.expect("user");
    browser.type_into("#login-password", "admin-pw").await.expect("password");
    browser.click("#login-submit").await.expect("log in");
    browser.wait_text("#who", WAIT, |t| t == "signed in as admin").await.expect("signed in");

    // The service list: found, with its instance and healthy counts.
    let row = format!("#services-table tr[data-service=\"{SERVICE}\"]");
    browser.wait_text(&format!("{row} .cell-instances"), WAIT, |t| t == "2").await.expect("two instances");
    browser.wait_text(&format!("{row} .cell-healthy"), WAIT, |t| t == "2").await.expect("two healthy");
    browser.screenshot(&shots.join("console-services.png")).await.expect("screenshot");

    // Its instances, each with the member responsible for it: the one its
    // connection is on (A and B, asked by C).
    browser.click(&format!("{row} a.service-link")).await.expect("open the service");
    let one = "#instances-table tr[data-address=\"10.8.0.1:8080\"]";
    let two = "#instances-table tr[data-address=\"10.8.0.2:8080\"]";
    let (member_a, member_b) = (cluster.members[0].clone(), cluster.members[1].clone());
    browser.wait_text(&format!("{one} .cell-responsible"), WAIT, |t| t.starts_with(&member_a)).await.expect("A");
    browser.wait_text(&format!("{two} .cell-responsible"), WAIT, |t| t.starts_with(&member_b)).await.expect("B");
    let kind = browser.text(&format!("{one} td:nth-child(7)")).await.expect("kind");
    assert_eq!(kind.as_deref(), Some("ephemeral · gRPC"));
    browser.wait_text(&format!("{one} .cell-enabled"), WAIT, |t| t == "enabled").await.expect("enabled");
    // A v1 deregistration cannot remove what a connection publishes: not offered.
    let off = browser.script(
        "return document.querySelector(arguments[0]).disabled;",
        serde_json::json!([format!("{one} .deregister")]),
    );
    assert_eq!(off.await.expect("deregister button"), Value::Bool(true));
    browser.screenshot(&shots.join("console-instances.png")).await.expect("screenshot");

    // Disable the instance of A's client from C: every member holds the
    // change, and the subscriber on B is pushed a view without it.
    browser.click(&format!("{one} .toggle-enabled")).await.expect("disable");
    browser.wait_text("#message", WAIT, |t| t == "Disabled 10.8.0.1:8080").await.expect("confirmed");
    browser.wait_text(&format!("{one} .cell-enabled"), WAIT, |t| t == "disabled").await.expect("shown disabled");
    let only_two = format!("push {SERVICE} 10.8.0.2:8080:true");
    subscriber.expect("a push without the disabled instance", |l| l == only_two);
    for http in [a, b, c] {
        let what = format!("{http} to hold 10.8.0.1 disabled");
        eventually(&what, WAIT, || async { (enabled_on(http, &token, "10.8.0.1").await == Some(false)).then_some(()) })
            .await;
    }

    // A read-only user sees the service but is refused a write, clearly.
    browser.click("#logout").await.expect("log out");
    eventually("the login form again", WAIT, || async { browser.visible("#login-username").await.ok()?.then_some(()) })
        .await;
    browser.type_into("#login-username", "viewer").await.expect("user");
    browser.type_into("#login-password", "viewer-pw").await.expect("password");
    browser.click("#login-submit").await.expect("log in");
    browser.wait_text("#who", WAIT, |t| t == "signed in as viewer").await.expect("signed in");
    browser.wait_text(&format!("{one} .toggle-enabled"), WAIT, |t| t == "Enable").await.expect("listed");
    browser.click(&format!("{one} .toggle-enabled")).await.expect("try to enable");
    let refusal = browser.wait_text("#message", WAIT, |t| t.starts_with("Refused (403)")).await.expect("refused");
    assert!(refusal.contains("authorization failed"), "{refusal}");
    assert_eq!(enabled_on(c, &token, "10.8.0.1").await, Some(false), "the refused write changed nothing");

    // The members table: every member ready, the Raft leader marked.
    browser.click("#nav-cluster").await.expect("cluster page");
    let status: Value =
        reqwest::get(format!("http://{c}/roster/v1/status")).await.expect("status").json().await.expect("JSON");
    let leader = status["raft"]["leader"].as_str().expect("a leader").to_owned();
    browser.wait_text("#cluster-leader", WAIT, |t| t == leader).await.expect("the leader");
    for member in &cluster.members {
        let row = format!("#members-table tr[data-member=\"{member}\"]");
        browser.wait_text(&format!("{row} .cell-ready"), WAIT, |t| t == "ready").await.expect("ready");
        let role = browser.text(&format!("{row} .cell-role")).await.expect("role").unwrap_or_default();
        assert_eq!(role == "Leader", *member == leader, "{member}: {role}");
    }
    browser.screenshot(&shots.join("console-cluster.png")).await.expect("screenshot");

    browser.quit().await;
    drop((first, second, subscriber));
    drop(cluster);
}
