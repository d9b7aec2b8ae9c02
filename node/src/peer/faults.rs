//! Fault injection on the peer plane, for tests of partitions and lost
//! messages with real processes and real sockets.
//!
//! A node started with `--fault-injection` accepts
//! `PUT /roster/v1/faults` (see `crate::admin`), which can
//! * **block members**: every peer call to them fails at once (member
//!   reports, Distro, HTTP forwarding), and every peer call from them is
//!   refused, so two nodes that block each other are partitioned;
//! * **drop syncs**: the next `n` Distro sync messages are dropped as if the
//!   network lost them after the send (the sender believes they arrived),
//!   which only verify can repair;
//! * **drop applies**: the Raft state machine skips the next `n` writes it
//!   applies (the log advances, the data does not, and the writer is told
//!   it succeeded), a lost write on one member that nothing repairs.
//!
//! Without the flag the switch stays off and the endpoint does not exist.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::RwLock;
use serde::{Deserialize, Serialize};

/// The faults to inject, as set through the admin endpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FaultSettings {
    /// Members (`host:port`) this node neither reaches nor answers.
    #[serde(default)]
    pub blocked_members: BTreeSet<String>,
    /// How many of the next Distro sync messages to drop.
    #[serde(default)]
    pub drop_syncs: u64,
    /// How many of the next Raft writes the state machine skips.
    #[serde(default)]
    pub drop_applies: u64,
}

/// The fault switch shared by the peer plane.
#[derive(Debug, Default)]
pub struct Faults {
    enabled: bool,
    blocked: RwLock<BTreeSet<String>>,
    syncs: Drops,
    applies: Drops,
}

/// A count of messages still to drop, and of those dropped.
#[derive(Debug, Default)]
struct Drops {
    pending: AtomicU64,
    dropped: AtomicU64,
}

impl Drops {
    /// Consumes one pending drop, if any.
    fn take(&self) -> bool {
        let taken = self.pending.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok();
        if taken {
            self.dropped.fetch_add(1, Ordering::SeqCst);
        }
        taken
    }
}

impl Faults {
    /// A switch that can be turned (only when `enabled`).
    pub fn new(enabled: bool) -> Faults {
        Faults { enabled, ..Faults::default() }
    }

    /// Whether fault injection was enabled at start.
    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    /// Replaces the injected faults; refused when injection is disabled.
    pub fn set(&self, settings: FaultSettings) -> bool {
        if !self.enabled {
            return false;
        }
        *self.blocked.write() = settings.blocked_members;
        self.syncs.pending.store(settings.drop_syncs, Ordering::SeqCst);
        self.applies.pending.store(settings.drop_applies, Ordering::SeqCst);
        true
    }

    /// The faults in force.
    pub fn current(&self) -> FaultSettings {
        FaultSettings {
            blocked_members: self.blocked.read().clone(),
            drop_syncs: self.syncs.pending.load(Ordering::SeqCst),
            drop_applies: self.applies.pending.load(Ordering::SeqCst),
        }
    }

    /// Whether peer traffic with `member` is cut.
    pub fn is_blocked(&self, member: &str) -> bool {
        self.enabled && self.blocked.read().contains(member)
    }

    /// Whether to drop the sync message about to be sent (consumes one of
    /// the drops asked for).
    pub fn drop_sync(&self) -> bool {
        self.enabled && self.syncs.take()
    }

    /// Sync messages dropped so far.
    pub fn dropped_syncs(&self) -> u64 {
        self.syncs.dropped.load(Ordering::SeqCst)
    }

    /// Whether the state machine skips the Raft write it is about to apply
    /// (consumes one of the drops asked for).
    pub fn drop_apply(&self) -> bool {
        self.enabled && self.applies.take()
    }

    /// Raft writes skipped so far.
    pub fn dropped_applies(&self) -> u64 {
        self.applies.dropped.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disabled_switch_never_injects() {
        let off = Faults::new(false);
        let settings = FaultSettings { blocked_members: ["a:1".to_string()].into(), drop_syncs: 2, drop_applies: 1 };
        assert!(!off.set(settings.clone()));
        assert!(!off.is_blocked("a:1"));
        assert!(!off.drop_sync());
        assert!(!off.drop_apply());

        let on = Faults::new(true);
        assert!(on.set(settings));
        assert!(on.is_blocked("a:1"));
        assert!(!on.is_blocked("b:1"));
        assert!(on.drop_sync() && on.drop_sync());
        assert!(!on.drop_sync(), "only the two drops asked for");
        assert_eq!(on.dropped_syncs(), 2);
        assert!(on.drop_apply());
        assert!(!on.drop_apply(), "only the one apply asked for");
        assert_eq!(on.dropped_applies(), 1);
        assert!(on.set(FaultSettings::default()));
        assert!(!on.is_blocked("a:1"));
    }
}
