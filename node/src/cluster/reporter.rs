//! Member reports, outbound: every report interval this node sends its own
//! [`MemberReport`] to every other member and records the outcome.
//!
//! This is Nacos's `MemberInfoReportTask` with two differences: the report
//! goes over the peer gRPC port instead of HTTP, and it goes to *every* peer
//! each round (Nacos picks one peer per round, round-robin), so a dead
//! member is noticed within `DOWN threshold × interval` whatever the cluster
//! size. All peers are asked concurrently, each with its own timeout, so one
//! silent member cannot delay the verdict on the others.
//!
//! A member's peer endpoint is derived from its address by a
//! [`PeerAddressResolver`]: by default the main port plus 1001 (Nacos's
//! convention, [`crate::config::PEER_PORT_OFFSET`]); tests running several
//! nodes on ephemeral ports pass their own mapping.
//!
//! [`PeerChannels`] keeps one lazily connected tonic `Channel` per peer,
//! reused by every report (and later by Distro and Raft), and drops the
//! channels of members that left the list.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use roster_proto::peer::peer_client::PeerClient;
use roster_proto::peer::MemberReport;
use tokio::sync::watch;
use tonic::transport::Endpoint;
use tracing::{debug, warn};

use super::faults::Faults;
use super::membership::Membership;
use super::metrics::ClusterMetrics;
use crate::config::PEER_PORT_OFFSET;
use crate::security::{PeerSecurity, SignedChannel};

/// Maps a member address (`host:mainPort`) to the `host:port` of its peer
/// gRPC endpoint, or `None` when it cannot (the member then counts as
/// unreachable).
#[derive(Clone)]
pub struct PeerAddressResolver(Arc<ResolveFn>);

/// The mapping function inside a [`PeerAddressResolver`].
type ResolveFn = dyn Fn(&str) -> Option<String> + Send + Sync;

impl PeerAddressResolver {
    /// The Nacos convention: the same host, the main port plus `offset`.
    pub fn with_offset(offset: u16) -> PeerAddressResolver {
        PeerAddressResolver::new(move |member| peer_endpoint(member, offset))
    }

    /// A custom mapping (tests with ephemeral ports, unusual deployments).
    pub fn new(resolve: impl Fn(&str) -> Option<String> + Send + Sync + 'static) -> PeerAddressResolver {
        PeerAddressResolver(Arc::new(resolve))
    }

    /// The peer endpoint of `member`.
    pub fn resolve(&self, member: &str) -> Option<String> {
        (self.0)(member)
    }
}

impl Default for PeerAddressResolver {
    /// Main port + [`PEER_PORT_OFFSET`] (1001).
    fn default() -> Self {
        PeerAddressResolver::with_offset(PEER_PORT_OFFSET)
    }
}

impl fmt::Debug for PeerAddressResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PeerAddressResolver(..)")
    }
}

/// `host:mainPort` → `host:(mainPort + offset)`; `None` when the address has
/// no port or the sum overflows.
pub fn peer_endpoint(member: &str, offset: u16) -> Option<String> {
    let (host, port) = member.rsplit_once(':')?;
    if host.is_empty() {
        return None;
    }
    let port = port.parse::<u16>().ok()?.checked_add(offset)?;
    Some(format!("{host}:{port}"))
}

/// One gRPC channel per peer, created on first use and connected lazily;
/// every call on it is signed with the cluster secret, and goes over mutual
/// TLS when the peer port has TLS ([`crate::security`]).
#[derive(Debug)]
pub struct PeerChannels {
    resolver: PeerAddressResolver,
    connect_timeout: Duration,
    /// member → (endpoint it was resolved to, channel).
    channels: Mutex<HashMap<String, (String, SignedChannel)>>,
    faults: Arc<Faults>,
    security: Arc<PeerSecurity>,
}

impl PeerChannels {
    /// Channels resolved with `resolver`, each connection attempt bounded by
    /// `connect_timeout`.
    pub fn new(resolver: PeerAddressResolver, connect_timeout: Duration) -> PeerChannels {
        PeerChannels {
            resolver,
            connect_timeout,
            channels: Mutex::new(HashMap::new()),
            faults: Arc::default(),
            security: Arc::default(),
        }
    }

