//! `PUT /nacos/v2/ns/health/instance` (and `/nacos/v2/ns/health`): sets
//! the health of an instance the server does not check (Nacos 2's
//! `HealthControllerV2`).
//!
//! Nacos allows it only for persistent instances in a cluster whose
//! health checker is `NONE`; for any other instance it answers 400 with
//! code 30000, "health check is still working". Roster has no cluster
//! settings: the checker is chosen per instance by its
//! `preserved.health.checker` metadata ([`crate::raft::health`]), so the
//! route sets the health of a persistent instance with checker `NONE`
//! (through Raft) and refuses the others the way Nacos does. Ephemeral
//! instances take their health from beats and connections. An instance
//! that does not exist is 404 (Nacos answers `ok` and changes nothing).

use std::sync::Arc;

use axum::extract::State;

use super::super::params::Params;
use super::answer::{answer, NamingCode, V2Answer, V2Failure};
use crate::api::ClientState;
use crate::error::Error;
use crate::raft::health::{check_for, Check};
use crate::raft::Command;

/// `PUT /nacos/v2/ns/health/instance`: `healthy`, `serviceName`, `ip` and
/// `port` are required (`namespaceId`, `groupName`, `clusterName` default).
pub async fn update(State(state): State<Arc<ClientState>>, p: Params) -> V2Answer {
    for (name, kind) in [("healthy", "Boolean"), ("serviceName", "String"), ("ip", "String"), ("port", "Integer")] {
        if p.get(name).is_none() {
            return Err(V2Failure::missing(name, kind));
        }
    }
    let healthy = p.bool("healthy")?.ok_or_else(|| V2Failure::missing("healthy", "Boolean"))?;
    let key = p.service_key()?;
    let ikey = p.instance_key()?;
    let instance = state
        .store
        .instance(&key, &ikey)
        .ok_or_else(|| Error::NotFound(format!("instance not found: {ikey} in service {}", key.grouped_name())))?;
    if instance.ephemeral || check_for(&instance) != Check::None {
        return Err(V2Failure::naming(
            NamingCode::ServerErrorInvalid,
            format!("health check is still working, service: {}, cluster: {}", key.grouped_name(), ikey.cluster),
        ));
    }
    let command = Command::UpdateInstance {
        service: key,
        instance: ikey,
        weight: None,
        healthy: Some(healthy),
        enabled: None,
        metadata: None,
    };
    state.raft.write(command).await?;
    answer("ok")
}
