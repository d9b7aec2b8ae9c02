//! The store as Distro's verify sees it: who vouches for which client,
//! verify rounds, and the expiry of copies nobody confirms.
//!
//! Every member sends the `(id, revision)` of the clients it vouches for
//! to the others at each verify interval. A receiver confirms what it holds
//! at that revision and sorts the rest into missing (the sender syncs them
//! again) and newer here (sent back). A client held as a *copy* (a
//! connection of another node, or an ip:port client this node is not
//! responsible for and did not last change) lives on its source's
//! confirmations and is dropped when unconfirmed for the copy expiry; each
//! node expires its own copies and tells nobody.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use super::NamingStore;
use crate::naming::client::{distro_tag, Client, ClientKind, Origin};

/// The receiver's answer to a verify round.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyOutcome {
    /// Clients not held, or held at a lower revision: the sender re-syncs them.
    pub missing: Vec<String>,
    /// Clients held at a higher revision: the receiver sends them back.
    pub newer_here: Vec<String>,
}

impl Client {
    /// Whether this client is a copy that only its source can keep alive.
    fn is_copy(&self, responsible: &impl Fn(&str) -> bool) -> bool {
        match (&self.origin, self.kind) {
            (Origin::Local, _) => false,
            (Origin::Synced { .. }, ClientKind::Connection) => true,
            (Origin::Synced { .. }, ClientKind::IpPort) => !responsible(distro_tag(&self.id)),
        }
    }

    /// Whether this node vouches for the client in verify rounds: its own
    /// connections, ip:port clients it last changed or is responsible for.
    fn is_verified_here(&self, responsible: &impl Fn(&str) -> bool) -> bool {
        match self.kind {
            ClientKind::Connection => self.origin == Origin::Local,
            ClientKind::IpPort => self.origin == Origin::Local || responsible(distro_tag(&self.id)),
        }
    }

    /// Whether this client is a copy last confirmed more than `max_age`
    /// before `now`.
    fn is_expired_copy(&self, now: Instant, max_age: Duration, responsible: &impl Fn(&str) -> bool) -> bool {
        self.is_copy(responsible) && now.saturating_duration_since(self.refreshed) > max_age
    }
}

/// A copy confirmed by its source: it lives on, and so do its instances'
/// beats (so that a member taking over an ip:port client after its
/// responsible member died does not expire it before the next beat).
///
/// Beats are renewed only on a copy this node does not vouch for itself:
/// the member responsible for an ip:port client judges its beats from the
/// beats it receives. If a peer's confirmation renewed them there (a peer
/// that last changed the client while the responsible member was cut off
/// vouches for it too), a client that stopped beating would never expire.
pub(super) fn confirm(held: &mut Client, now: Instant, responsible: &impl Fn(&str) -> bool) {
    held.refreshed = now;
    if !held.is_verified_here(responsible) {
        for p in held.published.values_mut().flat_map(BTreeMap::values_mut) {
            p.last_beat = now;
        }
    }
}

impl NamingStore {
    /// Answers a verify round from a peer: confirms the clients held at the
    /// sent revision, and sorts the others into missing (the sender re-syncs
    /// them) and newer here (the receiver sends them back). `responsible`
    /// says which ip:port tags this node judges beats for: a peer's
    /// confirmation never renews those beats (see `confirm` here).
    pub fn verify(&self, clients: &[(String, u64)], now: Instant, responsible: impl Fn(&str) -> bool) -> VerifyOutcome {
        let mut outcome = VerifyOutcome::default();
        let mut inner = self.inner.write();
        for (id, revision) in clients {
            let removed_at = inner.removed_at(id);
            match inner.clients.get_mut(id) {
                None if removed_at.is_some_and(|r| r >= *revision) => outcome.newer_here.push(id.clone()),
                None => outcome.missing.push(id.clone()),
                Some(held) if held.revision < *revision => outcome.missing.push(id.clone()),
                Some(held) if held.revision > *revision => outcome.newer_here.push(id.clone()),
                Some(held) => confirm(held, now, &responsible),
            }
        }
        outcome
    }

