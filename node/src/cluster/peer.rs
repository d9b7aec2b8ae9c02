//! Member reports, inbound: the `Peer` gRPC service on the peer port.
//!
//! `Report` records the sender's metadata (if it is a member) and answers
//! with this node's own report, which is what the sender's reporter uses to
//! mark us `UP`. The Raft RPCs are handed to [`crate::raft::RaftRpc`] when
//! the node runs Raft ([`PeerService::with_raft`]); the Distro RPCs answer
//! `UNIMPLEMENTED` until that module provides them.

use std::pin::Pin;
use std::sync::Arc;

use roster_proto::peer::peer_server::{Peer, PeerServer};
use roster_proto::peer::{
    DistroAck, DistroSyncRequest, DistroVerifyReply, DistroVerifyRequest, MemberReport, MemberReportReply, RaftMessage,
    SnapshotChunk, SnapshotRequest,
};
use tokio_stream::Stream;
use tonic::{Request, Response, Status};
use tracing::debug;

use super::membership::Membership;
use crate::raft::RaftRpc;

/// The stream of snapshot chunks answered by `DistroSnapshot`.
pub type SnapshotStream = Pin<Box<dyn Stream<Item = Result<SnapshotChunk, Status>> + Send>>;

/// The peer-port gRPC service (member reports for now).
#[derive(Debug, Clone)]
pub struct PeerService {
    membership: Arc<Membership>,
    raft: Option<RaftRpc>,
}

impl PeerService {
    /// A service answering for `membership`.
    pub fn new(membership: Arc<Membership>) -> PeerService {
        PeerService { membership, raft: None }
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
}

fn later(rpc: &str, module: &str) -> Status {
    Status::unimplemented(format!("{rpc} arrives with {module}"))
}

#[tonic::async_trait]
impl Peer for PeerService {
    async fn report(&self, request: Request<MemberReport>) -> Result<Response<MemberReportReply>, Status> {
        let report = request.into_inner();
        if !self.membership.receive_report(&report) {
            debug!(from = %report.member, "report from a node that is not in the member list");
        }
        Ok(Response::new(MemberReportReply { self_report: Some(self.membership.local_report()) }))
    }

    async fn distro_sync(&self, _request: Request<DistroSyncRequest>) -> Result<Response<DistroAck>, Status> {
        Err(later("DistroSync", "Distro"))
    }

    async fn distro_verify(
        &self,
        _request: Request<DistroVerifyRequest>,
    ) -> Result<Response<DistroVerifyReply>, Status> {
        Err(later("DistroVerify", "Distro"))
    }

    type DistroSnapshotStream = SnapshotStream;

    async fn distro_snapshot(
        &self,
        _request: Request<SnapshotRequest>,
    ) -> Result<Response<Self::DistroSnapshotStream>, Status> {
        Err(later("DistroSnapshot", "Distro"))
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
    }
}
