//! The store as Distro sees it: whole clients copied in and out, verified
//! by revision, and copies that expire when their source stops confirming
//! them.
//!
//! Rules (DESIGN §5), applied here so that every path agrees:
//! * **Higher revision wins.** A copy replaces what is held only when its
//!   revision is higher (or nothing is held). Revisions are raised past the
//!   wall clock on every local change ([`Client::touch_local`]), so after a
//!   partition the later write wins everywhere.
//! * **A connection belongs to the node it is connected to.** A removal
//!   from a peer never removes a local connection, and a newer copy of one
//!   (an admin update made elsewhere) changes its instances but not its
//!   origin.
//! * **Copies expire.** A client held as a copy (a connection of another
//!   node, or an ip:port client this node is not responsible for and did not
//!   last change) is dropped when unconfirmed for the expiry.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use super::{Inner, NamingStore};
use crate::naming::client::{distro_tag, Client, ClientKind, Origin, Published};
use crate::naming::model::{Instance, InstanceKey, ServiceKey};

/// One client as Distro replicates it.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientCopy {
    /// The client id.
    pub id: String,
    /// Connection or ip:port.
    pub kind: ClientKind,
    /// The revision of this data.
    pub revision: u64,
    /// Every published instance with its service.
    pub instances: Vec<(ServiceKey, Instance)>,
}

/// What applying a copy did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// The copy was newer (or new) and replaced what was held.
    Replaced,
    /// The same revision was held; it counts as confirmed.
    Confirmed,
    /// A newer revision is held here; the copy was ignored.
    Stale,
}

/// The receiver's answer to a verify round.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyOutcome {
    /// Clients not held, or held at a lower revision: the sender re-syncs them.
    pub missing: Vec<String>,
    /// Clients held at a higher revision: the receiver sends them back.
    pub newer_here: Vec<String>,
}

impl Client {
    fn to_copy(&self) -> ClientCopy {
        let instances = self
            .published
            .iter()
            .flat_map(|(service, set)| set.values().map(move |p| (service.clone(), p.instance.clone())))
            .collect();
        ClientCopy { id: self.id.clone(), kind: self.kind, revision: self.revision, instances }
    }

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
}

impl Inner {
    /// Replaces what `client_id` publishes with `published`, keeping each
    /// service's publisher set right; returns the services whose instances
    /// changed.
    fn replace_published(
        &mut self,
        client_id: &str,
        published: HashMap<ServiceKey, BTreeMap<InstanceKey, Published>>,
    ) -> BTreeSet<ServiceKey> {
        let Some(client) = self.clients.get_mut(client_id) else { return BTreeSet::new() };
        let old = std::mem::replace(&mut client.published, published);
        let new = &client.published;
        let mut changed: BTreeSet<ServiceKey> = old
            .iter()
            .filter(|(key, set)| !new.get(*key).is_some_and(|n| same_instances(set, n)))
            .map(|(k, _)| k.clone())
            .collect();
        let added: Vec<ServiceKey> = new.keys().filter(|k| !old.contains_key(*k)).cloned().collect();
        let left: Vec<ServiceKey> = old.keys().filter(|k| !new.contains_key(*k)).cloned().collect();
        changed.extend(added.iter().cloned());
        for key in left {
            if let Some(entry) = self.services.get_mut(&key) {
                entry.publishers.remove(client_id);
            }
            self.forget_if_empty(&key);
        }
        for key in added {
            self.entry(&key).publishers.insert(client_id.to_owned());
        }
        changed
    }

    /// Removes a client and returns the services it published in.
    fn drop_client(&mut self, client_id: &str) -> Vec<ServiceKey> {
        let Some(client) = self.clients.remove(client_id) else { return Vec::new() };
        let keys: Vec<ServiceKey> = client.published.into_keys().collect();
        for key in &keys {
            if let Some(entry) = self.services.get_mut(key) {
                entry.publishers.remove(client_id);
            }
            self.forget_if_empty(key);
        }
        keys
    }
}

fn same_instances(a: &BTreeMap<InstanceKey, Published>, b: &BTreeMap<InstanceKey, Published>) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|((ka, pa), (kb, pb))| ka == kb && pa.instance == pb.instance)
}

impl NamingStore {
    /// Copies of the clients `ids` that exist, and the ids that do not
    /// with the revision of their removal (0 when not known).
    pub fn client_copies(&self, ids: &[String]) -> (Vec<ClientCopy>, Vec<(String, u64)>) {
        let inner = self.inner.read();
        let mut copies = Vec::new();
        let mut absent = Vec::new();
        for id in ids {
            match inner.clients.get(id) {
                Some(c) => copies.push(c.to_copy()),
                None => absent.push((id.clone(), inner.removed_at(id).unwrap_or(0))),
            }
        }
        (copies, absent)
    }

