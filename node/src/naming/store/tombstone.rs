//! What is left of removed clients ("tombstones").
//!
//! A client that publishes nothing any more (an ip:port client whose last
//! instance was removed) or was removed whole (a closed connection) leaves
//! the store's clients, but its replicated state stays here for a while:
//! its floor, its removal records and its highest revision. So an older
//! copy of it arriving later (a partition healing, a late Distro send)
//! cannot bring it back (the merge rules of `naming::replica` see the
//! removals), and a client created again here continues past it.
//! Tombstones are forgotten after the Distro tombstone retention
//! ([`NamingStore::expire_copies`](super::NamingStore::expire_copies)).

use std::time::{Duration, Instant};

use super::Inner;
use crate::naming::client::{Client, ClientKind, Origin};
use crate::naming::clock;

/// What is left of a removed client.
#[derive(Debug, Clone)]
pub(super) struct Tombstone {
    /// The client's state: no live instance, its floor and removal records.
    pub(super) client: Client,
    /// When it was last changed (for its retention).
    pub(super) at: Instant,
}

impl Inner {
    /// The client `id`, created if absent: from its tombstone when it was
    /// removed (so it continues past its removal), else new; either way a
    /// local client now.
    pub(super) fn client_entry(&mut self, id: &str, kind: ClientKind) -> &mut Client {
        let tombstones = &mut self.tombstones;
        self.clients.entry(id.to_owned()).or_insert_with(|| match tombstones.remove(id) {
            Some(t) => Client { origin: Origin::Local, owner: None, refreshed: clock::now(), ..t.client },
            None => Client::new(id, kind),
        })
    }

    /// Keeps what is left of a removed client, if it remembers anything.
    pub(super) fn bury(&mut self, client: Client) {
        if client.floor() == 0 && client.is_empty() {
            return;
        }
        let id = client.id.clone();
        self.tombstones.insert(id, Tombstone { client, at: clock::now() });
    }

    /// Takes `id` out of the clients and keeps its tombstone; returns the
    /// services it still published in (none for a client that is empty).
    pub(super) fn take_and_bury(&mut self, id: &str) -> Vec<crate::naming::model::ServiceKey> {
        let Some(client) = self.clients.remove(id) else { return Vec::new() };
        let keys: Vec<_> = client.published().keys().cloned().collect();
        for key in &keys {
            self.unpublish(id, key);
        }
        self.bury(client);
        keys
    }

    /// The highest revision of a removed client, if it was removed.
    pub(super) fn removed_at(&self, id: &str) -> Option<u64> {
        self.tombstones.get(id).map(|t| t.client.revision())
    }

    /// Forgets the removal records older than `ttl` at `now`, in
    /// tombstones and in live clients alike, and the tombstones unchanged
    /// for longer than that.
    pub(super) fn forget_tombstones(&mut self, now: Instant, ttl: Duration) {
        self.tombstones.retain(|_, t| now.saturating_duration_since(t.at) <= ttl);
        for client in self.clients.values_mut() {
            client.forget_removals(now, ttl);
        }
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
        let first = store.client(id).map(|c| c.revision()).expect("held");
        store.deregister_ephemeral(id, &svc("a"), &inst("10.0.0.1", 80).key(), false);
        assert!(!store.has_client(id), "an ip:port client exists through its instances");
        let removed = store.inner.read().removed_at(id).expect("a tombstone");
        assert!(removed > first);
        store.register_ephemeral(id, ClientKind::IpPort, &svc("a"), inst("10.0.0.1", 80));
        let again = store.client(id).expect("held");
        assert!(again.revision() > removed);
        assert!(store.inner.read().removed_at(id).is_none(), "a client created again takes its tombstone");
    }

    #[tokio::test(start_paused = true)]
    async fn tombstones_and_removal_records_are_forgotten_after_their_retention() {
        let store = NamingStore::new(BeatTimeouts::default());
        let ttl = Duration::from_secs(30);
        store.register_ephemeral("c", ClientKind::Connection, &svc("a"), inst("10.0.0.1", 80));
        store.register_ephemeral("c", ClientKind::Connection, &svc("a"), inst("10.0.0.2", 80));
        store.register_ephemeral("gone", ClientKind::Connection, &svc("a"), inst("10.0.0.3", 80));
        store.remove_client("gone");
        let records = |store: &NamingStore| store.client("c").map(|c| c.removals().count()).unwrap_or(0);
        assert_eq!(records(&store), 1, "the replaced instance left a removal record");
        tokio::time::advance(ttl).await;
        store.inner.write().forget_tombstones(clock::now(), ttl);
        assert_eq!((records(&store), store.inner.read().removed_at("gone").is_some()), (1, true));
        tokio::time::advance(Duration::from_millis(1)).await;
        store.inner.write().forget_tombstones(clock::now(), ttl);
        assert_eq!((records(&store), store.inner.read().removed_at("gone").is_some()), (0, false));
    }
}
