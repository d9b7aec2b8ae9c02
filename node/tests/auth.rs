//! Client authentication with `--auth-enabled`: login, and every naming
//! endpoint (each HTTP route, each gRPC request type) refusing a missing,
//! expired or forged token (wrong key, changed payload, `alg: none`) and
//! accepting a valid one; per-namespace rights (a read-only user cannot
//! write); open status endpoints; start-up refusals without a usable key;
//! and the official `nacos-sdk` client logging in over HTTP.

use crate::common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nacos_sdk::api::naming::{NamingService, NamingServiceBuilder, ServiceInstance};
use nacos_sdk::api::props::ClientProps;
use reqwest::Method;
use roster_node::auth::password::PasswordHash;
use roster_node::auth::token::{self, forge, TokenKey};
use roster_node::auth::Refusal;
use roster_node::naming::{Selection, ServiceKey};
use roster_node::{Config, RunningNode};
use roster_proto::nacos::Payload;
use serde_json::{json, Value};

use common::grpc::RawClient;
use common::{auth_dir, eventually, http_base, start, test_config};

const KEY: &[u8] = common::AUTH_KEY;
const WRONG_KEY: &[u8] = b"another-key-0123456789-abcdefghijklmnopqrstu";

fn secured_config(ttl: Duration) -> Config {
    {
        let mut c = test_config();
        c.auth.enabled = true;
        c.auth.dir = Some(auth_dir());
        c.auth.token_ttl = ttl;
        c
    }
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_secs()
}

fn key() -> TokenKey {
    TokenKey::new(KEY.to_vec()).expect("key")
}

/// Tokens that must all be refused, with the message each gets.
fn bad_tokens() -> Vec<(&'static str, Option<String>, &'static str)> {
    let good = token::issue(&key(), "admin", now(), 600);
    vec![
        ("missing", None, "user not found!"),
        ("empty", Some(String::new()), "user not found!"),
        ("expired", Some(token::issue(&key(), "admin", now() - 7_200, 3_600)), "token expired!"),
        (
            "wrong key",
            Some(token::issue(&TokenKey::new(WRONG_KEY.to_vec()).expect("key"), "admin", now(), 600)),
            "token invalid!",
        ),
        (
            "tampered payload",
            Some(forge::with_payload(&token::issue(&key(), "viewer", now(), 600), "admin", now() + 600)),
            "token invalid!",
        ),
        ("alg none", Some(forge::with_algorithm(&key(), "none", "admin", now() + 600)), "token invalid!"),
        ("alg HS512", Some(forge::with_algorithm(&key(), "HS512", "admin", now() + 600)), "token invalid!"),
        ("garbage", Some("not-a-token".into()), "token invalid!"),
        ("truncated", Some(good[..good.len() - 3].to_owned()), "token invalid!"),
        ("unknown user", Some(token::issue(&key(), "mallory", now(), 600)), "user not found!"),
    ]
}

/// How a token travels in an HTTP request.
#[derive(Debug, Clone, Copy)]
enum Carry {
    /// `accessToken` in the query string.
    Query,
    /// `accessToken` among form parameters (query for GET and DELETE).
    Param,
    /// `Authorization: Bearer`.
    Bearer,
}

