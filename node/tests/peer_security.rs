//! Peer identity on the peer port (issue #7): a caller that does not hold the
//! cluster secret — no signature, a Nacos-style `User-Agent: Nacos-Server`,
//! another secret, forged headers, an old signature, or a member signing
//! for another — cannot sync, verify, pull a snapshot, append Raft
//! entries, vote, install a snapshot or forward a write, and nothing
//! changes; a correctly signed call does land (so the refusals are the
//! check's doing). An unsigned `x-roster-forwarded-by` on the HTTP port
//! gains nothing either: the write is treated as a client's. Replays of a
//! captured signature are `hardening.rs`'s.

use crate::common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::HeaderMap;
use openraft::{LogId, Vote};
use roster_node::cluster::LookupMode;
use roster_node::distro::codec;
use roster_node::naming::{ClientCopy, ClientKind, Delta, Instance, ServiceKey};
use roster_node::raft::command::Command;
use roster_node::raft::network::{Addressed, ForwardRequest};
use roster_node::security::signature::{DIGEST_HEADER, NONCE_HEADER, PEER_HEADER, SIGNATURE_HEADER, TIME_HEADER};
use roster_node::security::{ClusterSecret, PeerAuth, SignedChannel};
use roster_node::RunningNode;
use roster_proto::peer::peer_client::PeerClient;
use roster_proto::peer::{
    ClientRevision, DistroSyncRequest, DistroVerifyRequest, MemberReport, RaftMessage, SnapshotRequest,
};
use serde_json::Value;
use tonic::metadata::MetadataMap;
use tonic::transport::{Channel, Endpoint};

use common::{eventually, http_json, start, test_config};

const SERVICE: &str = "/roster.peer.v1.Peer/";
const WAIT: Duration = Duration::from_secs(20);

/// How a hostile caller dresses its requests.
#[derive(Debug, Clone, Copy)]
enum Caller {
    /// No signature, but a Nacos server's `User-Agent` and our forwarding header.
    NacosServer,
    /// Signed with another secret, naming a real member.
    WrongSecret,
    /// Signature headers made up (a member name, the current time, zeros).
    Forged,
    /// The right secret, but signed five minutes ago (an old capture).
    Replayed,
    /// The right secret, signed as `b:8848`, while the body names `c:8848`.
    WrongSender,
    /// The right secret, signed as the sender the body names: accepted.
    Member,
}

const HOSTILE: [Caller; 5] =
    [Caller::NacosServer, Caller::WrongSecret, Caller::Forged, Caller::Replayed, Caller::WrongSender];

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

fn right_secret() -> ClusterSecret {
    ClusterSecret::new(common::cluster_secret().as_bytes()).expect("test secret")
}

/// The metadata `caller` sends with a call of `method`; members sign
/// through their channel instead ([`peer_client`]).
fn metadata(caller: Caller, method: &str) -> MetadataMap {
    let path = format!("{SERVICE}{method}");
    let mut headers = HeaderMap::new();
    match caller {
        Caller::NacosServer => {
            headers.insert("user-agent", "Nacos-Server:v2.2.0".parse().expect("header"));
            headers.insert("x-roster-forwarded-by", "b:8848".parse().expect("header"));
        }
        Caller::WrongSecret => {
            PeerAuth::new(&common::other_secret(), "b:8848").sign(&mut headers, "POST", &path, b"");
        }
        Caller::Forged => {
            headers.insert(PEER_HEADER, "b:8848".parse().expect("header"));
            headers.insert(TIME_HEADER, now_ms().to_string().parse().expect("header"));
            headers.insert(NONCE_HEADER, "0".repeat(32).parse().expect("header"));
            headers.insert(DIGEST_HEADER, "0".repeat(64).parse().expect("header"));
            headers.insert(SIGNATURE_HEADER, "0".repeat(64).parse().expect("header"));
        }
        Caller::Replayed => {
            let old = now_ms() - 300_000;
            PeerAuth::new(&right_secret(), "b:8848").sign_with(&mut headers, "POST", &path, b"", old, [7; 16]);
        }
        Caller::WrongSender | Caller::Member => {}
    }
    MetadataMap::from_headers(headers)
}

