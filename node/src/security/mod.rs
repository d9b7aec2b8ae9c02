//! Peer identity and TLS: who may speak on the peer port, and encryption of
//! all three ports.
//!
//! Nacos trusted a peer that said `User-Agent: Nacos-Server`, shipped a
//! default key, and deserialised whatever arrived on its Raft port. Roster
//! instead proves every peer request with a shared cluster secret:
//!
//! * **Peer identity** ([`signature`], [`layer`]): every peer gRPC call
//!   (reports, Distro sync / verify / snapshot, Raft append / vote /
//!   snapshot / forward) and every HTTP write forwarded between members is
//!   signed with HMAC-SHA256 under the secret, over the sender's name, a
//!   timestamp, a nonce, the method, the path and a digest of the body.
//!   The peer port checks the signature before any handler runs, refuses a
//!   nonce it saw before and a body that is not the one signed, and answers
//!   `UNAUTHENTICATED` otherwise (logged at warn with the remote address,
//!   counted in `roster_peer_auth_failures_total{reason}`); a forwarded
//!   HTTP write whose signature fails is handled as a plain client request.
//!   A node without a secret (standalone) refuses every peer request.
//! * **Who may hold a peer connection**: the peer port admits at most
//!   `--max-peer-connections` (and `--max-peer-connections-per-ip` from
//!   one address), and closes a connection that carried no validly signed
//!   request within `--peer-auth-timeout`, so a caller without the secret
//!   cannot hold the port's sockets.
//! * **Who holds the secret is a member.** The signer's name must match the
//!   sender named inside a Distro or report message, but it need not be in
//!   the receiver's current member list: lists change asynchronously (a
//!   joining member loads its snapshot before the others saw it listed; a
//!   Raft leader being removed must still replicate its own removal).
//! * **TLS** ([`tls`]): optional, from PEM files, on the client ports and
//!   (mutual) on the peer port.
//!
//! # Layout
//! - [`secret`]: the cluster secret (file or environment, ≥ 32 bytes, not
//!   obviously weak).
//! - [`signature`]: signing and checking requests (pure, clock passed in).
//! - [`layer`]: the signing peer channel and the checking service wrapper.
//! - [`tls`]: certificates, TLS configurations and the HTTPS listener.
//! - this module: the flags ([`SecuritySettings`]), what a node loads from
//!   them ([`PeerSecurity`]) and the refusal counter ([`SecurityMetrics`]).

pub mod layer;
pub mod secret;
pub mod signature;
pub mod tls;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

use crate::cluster::lookup::LookupMode;
use crate::error::{Error, Result};

pub use self::layer::{Authenticated, PeerIdentity, SignedChannel};
pub use self::secret::{ClusterSecret, MIN_SECRET_BYTES};
pub use self::signature::{AuthFailure, PeerAuth};
pub use self::tls::{ClientPortsTls, KeyPair, PeerTls, TlsListener};

/// Security flags (part of the node's configuration).
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Peer identity and TLS")]
pub struct SecuritySettings {
    /// File holding the shared cluster secret (at least 32 bytes) members
    /// sign peer requests with. Required unless --lookup standalone.
    #[arg(long, env = "ROSTER_CLUSTER_SECRET_FILE")]
    pub cluster_secret_file: Option<PathBuf>,

    /// The cluster secret itself (prefer the environment variable or
    /// --cluster-secret-file: a flag is visible in the process list).
    #[arg(long, env = "ROSTER_CLUSTER_SECRET", hide_env_values = true)]
    pub cluster_secret: Option<String>,

    /// PEM certificate chain for TLS on the client HTTP and gRPC ports.
    #[arg(long, env = "ROSTER_TLS_CERT_FILE")]
    pub tls_cert_file: Option<PathBuf>,

    /// PEM private key of --tls-cert-file.
    #[arg(long, env = "ROSTER_TLS_KEY_FILE")]
    pub tls_key_file: Option<PathBuf>,

    /// PEM CA certificate(s) members verify each other with. Turns on mutual
    /// TLS on the peer port, and https for HTTP writes forwarded between
    /// members when the client ports have TLS.
    #[arg(long, env = "ROSTER_TLS_CA_FILE")]
    pub tls_ca_file: Option<PathBuf>,

