//! The `Peer` gRPC service on the peer port, inbound.
//!
//! `Report` records the sender's metadata (if it is a member) and answers
//! with this node's own report, which is what the sender's reporter uses to
//! mark us `UP`. The Distro RPCs are answered by a [`DistroHandler`] (the
//! node plugs in [`crate::distro::Distro`], [`PeerService::with_distro`]);
//! the Raft RPCs are handed to [`crate::raft::RaftRpc`]
//! ([`PeerService::with_raft`]); either answers `UNIMPLEMENTED` when not
//! plugged in. Reports and Distro calls from a member the fault switch
//! blocks are refused with `UNAVAILABLE`, as a cut network would (Raft
//! messages carry no sender; the switch cuts them on the sending side).
//!
//! On a node the peer port wraps this service in
//! [`crate::security::Authenticated`], so only signed calls reach it; a
//! report or Distro call whose body names another sender than the member
//! that signed it is refused with `UNAUTHENTICATED`.

use std::pin::Pin;
use std::sync::Arc;

use roster_proto::peer::peer_server::{Peer, PeerServer};
use roster_proto::peer::{
    DistroAck, DistroSyncRequest, DistroVerifyReply, DistroVerifyRequest, MemberReport, MemberReportReply, RaftMessage,
    SnapshotChunk, SnapshotRequest,
};
use tokio_stream::Stream;
use tonic::{Request, Response, Status};
use tracing::{debug, warn};

use super::faults::Faults;
use super::membership::Membership;
use super::metrics::ClusterMetrics;
use crate::raft::RaftRpc;
use crate::security::{AuthFailure, PeerIdentity};

/// The stream of snapshot chunks answered by `DistroSnapshot`.
pub type SnapshotStream = Pin<Box<dyn Stream<Item = Result<SnapshotChunk, Status>> + Send>>;

/// What answers the Distro RPCs of the peer service.
pub trait DistroHandler: Send + Sync + std::fmt::Debug + 'static {
    /// Applies changed and removed clients sent by a peer.
    fn sync(&self, request: DistroSyncRequest) -> Result<DistroAck, Status>;
    /// Checks a peer's `(client, revision)` list against what is held.
    fn verify(&self, request: DistroVerifyRequest) -> Result<DistroVerifyReply, Status>;
    /// Streams everything held to a loading peer.
    fn snapshot(&self, request: SnapshotRequest) -> Result<SnapshotStream, Status>;
}

/// The peer-port gRPC service.
#[derive(Debug, Clone)]
pub struct PeerService {
    membership: Arc<Membership>,
    faults: Arc<Faults>,
    distro: Option<Arc<dyn DistroHandler>>,
    raft: Option<RaftRpc>,
    metrics: Arc<ClusterMetrics>,
}

impl PeerService {
    /// A service answering reports for `membership` (Distro RPCs answer
    /// `UNIMPLEMENTED` until [`PeerService::with_distro`]).
    pub fn new(membership: Arc<Membership>) -> PeerService {
        PeerService { membership, faults: Arc::default(), distro: None, raft: None, metrics: Arc::default() }
    }

    /// The same service, counting refused senders in `metrics`.
    pub fn with_metrics(self, metrics: Arc<ClusterMetrics>) -> PeerService {
        PeerService { metrics, ..self }
    }

    /// The same service, refusing calls from members `faults` blocks.
    pub fn with_faults(self, faults: Arc<Faults>) -> PeerService {
        PeerService { faults, ..self }
    }

    /// The same service, answering Distro RPCs with `distro`.
    pub fn with_distro(self, distro: Arc<dyn DistroHandler>) -> PeerService {
        PeerService { distro: Some(distro), ..self }
    }

    /// Answers the Raft RPCs with `raft`.
    pub fn with_raft(mut self, raft: RaftRpc) -> PeerService {
        self.raft = Some(raft);
        self
    }

    /// The tonic server wrapping this service, ready for `add_service`.
    /// Raft messages (log batches, snapshot chunks) may exceed tonic's 4 MiB default.
    pub fn into_server(self) -> PeerServer<PeerService> {
        PeerServer::new(self)
            .max_decoding_message_size(crate::raft::network::MAX_RAFT_MESSAGE_BYTES)
            .max_encoding_message_size(crate::raft::network::MAX_RAFT_MESSAGE_BYTES)
    }

    fn raft(&self) -> Result<&RaftRpc, Status> {
        self.raft.as_ref().ok_or_else(|| later("Raft RPCs", "Raft"))
    }

