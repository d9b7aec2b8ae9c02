//! The desired state of a registry cluster: what a user writes in `spec`.
//!
//! Every struct here carries `#[serde(deny_unknown_fields)]`. That does two
//! things: Rust code (the operator, tests) refuses a misspelt field instead of
//! silently dropping it, and `schemars` marks the object closed so that kube's
//! structural-schema rewrite never adds `x-kubernetes-preserve-unknown-fields`
//! to it. The API server then knows every field of `spec` and refuses unknown
//! ones under strict field validation (see the crate docs).
//!
//! Optional knobs are `Option`s whose defaults live in one place, the
//! `DEFAULT_*` constants, and are resolved by the `effective` methods, so the
//! operator and the documentation cannot drift apart.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Affinity, ResourceRequirements, Toleration};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::status::RegistryClusterStatus;

/// The pattern a `storage.size` must match: an unsigned, non-zero Kubernetes
/// quantity.
///
/// It follows the quantity grammar of `k8s.io/apimachinery` (`<number><suffix>`
/// with a binary suffix `Ki`…`Ei`, a decimal suffix `k`, `M`…`E`, or an
/// exponent `e3`/`E-2`), with three deliberate restrictions for a disk size:
///
/// * no sign, so `-1Gi` is refused;
/// * no value that is zero, so `0` or `0Gi` is refused;
/// * no milli suffix `m`: `500m` of storage is half a byte and almost always a
///   typo for `500M` or `500Mi`.
///
/// The API server checks `pattern` with Go's RE2 engine; the expression uses
/// only syntax that RE2 and Rust's `regex` crate read the same way, which lets
/// the unit tests exercise the exact string the CRD carries.
pub const QUANTITY_PATTERN: &str =
    r"^([0-9]*[1-9][0-9]*(\.[0-9]*)?|[0-9]*\.[0-9]*[1-9][0-9]*)([KMGTPE]i|[kMGTPE]|[eE][+-]?[0-9]+)?$";

/// The pattern `spec.image` must match: a container image reference as the
/// container runtimes parse it, `[registry[:port]/]path[:tag][@digest]`.
///
/// * the optional registry is a DNS name (letters, digits, dots, dashes)
///   with an optional port, followed by `/`;
/// * the path is one or more lowercase components separated by `/`, each
///   made of lowercase letters and digits joined by `.`, `_`, `__` or dashes;
/// * the tag is up to 128 letters, digits, `_`, `.` and `-`, not starting
///   with `.` or `-`;
/// * the digest is `algorithm:hex` with at least 32 hex digits.
///
/// Whitespace anywhere (a trailing space from a copied value) is refused:
/// the StatefulSet would accept such a template but every pod creation
/// would fail, and only an Event on the StatefulSet would tell. The
/// expression uses only syntax RE2 and Rust's `regex` read the same way.
pub const IMAGE_PATTERN: &str = concat!(
    r"^([A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*(:[0-9]+)?/)?",
    r"[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*",
    r"(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?",
    r"(@[A-Za-z][A-Za-z0-9]*([-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,})?$"
);

/// The longest `spec.image` accepted (a reference is at most a few hundred
/// characters; the bound also keeps the pattern check cheap).
pub const IMAGE_MAX_LENGTH: u32 = 512;

/// The pattern a Secret name must match: an RFC 1123 DNS subdomain, as
/// Kubernetes requires for object names. Refusing a bad name here turns a
/// pod that never starts into an immediate, explained `kubectl apply` error.
pub const DNS_SUBDOMAIN_PATTERN: &str = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";

/// Default Distro sync delay: changes to one client inside this window are
/// merged into one send (the node's default; Nacos's
/// `distro.data.sync.delayMs` is 1 s).
pub const DEFAULT_DISTRO_SYNC_DELAY_MS: i64 = 200;
/// Default Distro verify interval (Nacos `distro.data.verify.intervalMs`).
pub const DEFAULT_DISTRO_VERIFY_INTERVAL_MS: i64 = 5_000;
/// Default delay before a node retries loading the Distro snapshot after every
/// peer failed (the node's default; Nacos's `distro.data.load.retryDelayMs`
/// is 30 s).
pub const DEFAULT_DISTRO_LOAD_RETRY_DELAY_MS: i64 = 5_000;
/// Default expiry of a synced client copy that stops being verified (Nacos
/// `naming.client.expired.time`, 3 minutes).
pub const DEFAULT_DISTRO_CLIENT_EXPIRY_MS: i64 = 180_000;