    /// PEM certificate chain for the peer port [default: --tls-cert-file].
    #[arg(long, env = "ROSTER_PEER_TLS_CERT_FILE")]
    pub peer_tls_cert_file: Option<PathBuf>,

    /// PEM private key of --peer-tls-cert-file [default: --tls-key-file].
    #[arg(long, env = "ROSTER_PEER_TLS_KEY_FILE")]
    pub peer_tls_key_file: Option<PathBuf>,

    /// During a rolling upgrade from a version whose peer signatures cover
    /// no body digest and no nonce: also sign that way, and also accept such
    /// signatures (which can be replayed within the clock skew window).
    /// Turn it off once every member runs this version.
    #[arg(long, env = "ROSTER_PEER_SIGNATURE_COMPAT", default_value_t = false)]
    pub peer_signature_compat: bool,

    /// Most open TCP connections on the peer port; more are refused. 0: no limit.
    #[arg(long, env = "ROSTER_MAX_PEER_CONNECTIONS", default_value_t = 1_024)]
    pub max_peer_connections: usize,

    /// Most open TCP connections on the peer port from one IP. 0: no limit.
    #[arg(long, env = "ROSTER_MAX_PEER_CONNECTIONS_PER_IP", default_value_t = 64)]
    pub max_peer_connections_per_ip: usize,

    /// A peer-port connection that has carried no validly signed request
    /// within this time is closed.
    #[arg(long, env = "ROSTER_PEER_AUTH_TIMEOUT", default_value = "10s", value_parser = crate::duration::parse)]
    pub peer_auth_timeout: Duration,
}

impl Default for SecuritySettings {
    fn default() -> Self {
        SecuritySettings {
            cluster_secret_file: None,
            cluster_secret: None,
            tls_cert_file: None,
            tls_key_file: None,
            tls_ca_file: None,
            peer_tls_cert_file: None,
            peer_tls_key_file: None,
            peer_signature_compat: false,
            max_peer_connections: 1_024,
            max_peer_connections_per_ip: 64,
            peer_auth_timeout: Duration::from_secs(10),
        }
    }
}

fn pair_of<'a>(
    cert: &'a Option<PathBuf>,
    key: &'a Option<PathBuf>,
    flags: &str,
) -> Result<Option<(&'a PathBuf, &'a PathBuf)>> {
    match (cert, key) {
        (Some(c), Some(k)) => Ok(Some((c, k))),
        (None, None) => Ok(None),
        _ => Err(Error::Config(format!("{flags} go together: give both or neither"))),
    }
}

impl SecuritySettings {
    /// Checks the combination of flags (files are read by [`PeerSecurity::load`]).
    pub fn validate(&self, lookup: LookupMode) -> Result<()> {
        if self.cluster_secret_file.is_some() && self.cluster_secret.is_some() {
            return Err(Error::Config(
                "give the cluster secret once: --cluster-secret-file or --cluster-secret".into(),
            ));
        }
        let has_secret = self.cluster_secret_file.is_some() || self.cluster_secret.is_some();
        if lookup != LookupMode::Standalone && !has_secret {
            return Err(Error::Config(format!(
                "--lookup {} needs a cluster secret that every member shares: --cluster-secret-file or \
                 ROSTER_CLUSTER_SECRET (at least {MIN_SECRET_BYTES} bytes, e.g. `head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \\n'`)",
                lookup.as_str()
            )));
        }
        let client = pair_of(&self.tls_cert_file, &self.tls_key_file, "--tls-cert-file and --tls-key-file")?;
        let peer =
            pair_of(&self.peer_tls_cert_file, &self.peer_tls_key_file, "--peer-tls-cert-file and --peer-tls-key-file")?;
        if peer.is_some() && self.tls_ca_file.is_none() {
            return Err(Error::Config(
                "--peer-tls-cert-file needs --tls-ca-file (peers verify each other with it)".into(),
            ));
        }
        if self.tls_ca_file.is_some() && client.is_none() && peer.is_none() {
            return Err(Error::Config(
                "--tls-ca-file needs a certificate: --tls-cert-file or --peer-tls-cert-file".into(),
            ));
        }
        if client.is_some() && self.tls_ca_file.is_none() && lookup != LookupMode::Standalone {
            return Err(Error::Config(
                "TLS on the client ports of a cluster needs --tls-ca-file: members forward HTTP writes to each other over https".into(),
            ));
        }
        if self.peer_auth_timeout.is_zero() {
            return Err(Error::Config("--peer-auth-timeout must be greater than zero".into()));
        }
        Ok(())
    }