fn request<T>(caller: Caller, method: &str, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    *request.metadata_mut() = metadata(caller, method);
    request
}

/// The sender a body names for `caller`.
fn sender(caller: Caller) -> String {
    match caller {
        Caller::WrongSender => "c:8848".into(),
        _ => "b:8848".into(),
    }
}

fn client_copy(id: &str) -> ClientCopy {
    let revision = now_ms();
    let live = vec![(ServiceKey::new("public", "DEFAULT_GROUP", "intruder"), Instance::new("10.9.9.9", 80), revision)];
    ClientCopy {
        id: id.into(),
        kind: ClientKind::IpPort,
        owner: None,
        delta: Delta { revision, live, ..Delta::default() },
    }
}

/// A peer client that signs as `b:8848` with the cluster secret when
/// `caller` holds it (a member, or one signing for another), else sends
/// what [`metadata`] makes.
async fn peer_client(node: &RunningNode, caller: Caller) -> PeerClient<SignedChannel> {
    let channel: Channel = Endpoint::from_shared(format!("http://{}", node.peer_addr))
        .expect("endpoint")
        .user_agent("Nacos-Server:v2.2.0")
        .expect("user agent")
        .connect()
        .await
        .expect("the peer port accepts TCP");
    let signer = matches!(caller, Caller::Member | Caller::WrongSender)
        .then(|| std::sync::Arc::new(PeerAuth::new(&right_secret(), "b:8848")));
    PeerClient::new(SignedChannel::new(channel, signer))
}

fn raft_message<T: serde::Serialize>(target: u64, body: T) -> RaftMessage {
    RaftMessage { payload: serde_json::to_vec(&Addressed { target, body }).expect("json") }
}

/// Term, last log index and voters of the node's Raft, and its services.
async fn raft_and_store(node: &RunningNode) -> (Value, Value, Value, Value) {
    let status = http_json(&format!("http://{}/roster/v1/status", node.http_addr), &[]).await;
    let services = http_json(
        &format!("http://{}/nacos/v1/ns/service/list", node.http_addr),
        &[("pageNo", "1"), ("pageSize", "100")],
    )
    .await;
    (status["raft"]["term"].clone(), status["raft"]["lastLogIndex"].clone(), status["raft"]["voters"].clone(), services)
}

async fn metrics(node: &RunningNode) -> String {
    reqwest::get(format!("http://{}/metrics", node.http_addr)).await.expect("metrics").text().await.expect("text")
}

