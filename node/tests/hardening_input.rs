//! Issue #18, in-process: captured peer signatures replayed or given
//! another body (peer port and forwarded HTTP writes) while a legitimate
//! cluster keeps working; bad values on both client APIs (address,
//! metadata, weight), a weak cluster secret and the fault switch's token;
//! and the tables a client without credentials could grow (connection
//! ids, tombstones, setup labels, services per connection, peer-port
//! sockets). Each refusal is a clear error that changes nothing.

use crate::common;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use http::HeaderMap;
use prost::Message;
use roster_node::distro::codec;
use roster_node::naming::{ClientCopy, ClientKind, Delta, Instance, Owner, Selection, ServiceKey};
use roster_node::security::{ClusterSecret, PeerAuth, SignedChannel};
use roster_node::RunningNode;
use roster_proto::nacos::bi_request_stream_client::BiRequestStreamClient;
use roster_proto::peer::peer_client::PeerClient;
use roster_proto::peer::{DistroSyncRequest, MemberReport};
use serde_json::{json, Value};
use tokio::io::AsyncReadExt;
use tonic::metadata::MetadataMap;
use tonic::transport::Channel;

use common::grpc::{payload, register, RawClient};
use common::{connect_from, eventually, http_base, http_form, metric, start, test_config};

const WAIT: Duration = Duration::from_secs(20);
const SYNC_PATH: &str = "/roster.peer.v1.Peer/DistroSync";

fn secret() -> ClusterSecret {
    ClusterSecret::new(common::cluster_secret().as_bytes()).expect("the test secret")
}

async fn metrics(node: &RunningNode) -> String {
    reqwest::get(format!("{}/metrics", http_base(node))).await.expect("metrics").text().await.expect("text")
}

fn key(service: &str) -> ServiceKey {
    ServiceKey::new("public", "DEFAULT_GROUP", service)
}

fn ips_of(node: &RunningNode, service: &str) -> Vec<String> {
    node.store()
        .query(&key(service), &Selection::default())
        .hosts
        .iter()
        .map(|h| format!("{}:{}", h.ip, h.port))
        .collect()
}

/// A Distro sync from `sender` carrying one ip:port client at `ip:port`.
fn sync(sender: &str, ip: &str, port: u16) -> DistroSyncRequest {
    let delta = Delta { revision: 1, live: vec![(key("captured"), Instance::new(ip, port), 1)], ..Delta::default() };
    let copy = ClientCopy { id: format!("{ip}:{port}#true"), kind: ClientKind::IpPort, owner: None, delta };
    DistroSyncRequest { source: sender.into(), upserts: vec![codec::encode(&copy)] }
}

/// The body a unary gRPC call of `message` carries: one uncompressed frame.
fn grpc_frame(message: &impl Message) -> Vec<u8> {
    let bytes = message.encode_to_vec();
    let mut frame = vec![0u8];
    frame.extend_from_slice(&u32::try_from(bytes.len()).expect("small").to_be_bytes());
    frame.extend_from_slice(&bytes);
    frame
}

/// Signature headers a member made for `body` (what an on-path attacker
/// would capture).
fn captured(signer: &str, body: &[u8]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    PeerAuth::new(&secret(), signer).sign(&mut headers, "POST", SYNC_PATH, body);
    headers
}

fn with_headers<T>(headers: &HeaderMap, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    *request.metadata_mut() = MetadataMap::from_headers(headers.clone());
    request
}