    /// The same channels, signing with (and using the TLS of) `security`.
    pub fn with_security(self, security: Arc<PeerSecurity>) -> PeerChannels {
        PeerChannels { security, ..self }
    }

    /// The same channels, cut by the fault switch `faults`.
    pub fn with_faults(self, faults: Arc<Faults>) -> PeerChannels {
        PeerChannels { faults, ..self }
    }

    /// The fault switch every peer call goes through.
    pub fn faults(&self) -> &Arc<Faults> {
        &self.faults
    }

    /// The channel to `member`, or `None` when it has no peer endpoint (or
    /// the fault switch blocks it). A member whose endpoint resolves
    /// differently than before gets a new channel. Cloning a `Channel` is
    /// cheap and shares the connection.
    pub fn channel(&self, member: &str) -> Option<SignedChannel> {
        if self.faults.is_blocked(member) {
            return None;
        }
        let endpoint = self.resolver.resolve(member)?;
        let mut channels = self.channels.lock();
        if let Some((known, channel)) = channels.get(member) {
            if *known == endpoint {
                return Some(channel.clone());
            }
        }
        let tls = self.security.peer_tls();
        let scheme = if tls.is_some() { "https" } else { "http" };
        let built = Endpoint::from_shared(format!("{scheme}://{endpoint}")).and_then(|e| match tls {
            Some(tls) => e.tls_config(tls.client.clone()),
            None => Ok(e),
        });
        let channel = match built {
            Ok(e) => SignedChannel::new(
                e.connect_timeout(self.connect_timeout).tcp_nodelay(true).connect_lazy(),
                self.security.auth().cloned(),
            ),
            Err(e) => {
                warn!(member, endpoint, error = %e, "member has an invalid peer endpoint");
                return None;
            }
        };
        channels.insert(member.to_string(), (endpoint, channel.clone()));
        Some(channel)
    }

    /// Drops the channels of members not in `members`.
    pub fn retain(&self, members: &[String]) {
        self.channels.lock().retain(|member, _| members.contains(member));
    }

    /// Members with a channel, sorted.
    pub fn members(&self) -> Vec<String> {
        let mut members: Vec<String> = self.channels.lock().keys().cloned().collect();
        members.sort();
        members
    }
}

/// Why a report failed; the label is the metric's `result`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ReportFailure {
    /// The resolver has no endpoint for the member.
    Unresolved,
    /// No answer within the report timeout.
    Timeout,
    /// The RPC failed (connection refused, reset, error status).
    Failed(String),
    /// Someone answered, but not the member we asked: a stale DNS entry or
    /// a port reused by another node. Counting it as an answer would keep a
    /// dead member `UP`.
    WrongMember(String),
}

impl ReportFailure {
    fn label(&self) -> &'static str {
        match self {
            ReportFailure::Unresolved => "unresolved",
            ReportFailure::Timeout => "timeout",
            ReportFailure::Failed(_) => "failed",
            ReportFailure::WrongMember(_) => "wrong_member",
        }
    }
}

impl fmt::Display for ReportFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReportFailure::Unresolved => f.write_str("no peer endpoint for this member"),
            ReportFailure::Timeout => f.write_str("timed out"),
            ReportFailure::Failed(e) => write!(f, "{e}"),
            ReportFailure::WrongMember(m) => write!(f, "answered as '{m}'"),
        }
    }
}

/// Sends this node's report to every other member each interval.
#[derive(Debug)]
pub struct Reporter {
    membership: Arc<Membership>,
    channels: Arc<PeerChannels>,
    timeout: Duration,
    metrics: Arc<ClusterMetrics>,
}

impl Reporter {
    /// A reporter for `membership`, over `channels`, each report bounded by
    /// `timeout`.
    pub fn new(
        membership: Arc<Membership>,
        channels: Arc<PeerChannels>,
        timeout: Duration,
        metrics: Arc<ClusterMetrics>,
    ) -> Reporter {
        Reporter { membership, channels, timeout, metrics }
    }