    /// Ids of every client held, local or copied, sorted (a snapshot's
    /// table of contents).
    pub fn client_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.inner.read().clients.keys().cloned().collect();
        ids.sort();
        ids
    }

    /// Applies a copy received from the member `source` at `now`.
    pub fn apply_copy(&self, copy: ClientCopy, source: &str, now: Instant) -> Applied {
        let (applied, changed) = {
            let mut inner = self.inner.write();
            if let Some(held) = inner.clients.get_mut(&copy.id) {
                if held.revision > copy.revision {
                    return Applied::Stale;
                }
                if held.revision == copy.revision {
                    // A repeated send: its source vouches for it. (Without
                    // the responsibility at hand, beats are renewed as
                    // before; only verify repeats, and it knows.)
                    confirm(held, now, &|_: &str| false);
                    return Applied::Confirmed;
                }
            } else if inner.removed_at(&copy.id).is_some_and(|removed| removed >= copy.revision) {
                // Removed after this copy was taken.
                return Applied::Stale;
            }
            inner.tombstones.remove(&copy.id);
            let mut published: HashMap<ServiceKey, BTreeMap<InstanceKey, Published>> = HashMap::new();
            for (service, instance) in copy.instances {
                published.entry(service).or_default().insert(instance.key(), Published { instance, last_beat: now });
            }
            let synced = Origin::Synced { source: source.to_owned() };
            let client = inner
                .clients
                .entry(copy.id.clone())
                .or_insert_with(|| Client { origin: synced.clone(), ..Client::new(copy.id.clone(), copy.kind) });
            client.revision = copy.revision;
            client.refreshed = now;
            if !client.is_local_connection() {
                client.origin = synced;
            }
            let changed = inner.replace_published(&copy.id, published);
            // An ip:port client exists only through its instances.
            if copy.kind == ClientKind::IpPort && inner.clients.get(&copy.id).is_some_and(|c| c.published.is_empty()) {
                inner.clients.remove(&copy.id);
                inner.bury(&copy.id, copy.revision);
            }
            (Applied::Replaced, changed)
        };
        for key in &changed {
            self.notify(key);
        }
        applied
    }

    /// Removes a client a peer says was removed at `revision` (0: unknown),
    /// unless it is a connection to this node or held at a newer revision
    /// (registered again since). Returns whether anything was removed.
    pub fn remove_copy(&self, client_id: &str, revision: u64) -> bool {
        let touched = {
            let mut inner = self.inner.write();
            let held = inner.clients.get(client_id).map(|c| (c.is_local_connection(), c.revision));
            match held {
                None => {
                    if revision > 0 {
                        inner.bury(client_id, revision);
                    }
                    return false;
                }
                Some((true, _)) => return false,
                Some((false, held)) if revision > 0 && held > revision => return false,
                Some((false, held)) => {
                    let keys = inner.drop_client(client_id);
                    inner.bury(client_id, revision.max(held));
                    keys
                }
            }
        };
        for key in &touched {
            self.notify(key);
        }
        true
    }

    /// Answers a verify round from a peer: confirms the clients held at the
    /// sent revision, and sorts the others into missing (the sender re-syncs
    /// them) and newer here (the receiver sends them back). `responsible`
    /// says which ip:port tags this node judges beats for: a peer's
    /// confirmation never renews those beats (see [`confirm`]).
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
                .filter(|c| c.is_copy(&responsible) && now.saturating_duration_since(c.refreshed) > max_age)
                .map(|c| c.id.clone())
                .collect()
        };
        {
            let mut inner = self.inner.write();
            inner.tombstones.retain(|_, t| now.saturating_duration_since(t.at) <= tombstone_ttl);
        }
        if expired.is_empty() {
            return 0;
        }
        let mut touched = BTreeSet::new();
        {
            let mut inner = self.inner.write();
            for id in &expired {
                // Re-check: a sync may have confirmed it since the scan.
                let still = inner
                    .clients
                    .get(id)
                    .is_some_and(|c| c.is_copy(&responsible) && now.saturating_duration_since(c.refreshed) > max_age);
                if still {
                    touched.extend(inner.drop_client(id));
                }
            }
        }
        for key in &touched {
            self.notify(key);
        }
        expired.len()
    }

    /// How many clients this node vouches for (status: `responsibleClients`).
    pub fn verified_count(&self, responsible: impl Fn(&str) -> bool) -> usize {
        self.inner.read().clients.values().filter(|c| c.is_verified_here(&responsible)).count()
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
fn confirm(held: &mut Client, now: Instant, responsible: &impl Fn(&str) -> bool) {
    held.refreshed = now;
    if !held.is_verified_here(responsible) {
        for p in held.published.values_mut().flat_map(BTreeMap::values_mut) {
            p.last_beat = now;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{inst, svc};
    use super::*;
    use crate::naming::model::BeatTimeouts;
    use crate::naming::Selection;

    fn copy(id: &str, kind: ClientKind, revision: u64, instances: &[(&str, &str, u16)]) -> ClientCopy {
        ClientCopy {
            id: id.into(),
            kind,
            revision,
            instances: instances.iter().map(|(s, ip, port)| (svc(s), inst(ip, *port))).collect(),
        }
    }

    fn hosts(store: &NamingStore, service: &str) -> Vec<String> {
        store.query(&svc(service), &Selection::default()).hosts.iter().map(|h| format!("{}:{}", h.ip, h.port)).collect()
    }

    #[test]
    fn higher_revision_wins_and_equal_confirms() {
        let store = NamingStore::new(BeatTimeouts::default());
        let now = Instant::now();
        let c = ClientKind::Connection;
        assert_eq!(store.apply_copy(copy("c1", c, 5, &[("a", "10.0.0.1", 80)]), "b:8848", now), Applied::Replaced);
        assert_eq!(store.apply_copy(copy("c1", c, 4, &[("a", "10.0.0.9", 80)]), "b:8848", now), Applied::Stale);
        assert_eq!(store.apply_copy(copy("c1", c, 5, &[("a", "10.0.0.9", 80)]), "b:8848", now), Applied::Confirmed);
        assert_eq!(hosts(&store, "a"), ["10.0.0.1:80"]);
        // A newer copy moves the instance to another service.
        assert_eq!(store.apply_copy(copy("c1", c, 6, &[("b", "10.0.0.2", 80)]), "b:8848", now), Applied::Replaced);
        assert!(hosts(&store, "a").is_empty());
        assert!(store.service(&svc("a")).is_none(), "the emptied implicit service is forgotten");
        assert_eq!(hosts(&store, "b"), ["10.0.0.2:80"]);
        assert_eq!(store.client("c1").map(|c| c.origin), Some(Origin::Synced { source: "b:8848".into() }));
    }

    #[test]
    fn applying_copies_announces_only_changed_services() {
        let store = NamingStore::new(BeatTimeouts::default());
        let now = Instant::now();
        let mut changes = store.subscribe_changes();
        let mut local = store.subscribe_local_changes();
        let c = ClientKind::Connection;
        store.apply_copy(copy("c1", c, 1, &[("a", "10.0.0.1", 80), ("b", "10.0.0.1", 81)]), "p:1", now);
        let mut seen = BTreeSet::new();
        while let Ok(k) = changes.try_recv() {
            seen.insert(k.name);
        }
        assert_eq!(seen, BTreeSet::from(["a".to_string(), "b".to_string()]));
        store.apply_copy(copy("c1", c, 2, &[("a", "10.0.0.1", 80), ("b", "10.0.0.2", 81)]), "p:1", now);
        assert_eq!(changes.try_recv().map(|k| k.name), Ok("b".to_string()));
        assert!(changes.try_recv().is_err(), "service a did not change");
        assert!(local.try_recv().is_err(), "copies are not local changes");
    }

    #[test]
    fn a_local_connection_is_never_removed_by_a_peer_but_takes_newer_data() {
        let store = NamingStore::new(BeatTimeouts::default());
        store.register_ephemeral("conn", ClientKind::Connection, &svc("a"), inst("10.0.0.1", 80));
        assert!(!store.remove_copy("conn", 0));
        assert_eq!(hosts(&store, "a"), ["10.0.0.1:80"]);
        let held = store.client("conn").map(|c| c.revision).expect("held");
        let newer = copy("conn", ClientKind::Connection, held + 1, &[("a", "10.0.0.1", 80)]);
        let newer =
            ClientCopy { instances: vec![(svc("a"), Instance { weight: 3.0, ..inst("10.0.0.1", 80) })], ..newer };
        assert_eq!(store.apply_copy(newer, "p:1", Instant::now()), Applied::Replaced);
        let client = store.client("conn").expect("held");
        assert_eq!(client.origin, Origin::Local, "still this node's connection");
        assert_eq!(store.query(&svc("a"), &Selection::default()).hosts[0].weight, 3.0);
    }

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

    #[test]
    fn a_peer_vouching_never_renews_beats_the_responsible_member_judges() {
        // Found by the chaos suite: a peer that last changed an ip:port
        // client (it took a write while the responsible member was cut off)
        // keeps vouching for it; its confirmations must not keep the
        // client's beats fresh on the responsible member, or a client that
        // stopped beating never expires.
        let store = NamingStore::new(BeatTimeouts { unhealthy_ms: 3_000, delete_ms: 6_000 });
        let t0 = Instant::now();
        let (id, tag) = ("10.0.0.5:80#true", "10.0.0.5:80");
        let mine = |t: &str| t == tag;
        store.apply_copy(copy(id, ClientKind::IpPort, 3, &[("a", "10.0.0.5", 80)]), "p:1", t0);
        for s in 1..=10 {
            let outcome = store.verify(&[(id.to_string(), 3)], t0 + Duration::from_secs(s), mine);
            assert_eq!(outcome, VerifyOutcome::default(), "confirmed");
        }
        store.expire_beats(t0 + Duration::from_millis(10_500), mine);
        assert!(hosts(&store, "a").is_empty(), "silent for 10.5 s, deleted after 6 s");

        // A copy another member is responsible for lives on its confirmations
        // (that member judges the beats), also past the delete timeout.
        store.apply_copy(copy("10.0.0.6:80#true", ClientKind::IpPort, 3, &[("a", "10.0.0.6", 80)]), "p:1", t0);
        for s in 1..=10 {
            store.verify(&[("10.0.0.6:80#true".to_string(), 3)], t0 + Duration::from_secs(s), mine);
        }
        // Taken over: this node became responsible just now.
        store.expire_beats(t0 + Duration::from_millis(10_500), |t| t == "10.0.0.6:80");
        assert_eq!(hosts(&store, "a"), ["10.0.0.6:80"], "beats renewed until the takeover");
    }

    #[test]
    fn a_removal_outlives_older_copies_and_yields_to_newer_ones() {
        let store = NamingStore::new(BeatTimeouts::default());
        let now = Instant::now();
        let id = "10.0.0.1:80#true";
        let ip = ClientKind::IpPort;
        store.apply_copy(copy(id, ip, 5, &[("a", "10.0.0.1", 80)]), "p:1", now);
        // A removal older than what is held is ignored (registered again since).
        assert!(!store.remove_copy(id, 4));
        assert!(store.remove_copy(id, 6));
        // The copy taken before the removal cannot bring it back, by sync or verify.
        assert_eq!(store.apply_copy(copy(id, ip, 5, &[("a", "10.0.0.1", 80)]), "p:2", now), Applied::Stale);
        let outcome = store.verify(&[(id.to_string(), 5)], now, |_| false);
        assert_eq!(outcome.newer_here, [id], "the removal is newer: it is sent back");
        assert_eq!(store.client_copies(&[id.to_string()]).1, [(id.to_string(), 6)]);
        // A registration after the removal wins.
        assert_eq!(store.apply_copy(copy(id, ip, 7, &[("a", "10.0.0.1", 80)]), "p:2", now), Applied::Replaced);
        assert_eq!(hosts(&store, "a"), ["10.0.0.1:80"]);
        // A removal this node has not seen the client for is remembered too.
        assert!(!store.remove_copy("other", 9));
        assert_eq!(store.apply_copy(copy("other", ip, 8, &[("a", "10.0.0.2", 80)]), "p:2", now), Applied::Stale);
        // Removal records are forgotten after their own retention.
        store.expire_copies(now + Duration::from_secs(20), Duration::from_secs(5), Duration::from_secs(30), |_| false);
        assert_eq!(store.apply_copy(copy("other", ip, 8, &[("a", "10.0.0.2", 80)]), "p:2", now), Applied::Stale);
        store.expire_copies(now + Duration::from_secs(60), Duration::from_secs(5), Duration::from_secs(30), |_| false);
        assert_eq!(store.apply_copy(copy("other", ip, 8, &[("a", "10.0.0.2", 80)]), "p:2", now), Applied::Replaced);
    }

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
    fn an_ip_port_copy_without_instances_is_no_client() {
        let store = NamingStore::new(BeatTimeouts::default());
        let now = Instant::now();
        store.apply_copy(copy("10.0.0.1:80#true", ClientKind::IpPort, 1, &[("a", "10.0.0.1", 80)]), "p:1", now);
        store.apply_copy(copy("10.0.0.1:80#true", ClientKind::IpPort, 2, &[]), "p:1", now);
        assert!(!store.has_client("10.0.0.1:80#true"));
        assert!(store.service(&svc("a")).is_none());
    }

    #[test]
    fn client_copies_round_trip() {
        let source = NamingStore::new(BeatTimeouts::default());
        source.register_ephemeral("c1", ClientKind::Connection, &svc("a"), inst("10.0.0.1", 80));
        source.register_ephemeral("c1", ClientKind::Connection, &svc("b"), inst("10.0.0.1", 81));
        let (copies, absent) = source.client_copies(&["c1".into(), "gone".into()]);
        assert_eq!(absent, [("gone".to_string(), 0)]);
        let target = NamingStore::new(BeatTimeouts::default());
        for c in copies {
            target.apply_copy(c, "src:1", Instant::now());
        }
        assert_eq!(hosts(&target, "a"), hosts(&source, "a"));
        assert_eq!(hosts(&target, "b"), hosts(&source, "b"));
        assert_eq!(target.client_ids(), ["c1"]);
    }
}
