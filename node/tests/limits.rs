//! Limits (README "Limits"): each limit refuses with its own clear error,
//! counts the refusal in `roster_limit_rejections_total{limit}`, and leaves
//! the store unchanged; a flooding client is limited while another client's
//! requests go through at the same time. Every limit is set small through
//! the config; rates are so slow (one token per 1000 s) that no token comes
//! back while a test runs, so the outcomes do not depend on timing.

use crate::common;

use std::net::IpAddr;
use std::time::Duration;

use roster_node::limits::Limit;
use roster_node::security::{ClusterSecret, PeerAuth, SignedChannel};
use roster_node::{Config, RunningNode};
use roster_proto::nacos::bi_request_stream_client::BiRequestStreamClient;
use roster_proto::nacos::request_client::RequestClient;
use roster_proto::nacos::Payload;
use roster_proto::peer::peer_client::PeerClient;
use roster_proto::peer::{ClientData, DistroSyncRequest, PublishedInstance};
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;
use tonic::transport::Channel;

use common::grpc::{hosts, payload, register, RawClient};
use common::{eventually, http_base, start, test_config};

const WAIT: Duration = Duration::from_secs(10);
/// One token per 1000 s: nothing refills during a test.
const SLOW_RATE: f64 = 0.001;

fn rejections(node: &RunningNode, limit: Limit) -> u64 {
    node.metrics().limits.rejections(limit)
}

async fn channel(node: &RunningNode) -> Channel {
    Channel::from_shared(format!("http://{}", node.grpc_addr)).expect("uri").connect().await.expect("connect")
}

/// A hand-made gRPC client on its own connection, once the node has
/// registered that connection.
async fn connect(node: &RunningNode) -> RawClient {
    let before = node.connections().count();
    let client = RawClient::connect(node, false).await;
    eventually("the connection is registered", WAIT, || async {
        (node.connections().count() >= before.max(1)).then_some(())
    })
    .await;
    client
}

#[tokio::test]
async fn oversized_http_body_gets_413_is_counted_and_changes_nothing() {
    let node = start({
        let mut c = test_config();
        c.limits.max_body_bytes = 1024;
        c
    })
    .await;
    let url = format!("{}/nacos/v1/ns/instance", http_base(&node));
    let metadata = format!("k={}", "x".repeat(4096));
    let params = [("serviceName", "big"), ("ip", "10.0.0.1"), ("port", "80"), ("metadata", metadata.as_str())];
    let resp = reqwest::Client::new().post(&url).form(&params).send().await.expect("request");
    assert_eq!(resp.status().as_u16(), 413);
    let text = resp.text().await.expect("body");
    assert!(text.starts_with("caused: ") && text.contains("1024 bytes"), "{text}");
    assert_eq!(rejections(&node, Limit::HttpBodyBytes), 1);
    assert_eq!(node.store().counts().instances, 0);
    assert_eq!(hosts(&node, "big"), 0);

    // The counter is exported under its documented name.
    let metrics =
        reqwest::get(format!("{}/metrics", http_base(&node))).await.expect("metrics").text().await.expect("text");
    assert!(metrics.contains("roster_limit_rejections_total{limit=\"http_body_bytes\"} 1"), "{metrics}");
    node.shutdown().await;
}

#[tokio::test]
async fn oversized_grpc_messages_get_resource_exhausted_and_change_nothing() {
    let node = start({
        let mut c = test_config();
        c.limits.max_grpc_message_bytes = 4096;
        c
    })
    .await;
    let mut c = connect(&node).await;
    let mut big = register("big", "10.0.0.1", 80);
    big["instance"]["metadata"] = json!({"k": "x".repeat(8192)});
    let status = c.unary.request(payload("InstanceRequest", &big)).await.expect_err("too large");
    assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
    assert!(status.message().contains("4096"), "{status:?}");
    assert_eq!(rejections(&node, Limit::GrpcMessageBytes), 1);
    assert_eq!(node.store().counts().instances, 0);

    // On the stream: an oversized setup ends the stream with the same code.
    let (tx, rx) = mpsc::channel::<Payload>(1);
    let huge = json!({"clientVersion": "x".repeat(8192), "labels": {}});
    tx.send(payload("ConnectionSetupRequest", &huge)).await.expect("send");
    let mut inbound = BiRequestStreamClient::new(channel(&node).await)
        .request_bi_stream(ReceiverStream::new(rx))
        .await
        .expect("stream")
        .into_inner();
    let status = match inbound.next().await {
        Some(Err(status)) => status,
        other => panic!("expected an error status, got {other:?}"),
    };
    assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
    assert_eq!(rejections(&node, Limit::GrpcMessageBytes), 2);
    assert_eq!(node.connections().count(), 1, "only the first client is connected");

    // The first connection still works.
    let (_, v) = c.call("InstanceRequest", register("small", "10.0.0.1", 80)).await;
    assert_eq!(v["resultCode"], 200, "{v}");
    assert_eq!(hosts(&node, "small"), 1);
    drop(tx);
    node.shutdown().await;
}

