//! UDP pushes to 1.x-style HTTP clients against a real node: a list with
//! `udpPort` subscribes, a change arrives as a `dom` datagram, an
//! unacknowledged push is sent once more and then dropped, an ack ends it,
//! and agents that do not take pushes are not subscribed (see
//! `roster_node::push_udp`).

use crate::common;

use std::net::SocketAddr;
use std::time::Duration;

use reqwest::Method;
use roster_node::push_udp::UdpPushOutcome;
use roster_node::RunningNode;
use serde_json::Value;
use tokio::net::UdpSocket;

use common::{eventually, http_base, http_form, start, test_config};

const JAVA_AGENT: &str = "Nacos-Java-Client:v1.0.0";
const ACK_TIMEOUT: Duration = Duration::from_millis(300);

/// A list of `service` as a 1.x client sends it, with `agent`.
async fn list(node: &RunningNode, service: &str, udp_port: u16, agent: &str) -> Value {
    let port = udp_port.to_string();
    let query = [
        ("serviceName", service),
        ("udpPort", port.as_str()),
        ("clientIP", "10.255.0.1"),
        ("clusters", "DEFAULT"),
        ("app", "udp-test"),
    ];
    let answer = reqwest::Client::new()
        .get(format!("{}/nacos/v1/ns/instance/list", http_base(node)))
        .header("User-Agent", agent)
        .query(&query)
        .send()
        .await
        .expect("list");
    assert_eq!(answer.status(), 200);
    answer.json().await.expect("json")
}

async fn register(node: &RunningNode, service: &str, ip: &str) {
    let url = format!("{}/nacos/v1/ns/instance", http_base(node));
    let (status, body) = http_form(Method::POST, &url, &[("serviceName", service), ("ip", ip), ("port", "80")]).await;
    assert_eq!((status, body.as_str()), (200, "ok"));
}

/// The next datagram, within `limit`.
async fn receive(socket: &UdpSocket, limit: Duration) -> Option<(Vec<u8>, SocketAddr)> {
    let mut buf = vec![0u8; 65_536];
    let (n, from) = tokio::time::timeout(limit, socket.recv_from(&mut buf)).await.ok()?.expect("recv");
    buf.truncate(n);
    Some((buf, from))
}

/// A push's JSON (inflated if gzipped, as clients do) and the
/// `ServiceInfo` it carries.
fn parse_push(datagram: &[u8]) -> (Value, Value) {
    let push: Value = if datagram.starts_with(&[0x1f, 0x8b]) {
        serde_json::from_reader(flate2::read::GzDecoder::new(datagram)).expect("gzipped JSON")
    } else {
        serde_json::from_slice(datagram).expect("JSON")
    };
    let info: Value = serde_json::from_str(push["data"].as_str().expect("data is a JSON string")).expect("info");
    (push, info)
}

fn hosts(info: &Value) -> Vec<String> {
    let mut ips: Vec<String> =
        info["hosts"].as_array().expect("hosts").iter().map(|h| h["ip"].as_str().expect("ip").to_owned()).collect();
    ips.sort();
    ips
}

fn udp_count(node: &RunningNode, result: UdpPushOutcome) -> u64 {
    node.metrics().udp_push.get(result)
}

