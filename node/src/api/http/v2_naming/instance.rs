//! `/nacos/v2/ns/instance` (register, deregister, update, detail),
//! `/instance/list` and `/instance/metadata/batch` (Nacos 2's
//! `InstanceControllerV2`).
//!
//! Writes check what Nacos's `InstanceForm` checks (answering its codes),
//! then run the v1 handler, so the store, Raft and the forwarding of
//! ip:port client writes to their responsible member behave exactly as for
//! v1. An update keeps the fields it does not name, as the v1 update does
//! (Nacos's `InstanceForm` resets them to their defaults).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::State;
use serde::{Deserialize, Serialize};

use super::super::forward::Inbound;
use super::super::instance as v1;
use super::super::params::Params;
use super::super::udp_subscribe::{self, ListCaller};
use super::answer::{answer, ok_from_v1, NamingCode, V2Answer, V2Failure};
use crate::api::ClientState;
use crate::error::Error;
use crate::naming::model::DEFAULT_CLUSTER;
use crate::naming::overlay::InstanceOverride;
use crate::naming::{validate, Instance, InstanceKey, Selection, ServiceKey};
use crate::raft::Command;

/// `consistencyType` that picks persistent instances (Nacos's `PERSIST`).
const PERSIST: &str = "persist";

/// What Nacos's `InstanceForm.validate` and `checkWeight` refuse, with
/// their codes: `serviceName`, `ip` and `port` must be given, the weight
/// must be in 0..=10000 and the metadata well formed.
fn check_instance_form(p: &Params) -> Result<(), V2Failure> {
    required_address(p)?;
    if let Some(weight) = p.float("weight")? {
        if validate::weight(weight).is_err() {
            return Err(V2Failure::naming(
                NamingCode::WeightError,
                "instance format invalid: The weights range from 0.0 to 10000.0",
            ));
        }
    }
    metadata_param(p)?;
    Ok(())
}

/// `metadata`, if given, as Nacos parses it (JSON object or `k=v,k=v`).
fn metadata_param(p: &Params) -> Result<Option<BTreeMap<String, String>>, V2Failure> {
    p.metadata().map_err(|_| {
        V2Failure::naming(
            NamingCode::InstanceMetadataError,
            format!("metadata format incorrect:{}", p.raw("metadata").unwrap_or_default()),
        )
    })
}

/// `POST /nacos/v2/ns/instance`: registers an instance.
pub async fn register(state: State<Arc<ClientState>>, inbound: Inbound, p: Params) -> V2Answer {
    check_instance_form(&p)?;
    ok_from_v1(v1::register(state, inbound, p).await).await
}

/// `DELETE /nacos/v2/ns/instance`: removes an instance (absent is not an
/// error).
pub async fn deregister(state: State<Arc<ClientState>>, inbound: Inbound, p: Params) -> V2Answer {
    check_instance_form(&p)?;
    ok_from_v1(v1::deregister(state, inbound, p).await).await
}

/// `PUT /nacos/v2/ns/instance`: changes an instance's weight, enabled
/// flag, health or metadata. A service that does not exist is Nacos's
/// `INSTANCE_ERROR`; an absent instance of an existing service is 404.
pub async fn update(State(state): State<Arc<ClientState>>, inbound: Inbound, p: Params) -> V2Answer {
    check_instance_form(&p)?;
    let key = p.service_key()?;
    if state.store.service(&key).is_none() {
        return Err(V2Failure::naming(
            NamingCode::InstanceError,
            format!("service not found, namespace: {}, service: {}", key.namespace, key.grouped_name()),
        ));
    }
    ok_from_v1(v1::update(State(state), inbound, p).await).await
}

/// What `GET /nacos/v2/ns/instance` answers (Nacos's `InstanceDetailInfoVo`).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InstanceDetail {
    /// `group@@service`.
    pub service_name: String,
    /// The instance.
    #[serde(flatten)]
    pub instance: v1::DetailFields,
}

/// `serviceName`, `ip` and `port`, which every form and read of one
/// instance requires.
fn required_address(p: &Params) -> Result<(), V2Failure> {
    for (name, kind) in [("serviceName", "String"), ("ip", "String"), ("port", "Integer")] {
        if p.get(name).is_none() {
            return Err(V2Failure::missing(name, kind));
        }
    }
    Ok(())
}