    /// `(id, revision)` of every client this node vouches for in verify
    /// rounds, given which ip:port tags it is `responsible` for.
    pub fn verify_list(&self, responsible: impl Fn(&str) -> bool) -> Vec<(String, u64)> {
        let inner = self.inner.read();
        inner
            .clients
            .values()
            .filter(|c| c.is_verified_here(&responsible))
            .map(|c| (c.id.clone(), c.revision))
            .collect()
    }

    /// How many clients this node vouches for (status: `responsibleClients`).
    pub fn verified_count(&self, responsible: impl Fn(&str) -> bool) -> usize {
        self.inner.read().clients.values().filter(|c| c.is_verified_here(&responsible)).count()
    }

    /// Drops the copies not confirmed within `max_age` of `now`, and the
    /// removal records older than `tombstone_ttl`; returns how many copies
    /// were dropped. Nothing is announced to peers: each node expires its
    /// own copies.
    pub fn expire_copies(
        &self,
        now: Instant,
        max_age: Duration,
        tombstone_ttl: Duration,
        responsible: impl Fn(&str) -> bool,
    ) -> usize {
        let expired: Vec<String> = {
            let inner = self.inner.read();
            inner
                .clients
                .values()
                .filter(|c| c.is_expired_copy(now, max_age, &responsible))
                .map(|c| c.id.clone())
                .collect()
        };
        self.inner.write().forget_tombstones(now, tombstone_ttl);
        if expired.is_empty() {
            return 0;
        }
        let mut touched = BTreeSet::new();
        {
            let mut inner = self.inner.write();
            for id in &expired {
                // Re-check: a sync may have confirmed it since the scan.
                if inner.clients.get(id).is_some_and(|c| c.is_expired_copy(now, max_age, &responsible)) {
                    touched.extend(inner.drop_client(id));
                }
            }
        }
        for key in &touched {
            self.notify(key);
        }
        expired.len()
    }
}

#[cfg(test)]
mod tests {
    use tokio::time::advance;

    use super::super::copies::tests::copy;
    use super::super::tests::{hosts, inst, svc};
    use super::*;
    use crate::naming::clock;
    use crate::naming::model::BeatTimeouts;

