//! The operator reads member statuses over HTTPS when `spec.tls` is set:
//! a member serving its status with a certificate from the cluster's CA is
//! read, and neither a plain-HTTP client nor one trusting another CA gets
//! an answer.

use std::sync::Arc;
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair};
use roster_operator::node_status::{Endpoints, StatusClient};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const MEMBER: &str = "demo-0.demo-headless.ns.svc:8848";

/// A CA (PEM) and a server certificate and key (PEM) for 127.0.0.1 signed by it.
fn pki() -> (String, String, String) {
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(DnType::CommonName, "roster test CA");
    let ca = ca_params.self_signed(&ca_key).expect("CA certificate");
    let key = KeyPair::generate().expect("member key");
    let mut params = CertificateParams::new(vec!["127.0.0.1".to_owned()]).expect("member params");
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
    let cert = params.signed_by(&key, &Issuer::from_params(&ca_params, &ca_key)).expect("member certificate");
    (ca.pem(), cert.pem(), key.serialize_pem())
}

/// Serves one fixed status document over TLS on 127.0.0.1, one HTTP/1.1
/// answer per connection.
async fn tls_member(cert: &str, key: &str) -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(cert.as_bytes()).collect::<Result<_, _>>().expect("certificate PEM");
    let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).expect("key PEM");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .expect("server config");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind loopback");
    let addr = listener.local_addr().expect("addr");
    let task = tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else { return };
                let mut request = Vec::new();
                let mut buf = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tls.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let body = format!(r#"{{"member":"{MEMBER}","ready":true}}"#);
                let answer = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = tls.write_all(answer.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    (addr, task)
}

#[tokio::test]
async fn statuses_are_read_over_https_trusting_only_the_cluster_ca() {
    let (ca, cert, key) = pki();
    let (addr, server) = tls_member(&cert, &key).await;
    let endpoints = Endpoints::Static([(MEMBER.to_owned(), addr.to_string())].into_iter().collect());
    let plain = StatusClient::new(endpoints, Duration::from_secs(5)).expect("client");

    let https = plain.with_ca(ca.as_bytes()).expect("client with the cluster CA");
    let status = https.fetch(MEMBER).await.expect("the status is read over HTTPS");
    assert_eq!(status.member, MEMBER);
    assert!(status.ready);

    let err = plain.fetch(MEMBER).await.expect_err("plain HTTP to a TLS port gets no status");
    assert!(err.to_string().contains("http://"), "{err}");

    let (other_ca, _, _) = pki();
    let stranger = plain.with_ca(other_ca.as_bytes()).expect("client with another CA");
    let err = stranger.fetch(MEMBER).await.expect_err("a certificate from another CA is not trusted");
    assert!(err.to_string().contains("https://"), "{err}");

    server.abort();
}