#[tokio::test]
async fn oversized_peer_messages_get_resource_exhausted_and_change_nothing() {
    let limit = roster_node::peer::MIN_MESSAGE_BYTES;
    let node = start({
        let mut c = test_config();
        c.peer.max_message_bytes = limit;
        c
    })
    .await;
    let sender = "127.0.0.1:1";
    let sync = DistroSyncRequest {
        source: sender.into(),
        upserts: vec![ClientData {
            client_id: "10.0.0.9:80#true".into(),
            revision: 1,
            connection_based: false,
            instances: vec![PublishedInstance {
                namespace: "public".into(),
                group: "DEFAULT_GROUP".into(),
                service: "peer".into(),
                ip: "10.0.0.9".into(),
                port: 80,
                cluster: "DEFAULT".into(),
                weight: 1.0,
                healthy: true,
                enabled: true,
                metadata: [("padding".to_string(), " ".repeat(limit))].into(),
                revision: 1,
            }],
            ..ClientData::default()
        }],
    };
    let channel =
        Channel::from_shared(format!("http://{}", node.peer_addr)).expect("uri").connect().await.expect("connect");
    // Signed as a member (by the node's own signing channel): the size
    // limit, not the peer check, refuses it.
    let secret = ClusterSecret::new(common::cluster_secret().as_bytes()).expect("test secret");
    let signed = SignedChannel::new(channel, Some(std::sync::Arc::new(PeerAuth::new(&secret, sender))));
    let status = PeerClient::new(signed).distro_sync(sync).await.expect_err("too large");
    assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
    assert_eq!(rejections(&node, Limit::PeerMessageBytes), 1);
    assert_eq!(node.store().counts().instances, 0);
    assert_eq!(hosts(&node, "peer"), 0);
    node.shutdown().await;
}

#[tokio::test]
async fn grpc_connections_over_the_limit_are_refused_without_disturbing_others() {
    let node = start({
        let mut c = test_config();
        c.limits.max_grpc_connections = 1;
        c
    })
    .await;
    let mut first = connect(&node).await;
    assert_eq!(first.call("InstanceRequest", register("kept", "10.0.0.1", 80)).await.1["resultCode"], 200);

    // A second TCP connection is answered RESOURCE_EXHAUSTED on every call.
    let mut second = RequestClient::new(channel(&node).await);
    for _ in 0..2 {
        let status = second.request(payload("ServerCheckRequest", &json!({}))).await.expect_err("refused");
        assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
        assert!(status.message().contains("Too many connections"), "{status:?}");
    }
    assert!(rejections(&node, Limit::GrpcConnections) >= 1);
    assert_eq!(node.connections().count(), 1);

    // The first connection is undisturbed.
    assert_eq!(first.call("InstanceRequest", register("kept2", "10.0.0.1", 81)).await.1["resultCode"], 200);
    assert_eq!((hosts(&node, "kept"), hosts(&node, "kept2")), (1, 1));
    assert_eq!(node.store().counts().instances, 2);

    // Once it closes, its place is free again.
    drop(first);
    drop(second);
    eventually("a new connection is admitted", WAIT, || async {
        let mut c = RequestClient::new(channel(&node).await);
        c.request(payload("ServerCheckRequest", &json!({}))).await.ok().map(|_| ())
    })
    .await;
    node.shutdown().await;
}