    /// Refuses a call whose body names `from` as its sender when another
    /// member signed it, or when the fault switch cuts `from`.
    fn admit(&self, signer: Option<PeerIdentity>, from: &str) -> Result<(), Status> {
        if let Some(PeerIdentity(signer)) = signer {
            if signer != from {
                warn!(signer, claimed = from, "peer request naming another sender than its signer refused");
                self.metrics.peer_auth_failure(AuthFailure::WrongSender.label());
                return Err(Status::unauthenticated(AuthFailure::WrongSender.message()));
            }
        }
        if self.faults.is_blocked(from) {
            return Err(Status::unavailable(format!("peer traffic with {from} is cut by fault injection")));
        }
        Ok(())
    }

    fn distro(&self) -> Result<&Arc<dyn DistroHandler>, Status> {
        self.distro.as_ref().ok_or_else(|| later("Distro", "Distro"))
    }
}

fn later(rpc: &str, module: &str) -> Status {
    Status::unimplemented(format!("{rpc} arrives with {module}"))
}

#[tonic::async_trait]
impl Peer for PeerService {
    async fn report(&self, request: Request<MemberReport>) -> Result<Response<MemberReportReply>, Status> {
        let signer = request.extensions().get::<PeerIdentity>().cloned();
        let report = request.into_inner();
        self.admit(signer, &report.member)?;
        if !self.membership.receive_report(&report) {
            debug!(from = %report.member, "report from a node that is not in the member list");
        }
        Ok(Response::new(MemberReportReply { self_report: Some(self.membership.local_report()) }))
    }

    async fn distro_sync(&self, request: Request<DistroSyncRequest>) -> Result<Response<DistroAck>, Status> {
        let signer = request.extensions().get::<PeerIdentity>().cloned();
        let request = request.into_inner();
        self.admit(signer, &request.source)?;
        self.distro()?.sync(request).map(Response::new)
    }

    async fn distro_verify(
        &self,
        request: Request<DistroVerifyRequest>,
    ) -> Result<Response<DistroVerifyReply>, Status> {
        let signer = request.extensions().get::<PeerIdentity>().cloned();
        let request = request.into_inner();
        self.admit(signer, &request.source)?;
        self.distro()?.verify(request).map(Response::new)
    }

    type DistroSnapshotStream = SnapshotStream;

    async fn distro_snapshot(
        &self,
        request: Request<SnapshotRequest>,
    ) -> Result<Response<Self::DistroSnapshotStream>, Status> {
        let signer = request.extensions().get::<PeerIdentity>().cloned();
        let request = request.into_inner();
        self.admit(signer, &request.requester)?;
        self.distro()?.snapshot(request).map(Response::new)
    }

    async fn raft_append(&self, request: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        self.raft()?.append(request.into_inner()).await.map(Response::new)
    }

    async fn raft_vote(&self, request: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        self.raft()?.vote(request.into_inner()).await.map(Response::new)
    }

    async fn raft_snapshot(&self, request: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        self.raft()?.snapshot(request.into_inner()).await.map(Response::new)
    }

    async fn raft_forward(&self, request: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        self.raft()?.forward(request.into_inner()).await.map(Response::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::metrics::ClusterMetrics;

    #[tokio::test]
    async fn report_answers_with_the_local_report() {
        let membership = Arc::new(Membership::new("a:8848", false, 3, Arc::new(ClusterMetrics::new())));
        membership.apply_member_list(&["a:8848".to_string(), "b:8848".to_string()]);
        membership.set_raft_id(Some(11));
        let service = PeerService::new(membership.clone());
        let incoming =
            MemberReport { member: "b:8848".into(), version: "0.0.1".into(), distro_initialized: true, raft_id: 3 };
        let reply = service.report(Request::new(incoming)).await.expect("answer").into_inner();
        let own = reply.self_report.expect("report");
        assert_eq!((own.member.as_str(), own.raft_id), ("a:8848", 11));
        assert_eq!(membership.member("b:8848").and_then(|b| b.raft_id), Some(3));
        let status = service.raft_vote(Request::new(RaftMessage::default())).await.expect_err("unimplemented");
        assert_eq!(status.code(), tonic::Code::Unimplemented);
        assert!(status.message().contains("Raft"));

        // A blocked member is refused, as a cut network would.
        let faults = Arc::new(Faults::new(true));
        faults.set(crate::cluster::FaultSettings {
            blocked_members: ["b:8848".to_string()].into(),
            ..Default::default()
        });
        let cut = PeerService::new(membership).with_faults(faults);
        let incoming =
            MemberReport { member: "b:8848".into(), version: "0.0.1".into(), distro_initialized: true, raft_id: 3 };
        let status = cut.report(Request::new(incoming)).await.expect_err("blocked");
        assert_eq!(status.code(), tonic::Code::Unavailable);
    }
}