    #[test]
    fn verify_sorts_missing_confirmed_and_newer() {
        let store = NamingStore::new(BeatTimeouts::default());
        let t0 = Instant::now();
        let c = ClientKind::Connection;
        store.apply_copy(copy("same", c, 3, &[("a", "10.0.0.1", 80)]), "p:1", t0);
        store.apply_copy(copy("older", c, 3, &[("a", "10.0.0.2", 80)]), "p:1", t0);
        store.apply_copy(copy("newer", c, 9, &[("a", "10.0.0.3", 80)]), "p:1", t0);
        let later = t0 + Duration::from_secs(10);
        let outcome = store.verify(
            &[("same".into(), 3), ("older".into(), 4), ("newer".into(), 8), ("absent".into(), 1)],
            later,
            |_| false,
        );
        assert_eq!(outcome.missing, ["older", "absent"]);
        assert_eq!(outcome.newer_here, ["newer"]);
        // Only the confirmed copy survives an expiry measured from before the round.
        let dropped =
            store.expire_copies(t0 + Duration::from_secs(12), Duration::from_secs(5), Duration::from_secs(30), |_| {
                false
            });
        assert_eq!(dropped, 2);
        assert_eq!(hosts(&store, "a"), ["10.0.0.1:80"]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_copy_expires_once_unconfirmed_for_longer_than_the_expiry() {
        let store = NamingStore::new(BeatTimeouts::default());
        let (max_age, ttl) = (Duration::from_secs(5), Duration::from_secs(30));
        let c = ClientKind::Connection;
        store.apply_copy(copy("peer-conn", c, 1, &[("a", "10.0.0.2", 80)]), "p:1", clock::now());
        advance(Duration::from_secs(4)).await;
        store.verify(&[("peer-conn".into(), 1)], clock::now(), |_| false);
        advance(max_age).await;
        assert_eq!(store.expire_copies(clock::now(), max_age, ttl, |_| false), 0, "confirmed 5 s ago exactly");
        advance(Duration::from_millis(1)).await;
        assert_eq!(store.expire_copies(clock::now(), max_age, ttl, |_| false), 1);
        assert!(hosts(&store, "a").is_empty());
        assert!(!store.has_client("peer-conn"));
    }

    #[test]
    fn who_vouches_and_what_expires() {
        let store = NamingStore::new(BeatTimeouts::default());
        let t0 = Instant::now();
        store.register_ephemeral("local-conn", ClientKind::Connection, &svc("a"), inst("10.0.0.1", 80));
        store.apply_copy(copy("peer-conn", ClientKind::Connection, 1, &[("a", "10.0.0.2", 80)]), "p:1", t0);
        store.apply_copy(copy("10.0.0.3:80#true", ClientKind::IpPort, 1, &[("a", "10.0.0.3", 80)]), "p:1", t0);
        store.apply_copy(copy("10.0.0.4:80#true", ClientKind::IpPort, 1, &[("a", "10.0.0.4", 80)]), "p:1", t0);
        let mine = |tag: &str| tag == "10.0.0.3:80";
        let mut vouched: Vec<String> = store.verify_list(mine).into_iter().map(|(id, _)| id).collect();
        vouched.sort();
        assert_eq!(vouched, ["10.0.0.3:80#true", "local-conn"]);
        assert_eq!(store.verified_count(mine), 2);
        let dropped =
            store.expire_copies(t0 + Duration::from_secs(60), Duration::from_secs(5), Duration::from_secs(30), mine);
        assert_eq!(dropped, 2, "the peer's connection and the ip:port copy another member is responsible for");
        assert_eq!(hosts(&store, "a"), ["10.0.0.1:80", "10.0.0.3:80"]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_peer_vouching_never_renews_beats_the_responsible_member_judges() {
        // Found by the chaos suite: a peer that last changed an ip:port
        // client (it took a write while the responsible member was cut off)
        // keeps vouching for it; its confirmations must not keep the
        // client's beats fresh on the responsible member, or a client that
        // stopped beating never expires.
        let store = NamingStore::new(BeatTimeouts { unhealthy_ms: 3_000, delete_ms: 6_000 });
        let (id, tag) = ("10.0.0.5:80#true", "10.0.0.5:80");
        let mine = |t: &str| t == tag;
        store.apply_copy(copy(id, ClientKind::IpPort, 3, &[("a", "10.0.0.5", 80)]), "p:1", clock::now());
        // A copy another member is responsible for lives on its confirmations
        // (that member judges the beats), also past the delete timeout.
        let theirs = "10.0.0.6:80#true";
        store.apply_copy(copy(theirs, ClientKind::IpPort, 3, &[("a", "10.0.0.6", 80)]), "p:1", clock::now());
        for _ in 1..=10 {
            advance(Duration::from_secs(1)).await;
            let outcome = store.verify(&[(id.to_string(), 3), (theirs.to_string(), 3)], clock::now(), mine);
            assert_eq!(outcome, VerifyOutcome::default(), "confirmed");
        }
        advance(Duration::from_millis(500)).await;
        store.expire_beats(clock::now(), mine);
        assert_eq!(hosts(&store, "a"), ["10.0.0.6:80"], "10.0.0.5 silent for 10.5 s, deleted after 6 s");
        // Taken over: this node became responsible just now.
        store.expire_beats(clock::now(), |t| t == "10.0.0.6:80");
        assert_eq!(hosts(&store, "a"), ["10.0.0.6:80"], "beats renewed until the takeover");
    }
}
