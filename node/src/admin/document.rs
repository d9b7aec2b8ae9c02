//! The status document, `GET /roster/v1/status`: the contract the operator
//! and the e2e suite read (its shape is in `docs/ARCHITECTURE.md`).
//! `raft` is always present once the node serves; the field stays nullable
//! for readers written against the first releases.

use serde::Serialize;

use super::readiness::is_ready;
use super::AdminState;
use crate::distro::DistroStatus;

/// The roster version reported in status.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// One member in the status document.
#[derive(Debug, Serialize)]
pub struct MemberStatus {
    /// `host:mainPort`.
    pub address: String,
    /// `UP`, `SUSPICIOUS` or `DOWN`.
    pub state: &'static str,
}

/// Store sizes (a Roster extension of the contract).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StoreStatus {
    /// Services.
    pub services: usize,
    /// Instances, ephemeral and persistent.
    pub instances: usize,
    /// Clients (connections and ip:port clients).
    pub clients: usize,
    /// Open gRPC connections.
    pub connections: usize,
    /// Subscriptions.
    pub subscriptions: usize,
}

/// `GET /roster/v1/status`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeStatus {
    /// This member.
    pub member: String,
    /// Roster version.
    pub version: &'static str,
    /// Lookup mode.
    pub lookup: &'static str,
    /// Same as the readiness endpoint.
    pub ready: bool,
    /// Whether the node drains (SIGTERM, or it left the member list).
    pub draining: bool,
    /// Members and their states.
    pub members: Vec<MemberStatus>,
    /// Distro state.
    pub distro: Option<DistroStatus>,
    /// Raft state.
    pub raft: Option<crate::raft::RaftStatus>,
    /// Store sizes.
    pub store: StoreStatus,
    /// Seconds since start.
    pub uptime_seconds: u64,
}

/// Builds the status document.
pub fn status(state: &AdminState) -> NodeStatus {
    let counts = state.node.store.counts();
    NodeStatus {
        member: state.node.member.clone(),
        version: VERSION,
        lookup: state.node.lookup.as_str(),
        ready: is_ready(state),
        draining: state.node.membership.is_draining(),
        members: state
            .node
            .membership
            .members()
            .into_iter()
            .map(|m| MemberStatus { address: m.address, state: m.state.as_str() })
            .collect(),
        distro: Some(state.node.distro.status(counts)),
        raft: Some(state.node.raft.status()),
        store: StoreStatus {
            services: counts.services,
            instances: counts.instances,
            clients: counts.clients,
            connections: state.node.connections.count(),
            subscriptions: state.node.subscribers.count(),
        },
        uptime_seconds: state.started.elapsed().as_secs(),
    }
}