#[tokio::test]
async fn a_captured_peer_request_is_refused_replayed_and_with_another_body() {
    let node = start(test_config()).await;
    let channel =
        Channel::from_shared(format!("http://{}", node.peer_addr)).expect("uri").connect().await.expect("peer");
    let mut peer = PeerClient::new(channel);
    let sender = "127.0.0.2:8848";
    let original = sync(sender, "10.7.7.7", 77);

    // The member's own request lands.
    let headers = captured(sender, &grpc_frame(&original));
    let ack = peer.distro_sync(with_headers(&headers, original.clone())).await.expect("the original is accepted");
    assert!(ack.into_inner().accepted);
    assert_eq!(ips_of(&node, "captured"), vec!["10.7.7.7:77"]);

    // The same headers and body again: a replay.
    let status = peer.distro_sync(with_headers(&headers, original.clone())).await.expect_err("replay refused");
    assert_eq!(status.code(), tonic::Code::Unauthenticated);
    assert!(status.message().contains("used before"), "{status:?}");

    // A fresh capture sent with another body: refused, and nothing lands.
    let intruder = sync(sender, "6.6.6.6", 66);
    let fresh = captured(sender, &grpc_frame(&original));
    let status = peer.distro_sync(with_headers(&fresh, intruder)).await.expect_err("body swap refused");
    assert_eq!(status.code(), tonic::Code::Unauthenticated);
    assert!(status.message().contains("does not match"), "{status:?}");
    assert!(!node.store().has_client("6.6.6.6:66#true"));
    assert_eq!(ips_of(&node, "captured"), vec!["10.7.7.7:77"]);
    // That capture is used up for its own body too.
    let status = peer.distro_sync(with_headers(&fresh, original)).await.expect_err("used up");
    assert_eq!(status.code(), tonic::Code::Unauthenticated);

    let text = metrics(&node).await;
    assert_eq!(metric(&text, "roster_peer_auth_failures_total{reason=\"replayed\"}"), 2, "{text}");
    assert_eq!(metric(&text, "roster_peer_auth_failures_total{reason=\"bad_digest\"}"), 1, "{text}");
    node.shutdown().await;
}

/// A forwarded write's signature is good for that write once: replayed,
/// or with another body, it is a plain client request again (rate
/// limited, counted), and the swapped body is never applied as forwarded.
#[tokio::test]
async fn a_captured_forwarded_write_is_a_client_request_when_replayed_or_swapped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ips = common::loopback_ips(2);
    let (conf, members) = common::member_file(dir.path(), &ips);
    let node = start({
        let mut c = common::member_config(&ips[1], &conf);
        c.limits.http_rate_limit = 0.001;
        c.limits.http_rate_burst = 1;
        c
    })
    .await;
    let url = format!("{}/nacos/v1/ns/instance", http_base(&node));
    let from: IpAddr = ips[0].parse().expect("ip");
    let member = reqwest::Client::builder().local_address(from).build().expect("client");
    // The member's address spends its one token on its own request.
    let list = format!("{}/nacos/v1/ns/instance/list?serviceName=fwd", http_base(&node));
    assert_eq!(member.get(&list).send().await.expect("answered").status(), 200);
    assert_eq!(member.get(&list).send().await.expect("answered").status(), 429);

    let secret = secret();
    let params =
        |port: u16| [("serviceName", "fwd".to_owned()), ("ip", "10.9.0.1".to_owned()), ("port", port.to_string())];
    let signed = common::forwarded_request(
        &member,
        reqwest::Method::POST,
        &url,
        &params(1001),
        &members[0],
        Some((&secret, &members[0])),
    );
    let replay = signed.try_clone().expect("a buffered request");
    let signature = signed.headers().clone();
    assert_eq!(member.execute(signed).await.expect("answered").status(), 200, "the forward is exempt");
    assert_eq!(member.execute(replay).await.expect("answered").status(), 429, "the replay is a client's");
    let mut swapped = common::forwarded_request(&member, reqwest::Method::POST, &url, &params(1002), &members[0], None);
    *swapped.headers_mut() = signature;
    assert_eq!(member.execute(swapped).await.expect("answered").status(), 429, "another body is a client's");
    assert_eq!(ips_of(&node, "fwd"), vec!["10.9.0.1:1001"], "only the genuine forward landed");
    let text = metrics(&node).await;
    assert_eq!(metric(&text, "roster_peer_auth_failures_total{reason=\"replayed\"}"), 2, "{text}");
    node.shutdown().await;
}

