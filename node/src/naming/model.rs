//! The naming model: services, instances and the JSON shapes Nacos clients use.
//!
//! Namespace → group → service → cluster → instance, as in Nacos. Field names
//! of the serialised types are those of `com.alibaba.nacos.api.naming.pojo`
//! (`Instance`, `ServiceInfo`), so official clients parse them unchanged.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// Namespace used when a request names none.
pub const DEFAULT_NAMESPACE: &str = "public";
/// Group used when a request names none.
pub const DEFAULT_GROUP: &str = "DEFAULT_GROUP";
/// Cluster used when an instance names none.
pub const DEFAULT_CLUSTER: &str = "DEFAULT";
/// Separator between group and service in grouped names (`group@@service`).
pub const GROUP_SEPARATOR: &str = "@@";
/// `cacheMillis` sent to clients, as Nacos does.
pub const CACHE_MILLIS: i64 = 10_000;

/// Metadata key overriding an instance's beat interval (ms).
pub const META_BEAT_INTERVAL: &str = "preserved.heart.beat.interval";
/// Metadata key overriding an instance's unhealthy timeout (ms).
pub const META_BEAT_TIMEOUT: &str = "preserved.heart.beat.timeout";
/// Metadata key overriding an instance's delete timeout (ms).
pub const META_DELETE_TIMEOUT: &str = "preserved.ip.delete.timeout";
/// Metadata key naming the instance id generator.
pub const META_ID_GENERATOR: &str = "preserved.instance.id.generator";

/// A service's full name: namespace, group and service name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ServiceKey {
    /// Namespace id (`public` by default).
    pub namespace: String,
    /// Group name (`DEFAULT_GROUP` by default).
    pub group: String,
    /// Bare service name, without the group prefix.
    pub name: String,
}

impl ServiceKey {
    /// Builds a key from already validated parts.
    pub fn new(namespace: impl Into<String>, group: impl Into<String>, name: impl Into<String>) -> Self {
        ServiceKey { namespace: namespace.into(), group: group.into(), name: name.into() }
    }

    /// `group@@service`, the form Nacos uses in `serviceName` fields.
    pub fn grouped_name(&self) -> String {
        format!("{}{}{}", self.group, GROUP_SEPARATOR, self.name)
    }
}

impl fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}@@{}", self.namespace, self.group, self.name)
    }
}

/// An instance is identified inside its service by `ip#port#cluster`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct InstanceKey {
    /// IP address or host name.
    pub ip: String,
    /// Port, 1..=65535 (0 is accepted from beats that name none).
    pub port: u16,
    /// Cluster name.
    pub cluster: String,
}

impl fmt::Display for InstanceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{}#{}", self.ip, self.port, self.cluster)
    }
}

/// One registered instance, as stored. Validated on the way in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Instance {
    /// IP address or host name the instance serves on.
    pub ip: String,
    /// Port the instance serves on.
    pub port: u16,
    /// Load-balancing weight, 0..=10000 as in Nacos.
    pub weight: f64,
    /// Health as last observed (beats, connection, or health checks).
    pub healthy: bool,
    /// Disabled instances are kept but not returned to consumers.
    pub enabled: bool,
    /// Ephemeral instances live with their client; persistent ones until removed.
    pub ephemeral: bool,
    /// Cluster the instance belongs to.
    pub cluster: String,
    /// Free-form metadata.
    pub metadata: BTreeMap<String, String>,
}

impl Instance {
    /// An instance at `ip:port` with Nacos's defaults: weight 1, healthy,
    /// enabled, ephemeral, cluster `DEFAULT`, no metadata.
    pub fn new(ip: impl Into<String>, port: u16) -> Instance {
        Instance {
            ip: ip.into(),
            port,
            weight: 1.0,
            healthy: true,
            enabled: true,
            ephemeral: true,
            cluster: DEFAULT_CLUSTER.to_owned(),
            metadata: BTreeMap::new(),
        }
    }

    /// The key of this instance inside its service.
    pub fn key(&self) -> InstanceKey {
        InstanceKey { ip: self.ip.clone(), port: self.port, cluster: self.cluster.clone() }
    }

    /// A metadata value parsed as milliseconds, or the default.
    fn meta_millis(&self, key: &str, default: u64) -> u64 {
        self.metadata.get(key).and_then(|v| v.trim().parse().ok()).unwrap_or(default)
    }

    /// Beat interval the client is told to use (ms).
    pub fn beat_interval_ms(&self) -> u64 {
        self.meta_millis(META_BEAT_INTERVAL, 5_000)
    }

    /// Time without beats after which the instance is unhealthy (ms).
    pub fn beat_timeout_ms(&self, default: u64) -> u64 {
        self.meta_millis(META_BEAT_TIMEOUT, default)
    }

    /// Time without beats after which the instance is removed (ms).
    pub fn delete_timeout_ms(&self, default: u64) -> u64 {
        self.meta_millis(META_DELETE_TIMEOUT, default)
    }

    /// Nacos's default ("simple") instance id: `ip#port#cluster#group@@service`.
    pub fn instance_id(&self, service: &ServiceKey) -> String {
        format!("{}#{}#{}#{}", self.ip, self.port, self.cluster, service.grouped_name())
    }