#[tokio::test]
async fn only_holders_of_the_secret_reach_distro_and_raft() {
    let node = start(test_config()).await;
    let raft_id = node.raft().id();
    eventually("the standalone node leads", WAIT, || async {
        let (term, ..) = raft_and_store(&node).await;
        (term.as_u64()? >= 1).then_some(())
    })
    .await;
    let before = raft_and_store(&node).await;

    for caller in HOSTILE {
        let mut peer = peer_client(&node, caller).await;
        let who = format!("{caller:?}");
        let unauthenticated = |result: Result<tonic::Status, String>, rpc: &str| match result {
            Ok(status) => assert_eq!(status.code(), tonic::Code::Unauthenticated, "{who} {rpc}: {status:?}"),
            Err(e) => panic!("{who} {rpc} was answered: {e}"),
        };
        let id = format!("10.9.9.9:80#{who}");
        let sync = DistroSyncRequest { source: sender(caller), upserts: vec![codec::encode(&client_copy(&id))] };
        let r = peer.distro_sync(request(caller, "DistroSync", sync)).await;
        unauthenticated(r.map(|a| format!("{a:?}")).err().ok_or("accepted".to_string()), "DistroSync");
        assert!(!node.store().has_client(&id), "{who}: a refused sync landed in the store");

        let verify = DistroVerifyRequest {
            source: sender(caller),
            clients: vec![ClientRevision { client_id: id.clone(), revision: 1, digest: 0 }],
            whole: true,
        };
        let r = peer.distro_verify(request(caller, "DistroVerify", verify)).await;
        unauthenticated(r.map(|a| format!("{a:?}")).err().ok_or("answered".to_string()), "DistroVerify");

        let snapshot = SnapshotRequest { requester: sender(caller), chunk_clients: 10 };
        let r = peer.distro_snapshot(request(caller, "DistroSnapshot", snapshot)).await;
        unauthenticated(r.map(|_| "a stream".to_string()).err().ok_or("streamed".to_string()), "DistroSnapshot");

        let report = MemberReport { member: sender(caller), version: "9.9.9".into(), raft_id: 7, ..Default::default() };
        let r = peer.report(request(caller, "Report", report)).await;
        unauthenticated(r.map(|a| format!("{a:?}")).err().ok_or("answered".to_string()), "Report");

        if matches!(caller, Caller::WrongSender) {
            // Raft messages name no sender: a holder of the secret is a member.
            continue;
        }
        // A vote for a far higher term: a node that took it would step down.
        let vote = openraft::raft::VoteRequest::<u64>::new(
            Vote::new(1000, 4242),
            Some(LogId::new(openraft::CommittedLeaderId::new(999, 4242), 1_000_000)),
        );
        let r = peer.raft_vote(request(caller, "RaftVote", raft_message(raft_id, vote))).await;
        unauthenticated(r.map(|a| format!("{a:?}")).err().ok_or("answered".to_string()), "RaftVote");

        let append = serde_json::json!({"vote": {"leader_id": {"term": 1000, "node_id": 4242}, "committed": true}, "prev_log_id": null, "entries": [], "leader_commit": null});
        let r = peer.raft_append(request(caller, "RaftAppend", raft_message(raft_id, append))).await;
        unauthenticated(r.map(|a| format!("{a:?}")).err().ok_or("answered".to_string()), "RaftAppend");

        let r = peer.raft_snapshot(request(caller, "RaftSnapshot", RaftMessage { payload: b"{}".to_vec() })).await;
        unauthenticated(r.map(|a| format!("{a:?}")).err().ok_or("answered".to_string()), "RaftSnapshot");

        // A persistent write through the leader's forward endpoint.
        let write = ForwardRequest::Write(Command::RegisterInstance {
            service: ServiceKey::new("public", "DEFAULT_GROUP", "intruder"),
            instance: Instance::new("10.9.9.9", 81),
        });
        let r = peer.raft_forward(request(caller, "RaftForward", raft_message(raft_id, write))).await;
        unauthenticated(r.map(|a| format!("{a:?}")).err().ok_or("answered".to_string()), "RaftForward");
    }

    // Nothing changed: no term bump, no log entry, no service.
    assert_eq!(raft_and_store(&node).await, before);
    let text = metrics(&node).await;
    for reason in ["missing", "bad_signature", "stale", "wrong_sender"] {
        assert!(text.contains(&format!("roster_peer_auth_failures_total{{reason=\"{reason}\"}}")), "{reason}: {text}");
    }

    // The control: the same sync, signed by a holder of the secret, lands.
    let mut peer = peer_client(&node, Caller::Member).await;
    let id = "10.9.9.9:80#member";
    let sync = DistroSyncRequest { source: sender(Caller::Member), upserts: vec![codec::encode(&client_copy(id))] };
    let ack = peer.distro_sync(request(Caller::Member, "DistroSync", sync)).await.expect("a member's sync is answered");
    assert!(ack.into_inner().accepted);
    assert!(node.store().has_client(id));
    node.shutdown().await;
}

