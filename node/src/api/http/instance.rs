//! `/nacos/v1/ns/instance` (register, deregister, update, detail) and
//! `/nacos/v1/ns/instance/list`.
//!
//! Ephemeral instances registered over HTTP belong to the *ip:port client*
//! `ip:port#true` of the instance's own address, as in Nacos 2: beats keep
//! that client alive and beat expiry removes it. Persistent instances
//! (`ephemeral=false`) belong to no client and stay until deregistered; they
//! are written through Raft.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderValue, Response};
use axum::response::IntoResponse;
use axum::Json;
use serde::Serialize;

use super::forward::{self, Inbound};
use super::params::{Params, CLUSTER_NAMES};
use crate::api::ClientState;
use crate::error::{Error, Result};
use crate::naming::overlay::{self, InstanceOverride};
use crate::naming::store::now_millis;
use crate::naming::validate::Limits;
use crate::naming::{
    ip_port_client_id, validate, ClientKind, Form, Instance, InstanceKey, InstanceWire, Selection, ServiceKey,
};
use crate::raft::Command;

/// Builds a new instance from register parameters, with Nacos's defaults
/// (weight 1, healthy, enabled, ephemeral, cluster `DEFAULT`).
pub(crate) fn new_instance(p: &Params, limits: &Limits) -> Result<Instance> {
    let wire = InstanceWire {
        ip: p.required("ip")?.to_owned(),
        port: i64::from(p.port()?),
        weight: p.weight()?.unwrap_or(1.0),
        healthy: p.bool("healthy")?.unwrap_or(true),
        enabled: p.bool_any(&["enabled", "enable"])?.unwrap_or(true),
        ephemeral: p.bool("ephemeral")?.unwrap_or(true),
        cluster_name: p.get_any(CLUSTER_NAMES).map(str::to_owned),
        metadata: p.metadata()?.unwrap_or_default(),
        ..InstanceWire::default()
    };
    validate::instance(&wire, None, limits)
}

/// `POST /nacos/v1/ns/instance`: registers (or replaces) an instance.
pub async fn register(State(state): State<Arc<ClientState>>, inbound: Inbound, p: Params) -> Result<Response<Body>> {
    let key = p.service_key()?;
    let instance = new_instance(&p, &state.limits)?;
    if instance.ephemeral {
        if let Some(answer) = forward::to_responsible(&state, &inbound, &p, &instance.ip, instance.port).await {
            return Ok(answer);
        }
        let client = ip_port_client_id(&instance.ip, instance.port);
        state.store.register_ephemeral(&client, ClientKind::IpPort, &key, instance);
    } else {
        state.raft.write(Command::RegisterInstance { service: key, instance }).await?;
    }
    Ok("ok".into_response())
}

/// `DELETE /nacos/v1/ns/instance`: removes an instance. Removing one that
/// does not exist is not an error, as in Nacos.
pub async fn deregister(State(state): State<Arc<ClientState>>, inbound: Inbound, p: Params) -> Result<Response<Body>> {
    let key = p.service_key()?;
    let ikey = p.instance_key()?;
    if p.bool("ephemeral")?.unwrap_or(true) {
        if let Some(answer) = forward::to_responsible(&state, &inbound, &p, &ikey.ip, ikey.port).await {
            return Ok(answer);
        }
        let client = ip_port_client_id(&ikey.ip, ikey.port);
        // A member that has not loaded its snapshot may not hold the
        // instance yet: the removal is recorded all the same, so the
        // snapshot's older copy of it does not bring it back.
        let blind = !state.membership.is_loaded();
        state.store.deregister_ephemeral(&client, &key, &ikey, blind);
    } else {
        state.raft.write(Command::DeregisterInstance { service: key, instance: ikey }).await?;
    }
    Ok("ok".into_response())
}

/// `PUT` and `PATCH /nacos/v1/ns/instance`: changes the weight, enabled
/// flag, health or metadata of an existing instance.
///
/// Parameters that are absent keep their current value (an empty `metadata`
/// clears it). Nacos's PUT resets absent ones to defaults, but its clients
/// always send all of them, so keeping is compatible and never loses data.
///
/// For an ephemeral instance, weight, enabled and metadata become its
/// override ([`crate::naming::overlay`], written through Raft), so the edit
/// outlives the client registering again and every member shows it; its
/// health stays the client's to report, and a given `healthy` changes the
/// published instance until the client's next beat or registration.
pub async fn update(State(state): State<Arc<ClientState>>, inbound: Inbound, p: Params) -> Result<Response<Body>> {
    let key = p.service_key()?;
    let ikey = p.instance_key()?;
    let weight = p.weight()?;
    let healthy = p.bool("healthy")?;
    let enabled = p.bool_any(&["enabled", "enable"])?;
    let metadata = p.metadata()?;
    if let Some(m) = &metadata {
        validate::metadata(m, &state.limits)?;
    }
    // Which store holds the instance is found by key; the flag only says
    // whether an instance not held here may be an ephemeral one elsewhere.
    let ephemeral_flag = p.bool("ephemeral")?;
    let held = state.store.instance(&key, &ikey);
    let ephemeral = held.as_ref().map_or(ephemeral_flag != Some(false), |i| i.ephemeral);
    if ephemeral {
        if let Some(answer) = forward::to_responsible(&state, &inbound, &p, &ikey.ip, ikey.port).await {
            return Ok(answer);
        }
    }
    let current =
        held.ok_or_else(|| Error::NotFound(format!("instance not found: {ikey} in service {}", key.grouped_name())))?;
    if !current.ephemeral {
        // Persistent: only the given fields travel, merged when applied.
        let command = Command::UpdateInstance { service: key, instance: ikey, weight, healthy, enabled, metadata };
        state.raft.write(command).await?;
        return Ok("ok".into_response());
    }
    let edit = InstanceOverride {
        weight,
        enabled,
        metadata: metadata.map(|m| overlay::replacing(&current.metadata, &m)).unwrap_or_default(),
    };
    override_instance(&state, &key, &ikey, edit).await?;
    if let Some(healthy) = healthy {
        if let Some(published) = state.store.published_instance(&key, &ikey) {
            state.store.update_instance(&key, &Instance { healthy, ..published })?;
        }
    }
    Ok("ok".into_response())
}