#[tokio::test]
async fn http_connections_over_the_limit_get_503_without_disturbing_others() {
    let node = start({
        let mut c = test_config();
        c.limits.max_http_connections = 1;
        c
    })
    .await;
    let list = format!("{}/nacos/v1/ns/instance/list?serviceName=kept", http_base(&node));
    let register = format!("{}/nacos/v1/ns/instance", http_base(&node));
    // One pooled keep-alive connection holds the only place.
    let holder = reqwest::Client::builder().pool_max_idle_per_host(1).build().expect("client");
    let params = [("serviceName", "kept"), ("ip", "10.0.0.1"), ("port", "80")];
    assert_eq!(holder.post(&register).form(&params).send().await.expect("register").status().as_u16(), 200);

    let other = reqwest::Client::new();
    let refused_params = [("serviceName", "refused"), ("ip", "10.0.0.2"), ("port", "80")];
    let resp = other.post(&register).form(&refused_params).send().await.expect("answered");
    assert_eq!(resp.status().as_u16(), 503);
    let text = resp.text().await.expect("body");
    assert!(text.starts_with("caused: Too many connections"), "{text}");
    assert!(rejections(&node, Limit::HttpConnections) >= 1);
    assert_eq!(hosts(&node, "refused"), 0);

    // The held connection still serves.
    let resp = holder.get(&list).send().await.expect("list");
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(hosts(&node, "kept"), 1);

    drop(holder);
    eventually("a new connection is admitted", WAIT, || async {
        let resp = reqwest::get(&list).await.ok()?;
        (resp.status().as_u16() == 200).then_some(())
    })
    .await;
    node.shutdown().await;
}

#[tokio::test]
async fn a_flooding_grpc_connection_is_limited_while_another_is_served() {
    let burst = 5;
    let node = start({
        let mut c = test_config();
        c.limits.grpc_rate_limit = SLOW_RATE;
        c.limits.grpc_rate_burst = burst;
        c
    })
    .await;
    let mut flooder = connect(&node).await; // ServerCheckRequest took one token
    let mut calm = connect(&node).await;
    let flood = tokio::spawn(async move {
        let mut answers = Vec::new();
        for i in 0..40 {
            answers.push(flooder.call("InstanceRequest", register(&format!("flood-{i}"), "10.0.0.1", 80)).await.1);
        }
        (flooder, answers)
    });
    for i in 0..(burst - 1) {
        let (_, v) = calm.call("InstanceRequest", register(&format!("calm-{i}"), "10.0.0.2", 80)).await;
        assert_eq!(v["resultCode"], 200, "the calm client is never limited: {v}");
    }
    let (_flooder, answers) = flood.await.expect("flood task");
    let ok = answers.iter().filter(|v| v["resultCode"] == 200).count();
    let refused: Vec<&Value> = answers.iter().filter(|v| v["resultCode"] != 200).collect();
    assert_eq!(ok, (burst - 1) as usize, "the burst less the ServerCheckRequest");
    assert_eq!(refused.len(), 40 - ok);
    for v in &refused {
        assert_eq!(v["errorCode"], 503, "{v}");
        assert!(v["message"].as_str().unwrap_or("").contains("Tps Flow restricted"), "{v}");
    }
    assert_eq!(rejections(&node, Limit::GrpcRate), refused.len() as u64);
    // Refused registrations changed nothing.
    let flooded: usize = (0..40).map(|i| hosts(&node, &format!("flood-{i}"))).sum();
    assert_eq!(flooded, ok);
    assert_eq!(node.store().counts().instances, ok + (burst - 1) as usize);
    node.shutdown().await;
}

/// At the default rates a gateway is a normal client: one gRPC connection
/// and one client IP may send far more at once than the earlier defaults
/// let through (a burst of 400 per connection, 1 000 per IP), without a
/// single refusal. The requests are sent as fast as the node answers; the
/// defaults' bursts alone cover them, so the outcome does not depend on
/// how fast that is.
#[tokio::test]
async fn the_default_rates_let_a_gateways_load_through() {
    let node = start(test_config()).await;
    let mut gateway = connect(&node).await;
    for i in 0..1_200 {
        let (_, v) = gateway.call("InstanceRequest", register(&format!("gw-{}", i % 50), "10.0.0.1", 80)).await;
        assert_eq!(v["resultCode"], 200, "request {i} over one connection: {v}");
    }
    let list = format!("{}/nacos/v1/ns/instance/list?serviceName=gw-1", http_base(&node));
    // Sixteen callers behind one address, 150 requests each.
    let callers: Vec<_> = (0..16)
        .map(|_| {
            let (client, list) = (reqwest::Client::new(), list.clone());
            tokio::spawn(async move {
                let mut statuses = Vec::new();
                for _ in 0..150 {
                    statuses.push(client.get(&list).send().await.expect("list").status().as_u16());
                }
                statuses
            })
        })
        .collect();
    let mut answered = 0;
    for caller in callers {
        let statuses = caller.await.expect("caller");
        assert!(statuses.iter().all(|s| *s == 200), "every request from one client IP answered: {statuses:?}");
        answered += statuses.len();
    }
    assert_eq!(answered, 2_400);
    assert_eq!((rejections(&node, Limit::GrpcRate), rejections(&node, Limit::HttpRate)), (0, 0));
    node.shutdown().await;
}