/// With the new signatures a cluster works as before: an HTTP write
/// forwarded to the responsible member, Distro replication, a persistent
/// write through Raft, and no peer request refused anywhere.
#[tokio::test]
async fn a_legitimate_cluster_signs_and_accepts_every_peer_request() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ips = common::loopback_ips(2);
    let (conf, members) = common::member_file(dir.path(), &ips);
    let mut nodes = Vec::new();
    for ip in &ips {
        nodes.push(start(common::member_config(ip, &conf)).await);
    }
    common::responsibility_split(&nodes, &members).await;
    let responsibility = nodes[0].membership().responsibility();
    let port = (1000..2000u16)
        .find(|p| responsibility.member_for(&format!("10.1.2.3:{p}")) == Some(members[1].as_str()))
        .expect("a port the other member is responsible for");
    let port = port.to_string();
    let (status, body) = http_form(
        reqwest::Method::POST,
        &format!("{}/nacos/v1/ns/instance", http_base(&nodes[0])),
        &[("serviceName", "eph"), ("ip", "10.1.2.3"), ("port", port.as_str())],
    )
    .await;
    assert_eq!((status, body.as_str()), (200, "ok"));
    let (status, body) = http_form(
        reqwest::Method::POST,
        &format!("{}/nacos/v1/ns/instance", http_base(&nodes[1])),
        &[("serviceName", "per"), ("ip", "10.1.2.4"), ("port", "80"), ("ephemeral", "false")],
    )
    .await;
    assert_eq!((status, body.as_str()), (200, "ok"));
    eventually("both writes on both members", WAIT, || async {
        nodes.iter().all(|n| ips_of(n, "eph").len() == 1 && ips_of(n, "per").len() == 1).then_some(())
    })
    .await;
    for node in &nodes {
        let text = metrics(node).await;
        let refused: Vec<&str> =
            text.lines().filter(|l| l.starts_with("roster_peer_auth_failures_total{") && !l.ends_with(" 0")).collect();
        assert!(refused.is_empty(), "{}: {refused:?}", node.member());
    }
    for node in nodes {
        node.shutdown().await;
    }
}

