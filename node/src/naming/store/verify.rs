//! The store as Distro's verify sees it: who vouches for which client,
//! verify rounds, and the expiry of copies nobody confirms.
//!
//! Every member sends the `(id, revision, digest)` of the clients it
//! vouches for to the others at each verify interval. A receiver confirms
//! what it holds at that revision with that digest, and sorts the rest
//! into missing (the sender syncs them again, whole) and newer here (sent
//! back, whole); a client held at the same revision with another digest is
//! both, so that the two copies are merged on both sides. A receiver also
//! hands the sender the ip:port clients it holds that the sender is
//! responsible for (as the receiver sees it) but did not list: the member
//! that judges a client's beats must hold it.
//!
//! A connection of another node held here is a *copy*: it lives on its
//! owner's confirmations and is dropped when unconfirmed for the copy
//! expiry (its owner may be dead and can send no removal); each node
//! expires its own copies and tells nobody. An ip:port client another
//! member is responsible for lives on its beats, which that member judges,
//! and its removal there reaches everyone: it is dropped only when
//! unconfirmed for half the removal records' retention (or the copy expiry,
//! if longer), a bound for a copy whose removal never arrived that still
//! ends before the removal records are forgotten. Expiring it after the
//! copy expiry lost live clients whenever the member that vouches for them
//! changed (a restart, a drain, a member not yet seen as down) for longer
//! than that.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use super::NamingStore;
use crate::naming::client::{distro_tag, Client, ClientKind, Origin};

/// How long copies may go unconfirmed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CopyExpiry {
    /// Another node's connection (`--distro-copy-expiry`).
    pub connection: Duration,
    /// How long removal records are kept (`--distro-tombstone-ttl`).
    pub tombstone_ttl: Duration,
}

impl CopyExpiry {
    /// An ip:port client another member is responsible for: half the
    /// removal records' retention, or the copy expiry if longer.
    pub fn ip_port(&self) -> Duration {
        self.connection.max(self.tombstone_ttl / 2)
    }
}

/// The receiver's answer to a verify round.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyOutcome {
    /// Clients not held as sent (absent, older, or different at the same
    /// revision): the sender re-syncs them whole.
    pub missing: Vec<String>,
    /// Clients held newer, or different at the same revision, or removed
    /// since: the receiver sends them back whole.
    pub newer_here: Vec<String>,
}

/// One client a member vouches for, as verify sends it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Vouched<'a> {
    /// The client id.
    pub id: &'a str,
    /// Its highest revision.
    pub revision: u64,
    /// Its digest (`naming::replica`).
    pub digest: u64,
}