/// Default lower bound of the randomised Raft election timeout. Pod networks
/// have more jitter than a LAN, so Roster uses etcd-like values rather than
/// the sub-second defaults of Raft libraries.
pub const DEFAULT_RAFT_ELECTION_TIMEOUT_MIN_MS: i64 = 1_000;
/// Default upper bound of the randomised Raft election timeout.
pub const DEFAULT_RAFT_ELECTION_TIMEOUT_MAX_MS: i64 = 2_000;
/// Default interval between leader heartbeats; a quarter of the minimum
/// election timeout, so a few lost heartbeats do not trigger an election.
pub const DEFAULT_RAFT_HEARTBEAT_INTERVAL_MS: i64 = 250;
/// Default number of log entries applied since the last snapshot that
/// triggers a new snapshot (and log compaction).
pub const DEFAULT_RAFT_SNAPSHOT_LOGS: i64 = 5_000;

/// Desired state of a Roster registry cluster.
///
/// The operator turns one `RegistryCluster` into a StatefulSet of
/// `roster-node` pods plus the Services, PodDisruptionBudget and ConfigMap
/// around it, and scales the Distro and Raft membership with it.
// clippy reads the repeated `type_ = ...` of different `printcolumn(...)`s as
// duplicated attributes; they are separate columns.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "roster.dev",
    version = "v1alpha1",
    kind = "RegistryCluster",
    plural = "registryclusters",
    singular = "registrycluster",
    shortname = "rgc",
    category = "roster",
    namespaced,
    status = "RegistryClusterStatus",
    doc = "A Roster registry cluster: Nacos-compatible naming served by a set of roster-node pods that the operator keeps in one Distro and Raft membership.",
    scale(
        spec_replicas_path = ".spec.replicas",
        status_replicas_path = ".status.replicas",
        label_selector_path = ".status.selector"
    ),
    printcolumn(
        name = "Replicas",
        type_ = "integer",
        json_path = ".spec.replicas",
        description = "Desired number of members"
    ),
    printcolumn(
        name = "Ready",
        type_ = "integer",
        json_path = ".status.readyReplicas",
        description = "Members that are ready and caught up"
    ),
    printcolumn(name = "Leader", type_ = "string", json_path = ".status.leader", description = "Current Raft leader"),
    printcolumn(
        name = "Available",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Available\")].status",
        description = "Whether the Available condition holds"
    ),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RegistryClusterSpec {
    /// Number of registry members (pods). Each is a Distro peer and a Raft
    /// member. An odd number tolerates the most failures per member; even
    /// numbers are allowed so `kubectl scale` never fails half-way. The scale
    /// subresource reads and writes this field.
    #[schemars(range(min = 1))]
    pub replicas: i32,

    /// Container image of `roster-node`, e.g. `roster-node:0.1.0` or
    /// `registry.example.com:5000/roster/roster-node:0.1.0@sha256:<digest>`.
    /// Validated by a pattern: a plausible image reference, no whitespace.
    /// Changing it rolls the pods one at a time, the Raft leader last.
    #[schemars(length(min = 1, max = IMAGE_MAX_LENGTH), regex(pattern = IMAGE_PATTERN))]
    pub image: String,

    /// Pull policy for `image`. Absent: Kubernetes' own default (`Always` for
    /// `:latest`, otherwise `IfNotPresent`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_policy: Option<ImagePullPolicy>,

    /// CPU and memory requests and limits of the `roster-node` container.
    /// Absent: none, so the pods run best-effort.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,

    /// Where each member keeps its Raft log, snapshots and Raft id. Absent: an
    /// `emptyDir`, so a restarted pod comes back as a new Raft member (fine for
    /// tests, not for data you want to keep).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<StorageSpec>,

    /// Distro (ephemeral data) timing knobs. Absent: the documented defaults.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distro: Option<DistroSpec>,

    /// Raft (persistent data) timing knobs. Absent: the documented defaults.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raft: Option<RaftSpec>,

    /// Authentication between clients, members and the operator. Absent:
    /// authentication is off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<AuthSpec>,

    /// TLS on all three ports of every member. Absent: plaintext.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsSpec>,

    /// Node labels a node must carry to run a member (pod `nodeSelector`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_selector: Option<BTreeMap<String, String>>,

    /// Pod affinity and anti-affinity, e.g. to spread members across zones so
    /// one zone outage cannot take the Raft quorum.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,

    /// Taints the member pods tolerate, e.g. to run on dedicated nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerations: Option<Vec<Toleration>>,

    /// Extra annotations on the member pods, e.g. for a metrics scraper or a
    /// service mesh. Changing them rolls the pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

/// When the kubelet pulls the member image: the values of a container's
/// `imagePullPolicy`. Absent: Kubernetes' default (`Always` for a `:latest`
/// tag, otherwise `IfNotPresent`). A closed enum, so a typo is refused at
/// admission.
// kube's schema rewrite gives an `Option<enum>` field the enum's description,
// so this doc, not the field's, is what `kubectl explain` shows.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImagePullPolicy {
    /// Pull on every pod start.
    Always,
    /// Pull only when the image is not on the node yet.
    IfNotPresent,
    /// Never pull; the image must already be on the node.
    Never,
}