    /// The cluster secret these flags name, read and checked (long enough,
    /// not obviously weak); `None` without one. The node calls this before
    /// it binds any port, so a weak secret never serves, not even briefly.
    pub fn load_secret(&self) -> Result<Option<ClusterSecret>> {
        match (&self.cluster_secret_file, &self.cluster_secret) {
            (Some(path), _) => Ok(Some(ClusterSecret::from_file(path)?)),
            (None, Some(value)) => Ok(Some(ClusterSecret::new(value.as_bytes())?)),
            (None, None) => Ok(None),
        }
    }
}

/// What a node loaded from its [`SecuritySettings`]: the signer and the TLS
/// configurations. The default is a node with neither (in-process tests of
/// one module).
#[derive(Debug, Default)]
pub struct PeerSecurity {
    auth: Option<Arc<PeerAuth>>,
    client_tls: Option<ClientPortsTls>,
    peer_tls: Option<PeerTls>,
}

impl PeerSecurity {
    /// Reads the secret and certificates named by `config` for the member
    /// `member`; a missing or unreadable file is a configuration error.
    pub fn load(config: &SecuritySettings, member: &str) -> Result<PeerSecurity> {
        let secret = config.load_secret()?;
        let client_pair = match (&config.tls_cert_file, &config.tls_key_file) {
            (Some(cert), Some(key)) => Some((KeyPair::load(cert, key)?, cert)),
            _ => None,
        };
        let client_tls = match &client_pair {
            Some((pair, cert)) => Some(ClientPortsTls::new(pair, cert)?),
            None => None,
        };
        let peer_tls = match &config.tls_ca_file {
            None => None,
            Some(ca) => {
                let pair = match (&config.peer_tls_cert_file, &config.peer_tls_key_file) {
                    (Some(cert), Some(key)) => KeyPair::load(cert, key)?,
                    _ => match &client_pair {
                        Some((pair, _)) => pair.clone(),
                        None => {
                            return Err(Error::Config("--tls-ca-file needs a certificate for the peer port".into()))
                        }
                    },
                };
                Some(PeerTls::new(&pair, ca)?)
            }
        };
        let auth = secret.map(|s| Arc::new(PeerAuth::new(&s, member).with_legacy(config.peer_signature_compat)));
        Ok(PeerSecurity { auth, client_tls, peer_tls })
    }

    /// Signing with `secret` as `member`, no TLS.
    pub fn with_secret(secret: &ClusterSecret, member: &str) -> PeerSecurity {
        PeerSecurity { auth: Some(Arc::new(PeerAuth::new(secret, member))), ..PeerSecurity::default() }
    }

    /// The signer, when this node has a cluster secret.
    pub fn auth(&self) -> Option<&Arc<PeerAuth>> {
        self.auth.as_ref()
    }

    /// TLS of the client ports, when on.
    pub fn client_tls(&self) -> Option<&ClientPortsTls> {
        self.client_tls.as_ref()
    }

    /// Mutual TLS of the peer port, when on.
    pub fn peer_tls(&self) -> Option<&PeerTls> {
        self.peer_tls.as_ref()
    }

    /// `https` when the client ports have TLS (members forward HTTP writes there).
    pub fn http_scheme(&self) -> &'static str {
        if self.client_tls.is_some() {
            "https"
        } else {
            "http"
        }
    }

    /// The HTTP client members forward writes with: each request bounded by
    /// `timeout`; with TLS, trusting the cluster CA and nothing else.
    pub fn http_client(&self, timeout: Duration) -> Result<reqwest::Client> {
        let mut builder = reqwest::Client::builder().timeout(timeout).tls_built_in_root_certs(false);
        if let Some(peer) = &self.peer_tls {
            for cert in reqwest::Certificate::from_pem_bundle(&peer.ca_pem)
                .map_err(|e| Error::Config(format!("the TLS CA file cannot be used by the HTTP client: {e}")))?
            {
                builder = builder.add_root_certificate(cert);
            }
        }
        builder.build().map_err(|e| Error::Config(format!("cannot build the forwarding HTTP client: {e}")))
    }
}

