//! The outbound side of the peer plane: what a protocol sends through.
//!
//! [`PeerTransport`] has one method per peer RPC. The node's transport is
//! [`super::PeerChannels`] (gRPC over signed channels); the in-process test
//! network implements the same trait by calling the target node's handlers
//! ([`super::handlers`]) directly, dropping, delaying or partitioning
//! messages as the test asks. Protocols never build gRPC clients themselves.

use std::time::Duration;

use roster_proto::peer::{
    DistroAck, DistroSyncRequest, DistroVerifyReply, DistroVerifyRequest, MemberReport, MemberReportReply, RaftMessage,
    SnapshotRequest,
};

use super::handlers::{RaftCall, SnapshotStream};

/// Why a peer call brought no answer.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    /// The member has no peer endpoint, or the fault switch cuts it: nothing
    /// was sent.
    #[error("no peer endpoint for {0} (or cut by fault injection)")]
    Unreachable(String),
    /// No answer within the call's timeout; the message may have arrived.
    #[error("timed out")]
    Timeout,
    /// The call was answered with an error status (or the connection failed).
    #[error("{0}")]
    Status(tonic::Status),
}

/// Sends peer RPCs to members by address (`host:mainPort`). Every call is
/// bounded by its `timeout`.
#[tonic::async_trait]
pub trait PeerTransport: Send + Sync + std::fmt::Debug + 'static {
    /// `Report`: this node's report; the answer carries the receiver's.
    async fn report(&self, to: &str, report: MemberReport, timeout: Duration) -> Result<MemberReportReply, PeerError>;

    /// `DistroSync`: changed and removed clients.
    async fn distro_sync(
        &self,
        to: &str,
        request: DistroSyncRequest,
        timeout: Duration,
    ) -> Result<DistroAck, PeerError>;

    /// `DistroVerify`: the `(client, revision)` pairs this node vouches for.
    async fn distro_verify(
        &self,
        to: &str,
        request: DistroVerifyRequest,
        timeout: Duration,
    ) -> Result<DistroVerifyReply, PeerError>;

    /// `DistroSnapshot`: opens the stream of the receiver's snapshot
    /// (`timeout` bounds the opening; the caller bounds each chunk).
    async fn distro_snapshot(
        &self,
        to: &str,
        request: SnapshotRequest,
        timeout: Duration,
    ) -> Result<SnapshotStream, PeerError>;

    /// One Raft message on `call`.
    async fn raft(
        &self,
        to: &str,
        call: RaftCall,
        message: RaftMessage,
        timeout: Duration,
    ) -> Result<RaftMessage, PeerError>;

    /// Forgets the connections of members not in `members` (they left the
    /// list). Nothing to do for a transport that keeps none.
    fn retain(&self, members: &[String]) {
        let _ = members;
    }
}
