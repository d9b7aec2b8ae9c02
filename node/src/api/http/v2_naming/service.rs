//! `/nacos/v2/ns/service` (create, update, delete, detail) and
//! `/service/list` (Nacos 2's `ServiceControllerV2`).
//!
//! Writes run the v1 handlers (Raft, the same validation) and answer
//! Nacos's naming codes: an existing service on create is
//! `SERVICE_ALREADY_EXIST`, an unknown one `SERVICE_NOT_EXIST`, deleting
//! one with instances `SERVICE_DELETE_FAILURE`, all with status 400 as in
//! Nacos. An update keeps the settings it does not name, as the v1 update
//! does (Nacos's `ServiceForm` resets them to their defaults).
//!
//! `ephemeral` is accepted and not used: a Roster service holds both kinds
//! of instance, where a Nacos service holds one.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::State;
use serde::Serialize;
use serde_json::{json, Value};

use super::super::params::Params;
use super::super::service as v1;
use super::answer::{answer, NamingCode, V2Answer, V2Failure};
use crate::api::ClientState;
use crate::error::Error;
use crate::naming::model::DEFAULT_GROUP;
use crate::naming::validate;

/// Largest page `GET /nacos/v2/ns/service/list` serves (Nacos caps it at 500).
const MAX_PAGE_SIZE: usize = 500;
/// The page size when none is given (Nacos: 20).
const DEFAULT_PAGE_SIZE: i64 = 20;

/// What every service route needs: a `serviceName`, and for writes a
/// well-formed selector, metadata and `ephemeral` flag.
fn check_service_form(p: &Params) -> Result<(), V2Failure> {
    if p.get("serviceName").is_none() {
        return Err(V2Failure::missing("serviceName", "String"));
    }
    p.bool("ephemeral")?;
    v1::selector(p).map_err(|e| V2Failure::naming(NamingCode::SelectorError, e.to_string()))?;
    p.metadata().map_err(|_| {
        V2Failure::naming(
            NamingCode::InstanceMetadataError,
            format!("metadata format incorrect:{}", p.raw("metadata").unwrap_or_default()),
        )
    })?;
    Ok(())
}

/// Gives a v1 service error its v2 naming code.
fn naming_code(e: Error, not_found: NamingCode) -> V2Failure {
    match e {
        Error::NotFound(m) => V2Failure::naming(not_found, m),
        other => other.into(),
    }
}

/// `POST /nacos/v2/ns/service`: creates a service.
pub async fn create(state: State<Arc<ClientState>>, p: Params) -> V2Answer {
    check_service_form(&p)?;
    match v1::create(state, p).await {
        Ok(ok) => answer(ok),
        Err(Error::Conflict(m)) => Err(V2Failure::naming(NamingCode::ServiceAlreadyExist, m)),
        Err(e) => Err(e.into()),
    }
}

/// `PUT /nacos/v2/ns/service`: changes a service's settings.
pub async fn update(state: State<Arc<ClientState>>, p: Params) -> V2Answer {
    check_service_form(&p)?;
    v1::update(state, p).await.map_err(|e| naming_code(e, NamingCode::ServiceNotExist)).and_then(answer)
}

/// `DELETE /nacos/v2/ns/service`: deletes a service without instances.
pub async fn delete(state: State<Arc<ClientState>>, p: Params) -> V2Answer {
    check_service_form(&p)?;
    match v1::delete(state, p).await {
        Ok(ok) => answer(ok),
        Err(Error::Conflict(m)) => Err(V2Failure::naming(NamingCode::ServiceDeleteFailure, m)),
        Err(e) => Err(naming_code(e, NamingCode::ServiceNotExist)),
    }
}

/// One cluster of [`ServiceDetail`] (Nacos's `ClusterInfo`).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterInfo {
    /// Its name.
    pub cluster_name: String,
    /// Nacos's default checker of a cluster, `{"type": "TCP"}`.
    pub health_checker: Value,
    /// Cluster metadata (Roster keeps none).
    pub metadata: BTreeMap<String, String>,
    /// Nacos leaves the hosts out of this view (`null`).
    pub hosts: Option<Vec<Value>>,
}