impl Client {
    /// How long this client may go unconfirmed here, if it is a copy at
    /// all: another node's connection, or an ip:port client another member
    /// is `responsible` for (see the module documentation).
    fn copy_expiry(&self, expiry: &CopyExpiry, responsible: &impl Fn(&str) -> bool) -> Option<Duration> {
        match (&self.origin, self.kind) {
            (Origin::Local, _) => None,
            (Origin::Synced { .. }, ClientKind::Connection) => Some(expiry.connection),
            (Origin::Synced { .. }, ClientKind::IpPort) => {
                (!responsible(distro_tag(&self.id))).then_some(expiry.ip_port())
            }
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
    fn is_expired_copy(&self, now: Instant, expiry: &CopyExpiry, responsible: &impl Fn(&str) -> bool) -> bool {
        self.copy_expiry(expiry, responsible)
            .is_some_and(|max_age| now.saturating_duration_since(self.refreshed) > max_age)
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
        held.renew_all(now);
    }
}

impl NamingStore {
    /// Answers a verify round from a peer: confirms the clients held at the
    /// sent revision and digest, and sorts the others into missing (the
    /// sender re-syncs them) and newer here (the receiver sends them back).
    /// `responsible` says which ip:port tags this node judges beats for: a
    /// peer's confirmation never renews those beats (see `confirm` here).
    /// `sender_judges` says which tags the sender is responsible for, as
    /// this node sees it: the ip:port clients of those tags held here but
    /// not sent are newer here too (the sender must hold what it judges).
    pub fn verify(
        &self,
        clients: &[Vouched<'_>],
        now: Instant,
        responsible: impl Fn(&str) -> bool,
        sender_judges: impl Fn(&str) -> bool,
    ) -> VerifyOutcome {
        let mut outcome = VerifyOutcome::default();
        let mut inner = self.inner.write();
        let sent: BTreeSet<&str> = clients.iter().map(|c| c.id).collect();
        outcome.newer_here.extend(
            inner
                .clients
                .values()
                .filter(|c| c.kind == ClientKind::IpPort && !c.is_empty() && !sent.contains(c.id.as_str()))
                .filter(|c| sender_judges(distro_tag(&c.id)))
                .map(|c| c.id.clone()),
        );
        for sent in clients {
            let id = sent.id.to_owned();
            let held = match inner.clients.get(sent.id) {
                Some(held) => Some((held.revision(), held.digest())),
                None => inner.removed_at(sent.id).map(|revision| (revision, u64::MAX)),
            };
            let alive = inner.clients.contains_key(sent.id);
            match held {
                None => outcome.missing.push(id),
                Some((revision, _)) if revision < sent.revision => {
                    outcome.missing.push(id.clone());
                    // A removal older than the sender's data may still
                    // cover slots the sender holds from before it.
                    if !alive {
                        outcome.newer_here.push(id);
                    }
                }
                Some((revision, _)) if revision > sent.revision || !alive => outcome.newer_here.push(id),
                Some((_, digest)) if digest != sent.digest => {
                    outcome.missing.push(id.clone());
                    outcome.newer_here.push(id);
                }
                Some(_) => {
                    if let Some(held) = inner.clients.get_mut(sent.id) {
                        confirm(held, now, &responsible);
                    }
                }
            }
        }
        outcome
    }

    /// `(id, revision, digest)` of every client this node vouches for in
    /// verify rounds, given which ip:port tags it is `responsible` for.
    pub fn verify_list(&self, responsible: impl Fn(&str) -> bool) -> Vec<(String, u64, u64)> {
        let inner = self.inner.read();
        inner
            .clients
            .values()
            .filter(|c| c.is_verified_here(&responsible))
            .map(|c| (c.id.clone(), c.revision(), c.digest()))
            .collect()
    }

    /// How many clients this node vouches for (status: `responsibleClients`).
    pub fn verified_count(&self, responsible: impl Fn(&str) -> bool) -> usize {
        self.inner.read().clients.values().filter(|c| c.is_verified_here(&responsible)).count()
    }

    /// Drops the copies not confirmed within their `expiry` at `now` (see
    /// the module documentation; `responsible` says which ip:port tags
    /// this node judges), and the removal records and tombstones older than
    /// the retention; returns how many copies were dropped. Nothing is
    /// announced to peers: each node expires its own copies.
    pub fn expire_copies(&self, now: Instant, expiry: CopyExpiry, responsible: impl Fn(&str) -> bool) -> usize {
        let expired: Vec<String> = {
            let inner = self.inner.read();
            inner
                .clients
                .values()
                .filter(|c| c.is_expired_copy(now, &expiry, &responsible))
                .map(|c| c.id.clone())
                .collect()
        };
        self.inner.write().forget_tombstones(now, expiry.tombstone_ttl);
        if expired.is_empty() {
            return 0;
        }
        let mut touched = BTreeSet::new();
        {
            let mut inner = self.inner.write();
            for id in &expired {
                // Re-check: a sync may have confirmed it since the scan.
                if inner.clients.get(id).is_some_and(|c| c.is_expired_copy(now, &expiry, &responsible)) {
                    tracing::debug!(client = %crate::telemetry::clip(id), "copy expired unconfirmed");
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

    use super::super::copies::tests::{apply, copy};
    use super::super::tests::{hosts, inst, svc};
    use super::*;
    use crate::naming::clock;
    use crate::naming::model::BeatTimeouts;

    fn expiry(connection_s: u64, tombstone_ttl_s: u64) -> CopyExpiry {
        CopyExpiry {
            connection: Duration::from_secs(connection_s),
            tombstone_ttl: Duration::from_secs(tombstone_ttl_s),
        }
    }

    #[test]
    fn verify_sorts_missing_confirmed_and_newer() {
        let store = NamingStore::new(BeatTimeouts::default());
        let t0 = Instant::now();
        let c = ClientKind::Connection;
        apply(&store, t0, &[copy("same", c, 3, &[("a", "10.0.0.1", 80)])]);
        apply(&store, t0, &[copy("older", c, 3, &[("a", "10.0.0.2", 80)])]);
        apply(&store, t0, &[copy("newer", c, 9, &[("a", "10.0.0.3", 80)])]);
        apply(&store, t0, &[copy("different", c, 5, &[("a", "10.0.0.4", 80)])]);
        let later = t0 + Duration::from_secs(10);
        let digest = |id: &str| store.client(id).map(|c| c.digest()).expect("held");
        let outcome = store.verify(
            &[
                Vouched { id: "same", revision: 3, digest: digest("same") },
                Vouched { id: "older", revision: 4, digest: 0 },
                Vouched { id: "newer", revision: 8, digest: 0 },
                Vouched { id: "absent", revision: 1, digest: 0 },
                Vouched { id: "different", revision: 5, digest: digest("different") ^ 1 },
            ],
            later,
            |_| false,
            |_| false,
        );
        assert_eq!(outcome.missing, ["older", "absent", "different"]);
        assert_eq!(outcome.newer_here, ["newer", "different"], "a different copy is merged on both sides");
        // Only the confirmed copy survives an expiry measured from before the round.
        let dropped = store.expire_copies(t0 + Duration::from_secs(12), expiry(5, 30), |_| false);
        assert_eq!(dropped, 3);
        assert_eq!(hosts(&store, "a"), ["10.0.0.1:80"]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_copy_expires_once_unconfirmed_for_longer_than_the_expiry() {
        let store = NamingStore::new(BeatTimeouts::default());
        let (max_age, ttl) = (Duration::from_secs(5), Duration::from_secs(30));
        let c = ClientKind::Connection;
        apply(&store, clock::now(), &[copy("peer-conn", c, 1, &[("a", "10.0.0.2", 80)])]);
        advance(Duration::from_secs(4)).await;
        let digest = store.client("peer-conn").map(|c| c.digest()).expect("held");
        store.verify(&[Vouched { id: "peer-conn", revision: 1, digest }], clock::now(), |_| false, |_| false);
        advance(max_age).await;
        assert_eq!(
            store.expire_copies(clock::now(), CopyExpiry { connection: max_age, tombstone_ttl: ttl }, |_| false),
            0,
            "confirmed 5 s ago exactly"
        );
        advance(Duration::from_millis(1)).await;
        assert_eq!(
            store.expire_copies(clock::now(), CopyExpiry { connection: max_age, tombstone_ttl: ttl }, |_| false),
            1
        );
        assert!(hosts(&store, "a").is_empty());
        assert!(!store.has_client("peer-conn"));
    }

    #[test]
    fn who_vouches_and_what_expires() {
        let store = NamingStore::new(BeatTimeouts::default());
        let t0 = Instant::now();
        store.register_ephemeral("local-conn", ClientKind::Connection, &svc("a"), inst("10.0.0.1", 80));
        apply(&store, t0, &[copy("peer-conn", ClientKind::Connection, 1, &[("a", "10.0.0.2", 80)])]);
        apply(&store, t0, &[copy("10.0.0.3:80#true", ClientKind::IpPort, 1, &[("a", "10.0.0.3", 80)])]);
        apply(&store, t0, &[copy("10.0.0.4:80#true", ClientKind::IpPort, 1, &[("a", "10.0.0.4", 80)])]);
        let mine = |tag: &str| tag == "10.0.0.3:80";
        let mut vouched: Vec<String> = store.verify_list(mine).into_iter().map(|(id, _, _)| id).collect();
        vouched.sort();
        assert_eq!(vouched, ["10.0.0.3:80#true", "local-conn"]);
        assert_eq!(store.verified_count(mine), 2);
        let dropped = store.expire_copies(t0 + Duration::from_secs(14), expiry(5, 30), mine);
        assert_eq!(dropped, 1, "the peer's connection: its owner may be dead");
        assert_eq!(
            hosts(&store, "a"),
            ["10.0.0.1:80", "10.0.0.3:80", "10.0.0.4:80"],
            "an ip:port copy lives on its beats past the copy expiry"
        );
        let dropped = store.expire_copies(t0 + Duration::from_secs(16), expiry(5, 30), mine);
        assert_eq!(dropped, 1, "the ip:port copy another member judges, after half the retention");
        assert_eq!(hosts(&store, "a"), ["10.0.0.1:80", "10.0.0.3:80"]);
    }

    #[test]
    fn a_sender_is_handed_the_ip_port_clients_it_judges_but_did_not_list() {
        let store = NamingStore::new(BeatTimeouts::default());
        let t0 = Instant::now();
        let ip = ClientKind::IpPort;
        apply(&store, t0, &[copy("10.0.0.3:80#true", ip, 1, &[("a", "10.0.0.3", 80)])]);
        apply(&store, t0, &[copy("10.0.0.4:80#true", ip, 1, &[("a", "10.0.0.4", 80)])]);
        apply(&store, t0, &[copy("peer-conn", ClientKind::Connection, 1, &[("a", "10.0.0.5", 80)])]);
        let digest = store.client("10.0.0.4:80#true").map(|c| c.digest()).expect("held");
        let listed = [Vouched { id: "10.0.0.4:80#true", revision: 1, digest }];
        // The sender judges both tags and listed one: it is handed the other.
        let outcome = store.verify(&listed, t0, |_| false, |_| true);
        assert_eq!(outcome, VerifyOutcome { missing: vec![], newer_here: vec!["10.0.0.3:80#true".into()] });
        // A tag it does not judge (another member does) is not its business.
        let outcome = store.verify(&listed, t0, |_| false, |tag| tag == "10.0.0.4:80");
        assert_eq!(outcome, VerifyOutcome::default());
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
        apply(&store, clock::now(), &[copy(id, ClientKind::IpPort, 3, &[("a", "10.0.0.5", 80)])]);
        // A copy another member is responsible for lives on its confirmations
        // (that member judges the beats), also past the delete timeout.
        let theirs = "10.0.0.6:80#true";
        apply(&store, clock::now(), &[copy(theirs, ClientKind::IpPort, 3, &[("a", "10.0.0.6", 80)])]);
        let digest = |id: &str| store.client(id).map(|c| c.digest()).expect("held");
        let sent = [
            Vouched { id, revision: 3, digest: digest(id) },
            Vouched { id: theirs, revision: 3, digest: digest(theirs) },
        ];
        for _ in 1..=10 {
            advance(Duration::from_secs(1)).await;
            let outcome = store.verify(&sent, clock::now(), mine, |_| false);
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
