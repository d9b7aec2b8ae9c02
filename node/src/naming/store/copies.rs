//! The store as Distro's sync sees it: whole clients copied out to the
//! other members and their copies applied here.
//!
//! Rules (Distro's, see "One ephemeral registration, to every member" in
//! `docs/ARCHITECTURE.md`), applied here so that every path (sync, verify,
//! snapshot) agrees:
//! * **Higher revision wins.** A copy replaces what is held only when its
//!   revision is higher (or nothing is held). Revisions are raised past the
//!   wall clock on every local change ([`Client::touch_local`]), so after a
//!   partition the later write wins everywhere.
//! * **A removal outlives older copies.** A client removed at some revision
//!   is not brought back by a copy of that revision or older (see
//!   [`super::tombstone`]).
//! * **A connection belongs to the node it is connected to.** A removal
//!   from a peer never removes a local connection, and a newer copy of one
//!   (an admin update made elsewhere) changes its instances but not its
//!   origin.
//!
//! Copies that their source stops confirming expire: see [`super::verify`].

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Instant;

use super::verify::confirm;
use super::{Inner, NamingStore};
use crate::naming::client::{Client, ClientKind, Origin, Published};
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

impl Client {
    /// This client as Distro sends it.
    fn to_copy(&self) -> ClientCopy {
        let instances = self
            .published
            .iter()
            .flat_map(|(service, set)| set.values().map(move |p| (service.clone(), p.instance.clone())))
            .collect();
        ClientCopy { id: self.id.clone(), kind: self.kind, revision: self.revision, instances }
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
            self.unpublish(client_id, &key);
        }
        for key in added {
            self.entry(&key).publishers.insert(client_id.to_owned());
        }
        changed
    }
}

/// Whether two sets hold the same instances (beat times aside).
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
        let changed = {
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
            changed
        };
        for key in &changed {
            self.notify(key);
        }
        Applied::Replaced
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
}

#[cfg(test)]
pub(super) mod tests {
    use std::time::Duration;

    use tokio::time::advance;

    use super::super::tests::{hosts, inst, svc};
    use super::*;
    use crate::naming::clock;
    use crate::naming::model::BeatTimeouts;
    use crate::naming::Selection;

    /// A copy of client `id` publishing `(service, ip, port)` instances.
    pub(in crate::naming::store) fn copy(
        id: &str,
        kind: ClientKind,
        revision: u64,
        instances: &[(&str, &str, u16)],
    ) -> ClientCopy {
        ClientCopy {
            id: id.into(),
            kind,
            revision,
            instances: instances.iter().map(|(s, ip, port)| (svc(s), inst(ip, *port))).collect(),
        }
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

    #[tokio::test(start_paused = true)]
    async fn a_removal_outlives_older_copies_and_yields_to_newer_ones() {
        let store = NamingStore::new(BeatTimeouts::default());
        let now = clock::now();
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
        let other = || copy("other", ip, 8, &[("a", "10.0.0.2", 80)]);
        assert_eq!(store.apply_copy(other(), "p:2", now), Applied::Stale);
        // Removal records are forgotten after their own retention, not before.
        let (max_age, tombstone_ttl) = (Duration::from_secs(5), Duration::from_secs(30));
        advance(tombstone_ttl).await;
        store.expire_copies(clock::now(), max_age, tombstone_ttl, |_| false);
        assert_eq!(store.apply_copy(other(), "p:2", now), Applied::Stale, "kept for the retention exactly");
        advance(Duration::from_millis(1)).await;
        store.expire_copies(clock::now(), max_age, tombstone_ttl, |_| false);
        assert_eq!(store.apply_copy(other(), "p:2", now), Applied::Replaced);
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