/// The admin plane is outside the client limits: with the only HTTP
/// connection taken and the client IP's rate spent, the probes, the status
/// document and the metrics still answer, on the connection that holds the
/// place and on one the connection limit refuses, while client requests are
/// refused.
#[tokio::test]
async fn the_admin_plane_answers_when_the_client_limits_refuse_everything() {
    let node = start({
        let mut c = test_config();
        c.limits.max_http_connections = 1;
        c.limits.http_rate_limit = SLOW_RATE;
        c.limits.http_rate_burst = 1;
        c
    })
    .await;
    let base = http_base(&node);
    let list = format!("{base}/nacos/v1/ns/instance/list?serviceName=kept");
    let admin =
        ["/nacos/v1/console/health/liveness", "/nacos/v1/console/health/readiness", "/roster/v1/status", "/metrics"];
    // One pooled keep-alive connection holds the only place and spends the burst.
    let holder = reqwest::Client::builder().pool_max_idle_per_host(1).build().expect("client");
    assert_eq!(holder.get(&list).send().await.expect("list").status().as_u16(), 200);
    let limited = holder.get(&list).send().await.expect("list");
    assert_eq!(limited.status().as_u16(), 429, "the rate is spent");
    eventually("ready", WAIT, || async {
        let r = holder.get(format!("{base}{}", admin[1])).send().await.ok()?;
        (r.status() == 200).then_some(())
    })
    .await;
    for path in admin {
        let answer = holder.get(format!("{base}{path}")).send().await.expect("admin request");
        assert_eq!(answer.status().as_u16(), 200, "{path} on the held connection");
    }
    // A second connection is over the connection limit: refused for the
    // client API, answered for the admin plane.
    let fresh = || reqwest::Client::builder().pool_max_idle_per_host(0).build().expect("client");
    let refused = fresh().get(&list).send().await.expect("refused request");
    assert_eq!(refused.status().as_u16(), 503);
    assert!(refused.text().await.expect("body").contains("Too many connections"));
    for path in admin {
        let answer = fresh().get(format!("{base}{path}")).send().await.expect("admin request");
        assert_eq!(answer.status().as_u16(), 200, "{path} on a refused connection");
        let body = answer.text().await.expect("body");
        if path == "/roster/v1/status" {
            let status: Value = serde_json::from_str(&body).expect("status JSON");
            assert_eq!(status["member"], node.member());
        }
    }
    assert!(rejections(&node, Limit::HttpRate) >= 1);
    assert!(rejections(&node, Limit::HttpConnections) >= 5);
    node.shutdown().await;
}

/// An HTTP client whose connections come from `ip` (a loopback address).
fn client_from(ip: &str) -> reqwest::Client {
    let ip: IpAddr = ip.parse().expect("ip");
    reqwest::Client::builder().local_address(ip).build().expect("client")
}

