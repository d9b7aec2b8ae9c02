//! The store as Distro's sync sees it: clients, whole or in part, copied
//! out to the other members, and copies from them merged in.
//!
//! The rules are `naming::replica`'s, applied here so that every path
//! (sync, verify repair, snapshot) agrees (see "One ephemeral
//! registration, to every member" in `docs/ARCHITECTURE.md`):
//! * **Slot by slot, the higher revision wins**; a copy never replaces a
//!   whole client, so writes two members made to one client both stay.
//! * **Removals outlive older writes**: removal records and a removed
//!   client's floor stay (in its tombstone) for the tombstone TTL.
//! * **A connection belongs to the node it is connected to.** A removal
//!   from a peer never removes a local connection; a copy of a connection
//!   this node owned and no longer holds (it closed, or an earlier run of
//!   this node held it) is its own past and is ignored; a copy whose
//!   owner has restarted since is ignored too.
//!
//! Copies that their source stops confirming expire: see [`super::verify`].

use std::collections::BTreeSet;
use std::time::Instant;

use super::{Inner, NamingStore};
use crate::naming::client::{Client, ClientKind, Origin, Owner};
use crate::naming::model::ServiceKey;
use crate::naming::replica::{Delta, Slot};

/// One client, whole or in part, as Distro replicates it.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientCopy {
    /// The client id.
    pub id: String,
    /// Connection or ip:port.
    pub kind: ClientKind,
    /// For a connection, the member it is open on.
    pub owner: Option<Owner>,
    /// The slots, revision and floor.
    pub delta: Delta,
}

/// What merging a batch of copies did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    /// How many clients changed here.
    pub changed: usize,
    /// The clients of which the sender sent a version older than the one
    /// held here (a removal it missed, a later write): it is sent them back
    /// whole, or it would keep, and hand on, what this node has superseded.
    pub behind: Vec<String>,
}

impl Inner {
    /// Keeps `client_id` in the publisher sets of `services` exactly where
    /// it still publishes.
    fn reindex(&mut self, client_id: &str, services: &BTreeSet<ServiceKey>) {
        for key in services {
            let publishes = self.clients.get(client_id).is_some_and(|c| c.published().contains_key(key));
            if publishes {
                self.entry(key).publishers.insert(client_id.to_owned());
            } else {
                self.unpublish(client_id, key);
            }
        }
    }

    /// Merges one copy from `source`: the services whose instances changed
    /// (`None` when nothing changed), and whether what is held here
    /// supersedes some slot the copy names (its sender is behind).
    fn merge_copy(
        &mut self,
        copy: &ClientCopy,
        source: &str,
        local: &str,
        now: Instant,
        stale: &impl Fn(&Owner) -> bool,
    ) -> (Option<BTreeSet<ServiceKey>>, bool) {
        let held_local = self.clients.get(&copy.id).is_some_and(Client::is_local_connection);
        if copy.kind == ClientKind::Connection && !held_local {
            if let Some(owner) = &copy.owner {
                if owner.member == local || stale(owner) {
                    return (None, false);
                }
            }
        }
        let synced = Origin::Synced { source: source.to_owned() };
        if let Some(held) = self.clients.get_mut(&copy.id) {
            let merged = held.merge(&copy.delta, now);
            held.refreshed = now;
            if !merged.changed {
                return (None, merged.held_newer);
            }
            if !held.is_local_connection() {
                held.origin = synced;
                if copy.owner.is_some() {
                    held.owner = copy.owner.clone();
                }
            }
            let gone = held.published().is_empty()
                && (held.kind == ClientKind::IpPort || (!held.is_local_connection() && held.floor() > 0));
            self.reindex(&copy.id, &merged.services);
            if gone {
                self.take_and_bury(&copy.id);
            }
            return (Some(merged.services), merged.held_newer);
        }
        let tombstone = self.tombstones.remove(&copy.id);
        let mut client = match &tombstone {
            Some(t) => t.client.clone(),
            None => Client::new(copy.id.clone(), copy.kind),
        };
        let merged = client.merge(&copy.delta, now);
        let exists = !client.published().is_empty() || (client.kind == ClientKind::Connection && client.floor() == 0);
        if !exists {
            // Still removed: keep what the copy added to its removal, or
            // the tombstone as it was (its retention is not renewed by a
            // copy that adds nothing).
            match tombstone {
                Some(t) if !merged.changed => {
                    self.tombstones.insert(copy.id.clone(), t);
                }
                _ => self.bury(client),
            }
            return (None, merged.held_newer);
        }
        client.origin = synced;
        client.owner = copy.owner.clone();
        client.refreshed = now;
        let services: BTreeSet<ServiceKey> = client.published().keys().cloned().collect();
        self.clients.insert(copy.id.clone(), client);
        self.reindex(&copy.id, &services);
        (Some(services), merged.held_newer)
    }
}

