//! `GET /roster/v1/console/service`: one service as the console shows it:
//! its settings and every instance held, disabled ones included, each with
//! the member responsible for it.
//!
//! Responsibility is what decides where a change to the instance is
//! applied first and who vouches for it:
//! - an ip:port client (registered over HTTP) belongs to the member
//!   Distro's hash of its `ip:port` names (the member HTTP writes for it
//!   are forwarded to);
//! - a gRPC client belongs to the member its connection is open on: this
//!   member for its own connections, otherwise the peer that says it holds
//!   it ([`super::peers::connection_holders`]); when no peer answers so,
//!   the member its data was last synced from is shown, marked as a guess;
//! - a persistent instance belongs to Raft: its leader commits every change.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use serde::Serialize;

use super::peers;
use crate::api::http::params::Params;
use crate::api::ClientState;
use crate::error::{Error, Result};
use crate::naming::store::{HeldInstance, Holder};
use crate::naming::{distro_tag, ClientKind, Origin};

/// Why a member is named responsible for an instance.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum Basis {
    /// A gRPC connection open on this member.
    ConnectedHere,
    /// A gRPC connection the named peer says it holds.
    ConnectedThere,
    /// A gRPC connection no peer claimed: the member its copy came from.
    LastSyncedFrom,
    /// An ip:port client: Distro's hash of its `ip:port`.
    DistroHash,
    /// A persistent instance: the Raft leader.
    RaftLeader,
    /// Nobody can be named (no Raft leader known, no member counts).
    Unknown,
}

/// One instance row.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InstanceRow {
    /// `ip#port#cluster#group@@service`.
    pub instance_id: String,
    /// The instance's IP.
    pub ip: String,
    /// Its port.
    pub port: u16,
    /// Its cluster.
    pub cluster_name: String,
    /// Current health.
    pub healthy: bool,
    /// Whether consumers get it.
    pub enabled: bool,
    /// Load-balancing weight.
    pub weight: f64,
    /// Ephemeral (Distro) or persistent (Raft).
    pub ephemeral: bool,
    /// Free-form metadata.
    pub metadata: BTreeMap<String, String>,
    /// The client publishing it (`null` for persistent instances).
    pub client_id: Option<String>,
    /// `connection`, `ipPort` or `persistent`.
    pub client_kind: &'static str,
    /// The member responsible for it, when one can be named.
    pub responsible: Option<String>,
    /// How `responsible` was found.
    pub basis: Basis,
}

/// The service's settings.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceSettings {
    /// Namespace id.
    pub namespace_id: String,
    /// Group.
    pub group_name: String,
    /// Bare service name.
    pub name: String,
    /// Protect threshold (0..1).
    pub protect_threshold: f32,
    /// Service metadata.
    pub metadata: BTreeMap<String, String>,
    /// Created explicitly (kept when its instances are gone).
    pub explicit: bool,
}

/// What `GET /roster/v1/console/service` answers.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceView {
    /// The member that answered.
    pub member: String,
    /// The Raft leader this member knows.
    pub leader: Option<String>,
    /// The service's settings.
    pub service: ServiceSettings,
    /// Every instance held, sorted by cluster, IP and port.
    pub instances: Vec<InstanceRow>,
}

/// Who is responsible for one held instance, given the connections peers
/// claimed (`claimed`: connection id → member) and the Raft leader.
pub(crate) fn responsible(
    state: &ClientState,
    held: &HeldInstance,
    claimed: &std::collections::HashMap<String, String>,
    leader: Option<&str>,
) -> (Option<String>, Basis) {
    match &held.holder {
        Holder::Raft => match leader {
            Some(l) => (Some(l.to_owned()), Basis::RaftLeader),
            None => (None, Basis::Unknown),
        },
        Holder::Client { id, kind: ClientKind::IpPort, .. } => {
            match state.membership.responsible_member(distro_tag(id)) {
                Some(m) => (Some(m), Basis::DistroHash),
                None => (None, Basis::Unknown),
            }
        }
        Holder::Client { id, kind: ClientKind::Connection, origin } => match (origin, claimed.get(id)) {
            (Origin::Local, _) => (Some(state.member.clone()), Basis::ConnectedHere),
            (_, Some(member)) => (Some(member.clone()), Basis::ConnectedThere),
            (Origin::Synced { source }, None) => (Some(source.clone()), Basis::LastSyncedFrom),
        },
    }
}

/// `GET /roster/v1/console/service` (`namespaceId`, `groupName`,
/// `serviceName`); 404 when the service does not exist.
pub async fn service(State(state): State<Arc<ClientState>>, p: Params) -> Result<Json<ServiceView>> {
    let key = p.service_key()?;
    let detail = state
        .store
        .service(&key)
        .ok_or_else(|| Error::NotFound(format!("service {} is not found!", key.grouped_name())))?;
    let held = state.store.held_instances(&key).unwrap_or_default();
    let remote: Vec<String> = held
        .iter()
        .filter_map(|h| match &h.holder {
            Holder::Client { id, kind: ClientKind::Connection, origin: Origin::Synced { .. } } => Some(id.clone()),
            _ => None,
        })
        .collect();
    let claimed = peers::connection_holders(&state, &remote).await;
    let leader = state.raft.status().leader;
    let instances = held
        .iter()
        .map(|h| {
            let (responsible, basis) = responsible(&state, h, &claimed, leader.as_deref());
            let (client_id, client_kind) = match &h.holder {
                Holder::Client { id, kind: ClientKind::Connection, .. } => (Some(id.clone()), "connection"),
                Holder::Client { id, kind: ClientKind::IpPort, .. } => (Some(id.clone()), "ipPort"),
                Holder::Raft => (None, "persistent"),
            };
            let i = &h.instance;
            InstanceRow {
                instance_id: i.instance_id(&key),
                ip: i.ip.clone(),
                port: i.port,
                cluster_name: i.cluster.clone(),
                healthy: i.healthy,
                enabled: i.enabled,
                weight: i.weight,
                ephemeral: i.ephemeral,
                metadata: i.metadata.clone(),
                client_id,
                client_kind,
                responsible,
                basis,
            }
        })
        .collect();
    Ok(Json(ServiceView {
        member: state.member.clone(),
        leader,
        service: ServiceSettings {
            namespace_id: key.namespace.clone(),
            group_name: key.group.clone(),
            name: key.name.clone(),
            protect_threshold: detail.meta.protect_threshold,
            metadata: detail.meta.metadata,
            explicit: detail.meta.explicit,
        },
        instances,
    }))
}
