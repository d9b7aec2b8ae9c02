//! Raft messages over the peer gRPC service (`RaftAppend`, `RaftVote`,
//! `RaftSnapshot`, `RaftForward`), both ways.
//!
//! The peer protocol carries Raft messages as opaque bytes. Roster fills them
//! with JSON (the repository's one serialization format) wrapped in an
//! [`Addressed`] envelope naming the Raft id the sender means to reach: a
//! member answers only messages for its own id, so a message for an old id
//! never lands on a wiped member that came back under the same address with
//! a new id. Snapshot chunks carry their bytes raw after the JSON header
//! (JSON would turn every byte into up to four).
//!
//! Outbound, one [`PeerLink`] per target sends through the peer plane's
//! [`PeerTransport`]; inbound, [`RaftRpc`] (the peer plane's
//! [`RaftHandler`]) hands each message to the local [`Raft`] handle.

use std::sync::Arc;
use std::time::Duration;

use openraft::error::{
    ClientWriteError, InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Timeout, Unreachable,
};
use openraft::network::{RPCOption, RPCTypes, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest,
    VoteResponse,
};
use openraft::AnyError;
use roster_proto::peer::RaftMessage;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tonic::{Code, Status};

use super::command::{ApplyResult, Command};
use super::types::{Node, NodeId, Raft, TypeConfig};
use crate::peer::{PeerError, PeerTransport, RaftCall, RaftHandler};

/// A message for the Raft id `target`.
#[derive(Debug, Serialize, Deserialize)]
pub struct Addressed<T> {
    /// The Raft id the sender means to reach.
    pub target: NodeId,
    /// The message.
    pub body: T,
}

/// What `RaftForward` carries.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ForwardRequest {
    /// A client write for the leader to propose.
    Write(Command),
    /// Bootstrap probe: does the receiver have Raft state, and what member
    /// list does it see?
    Probe,
}

/// What a member answers to a probe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProbeReply {
    /// The receiver's Raft id.
    pub id: NodeId,
    /// Whether it has any Raft membership (it belongs to an initialised group).
    pub initialized: bool,
    /// Its current lookup list, sorted.
    pub members: Vec<String>,
}

/// What `RaftForward` answers.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ForwardReply {
    /// The write was committed and applied with this outcome.
    Applied(ApplyResult),
    /// The receiver is not the leader (it was when the sender asked); the
    /// write was not proposed.
    NotLeader,
    /// The probe's answer.
    Probe(ProbeReply),
    /// The write failed on the leader for another reason; its outcome is unknown.
    Failed(String),
}

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, Status> {
    serde_json::to_vec(value).map_err(|e| Status::internal(format!("cannot encode a Raft message: {e}")))
}

pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Status> {
    serde_json::from_slice(bytes).map_err(|e| Status::invalid_argument(format!("malformed Raft message: {e}")))
}

/// Splits a snapshot frame: 4-byte big-endian header length, JSON header, raw data.
pub(crate) fn split_frame(payload: &[u8]) -> Result<(&[u8], &[u8]), Status> {
    let bad = || Status::invalid_argument("malformed Raft snapshot frame");
    let len_bytes: [u8; 4] = payload.get(..4).and_then(|b| b.try_into().ok()).ok_or_else(bad)?;
    let len = usize::try_from(u32::from_be_bytes(len_bytes)).map_err(|_| bad())?;
    let end = 4usize.checked_add(len).ok_or_else(bad)?;
    let header = payload.get(4..end).ok_or_else(bad)?;
    let data = payload.get(end..).ok_or_else(bad)?;
    Ok((header, data))
}

fn frame(header: &[u8], data: &[u8]) -> Result<Vec<u8>, Status> {
    let len = u32::try_from(header.len()).map_err(|_| Status::internal("snapshot header too large"))?;
    let mut out = Vec::with_capacity(4 + header.len() + data.len());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(header);
    out.extend_from_slice(data);
    Ok(out)
}

/// The inbound side: answers Raft RPCs for the local Raft.
#[derive(Clone)]
pub struct RaftRpc {
    raft: Raft,
    id: NodeId,
    members: watch::Receiver<Vec<String>>,
}

impl std::fmt::Debug for RaftRpc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RaftRpc").field("id", &self.id).finish()
    }
}

impl RaftRpc {
    /// Answers for `raft`, whose id is `id`; `members` is the lookup list
    /// (reported by probes).
    pub fn new(raft: Raft, id: NodeId, members: watch::Receiver<Vec<String>>) -> RaftRpc {
        RaftRpc { raft, id, members }
    }

