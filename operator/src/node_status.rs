//! What a member says about itself: the `GET /roster/v1/status` document
//! (the README's "Admin" row) and the client that reads it from every member.
//!
//! Everything here comes from the network, so nothing is trusted: a member
//! that does not answer, answers with an error status, sends more than
//! [`MAX_STATUS_BYTES`] or sends JSON of the wrong shape becomes an
//! [`Observation::Unreachable`] with a reason a person can read, never a
//! panic. `distro` and `raft` may be `null` (a node built without them); the
//! types keep that as `None` and the status logic says so instead of
//! guessing.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Largest status document accepted, in bytes. A status is a few KiB even
/// for large clusters; the bound protects the operator from a wrong target.
pub const MAX_STATUS_BYTES: usize = 1024 * 1024;

/// Path of the status document on a member's main port.
pub const STATUS_PATH: &str = "/roster/v1/status";

/// One member in another member's view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerState {
    /// `host:port`.
    pub address: String,
    /// `UP`, `SUSPICIOUS` or `DOWN`.
    pub state: String,
}

/// The Distro section of a member status.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DistroStatus {
    /// Whether the member has loaded its Distro snapshot.
    pub initialized: bool,
    /// The peer the snapshot came from.
    #[serde(default)]
    pub snapshot_source: Option<String>,
    /// When the snapshot was loaded (RFC 3339).
    #[serde(default)]
    pub snapshot_loaded_at: Option<String>,
    /// Clients this member is responsible for.
    #[serde(default)]
    pub responsible_clients: Option<u64>,
    /// Clients this member holds.
    #[serde(default)]
    pub clients: Option<u64>,
    /// Instances this member holds.
    #[serde(default)]
    pub instances: Option<u64>,
    /// Syncs waiting to be sent.
    #[serde(default)]
    pub pending_syncs: Option<u64>,
}

/// The Raft section of a member status.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RaftStatus {
    /// `Leader`, `Follower`, `Candidate` or `Learner`.
    pub role: String,
    /// Current term.
    #[serde(default)]
    pub term: u64,
    /// Member name of the leader this member knows, if any.
    #[serde(default)]
    pub leader: Option<String>,
    /// Voters of the membership this member has.
    #[serde(default)]
    pub voters: Vec<String>,
    /// Learners of the membership this member has.
    #[serde(default)]
    pub learners: Vec<String>,
    /// Last log index.
    #[serde(default)]
    pub last_log_index: Option<u64>,
    /// Committed index.
    #[serde(default)]
    pub committed_index: Option<u64>,
    /// Applied index.
    #[serde(default)]
    pub applied_index: Option<u64>,
}

impl RaftStatus {
    /// Whether this member's Raft membership counts `member` (as voter or
    /// learner).
    pub fn counts(&self, member: &str) -> bool {
        self.voters.iter().chain(&self.learners).any(|m| m == member)
    }
}

/// `GET /roster/v1/status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeStatus {
    /// The member's own name.
    pub member: String,
    /// Roster version.
    #[serde(default)]
    pub version: String,
    /// Lookup mode.
    #[serde(default)]
    pub lookup: String,
    /// Same answer as the readiness endpoint.
    pub ready: bool,
    /// The member list as this member sees it.
    #[serde(default)]
    pub members: Vec<PeerState>,
    /// Distro state; `None` when the node does not report it.
    #[serde(default)]
    pub distro: Option<DistroStatus>,
    /// Raft state; `None` when the node does not report it.
    #[serde(default)]
    pub raft: Option<RaftStatus>,
}

impl NodeStatus {
    /// Parses a status document, refusing empty member names.
    pub fn parse(member: &str, body: &[u8]) -> Result<NodeStatus> {
        let status: NodeStatus = serde_json::from_slice(body).map_err(|e| Error::NodeStatus {
            member: member.to_owned(),
            reason: format!("invalid status JSON: {e}"),
        })?;
        if status.member.trim().is_empty() {
            return Err(Error::NodeStatus { member: member.to_owned(), reason: "status names no member".into() });
        }
        Ok(status)
    }
}

/// What the operator saw when it asked one member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observation {
    /// The member answered with a valid status.
    Reached(Box<NodeStatus>),
    /// The member could not be read; the reason is for people.
    Unreachable(String),
}

impl Observation {
    /// The status, if the member answered.
    pub fn status(&self) -> Option<&NodeStatus> {
        match self {
            Observation::Reached(s) => Some(s),
            Observation::Unreachable(_) => None,
        }
    }
}

fn client_error(e: reqwest::Error) -> Error {
    Error::NodeStatus { member: String::new(), reason: format!("HTTP client: {e}") }
}

/// Observations of every asked member, keyed by member address.
pub type Observations = BTreeMap<String, Observation>;

/// How a member address turns into an HTTP authority.
#[derive(Debug, Clone, Default)]
pub enum Endpoints {
    /// The member address is the authority (in-cluster DNS names).
    #[default]
    Dns,
    /// A fixed map from member address to `host:port`, for members that are
    /// not reachable under their names (tests, port-forwards). A member
    /// missing from the map is asked under its own name.
    Static(BTreeMap<String, String>),
}

impl Endpoints {
    fn authority<'a>(&'a self, member: &'a str) -> &'a str {
        match self {
            Endpoints::Dns => member,
            Endpoints::Static(map) => map.get(member).map_or(member, String::as_str),
        }
    }
}

/// Reads member statuses over HTTP (or HTTPS), concurrently, each with a
/// timeout.
#[derive(Debug, Clone)]
pub struct StatusClient {
    http: reqwest::Client,
    endpoints: Endpoints,
    timeout: Duration,
    scheme: &'static str,
}