#[tokio::test]
async fn a_change_is_pushed_resent_once_unacked_and_ends_with_an_ack() {
    let mut config = test_config();
    config.udp_push.ack_timeout = ACK_TIMEOUT;
    config.udp_push.retries = 1;
    let node = start(config).await;
    let client = UdpSocket::bind("127.0.0.1:0").await.expect("client socket");
    let port = client.local_addr().expect("addr").port();

    let first = list(&node, "udp-orders", port, JAVA_AGENT).await;
    assert_eq!(first["hosts"], Value::Array(vec![]));
    assert_eq!(node.udp_push().subscribers().count(), 1);

    // A change: one push with the subscriber's cluster view, sent to the
    // address the list came from (not `clientIP`).
    register(&node, "udp-orders", "10.0.0.1").await;
    let (datagram, from) = receive(&client, Duration::from_secs(5)).await.expect("a push");
    assert!(from.ip().is_loopback());
    let (push, info) = parse_push(&datagram);
    assert_eq!(push["type"], "dom");
    let last_ref_time = push["lastRefTime"].as_u64().expect("lastRefTime");
    assert!(last_ref_time < (1 << 53), "exact in JavaScript");
    assert_eq!(info["name"], "DEFAULT_GROUP@@udp-orders");
    assert_eq!(info["clusters"], "DEFAULT");
    assert_eq!(hosts(&info), ["10.0.0.1"]);

    // No ack: the same datagram once more after the ack timeout, then it
    // is dropped.
    let (again, again_from) = receive(&client, ACK_TIMEOUT * 10).await.expect("the retry");
    assert_eq!((again, again_from), (datagram, from));
    eventually("the unacknowledged push is dropped", Duration::from_secs(5), || async {
        (udp_count(&node, UdpPushOutcome::Dropped) == 1).then_some(())
    })
    .await;
    assert_eq!((udp_count(&node, UdpPushOutcome::Sent), udp_count(&node, UdpPushOutcome::Retried)), (1, 1));

    // The next change, acknowledged the way the Node.js SDK does (a number).
    register(&node, "udp-orders", "10.0.0.2").await;
    let (datagram, from) = receive(&client, Duration::from_secs(5)).await.expect("the second push");
    assert!(datagram.starts_with(&[0x1f, 0x8b]), "two hosts are over 1 KiB: gzipped");
    let (push, info) = parse_push(&datagram);
    assert_eq!(hosts(&info), ["10.0.0.1", "10.0.0.2"]);
    let ack = format!(r#"{{"type":"push-ack","lastRefTime":{},"data":""}}"#, push["lastRefTime"]);
    client.send_to(ack.as_bytes(), from).await.expect("ack");
    eventually("the ack is taken", Duration::from_secs(5), || async {
        (udp_count(&node, UdpPushOutcome::Acked) == 1).then_some(())
    })
    .await;
    // An acknowledged push is not sent again.
    assert!(receive(&client, ACK_TIMEOUT * 3).await.is_none(), "no retry after an ack");
    assert_eq!((udp_count(&node, UdpPushOutcome::Retried), udp_count(&node, UdpPushOutcome::Dropped)), (1, 1));

    // A stray ack changes nothing but a counter.
    client.send_to(br#"{"type":"push-ack","lastRefTime":"1","data":""}"#, from).await.expect("stray");
    eventually("the stray ack is counted", Duration::from_secs(5), || async {
        (udp_count(&node, UdpPushOutcome::Stray) == 1).then_some(())
    })
    .await;
    assert_eq!(udp_count(&node, UdpPushOutcome::Acked), 1);
    node.shutdown().await;
}

#[tokio::test]
async fn only_push_capable_agents_with_a_port_subscribe_and_subscriptions_expire() {
    let mut config = test_config();
    config.udp_push.subscriber_expiry = Duration::from_millis(500);
    config.udp_push.max_subscribers = 2;
    let node = start(config).await;
    list(&node, "udp-a", 40_001, "Nacos-Python-Client:v2.0.11").await;
    list(&node, "udp-a", 40_001, "curl/8.5").await;
    list(&node, "udp-a", 0, JAVA_AGENT).await;
    assert_eq!(node.udp_push().subscribers().count(), 0, "polling clients only");

    list(&node, "udp-a", 40_001, JAVA_AGENT).await;
    list(&node, "udp-b", 40_001, "Nacos-Go-Client:v1.4.0").await;
    // The table is full: a third subscription is refused, the list still answers.
    list(&node, "udp-c", 40_001, JAVA_AGENT).await;
    assert_eq!(node.udp_push().subscribers().count(), 2);
    assert_eq!(udp_count(&node, UdpPushOutcome::Refused), 1);

    // Not renewed, they are forgotten.
    eventually("the subscriptions expire", Duration::from_secs(5), || async {
        (node.udp_push().subscribers().count() == 0).then_some(())
    })
    .await;
    node.shutdown().await;
}

#[tokio::test]
async fn a_bad_udp_port_is_refused_and_subscribes_nothing() {
    let node = start(test_config()).await;
    let get = |udp_port: &'static str| {
        reqwest::Client::new()
            .get(format!("{}/nacos/v1/ns/instance/list?serviceName=udp-x&udpPort={udp_port}", http_base(&node)))
            .header("User-Agent", JAVA_AGENT)
            .send()
    };
    for bad in ["70000", "x"] {
        let answer = get(bad).await.expect("list");
        assert_eq!(answer.status(), 400, "udpPort={bad}");
        assert!(answer.text().await.expect("body").contains("udpPort"));
    }
    // A negative port means "no push", as in Nacos.
    assert_eq!(get("-1").await.expect("list").status(), 200);
    assert_eq!(node.udp_push().subscribers().count(), 0);
    node.shutdown().await;
}

/// Subscribers are local to the node that answered the list, and that node
/// pushes every change it learns of, whichever member took the write.
#[tokio::test]
async fn a_change_made_on_another_member_is_pushed_by_the_subscribers_node() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ips = common::loopback_ips(2);
    let (conf, members) = common::member_file(dir.path(), &ips);
    let mut nodes = Vec::new();
    for ip in &ips {
        nodes.push(start(common::member_config(ip, &conf)).await);
    }
    common::responsibility_split(&nodes, &members).await;
    let (a, b) = (&nodes[0], &nodes[1]);
    let client = UdpSocket::bind("127.0.0.1:0").await.expect("client socket");
    let port = client.local_addr().expect("addr").port();
    list(a, "udp-cluster", port, JAVA_AGENT).await;
    assert_eq!((a.udp_push().subscribers().count(), b.udp_push().subscribers().count()), (1, 0));

    // Written through b (forwarded or applied there, then synced by Distro).
    register(b, "udp-cluster", "10.7.0.1").await;
    let (datagram, from) = receive(&client, Duration::from_secs(10)).await.expect("a push from a");
    let (push, info) = parse_push(&datagram);
    assert_eq!(hosts(&info), ["10.7.0.1"]);
    assert_eq!(from.ip().to_string(), ips[0], "sent by the subscriber's node");
    let ack = format!(r#"{{"type":"push-ack","lastRefTime":"{}","data":""}}"#, push["lastRefTime"]);
    client.send_to(ack.as_bytes(), from).await.expect("ack");
    eventually("a takes the ack (as a string, like the Java SDK)", Duration::from_secs(5), || async {
        (udp_count(a, UdpPushOutcome::Acked) == 1).then_some(())
    })
    .await;
    assert_eq!(udp_count(b, UdpPushOutcome::Sent), 0, "b has no subscriber");
    for node in nodes {
        node.shutdown().await;
    }
}