/// What `GET /nacos/v2/ns/service` answers (Nacos's `ServiceDetailInfo`).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceDetail {
    /// The namespace.
    pub namespace: String,
    /// The bare service name.
    pub service_name: String,
    /// The group.
    pub group_name: String,
    /// Its clusters by name.
    pub cluster_map: BTreeMap<String, ClusterInfo>,
    /// Service metadata.
    pub metadata: BTreeMap<String, String>,
    /// Protect threshold, 0..=1.
    pub protect_threshold: f32,
    /// Selector JSON.
    pub selector: Value,
    /// Whether it holds ephemeral instances now (a Nacos service is of one
    /// kind; a Roster service may hold both).
    pub ephemeral: bool,
}

/// `GET /nacos/v2/ns/service`: a service's settings and clusters.
pub async fn detail(State(state): State<Arc<ClientState>>, p: Params) -> V2Answer {
    if p.get("serviceName").is_none() {
        return Err(V2Failure::missing("serviceName", "String"));
    }
    let key = p.service_key()?;
    let Some(detail) = state.store.service(&key) else {
        return Err(V2Failure::naming(
            NamingCode::ServiceNotExist,
            format!("service not found, namespace: {}, serviceName: {}", key.namespace, key.grouped_name()),
        ));
    };
    let cluster_map = detail
        .clusters
        .into_iter()
        .map(|name| {
            let info = ClusterInfo {
                cluster_name: name.clone(),
                health_checker: json!({"type": "TCP"}),
                metadata: BTreeMap::new(),
                hosts: None,
            };
            (name, info)
        })
        .collect();
    answer(ServiceDetail {
        ephemeral: state.store.has_ephemeral_instances(&key),
        namespace: detail.key.namespace,
        service_name: detail.key.name,
        group_name: detail.key.group,
        cluster_map,
        metadata: detail.meta.metadata,
        protect_threshold: detail.meta.protect_threshold,
        selector: detail.meta.selector,
    })
}

/// What `GET /nacos/v2/ns/service/list` answers (Nacos's `ServiceNameView`).
#[derive(Debug, Serialize)]
pub struct ServiceNames {
    /// Services in the namespace and group, over all pages.
    pub count: usize,
    /// `group@@service` names on the requested page, sorted.
    pub services: Vec<String>,
}

/// A page parameter: its default when absent, else at least 1.
fn page(p: &Params, name: &str, default: i64) -> Result<usize, V2Failure> {
    let value = p.int(name)?.unwrap_or(default);
    usize::try_from(value)
        .ok()
        .filter(|v| *v >= 1)
        .ok_or_else(|| Error::invalid(format!("Param '{name}' must be at least 1, got {value}.")).into())
}

/// `GET /nacos/v2/ns/service/list`: one page of a group's services, named
/// `group@@service` as Nacos's v2 list names them. `pageNo` defaults to 1,
/// `pageSize` to 20 and is capped at 500, as in Nacos.
pub async fn list(State(state): State<Arc<ClientState>>, p: Params) -> V2Answer {
    let page_no = page(&p, "pageNo", 1)?;
    let page_size = page(&p, "pageSize", DEFAULT_PAGE_SIZE)?.min(MAX_PAGE_SIZE);
    let group = p.get("groupName").unwrap_or(DEFAULT_GROUP);
    // Validates the namespace and group through a placeholder service name.
    let key = validate::service_key(p.get("namespaceId"), Some(group), Some("_"))?;
    let (count, names) = state.store.list_services(&key.namespace, &key.group, page_no, page_size);
    let services = names.into_iter().map(|name| format!("{}@@{name}", key.group)).collect();
    answer(ServiceNames { count, services })
}
