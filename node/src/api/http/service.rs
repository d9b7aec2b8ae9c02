//! `/nacos/v1/ns/service` (create, update, delete, detail) and
//! `/nacos/v1/ns/service/list`.
//!
//! A service exists implicitly while it has instances; creating it
//! explicitly keeps it (and its settings) when the instances are gone.
//! Service settings are written through Raft; reads are local.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use serde::Serialize;
use serde_json::{json, Value};

use super::params::Params;
use crate::api::ClientState;
use crate::error::{Error, Result};
use crate::naming::model::DEFAULT_GROUP;
use crate::naming::{validate, ServiceMeta};
use crate::raft::Command;

/// Largest page `GET /nacos/v1/ns/service/list` serves.
pub const MAX_PAGE_SIZE: i64 = 10_000;

/// Selector types Nacos defines; `label` is stored but not evaluated.
const SELECTOR_TYPES: &[&str] = &["none", "label"];

/// `protectThreshold`, if given: a number in 0..=1.
pub(crate) fn protect_threshold(p: &Params) -> Result<Option<f32>> {
    match p.float("protectThreshold")? {
        None => Ok(None),
        Some(t) if t.is_finite() && (0.0..=1.0).contains(&t) => Ok(Some(t as f32)),
        Some(t) => Err(Error::invalid(format!("Param 'protectThreshold' is out of range: {t} (must be 0..1)."))),
    }
}

/// `selector`, if given: a JSON object whose `type` Nacos knows.
pub(crate) fn selector(p: &Params) -> Result<Option<Value>> {
    let Some(raw) = p.get("selector") else {
        return Ok(None);
    };
    let value: Value =
        serde_json::from_str(raw).map_err(|e| Error::invalid(format!("Param 'selector' is not valid JSON: {e}")))?;
    match value.get("type").and_then(Value::as_str) {
        Some(t) if SELECTOR_TYPES.contains(&t) => Ok(Some(value)),
        Some(t) => Err(Error::invalid(format!("Param 'selector' has an unknown type '{t}' (known: none, label)."))),
        None => Err(Error::invalid("Param 'selector' must be a JSON object with a string 'type'.")),
    }
}

/// Service metadata, if given, checked against the size limit.
pub(crate) fn metadata(
    p: &Params,
    limits: &crate::naming::validate::Limits,
) -> Result<Option<BTreeMap<String, String>>> {
    let metadata = p.metadata()?;
    if let Some(m) = &metadata {
        validate::metadata(m, limits)?;
    }
    Ok(metadata)
}

/// `POST /nacos/v1/ns/service`: creates a service; 400 if it exists.
pub async fn create(State(state): State<Arc<ClientState>>, p: Params) -> Result<&'static str> {
    let key = p.service_key()?;
    let defaults = ServiceMeta::default();
    let meta = ServiceMeta {
        protect_threshold: protect_threshold(&p)?.unwrap_or(defaults.protect_threshold),
        metadata: metadata(&p, &state.limits)?.unwrap_or_default(),
        selector: selector(&p)?.unwrap_or(defaults.selector),
        explicit: true,
    };
    state.raft.write(Command::CreateService { service: key, meta }).await?;
    Ok("ok")
}

/// `PUT /nacos/v1/ns/service`: changes a service's settings; 404 if absent.
/// Absent parameters keep their current value (an empty `metadata` clears it).
pub async fn update(State(state): State<Arc<ClientState>>, p: Params) -> Result<&'static str> {
    let key = p.service_key()?;
    let threshold = protect_threshold(&p)?;
    let metadata = metadata(&p, &state.limits)?;
    let selector = selector(&p)?;
    // The service may exist only through ephemeral instances, which Raft
    // does not see: existence is checked here, the merge happens when applied.
    if state.store.service(&key).is_none() {
        return Err(Error::NotFound(format!("service {} not found!", key.grouped_name())));
    }
    let command = Command::UpdateService { service: key, protect_threshold: threshold, metadata, selector };
    state.raft.write(command).await?;
    Ok("ok")
}