/// `GET /nacos/v2/ns/instance`: one instance (any state, disabled
/// included), 404 if absent.
pub async fn detail(State(state): State<Arc<ClientState>>, p: Params) -> V2Answer {
    required_address(&p)?;
    let key = p.service_key()?;
    let ikey = p.instance_key()?;
    let Some(instance) = state.store.instance(&key, &ikey) else {
        let empty = state.store.service(&key).is_none_or(|s| !s.clusters.contains(&ikey.cluster));
        let why = if empty {
            format!("no ips found for cluster {} in service {}", ikey.cluster, key.grouped_name())
        } else {
            "no matched ip found!".to_owned()
        };
        return Err(Error::NotFound(why).into());
    };
    answer(InstanceDetail { service_name: key.grouped_name(), instance: v1::DetailFields::of(instance, &key) })
}

/// `GET /nacos/v2/ns/instance/list`: the consumer view of a service, named
/// `group@@service` (Nacos answers the v1 shape inside the `Result`).
/// `clusterName` is a comma-separated filter; `ip` and `port` with a
/// push-capable agent subscribe the caller to UDP pushes, as Nacos's v2
/// list does ([`crate::push_udp`]).
pub async fn list(State(state): State<Arc<ClientState>>, caller: ListCaller, p: Params) -> V2Answer {
    if p.get("serviceName").is_none() {
        return Err(V2Failure::missing("serviceName", "String"));
    }
    let key = p.service_key()?;
    let clusters = p
        .get("clusterName")
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(|c| validate::cluster(Some(c)).map_err(|e| Error::invalid(format!("Param 'clusterName': {e}"))))
        .collect::<crate::error::Result<Vec<_>>>()?;
    let healthy_only = p.bool("healthyOnly")?.unwrap_or(false);
    let udp_port = udp_subscribe::udp_port(&p, "port")?;
    udp_subscribe::subscribe(&state, &caller, &key, udp_port, &clusters, &p);
    let selection = Selection { clusters, healthy_only, grouped_name: true };
    answer(state.store.query(&key, &selection))
}

/// One entry of the `instances` parameter of a batch metadata change.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct TargetInstance {
    ip: String,
    port: i64,
    #[serde(default)]
    cluster_name: Option<String>,
}

/// What a batch metadata change answers (Nacos's
/// `InstanceMetadataBatchOperationVo`): `ip:port:unknown:cluster:ephemeral`
/// (or `:persist`) per instance changed.
#[derive(Debug, Serialize)]
pub struct BatchUpdated {
    /// The instances changed.
    pub updated: Vec<String>,
}

/// Whether a batch change adds (PUT) or removes (DELETE) metadata keys.
#[derive(Debug, Clone, Copy)]
enum BatchOp {
    Put,
    Delete,
}

/// `PUT /nacos/v2/ns/instance/metadata/batch`: adds `metadata` to each of
/// `instances` (a JSON list of `{ip, port, clusterName}`), or to every
/// instance of the `consistencyType` (`persist`, else ephemeral) when the
/// list is empty.
pub async fn batch_put_metadata(state: State<Arc<ClientState>>, p: Params) -> V2Answer {
    batch_metadata(state, p, BatchOp::Put).await
}

/// `DELETE /nacos/v2/ns/instance/metadata/batch`: removes the keys of
/// `metadata` from the same instances.
pub async fn batch_delete_metadata(state: State<Arc<ClientState>>, p: Params) -> V2Answer {
    batch_metadata(state, p, BatchOp::Delete).await
}

