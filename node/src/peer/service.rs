//! The `Peer` gRPC service on the peer port, inbound.
//!
//! Each RPC is handed to its protocol's handler ([`super::handlers`]):
//! `Report` to the [`MemberHandler`] (membership records the sender's
//! metadata and answers with this node's report), the Distro RPCs to the
//! [`DistroHandler`], the Raft RPCs to the [`RaftHandler`]; a protocol not
//! plugged in answers `UNIMPLEMENTED`. Reports and Distro calls from a
//! member the fault switch blocks are refused with `UNAVAILABLE`, as a cut
//! network would (Raft messages carry no sender; the switch cuts them on
//! the sending side).
//!
//! On a node the peer port wraps this service in
//! [`crate::security::Authenticated`], so only signed calls reach it; a
//! report or Distro call whose body names another sender than the member
//! that signed it is refused with `UNAUTHENTICATED`.

use std::sync::Arc;

use roster_proto::peer::peer_server::{Peer, PeerServer};
use roster_proto::peer::{
    DistroAck, DistroSyncRequest, DistroVerifyReply, DistroVerifyRequest, MemberReport, MemberReportReply, RaftMessage,
    SnapshotRequest,
};
use tonic::{Request, Response, Status};
use tracing::warn;

use super::faults::Faults;
use super::handlers::{DistroHandler, MemberHandler, RaftCall, RaftHandler, SnapshotStream};
use super::DEFAULT_MESSAGE_BYTES;
use crate::security::{AuthFailure, PeerIdentity, SecurityMetrics};

/// The peer-port gRPC service.
#[derive(Debug, Clone)]
pub struct PeerService {
    members: Arc<dyn MemberHandler>,
    distro: Option<Arc<dyn DistroHandler>>,
    raft: Option<Arc<dyn RaftHandler>>,
    faults: Arc<Faults>,
    metrics: Arc<SecurityMetrics>,
}

impl PeerService {
    /// A service answering reports with `members` (Distro and Raft RPCs
    /// answer `UNIMPLEMENTED` until plugged in).
    pub fn new(members: Arc<dyn MemberHandler>) -> PeerService {
        PeerService { members, distro: None, raft: None, faults: Arc::default(), metrics: Arc::default() }
    }

    /// The same service, counting refused senders in `metrics`.
    pub fn with_metrics(self, metrics: Arc<SecurityMetrics>) -> PeerService {
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

    /// The same service, answering Raft RPCs with `raft`.
    pub fn with_raft(self, raft: Arc<dyn RaftHandler>) -> PeerService {
        PeerService { raft: Some(raft), ..self }
    }

    /// The tonic server wrapping this service, ready for `add_service`, with
    /// the default peer message limit both ways.
    pub fn into_server(self) -> PeerServer<PeerService> {
        self.into_limited_server(DEFAULT_MESSAGE_BYTES)
    }

    /// The tonic server with messages both ways bounded by
    /// `max_message_bytes` (`--max-peer-message-bytes`).
    pub fn into_limited_server(self, max_message_bytes: usize) -> PeerServer<PeerService> {
        PeerServer::new(self).max_decoding_message_size(max_message_bytes).max_encoding_message_size(max_message_bytes)
    }

    /// Refuses a call whose body names `from` as its sender when another
    /// member signed it, or when the fault switch cuts `from`.
    fn admit(&self, signer: Option<PeerIdentity>, from: &str) -> Result<(), Status> {
        if let Some(PeerIdentity(signer)) = signer {
            if signer != from {
                warn!(signer, claimed = from, "peer request naming another sender than its signer refused");
                self.metrics.peer_auth_failure(AuthFailure::WrongSender);
                return Err(Status::unauthenticated(AuthFailure::WrongSender.message()));
            }
        }
        if self.faults.is_blocked(from) {
            return Err(Status::unavailable(format!("peer traffic with {from} is cut by fault injection")));
        }
        Ok(())
    }

    fn distro(&self) -> Result<&Arc<dyn DistroHandler>, Status> {
        self.distro.as_ref().ok_or_else(|| not_served("Distro"))
    }

    async fn raft(&self, call: RaftCall, request: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        let raft = self.raft.as_ref().ok_or_else(|| not_served("Raft"))?;
        raft.handle(call, request.into_inner()).await.map(Response::new)
    }
}

fn not_served(protocol: &str) -> Status {
    Status::unimplemented(format!("this member does not serve {protocol} on its peer port"))
}

fn signer<T>(request: &Request<T>) -> Option<PeerIdentity> {
    request.extensions().get::<PeerIdentity>().cloned()
}

#[tonic::async_trait]
impl Peer for PeerService {
    async fn report(&self, request: Request<MemberReport>) -> Result<Response<MemberReportReply>, Status> {
        let signer = signer(&request);
        let report = request.into_inner();
        self.admit(signer, &report.member)?;
        Ok(Response::new(MemberReportReply { self_report: Some(self.members.report(report)) }))
    }