    fn open<T: DeserializeOwned>(&self, payload: &[u8]) -> Result<T, Status> {
        let msg: Addressed<T> = decode(payload)?;
        self.check_target(msg.target)?;
        Ok(msg.body)
    }

    fn check_target(&self, target: NodeId) -> Result<(), Status> {
        if target != self.id {
            return Err(Status::failed_precondition(format!("this member is Raft id {}, not {target}", self.id)));
        }
        Ok(())
    }

    /// `RaftAppend`.
    pub async fn append(&self, msg: RaftMessage) -> Result<RaftMessage, Status> {
        let req: AppendEntriesRequest<TypeConfig> = self.open(&msg.payload)?;
        let result = self.raft.append_entries(req).await;
        Ok(RaftMessage { payload: encode(&result)? })
    }

    /// `RaftVote`.
    pub async fn vote(&self, msg: RaftMessage) -> Result<RaftMessage, Status> {
        let req: VoteRequest<NodeId> = self.open(&msg.payload)?;
        let result = self.raft.vote(req).await;
        Ok(RaftMessage { payload: encode(&result)? })
    }

    /// `RaftSnapshot`: one chunk of a snapshot.
    pub async fn snapshot(&self, msg: RaftMessage) -> Result<RaftMessage, Status> {
        let (header, data) = split_frame(&msg.payload)?;
        let mut req: InstallSnapshotRequest<TypeConfig> = self.open(header)?;
        req.data = data.to_vec();
        let result = self.raft.install_snapshot(req).await;
        Ok(RaftMessage { payload: encode(&result)? })
    }

    /// `RaftForward`: a write from a follower, or a bootstrap probe.
    pub async fn forward(&self, msg: RaftMessage) -> Result<RaftMessage, Status> {
        let req: ForwardRequest = self.open(&msg.payload)?;
        let reply = match req {
            ForwardRequest::Probe => {
                let initialized = self.raft.is_initialized().await.map_err(|e| Status::unavailable(e.to_string()))?;
                let mut members = self.members.borrow().clone();
                members.sort();
                ForwardReply::Probe(ProbeReply { id: self.id, initialized, members })
            }
            ForwardRequest::Write(command) => match self.raft.client_write(command).await {
                Ok(resp) => ForwardReply::Applied(resp.data),
                Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_))) => ForwardReply::NotLeader,
                Err(e) => ForwardReply::Failed(e.to_string()),
            },
        };
        Ok(RaftMessage { payload: encode(&reply)? })
    }
}

#[tonic::async_trait]
impl RaftHandler for RaftRpc {
    async fn handle(&self, call: RaftCall, message: RaftMessage) -> Result<RaftMessage, Status> {
        match call {
            RaftCall::Append => self.append(message).await,
            RaftCall::Vote => self.vote(message).await,
            RaftCall::Snapshot => self.snapshot(message).await,
            RaftCall::Forward => self.forward(message).await,
        }
    }
}

/// Creates a [`PeerLink`] per target for openraft.
#[derive(Debug, Clone)]
pub struct Network {
    /// This member's Raft id (for timeout errors).
    pub id: NodeId,
    /// The peer plane's transport.
    pub transport: Arc<dyn PeerTransport>,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = PeerLink;

    async fn new_client(&mut self, target: NodeId, node: &Node) -> Self::Network {
        PeerLink { id: self.id, target, address: node.addr.clone(), transport: self.transport.clone() }
    }
}