impl StatusClient {
    /// A plain-HTTP client whose requests time out after `timeout`.
    pub fn new(endpoints: Endpoints, timeout: Duration) -> Result<StatusClient> {
        let http = Self::builder(timeout).build().map_err(client_error)?;
        Ok(StatusClient { http, endpoints, timeout, scheme: "http" })
    }

    fn builder(timeout: Duration) -> reqwest::ClientBuilder {
        reqwest::Client::builder().timeout(timeout).connect_timeout(timeout)
    }

    /// The same client speaking HTTPS to members whose certificates `ca_pem`
    /// (a cluster's `ca.crt`) signed, and trusting nothing else.
    pub fn with_ca(&self, ca_pem: &[u8]) -> Result<StatusClient> {
        let ca = reqwest::Certificate::from_pem(ca_pem).map_err(client_error)?;
        let http = Self::builder(self.timeout)
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(ca)
            .build()
            .map_err(client_error)?;
        Ok(StatusClient { http, endpoints: self.endpoints.clone(), timeout: self.timeout, scheme: "https" })
    }

    /// Reads the status of one member.
    pub async fn fetch(&self, member: &str) -> Result<NodeStatus> {
        let err = |reason: String| Error::NodeStatus { member: member.to_owned(), reason };
        let url = format!("{}://{}{STATUS_PATH}", self.scheme, self.endpoints.authority(member));
        let mut resp = self.http.get(&url).send().await.map_err(|e| err(format!("GET {url}: {e}")))?;
        if resp.status() != reqwest::StatusCode::OK {
            return Err(err(format!("GET {url} answered {}", resp.status())));
        }
        if resp.content_length().is_some_and(|n| n > MAX_STATUS_BYTES as u64) {
            return Err(err(format!("status larger than {MAX_STATUS_BYTES} bytes")));
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| err(format!("reading {url}: {e}")))? {
            if body.len() + chunk.len() > MAX_STATUS_BYTES {
                return Err(err(format!("status larger than {MAX_STATUS_BYTES} bytes")));
            }
            body.extend_from_slice(&chunk);
        }
        NodeStatus::parse(member, &body)
    }

    /// Reads the status of every member in `members`, concurrently.
    pub async fn observe(&self, members: &[String]) -> Observations {
        let results = futures::future::join_all(members.iter().map(|m| async move {
            let observation = match self.fetch(m).await {
                Ok(status) => Observation::Reached(Box::new(status)),
                Err(Error::NodeStatus { reason, .. }) => Observation::Unreachable(reason),
                Err(other) => Observation::Unreachable(other.to_string()),
            };
            (m.clone(), observation)
        }))
        .await;
        results.into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FULL: &str = r#"{
      "member": "demo-1.demo-headless.ns.svc:8848", "version": "0.1.0", "lookup": "address-server", "ready": true,
      "members": [{"address": "demo-0.demo-headless.ns.svc:8848", "state": "UP"}],
      "distro": {"initialized": true, "snapshotSource": "demo-0.demo-headless.ns.svc:8848",
                 "snapshotLoadedAt": "2026-01-01T00:00:00Z", "responsibleClients": 12,
                 "clients": 40, "instances": 400, "pendingSyncs": 0},
      "raft": {"role": "Follower", "term": 3, "leader": "demo-0.demo-headless.ns.svc:8848",
               "voters": ["demo-0.demo-headless.ns.svc:8848"], "learners": ["demo-1.demo-headless.ns.svc:8848"],
               "lastLogIndex": 120, "committedIndex": 120, "appliedIndex": 120}
    }"#;

    #[test]
    fn parses_the_design_document() {
        let s = NodeStatus::parse("m", FULL.as_bytes()).expect("valid");
        assert!(s.ready);
        assert_eq!(s.distro.as_ref().map(|d| d.initialized), Some(true));
        let raft = s.raft.expect("raft");
        assert_eq!(raft.applied_index, Some(120));
        assert!(raft.counts("demo-1.demo-headless.ns.svc:8848"));
        assert!(raft.counts("demo-0.demo-headless.ns.svc:8848"));
        assert!(!raft.counts("demo-2.demo-headless.ns.svc:8848"));
    }

    #[test]
    fn null_sections_and_extra_fields_are_accepted() {
        let body = r#"{"member":"a:8848","version":"0.1.0","lookup":"file","ready":true,"members":[],
                      "distro":null,"raft":null,"store":{"services":1},"uptimeSeconds":3}"#;
        let s = NodeStatus::parse("a:8848", body.as_bytes()).expect("valid");
        assert!(s.distro.is_none());
        assert!(s.raft.is_none());
    }

    #[test]
    fn bad_documents_are_clear_errors() {
        for (body, needle) in [
            ("not json", "invalid status JSON"),
            (r#"{"member":"a"}"#, "missing field `ready`"),
            (r#"{"member":"","ready":true}"#, "names no member"),
            (r#"{"member":"a","ready":"yes"}"#, "invalid type"),
        ] {
            let err = NodeStatus::parse("a:8848", body.as_bytes()).expect_err(body).to_string();
            assert!(err.contains(needle), "{body}: {err}");
            assert!(err.contains("a:8848"), "{err}");
        }
    }

    #[test]
    fn static_endpoints_fall_back_to_the_name() {
        let e = Endpoints::Static(BTreeMap::from([("a:8848".into(), "127.0.0.1:1".into())]));
        assert_eq!(e.authority("a:8848"), "127.0.0.1:1");
        assert_eq!(e.authority("b:8848"), "b:8848");
        assert_eq!(Endpoints::Dns.authority("b:8848"), "b:8848");
    }
}
