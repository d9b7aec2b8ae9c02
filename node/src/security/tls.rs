//! TLS for the three ports, with rustls and its `ring` provider.
//!
//! * Client ports (HTTP 8848, gRPC 9848): `--tls-cert-file` and
//!   `--tls-key-file` (PEM). tonic serves the gRPC port; the HTTP port goes
//!   through [`TlsListener`], which runs each handshake in its own task (a
//!   slow client cannot hold up the others) and hands finished connections
//!   to axum.
//! * Peer port (9849): on when `--tls-ca-file` is given. Mutual TLS: a
//!   member presents `--peer-tls-cert-file` (default: the client-port
//!   certificate) and accepts only peers whose certificate the CA signed.
//!   Peer clients (reports, Distro, Raft) connect with `https` and verify
//!   the server with the same CA; HTTP writes forwarded between members use
//!   `https` when the client ports have TLS, trusting that CA only.
//!
//! A plaintext client on a TLS port fails the handshake; nothing is served
//! in the clear on a port that has TLS.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tonic::transport::{Certificate, ClientTlsConfig, Identity, ServerTlsConfig};
use tracing::debug;

use crate::error::{Error, Result};

/// How long a client may take to finish the TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A certificate chain and its private key, PEM, checked to parse.
#[derive(Clone)]
pub struct KeyPair {
    cert_pem: Vec<u8>,
    key_pem: Vec<u8>,
}

impl std::fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyPair(..)")
    }
}

fn read(path: &Path, what: &str) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::Config(format!("cannot read the {what} {}: {e}", path.display())))
}

/// The certificates in PEM `pem`, at least one.
fn certificates(pem: &[u8], path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::Config(format!("{} is not a PEM certificate file: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(Error::Config(format!("{} holds no PEM certificate", path.display())));
    }
    Ok(certs)
}

impl KeyPair {
    /// Reads and checks a PEM certificate chain and private key.
    pub fn load(cert: &Path, key: &Path) -> Result<KeyPair> {
        let cert_pem = read(cert, "TLS certificate")?;
        let key_pem = read(key, "TLS key")?;
        certificates(&cert_pem, cert)?;
        PrivateKeyDer::from_pem_slice(&key_pem)
            .map_err(|e| Error::Config(format!("{} is not a PEM private key: {e}", key.display())))?;
        Ok(KeyPair { cert_pem, key_pem })
    }

    fn identity(&self) -> Identity {
        Identity::from_pem(&self.cert_pem, &self.key_pem)
    }

    /// A rustls server configuration for this pair (HTTP/1.1 over TLS).
    fn rustls_server(&self, cert: &Path) -> Result<rustls::ServerConfig> {
        let certs = certificates(&self.cert_pem, cert)?;
        let key = PrivateKeyDer::from_pem_slice(&self.key_pem)
            .map_err(|e| Error::Config(format!("the TLS key is not a PEM private key: {e}")))?;
        let mut config =
            rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .map_err(|e| Error::Config(format!("TLS set-up failed: {e}")))?
                .with_no_client_auth()
                .with_single_cert(certs, key)
                .map_err(|e| Error::Config(format!("the TLS certificate and key do not fit together: {e}")))?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(config)
    }
}

/// TLS of the client ports.
#[derive(Debug, Clone)]
pub struct ClientPortsTls {
    /// For tonic's client gRPC server.
    pub grpc: ServerTlsConfig,
    /// For the HTTP port's [`TlsListener`].
    pub http: Arc<rustls::ServerConfig>,
}

impl ClientPortsTls {
    /// TLS with `pair` (read from `cert`, named in errors).
    pub fn new(pair: &KeyPair, cert: &Path) -> Result<ClientPortsTls> {
        Ok(ClientPortsTls {
            grpc: ServerTlsConfig::new().identity(pair.identity()).timeout(HANDSHAKE_TIMEOUT),
            http: Arc::new(pair.rustls_server(cert)?),
        })
    }
}

/// Mutual TLS of the peer port.
#[derive(Debug, Clone)]
pub struct PeerTls {
    /// The peer server: our certificate, client certificates required and
    /// verified with the CA.
    pub server: ServerTlsConfig,
    /// Peer clients: the CA to verify members, our certificate to present.
    pub client: ClientTlsConfig,
    /// The CA (PEM), also trusted by the HTTP forwarding client.
    pub ca_pem: Vec<u8>,
}

impl PeerTls {
    /// Mutual TLS with our `pair` and the CA file `ca`.
    pub fn new(pair: &KeyPair, ca: &Path) -> Result<PeerTls> {
        let ca_pem = read(ca, "TLS CA file")?;
        certificates(&ca_pem, ca)?;
        let ca_cert = Certificate::from_pem(&ca_pem);
        Ok(PeerTls {
            server: ServerTlsConfig::new()
                .identity(pair.identity())
                .client_ca_root(ca_cert.clone())
                .timeout(HANDSHAKE_TIMEOUT),
            client: ClientTlsConfig::new().ca_certificate(ca_cert).identity(pair.identity()),
            ca_pem,
        })
    }
}

/// A TLS listener for axum: accepts connections from an inner listener
/// (plain TCP, or the connection-limited one), runs each handshake in its
/// own task (bounded by [`HANDSHAKE_TIMEOUT`]) and yields the finished
/// ones. Dropping it stops accepting.
#[derive(Debug)]
pub struct TlsListener<Io> {
    ready: mpsc::Receiver<(TlsStream<Io>, SocketAddr)>,
    local: SocketAddr,
    acceptor: JoinHandle<()>,
}

impl<Io> TlsListener<Io>
where
    Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    /// Serves TLS with `config` on the connections `listener` accepts.
    pub fn new<L>(mut listener: L, config: Arc<rustls::ServerConfig>) -> std::io::Result<TlsListener<Io>>
    where
        L: axum::serve::Listener<Io = Io, Addr = SocketAddr>,
    {
        let local = listener.local_addr()?;
        let (tx, ready) = mpsc::channel(64);
        let tls = TlsAcceptor::from(config);
        let acceptor = tokio::spawn(async move {
            loop {
                // axum's listeners retry failed accepts themselves.
                let (io, remote) = listener.accept().await;
                let tls = tls.clone();
                let tx = tx.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.accept(io)).await {
                        Ok(Ok(stream)) => {
                            let _ = tx.send((stream, remote)).await;
                        }
                        Ok(Err(e)) => debug!(%remote, error = %e, "TLS handshake failed"),
                        Err(_) => debug!(%remote, "TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(TlsListener { ready, local, acceptor })
    }
}

impl<Io> Drop for TlsListener<Io> {
    fn drop(&mut self) {
        self.acceptor.abort();
    }
}

impl<Io> axum::serve::Listener for TlsListener<Io>
where
    Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    type Io = TlsStream<Io>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(accepted) => accepted,
            // The acceptor task is gone (only when dropped): accept nothing more.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}
