//! The Raft type configuration, declared once: what a log entry carries
//! ([`Command`]), what applying it answers ([`ApplyResult`]), how members are
//! named (a random `u64` id, with the member address as its node).

use std::io::Cursor;

use super::command::{ApplyResult, Command};

openraft::declare_raft_types!(
    /// Roster's Raft types.
    pub TypeConfig:
        D = Command,
        R = ApplyResult,
        NodeId = u64,
        Node = openraft::BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

/// A member's Raft id: random, created with its data directory.
pub type NodeId = u64;
/// A member as Raft knows it: `addr` is the member address (`host:mainPort`).
pub type Node = openraft::BasicNode;
/// A log entry.
pub type Entry = openraft::Entry<TypeConfig>;
/// The Raft handle.
pub type Raft = openraft::Raft<TypeConfig>;
/// A snapshot's metadata.
pub type SnapshotMeta = openraft::SnapshotMeta<NodeId, Node>;
/// A membership config as stored with the state.
pub type StoredMembership = openraft::StoredMembership<NodeId, Node>;
/// Raft's metrics.
pub type RaftMetrics = openraft::RaftMetrics<NodeId, Node>;
