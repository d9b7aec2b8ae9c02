//! One handler trait per protocol on the peer port. The inbound service
//! ([`super::PeerService`]) checks who sent a call, then hands the message
//! to the protocol's handler; the in-process test network calls the same
//! handlers directly.

use std::pin::Pin;

use roster_proto::peer::{
    DistroAck, DistroSyncRequest, DistroVerifyReply, DistroVerifyRequest, MemberReport, RaftMessage, SnapshotChunk,
    SnapshotRequest,
};
use tokio_stream::Stream;
use tonic::Status;

/// Which Raft RPC a message travels on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RaftCall {
    /// `RaftAppend`: log entries and heartbeats.
    Append,
    /// `RaftVote`.
    Vote,
    /// `RaftSnapshot`: one chunk of a snapshot.
    Snapshot,
    /// `RaftForward`: a write for the leader, or a bootstrap probe.
    Forward,
}

/// The stream of snapshot chunks answered by `DistroSnapshot`.
pub type SnapshotStream = Pin<Box<dyn Stream<Item = Result<SnapshotChunk, Status>> + Send>>;

/// What answers member reports ([`crate::cluster::Membership`]).
pub trait MemberHandler: Send + Sync + std::fmt::Debug + 'static {
    /// Takes the report `from` another member sent and answers with this
    /// node's own report.
    fn report(&self, from: MemberReport) -> MemberReport;
}

/// What answers the Distro RPCs ([`crate::distro::Distro`]).
pub trait DistroHandler: Send + Sync + std::fmt::Debug + 'static {
    /// Applies changed and removed clients sent by a peer.
    fn sync(&self, request: DistroSyncRequest) -> Result<DistroAck, Status>;
    /// Checks a peer's `(client, revision)` list against what is held.
    fn verify(&self, request: DistroVerifyRequest) -> Result<DistroVerifyReply, Status>;
    /// Streams everything held to a loading peer.
    fn snapshot(&self, request: SnapshotRequest) -> Result<SnapshotStream, Status>;
}

/// What answers the Raft RPCs ([`crate::raft::RaftRpc`]). Raft messages
/// are opaque bytes to the peer plane.
#[tonic::async_trait]
pub trait RaftHandler: Send + Sync + std::fmt::Debug + 'static {
    /// Answers one Raft message arriving on `call`.
    async fn handle(&self, call: RaftCall, message: RaftMessage) -> Result<RaftMessage, Status>;
}
