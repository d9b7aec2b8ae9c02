//! The official Nacos SDKs of other languages against a real node: the
//! Python SDK (`nacos-sdk-python` 2.x, gRPC) and the Node.js SDK (npm
//! `nacos`, HTTP v1 with UDP push), each driven through a small script in
//! `e2e/sdk/` that takes JSON commands on stdin and answers on stdout.
//!
//! `.ci/run` installs both SDKs into `e2e/sdk/` (pinned versions). With
//! `CI=true` a missing SDK fails the test; elsewhere the test is skipped
//! and says so loudly on stderr.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use roster_e2e::{eventually, NodeProcess};
use serde_json::{json, Value};

/// How long one SDK command may take (connecting and retries included).
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

fn sdk_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("sdk")
}

/// Whether `installed` exists; in CI its absence is a failure.
fn sdk_installed(what: &str, installed: &Path, program: &str) -> bool {
    let program_found = Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if program_found && installed.exists() {
        return true;
    }
    let why = format!(
        "{what} is not installed ({program} found: {program_found}; {} exists: {})",
        installed.display(),
        installed.exists()
    );
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{why}: .ci/run installs it");
    }
    // Straight to the process's stderr: the test harness captures
    // `eprintln!` of passing tests, and a skip must not go unseen.
    let _ = writeln!(
        std::io::stderr(),
        "\n!!!!!!!!!! SKIPPED: {why}. Run the SDK lines of .ci/run to install it. !!!!!!!!!!\n"
    );
    false
}

/// One SDK driver process. Killed when dropped.
struct Driver {
    name: &'static str,
    child: Child,
    stdin: ChildStdin,
    lines: mpsc::Receiver<String>,
}

impl Driver {
    /// Starts `command` and waits for its `{"ready": true}` line.
    fn start(name: &'static str, mut command: Command) -> Driver {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(if std::env::var_os("ROSTER_E2E_LOGS").is_some() { Stdio::inherit() } else { Stdio::null() })
            .spawn()
            .unwrap_or_else(|e| panic!("starting the {name} driver: {e}"));
        let stdin = child.stdin.take().expect("stdin");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut driver = Driver { name, child, stdin, lines };
        let ready = driver.next_line();
        assert_eq!(ready, json!({"ready": true}), "{name} driver start");
        driver
    }

    fn next_line(&mut self) -> Value {
        match self.lines.recv_timeout(CALL_TIMEOUT) {
            Ok(line) => {
                serde_json::from_str(&line).unwrap_or_else(|e| panic!("{} driver said ({e}): {line}", self.name))
            }
            Err(e) => {
                let status = self.child.try_wait().ok().flatten();
                panic!("{} driver gave no answer within {CALL_TIMEOUT:?} ({e}; exit status {status:?})", self.name)
            }
        }
    }

    /// Runs one command; its `result`, or the SDK's error.
    fn try_call(&mut self, command: Value) -> Result<Value, String> {
        writeln!(self.stdin, "{command}").and_then(|()| self.stdin.flush()).expect("write to the driver");
        let answer = self.next_line();
        if answer["ok"] == true {
            Ok(answer["result"].clone())
        } else {
            Err(answer["error"].as_str().unwrap_or("no error text").to_owned())
        }
    }