impl NamingStore {
    /// The current state of the clients `wanted`, each whole (`None`) or
    /// the slots named: the live version or removal record of each, with
    /// the client's revision and floor. A removed client is sent as its
    /// tombstone; a client nothing is known of is left out. This node's own
    /// connections name `local` as their owner.
    pub fn copies(&self, wanted: &[(String, Option<Vec<Slot>>)], local: &Owner) -> Vec<ClientCopy> {
        let inner = self.inner.read();
        wanted
            .iter()
            .filter_map(|(id, slots)| {
                let client = inner.clients.get(id).or_else(|| inner.tombstones.get(id).map(|t| &t.client))?;
                let owner = match (client.kind, client.is_local_connection()) {
                    (ClientKind::Connection, true) => Some(local.clone()),
                    (ClientKind::Connection, false) => client.owner.clone(),
                    (ClientKind::IpPort, _) => None,
                };
                let delta = client.delta(slots.as_deref());
                (!delta.is_empty() || inner.clients.contains_key(id)).then(|| ClientCopy {
                    id: id.clone(),
                    kind: client.kind,
                    owner,
                    delta,
                })
            })
            .collect()
    }

    /// Ids of every client held, local or copied, sorted.
    pub fn client_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.inner.read().clients.keys().cloned().collect();
        ids.sort();
        ids
    }

    /// Ids of every client held and every removed one still remembered,
    /// sorted: a snapshot's table of contents.
    pub fn snapshot_ids(&self) -> Vec<String> {
        let inner = self.inner.read();
        let mut ids: Vec<String> = inner.clients.keys().chain(inner.tombstones.keys()).cloned().collect();
        ids.sort();
        ids.dedup();
        ids
    }

    /// Merges copies received from the member `source` at `now`, under one
    /// lock. `local` is this member (copies of its own past connections are
    /// ignored), `stale` says which owners have restarted since (their
    /// connections are gone).
    pub fn apply_copies(
        &self,
        copies: &[ClientCopy],
        source: &str,
        local: &str,
        now: Instant,
        stale: impl Fn(&Owner) -> bool,
    ) -> Applied {
        let mut touched = BTreeSet::new();
        let mut applied = Applied::default();
        {
            let mut inner = self.inner.write();
            for copy in copies {
                let (services, held_newer) = inner.merge_copy(copy, source, local, now, &stale);
                if let Some(services) = services {
                    applied.changed += 1;
                    touched.extend(services);
                }
                if held_newer {
                    applied.behind.push(copy.id.clone());
                }
            }
        }
        for key in &touched {
            self.notify(key);
        }
        applied
    }

    /// Drops the copies of connections whose owner `stale` says has
    /// restarted since they were made: their connections died with that
    /// run of the owner. Nothing is announced (each member drops its own
    /// copies). Returns how many were dropped.
    pub fn drop_stale_connections(&self, stale: impl Fn(&Owner) -> bool) -> usize {
        let mut touched = Vec::new();
        let mut dropped = 0;
        {
            let mut inner = self.inner.write();
            let ids: Vec<String> = inner
                .clients
                .values()
                .filter(|c| c.kind == ClientKind::Connection && !c.is_local_connection())
                .filter(|c| c.owner.as_ref().is_some_and(&stale))
                .map(|c| c.id.clone())
                .collect();
            for id in ids {
                touched.extend(inner.drop_client(&id));
                dropped += 1;
            }
        }
        for key in &touched {
            self.notify(key);
        }
        dropped
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
    use crate::naming::{CopyExpiry, Selection, Vouched};

    const ME: &str = "me:8848";

    /// A copy of client `id` publishing `(service, ip, port)` instances,
    /// each written at `revision`.
    pub(in crate::naming::store) fn copy(
        id: &str,
        kind: ClientKind,
        revision: u64,
        instances: &[(&str, &str, u16)],
    ) -> ClientCopy {
        let live = instances.iter().map(|(s, ip, port)| (svc(s), inst(ip, *port), revision)).collect();
        ClientCopy { id: id.into(), kind, owner: None, delta: Delta { revision, live, ..Delta::default() } }
    }

    /// Applies `copies` from `p:1` to `store` at `now`, no owner stale.
    pub(in crate::naming::store) fn apply(store: &NamingStore, now: Instant, copies: &[ClientCopy]) -> usize {
        store.apply_copies(copies, "p:1", ME, now, |_| false).changed
    }

    fn removal(id: &str, kind: ClientKind, revision: u64, service: &str, ip: &str, port: u16) -> ClientCopy {
        let removed = vec![(svc(service), inst(ip, port).key(), revision)];
        ClientCopy { id: id.into(), kind, owner: None, delta: Delta { revision, removed, ..Delta::default() } }
    }

    fn me() -> Owner {
        Owner { member: ME.into(), incarnation: 1 }
    }

    #[test]
    fn copies_merge_slot_by_slot_and_leave_alone_what_they_do_not_mention() {
        let store = NamingStore::new(BeatTimeouts::default());
        let now = Instant::now();
        let c = ClientKind::Connection;
        assert_eq!(apply(&store, now, &[copy("c1", c, 5, &[("a", "10.0.0.1", 80)])]), 1);
        // A copy naming another slot adds it: the first one stays.
        assert_eq!(apply(&store, now, &[copy("c1", c, 6, &[("b", "10.0.0.2", 80)])]), 1);
        assert_eq!((hosts(&store, "a"), hosts(&store, "b")), (vec!["10.0.0.1:80".into()], vec!["10.0.0.2:80".into()]));
        // An older write of a slot changes nothing; the same again neither.
        assert_eq!(apply(&store, now, &[copy("c1", c, 4, &[("a", "10.0.0.9", 80)])]), 1, "a new slot");
        assert_eq!(apply(&store, now, &[copy("c1", c, 4, &[("a", "10.0.0.9", 80)])]), 0, "the same again");
        let older = ClientCopy { delta: Delta { revision: 4, ..Delta::default() }, ..copy("c1", c, 4, &[]) };
        assert_eq!(apply(&store, now, &[older]), 0);
        // A removal record removes the slot it names.
        assert_eq!(apply(&store, now, &[removal("c1", c, 7, "a", "10.0.0.9", 80)]), 1);
        assert_eq!(hosts(&store, "a"), ["10.0.0.1:80"]);
        assert_eq!(apply(&store, now, &[removal("c1", c, 8, "b", "10.0.0.2", 80)]), 1);
        assert!(store.service(&svc("b")).is_none(), "the emptied implicit service is forgotten");
        let client = store.client("c1").expect("held");
        assert_eq!((client.revision(), client.origin), (8, Origin::Synced { source: "p:1".into() }));
    }

    #[test]
    fn applying_copies_announces_only_changed_services() {
        let store = NamingStore::new(BeatTimeouts::default());
        let now = Instant::now();
        let mut changes = store.subscribe_changes();
        let mut local = store.subscribe_local_changes();
        let c = ClientKind::Connection;
        apply(&store, now, &[copy("c1", c, 1, &[("a", "10.0.0.1", 80), ("b", "10.0.0.1", 81)])]);
        let mut seen = BTreeSet::new();
        while let Ok(k) = changes.try_recv() {
            seen.insert(k.name);
        }
        assert_eq!(seen, BTreeSet::from(["a".to_string(), "b".to_string()]));
        // A newer revision of a slot with the same instance is no visible change.
        apply(&store, now, &[copy("c1", c, 2, &[("a", "10.0.0.1", 80), ("b", "10.0.0.2", 81)])]);
        assert_eq!(changes.try_recv().map(|k| k.name), Ok("b".to_string()));
        assert!(changes.try_recv().is_err(), "service a did not change");
        assert!(local.try_recv().is_err(), "copies are not local changes");
    }

    #[test]
    fn a_local_connection_is_never_removed_by_a_peer_but_takes_newer_data() {
        let store = NamingStore::new(BeatTimeouts::default());
        store.register_ephemeral("conn", ClientKind::Connection, &svc("a"), inst("10.0.0.1", 80));
        let held = store.client("conn").map(|c| c.revision()).expect("held");
        let floor = ClientCopy {
            delta: Delta { revision: held + 5, floor: held + 5, ..Delta::default() },
            ..copy("conn", ClientKind::Connection, 0, &[])
        };
        apply(&store, Instant::now(), &[floor]);
        assert_eq!(hosts(&store, "a"), ["10.0.0.1:80"]);
        let mut newer = copy("conn", ClientKind::Connection, held + 6, &[("a", "10.0.0.1", 80)]);
        newer.delta.live[0].1.weight = 3.0;
        assert_eq!(apply(&store, Instant::now(), &[newer]), 1);
        let client = store.client("conn").expect("held");
        assert_eq!(client.origin, Origin::Local, "still this node's connection");
        assert_eq!(store.query(&svc("a"), &Selection::default()).hosts[0].weight, 3.0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_copy_older_than_what_is_held_names_its_client_behind() {
        let store = NamingStore::new(BeatTimeouts::default());
        let now = clock::now();
        let id = "10.0.0.1:80#true";
        let ip = ClientKind::IpPort;
        let applied = |c: ClientCopy| store.apply_copies(&[c], "p:1", ME, now, |_| false);
        let live = |revision| copy(id, ip, revision, &[("a", "10.0.0.1", 80)]);
        assert_eq!(applied(live(5)), Applied { changed: 1, behind: vec![] });
        // The same version again: nobody is behind.
        assert_eq!(applied(live(5)), Applied::default());
        // An older removal of a slot written since: the sender is behind.
        assert_eq!(applied(removal(id, ip, 4, "a", "10.0.0.1", 80)), Applied { changed: 0, behind: vec![id.into()] });
        // Removed here (a tombstone): the write it superseded is behind.
        assert_eq!(applied(removal(id, ip, 6, "a", "10.0.0.1", 80)).changed, 1);
        assert!(!store.has_client(id));
        assert_eq!(applied(live(5)), Applied { changed: 0, behind: vec![id.into()] });
        assert_eq!(applied(removal(id, ip, 6, "a", "10.0.0.1", 80)), Applied::default());
        // A slot the copy does not name is not its sender's lag.
        assert_eq!(applied(copy(id, ip, 7, &[("b", "10.0.0.1", 80)])), Applied { changed: 1, behind: vec![] });
    }

    #[tokio::test(start_paused = true)]
    async fn a_removal_outlives_older_copies_and_yields_to_newer_ones() {
        let store = NamingStore::new(BeatTimeouts::default());
        let now = clock::now();
        let id = "10.0.0.1:80#true";
        let ip = ClientKind::IpPort;
        apply(&store, now, &[copy(id, ip, 5, &[("a", "10.0.0.1", 80)])]);
        let digest = store.client(id).map(|c| c.digest()).expect("held");
        // A removal older than what is held is ignored (registered again since).
        assert_eq!(apply(&store, now, &[removal(id, ip, 4, "a", "10.0.0.1", 80)]), 0);
        assert_eq!(apply(&store, now, &[removal(id, ip, 6, "a", "10.0.0.1", 80)]), 1);
        assert!(!store.has_client(id), "an ip:port client exists only through its instances");
        // The copy taken before the removal cannot bring it back, by sync or verify.
        assert_eq!(apply(&store, now, &[copy(id, ip, 5, &[("a", "10.0.0.1", 80)])]), 0);
        let outcome = store.verify(&[Vouched { id, revision: 5, digest }], now, |_| false, |_| false);
        assert_eq!(outcome.newer_here, [id], "the removal is newer: it is sent back");
        let sent = store.copies(&[(id.to_string(), None)], &me());
        assert_eq!(sent[0].delta.removed, [(svc("a"), inst("10.0.0.1", 80).key(), 6)]);
        // A registration after the removal wins.
        assert_eq!(apply(&store, now, &[copy(id, ip, 7, &[("a", "10.0.0.1", 80)])]), 1);
        assert_eq!(hosts(&store, "a"), ["10.0.0.1:80"]);
        // A removal this node has not seen the client for is remembered too.
        assert_eq!(apply(&store, now, &[removal("other", ip, 9, "a", "10.0.0.2", 80)]), 0);
        let other = || copy("other", ip, 8, &[("a", "10.0.0.2", 80)]);
        assert_eq!(apply(&store, now, &[other()]), 0);
        // Removal records are forgotten after their own retention, not before.
        let (max_age, tombstone_ttl) = (Duration::from_secs(5), Duration::from_secs(30));
        advance(tombstone_ttl).await;
        store.expire_copies(clock::now(), CopyExpiry { connection: max_age, tombstone_ttl }, |_| false);
        assert_eq!(apply(&store, now, &[other()]), 0, "kept for the retention exactly");
        advance(Duration::from_millis(1)).await;
        store.expire_copies(clock::now(), CopyExpiry { connection: max_age, tombstone_ttl }, |_| false);
        assert_eq!(apply(&store, now, &[other()]), 1);
    }

    #[test]
    fn an_ip_port_copy_without_instances_is_no_client() {
        let store = NamingStore::new(BeatTimeouts::default());
        let now = Instant::now();
        let id = "10.0.0.1:80#true";
        assert_eq!(apply(&store, now, &[copy(id, ClientKind::IpPort, 1, &[])]), 0);
        assert!(!store.has_client(id));
        apply(&store, now, &[copy(id, ClientKind::IpPort, 1, &[("a", "10.0.0.1", 80)])]);
        apply(&store, now, &[removal(id, ClientKind::IpPort, 2, "a", "10.0.0.1", 80)]);
        assert!(!store.has_client(id));
        assert!(store.service(&svc("a")).is_none());
    }

    #[test]
    fn whole_copies_round_trip_and_deltas_carry_only_their_slots() {
        let source = NamingStore::new(BeatTimeouts::default());
        source.register_ephemeral("c1", ClientKind::Connection, &svc("a"), inst("10.0.0.1", 80));
        source.register_ephemeral("c1", ClientKind::Connection, &svc("b"), inst("10.0.0.1", 81));
        source.register_ephemeral("c1", ClientKind::Connection, &svc("b"), inst("10.0.0.1", 82));
        let copies = source.copies(&[("c1".into(), None), ("unknown".into(), None)], &me());
        assert_eq!(copies.len(), 1, "a client nothing is known of is left out");
        assert_eq!(copies[0].owner, Some(me()), "this node's connection names this node");
        assert_eq!((copies[0].delta.live.len(), copies[0].delta.removed.len()), (2, 1), "b:81 was replaced");
        let target = NamingStore::new(BeatTimeouts::default());
        target.apply_copies(&copies, "src:1", "other:8848", Instant::now(), |_| false);
        assert_eq!(hosts(&target, "a"), hosts(&source, "a"));
        assert_eq!(hosts(&target, "b"), hosts(&source, "b"));
        assert_eq!(target.client_ids(), ["c1"]);
        let (held, sent) = (target.client("c1").expect("copy"), source.client("c1").expect("local"));
        assert_eq!((held.revision(), held.digest()), (sent.revision(), sent.digest()));
        assert_eq!(held.owner, Some(me()));
        // A delta carries the slots named, with the revision and floor.
        let slot = (svc("b"), inst("10.0.0.1", 81).key());
        let delta = &source.copies(&[("c1".into(), Some(vec![slot.clone()]))], &me())[0].delta;
        assert!(delta.live.is_empty());
        assert_eq!(delta.removed.iter().map(|(s, k, _)| (s.clone(), k.clone())).collect::<Vec<_>>(), [slot]);
        assert_eq!(delta.revision, sent.revision());
    }

    #[test]
    fn copies_of_this_node_s_past_connections_and_of_restarted_owners_are_ignored() {
        let store = NamingStore::new(BeatTimeouts::default());
        let now = Instant::now();
        let owned = |id: &str, member: &str, incarnation: u64| ClientCopy {
            owner: Some(Owner { member: member.into(), incarnation }),
            ..copy(id, ClientKind::Connection, 3, &[("a", "10.0.0.1", 80)])
        };
        // A copy of a connection this node held (an earlier run, or closed).
        assert_eq!(apply(&store, now, &[owned("mine", ME, 1)]), 0);
        // A copy from an owner that restarted since is gone with that run.
        let stale = |o: &Owner| o.member == "b:8848" && o.incarnation < 10;
        assert_eq!(store.apply_copies(&[owned("old", "b:8848", 9)], "b:8848", ME, now, stale).changed, 0);
        assert_eq!(store.apply_copies(&[owned("new", "b:8848", 10)], "b:8848", ME, now, stale).changed, 1);
        assert_eq!(store.client_ids(), ["new"]);
        // Learning of a restart drops what the earlier run held at once.
        apply(&store, now, &[owned("older", "c:8848", 4)]);
        store.register_ephemeral("local", ClientKind::Connection, &svc("a"), inst("10.0.0.2", 80));
        let dropped = store.drop_stale_connections(|o| o.member == "c:8848" && o.incarnation < 5);
        assert_eq!(dropped, 1);
        assert_eq!(store.client_ids(), ["local", "new"]);
        assert_eq!(hosts(&store, "a"), ["10.0.0.1:80", "10.0.0.2:80"]);
    }
}