/// As in Nacos, an ephemeral instance's new metadata is its override
/// ([`crate::naming::overlay`], through Raft), which outlives its client
/// registering again; a persistent instance is changed itself (through
/// Raft). Every target is checked and its new metadata validated before
/// anything is written, so bad input changes nothing. A malformed
/// `instances` list is refused (Nacos ignores it and changes every instance
/// of the service).
async fn batch_metadata(State(state): State<Arc<ClientState>>, p: Params, op: BatchOp) -> V2Answer {
    if p.get("serviceName").is_none() {
        return Err(V2Failure::missing("serviceName", "String"));
    }
    if p.get("metadata").is_none() {
        return Err(V2Failure::missing("metadata", "String"));
    }
    let key = p.service_key()?;
    let given = metadata_param(&p)?.unwrap_or_default();
    let ephemeral = p.get("consistencyType") != Some(PERSIST);
    let targets = match p.get("instances") {
        None => all_instances(&state, &key, ephemeral),
        Some(raw) => listed_instances(&state, &key, raw)?,
    };
    let mut changes = Vec::with_capacity(targets.len());
    for instance in targets {
        let mut metadata = instance.metadata.clone();
        match op {
            BatchOp::Put => metadata.extend(given.iter().map(|(k, v)| (k.clone(), v.clone()))),
            BatchOp::Delete => metadata.retain(|k, _| !given.contains_key(k)),
        }
        validate::metadata(&metadata, &state.limits)?;
        changes.push((instance, metadata));
    }
    let mut updated = Vec::with_capacity(changes.len());
    for (instance, metadata) in changes {
        let kind = if instance.ephemeral { "ephemeral" } else { PERSIST };
        updated.push(format!("{}:{}:unknown:{}:{kind}", instance.ip, instance.port, instance.cluster));
        if instance.ephemeral {
            let patch = match op {
                BatchOp::Put => given.iter().map(|(k, v)| (k.clone(), Some(v.clone()))).collect(),
                BatchOp::Delete => given.keys().map(|k| (k.clone(), None)).collect(),
            };
            let edit = InstanceOverride { metadata: patch, ..InstanceOverride::default() };
            v1::override_instance(&state, &key, &instance.key(), edit).await?;
        } else {
            let command = Command::UpdateInstance {
                service: key.clone(),
                instance: instance.key(),
                weight: None,
                healthy: None,
                enabled: None,
                metadata: Some(metadata),
            };
            state.raft.write(command).await?;
        }
    }
    answer(BatchUpdated { updated })
}

/// The held instances named by an `instances` JSON list; unknown ones are
/// skipped, as in Nacos.
fn listed_instances(state: &ClientState, key: &ServiceKey, raw: &str) -> Result<Vec<Instance>, V2Failure> {
    let listed: Vec<TargetInstance> = serde_json::from_str(raw).map_err(|e| {
        Error::invalid(format!("Param 'instances' must be a JSON list of {{ip, port, clusterName}}: {e}"))
    })?;
    let mut found = Vec::new();
    for target in listed {
        let cluster = target.cluster_name.as_deref().filter(|c| !c.trim().is_empty()).unwrap_or(DEFAULT_CLUSTER);
        let ikey = InstanceKey {
            ip: validate::ip(Some(&target.ip))?,
            port: validate::port(target.port)?,
            cluster: validate::cluster(Some(cluster))?,
        };
        if let Some(instance) = state.store.instance(key, &ikey) {
            if !found.iter().any(|i: &Instance| i.key() == ikey) {
                found.push(instance);
            }
        }
    }
    Ok(found)
}

/// Every instance of one kind in a service, disabled ones included.
fn all_instances(state: &ClientState, key: &ServiceKey, ephemeral: bool) -> Vec<Instance> {
    let publishers = state.store.publishers(key, ephemeral, &Default::default());
    let mut found: BTreeMap<InstanceKey, Instance> = BTreeMap::new();
    for publisher in publishers {
        let instances: Vec<Instance> = if ephemeral {
            state
                .store
                .client(&publisher.client_id)
                .and_then(|c| c.published().get(key).map(|m| m.values().map(|p| p.instance.clone()).collect()))
                .unwrap_or_default()
        } else {
            state
                .store
                .persistent_published(&publisher.ip, publisher.port)
                .into_iter()
                .filter(|(k, _)| k == key)
                .map(|(_, i)| i)
                .collect()
        };
        for instance in instances.into_iter().filter(|i| i.ip == publisher.ip && i.port == publisher.port) {
            found.insert(instance.key(), instance);
        }
    }
    if !ephemeral {
        return found.into_values().collect();
    }
    // As shown, overrides laid over: the edit is made to what is seen.
    found.into_iter().map(|(ikey, published)| state.store.instance(key, &ikey).unwrap_or(published)).collect()
}
