//! The Roster Kubernetes operator.
//!
//! It turns each `RegistryCluster` (crate `roster-crds`) into a running
//! registry: a StatefulSet of `roster-node` pods with the Services,
//! PodDisruptionBudget and ConfigMap around it, a member list served to the
//! nodes by the address server, safe scaling of the Distro and Raft
//! membership, and a status with standard conditions read from every
//! member's `GET /roster/v1/status` and its pod (the README's "Run on
//! Kubernetes" says what users see of it).
//!
//! # Layout
//!
//! * [`names`]: object names, labels and member addresses: the one place
//!   that knows `demo-1.demo-headless.ns.svc:8848`.
//! * [`desired`]: pure builders of the owned objects (Services, StatefulSet,
//!   PodDisruptionBudget, ConfigMap), applied with server-side apply.
//! * [`address_server`]: [`ServerLists`] and [`AddressServer`], the HTTP
//!   member-list endpoint (`GET /v1/clusters/{ns}/{name}/serverlist`); usable
//!   without Kubernetes, e.g. by a local-cluster command.
//! * [`node_status`]: the node status document and the HTTP client that
//!   reads it from every member.
//! * [`scaling`]: the sans-IO scale planner: observed state in, one next
//!   step out (scale down only after Raft stopped counting the members).
//! * [`upgrade`]: the sans-IO roll planner: which pod to restart next, the
//!   Raft leader last.
//! * [`status`]: pure aggregation of member observations and pods into
//!   `status.members[]` and the six conditions.
//! * [`controller`]: the kube-rs controller: reconcile (span, timer and
//!   dispatch to one cluster's steps), error policy, what it watches.
//! * [`events`]: which Events a reconcile records, and the recorder that
//!   keeps one Event per step.
//! * [`server_lists`]: publishing a cluster's member list and keeping every
//!   replica's lists in step with the API server.
//! * [`leader`]: Lease-based leader election, so two replicas are safe.
//! * [`metrics`]: Prometheus metrics of the controller.
//! * [`admin`]: `/metrics` and `/healthz` of the operator process.
#![deny(missing_docs)]

pub mod address_server;
pub mod admin;
pub mod controller;
pub mod desired;
pub mod events;
pub mod leader;
pub mod metrics;
pub mod names;
pub mod node_status;
pub mod scaling;
pub mod server_lists;
pub mod status;
pub mod upgrade;

#[cfg(test)]
mod fixtures;

pub use address_server::{AddressServer, ServerLists};

/// Errors of the operator. Each variant's [`Error::metric_label`] labels the
/// `failures` metric, so a dashboard tells what keeps failing.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A call to the Kubernetes API failed.
    #[error("Kubernetes API error: {0}")]
    Kube(#[source] kube::Error),

    /// The RegistryCluster cannot be turned into objects (for example it has
    /// no namespace); retrying will not help until it changes.
    #[error("invalid RegistryCluster: {0}")]
    InvalidResource(String),

    /// An object could not be serialized for a patch.
    #[error("cannot serialize {what}: {source}")]
    Serialize {
        /// What was being serialized.
        what: &'static str,
        /// The serde error.
        #[source]
        source: serde_json::Error,
    },

    /// A member's status endpoint could not be read or parsed.
    #[error("status of member {member}: {reason}")]
    NodeStatus {
        /// The member asked, `host:port`.
        member: String,
        /// What went wrong, for a person.
        reason: String,
    },

    /// A listener could not be bound or served.
    #[error("cannot serve on {addr}: {source}")]
    Serve {
        /// The address.
        addr: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },

    /// Leadership of the operator Lease was lost; the process must stop
    /// reconciling at once.
    #[error("lost the leader lease {0}")]
    LeadershipLost(String),
}

impl Error {
    /// A short, stable label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Kube(_) => "kube",
            Error::InvalidResource(_) => "invalid_resource",
            Error::Serialize { .. } => "serialize",
            Error::NodeStatus { .. } => "node_status",
            Error::Serve { .. } => "serve",
            Error::LeadershipLost(_) => "leadership_lost",
        }
    }
}

impl From<kube::Error> for Error {
    fn from(e: kube::Error) -> Self {
        Error::Kube(e)
    }
}

/// Result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
