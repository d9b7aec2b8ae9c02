//! Readiness: the conjunction of named checks, one per subsystem, so each
//! can be read (and added) on its own: [`distro_ready`], [`raft_ready`],
//! and, first of all, not draining.

use super::AdminState;

/// Whether the node is ready for clients: every readiness check passes.
pub fn is_ready(state: &AdminState) -> bool {
    not_ready_reason(state).is_none()
}

/// Distro's readiness check: the snapshot is loaded (at once when
/// standalone, or when no peer is listed).
pub fn distro_ready(state: &AdminState) -> bool {
    state.node.distro.is_initialized()
}

/// Raft's readiness check: this member knows a Raft leader, so persistent
/// writes can be committed (a standalone node is its own leader).
pub fn raft_ready(state: &AdminState) -> bool {
    state.node.raft.has_leader()
}

/// Why the node is not ready, or `None` when it is.
pub fn not_ready_reason(state: &AdminState) -> Option<&'static str> {
    if state.node.membership.is_draining() {
        return Some("draining: moving clients to other members");
    }
    if !distro_ready(state) {
        return Some("distro: snapshot not loaded yet");
    }
    if !raft_ready(state) {
        return Some("raft: no leader known");
    }
    None
}