#[tokio::test]
async fn a_flooding_http_client_is_limited_by_ip_while_another_is_served() {
    let burst = 3u32;
    let node = start({
        let mut c = test_config();
        c.limits.http_rate_limit = SLOW_RATE;
        c.limits.http_rate_burst = burst;
        c
    })
    .await;
    let url = format!("{}/nacos/v1/ns/instance", http_base(&node));
    let flooder = client_from("127.0.0.2");
    let calm = client_from("127.0.0.3");
    let flood_url = url.clone();
    let flood = tokio::spawn(async move {
        let mut answers = Vec::new();
        for i in 0..20 {
            let service = format!("flood-{i}");
            let params = [("serviceName", service.as_str()), ("ip", "10.0.0.1"), ("port", "80")];
            let resp = flooder.post(&flood_url).form(&params).send().await.expect("answered");
            let retry_after = resp.headers().get("retry-after").map(|v| v.to_str().unwrap_or("").to_owned());
            answers.push((resp.status().as_u16(), retry_after, resp.text().await.expect("body")));
        }
        (flooder, answers)
    });
    for i in 0..burst {
        let service = format!("calm-{i}");
        let params = [("serviceName", service.as_str()), ("ip", "10.0.0.2"), ("port", "80")];
        let resp = calm.post(&url).form(&params).send().await.expect("answered");
        assert_eq!(resp.status().as_u16(), 200, "the calm client is never limited");
    }
    let (flooder, answers) = flood.await.expect("flood task");
    let ok = answers.iter().filter(|(s, _, _)| *s == 200).count();
    assert_eq!(ok, burst as usize);
    let refused: Vec<_> = answers.iter().filter(|(s, _, _)| *s != 200).collect();
    assert_eq!(refused.len(), 20 - ok);
    for (status, retry_after, text) in &refused {
        assert_eq!(*status, 429);
        assert!(retry_after.as_deref().is_some_and(|r| r.parse::<u64>().is_ok_and(|s| s >= 1)), "{retry_after:?}");
        assert!(text.starts_with("caused: Too many requests from 127.0.0.2"), "{text}");
    }
    assert_eq!(rejections(&node, Limit::HttpRate), refused.len() as u64);
    let flooded: usize = (0..20).map(|i| hosts(&node, &format!("flood-{i}"))).sum();
    assert_eq!(flooded, ok, "refused registrations changed nothing");

    // Probes are never limited, even for a client out of tokens.
    let base = http_base(&node);
    for probe in ["liveness", "readiness"] {
        let resp = flooder.get(format!("{base}/nacos/v1/console/health/{probe}")).send().await.expect("probe");
        assert_ne!(resp.status().as_u16(), 429, "{probe}");
    }
    node.shutdown().await;
}

/// Writes that another member forwarded and signed are not counted against
/// that member's IP: it speaks for many clients and counted each of them
/// itself. Its own requests are counted, and so is every forwarding header
/// that does not prove a current member sent it: no signature, another
/// secret, or a signer that is not a member.
#[tokio::test]
async fn only_writes_a_member_signed_and_forwarded_skip_the_http_rate_limit() {
    let burst = 3u32;
    let dir = tempfile::tempdir().expect("tempdir");
    let ips = common::loopback_ips(2);
    let (conf, members) = common::member_file(dir.path(), &ips);
    // Only the second member runs; the first is a member by the file, and
    // the test sends from its address what it would forward.
    let config = common::member_config(&ips[1], &conf);
    let node = start({
        let mut c = config;
        c.limits.http_rate_limit = SLOW_RATE;
        c.limits.http_rate_burst = burst;
        c
    })
    .await;
    let path = "/nacos/v1/ns/instance";
    let url = format!("{}{path}", http_base(&node));
    let member = client_from(&ips[0]);
    let mut port = 1000u16;
    let mut write = async |by: &str, signer: Option<(&ClusterSecret, &str)>| {
        port += 1;
        let params = [("serviceName", "fwd".to_owned()), ("ip", "10.9.0.1".to_owned()), ("port", port.to_string())];
        let request = common::forwarded_request(&member, reqwest::Method::POST, &url, &params, by, signer);
        member.execute(request).await.expect("answered").status().as_u16()
    };
    let secret = ClusterSecret::new(common::cluster_secret().as_bytes()).expect("secret");
    let signed = Some((&secret, members[0].as_str()));

    for _ in 0..2 * burst {
        assert_eq!(write(&members[0], signed).await, 200, "signed forwards take no token");
    }
    let list = format!("{}/nacos/v1/ns/instance/list?serviceName=fwd", http_base(&node));
    for _ in 0..burst {
        assert_eq!(member.get(&list).send().await.expect("answered").status().as_u16(), 200);
    }
    assert_eq!(member.get(&list).send().await.expect("answered").status().as_u16(), 429, "its own requests count");
    assert_eq!(write(&members[0], signed).await, 200, "a signed forward still passes once the bucket is empty");

    let stranger = "127.9.9.9:8848";
    let other_secret = common::other_secret();
    let unproven = [
        ("no signature", members[0].as_str(), None),
        ("another secret", members[0].as_str(), Some((&other_secret, members[0].as_str()))),
        ("not a member", stranger, Some((&secret, stranger))),
    ];
    for (what, by, signer) in unproven {
        assert_eq!(write(by, signer).await, 429, "{what}");
    }
    assert_eq!(rejections(&node, Limit::HttpRate), 4);
    assert_eq!(hosts(&node, "fwd"), 2 * burst as usize + 1, "the refused writes changed nothing");
    node.shutdown().await;
}