    async fn distro_sync(&self, request: Request<DistroSyncRequest>) -> Result<Response<DistroAck>, Status> {
        let signer = signer(&request);
        let request = request.into_inner();
        self.admit(signer, &request.source)?;
        self.distro()?.sync(request).map(Response::new)
    }

    async fn distro_verify(
        &self,
        request: Request<DistroVerifyRequest>,
    ) -> Result<Response<DistroVerifyReply>, Status> {
        let signer = signer(&request);
        let request = request.into_inner();
        self.admit(signer, &request.source)?;
        self.distro()?.verify(request).map(Response::new)
    }

    type DistroSnapshotStream = SnapshotStream;

    async fn distro_snapshot(
        &self,
        request: Request<SnapshotRequest>,
    ) -> Result<Response<Self::DistroSnapshotStream>, Status> {
        let signer = signer(&request);
        let request = request.into_inner();
        self.admit(signer, &request.requester)?;
        self.distro()?.snapshot(request).map(Response::new)
    }

    async fn raft_append(&self, request: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        self.raft(RaftCall::Append, request).await
    }

    async fn raft_vote(&self, request: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        self.raft(RaftCall::Vote, request).await
    }

    async fn raft_snapshot(&self, request: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        self.raft(RaftCall::Snapshot, request).await
    }

    async fn raft_forward(&self, request: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        self.raft(RaftCall::Forward, request).await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::peer::FaultSettings;

    /// Answers as `a:8848` and remembers the reports it got.
    #[derive(Debug, Default)]
    struct Recorder(Mutex<Vec<MemberReport>>);

    impl MemberHandler for Recorder {
        fn report(&self, from: MemberReport) -> MemberReport {
            if let Ok(mut got) = self.0.lock() {
                got.push(from);
            }
            MemberReport { member: "a:8848".into(), version: "1".into(), raft_id: 11, ..Default::default() }
        }
    }

    fn report_from(member: &str) -> MemberReport {
        MemberReport {
            member: member.into(),
            version: "0.0.1".into(),
            distro_initialized: true,
            raft_id: 3,
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn reports_reach_the_member_handler_and_unplugged_protocols_say_so() {
        let recorder = Arc::new(Recorder::default());
        let service = PeerService::new(recorder.clone());
        let reply = service.report(Request::new(report_from("b:8848"))).await.expect("answer").into_inner();
        let own = reply.self_report.expect("report");
        assert_eq!((own.member.as_str(), own.raft_id), ("a:8848", 11));
        assert_eq!(recorder.0.lock().map(|g| g.len()).unwrap_or(0), 1);
        let status = service.raft_vote(Request::new(RaftMessage::default())).await.expect_err("unimplemented");
        assert_eq!(status.code(), tonic::Code::Unimplemented);
        assert!(status.message().contains("Raft"), "{}", status.message());
        let status = service.distro_sync(Request::new(DistroSyncRequest::default())).await.expect_err("unimplemented");
        assert_eq!(status.code(), tonic::Code::Unimplemented);
    }

    #[tokio::test]
    async fn a_blocked_or_impersonating_sender_is_refused() {
        let faults = Arc::new(Faults::new(true));
        faults.set(FaultSettings { blocked_members: ["b:8848".to_string()].into(), ..Default::default() });
        let recorder = Arc::new(Recorder::default());
        let metrics = Arc::new(SecurityMetrics::default());
        let cut = PeerService::new(recorder.clone()).with_faults(faults).with_metrics(metrics.clone());
        let status = cut.report(Request::new(report_from("b:8848"))).await.expect_err("blocked");
        assert_eq!(status.code(), tonic::Code::Unavailable);

        let mut forged = Request::new(report_from("c:8848"));
        forged.extensions_mut().insert(PeerIdentity("d:8848".into()));
        let status = cut.report(forged).await.expect_err("another signer");
        assert_eq!(status.code(), tonic::Code::Unauthenticated);
        assert_eq!(metrics.peer_auth_failure_count(AuthFailure::WrongSender), 1);
        assert_eq!(recorder.0.lock().map(|g| g.len()).unwrap_or(1), 0, "nothing reached the handler");
    }
}