/// How a call failed before a Raft-level answer came back.
#[derive(Debug)]
pub enum CallError {
    /// No answer in time; the message may have been received.
    Timeout(Duration),
    /// The member could not be reached (or is not the intended Raft id); the
    /// message was not processed.
    Unreachable(String),
    /// Anything else (the message may have been received).
    Other(String),
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Timeout(d) => write!(f, "no answer within {d:?}"),
            CallError::Unreachable(m) => write!(f, "unreachable: {m}"),
            CallError::Other(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for CallError {}

/// Sends one opaque Raft message to `address` and returns the answer's bytes.
async fn call(
    transport: &dyn PeerTransport,
    address: &str,
    rpc: RaftCall,
    payload: Vec<u8>,
    ttl: Duration,
) -> Result<Vec<u8>, CallError> {
    match transport.raft(address, rpc, RaftMessage { payload }, ttl).await {
        Ok(answer) => Ok(answer.payload),
        Err(PeerError::Timeout) => Err(CallError::Timeout(ttl)),
        Err(PeerError::Unreachable(_)) => Err(CallError::Unreachable(format!("{address} has no peer endpoint"))),
        Err(PeerError::Status(status)) => match status.code() {
            Code::Unavailable | Code::FailedPrecondition | Code::Unimplemented => {
                Err(CallError::Unreachable(format!("{address}: {}", status.message())))
            }
            _ => Err(CallError::Other(format!("{address}: {status}"))),
        },
    }
}

/// Sends `body` addressed to `target` through `RaftForward`.
pub async fn forward(
    transport: &dyn PeerTransport,
    target: NodeId,
    address: &str,
    body: ForwardRequest,
    ttl: Duration,
) -> Result<ForwardReply, CallError> {
    let payload = serde_json::to_vec(&Addressed { target, body }).map_err(|e| CallError::Other(e.to_string()))?;
    let bytes = call(transport, address, RaftCall::Forward, payload, ttl).await?;
    serde_json::from_slice(&bytes).map_err(|e| CallError::Other(format!("malformed forward reply: {e}")))
}

/// The outbound connection to one Raft target.
#[derive(Debug)]
pub struct PeerLink {
    id: NodeId,
    target: NodeId,
    address: String,
    transport: Arc<dyn PeerTransport>,
}

type RpcResult<T, E = openraft::error::Infallible> = Result<T, RPCError<NodeId, Node, RaftError<NodeId, E>>>;

impl PeerLink {
    async fn send<Resp, E>(
        &self,
        rpc: RaftCall,
        action: RPCTypes,
        payload: Vec<u8>,
        ttl: Duration,
    ) -> RpcResult<Resp, E>
    where
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let bytes = match call(self.transport.as_ref(), &self.address, rpc, payload, ttl).await {
            Ok(b) => b,
            Err(CallError::Timeout(timeout)) => {
                return Err(RPCError::Timeout(Timeout { action, id: self.id, target: self.target, timeout }))
            }
            Err(e @ CallError::Unreachable(_)) => return Err(RPCError::Unreachable(Unreachable::new(&e))),
            Err(e @ CallError::Other(_)) => return Err(RPCError::Network(NetworkError::new(&e))),
        };
        let result: Result<Resp, RaftError<NodeId, E>> =
            serde_json::from_slice(&bytes).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        result.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }

    fn addressed<T: Serialize>(&self, body: &T) -> Result<Vec<u8>, NetworkError> {
        serde_json::to_vec(&Addressed { target: self.target, body }).map_err(|e| NetworkError::new(&e))
    }
}

impl RaftNetwork<TypeConfig> for PeerLink {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<NodeId>> {
        let payload = self.addressed(&rpc)?;
        self.send(RaftCall::Append, RPCTypes::AppendEntries, payload, option.hard_ttl()).await
    }

    async fn install_snapshot(
        &mut self,
        mut rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<NodeId>, InstallSnapshotError> {
        let data = std::mem::take(&mut rpc.data);
        let header = self.addressed(&rpc)?;
        let payload =
            frame(&header, &data).map_err(|s| RPCError::Network(NetworkError::new(&AnyError::error(s.message()))))?;
        self.send(RaftCall::Snapshot, RPCTypes::InstallSnapshot, payload, option.hard_ttl()).await
    }

    async fn vote(&mut self, rpc: VoteRequest<NodeId>, option: RPCOption) -> RpcResult<VoteResponse<NodeId>> {
        let payload = self.addressed(&rpc)?;
        self.send(RaftCall::Vote, RPCTypes::Vote, payload, option.hard_ttl()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_frames_round_trip_and_refuse_garbage() {
        let f = frame(b"{\"a\":1}", &[0, 1, 2, 255]).expect("frame");
        let (h, d) = split_frame(&f).expect("split");
        assert_eq!((h, d), (&b"{\"a\":1}"[..], &[0u8, 1, 2, 255][..]));
        assert!(split_frame(&[0, 0]).is_err());
        assert!(split_frame(&[0, 0, 0, 9, b'{']).is_err());
        assert!(split_frame(&[255, 255, 255, 255]).is_err());
    }

    #[test]
    fn forward_messages_round_trip() {
        let reply = ForwardReply::Probe(ProbeReply { id: 7, initialized: false, members: vec!["a:1".into()] });
        let json = serde_json::to_vec(&reply).expect("json");
        assert!(matches!(serde_json::from_slice::<ForwardReply>(&json), Ok(ForwardReply::Probe(p)) if p.id == 7));
        assert!(decode::<Addressed<ForwardRequest>>(b"{\"target\":1}").is_err());
        assert!(decode::<Addressed<ForwardRequest>>(b"not json").is_err());
    }
}
