//! The observed state of a registry cluster: what the operator writes in
//! `status`, aggregated from each member's `GET /roster/v1/status`.
//!
//! Status structs do not deny unknown fields: an older operator must still be
//! able to read a status that a newer one wrote. The API server prunes fields
//! the schema does not know, so nothing unknown is stored either way.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Observed state of a registry cluster.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RegistryClusterStatus {
    /// The `metadata.generation` this status describes. `kubectl wait` treats
    /// conditions older than the current generation as not met.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Members that joined the cluster (Raft voters plus learners). The scale
    /// subresource reports it as the current replica count.
    #[serde(default)]
    pub replicas: i32,

    /// Members that are ready: Distro snapshot loaded, Raft voter, caught up.
    #[serde(default)]
    pub ready_replicas: i32,

    /// Label selector of the member pods in string form
    /// (`app.kubernetes.io/instance=demo,...`); the scale subresource
    /// publishes it, which a HorizontalPodAutoscaler needs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,

    /// Member name (`host:port`) of the current Raft leader, absent while
    /// there is none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader: Option<String>,

    /// One entry per member pod, keyed by pod name, so `kubectl get -o yaml`
    /// shows where a scale-up or roll stands.
    #[serde(default)]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub members: Vec<MemberStatus>,

    /// Standard Kubernetes conditions, one per type (see the
    /// `CONDITION_*` constants), keyed by `type`.
    #[serde(default)]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}

/// What the operator last saw of one member.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct MemberStatus {
    /// Pod name, e.g. `demo-0`; the list key.
    pub name: String,

    /// Member name in member lists: `host:mainPort` with the pod's stable DNS
    /// name, e.g. `demo-0.demo-headless.ns.svc:8848`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,

    /// Membership state as the cluster reports it (`UP`, `DOWN`, ...), or
    /// `Unreachable` when the operator could not read the member's status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,

    /// Whether the member's readiness probe passes.
    #[serde(default)]
    pub ready: bool,

    /// Whether the member has loaded its Distro snapshot; until then it is
    /// not ready and does not send verify data.
    #[serde(default)]
    pub distro_initialized: bool,

    /// The peer the member loaded its Distro snapshot from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_source: Option<String>,

    /// Raft role: `Leader`, `Follower`, `Candidate` or `Learner`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raft_role: Option<String>,

    /// Last Raft log index the member applied; compared with the leader's to
    /// tell whether a learner has caught up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied_index: Option<i64>,
}
