//! `PUT /nacos/v1/ns/instance/beat`: the heartbeat of HTTP-registered
//! (ip:port client) instances.
//!
//! A beat renews the instance and revives it if it had turned unhealthy.
//! For an unknown instance the answer depends on what the client sent, as in
//! Nacos: a *light* beat (no `beat` JSON) gets code 20404, which tells the
//! Java client to register again; a full beat carries everything needed to
//! register, so the server registers the instance itself and answers 10200.
//!
//! An instance that stops beating turns unhealthy after `--beat-timeout`
//! and is removed after `--beat-delete-timeout` ([`BeatSettings`],
//! [`run_expiry`]), judged by the member responsible for its client.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::State;
use axum::http::Response;
use axum::response::IntoResponse;
use axum::Json;
use serde::{Deserialize, Serialize};

use super::forward::{self, Inbound};
use super::params::Params;
use crate::api::ClientState;
use crate::cluster::Membership;
use crate::duration;
use crate::error::{Error, Result};
use crate::naming::model::BeatTimeouts;
use crate::naming::validate::Limits;
use crate::naming::{
    ip_port_client_id, validate, BeatOutcome, ClientKind, Instance, InstanceKey, InstanceWire, NamingStore, ServiceKey,
};

/// How long HTTP instances live without beats, and how often that is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::Args)]
#[command(next_help_heading = "Beats of HTTP instances")]
pub struct BeatSettings {
    /// HTTP instances without a beat for this long turn unhealthy.
    #[arg(long = "beat-timeout", id = "beat_timeout", value_name = "BEAT_TIMEOUT", env = "ROSTER_BEAT_TIMEOUT", default_value = "15s", value_parser = duration::parse)]
    pub timeout: Duration,

    /// HTTP instances without a beat for this long are removed.
    #[arg(long = "beat-delete-timeout", id = "beat_delete_timeout", value_name = "BEAT_DELETE_TIMEOUT", env = "ROSTER_BEAT_DELETE_TIMEOUT", default_value = "30s", value_parser = duration::parse)]
    pub delete_timeout: Duration,

    /// How often beat expiry is checked.
    #[arg(long = "beat-check-interval", id = "beat_check_interval", value_name = "BEAT_CHECK_INTERVAL", env = "ROSTER_BEAT_CHECK_INTERVAL", default_value = "1s", value_parser = duration::parse)]
    pub check_interval: Duration,
}

impl Default for BeatSettings {
    fn default() -> Self {
        BeatSettings {
            timeout: Duration::from_secs(15),
            delete_timeout: Duration::from_secs(30),
            check_interval: Duration::from_secs(1),
        }
    }
}

impl BeatSettings {
    /// Refuses removal before unhealthiness and a check interval of zero.
    pub fn validate(&self) -> Result<()> {
        if self.delete_timeout < self.timeout {
            return Err(Error::Config("--beat-delete-timeout must not be shorter than --beat-timeout".into()));
        }
        if self.check_interval.is_zero() {
            return Err(Error::Config("--beat-check-interval must be greater than zero".into()));
        }
        Ok(())
    }

    /// The timeouts the store applies.
    pub fn timeouts(&self) -> BeatTimeouts {
        BeatTimeouts {
            unhealthy_ms: u64::try_from(self.timeout.as_millis()).unwrap_or(u64::MAX),
            delete_ms: u64::try_from(self.delete_timeout.as_millis()).unwrap_or(u64::MAX),
        }
    }
}

/// Expires HTTP instances that stopped beating, every check interval, for
/// the clients this member is responsible for.
pub async fn run_expiry(store: Arc<NamingStore>, membership: Arc<Membership>, check_interval: Duration) {
    let mut tick = tokio::time::interval(check_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let responsibility = membership.responsibility();
        let changed = store.expire_beats(Instant::now(), |tag| responsibility.is_local(tag));
        if !changed.is_empty() {
            tracing::debug!(services = changed.len(), "beat expiry changed services");
        }
    }
}

/// `code` of a beat that renewed (or registered) its instance.
pub const CODE_OK: i32 = 10200;
/// `code` of a light beat for an instance the server does not know.
pub const CODE_NOT_FOUND: i32 = 20404;
/// Interval suggested when there is no instance to take it from (ms).
const DEFAULT_BEAT_INTERVAL_MS: u64 = 5_000;

/// What a beat is answered with (always HTTP 200).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BeatResponse {
    /// How often the client should beat (ms): the instance's
    /// `preserved.heart.beat.interval`, else 5000.
    pub client_beat_interval: u64,
    /// [`CODE_OK`] or [`CODE_NOT_FOUND`].
    pub code: i32,
    /// Always true: clients may send light beats (without `beat` JSON).
    pub light_beat_enabled: bool,
}

impl BeatResponse {
    fn new(code: i32, interval_ms: u64) -> Self {
        BeatResponse { client_beat_interval: interval_ms, code, light_beat_enabled: true }
    }
}

/// The `beat` parameter: the Java client's `BeatInfo` as JSON. Unknown
/// fields (`scheduled`, `period`, `stopped`, `ephemeral`) are ignored: only
/// ephemeral instances beat.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct BeatInfo {
    #[serde(default)]
    ip: Option<String>,
    #[serde(default)]
    port: Option<i64>,
    #[serde(default)]
    cluster: Option<String>,
    #[serde(default)]
    service_name: Option<String>,
    #[serde(default)]
    weight: Option<f64>,
    #[serde(default)]
    metadata: Option<serde_json::Value>,
}