    /// Reports every `interval` until `stop` turns true (or its sender is
    /// dropped). The first round starts at once.
    pub async fn run(self, interval: Duration, mut stop: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let stopped = async move {
            let _ = stop.wait_for(|s| *s).await;
        };
        tokio::pin!(stopped);
        loop {
            // A round in flight is abandoned on stop, not awaited.
            tokio::select! {
                _ = &mut stopped => return,
                _ = async {
                    tick.tick().await;
                    self.round().await;
                } => {}
            }
        }
    }

    /// One round: a report to every other member, concurrently, each outcome
    /// applied to the membership as soon as it is known.
    pub async fn round(&self) {
        let report = self.membership.local_report();
        let peers = self.membership.peers();
        futures::future::join_all(peers.iter().map(|peer| self.report_to(peer, report.clone()))).await;
    }

    async fn report_to(&self, peer: &str, report: MemberReport) {
        match self.send(peer, report).await {
            Ok(reply) => {
                self.metrics.report("ok");
                self.membership.report_succeeded(peer, &reply, Instant::now());
            }
            Err(failure) => {
                self.metrics.report(failure.label());
                debug!(member = peer, error = %failure, "member report failed");
                if let ReportFailure::WrongMember(_) = failure {
                    warn!(member = peer, error = %failure, "a different member answers at this member's peer endpoint");
                }
                self.membership.report_failed(peer, Instant::now());
            }
        }
    }

    async fn send(&self, peer: &str, report: MemberReport) -> Result<MemberReport, ReportFailure> {
        let channel = self.channels.channel(peer).ok_or(ReportFailure::Unresolved)?;
        let mut client = PeerClient::new(channel);
        let mut request = tonic::Request::new(report);
        request.set_timeout(self.timeout);
        let reply = match tokio::time::timeout(self.timeout, client.report(request)).await {
            Err(_) => return Err(ReportFailure::Timeout),
            Ok(Err(status)) if status.code() == tonic::Code::DeadlineExceeded => return Err(ReportFailure::Timeout),
            Ok(Err(status)) => return Err(ReportFailure::Failed(status.to_string())),
            Ok(Ok(response)) => response.into_inner(),
        };
        match reply.self_report {
            Some(r) if r.member == peer => Ok(r),
            Some(r) => Err(ReportFailure::WrongMember(r.member)),
            None => Err(ReportFailure::Failed("the answer carries no report".into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_endpoints_follow_the_offset() {
        assert_eq!(peer_endpoint("10.0.0.1:8848", 1001).as_deref(), Some("10.0.0.1:9849"));
        assert_eq!(peer_endpoint("demo-0.demo.ns.svc:8858", 1001).as_deref(), Some("demo-0.demo.ns.svc:9859"));
        assert_eq!(peer_endpoint("[::1]:8848", 1001).as_deref(), Some("[::1]:9849"));
        assert_eq!(peer_endpoint("h:65000", 1001), None);
        assert_eq!(peer_endpoint("h", 1001), None);
        assert_eq!(peer_endpoint(":8848", 1001), None);
        assert_eq!(PeerAddressResolver::default().resolve("a:8848").as_deref(), Some("a:9849"));
    }

    #[tokio::test]
    async fn channels_are_reused_and_pruned() {
        let channels = PeerChannels::new(
            PeerAddressResolver::new(|m| (m != "nowhere:1").then(|| "127.0.0.1:1".to_string())),
            Duration::from_millis(100),
        );
        assert!(channels.channel("a:8848").is_some());
        assert!(channels.channel("a:8848").is_some());
        assert!(channels.channel("b:8848").is_some());
        assert!(channels.channel("nowhere:1").is_none());
        assert_eq!(channels.members(), vec!["a:8848", "b:8848"]);
        channels.retain(&["b:8848".to_string()]);
        assert_eq!(channels.members(), vec!["b:8848"]);
    }
}