    /// The wire form of this instance within `service`.
    pub fn to_wire(&self, service: &ServiceKey, timeouts: &BeatTimeouts) -> InstanceWire {
        let grouped = service.grouped_name();
        InstanceWire {
            instance_id: Some(self.instance_id(service)),
            ip: self.ip.clone(),
            port: i64::from(self.port),
            weight: self.weight,
            healthy: self.healthy,
            enabled: self.enabled,
            ephemeral: self.ephemeral,
            cluster_name: Some(self.cluster.clone()),
            service_name: Some(grouped),
            metadata: self.metadata.clone(),
            instance_heart_beat_interval: Some(self.beat_interval_ms()),
            instance_heart_beat_time_out: Some(self.beat_timeout_ms(timeouts.unhealthy_ms)),
            ip_delete_timeout: Some(self.delete_timeout_ms(timeouts.delete_ms)),
            instance_id_generator: Some(
                self.metadata.get(META_ID_GENERATOR).cloned().unwrap_or_else(|| "simple".to_owned()),
            ),
        }
    }
}

/// Server defaults for beat-based expiry, reported in instance JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BeatTimeouts {
    /// Unhealthy after this long without a beat (ms).
    pub unhealthy_ms: u64,
    /// Removed after this long without a beat (ms).
    pub delete_ms: u64,
}

impl Default for BeatTimeouts {
    fn default() -> Self {
        BeatTimeouts { unhealthy_ms: 15_000, delete_ms: 30_000 }
    }
}

/// The Nacos `Instance` JSON object, as clients send and receive it.
///
/// Every field is optional on input so that a client's omissions get Nacos's
/// defaults instead of a parse error; [`crate::naming::validate`] turns it
/// into an [`Instance`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InstanceWire {
    /// `ip#port#cluster#group@@service` unless the client chose one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
    /// IP or host.
    #[serde(default)]
    pub ip: String,
    /// Port; kept wide so out-of-range values are reported, not truncated.
    #[serde(default)]
    pub port: i64,
    /// Weight (default 1.0).
    #[serde(default = "default_weight")]
    pub weight: f64,
    /// Health (default true).
    #[serde(default = "default_true")]
    pub healthy: bool,
    /// Enabled (default true).
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Ephemeral (default true).
    #[serde(default = "default_true")]
    pub ephemeral: bool,
    /// Cluster name (default `DEFAULT`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_name: Option<String>,
    /// `group@@service` in server answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_name: Option<String>,
    /// Metadata: strings, with numbers and booleans taken as text and
    /// nested values refused, as over HTTP ([`crate::naming::validate::metadata_from_json`]).
    #[serde(default, deserialize_with = "metadata_values")]
    pub metadata: BTreeMap<String, String>,
    /// Derived: beat interval (ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_heart_beat_interval: Option<u64>,
    /// Derived: unhealthy timeout (ms). Nacos spells it `TimeOut`.
    #[serde(default, rename = "instanceHeartBeatTimeOut", skip_serializing_if = "Option::is_none")]
    pub instance_heart_beat_time_out: Option<u64>,
    /// Derived: delete timeout (ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_delete_timeout: Option<u64>,
    /// Derived: id generator name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_id_generator: Option<String>,
}

/// Reads metadata by the rule both APIs share; `null` is no metadata.
fn metadata_values<'de, D: serde::Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
    let map = Option::<serde_json::Map<String, serde_json::Value>>::deserialize(d)?;
    match map {
        None => Ok(BTreeMap::new()),
        Some(obj) => crate::naming::validate::metadata_from_json(&obj).map_err(serde::de::Error::custom),
    }
}

fn default_weight() -> f64 {
    1.0
}

fn default_true() -> bool {
    true
}

/// Service-level settings, kept whether or not the service has instances.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceMeta {
    /// Below this healthy ratio, queries return every instance as healthy
    /// (Nacos's protect threshold), so that consumers are not starved.
    pub protect_threshold: f32,
    /// Free-form service metadata.
    pub metadata: BTreeMap<String, String>,
    /// Selector as Nacos JSON (`{"type":"none"}` by default).
    pub selector: serde_json::Value,
    /// True when created explicitly (API), false when created by a registration.
    pub explicit: bool,
}

impl Default for ServiceMeta {
    fn default() -> Self {
        ServiceMeta {
            protect_threshold: 0.0,
            metadata: BTreeMap::new(),
            selector: serde_json::json!({"type": "none"}),
            explicit: false,
        }
    }
}

/// The Nacos `ServiceInfo` JSON: what queries answer and pushes carry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceInfo {
    /// Service name (bare over gRPC, `group@@service` over HTTP v1).
    pub name: String,
    /// Group name.
    pub group_name: String,
    /// The clusters asked for, comma separated ("" for all).
    pub clusters: String,
    /// How long clients may cache this answer.
    pub cache_millis: i64,
    /// The instances.
    pub hosts: Vec<InstanceWire>,
    /// Server time of this view (ms since the epoch).
    pub last_ref_time: i64,
    /// A checksum of the hosts, so clients can skip unchanged pushes.
    pub checksum: String,
    /// Always false: Roster sends real lists.
    #[serde(rename = "allIPs")]
    pub all_ips: bool,
    /// True when the protect threshold was reached.
    pub reach_protection_threshold: bool,
    /// Always true for server answers.
    pub valid: bool,
}