    /// Runs one command that must succeed.
    fn call(&mut self, command: Value) -> Value {
        let what = command.to_string();
        self.try_call(command).unwrap_or_else(|e| panic!("{} {what} failed: {e}", self.name))
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.try_call_quietly();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Driver {
    /// Asks the driver to close its SDK client, not waiting long.
    fn try_call_quietly(&mut self) -> Option<()> {
        writeln!(self.stdin, "{}", json!({"op": "quit"})).ok()?;
        self.stdin.flush().ok()?;
        self.lines.recv_timeout(Duration::from_secs(5)).ok().map(|_| ())
    }
}

fn start_node() -> NodeProcess {
    NodeProcess::start(&["--bind", "127.0.0.1", "--port", "0", "--push-delay", "20ms"], &[]).expect("node starts")
}

/// The hosts of a service as `ip:port`, sorted, read over the v2 list
/// (so that the v1 list counter stays the SDKs' own).
async fn hosts(node: &NodeProcess, service: &str) -> Vec<String> {
    let mut hosts: Vec<String> = http_details(node, service)
        .await
        .iter()
        .map(|h| format!("{}:{}", h["ip"].as_str().expect("ip"), h["port"]))
        .collect();
    hosts.sort();
    hosts
}

/// The hosts of a service as the v2 list shows them, whole.
async fn http_details(node: &NodeProcess, service: &str) -> Vec<Value> {
    let url = format!("http://{}/nacos/v2/ns/instance/list?serviceName={service}", node.http);
    let v: Value = reqwest::get(url).await.expect("list").json().await.expect("json");
    v["data"]["hosts"].as_array().cloned().unwrap_or_else(|| panic!("no hosts in {v}"))
}

async fn register(node: &NodeProcess, service: &str, ip: &str, port: &str) {
    let answer = reqwest::Client::new()
        .post(format!("http://{}/nacos/v1/ns/instance", node.http))
        .form(&[("serviceName", service), ("ip", ip), ("port", port)])
        .send()
        .await
        .expect("register");
    assert_eq!(answer.status(), 200);
}

/// A counter of the node's `/metrics`: the sum over the lines of `name`
/// whose labels contain every one of `labels`.
async fn counter(node: &NodeProcess, name: &str, labels: &[&str]) -> u64 {
    let text =
        reqwest::get(format!("http://{}/metrics", node.http)).await.expect("metrics").text().await.expect("text");
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) && labels.iter().all(|want| l.contains(want)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|v| v as u64)
        .sum()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array().expect("a list").iter().map(|s| s.as_str().expect("a string").to_owned()).collect()
}

/// The Python SDK's driver connected to `node`, or `None` (skipped, said
/// loudly) where the SDK is not installed outside CI.
fn start_python(node: &NodeProcess, logs: &Path) -> Option<Driver> {
    let python = sdk_dir().join(".python");
    if !sdk_installed("nacos-sdk-python 2.x", &python.join("v2/nacos"), "python3") {
        return None;
    }
    let mut command = Command::new("python3");
    command
        .arg(sdk_dir().join("nacos_py_driver.py"))
        .arg(node.http.to_string())
        .arg(node.grpc.port().to_string())
        .arg(logs)
        .env("PYTHONPATH", &python)
        .env("PYTHONDONTWRITEBYTECODE", "1");
    Some(Driver::start("python", command))
}

#[tokio::test]
async fn python_sdk_registers_lists_and_gets_pushes_over_grpc() {
    let node = start_node();
    let logs = tempfile::tempdir().expect("log dir");
    let Some(mut py) = start_python(&node, logs.path()) else { return };

    let batch = json!({"op": "batch_register", "service": "py-orders",
        "instances": [{"ip": "10.10.0.1", "port": 80}, {"ip": "10.10.0.2", "port": 80}]});
    assert_eq!(py.call(batch), true);
    assert_eq!(hosts(&node, "py-orders").await, ["10.10.0.1:80", "10.10.0.2:80"]);
    assert_eq!(
        strings(&py.call(json!({"op": "list_instances", "service": "py-orders"}))),
        ["10.10.0.1:80", "10.10.0.2:80"]
    );

    // A subscriber is pushed a change made by another client.
    assert_eq!(py.call(json!({"op": "subscribe", "service": "py-orders"})), true);
    register(&node, "py-orders", "10.10.0.3", "80").await;
    eventually("the Python SDK is pushed the third instance", Duration::from_secs(10), || {
        let pushes = py.call(json!({"op": "pushes", "service": "py-orders"}));
        let seen = pushes.as_array().expect("pushes").iter().any(|p| strings(p).len() == 3);
        async move { seen.then_some(()) }
    })
    .await;

    let listed = py.call(json!({"op": "list_services"}));
    assert!(strings(&listed["services"]).contains(&"py-orders".to_owned()), "{listed}");

    // One instance registered and deregistered by its own connection.
    assert_eq!(py.call(json!({"op": "register", "service": "py-single", "ip": "10.10.1.1", "port": 81})), true);
    assert_eq!(hosts(&node, "py-single").await, ["10.10.1.1:81"]);
    assert_eq!(py.call(json!({"op": "deregister", "service": "py-single", "ip": "10.10.1.1", "port": 81})), true);
    assert!(hosts(&node, "py-single").await.is_empty());

    // Bad input gets the server's error, and changes nothing.
    let bad = py.try_call(json!({"op": "register", "service": "py-bad", "ip": "10.10.2.1", "port": 70000}));
    let error = bad.expect_err("a port out of range is refused");
    assert!(error.contains("Param 'port' is out of range"), "the server's message: {error}");
    assert!(hosts(&node, "py-bad").await.is_empty());
}

#[tokio::test]
async fn node_sdk_subscriber_gets_a_change_over_udp_within_a_second() {
    let sdk = sdk_dir().join("node_modules").join("nacos");
    if !sdk_installed("the Node.js SDK (npm nacos)", &sdk, "node") {
        return;
    }
    let node = start_node();
    let mut command = Command::new("node");
    command.arg(sdk_dir().join("nacos_node_driver.js")).arg(node.http.to_string());
    let mut js = Driver::start("node", command);

    // Registered over HTTP v1, kept alive by the SDK's beats.
    assert_eq!(js.call(json!({"op": "register", "service": "js-orders", "ip": "10.20.0.1", "port": 80})), true);
    assert_eq!(hosts(&node, "js-orders").await, ["10.20.0.1:80"]);

    // Subscribing lists the service with the SDK's UDP port; the SDK
    // lists it again 1 s later, then every cacheMillis (10 s).
    let lists = ["route=\"/nacos/v1/ns/instance/list\"", "status=\"200\""];
    assert_eq!(js.call(json!({"op": "subscribe", "service": "js-orders"})), true);
    eventually("the SDK's first two lists", Duration::from_secs(10), || async {
        (counter(&node, "roster_http_requests_total", &lists).await >= 2).then_some(())
    })
    .await;
    let polls_before = counter(&node, "roster_http_requests_total", &lists).await;

    // A change now reaches the subscriber within 1 s, before its next poll:
    // only the UDP push can have brought it.
    let changed = Instant::now();
    register(&node, "js-orders", "10.20.0.2", "80").await;
    eventually("the Node.js SDK sees the second instance", Duration::from_secs(1), || {
        let events = js.call(json!({"op": "events", "service": "js-orders"}));
        let seen = events.as_array().expect("events").iter().any(|e| strings(&e["hosts"]).len() == 2);
        async move { seen.then_some(()) }
    })
    .await;
    let latency = changed.elapsed();
    assert!(latency < Duration::from_secs(1), "{latency:?}");
    assert_eq!(counter(&node, "roster_http_requests_total", &lists).await, polls_before, "no poll in between");
    eventually("the push is acknowledged", Duration::from_secs(5), || async {
        (counter(&node, "roster_udp_pushes_total", &["result=\"acked\""]).await >= 1).then_some(())
    })
    .await;
    eprintln!("UDP push reached the Node.js SDK {latency:?} after the change");

    assert_eq!(js.call(json!({"op": "deregister", "service": "js-orders", "ip": "10.20.0.1", "port": 80})), true);
    assert_eq!(hosts(&node, "js-orders").await, ["10.20.0.2:80"]);
}

/// Nacos's `EphemeralClientOperationServiceImpl.deregisterInstance`: a
/// connection's deregister removes whatever it publishes for the service,
/// whatever ip and port the request names.
#[tokio::test]
async fn python_sdk_deregister_removes_what_the_connection_published() {
    let node = start_node();
    let logs = tempfile::tempdir().expect("log dir");
    let Some(mut py) = start_python(&node, logs.path()) else { return };
    let batch = json!({"op": "batch_register", "service": "py-dereg",
        "instances": [{"ip": "10.30.0.1", "port": 80}, {"ip": "10.30.0.2", "port": 80}]});
    assert_eq!(py.call(batch), true);
    assert_eq!(hosts(&node, "py-dereg").await.len(), 2);
    assert_eq!(py.call(json!({"op": "deregister", "service": "py-dereg", "ip": "10.30.0.1", "port": 80})), true);
    assert!(hosts(&node, "py-dereg").await.is_empty(), "the whole batch goes, as in Nacos");

    assert_eq!(py.call(json!({"op": "register", "service": "py-dereg-2", "ip": "10.30.1.1", "port": 80})), true);
    assert_eq!(py.call(json!({"op": "deregister", "service": "py-dereg-2", "ip": "10.30.9.9", "port": 1})), true);
    assert!(hosts(&node, "py-dereg-2").await.is_empty(), "whatever ip and port the request names");
}

/// Nacos's `EmptyServiceAutoCleanerV2`: an emptied service stays listed
/// (with no hosts) until it has been empty and unchanged for the retention,
/// then goes at the next clean run. Shortened here to 3 s: long enough
/// that the lists right after the deregistration come well within it,
/// however loaded the machine.
#[tokio::test]
async fn an_emptied_service_stays_listed_until_the_cleaner_removes_it() {
    let node = NodeProcess::start(
        &[
            "--bind",
            "127.0.0.1",
            "--port",
            "0",
            "--empty-service-retention",
            "3s",
            "--empty-service-clean-interval",
            "200ms",
        ],
        &[],
    )
    .expect("node starts");
    let logs = tempfile::tempdir().expect("log dir");
    let Some(mut py) = start_python(&node, logs.path()) else { return };
    assert_eq!(py.call(json!({"op": "register", "service": "py-empty", "ip": "10.31.0.1", "port": 80})), true);
    // Taken before the request: the node empties the service after it.
    let emptied = Instant::now();
    assert_eq!(py.call(json!({"op": "deregister", "service": "py-empty", "ip": "10.31.0.1", "port": 80})), true);
    let listed = py.call(json!({"op": "list_services"}));
    assert!(strings(&listed["services"]).contains(&"py-empty".to_owned()), "still listed: {listed}");
    assert!(hosts(&node, "py-empty").await.is_empty());
    let v1 = format!("http://{}/nacos/v1/ns/service/list?pageNo=1&pageSize=10", node.http);
    let page: Value = reqwest::get(&v1).await.expect("list").json().await.expect("json");
    assert_eq!(page["doms"], json!(["py-empty"]));
    eventually("the cleaner removes the emptied service", Duration::from_secs(20), || {
        let listed = py.call(json!({"op": "list_services"}));
        let gone = !strings(&listed["services"]).contains(&"py-empty".to_owned());
        async move { gone.then_some(()) }
    })
    .await;
    assert!(emptied.elapsed() >= Duration::from_secs(3), "not before the retention");
}

/// `PUT /nacos/v1/ns/instance` (what a console sends) with `edit` on
/// `ip`:80 of `service`.
async fn edit_instance(node: &NodeProcess, service: &str, ip: &str, edit: &[(&str, &str)]) {
    let mut form = vec![("serviceName", service), ("ip", ip), ("port", "80")];
    form.extend_from_slice(edit);
    let answer = reqwest::Client::new()
        .put(format!("http://{}/nacos/v1/ns/instance", node.http))
        .form(&form)
        .send()
        .await
        .expect("edit");
    assert_eq!(answer.status(), 200, "{:?}", answer.text().await);
}

/// Nacos 2's `NamingMetadataOperateService.updateInstanceMetadata`: an
/// edit of an instance the SDK publishes is laid over what it publishes,
/// shown in its queries and pushes, and kept when it registers again.
#[tokio::test]
async fn python_sdk_sees_an_edit_of_its_instance_which_outlives_its_registering_again() {
    let node = start_node();
    let logs = tempfile::tempdir().expect("log dir");
    let Some(mut py) = start_python(&node, logs.path()) else { return };
    let own = json!({"op": "register", "service": "py-edit", "ip": "10.32.0.1", "port": 80, "metadata": {"zone": "a"}});
    assert_eq!(py.call(own.clone()), true);
    let edited = json!([{"ip": "10.32.0.1", "port": 80, "weight": 6.0, "enabled": true, "metadata": {"owner": "ops"}}]);
    let pushed_last = |py: &mut Driver, want: &Value| {
        let pushed = py.call(json!({"op": "pushed_details", "service": "py-edit"}));
        pushed.as_array().and_then(|p| p.last()) == Some(want)
    };

    edit_instance(&node, "py-edit", "10.32.0.1", &[("weight", "6"), ("metadata", "owner=ops")]).await;
    // Not subscribed yet, so the SDK asks the server.
    assert_eq!(py.call(json!({"op": "list_details", "service": "py-edit"})), edited, "queried");
    assert_eq!(py.call(json!({"op": "subscribe", "service": "py-edit"})), true);
    assert_eq!(py.call(own), true, "the SDK registers its instance again");
    // A change by another client: the push it brings still carries the
    // edit (the SDK calls back on changes only, so the registration itself,
    // changing nothing shown, brings none).
    register(&node, "py-edit", "10.32.0.2", "80").await;
    let other = json!({"ip": "10.32.0.2", "port": 80, "weight": 1.0, "enabled": true, "metadata": {}});
    let both = json!([edited[0], other]);
    eventually("the subscriber is pushed the other instance", Duration::from_secs(10), || {
        let seen = pushed_last(&mut py, &both);
        async move { seen.then_some(()) }
    })
    .await;
    assert_eq!(py.call(json!({"op": "list_details", "service": "py-edit"})), both, "the edit is kept");

    edit_instance(&node, "py-edit", "10.32.0.1", &[("enabled", "false")]).await;
    eventually("the subscriber is pushed the disabling", Duration::from_secs(10), || {
        let seen = pushed_last(&mut py, &json!([other]));
        async move { seen.then_some(()) }
    })
    .await;
    let listed: Vec<Value> = http_details(&node, "py-edit").await.iter().map(|h| h["ip"].clone()).collect();
    assert_eq!(listed, [json!("10.32.0.2")], "disabled: not served");
}
