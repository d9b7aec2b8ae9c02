//! TLS on all three ports (issue #7) with a CA and a member certificate
//! generated here (rcgen, ring): two members form a cluster over mutual TLS
//! on the peer port and replicate; HTTPS and gRPC-over-TLS clients work; a
//! plaintext client is refused on every port, and a TLS client without a
//! member certificate is refused on the peer port.

use crate::common;

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair};
use roster_node::RunningNode;
use roster_proto::nacos::request_client::RequestClient;
use roster_proto::nacos::{Metadata, Payload};
use roster_proto::peer::peer_client::PeerClient;
use roster_proto::peer::MemberReport;
use serde_json::Value;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};

use common::{eventually, start};

const WAIT: Duration = Duration::from_secs(30);

/// Two loopback addresses of this test's own.
fn ips() -> Vec<String> {
    common::loopback_ips(2)
}

struct Pki {
    ca: String,
    cert: String,
    key: String,
}

/// A CA and one certificate for every member (server and client use),
/// naming `ips`.
fn pki(ips: &[String]) -> Pki {
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(DnType::CommonName, "roster test CA");
    let ca = ca_params.self_signed(&ca_key).expect("CA certificate");
    let key = KeyPair::generate().expect("member key");
    let mut params = CertificateParams::new(ips.to_vec()).expect("member params");
    params.distinguished_name.push(DnType::CommonName, "roster member");
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
    let issuer = Issuer::from_params(&ca_params, &ca_key);
    let cert = params.signed_by(&key, &issuer).expect("member certificate");
    Pki { ca: ca.pem(), cert: cert.pem(), key: key.serialize_pem() }
}

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write a PEM file");
    path
}

fn https(pki: &Pki) -> reqwest::Client {
    reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(pki.ca.as_bytes()).expect("CA"))
        .tls_built_in_root_certs(false)
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client")
}

async fn status(client: &reqwest::Client, node: &RunningNode) -> Option<Value> {
    client.get(format!("https://{}/roster/v1/status", node.http_addr)).send().await.ok()?.json().await.ok()
}

fn server_check() -> Payload {
    Payload {
        metadata: Some(Metadata {
            r#type: "ServerCheckRequest".into(),
            client_ip: "127.0.0.1".into(),
            headers: HashMap::new(),
        }),
        body: Some(prost_types::Any {
            type_url: String::new(),
            value: br#"{"headers":{},"module":"internal"}"#.to_vec(),
        }),
    }
}

