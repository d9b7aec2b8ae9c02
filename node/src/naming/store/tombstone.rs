//! Removal records ("tombstones") of clients.
//!
//! A client's revision grows with every change (see `next_revision` in
//! `naming::client`). When a client is removed, the revision of that
//! removal is kept for a while, so that an older copy of the client
//! arriving later (a partition healing, a late Distro send) cannot bring
//! it back, and so that a client created again here continues past it.
//! Records are forgotten after the Distro tombstone retention
//! ([`NamingStore::expire_copies`](super::NamingStore::expire_copies)).

use std::time::{Duration, Instant};

use super::Inner;
use crate::naming::client::{Client, ClientKind};
use crate::naming::clock;

/// What is left of a removed client.
#[derive(Debug, Clone, Copy)]
pub(super) struct Tombstone {
    /// The revision of the removal.
    pub(super) revision: u64,
    /// When it was recorded (for its retention).
    pub(super) at: Instant,
}

impl Inner {
    /// The client `id`, created if absent; a client created again after its
    /// removal continues from the removal's revision.
    pub(super) fn client_entry(&mut self, id: &str, kind: ClientKind) -> &mut Client {
        let tombstones = &mut self.tombstones;
        self.clients.entry(id.to_owned()).or_insert_with(|| {
            let mut client = Client::new(id, kind);
            client.revision = tombstones.remove(id).map_or(0, |t| t.revision);
            client
        })
    }

    /// Records that a client was removed at `revision` (a later record
    /// never gives way to an earlier one).
    pub(super) fn bury(&mut self, id: &str, revision: u64) {
        let at = clock::now();
        let held = self.tombstones.entry(id.to_owned()).or_insert(Tombstone { revision, at });
        if held.revision <= revision {
            *held = Tombstone { revision, at };
        }
    }

    /// The revision of a client's removal, if it was removed.
    pub(super) fn removed_at(&self, id: &str) -> Option<u64> {
        self.tombstones.get(id).map(|t| t.revision)
    }

    /// Forgets the removal records older than `ttl` at `now`.
    pub(super) fn forget_tombstones(&mut self, now: Instant, ttl: Duration) {
        self.tombstones.retain(|_, t| now.saturating_duration_since(t.at) <= ttl);
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{inst, svc};
    use super::super::NamingStore;
    use super::*;
    use crate::naming::model::BeatTimeouts;

    #[test]
    fn a_local_client_created_again_continues_past_its_removal() {
        let store = NamingStore::new(BeatTimeouts::default());
        let id = "10.0.0.1:80#true";
        store.register_ephemeral(id, ClientKind::IpPort, &svc("a"), inst("10.0.0.1", 80));
        let first = store.client(id).map(|c| c.revision).expect("held");
        store.deregister_ephemeral(id, &svc("a"), &inst("10.0.0.1", 80).key());
        let removed = store.client_copies(&[id.to_string()]).1[0].1;
        assert!(removed > first);
        store.register_ephemeral(id, ClientKind::IpPort, &svc("a"), inst("10.0.0.1", 80));
        assert!(store.client(id).map(|c| c.revision).expect("held") > removed);
    }

    #[test]
    fn a_removal_record_keeps_its_highest_revision() {
        let mut inner = Inner::default();
        inner.bury("c", 7);
        inner.bury("c", 5);
        assert_eq!(inner.removed_at("c"), Some(7), "an older removal does not lower it");
        inner.bury("c", 9);
        assert_eq!(inner.removed_at("c"), Some(9));
        assert_eq!(inner.client_entry("c", ClientKind::Connection).revision, 9);
        assert_eq!(inner.removed_at("c"), None, "a client created again takes the record");
    }
}
