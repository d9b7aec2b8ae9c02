//! The node's peer transport: one gRPC channel per member.
//!
//! A member's peer endpoint is derived from its address by a
//! [`PeerAddressResolver`]: by default the main port plus 1001 (Nacos's
//! convention, [`super::PEER_PORT_OFFSET`]); tests running several nodes on
//! ephemeral ports pass their own mapping.
//!
//! [`PeerChannels`] keeps one lazily connected tonic `Channel` per member,
//! reused by every protocol, and drops the channels of members that left
//! the list. Every call on it is signed with the cluster secret and goes
//! over mutual TLS when the peer port has TLS ([`crate::security`]), and
//! every message, both ways, is bounded by the one peer message limit.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use roster_proto::peer::peer_client::PeerClient;
use roster_proto::peer::{
    DistroAck, DistroSyncRequest, DistroVerifyReply, DistroVerifyRequest, MemberReport, MemberReportReply, RaftMessage,
    SnapshotRequest,
};
use tonic::transport::Endpoint;
use tracing::warn;

use super::faults::Faults;
use super::handlers::{RaftCall, SnapshotStream};
use super::transport::{PeerError, PeerTransport};
use super::{DEFAULT_MESSAGE_BYTES, PEER_PORT_OFFSET};
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
    max_message_bytes: usize,
    /// member → (endpoint it was resolved to, channel).
    channels: Mutex<HashMap<String, (String, SignedChannel)>>,
    faults: Arc<Faults>,
    security: Arc<PeerSecurity>,
}

impl PeerChannels {
    /// Channels resolved with `resolver`, each connection attempt bounded by
    /// `connect_timeout`, messages by [`DEFAULT_MESSAGE_BYTES`].
    pub fn new(resolver: PeerAddressResolver, connect_timeout: Duration) -> PeerChannels {
        PeerChannels {
            resolver,
            connect_timeout,
            max_message_bytes: DEFAULT_MESSAGE_BYTES,
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

    /// The same channels, with messages both ways bounded by
    /// `max_message_bytes` (`--max-peer-message-bytes`).
    pub fn with_message_limit(self, max_message_bytes: usize) -> PeerChannels {
        PeerChannels { max_message_bytes, ..self }
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

    /// Members with a channel, sorted.
    pub fn members(&self) -> Vec<String> {
        let mut members: Vec<String> = self.channels.lock().keys().cloned().collect();
        members.sort();
        members
    }

    /// A gRPC client to `member`, with the peer message limit both ways.
    fn client(&self, member: &str) -> Result<PeerClient<SignedChannel>, PeerError> {
        let channel = self.channel(member).ok_or_else(|| PeerError::Unreachable(member.to_owned()))?;
        Ok(PeerClient::new(channel)
            .max_decoding_message_size(self.max_message_bytes)
            .max_encoding_message_size(self.max_message_bytes))
    }
}

/// A unary call carrying `timeout` as its gRPC deadline, bounded by it here
/// too (a peer that never answers must not hold the caller).
async fn unary<T, F>(timeout: Duration, call: F) -> Result<T, PeerError>
where
    F: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
{
    match tokio::time::timeout(timeout, call).await {
        Err(_) => Err(PeerError::Timeout),
        Ok(Err(status)) if status.code() == tonic::Code::DeadlineExceeded => Err(PeerError::Timeout),
        Ok(Err(status)) => Err(PeerError::Status(status)),
        Ok(Ok(response)) => Ok(response.into_inner()),
    }
}

fn with_deadline<T>(message: T, timeout: Duration) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.set_timeout(timeout);
    request
}

#[tonic::async_trait]
impl PeerTransport for PeerChannels {
    async fn report(&self, to: &str, report: MemberReport, timeout: Duration) -> Result<MemberReportReply, PeerError> {
        let mut client = self.client(to)?;
        unary(timeout, client.report(with_deadline(report, timeout))).await
    }

    async fn distro_sync(
        &self,
        to: &str,
        request: DistroSyncRequest,
        timeout: Duration,
    ) -> Result<DistroAck, PeerError> {
        let mut client = self.client(to)?;
        unary(timeout, client.distro_sync(with_deadline(request, timeout))).await
    }

    async fn distro_verify(
        &self,
        to: &str,
        request: DistroVerifyRequest,
        timeout: Duration,
    ) -> Result<DistroVerifyReply, PeerError> {
        let mut client = self.client(to)?;
        unary(timeout, client.distro_verify(with_deadline(request, timeout))).await
    }

    async fn distro_snapshot(
        &self,
        to: &str,
        request: SnapshotRequest,
        timeout: Duration,
    ) -> Result<SnapshotStream, PeerError> {
        let mut client = self.client(to)?;
        // No gRPC deadline: it would cut a long stream; each chunk is
        // bounded by the loader.
        let stream = unary(timeout, client.distro_snapshot(request)).await?;
        Ok(Box::pin(stream))
    }

    async fn raft(
        &self,
        to: &str,
        call: RaftCall,
        message: RaftMessage,
        timeout: Duration,
    ) -> Result<RaftMessage, PeerError> {
        let mut client = self.client(to)?;
        // No gRPC deadline: openraft bounds its calls itself (`timeout`),
        // and a snapshot chunk on a slow disk may take long to apply.
        let answer = async {
            match call {
                RaftCall::Append => client.raft_append(message).await,
                RaftCall::Vote => client.raft_vote(message).await,
                RaftCall::Snapshot => client.raft_snapshot(message).await,
                RaftCall::Forward => client.raft_forward(message).await,
            }
        };
        match tokio::time::timeout(timeout, answer).await {
            Err(_) => Err(PeerError::Timeout),
            Ok(Err(status)) => Err(PeerError::Status(status)),
            Ok(Ok(response)) => Ok(response.into_inner()),
        }
    }

    /// Drops the channels of members not in `members`.
    fn retain(&self, members: &[String]) {
        self.channels.lock().retain(|member, _| members.contains(member));
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