impl ImagePullPolicy {
    /// The string Kubernetes expects in a container's `imagePullPolicy`, so
    /// the operator need not go through serde to build a pod template.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Always => "Always",
            Self::IfNotPresent => "IfNotPresent",
            Self::Never => "Never",
        }
    }
}

/// A PersistentVolumeClaim per member for Raft data, so a member keeps its
/// Raft id and log across restarts and rescheduling.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StorageSpec {
    /// Requested size of each member's volume, a Kubernetes quantity such as
    /// `1Gi`, `500Mi` or `10G`. Validated by a pattern: unsigned, non-zero,
    /// no milli suffix.
    #[schemars(regex(pattern = QUANTITY_PATTERN))]
    pub size: String,

    /// StorageClass of the volumes. Absent: the cluster's default class.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,
}

/// Distro timing knobs. Each field is optional; an absent field takes the
/// default named in its description. Minimums keep a typo from turning the
/// cluster into a busy loop.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "!has(self.verifyIntervalMs) || !has(self.clientExpiryMs) || self.clientExpiryMs > self.verifyIntervalMs",
    "message": "clientExpiryMs must be greater than verifyIntervalMs, or verified copies expire between two verify rounds"
}]))]
pub struct DistroSpec {
    /// Window in which changes to one client are merged into a single sync
    /// to the peers; 0 sends every change at once. Default 1000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub sync_delay_ms: Option<i64>,

    /// How often a member sends verify data for the clients it is responsible
    /// for. Default 5000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 100))]
    pub verify_interval_ms: Option<i64>,

    /// Delay before a starting member retries loading the Distro snapshot after
    /// every peer failed. Default 30000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 100))]
    pub load_retry_delay_ms: Option<i64>,

    /// Age after which a synced client copy that is no longer verified is
    /// removed. Default 180000 (3 minutes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1000))]
    pub client_expiry_ms: Option<i64>,
}

/// Distro timings with every default filled in: what the operator passes to
/// each node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DistroTiming {
    /// See [`DistroSpec::sync_delay_ms`].
    pub sync_delay_ms: i64,
    /// See [`DistroSpec::verify_interval_ms`].
    pub verify_interval_ms: i64,
    /// See [`DistroSpec::load_retry_delay_ms`].
    pub load_retry_delay_ms: i64,
    /// See [`DistroSpec::client_expiry_ms`].
    pub client_expiry_ms: i64,
}

impl DistroSpec {
    /// Resolves an optional `spec.distro` into concrete timings, taking the
    /// `DEFAULT_DISTRO_*` constant for every absent field.
    pub fn effective(spec: Option<&DistroSpec>) -> DistroTiming {
        let spec = spec.cloned().unwrap_or_default();
        DistroTiming {
            sync_delay_ms: spec.sync_delay_ms.unwrap_or(DEFAULT_DISTRO_SYNC_DELAY_MS),
            verify_interval_ms: spec.verify_interval_ms.unwrap_or(DEFAULT_DISTRO_VERIFY_INTERVAL_MS),
            load_retry_delay_ms: spec.load_retry_delay_ms.unwrap_or(DEFAULT_DISTRO_LOAD_RETRY_DELAY_MS),
            client_expiry_ms: spec.client_expiry_ms.unwrap_or(DEFAULT_DISTRO_CLIENT_EXPIRY_MS),
        }
    }
}

