//! What a run found or did: every [`Discrepancy`] between the final state
//! and what the clients were told, the [`ChaosReport`] of a failed run
//! (with its seed and how to replay it) and the [`ChaosSummary`] of a
//! passing one. The texts are what a reader of a CI log sees.

use std::fmt;
use std::time::Duration;

/// A difference between the final state and what the clients were told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Discrepancy {
    /// The harness itself could not go on (a node did not come back).
    Harness(String),
    /// A node did not answer a read.
    Unreachable {
        /// Node index.
        node: usize,
        /// What was asked.
        what: String,
    },
    /// An instance a live client holds is missing on a node.
    Missing {
        /// Node index.
        node: usize,
        /// Service.
        service: String,
        /// `ip:port`.
        instance: String,
        /// Who holds it.
        owner: String,
    },
    /// An instance a live client holds is unhealthy on a node.
    Unhealthy {
        /// Node index.
        node: usize,
        /// Service.
        service: String,
        /// `ip:port`.
        instance: String,
    },
    /// An instance that must be gone (deregistered, expired, its client
    /// crashed) is still on a node.
    NotGone {
        /// Node index.
        node: usize,
        /// Service.
        service: String,
        /// `ip:port`.
        instance: String,
        /// Why it must be gone.
        why: String,
    },
    /// An instance nobody wrote (or with a value nobody wrote) is on a node.
    Unwritten {
        /// Node index.
        node: usize,
        /// Service.
        service: String,
        /// `ip:port`, with the value for persistent instances.
        instance: String,
    },
    /// An instance is listed twice on a node.
    Duplicate {
        /// Node index.
        node: usize,
        /// Service.
        service: String,
        /// `ip:port`.
        instance: String,
    },
    /// An acknowledged persistent write is missing on a node, or holds
    /// another value.
    LostWrite {
        /// Node index.
        node: usize,
        /// `ip:port`.
        instance: String,
        /// The acknowledged value.
        value: String,
        /// What the node holds instead.
        found: Option<String>,
    },
    /// Nodes answer different lists for a service.
    Diverged {
        /// Service.
        service: String,
        /// Each node's list.
        lists: Vec<Vec<String>>,
    },
    /// A subscriber's last pushed view differs from the final state.
    StaleView {
        /// The client.
        client: String,
        /// Service.
        service: String,
        /// Its last pushed view (`None`: nothing was pushed).
        pushed: Option<Vec<String>>,
        /// The nodes' list.
        actual: Vec<String>,
    },
}

impl fmt::Display for Discrepancy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Discrepancy::Harness(what) => write!(f, "harness: {what}"),
            Discrepancy::Unreachable { node, what } => write!(f, "node {node}: no answer to {what}"),
            Discrepancy::Missing { node, service, instance, owner } => {
                write!(f, "node {node}: {service} lacks {instance}, held by {owner}")
            }
            Discrepancy::Unhealthy { node, service, instance } => {
                write!(f, "node {node}: {service} has {instance} unhealthy, its client is alive")
            }
            Discrepancy::NotGone { node, service, instance, why } => {
                write!(f, "node {node}: {service} still has {instance}, which {why}")
            }
            Discrepancy::Unwritten { node, service, instance } => {
                write!(f, "node {node}: {service} has {instance}, which nobody wrote")
            }
            Discrepancy::Duplicate { node, service, instance } => {
                write!(f, "node {node}: {service} lists {instance} more than once")
            }
            Discrepancy::LostWrite { node, instance, value, found } => {
                write!(f, "node {node}: acknowledged persistent write {instance} v={value} lost (found {found:?})")
            }
            Discrepancy::Diverged { service, lists } => write!(f, "nodes disagree on {service}: {lists:?}"),
            Discrepancy::StaleView { client, service, pushed, actual } => {
                write!(f, "subscriber {client} of {service}: last pushed {pushed:?}, final state {actual:?}")
            }
        }
    }
}

/// What a failed run found.
#[derive(Debug, Clone)]
pub struct ChaosReport {
    /// The run's seed.
    pub seed: u64,
    /// The nodes' member names, by index.
    pub nodes: Vec<String>,
    /// Every difference at the end of the bound.
    pub discrepancies: Vec<Discrepancy>,
    /// The faults injected, in order.
    pub fault_log: Vec<String>,
    /// Which clients each node says publish the instances reported there
    /// (asked through `/nacos/v2/ns/client/...` while the nodes still ran).
    pub publishers: Vec<String>,
    /// The command and SDK-event history of every gRPC client a
    /// discrepancy names.
    pub clients: Vec<(String, Vec<String>)>,
}

impl fmt::Display for ChaosReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "chaos run with seed {} failed (replay with ROSTER_CHAOS_SEED={}): {} discrepancies",
            self.seed,
            self.seed,
            self.discrepancies.len()
        )?;
        for (i, node) in self.nodes.iter().enumerate() {
            writeln!(f, "  node {i} = {node}")?;
        }
        for d in &self.discrepancies {
            writeln!(f, "  - {d}")?;
        }
        if !self.publishers.is_empty() {
            writeln!(f, "publishers of the instances reported:")?;
            for line in &self.publishers {
                writeln!(f, "  {line}")?;
            }
        }
        writeln!(f, "fault log:")?;
        for entry in &self.fault_log {
            writeln!(f, "  {entry}")?;
        }
        for (client, history) in &self.clients {
            writeln!(f, "history of gRPC client {client}:")?;
            for entry in history {
                writeln!(f, "  {entry}")?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for ChaosReport {}

/// What a passing run did.
#[derive(Debug, Clone, Default)]
pub struct ChaosSummary {
    /// Faults injected.
    pub faults: usize,
    /// gRPC client commands acknowledged / failed or timed out.
    pub sdk_ops: (usize, usize),
    /// gRPC clients crashed on purpose.
    pub clients_crashed: usize,
    /// Acknowledged gRPC deregistrations the SDK's own redo may have undone
    /// (allowed to stay, see [`SdkOp`]), and how many of those instances
    /// were still there at the end (put back by the SDK).
    pub sdk_redo_overlaps: (usize, usize),
    /// HTTP instances registered in all.
    pub http_instances: usize,
    /// Persistent writes acknowledged / attempted.
    pub persistent_writes: (usize, usize),
    /// How long the checker took to see everything match.
    pub converged_after: Duration,
}