async fn http(
    node: &RunningNode,
    method: Method,
    path: &str,
    params: &[(&str, &str)],
    token: Option<&str>,
    carry: Carry,
    headers: &[(&str, &str)],
) -> (u16, String) {
    let url = format!("{}{path}", http_base(node));
    let mut params: Vec<(&str, &str)> = params.to_vec();
    let mut query: Vec<(&str, &str)> = Vec::new();
    let mut req = reqwest::Client::new().request(method.clone(), &url);
    match (token, carry) {
        (Some(t), Carry::Query) => query.push(("accessToken", t)),
        (Some(t), Carry::Param) => params.push(("accessToken", t)),
        (Some(t), Carry::Bearer) => req = req.bearer_auth(t),
        (None, _) => {}
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    if method == Method::GET || method == Method::DELETE {
        query.extend(params);
        req = req.query(&query);
    } else {
        req = req.query(&query).form(&params);
    }
    let resp = req.send().await.expect("HTTP request");
    let status = resp.status().as_u16();
    (status, resp.text().await.expect("body"))
}

async fn login(node: &RunningNode, user: &str, password: &str) -> String {
    let (status, body) = http(
        node,
        Method::POST,
        "/nacos/v1/auth/login",
        &[("username", user), ("password", password)],
        None,
        Carry::Param,
        &[],
    )
    .await;
    assert_eq!(status, 200, "login of {user}: {body}");
    let v: Value = serde_json::from_str(&body).expect("login JSON");
    v["accessToken"].as_str().expect("accessToken").to_owned()
}

/// One HTTP naming route and a request to it that succeeds with a valid token.
struct Route {
    method: Method,
    path: &'static str,
    params: Vec<(&'static str, &'static str)>,
}

fn route(method: Method, path: &'static str, params: &[(&'static str, &'static str)]) -> Route {
    Route { method, path, params: params.to_vec() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_http_naming_route_needs_a_valid_token() {
    let node = start(secured_config(Duration::from_secs(600))).await;
    let admin = login(&node, "admin", "admin-pw").await;
    let inst = [("serviceName", "svc"), ("ip", "10.0.0.1"), ("port", "8080")];
    let (status, body) =
        http(&node, Method::POST, "/nacos/v1/ns/instance", &inst, Some(&admin), Carry::Param, &[]).await;
    assert_eq!((status, body.as_str()), (200, "ok"));

    // In an order where each accepted request leaves what the next needs.
    let routes = [
        route(Method::POST, "/nacos/v1/ns/instance", &[("serviceName", "svc"), ("ip", "10.0.0.2"), ("port", "80")]),
        route(
            Method::PUT,
            "/nacos/v1/ns/instance",
            &[("serviceName", "svc"), ("ip", "10.0.0.1"), ("port", "8080"), ("weight", "2")],
        ),
        route(
            Method::PATCH,
            "/nacos/v1/ns/instance",
            &[("serviceName", "svc"), ("ip", "10.0.0.1"), ("port", "8080"), ("weight", "3")],
        ),
        route(Method::GET, "/nacos/v1/ns/instance", &inst),
        route(Method::PUT, "/nacos/v1/ns/instance/beat", &inst),
        route(Method::GET, "/nacos/v1/ns/instance/list", &[("serviceName", "svc")]),
        route(Method::DELETE, "/nacos/v1/ns/instance", &[("serviceName", "svc"), ("ip", "10.0.0.2"), ("port", "80")]),
        route(Method::POST, "/nacos/v1/ns/service", &[("serviceName", "made"), ("protectThreshold", "0.5")]),
        route(Method::PUT, "/nacos/v1/ns/service", &[("serviceName", "made"), ("protectThreshold", "0.2")]),
        route(Method::GET, "/nacos/v1/ns/service", &[("serviceName", "made")]),
        route(Method::GET, "/nacos/v1/ns/service/list", &[("pageNo", "1"), ("pageSize", "10")]),
        route(Method::DELETE, "/nacos/v1/ns/service", &[("serviceName", "made")]),
        route(Method::GET, "/nacos/v1/ns/operator/metrics", &[]),
    ];
    let carries = [Carry::Query, Carry::Param, Carry::Bearer];
    for (i, r) in routes.iter().enumerate() {
        let before = node.store().counts();
        let before_made = node.store().service(&ServiceKey::new("public", "DEFAULT_GROUP", "made")).map(|s| s.meta);
        for (what, token, message) in bad_tokens() {
            for carry in carries {
                let (status, body) =
                    http(&node, r.method.clone(), r.path, &r.params, token.as_deref(), carry, &[]).await;
                assert_eq!(status, 403, "{} {} with {what} token ({carry:?}): {body}", r.method, r.path);
                assert!(body.contains(message), "{} {} with {what} token: {body}", r.method, r.path);
            }
        }
        // Headers that once bypassed Nacos's check gain nothing.
        let spoof = [("User-Agent", "Nacos-Server"), ("x-roster-forwarded-by", "127.0.0.1:8848")];
        let (status, body) = http(&node, r.method.clone(), r.path, &r.params, None, Carry::Query, &spoof).await;
        assert_eq!(status, 403, "{} {} with spoofed headers: {body}", r.method, r.path);
        assert_eq!(node.store().counts(), before, "a refused {} {} changed the store", r.method, r.path);
        assert_eq!(
            node.store().service(&ServiceKey::new("public", "DEFAULT_GROUP", "made")).map(|s| s.meta),
            before_made,
            "a refused {} {} changed a service",
            r.method,
            r.path
        );
        let carry = carries[i % carries.len()];
        let (status, body) = http(&node, r.method.clone(), r.path, &r.params, Some(&admin), carry, &[]).await;
        assert_eq!(status, 200, "{} {} with a valid token ({carry:?}): {body}", r.method, r.path);
    }
    let key = ServiceKey::new("public", "DEFAULT_GROUP", "svc");
    let hosts = node.store().query(&key, &Selection::default()).hosts;
    assert_eq!(hosts.len(), 1, "only the accepted writes took effect: {hosts:?}");
    assert_eq!(hosts[0].weight, 3.0);
    assert!(node.metrics().auth.failure_count(Refusal::ExpiredToken) > 0);
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rights_are_per_namespace_and_read_only_cannot_write() {
    let node = start(secured_config(Duration::from_secs(600))).await;
    let admin = login(&node, "admin", "admin-pw").await;
    let viewer = login(&node, "viewer", "viewer-pw").await;
    let team = login(&node, "team", "team-pw").await;
    let reg = |ns: &'static str, ip: &'static str| {
        vec![("serviceName", "svc"), ("ip", ip), ("port", "80"), ("namespaceId", ns)]
    };
    let list = |ns: &'static str| vec![("serviceName", "svc"), ("namespaceId", ns)];
    let post = "/nacos/v1/ns/instance";
    let get = "/nacos/v1/ns/instance/list";

    assert_eq!(
        http(&node, Method::POST, post, &reg("public", "10.0.0.1"), Some(&admin), Carry::Param, &[]).await.0,
        200
    );
    // Read-only: reads anywhere, writes nowhere.
    assert_eq!(http(&node, Method::GET, get, &list("public"), Some(&viewer), Carry::Query, &[]).await.0, 200);
    assert_eq!(http(&node, Method::GET, get, &list("team-a"), Some(&viewer), Carry::Bearer, &[]).await.0, 200);
    for (method, path, params) in [
        (Method::POST, post, reg("public", "10.0.0.9")),
        (Method::DELETE, post, reg("public", "10.0.0.1")),
        (Method::PUT, "/nacos/v1/ns/instance/beat", reg("public", "10.0.0.1")),
        (Method::POST, "/nacos/v1/ns/service", list("public")),
    ] {
        let (status, body) = http(&node, method.clone(), path, &params, Some(&viewer), Carry::Param, &[]).await;
        assert_eq!((status, body.contains("authorization failed!")), (403, true), "viewer {method} {path}: {body}");
    }
    // Namespace-scoped: read-write in team-a, nothing in public. The empty
    // namespace is `public`.
    assert_eq!(
        http(&node, Method::POST, post, &reg("team-a", "10.0.1.1"), Some(&team), Carry::Param, &[]).await.0,
        200
    );
    assert_eq!(http(&node, Method::GET, get, &list("team-a"), Some(&team), Carry::Query, &[]).await.0, 200);
    assert_eq!(
        http(&node, Method::POST, post, &reg("public", "10.0.1.2"), Some(&team), Carry::Param, &[]).await.0,
        403
    );
    assert_eq!(http(&node, Method::POST, post, &reg("", "10.0.1.2"), Some(&team), Carry::Param, &[]).await.0, 403);
    assert_eq!(http(&node, Method::GET, get, &list("public"), Some(&team), Carry::Query, &[]).await.0, 403);
    let counts = node.store().counts();
    assert_eq!(counts.instances, 2, "one instance in public, one in team-a: {counts:?}");
    assert!(node.metrics().auth.failure_count(Refusal::Forbidden) >= 7);
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_answers_like_nacos_and_refuses_bad_credentials() {
    let node = start(secured_config(Duration::from_secs(900))).await;
    for path in ["/nacos/v1/auth/login", "/nacos/v1/auth/users/login"] {
        for carry in [Carry::Query, Carry::Param] {
            let creds = [("username", "admin"), ("password", "admin-pw")];
            let url = format!("{}{path}", http_base(&node));
            let req = reqwest::Client::new().post(&url);
            let req = match carry {
                Carry::Query => req.query(&creds),
                _ => req.form(&creds),
            };
            let resp = req.send().await.expect("login");
            assert_eq!(resp.status().as_u16(), 200, "{path} {carry:?}");
            let bearer = resp.headers().get("authorization").and_then(|v| v.to_str().ok()).map(str::to_owned);
            let v: Value = resp.json().await.expect("json");
            assert_eq!(v["tokenTtl"], 900);
            assert_eq!(v["globalAdmin"], true);
            assert_eq!(v["username"], "admin");
            let t = v["accessToken"].as_str().expect("token");
            assert_eq!(bearer, Some(format!("Bearer {t}")));
            let claims = token::verify(&key(), t, now()).expect("a token signed with the configured key");
            assert_eq!(claims.sub, "admin");
            assert!(claims.exp >= now() + 890 && claims.exp <= now() + 900, "{claims:?}");
        }
    }
    let v: Value = serde_json::from_str(
        &http(
            &node,
            Method::POST,
            "/nacos/v1/auth/login",
            &[("username", "viewer"), ("password", "viewer-pw")],
            None,
            Carry::Param,
            &[],
        )
        .await
        .1,
    )
    .expect("json");
    assert_eq!(v["globalAdmin"], false);
    for creds in [
        vec![("username", "admin"), ("password", "wrong")],
        vec![("username", "admin"), ("password", "")],
        vec![("username", "admin")],
        vec![("username", "nobody"), ("password", "admin-pw")],
        vec![],
    ] {
        let (status, body) = http(&node, Method::POST, "/nacos/v1/auth/login", &creds, None, Carry::Param, &[]).await;
        assert_eq!(status, 403, "{creds:?}: {body}");
        assert!(body.contains("User not found!") && !body.contains("accessToken"), "{body}");
    }
    assert_eq!(node.metrics().auth.failure_count(Refusal::BadCredentials), 5);
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_health_and_metrics_stay_open() {
    let node = start(secured_config(Duration::from_secs(600))).await;
    for path in [
        "/roster/v1/status",
        "/nacos/v1/console/health/liveness",
        "/nacos/v1/console/health/readiness",
        "/nacos/v1/core/cluster/nodes",
    ] {
        let base = http_base(&node);
        eventually(path, Duration::from_secs(10), || {
            let url = format!("{base}{path}");
            async move {
                let status = reqwest::get(&url).await.ok()?.status().as_u16();
                (status == 200).then_some(())
            }
        })
        .await;
    }
    // One refused request, then its count on the open metrics page.
    let (status, _) =
        http(&node, Method::GET, "/nacos/v1/ns/instance/list", &[("serviceName", "x")], None, Carry::Query, &[]).await;
    assert_eq!(status, 403);
    let metrics = reqwest::get(format!("{}/metrics", http_base(&node))).await.expect("metrics");
    assert_eq!(metrics.status().as_u16(), 200);
    let text = metrics.text().await.expect("text");
    assert!(text.contains("roster_auth_failures_total{reason=\"missing_token\"} 1"), "{text}");
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_expire_after_their_ttl() {
    let node = start(secured_config(Duration::from_secs(1))).await;
    let t = login(&node, "admin", "admin-pw").await;
    let params = [("serviceName", "svc")];
    let (status, body) =
        http(&node, Method::GET, "/nacos/v1/ns/instance/list", &params, Some(&t), Carry::Query, &[]).await;
    // The token may straddle a second boundary and already be stale; it
    // must have been issued for exactly one second either way.
    let claims = token::verify(&key(), &t, 0).expect("genuine");
    assert_eq!(claims.exp - claims.iat, 1);
    assert!(status == 200 || body.contains("token expired!"), "{status} {body}");
    eventually("the token expires", Duration::from_secs(5), || {
        let node = &node;
        let t = t.clone();
        async move {
            let (status, body) =
                http(node, Method::GET, "/nacos/v1/ns/instance/list", &params, Some(&t), Carry::Query, &[]).await;
            (status == 403 && body.contains("token expired!")).then_some(())
        }
    })
    .await;
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_auth_login_is_absent_and_requests_need_no_token() {
    let node = start(test_config()).await;
    let (status, body) = http(
        &node,
        Method::POST,
        "/nacos/v1/auth/login",
        &[("username", "a"), ("password", "b")],
        None,
        Carry::Param,
        &[],
    )
    .await;
    assert_eq!(status, 404, "{body}");
    let inst = [("serviceName", "svc"), ("ip", "10.0.0.1"), ("port", "80")];
    assert_eq!(http(&node, Method::POST, "/nacos/v1/ns/instance", &inst, None, Carry::Param, &[]).await.0, 200);
    node.shutdown().await;
}

// ---- start-up ----

#[tokio::test]
async fn an_enabled_node_without_a_usable_key_or_users_refuses_to_start() {
    let dir = auth_dir();
    let cases: Vec<(Config, &str)> = vec![
        (
            {
                let mut c = test_config();
                c.auth.enabled = true;
                c
            },
            "no default",
        ),
        (
            {
                let mut c = test_config();
                c.auth.enabled = true;
                c.auth.users_file = Some(dir.join("users.json"));
                c
            },
            "no default",
        ),
        (
            {
                let short = dir.join("short-key");
                std::fs::write(&short, "only-31-bytes-of-key-material!!").expect("write");
                {
                    let mut c = test_config();
                    c.auth.enabled = true;
                    c.auth.dir = Some(dir.clone());
                    c.auth.token_key_file = Some(short);
                    c
                }
            },
            "at least 32",
        ),
        (
            {
                let mut c = test_config();
                c.auth.enabled = true;
                c.auth.token_key_file = Some(dir.join("token-key"));
                c
            },
            "users file",
        ),
        (
            {
                let mut c = test_config();
                c.auth.enabled = true;
                c.auth.token_key_file = Some(dir.join("token-key"));
                c.auth.users_file = Some(dir.join("missing.json"));
                c
            },
            "cannot read the users file",
        ),
    ];
    for (config, expected) in cases {
        let err = roster_node::start(config).await.expect_err("must refuse to start").to_string();
        assert!(err.contains(expected), "expected '{expected}' in: {err}");
    }
}

/// Runs the real binary; kills it by its handle if it outlives `limit`.
fn run_binary(
    args: &[&str],
    envs: &[(&str, &str)],
    stdin: Option<&str>,
    limit: Duration,
) -> (Option<i32>, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_roster-node"));
    cmd.args(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn roster-node");
    if let Some(input) = stdin {
        use std::io::Write;
        child.stdin.take().expect("stdin").write_all(input.as_bytes()).expect("write stdin");
    } else {
        drop(child.stdin.take());
    }
    let deadline = Instant::now() + limit;
    let code = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status.code();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("roster-node {args:?} still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let output = child.wait_with_output().expect("output");
    (code, String::from_utf8_lossy(&output.stdout).into_owned(), String::from_utf8_lossy(&output.stderr).into_owned())
}

#[test]
fn the_binary_exits_with_a_clear_message_and_hashes_passwords() {
    let data = common::data_dir();
    let data = data.to_str().expect("utf-8 path");
    let base = ["--bind", "127.0.0.1", "--port", "0", "--data-dir", data];
    let (code, _, stderr) = run_binary(&[&base[..], &["--auth-enabled"]].concat(), &[], None, Duration::from_secs(20));
    assert_ne!(code, Some(0));
    assert!(stderr.contains("token signing key") && stderr.contains("no default"), "{stderr}");
    let (code, _, stderr) = run_binary(
        &base,
        &[("ROSTER_AUTH_ENABLED", "true"), ("ROSTER_AUTH_TOKEN_KEY", "too-short")],
        None,
        Duration::from_secs(20),
    );
    assert_ne!(code, Some(0));
    assert!(stderr.contains("at least 32"), "{stderr}");

    let (code, stdout, stderr) =
        run_binary(&["hash-password", "--iterations", "1000"], &[], Some("s3cret\n"), Duration::from_secs(20));
    assert_eq!(code, Some(0), "{stderr}");
    let hash = PasswordHash::parse(stdout.trim()).expect("a valid hash");
    assert!(hash.matches("s3cret") && !hash.matches("s3cret\n"));
    let (code, _, stderr) = run_binary(&["hash-password"], &[], Some("\n"), Duration::from_secs(20));
    assert_ne!(code, Some(0));
    assert!(stderr.contains("empty"), "{stderr}");
}

// ---- gRPC ----

/// A request carrying `token` in its metadata headers, as the SDKs send it.
fn with_token(type_name: &str, body: &Value, token: Option<&str>) -> Payload {
    let mut p = common::grpc::payload(type_name, body);
    if let (Some(t), Some(metadata)) = (token, p.metadata.as_mut()) {
        metadata.headers.insert("accessToken".to_owned(), t.to_owned());
    }
    p
}

/// A connection set up by hand (no token: the handshake is open).
async fn connect(node: &RunningNode) -> RawClient {
    RawClient::connect_with(node, false, "auth-test", json!({})).await
}

/// The answer's body to a request of `type_name` sent with `token`.
async fn call(raw: &mut RawClient, type_name: &str, body: &Value, token: Option<&str>) -> Value {
    raw.call_raw(with_token(type_name, body, token)).await.1
}

fn naming(kind: &str, ns: &str, extra: Value) -> Value {
    let mut v = json!({"headers": {}, "namespace": ns, "serviceName": "grpc-svc", "groupName": "DEFAULT_GROUP", "module": "naming"});
    if !kind.is_empty() {
        v["type"] = kind.into();
    }
    if let (Some(obj), Value::Object(extra)) = (v.as_object_mut(), extra) {
        obj.extend(extra);
    }
    v
}

fn instance(ip: &str, ephemeral: bool) -> Value {
    json!({"ip": ip, "port": 80, "weight": 1.0, "healthy": true, "enabled": true, "ephemeral": ephemeral, "clusterName": "DEFAULT", "metadata": {}})
}

fn grpc_requests() -> Vec<(&'static str, Value)> {
    vec![
        ("InstanceRequest", naming("registerInstance", "public", json!({"instance": instance("10.9.0.1", true)}))),
        (
            "BatchInstanceRequest",
            naming(
                "batchRegisterInstance",
                "public",
                json!({"instances": [instance("10.9.0.2", true), instance("10.9.0.3", true)]}),
            ),
        ),
        (
            "PersistentInstanceRequest",
            naming("registerInstance", "public", json!({"instance": instance("10.9.0.4", false)})),
        ),
        ("ServiceQueryRequest", naming("", "public", json!({"cluster": "", "healthyOnly": false, "udpPort": 0}))),
        ("SubscribeServiceRequest", naming("", "public", json!({"subscribe": true, "clusters": ""}))),
        ("ServiceListRequest", naming("", "public", json!({"pageNo": 1, "pageSize": 10, "selector": ""}))),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_grpc_naming_request_needs_a_valid_token() {
    let node = start(secured_config(Duration::from_secs(600))).await;
    let admin = login(&node, "admin", "admin-pw").await;
    let mut raw = connect(&node).await;
    // Keep-alive stays open.
    let v = call(&mut raw, "HealthCheckRequest", &json!({"headers": {}, "module": "internal"}), None).await;
    assert_eq!(v["resultCode"], 200, "{v}");
    for (type_name, body) in grpc_requests() {
        let before = node.store().counts();
        for (what, token, message) in bad_tokens() {
            let v = call(&mut raw, type_name, &body, token.as_deref()).await;
            assert_eq!(
                (v["resultCode"].as_i64(), v["errorCode"].as_i64()),
                (Some(500), Some(403)),
                "{type_name} with {what} token: {v}"
            );
            assert_eq!(v["message"], message, "{type_name} with {what} token");
        }
        assert_eq!(node.store().counts(), before, "a refused {type_name} changed the store");
        let v = call(&mut raw, type_name, &body, Some(&admin)).await;
        assert_eq!(v["resultCode"], 200, "{type_name} with a valid token: {v}");
    }
    // The token may also sit in the body's headers, as Nacos merges both.
    let mut body = naming("", "public", json!({"cluster": "", "healthyOnly": false}));
    body["headers"] = json!({"accessToken": admin});
    let v = call(&mut raw, "ServiceQueryRequest", &body, None).await;
    assert_eq!(v["resultCode"], 200, "{v}");
    // The batch replaced the connection's single instance; plus the persistent one.
    assert_eq!(v["serviceInfo"]["hosts"].as_array().map(Vec::len), Some(3), "{v}");
    // An unknown type is not a way around the check.
    let v = call(&mut raw, "ConfigQueryRequest", &json!({"headers": {}}), None).await;
    assert_eq!(v["errorCode"], 403, "{v}");
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_rights_follow_the_namespace() {
    let node = start(secured_config(Duration::from_secs(600))).await;
    let viewer = login(&node, "viewer", "viewer-pw").await;
    let team = login(&node, "team", "team-pw").await;
    let mut raw = connect(&node).await;
    for (type_name, body) in grpc_requests() {
        let v = call(&mut raw, type_name, &body, Some(&viewer)).await;
        let write = matches!(type_name, "InstanceRequest" | "BatchInstanceRequest" | "PersistentInstanceRequest");
        if write {
            assert_eq!(
                (v["errorCode"].as_i64(), v["message"].as_str()),
                (Some(403), Some("authorization failed!")),
                "{type_name}: {v}"
            );
        } else {
            assert_eq!(v["resultCode"], 200, "viewer {type_name}: {v}");
        }
    }
    let register = |ns: &str| naming("registerInstance", ns, json!({"instance": instance("10.9.1.1", true)}));
    assert_eq!(call(&mut raw, "InstanceRequest", &register("team-a"), Some(&team)).await["resultCode"], 200);
    assert_eq!(call(&mut raw, "InstanceRequest", &register("public"), Some(&team)).await["errorCode"], 403);
    assert_eq!(call(&mut raw, "InstanceRequest", &register(""), Some(&team)).await["errorCode"], 403);
    assert_eq!(node.store().counts().instances, 1);
    node.shutdown().await;
}

// ---- the official client ----

fn sdk_props(node: &RunningNode, user: &str, password: &str) -> ClientProps {
    ClientProps::new()
        .server_addr(format!("127.0.0.1:{}", node.http_addr.port()))
        .remote_grpc_port(node.grpc_addr.port())
        .namespace("")
        .app_name("auth-test")
        .env_first(false)
        .naming_push_empty_protection(false)
        .load_cache_at_start(false)
        .auth_username(user)
        .auth_password(password)
}

async fn sdk(node: &RunningNode, user: &str, password: &str) -> NamingService {
    NamingServiceBuilder::new(sdk_props(node, user, password))
        .enable_auth_plugin_http()
        .build()
        .await
        .expect("client connects")
}

fn sdk_instance(ip: &str) -> ServiceInstance {
    ServiceInstance { ip: ip.to_owned(), port: 8080, ..ServiceInstance::default() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_client_logs_in_over_http_and_is_held_to_its_rights() {
    let node = start(secured_config(Duration::from_secs(600))).await;
    let admin = sdk(&node, "admin", "admin-pw").await;
    admin.register_instance("orders".into(), None, sdk_instance("10.5.0.1")).await.expect("admin registers");
    let found = admin.get_all_instances("orders".into(), None, vec![], false).await.expect("admin queries");
    assert_eq!(found.len(), 1);

    let viewer = sdk(&node, "viewer", "viewer-pw").await;
    let found = viewer.get_all_instances("orders".into(), None, vec![], false).await.expect("viewer queries");
    assert_eq!(found.len(), 1);
    let refused = viewer.register_instance("orders".into(), None, sdk_instance("10.5.0.2")).await;
    assert!(refused.is_err(), "a read-only user registered: {refused:?}");

    let intruder = sdk(&node, "admin", "wrong-password").await;
    let refused = intruder.register_instance("orders".into(), None, sdk_instance("10.5.0.3")).await;
    assert!(refused.is_err(), "a wrong password registered: {refused:?}");
    let refused = intruder.get_all_instances("orders".into(), None, vec![], false).await;
    assert!(refused.is_err(), "a wrong password queried: {refused:?}");

    let key = ServiceKey::new("public", "DEFAULT_GROUP", "orders");
    let hosts = node.store().query(&key, &Selection::default()).hosts;
    assert_eq!(hosts.iter().map(|h| h.ip.as_str()).collect::<Vec<_>>(), vec!["10.5.0.1"]);
    assert!(node.metrics().auth.failure_count(Refusal::BadCredentials) >= 1);
    drop((admin, viewer, intruder));
    node.shutdown().await;
}

// ---- forwarding between members ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_writes_carry_the_clients_token() {
    let ips = common::loopback_ips(2);
    let members: Vec<String> = ips.iter().map(|ip| format!("{ip}:8848")).collect();
    let dir = auth_dir();
    let conf = dir.join("cluster.conf");
    std::fs::write(&conf, members.join("\n")).expect("conf");
    let mut nodes = Vec::new();
    for (ip, member) in ips.iter().zip(&members) {
        let config = {
            let mut c = test_config();
            c.bind = ip.parse().expect("ip");
            c.port = 8848;
            c.advertise = Some(member.clone());
            c.cluster.lookup.mode = roster_node::cluster::LookupMode::File;
            c.cluster.lookup.cluster_conf = conf.clone();
            c.cluster.lookup.file_poll_interval = Duration::from_millis(100);
            c.cluster.report_interval = Duration::from_millis(100);
            c.auth.enabled = true;
            c.auth.dir = Some(dir.clone());
            c
        };
        nodes.push(start(config).await);
    }
    let (a, b) = (&nodes[0], &nodes[1]);
    common::responsibility_split(&nodes, &members).await;
    // Two instance addresses that `b` is responsible for, as `a` sees it.
    let responsibility = a.membership().responsibility();
    let ports: Vec<u16> = (1000..1400u16)
        .filter(|p| responsibility.member_for(&format!("10.7.0.1:{p}")) == Some(b.member()))
        .take(2)
        .collect();
    assert_eq!(ports.len(), 2, "b is responsible for some of 400 addresses");
    let admin = login(a, "admin", "admin-pw").await;
    let forwarded = || a.metrics().distro.count(roster_node::distro::metrics::DistroEvent::HttpForwarded);
    for (carry, port) in [(Carry::Bearer, ports[0]), (Carry::Param, ports[1])] {
        let before = forwarded();
        let port = port.to_string();
        let params = [("serviceName", "fwd"), ("ip", "10.7.0.1"), ("port", port.as_str())];
        let (status, body) = http(a, Method::POST, "/nacos/v1/ns/instance", &params, Some(&admin), carry, &[]).await;
        assert_eq!((status, body.as_str()), (200, "ok"), "{carry:?}");
        assert_eq!(
            forwarded(),
            before + 1,
            "the write went to the responsible member, which accepted the token ({carry:?})"
        );
    }
    let port = ports[0].to_string();
    // Without a token, the receiving member refuses before forwarding anything.
    let before = forwarded();
    let params = [("serviceName", "fwd"), ("ip", "10.7.0.1"), ("port", port.as_str())];
    assert_eq!(http(a, Method::DELETE, "/nacos/v1/ns/instance", &params, None, Carry::Query, &[]).await.0, 403);
    assert_eq!(forwarded(), before);
    // The responsible member checks the forwarded token itself: a forged one
    // sent straight to it with the forwarding header is refused.
    let forged = forge::with_algorithm(&key(), "none", "admin", now() + 600);
    let spoof = [("x-roster-forwarded-by", a.member())];
    let (status, _) =
        http(b, Method::DELETE, "/nacos/v1/ns/instance", &params, Some(&forged), Carry::Bearer, &spoof).await;
    assert_eq!(status, 403);
    let held = b.store().query(&ServiceKey::new("public", "DEFAULT_GROUP", "fwd"), &Selection::default()).hosts;
    assert!(held.iter().any(|h| h.ip == "10.7.0.1"), "{held:?}");
    for node in nodes {
        node.shutdown().await;
    }
}