/// Raft timing knobs. Each field is optional; an absent field takes the
/// default named in its description. The two election bounds are set together
/// or not at all, so a lone bound can never cross the other's default.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "has(self.electionTimeoutMinMs) == has(self.electionTimeoutMaxMs)",
        "message": "set electionTimeoutMinMs and electionTimeoutMaxMs together"
    },
    {
        "rule": "!has(self.electionTimeoutMinMs) || !has(self.electionTimeoutMaxMs) || self.electionTimeoutMinMs < self.electionTimeoutMaxMs",
        "message": "electionTimeoutMinMs must be less than electionTimeoutMaxMs"
    },
    {
        "rule": "!has(self.heartbeatIntervalMs) || !has(self.electionTimeoutMinMs) || self.heartbeatIntervalMs < self.electionTimeoutMinMs",
        "message": "heartbeatIntervalMs must be less than electionTimeoutMinMs"
    }
]))]
pub struct RaftSpec {
    /// Lower bound of the randomised election timeout. Default 1000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 100))]
    pub election_timeout_min_ms: Option<i64>,

    /// Upper bound of the randomised election timeout. Default 2000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 100))]
    pub election_timeout_max_ms: Option<i64>,

    /// Interval between leader heartbeats. Default 250.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 10))]
    pub heartbeat_interval_ms: Option<i64>,

    /// Applied log entries since the last snapshot that trigger a new snapshot
    /// and log compaction. Default 5000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 100))]
    pub snapshot_logs: Option<i64>,
}

/// Raft timings with every default filled in: what the operator passes to
/// each node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RaftTiming {
    /// See [`RaftSpec::election_timeout_min_ms`].
    pub election_timeout_min_ms: i64,
    /// See [`RaftSpec::election_timeout_max_ms`].
    pub election_timeout_max_ms: i64,
    /// See [`RaftSpec::heartbeat_interval_ms`].
    pub heartbeat_interval_ms: i64,
    /// See [`RaftSpec::snapshot_logs`].
    pub snapshot_logs: i64,
}

impl RaftSpec {
    /// Resolves an optional `spec.raft` into concrete timings, taking the
    /// `DEFAULT_RAFT_*` constant for every absent field.
    pub fn effective(spec: Option<&RaftSpec>) -> RaftTiming {
        let spec = spec.cloned().unwrap_or_default();
        RaftTiming {
            election_timeout_min_ms: spec.election_timeout_min_ms.unwrap_or(DEFAULT_RAFT_ELECTION_TIMEOUT_MIN_MS),
            election_timeout_max_ms: spec.election_timeout_max_ms.unwrap_or(DEFAULT_RAFT_ELECTION_TIMEOUT_MAX_MS),
            heartbeat_interval_ms: spec.heartbeat_interval_ms.unwrap_or(DEFAULT_RAFT_HEARTBEAT_INTERVAL_MS),
            snapshot_logs: spec.snapshot_logs.unwrap_or(DEFAULT_RAFT_SNAPSHOT_LOGS),
        }
    }
}

/// TLS settings: certificates from a Secret of type `kubernetes.io/tls`
/// with `tls.crt`, `tls.key` and `ca.crt` (as cert-manager writes them).
/// The certificate must name every member (`*.<name>-headless.<namespace>.svc`)
/// and be valid for both server and client use: members verify each other
/// with `ca.crt` (mutual TLS on the peer port), and the operator reads the
/// member statuses over HTTPS trusting the same `ca.crt`.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TlsSpec {
    /// Name of the Secret in the cluster's namespace; the operator mounts it
    /// into every member.
    #[schemars(length(min = 1, max = 253), regex(pattern = DNS_SUBDOMAIN_PATTERN))]
    pub secret_name: String,
}

/// Authentication settings. The credentials stay in a Secret so they never
/// appear in the RegistryCluster object itself (which many users may read).
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "!has(self.enabled) || !self.enabled || has(self.secretName)",
    "message": "secretName is required when auth is enabled"
}]))]
pub struct AuthSpec {
    /// Whether members require authenticated clients and peers. Default false.
    #[serde(default)]
    pub enabled: bool,

    /// Name of a Secret in the cluster's namespace that holds the credentials;
    /// the operator mounts it into every member. Required when `enabled`.
    /// Client authentication reads its keys `token-key` (the token signing
    /// key, at least 32 bytes) and `users.json` (users, password hashes
    /// and rights).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253), regex(pattern = DNS_SUBDOMAIN_PATTERN))]
    pub secret_name: Option<String>,
}