/// Labels of a refused peer request.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RefusalLabels {
    /// Why it was refused.
    pub reason: AuthFailure,
}

/// Peer requests refused by the identity check: on the peer port
/// ([`Authenticated`], a report or Distro call naming another sender) and
/// forwarded HTTP writes whose signature fails.
#[derive(Debug, Default)]
pub struct SecurityMetrics {
    refusals: Family<RefusalLabels, Counter>,
}

impl SecurityMetrics {
    /// Registers `roster_peer_auth_failures_total{reason}`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "peer_auth_failures",
            "Peer requests refused by the peer identity check, by reason",
            self.refusals.clone(),
        );
    }

    /// Counts one peer request refused for `reason`.
    pub fn peer_auth_failure(&self, reason: AuthFailure) {
        self.refusals.get_or_create(&RefusalLabels { reason }).inc();
    }

    /// How many peer requests were refused for `reason`.
    pub fn peer_auth_failure_count(&self, reason: AuthFailure) -> u64 {
        self.refusals.get_or_create(&RefusalLabels { reason }).get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, clap::Parser)]
    struct Flags {
        #[command(flatten)]
        security: SecuritySettings,
    }

    fn config(args: &[&str]) -> Flags {
        use clap::Parser;
        Flags::parse_from(std::iter::once("roster-node").chain(args.iter().copied()))
    }

    #[test]
    fn clusters_need_a_secret_and_tls_flags_come_in_pairs() {
        assert!(config(&[]).security.validate(LookupMode::Standalone).is_ok());
        let err = config(&[]).security.validate(LookupMode::File).expect_err("no secret");
        assert!(err.to_string().contains("cluster secret"), "{err}");
        assert!(config(&["--cluster-secret-file", "/s"]).security.validate(LookupMode::File).is_ok());
        let both = config(&["--cluster-secret-file", "/s", "--cluster-secret", "x"]);
        assert!(both.security.validate(LookupMode::Standalone).is_err());
        assert!(config(&["--tls-cert-file", "/c"]).security.validate(LookupMode::Standalone).is_err());
        assert!(config(&["--tls-cert-file", "/c", "--tls-key-file", "/k"])
            .security
            .validate(LookupMode::Standalone)
            .is_ok());
        let no_ca = config(&["--cluster-secret", "x", "--tls-cert-file", "/c", "--tls-key-file", "/k"]);
        assert!(no_ca.security.validate(LookupMode::File).is_err(), "forwarding needs the CA");
        let peer_only = config(&["--peer-tls-cert-file", "/c", "--peer-tls-key-file", "/k"]);
        assert!(peer_only.security.validate(LookupMode::Standalone).is_err(), "peer TLS needs the CA");
        assert!(config(&["--tls-ca-file", "/ca"]).security.validate(LookupMode::Standalone).is_err());
    }

    #[test]
    fn missing_files_are_configuration_errors() {
        let c = config(&["--cluster-secret-file", "/nonexistent/secret"]);
        assert!(PeerSecurity::load(&c.security, "a:8848").is_err());
        let c = config(&["--cluster-secret", "short"]);
        assert!(PeerSecurity::load(&c.security, "a:8848").is_err());
        let weak = "a".repeat(40);
        let c = config(&["--cluster-secret", weak.as_str()]);
        let err = PeerSecurity::load(&c.security, "a:8848").expect_err("weak");
        assert!(err.to_string().contains("too weak"), "{err}");
        let c = config(&["--cluster-secret", "9f86d081884c7d659a2feaa0c55ad015"]);
        let loaded = PeerSecurity::load(&c.security, "a:8848").expect("loads");
        assert_eq!(loaded.auth().map(|a| a.member()), Some("a:8848"));
        assert_eq!(loaded.http_scheme(), "http");
    }

    #[test]
    fn refusals_render_with_their_labels() {
        let metrics = SecurityMetrics::default();
        let mut registry = Registry::with_prefix("roster");
        metrics.register(&mut registry);
        metrics.peer_auth_failure(AuthFailure::BadSignature);
        let mut out = String::new();
        assert!(prometheus_client::encoding::text::encode(&mut out, &registry).is_ok());
        assert!(out.contains("roster_peer_auth_failures_total{reason=\"bad_signature\"} 1"), "{out}");
    }
}