/// Merges `edit` into the override of the ephemeral instance `ikey` of
/// `key` through Raft (nothing to write for an empty edit). The override
/// may hold at most twice the metadata limit: what it shows and what it
/// hides of the published metadata.
pub(crate) async fn override_instance(
    state: &ClientState,
    key: &ServiceKey,
    ikey: &InstanceKey,
    edit: InstanceOverride,
) -> Result<()> {
    if edit.is_empty() {
        return Ok(());
    }
    let mut merged = state.store.instance_override(key, ikey).unwrap_or_default();
    merged.merge(&edit);
    let limit = state.limits.max_metadata_bytes.saturating_mul(2);
    if merged.metadata_bytes() > limit {
        return Err(Error::invalid(format!(
            "Param 'metadata' is too large: the instance's metadata edits would hold {} bytes (limit {limit} bytes).",
            merged.metadata_bytes()
        )));
    }
    let command = Command::OverrideInstance { service: key.clone(), instance: ikey.clone(), edit };
    state.raft.write(command).await
}

/// What `GET /nacos/v1/ns/instance` answers (Nacos's `detail`).
#[derive(Debug, Serialize)]
pub struct InstanceDetail {
    /// `group@@service`.
    pub service: String,
    /// The instance.
    #[serde(flatten)]
    pub instance: DetailFields,
}

/// One instance as both detail reads (v1 and v2) answer it, after the
/// service's name.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DetailFields {
    /// The instance's IP or host.
    pub ip: String,
    /// The instance's port.
    pub port: u16,
    /// Its cluster.
    pub cluster_name: String,
    /// Load-balancing weight.
    pub weight: f64,
    /// Current health.
    pub healthy: bool,
    /// `ip#port#cluster#group@@service`.
    pub instance_id: String,
    /// Free-form metadata.
    pub metadata: BTreeMap<String, String>,
}

impl DetailFields {
    /// The fields of `instance`, of the service `key`.
    pub fn of(instance: Instance, key: &ServiceKey) -> DetailFields {
        DetailFields {
            instance_id: instance.instance_id(key),
            ip: instance.ip,
            port: instance.port,
            cluster_name: instance.cluster,
            weight: instance.weight,
            healthy: instance.healthy,
            metadata: instance.metadata,
        }
    }
}

/// `GET /nacos/v1/ns/instance`: one instance, 404 if absent.
pub async fn detail(State(state): State<Arc<ClientState>>, p: Params) -> Result<Json<InstanceDetail>> {
    let key = p.service_key()?;
    let ikey = p.instance_key()?;
    let instance = state
        .store
        .instance(&key, &ikey)
        .ok_or_else(|| Error::NotFound(format!("no matched ip found: {ikey} in service {}", key.grouped_name())))?;
    Ok(Json(InstanceDetail { service: key.grouped_name(), instance: DetailFields::of(instance, &key) }))
}

/// `GET /nacos/v1/ns/instance/list`: the consumer view of a service, named
/// `group@@service` as v1 clients expect. A `udpPort` subscribes the caller
/// to UDP pushes ([`crate::push_udp`]); `clientIP` is accepted and not used.
pub async fn list(
    State(state): State<Arc<ClientState>>,
    caller: super::udp_subscribe::ListCaller,
    p: Params,
) -> Result<Response<Body>> {
    let key = p.service_key()?;
    let clusters = p
        .get("clusters")
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(|c| validate::cluster(Some(c)).map_err(|e| Error::invalid(format!("Param 'clusters': {e}"))))
        .collect::<Result<Vec<_>>>()?;
    let healthy_only = p.bool("healthyOnly")?.unwrap_or(false);
    let udp_port = super::udp_subscribe::udp_port(&p, "udpPort")?;
    super::udp_subscribe::subscribe(&state, &caller, &key, udp_port, &clusters, &p);
    let selection = Selection { clusters, healthy_only, grouped_name: true };
    // The encoded view, as `Json(ServiceInfo)` would write it.
    let view = state.store.answer(&key, &selection, Form::Fields);
    let body = view.to_bytes(now_millis());
    Ok(([(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], body).into_response())
}