#[tokio::test]
async fn a_node_without_a_secret_accepts_no_peer_at_all() {
    let mut config = test_config();
    config.security.cluster_secret = None;
    let node = start(config).await;
    let mut peer = peer_client(&node, Caller::Member).await;
    let report = MemberReport {
        member: "b:8848".into(),
        version: "1".into(),
        distro_initialized: true,
        raft_id: 7,
        ..Default::default()
    };
    let status = peer.report(request(Caller::Member, "Report", report)).await.expect_err("refused");
    assert_eq!(status.code(), tonic::Code::Unauthenticated);
    assert!(metrics(&node).await.contains("roster_peer_auth_failures_total{reason=\"no_secret\"} 1"));
    node.shutdown().await;
}

#[test]
fn a_cluster_without_a_secret_does_not_start() {
    let mut config = test_config();
    config.security.cluster_secret = None;
    config.cluster.lookup.mode = LookupMode::File;
    let err = config.validate().expect_err("refused");
    assert!(err.to_string().contains("cluster secret"), "{err}");
}

/// Two loopback addresses of this test's own.
fn ips() -> Vec<String> {
    common::loopback_ips(2)
}

/// A forwarded-by header without a valid signature is ignored: the write is
/// forwarded to the responsible member like any client's, while a signed
/// one is handled where it arrives.
#[tokio::test]
async fn an_unsigned_forwarded_by_header_is_a_plain_client_request() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ips = ips();
    let (conf, members) = common::member_file(dir.path(), &ips);
    let mut nodes = Vec::new();
    for ip in &ips {
        nodes.push(start(common::member_config(ip, &conf)).await);
    }
    let a = &nodes[0];
    common::responsibility_split(&nodes, &members).await;
    // An instance address the other member is responsible for.
    let responsibility = a.membership().responsibility();
    let port = (1000..2000u16)
        .find(|p| responsibility.member_for(&format!("10.1.1.1:{p}")) == Some(members[1].as_str()))
        .expect("some port belongs to the other member");
    let port = port.to_string();
    let url = format!("http://{}/nacos/v1/ns/instance", a.http_addr);
    let forwarded = || async {
        let text = metrics(a).await;
        text.lines()
            .find(|l| l.starts_with("roster_distro_events_total{event=\"http_forwarded\"}"))
            .and_then(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .unwrap_or(0)
    };

    // Forged: the header alone, or with a signature under another secret.
    let client = reqwest::Client::new();
    let params = [("serviceName", "fwd".to_owned()), ("ip", "10.1.1.1".to_owned()), ("port", port.clone())];
    let wrong = common::other_secret();
    for signer in [None, Some((&wrong, members[1].as_str()))] {
        let before = forwarded().await;
        let mut request = common::forwarded_request(&client, reqwest::Method::POST, &url, &params, &members[1], signer);
        request.headers_mut().insert("user-agent", "Nacos-Server:v2.2.0".parse().expect("header"));
        let answer = client.execute(request).await.expect("answered");
        assert_eq!(answer.status(), 200);
        assert_eq!(forwarded().await, before + 1, "the write was forwarded like a client's");
    }
    // Signed by the member: handled here, not forwarded again.
    let before = forwarded().await;
    let secret = right_secret();
    let request = common::forwarded_request(
        &client,
        reqwest::Method::POST,
        &url,
        &params,
        &members[1],
        Some((&secret, &members[1])),
    );
    let answer = client.execute(request).await.expect("answered");
    assert_eq!(answer.status(), 200);
    assert_eq!(forwarded().await, before, "a signed forwarded write is not forwarded again");
    let text = metrics(a).await;
    assert!(text.contains("roster_peer_auth_failures_total{reason=\"missing\"} 1"), "{text}");
    assert!(text.contains("roster_peer_auth_failures_total{reason=\"bad_signature\"} 1"), "{text}");
    for n in nodes {
        n.shutdown().await;
    }
}