#[tokio::test]
async fn bad_addresses_metadata_and_weights_are_refused_alike_on_both_apis() {
    let node = start(test_config()).await;
    let url = format!("{}/nacos/v1/ns/instance", http_base(&node));
    let mut grpc = RawClient::connect(&node, false).await;
    let mut grpc_register = async |service: &str, change: &dyn Fn(&mut Value)| {
        let mut body = register(service, "10.0.0.1", 80);
        change(&mut body["instance"]);
        grpc.call("InstanceRequest", body).await.1
    };

    // An address that is neither an IP nor a host name.
    let (status, body) =
        http_form(reqwest::Method::POST, &url, &[("serviceName", "v"), ("ip", "not..an..ip"), ("port", "80")]).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("'ip'") && body.contains("not..an..ip"), "{body}");
    let v = grpc_register("v", &|i| i["ip"] = json!("not..an..ip")).await;
    assert_eq!(v["errorCode"], 400, "{v}");
    assert!(v["message"].as_str().unwrap_or("").contains("'ip'"), "{v}");
    let v = grpc_register("v", &|i| i["ip"] = json!("999.1.1.1")).await;
    assert_eq!(v["errorCode"], 400, "{v}");

    // Nested metadata: refused on both; scalars: their text on both.
    let (status, body) = http_form(
        reqwest::Method::POST,
        &url,
        &[("serviceName", "v"), ("ip", "10.0.0.1"), ("port", "80"), ("metadata", r#"{"a":{"b":"c"}}"#)],
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("nested"), "{body}");
    let v = grpc_register("v", &|i| i["metadata"] = json!({"a": {"b": "c"}})).await;
    assert_eq!(v["resultCode"], 500, "{v}");
    assert!(v["message"].as_str().unwrap_or("").contains("nested"), "{v}");
    assert_eq!(node.store().counts().instances, 0, "nothing was registered");
    let (status, _) = http_form(
        reqwest::Method::POST,
        &url,
        &[("serviceName", "http-meta"), ("ip", "10.0.0.1"), ("port", "80"), ("metadata", r#"{"n":1,"t":true}"#)],
    )
    .await;
    assert_eq!(status, 200);
    let v = grpc_register("grpc-meta", &|i| i["metadata"] = json!({"n": 1, "t": true})).await;
    assert_eq!(v["resultCode"], 200, "{v}");
    for service in ["http-meta", "grpc-meta"] {
        let hosts = node.store().query(&key(service), &Selection::default()).hosts;
        assert_eq!(hosts[0].metadata.get("n").map(String::as_str), Some("1"), "{service}");
        assert_eq!(hosts[0].metadata.get("t").map(String::as_str), Some("true"), "{service}");
    }

    // Weights: out of range refused; a subnormal one raised to 0.01 as Nacos does.
    for bad in ["10000.5", "-1", "NaN", "inf"] {
        let (status, body) = http_form(
            reqwest::Method::POST,
            &url,
            &[("serviceName", "w"), ("ip", "10.0.0.2"), ("port", "80"), ("weight", bad)],
        )
        .await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
    let v = grpc_register("w", &|i| i["weight"] = json!(10_000.5)).await;
    assert_eq!(v["errorCode"], 400, "{v}");
    assert!(ips_of(&node, "w").is_empty());
    let (status, _) = http_form(
        reqwest::Method::POST,
        &url,
        &[("serviceName", "tiny-http"), ("ip", "10.0.0.3"), ("port", "80"), ("weight", "1e-320")],
    )
    .await;
    assert_eq!(status, 200);
    let v = grpc_register("tiny-grpc", &|i| i["weight"] = json!(1e-320)).await;
    assert_eq!(v["resultCode"], 200, "{v}");
    for service in ["tiny-http", "tiny-grpc"] {
        assert_eq!(node.store().query(&key(service), &Selection::default()).hosts[0].weight, 0.01, "{service}");
    }
    node.shutdown().await;
}

#[tokio::test]
async fn a_weak_cluster_secret_is_refused_before_any_port_opens() {
    for weak in ["a".repeat(36), "0123456789abcdef".repeat(3), "abab".repeat(10)] {
        let mut config = test_config();
        config.security.cluster_secret = Some(weak.clone());
        let err = roster_node::start(config).await.expect_err("a weak secret must not start").to_string();
        assert!(err.contains("cluster secret is too weak") && err.contains("/dev/urandom"), "{weak}: {err}");
    }
}

/// With authentication on, the fault switch (only there with
/// `--fault-injection`) needs an admin's token; a refused change changes nothing.
#[tokio::test]
async fn the_fault_switch_needs_an_admin_token_when_auth_is_on() {
    let node = start({
        let mut c = test_config();
        c.peer.fault_injection = true;
        c.auth.enabled = true;
        c.auth.dir = Some(common::auth_dir());
        c
    })
    .await;
    let base = http_base(&node);
    let login = async |user: &str| {
        let password = format!("{user}-pw");
        let (status, body) = http_form(
            reqwest::Method::POST,
            &format!("{base}/nacos/v1/auth/login"),
            &[("username", user), ("password", password.as_str())],
        )
        .await;
        assert_eq!(status, 200, "{body}");
        serde_json::from_str::<Value>(&body).expect("json")["accessToken"].as_str().expect("token").to_owned()
    };
    let (admin, viewer) = (login("admin").await, login("viewer").await);
    let faults = format!("{base}/roster/v1/faults");
    let client = reqwest::Client::new();
    let change = json!({"blockedMembers": ["10.0.0.9:8848"]});
    for token in [None, Some("not-a-token"), Some(viewer.as_str())] {
        let mut get = client.get(&faults);
        let mut put = client.put(&faults).json(&change);
        if let Some(token) = token {
            get = get.bearer_auth(token);
            put = put.bearer_auth(token);
        }
        assert_eq!(get.send().await.expect("answered").status(), 403, "{token:?}");
        assert_eq!(put.send().await.expect("answered").status(), 403, "{token:?}");
    }
    let current: Value =
        client.get(&faults).bearer_auth(&admin).send().await.expect("answered").json().await.expect("json");
    assert_eq!(current["blockedMembers"], json!([]), "the refused changes changed nothing");
    let put = client.put(format!("{faults}?accessToken={admin}")).json(&change).send().await.expect("answered");
    assert_eq!(put.status(), 200);
    let current: Value =
        client.get(&faults).bearer_auth(&admin).send().await.expect("answered").json().await.expect("json");
    assert_eq!(current["blockedMembers"], json!(["10.0.0.9:8848"]));
    node.shutdown().await;

    // Without authentication the flag alone opens it; without the flag it is not there.
    for (injection, expected) in [(true, 200), (false, 404)] {
        let node = start({
            let mut c = test_config();
            c.peer.fault_injection = injection;
            c
        })
        .await;
        let status = reqwest::get(format!("{}/roster/v1/faults", http_base(&node))).await.expect("answered").status();
        assert_eq!(status, expected, "fault injection {injection}");
        node.shutdown().await;
    }
}

#[tokio::test]
async fn connections_opened_and_closed_in_a_loop_leave_nothing_behind() {
    let node = start(test_config()).await;
    let mut ids = Vec::new();
    for _ in 0..40 {
        let client = RawClient::connect(&node, true).await;
        eventually("registered", WAIT, || async { node.connections().get(&client.connection_id).map(|_| ()) }).await;
        ids.push(client.connection_id.clone());
        drop(client);
    }
    // Ids assigned by ServerCheckRequest to connections that closed before
    // setting up go with their TCP connection too.
    for _ in 0..40 {
        let channel =
            Channel::from_shared(format!("http://{}", node.grpc_addr)).expect("uri").connect().await.expect("c");
        let mut unary = roster_proto::nacos::request_client::RequestClient::new(channel);
        unary.request(payload("ServerCheckRequest", &json!({}))).await.expect("check");
    }
    eventually("every connection and id gone", WAIT, || async {
        (node.connections().count() == 0 && node.connections().assigned() == 0).then_some(())
    })
    .await;
    assert_eq!(node.store().counts().clients, 0);
    // What this node would send a peer of them: nothing, no removal record
    // for clients that published nothing.
    let me = Owner { member: node.member().to_owned(), incarnation: node.membership().incarnation() };
    let wanted = |ids: &[String]| ids.iter().map(|id| (id.clone(), None)).collect::<Vec<_>>();
    assert!(node.store().copies(&wanted(&ids), &me).is_empty(), "no tombstone for clients that published nothing");
    // A connection that did publish leaves its tombstone (so Distro peers drop it).
    let mut publisher = RawClient::connect(&node, true).await;
    let (_, v) = publisher.call("InstanceRequest", register("p", "10.0.0.1", 80)).await;
    assert_eq!(v["resultCode"], 200, "{v}");
    let id = publisher.connection_id.clone();
    drop(publisher);
    eventually("the publisher's removal recorded", WAIT, || async {
        let copies = node.store().copies(&wanted(std::slice::from_ref(&id)), &me);
        (!node.store().has_client(&id) && copies.len() == 1 && copies[0].delta.floor > 0).then_some(())
    })
    .await;
    node.shutdown().await;
}

#[tokio::test]
async fn a_connection_setup_with_oversized_labels_is_refused() {
    let node = start(test_config()).await;
    let channel = Channel::from_shared(format!("http://{}", node.grpc_addr)).expect("uri").connect().await.expect("c");
    let labels: serde_json::Map<String, Value> = (0..65).map(|i| (format!("k{i}"), json!("v"))).collect();
    let too_long = json!({"AppName": "x".repeat(2048)});
    for labels in [Value::Object(labels), too_long] {
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        let setup =
            json!({"clientVersion": "raw", "tenant": "", "labels": labels, "headers": {}, "module": "internal"});
        tx.send(payload("ConnectionSetupRequest", &setup)).await.expect("send");
        let mut inbound = BiRequestStreamClient::new(channel.clone())
            .request_bi_stream(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
            .expect("stream")
            .into_inner();
        let status = match tokio_stream::StreamExt::next(&mut inbound).await {
            Some(Err(status)) => status,
            other => panic!("expected a refusal, got {other:?}"),
        };
        assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
        assert!(status.message().contains("label"), "{status:?}");
        assert_eq!(node.connections().count(), 0);
    }
    node.shutdown().await;
}

#[tokio::test]
async fn one_connection_cannot_take_more_services_than_its_share() {
    let node = start({
        let mut c = test_config();
        c.limits.max_services_per_connection = 3;
        c
    })
    .await;
    let mut client = RawClient::connect(&node, true).await;
    let subscribe = |service: &str| {
        json!({"namespace": "public", "serviceName": service, "groupName": "DEFAULT_GROUP", "subscribe": true,
               "clusters": "", "headers": {}, "module": "naming"})
    };
    for i in 0..3 {
        assert_eq!(client.call("SubscribeServiceRequest", subscribe(&format!("s{i}"))).await.1["resultCode"], 200);
        let (_, v) = client.call("InstanceRequest", register(&format!("p{i}"), "10.0.0.1", 80)).await;
        assert_eq!(v["resultCode"], 200, "{v}");
    }
    let (_, v) = client.call("SubscribeServiceRequest", subscribe("s3")).await;
    assert_eq!(v["errorCode"], 400, "{v}");
    assert!(v["message"].as_str().unwrap_or("").contains("--max-services-per-connection 3"), "{v}");
    let (_, v) = client.call("InstanceRequest", register("p3", "10.0.0.1", 80)).await;
    assert_eq!(v["errorCode"], 400, "{v}");
    // What it holds it may still change.
    assert_eq!(client.call("SubscribeServiceRequest", subscribe("s0")).await.1["resultCode"], 200);
    assert_eq!(client.call("InstanceRequest", register("p0", "10.0.0.2", 81)).await.1["resultCode"], 200);
    assert_eq!(node.subscribers().services_of(&client.connection_id).len(), 3);
    assert!(ips_of(&node, "p3").is_empty());
    let text = metrics(&node).await;
    assert_eq!(metric(&text, "roster_limit_rejections_total{limit=\"services_per_connection\"}"), 2, "{text}");
    node.shutdown().await;
}

/// A client without the secret cannot hold the peer port: more than the
/// per-IP share of connections is refused, and a connection that sends no
/// signed request is closed after `--peer-auth-timeout`; a member's
/// connection stays.
#[tokio::test]
async fn silent_peer_connections_are_capped_and_closed_while_a_members_stays() {
    let node = start({
        let mut c = test_config();
        c.security.peer_auth_timeout = Duration::from_secs(1);
        c.security.max_peer_connections_per_ip = 3;
        c
    })
    .await;
    let stranger: IpAddr = common::loopback_ips(1)[0].parse().expect("ip");
    let mut silent = Vec::new();
    for _ in 0..5 {
        silent.push(connect_from(stranger, node.peer_addr).await.expect("connect"));
    }
    // A member (from 127.0.0.1) signs a request and keeps its connection.
    let channel = Channel::from_shared(format!("http://{}", node.peer_addr)).expect("uri").connect().await.expect("c");
    let mut member = PeerClient::new(SignedChannel::new(channel, Some(Arc::new(PeerAuth::new(&secret(), "b:8848")))));
    let report = MemberReport {
        member: "b:8848".into(),
        version: "1".into(),
        distro_initialized: true,
        raft_id: 7,
        ..Default::default()
    };
    member.report(report.clone()).await.expect("a member's report is answered");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(4);
    for socket in &mut silent {
        let mut buf = [0u8; 64];
        loop {
            match tokio::time::timeout_at(deadline, socket.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => break,
                Ok(Ok(_)) => continue,
                Err(_) => panic!("a silent peer connection outlived the deadline"),
            }
        }
    }
    // Past the deadline the member's connection still carries calls.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    member.report(report).await.expect("the member's connection stays");
    let text = metrics(&node).await;
    assert_eq!(metric(&text, "roster_limit_rejections_total{limit=\"peer_connections_per_ip\"}"), 2, "{text}");
    assert_eq!(metric(&text, "roster_limit_rejections_total{limit=\"peer_auth_timeout\"}"), 3, "{text}");
    node.shutdown().await;
}