fn parse_beat(raw: &str) -> Result<BeatInfo> {
    serde_json::from_str(raw).map_err(|e| Error::invalid(format!("Param 'beat' is not valid beat JSON: {e}")))
}

/// The beat's metadata as string pairs (non-string values as JSON text).
fn beat_metadata(beat: &BeatInfo) -> Result<BTreeMap<String, String>> {
    match &beat.metadata {
        None | Some(serde_json::Value::Null) => Ok(BTreeMap::new()),
        Some(serde_json::Value::Object(obj)) => validate::metadata_from_json(obj),
        Some(_) => Err(Error::invalid("Param 'beat' has a 'metadata' that is not a JSON object.")),
    }
}

/// The instance a beat is about: `beat` JSON fields win over parameters.
fn beat_target(p: &Params, beat: Option<&BeatInfo>) -> Result<InstanceKey> {
    let ip = beat.and_then(|b| b.ip.as_deref()).map(str::trim).filter(|ip| !ip.is_empty()).or_else(|| p.get("ip"));
    let port = match beat.and_then(|b| b.port) {
        Some(port) => port,
        None => {
            p.int("port")?.ok_or_else(|| Error::invalid("Param 'port' is required (as a parameter or in 'beat')."))?
        }
    };
    let cluster = beat
        .and_then(|b| b.cluster.as_deref())
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map_or_else(|| p.cluster(), |c| validate::cluster(Some(c)))?;
    Ok(InstanceKey { ip: validate::ip(ip)?, port: validate::port(port)?, cluster })
}

/// `PUT /nacos/v1/ns/instance/beat`.
///
/// A beat that reaches a member not responsible for the instance's
/// `ip:port` is forwarded to the responsible one ([`forward`]).
pub async fn beat(State(state): State<Arc<ClientState>>, inbound: Inbound, p: Params) -> Result<Response<Body>> {
    let (key, ikey, info) = beat_params(&p)?;
    if let Some(answer) = forward::to_responsible(&state, &inbound, &p, &ikey.ip, ikey.port).await {
        return Ok(answer);
    }
    Ok(Json(beat_here(&state, &key, &ikey, info)?).into_response())
}

/// The service, the instance and the `beat` JSON (if any) of a beat request.
pub(crate) fn beat_params(p: &Params) -> Result<(ServiceKey, InstanceKey, Option<BeatInfo>)> {
    let info = p.get("beat").map(parse_beat).transpose()?;
    let service_name = p.get("serviceName").or_else(|| info.as_ref().and_then(|b| b.service_name.as_deref()));
    let key = validate::service_key(p.get("namespaceId"), p.get("groupName"), service_name)?;
    let ikey = beat_target(p, info.as_ref())?;
    Ok((key, ikey, info))
}

/// The instance a full beat registers when the server does not know it.
pub(crate) fn beat_instance(ikey: &InstanceKey, info: &BeatInfo, limits: &Limits) -> Result<Instance> {
    let wire = InstanceWire {
        ip: ikey.ip.clone(),
        port: i64::from(ikey.port),
        weight: info.weight.unwrap_or(1.0),
        healthy: true,
        enabled: true,
        ephemeral: true,
        cluster_name: Some(ikey.cluster.clone()),
        metadata: beat_metadata(info)?,
        ..InstanceWire::default()
    };
    validate::instance(&wire, Some(true), limits)
}

/// Applies a beat on this node.
fn beat_here(
    state: &ClientState,
    key: &ServiceKey,
    ikey: &InstanceKey,
    info: Option<BeatInfo>,
) -> Result<BeatResponse> {
    let client = ip_port_client_id(&ikey.ip, ikey.port);
    if let BeatOutcome::Renewed { interval_ms } = state.store.beat(&client, key, ikey, Instant::now()) {
        return Ok(BeatResponse::new(CODE_OK, interval_ms));
    }
    let Some(info) = info else {
        if !state.membership.member(&state.member).is_some_and(|me| me.distro_initialized) {
            // A member still loading its snapshot cannot know that an instance
            // does not exist (it was restarted and is handed the beat by a peer
            // that has not seen it go): `20404` would make the client register
            // again for nothing. Nacos answers requests to a server that is
            // not up yet this way too (`TrafficReviseFilter`); the client's next
            // beat goes to a member that knows.
            return Err(Error::NotReady("server is STARTING now, please try again later!".into()));
        }
        // Rare and worth seeing: the instance was removed, or never reached
        // this member (the client registers again on this answer).
        tracing::info!(
            client = %client,
            service = %crate::telemetry::clip(&key.to_string()),
            held = state.store.has_client(&client),
            "a light beat for an instance this member does not hold: answered 20404"
        );
        return Ok(BeatResponse::new(CODE_NOT_FOUND, DEFAULT_BEAT_INTERVAL_MS));
    };
    // A full beat for an unknown instance registers it (Nacos does the same,
    // so that instances removed by expiry come back without a restart).
    let instance = beat_instance(ikey, &info, &state.limits)?;
    let interval_ms = instance.beat_interval_ms();
    state.store.register_ephemeral(&client, ClientKind::IpPort, key, instance);
    Ok(BeatResponse::new(CODE_OK, interval_ms))
}
