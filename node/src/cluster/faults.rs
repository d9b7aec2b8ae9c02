//! Fault injection on the peer plane, for tests of partitions and lost
//! messages with real processes and real sockets.
//!
//! A node started with `--fault-injection` accepts
//! `PUT /roster/v1/faults` (see [`crate::status`]), which can
//! * **block members**: every peer call to them fails at once (member
//!   reports, Distro, HTTP forwarding), and every peer call from them is
//!   refused, so two nodes that block each other are partitioned;
//! * **drop syncs**: the next `n` Distro sync messages are dropped as if the
//!   network lost them after the send (the sender believes they arrived),
//!   which only verify can repair.
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
}

/// The fault switch shared by the peer plane.
#[derive(Debug, Default)]
pub struct Faults {
    enabled: bool,
    blocked: RwLock<BTreeSet<String>>,
    drop_syncs: AtomicU64,
    dropped: AtomicU64,
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
        self.drop_syncs.store(settings.drop_syncs, Ordering::SeqCst);
        true
    }

    /// The faults in force.
    pub fn current(&self) -> FaultSettings {
        FaultSettings {
            blocked_members: self.blocked.read().clone(),
            drop_syncs: self.drop_syncs.load(Ordering::SeqCst),
        }
    }

    /// Whether peer traffic with `member` is cut.
    pub fn is_blocked(&self, member: &str) -> bool {
        self.enabled && self.blocked.read().contains(member)
    }

    /// Whether to drop the sync message about to be sent (consumes one of
    /// the drops asked for).
    pub fn drop_sync(&self) -> bool {
        if !self.enabled {
            return false;
        }
        let taken = self.drop_syncs.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok();
        if taken {
            self.dropped.fetch_add(1, Ordering::SeqCst);
        }
        taken
    }

    /// Sync messages dropped so far.
    pub fn dropped_syncs(&self) -> u64 {
        self.dropped.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disabled_switch_never_injects() {
        let off = Faults::new(false);
        let settings = FaultSettings { blocked_members: ["a:1".to_string()].into(), drop_syncs: 2 };
        assert!(!off.set(settings.clone()));
        assert!(!off.is_blocked("a:1"));
        assert!(!off.drop_sync());

        let on = Faults::new(true);
        assert!(on.set(settings));
        assert!(on.is_blocked("a:1"));
        assert!(!on.is_blocked("b:1"));
        assert!(on.drop_sync() && on.drop_sync());
        assert!(!on.drop_sync(), "only the two drops asked for");
        assert_eq!(on.dropped_syncs(), 2);
        assert!(on.set(FaultSettings::default()));
        assert!(!on.is_blocked("a:1"));
    }
}