/// Logins are throttled before any password is checked: per client IP
/// (429 with `Retry-After`), and by the password hashes the node computes
/// at once, whoever asks (429 once `--login-wait` has passed). Refused
/// logins check no password and issue no token.
#[tokio::test]
async fn logins_are_throttled_per_ip_and_by_concurrent_password_checks() {
    let node = start({
        let mut c = test_config();
        c.auth.enabled = true;
        c.auth.dir = Some(common::auth_dir());
        c.limits.login_rate_limit = SLOW_RATE;
        c.limits.login_rate_burst = 2;
        c.limits.login_wait = Duration::from_millis(200);
        c
    })
    .await;
    let url = format!("{}/nacos/v1/auth/login", http_base(&node));
    let login = async |client: &reqwest::Client| {
        let answer = client.post(&url).form(&[("username", "admin"), ("password", "admin-pw")]).send().await;
        let answer = answer.expect("answered");
        let status = answer.status().as_u16();
        let retry_after = answer.headers().get("retry-after").and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        (status, retry_after, answer.text().await.expect("body"))
    };
    let logins = || node.metrics().auth.logins.get();

    let eager = client_from("127.0.0.4");
    for _ in 0..2 {
        let (status, _, body) = login(&eager).await;
        assert_eq!(status, 200, "{body}");
        assert!(body.contains("accessToken"), "{body}");
    }
    let (status, retry_after, body) = login(&eager).await;
    assert_eq!((status, retry_after.is_some_and(|s| s >= 1)), (429, true), "{body}");
    assert!(body.starts_with("caused: Too many logins from 127.0.0.4"), "{body}");
    assert_eq!(rejections(&node, Limit::LoginRate), 1);
    assert_eq!(logins(), 2);

    // Another address has its own bucket, but must wait for a free password
    // check: the test holds the only one (`--max-concurrent-logins` 1).
    let other = client_from("127.0.0.5");
    let held = node.client_limits().logins.clone().acquire_owned().await.expect("permit");
    let (status, retry_after, body) = login(&other).await;
    assert_eq!((status, retry_after), (429, Some(1)), "{body}");
    assert!(body.starts_with("caused: Too many logins at once"), "{body}");
    assert_eq!(rejections(&node, Limit::LoginConcurrency), 1);
    drop(held);
    let (status, _, body) = login(&other).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(logins(), 3);
    assert_eq!(node.metrics().auth.failure_count(roster_node::auth::Refusal::BadCredentials), 0);
    node.shutdown().await;
}

#[test]
fn limit_flags_are_validated() {
    use clap::Parser;
    let ok = Config::parse_from(["roster-node", "--http-rate-limit", "0", "--grpc-rate-limit", "2.5"]);
    assert!(ok.validate().is_ok());
    for bad in [
        vec!["--grpc-rate-limit=-1"],
        vec!["--http-rate-limit", "NaN"],
        vec!["--http-rate-limit", "5", "--http-rate-burst", "0"],
        vec!["--max-peer-message-bytes", "1024"],
        vec!["--login-rate-limit=-2"],
        vec!["--login-rate-limit", "1", "--login-rate-burst", "0"],
        vec!["--max-concurrent-logins", "0"],
    ] {
        let config = Config::parse_from(std::iter::once("roster-node").chain(bad.iter().copied()));
        assert!(config.validate().is_err(), "{bad:?} accepted");
    }
    let defaults = Config::default();
    assert_eq!((defaults.limits.max_grpc_connections, defaults.limits.max_http_connections), (10_000, 1_024));
    assert_eq!((defaults.limits.grpc_rate_limit, defaults.limits.grpc_rate_burst), (5_000.0, 10_000));
    assert_eq!((defaults.limits.http_rate_limit, defaults.limits.http_rate_burst), (20_000.0, 40_000));
    assert_eq!((defaults.limits.login_rate_limit, defaults.limits.login_rate_burst), (1.0, 10));
    assert_eq!((defaults.limits.max_concurrent_logins, defaults.limits.login_wait), (1, Duration::from_secs(3)));
}