#[tokio::test]
async fn all_three_ports_speak_tls_and_refuse_plaintext() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ips = ips();
    let pki = pki(&ips);
    let ca = write(dir.path(), "ca.crt", &pki.ca);
    let cert = write(dir.path(), "tls.crt", &pki.cert);
    let key = write(dir.path(), "tls.key", &pki.key);
    let (conf, _members) = common::member_file(dir.path(), &ips);
    let mut nodes = Vec::new();
    for ip in &ips {
        let mut config = common::member_config(ip, &conf);
        config.cluster.report_timeout = Duration::from_millis(500);
        config.security.tls_cert_file = Some(cert.clone());
        config.security.tls_key_file = Some(key.clone());
        config.security.tls_ca_file = Some(ca.clone());
        nodes.push(start(config).await);
    }
    let client = https(&pki);
    // Plaintext UDP pushes would bypass TLS: they are off (crate::push_udp).
    assert!(nodes.iter().all(|n| !n.udp_push().enabled()));

    // The cluster forms over mutual TLS: both members UP, loaded, one Raft leader.
    eventually("two members over TLS with a leader", WAIT, || async {
        for n in &nodes {
            let s = status(&client, n).await?;
            let up = s["members"].as_array()?.iter().filter(|m| m["state"] == "UP").count();
            (up == 2 && s["distro"]["initialized"] == true && s["raft"]["leader"].is_string()).then_some(())?;
            (s["raft"]["voters"].as_array()?.len() == 2).then_some(())?;
        }
        Some(())
    })
    .await;

    // An ephemeral write over HTTPS on one member reaches the other (Distro
    // over the peer port); a persistent one too (Raft).
    let (a, b) = (&nodes[0], &nodes[1]);
    let register = |node: &RunningNode, ephemeral: &'static str, port: &'static str| {
        client
            .post(format!("https://{}/nacos/v1/ns/instance", node.http_addr))
            .form(&[("serviceName", "tls"), ("ip", "10.2.2.2"), ("port", port), ("ephemeral", ephemeral)])
            .send()
    };
    assert_eq!(register(a, "true", "80").await.expect("HTTPS write").status(), 200);
    assert_eq!(register(b, "false", "81").await.expect("HTTPS write").status(), 200);
    for node in [a, b] {
        eventually("both instances on every member", WAIT, || async {
            let list: Value = client
                .get(format!("https://{}/nacos/v1/ns/instance/list?serviceName=tls", node.http_addr))
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            (list["hosts"].as_array()?.len() == 2).then_some(())
        })
        .await;
    }

    // Plaintext HTTP on the HTTPS port: refused.
    assert!(reqwest::get(format!("http://{}/roster/v1/status", a.http_addr)).await.is_err());

    // Client gRPC: TLS works, plaintext does not.
    let tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(&pki.ca));
    let channel = Endpoint::from_shared(format!("https://{}", a.grpc_addr))
        .expect("endpoint")
        .tls_config(tls.clone())
        .expect("tls")
        .connect()
        .await
        .expect("gRPC over TLS connects");
    let answer = RequestClient::new(channel).request(server_check()).await.expect("ServerCheck over TLS");
    assert_eq!(answer.into_inner().metadata.map(|m| m.r#type).as_deref(), Some("ServerCheckResponse"));
    let plain = async {
        let channel = Endpoint::from_shared(format!("http://{}", a.grpc_addr)).ok()?.connect().await.ok()?;
        RequestClient::new(channel).request(server_check()).await.ok()
    };
    assert!(
        tokio::time::timeout(Duration::from_secs(10), plain).await.expect("bounded").is_none(),
        "plaintext gRPC answered"
    );

    // Peer port: plaintext refused, TLS without a member certificate refused,
    // TLS with one reaches the signature check (no signature: UNAUTHENTICATED).
    let report = || MemberReport { member: "x:1".into(), version: "1".into(), raft_id: 1, ..Default::default() };
    let plain = async {
        let channel = Endpoint::from_shared(format!("http://{}", a.peer_addr)).ok()?.connect().await.ok()?;
        PeerClient::new(channel).report(report()).await.ok()
    };
    assert!(
        tokio::time::timeout(Duration::from_secs(10), plain).await.expect("bounded").is_none(),
        "plaintext peer call answered"
    );
    let anonymous = async {
        let channel = Endpoint::from_shared(format!("https://{}", a.peer_addr))
            .ok()?
            .tls_config(tls.clone())
            .ok()?
            .connect()
            .await
            .ok()?;
        PeerClient::new(channel).report(report()).await.ok()
    };
    assert!(
        tokio::time::timeout(Duration::from_secs(10), anonymous).await.expect("bounded").is_none(),
        "peer call without a client certificate answered"
    );
    let with_cert = tls.identity(Identity::from_pem(&pki.cert, &pki.key));
    let channel = Endpoint::from_shared(format!("https://{}", a.peer_addr))
        .expect("endpoint")
        .tls_config(with_cert)
        .expect("tls")
        .connect()
        .await
        .expect("mutual TLS connects");
    let status = PeerClient::new(channel).report(report()).await.expect_err("unsigned");
    assert_eq!(status.code(), tonic::Code::Unauthenticated);

    for n in nodes {
        n.shutdown().await;
    }
}

/// The address-server lookup reads `https://` lists, trusting the cluster
/// CA (`--tls-ca-file`) and nothing else.
#[tokio::test]
async fn the_address_server_is_read_over_https_with_the_cluster_ca() {
    use std::sync::Arc;

    use roster_node::cluster::{AddressServerLookup, ClusterMetrics};
    use roster_node::security::{PeerSecurity, SecuritySettings, TlsListener};

    let dir = tempfile::tempdir().expect("temp dir");
    let pki = pki(&["127.0.0.1".to_string()]);
    let settings = SecuritySettings {
        tls_cert_file: Some(write(dir.path(), "cert.pem", &pki.cert)),
        tls_key_file: Some(write(dir.path(), "key.pem", &pki.key)),
        tls_ca_file: Some(write(dir.path(), "ca.pem", &pki.ca)),
        ..SecuritySettings::default()
    };
    let security = PeerSecurity::load(&settings, "127.0.0.1:8848").expect("TLS loads");
    let tls = security.client_tls().expect("client TLS").http.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    let app =
        axum::Router::new().route("/serverlist", axum::routing::get(|| async { "127.0.0.2:8848\n127.0.0.3:8848\n" }));
    let listener = TlsListener::new(listener, tls).expect("TLS listener");
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let lookup = |http: reqwest::Client| AddressServerLookup {
        url: format!("https://127.0.0.1:{}/serverlist", addr.port()),
        local: "127.0.0.1:8848".into(),
        interval: Duration::from_secs(60),
        timeout: Duration::from_secs(5),
        http,
        cache: None,
    };
    let trusted = lookup(security.http_client(Duration::from_secs(5)).expect("client"))
        .start(Arc::new(ClusterMetrics::new()))
        .await
        .expect("lookup starts");
    assert!(trusted.stats().loaded(), "the first answer is read at start");
    assert_eq!(trusted.current(), ["127.0.0.1:8848", "127.0.0.2:8848", "127.0.0.3:8848"]);
    // A client that does not trust the cluster CA reads nothing.
    let untrusted = reqwest::Client::builder().tls_built_in_root_certs(false).build().expect("client");
    let refused = lookup(untrusted).start(Arc::new(ClusterMetrics::new())).await.expect("lookup starts");
    assert!(!refused.stats().loaded());
    assert_eq!(refused.stats().failures(), 1);
    assert!(refused.current().is_empty(), "no list until the server is read");
    trusted.stop().await;
    refused.stop().await;
    server.abort();
}