/// `DELETE /nacos/v1/ns/service`: 404 if absent, 400 while it has instances.
pub async fn delete(State(state): State<Arc<ClientState>>, p: Params) -> Result<&'static str> {
    let key = p.service_key()?;
    // Ephemeral instances are Distro's, invisible to Raft: checked here;
    // persistent ones and existence are decided when applied.
    if state.store.has_ephemeral_instances(&key) {
        return Err(Error::Conflict(format!(
            "Service {} is not empty, can't be delete. Please unregister instance first",
            key.grouped_name()
        )));
    }
    // An emptied service (kept listed after its last instance left) is
    // known to the store only; deleting it takes it off every member now.
    let command = if state.store.is_emptied(&key) {
        Command::DeleteEmptiedService { service: key }
    } else {
        Command::DeleteService { service: key }
    };
    state.raft.write(command).await?;
    Ok("ok")
}

/// One cluster in [`ServiceView`].
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterView {
    /// Cluster name.
    pub name: String,
    /// Nacos's default checker for a cluster, `{"type":"TCP"}`.
    pub health_checker: Value,
    /// Cluster metadata (Roster keeps none).
    pub metadata: BTreeMap<String, String>,
}

/// What `GET /nacos/v1/ns/service` answers.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceView {
    /// Namespace of the service.
    pub namespace_id: String,
    /// Group of the service.
    pub group_name: String,
    /// Bare service name.
    pub name: String,
    /// Protect threshold, 0..=1.
    pub protect_threshold: f32,
    /// Service metadata.
    pub metadata: BTreeMap<String, String>,
    /// Selector JSON.
    pub selector: Value,
    /// The clusters its instances are in.
    pub clusters: Vec<ClusterView>,
}

/// `GET /nacos/v1/ns/service`: a service's settings; 404 if absent.
pub async fn detail(State(state): State<Arc<ClientState>>, p: Params) -> Result<Json<ServiceView>> {
    let key = p.service_key()?;
    let detail = state
        .store
        .service(&key)
        .ok_or_else(|| Error::NotFound(format!("service {} is not found!", key.grouped_name())))?;
    let clusters = detail
        .clusters
        .into_iter()
        .map(|name| ClusterView { name, health_checker: json!({"type": "TCP"}), metadata: BTreeMap::new() })
        .collect();
    Ok(Json(ServiceView {
        namespace_id: detail.key.namespace,
        group_name: detail.key.group,
        name: detail.key.name,
        protect_threshold: detail.meta.protect_threshold,
        metadata: detail.meta.metadata,
        selector: detail.meta.selector,
        clusters,
    }))
}

/// What `GET /nacos/v1/ns/service/list` answers.
#[derive(Debug, Serialize)]
pub struct ServiceList {
    /// Services in the namespace and group, over all pages.
    pub count: usize,
    /// Bare names on the requested page, sorted.
    pub doms: Vec<String>,
}

/// A required page parameter within `1..=max`.
pub(crate) fn page_param(p: &Params, name: &str, max: i64) -> Result<usize> {
    let value =
        p.int(name)?.ok_or_else(|| Error::invalid(format!("Param '{name}' is required and must not be blank.")))?;
    if !(1..=max).contains(&value) {
        return Err(Error::invalid(format!("Param '{name}' is out of range: {value} (must be 1..{max}).")));
    }
    usize::try_from(value).map_err(|_| Error::invalid(format!("Param '{name}' is out of range.")))
}

/// `GET /nacos/v1/ns/service/list`: one page of a group's service names.
pub async fn list(State(state): State<Arc<ClientState>>, p: Params) -> Result<Json<ServiceList>> {
    let page_no = page_param(&p, "pageNo", i64::from(i32::MAX))?;
    let page_size = page_param(&p, "pageSize", MAX_PAGE_SIZE)?;
    let group = p.get("groupName").unwrap_or(DEFAULT_GROUP);
    // Validates the namespace and group through a placeholder service name.
    let key = validate::service_key(p.get("namespaceId"), Some(group), Some("_"))?;
    if let Some(s) = selector(&p)? {
        if s.get("type").and_then(Value::as_str) != Some("none") {
            return Err(Error::invalid("Param 'selector': only type 'none' is supported when listing services."));
        }
    }
    let (count, doms) = state.store.list_services(&key.namespace, &key.group, page_no, page_size);
    Ok(Json(ServiceList { count, doms }))
}
