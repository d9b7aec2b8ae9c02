//! A client's replicated state and Distro's merge rules, without I/O: no
//! lock, no clock (times are passed in), no network. The store applies
//! them under its lock; Distro moves their [`Delta`]s between members.
//!
//! # The state
//!
//! A client is a set of *slots*, one per `(service, ip#port#cluster)`.
//! A slot holds either a live instance with the revision of the write that
//! made it, or a removal record with the revision of its removal. Besides,
//! the client has a *floor*: a whole-client removal (a closed connection)
//! at revision R removes every slot written at or below R. Revisions come
//! from the writer's clock (`next_revision`: past the client's highest
//! revision and the wall clock in ms), so the later of two writes made on
//! different members has the higher revision.
//!
//! # The rules
//!
//! * **Per slot, the higher revision wins** ([`supersedes`]). At equal
//!   revisions a removal wins over a write, and of two different writes
//!   the one [`content_order`] puts last: a fixed order, so every member
//!   makes the same choice whichever it saw first.
//! * **A floor removes what is at or below it**, and only that: a write
//!   above the floor (a client that registers again) lives on.
//! * **Merging never replaces a whole client.** What a delta does not
//!   mention is left alone: only a newer version of a slot, or a floor,
//!   removes anything. A delta with a few slots and a whole copy merge the
//!   same way, so two members that both wrote one client (each from its
//!   own view of who is responsible) keep both writes.
//! * **A connection belongs to its node.** A floor from a peer never
//!   removes a local connection: only its node decides that it closed.
//!
//! Together these make the merge a join: applying the same deltas in any
//! order, any number of times, on any member gives the same state (the
//! tests below check every interleaving of small histories). Removal
//! records are forgotten after the Distro tombstone TTL, longer than the
//! copy expiry, so a copy old enough to hold a slot whose removal was
//! forgotten has expired first (see `docs/ARCHITECTURE.md`).
//!
//! # The digest
//!
//! Verify compares a client's revision and [`Client::digest`]: the wrapping
//! sum of FNV-1a hashes of every live slot with its revision. FNV-1a is
//! fixed (unlike `DefaultHasher`, which may change between Rust releases),
//! and a sum is independent of iteration order and kept up to date
//! incrementally on every change. Two copies with equal revisions but
//! different contents have different digests (but for a 2⁻⁶⁴ accident).

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use super::client::{next_revision, Client, ClientKind, Origin, Published, Removal};
use super::model::{Instance, InstanceKey, ServiceKey};

/// An instance slot of a client: a service and an instance key in it.
pub type Slot = (ServiceKey, InstanceKey);

/// One version of a slot.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Version<'a> {
    /// A live instance, written at `revision`.
    Live {
        /// The revision of the write.
        revision: u64,
        /// The instance.
        instance: &'a Instance,
    },
    /// Removed at `revision`.
    Removed {
        /// The revision of the removal.
        revision: u64,
    },
}

impl Version<'_> {
    /// The revision of this version.
    pub fn revision(&self) -> u64 {
        match self {
            Version::Live { revision, .. } | Version::Removed { revision } => *revision,
        }
    }
}

/// Whether `incoming` supersedes `held` (the rules above): a total order
/// over versions, so that whichever of two a member sees first, it keeps
/// the same one.
pub fn supersedes(incoming: Version<'_>, held: Version<'_>) -> bool {
    match incoming.revision().cmp(&held.revision()) {
        Ordering::Greater => true,
        Ordering::Less => false,
        Ordering::Equal => match (incoming, held) {
            (Version::Removed { .. }, Version::Live { .. }) => true,
            (Version::Removed { .. }, Version::Removed { .. }) | (Version::Live { .. }, Version::Removed { .. }) => {
                false
            }
            (Version::Live { instance: a, .. }, Version::Live { instance: b, .. }) => {
                content_order(a, b) == Ordering::Greater
            }
        },
    }
}

/// A fixed order over the contents of two instances of one slot, for ties
/// at equal revisions.
pub fn content_order(a: &Instance, b: &Instance) -> Ordering {
    a.healthy
        .cmp(&b.healthy)
        .then(a.enabled.cmp(&b.enabled))
        .then(a.weight.total_cmp(&b.weight))
        .then(a.ephemeral.cmp(&b.ephemeral))
        .then_with(|| a.metadata.cmp(&b.metadata))
        .then_with(|| (&a.ip, a.port, &a.cluster).cmp(&(&b.ip, b.port, &b.cluster)))
}

/// Some slots of one client, or all of them, as Distro sends them: the
/// client's highest revision and floor, the live versions and the removal
/// records.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Delta {
    /// The highest revision the sender has seen for the client.
    pub revision: u64,
    /// Every slot written at or below this is removed.
    pub floor: u64,
    /// Live versions: service, instance, revision of the write.
    pub live: Vec<(ServiceKey, Instance, u64)>,
    /// Removal records: service, instance key, revision of the removal.
    pub removed: Vec<(ServiceKey, InstanceKey, u64)>,
}

impl Delta {
    /// Whether the delta carries no slot and no floor.
    pub fn is_empty(&self) -> bool {
        self.floor == 0 && self.live.is_empty() && self.removed.is_empty()
    }
}

/// What a merge did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Merged {
    /// Whether anything held changed (a slot, the floor, the revision).
    pub changed: bool,
    /// Services whose live instances changed (what subscribers see).
    pub services: BTreeSet<ServiceKey>,
    /// Whether a slot the delta names is held here in a version that
    /// supersedes the one sent (or under a floor the sender lacks): the
    /// sender is behind and should be sent what is held.
    pub held_newer: bool,
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// FNV-1a (64 bit) of `bytes`, continuing from `hash`.
pub fn fnv1a(mut hash: u64, bytes: &[u8]) -> u64 {
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(FNV_PRIME);
    }
    hash
}

/// The digest of one live slot written at `revision`. Fields are separated
/// by 0xFF, a byte no UTF-8 text contains, so no two slots run together.
pub fn slot_digest(service: &ServiceKey, key: &InstanceKey, revision: u64) -> u64 {
    let mut hash = FNV_OFFSET;
    for text in [&service.namespace, &service.group, &service.name, &key.ip, &key.cluster] {
        hash = fnv1a(hash, text.as_bytes());
        hash = fnv1a(hash, &[0xff]);
    }
    hash = fnv1a(hash, &key.port.to_be_bytes());
    fnv1a(hash, &revision.to_be_bytes())
}

impl Client {
    /// The version held for a slot, if any.
    pub fn version(&self, service: &ServiceKey, key: &InstanceKey) -> Option<Version<'_>> {
        if let Some(p) = self.published.get(service).and_then(|m| m.get(key)) {
            return Some(Version::Live { revision: p.revision, instance: &p.instance });
        }
        self.removed.get(service).and_then(|m| m.get(key)).map(|r| Version::Removed { revision: r.revision })
    }

    /// The floor: every slot written at or below it is removed.
    pub fn floor(&self) -> u64 {
        self.floor
    }

    /// Removal records, per service.
    pub fn removals(&self) -> impl Iterator<Item = (&ServiceKey, &InstanceKey, &Removal)> {
        self.removed.iter().flat_map(|(s, m)| m.iter().map(move |(k, r)| (s, k, r)))
    }

    /// The digest recomputed from the slots (the kept one must equal it).
    pub fn recomputed_digest(&self) -> u64 {
        self.published
            .iter()
            .flat_map(|(s, m)| m.iter().map(move |(k, p)| slot_digest(s, k, p.revision)))
            .fold(0, u64::wrapping_add)
    }

    /// Puts a live version in a slot (dropping a removal record there);
    /// returns whether what consumers see changed.
    fn put_live(&mut self, service: &ServiceKey, instance: Instance, revision: u64, last_beat: Instant) -> bool {
        let key = instance.key();
        self.take_removal(service, &key);
        self.digest = self.digest.wrapping_add(slot_digest(service, &key, revision));
        let set = self.published.entry(service.clone()).or_default();
        let previous = set.insert(key.clone(), Published { instance, revision, last_beat });
        let changed = match &previous {
            Some(old) => {
                self.digest = self.digest.wrapping_sub(slot_digest(service, &key, old.revision));
                set.get(&key).is_some_and(|new| new.instance != old.instance)
            }
            None => true,
        };
        self.revision = self.revision.max(revision);
        changed
    }

    /// Takes a live version out of a slot.
    fn take_live(&mut self, service: &ServiceKey, key: &InstanceKey) -> Option<Published> {
        let set = self.published.get_mut(service)?;
        let taken = set.remove(key)?;
        if set.is_empty() {
            self.published.remove(service);
        }
        self.digest = self.digest.wrapping_sub(slot_digest(service, key, taken.revision));
        Some(taken)
    }

    fn take_removal(&mut self, service: &ServiceKey, key: &InstanceKey) -> Option<Removal> {
        let set = self.removed.get_mut(service)?;
        let taken = set.remove(key)?;
        if set.is_empty() {
            self.removed.remove(service);
        }
        Some(taken)
    }

    fn put_removal(&mut self, service: &ServiceKey, key: &InstanceKey, revision: u64, at: Instant) {
        self.removed.entry(service.clone()).or_default().insert(key.clone(), Removal { revision, at });
        self.revision = self.revision.max(revision);
    }

    /// Records a change made on this node and returns its revision: past
    /// both the client's highest revision and the wall clock in ms. An
    /// ip:port client changed here becomes local; a connection keeps its
    /// origin (its owner is the node it is connected to).
    pub fn touch_local(&mut self) -> u64 {
        self.revision = next_revision(self.revision);
        if self.kind == ClientKind::IpPort {
            self.origin = Origin::Local;
        }
        self.revision
    }

    /// A local write of `instance` into `service` at `revision` (from
    /// [`Client::touch_local`]); returns whether what consumers see changed.
    /// A write at or below the floor is no write (a revision from
    /// [`Client::touch_local`] is always above it).
    pub fn write(&mut self, service: &ServiceKey, instance: Instance, revision: u64, now: Instant) -> bool {
        revision > self.floor && self.put_live(service, instance, revision, now)
    }

    /// A local removal of a slot at `revision`: a removal record stays,
    /// also for a slot this node never held (`blind`), so that a write of
    /// it older than the removal, held elsewhere, cannot come back. Without
    /// `blind`, removing nothing leaves nothing. Returns whether a live
    /// instance was removed.
    pub fn remove(
        &mut self,
        service: &ServiceKey,
        key: &InstanceKey,
        revision: u64,
        now: Instant,
        blind: bool,
    ) -> bool {
        if revision <= self.floor {
            return false;
        }
        let was_live = self.take_live(service, key).is_some();
        if was_live || blind || self.version(service, key).is_some() {
            self.put_removal(service, key, revision, now);
        }
        was_live
    }

    /// A whole-client removal at `revision`: the floor rises to it and every
    /// slot at or below it goes. Returns the services that lost instances.
    pub fn remove_all(&mut self, revision: u64) -> BTreeSet<ServiceKey> {
        self.raise_floor(revision)
    }

    fn raise_floor(&mut self, floor: u64) -> BTreeSet<ServiceKey> {
        if floor <= self.floor {
            return BTreeSet::new();
        }
        self.floor = floor;
        self.revision = self.revision.max(floor);
        let dead: Vec<Slot> = self
            .published
            .iter()
            .flat_map(|(s, m)| m.iter().filter(|(_, p)| p.revision <= floor).map(move |(k, _)| (s.clone(), k.clone())))
            .collect();
        let mut services = BTreeSet::new();
        for (service, key) in dead {
            self.take_live(&service, &key);
            services.insert(service);
        }
        for set in self.removed.values_mut() {
            set.retain(|_, r| r.revision > floor);
        }
        self.removed.retain(|_, set| !set.is_empty());
        services
    }

    /// Merges a delta received from a peer at `now` (the rules above).
    pub fn merge(&mut self, delta: &Delta, now: Instant) -> Merged {
        let mut merged = Merged::default();
        // Only its own node closes a connection.
        if !self.is_local_connection() && delta.floor > self.floor {
            merged.services = self.raise_floor(delta.floor);
            merged.changed = true;
        }
        for (service, instance, revision) in &delta.live {
            if *revision <= self.floor {
                merged.held_newer |= delta.floor < self.floor;
                continue;
            }
            let incoming = Version::Live { revision: *revision, instance };
            if let Some(held) = self.version(service, &instance.key()).filter(|held| !supersedes(incoming, *held)) {
                merged.held_newer |= supersedes(held, incoming);
                continue;
            }
            if self.put_live(service, instance.clone(), *revision, now) {
                merged.services.insert(service.clone());
            }
            merged.changed = true;
        }
        for (service, key, revision) in &delta.removed {
            if *revision <= self.floor {
                merged.held_newer |= delta.floor < self.floor;
                continue;
            }
            let incoming = Version::Removed { revision: *revision };
            if let Some(held) = self.version(service, key).filter(|held| !supersedes(incoming, *held)) {
                merged.held_newer |= supersedes(held, incoming);
                continue;
            }
            if self.take_live(service, key).is_some() {
                merged.services.insert(service.clone());
            }
            self.put_removal(service, key, *revision, now);
            merged.changed = true;
        }
        if delta.revision > self.revision {
            self.revision = delta.revision;
            merged.changed = true;
        }
        merged
    }

    /// This client's state for `slots` (`None`: every slot) as a delta:
    /// the live version or removal record held for each, with the client's
    /// revision and floor. A slot held in neither form is left out (its
    /// removal record was forgotten, or the floor covers it).
    pub fn delta(&self, slots: Option<&[Slot]>) -> Delta {
        let mut delta = Delta { revision: self.revision, floor: self.floor, ..Delta::default() };
        let mut add = |service: &ServiceKey, key: &InstanceKey| match self.version(service, key) {
            Some(Version::Live { revision, instance }) => {
                delta.live.push((service.clone(), instance.clone(), revision))
            }
            Some(Version::Removed { revision }) => delta.removed.push((service.clone(), key.clone(), revision)),
            None => {}
        };
        match slots {
            Some(slots) => {
                for (service, key) in slots {
                    add(service, key);
                }
            }
            None => {
                for (service, set) in &self.published {
                    for key in set.keys() {
                        add(service, key);
                    }
                }
                for (service, set) in &self.removed {
                    for key in set.keys() {
                        add(service, key);
                    }
                }
            }
        }
        delta
    }

    /// Forgets removal records older than `ttl` at `now`; returns whether
    /// any was forgotten.
    pub fn forget_removals(&mut self, now: Instant, ttl: Duration) -> bool {
        let before: usize = self.removed.values().map(BTreeMap::len).sum();
        for set in self.removed.values_mut() {
            set.retain(|_, r| now.saturating_duration_since(r.at) <= ttl);
        }
        self.removed.retain(|_, set| !set.is_empty());
        before != self.removed.values().map(BTreeMap::len).sum::<usize>()
    }

    /// Sets the health of a live slot at `revision` (beats and their
    /// expiry); returns whether it changed.
    pub fn set_health(&mut self, service: &ServiceKey, key: &InstanceKey, healthy: bool, revision: u64) -> bool {
        let Some(p) = self.published.get(service).and_then(|m| m.get(key)) else { return false };
        if p.instance.healthy == healthy {
            return false;
        }
        let instance = Instance { healthy, ..p.instance.clone() };
        let last_beat = p.last_beat;
        self.put_live(service, instance, revision, last_beat)
    }

    /// Renews the last beat of a live slot (not a change Distro sends).
    pub fn renew(&mut self, service: &ServiceKey, key: &InstanceKey, now: Instant) -> Option<&Instance> {
        let p = self.published.get_mut(service)?.get_mut(key)?;
        p.last_beat = now;
        Some(&p.instance)
    }

    /// Renews every live slot's last beat (a copy its source confirmed).
    pub fn renew_all(&mut self, now: Instant) {
        for p in self.published.values_mut().flat_map(BTreeMap::values_mut) {
            p.last_beat = now;
        }
    }

    /// The live slots of `service`, by key.
    pub fn live_keys(&self, service: &ServiceKey) -> Vec<InstanceKey> {
        self.published.get(service).map(|m| m.keys().cloned().collect()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::naming::store::tests::{inst, svc};

    fn ip_port() -> Client {
        Client::new("10.0.0.1:80#true", ClientKind::IpPort)
    }

    /// What a member holds of a client, times aside: floor, revision, and
    /// every slot's version, in order.
    type Canonical = (u64, u64, Vec<(Slot, u64, Option<Instance>)>);

    fn canonical(c: &Client) -> Canonical {
        let mut slots: Vec<(Slot, u64, Option<Instance>)> = c
            .published
            .iter()
            .flat_map(|(s, m)| {
                m.iter().map(move |(k, p)| ((s.clone(), k.clone()), p.revision, Some(p.instance.clone())))
            })
            .chain(c.removals().map(|(s, k, r)| ((s.clone(), k.clone()), r.revision, None)))
            .collect();
        slots.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
        (c.floor, c.revision, slots)
    }

    fn live(c: &Client) -> Vec<(String, String, u16, u64)> {
        let mut out: Vec<_> = c
            .published
            .iter()
            .flat_map(|(s, m)| {
                m.values().map(move |p| (s.name.clone(), p.instance.ip.clone(), p.instance.port, p.revision))
            })
            .collect();
        out.sort();
        out
    }

    #[test]
    fn the_slot_rule_is_a_total_order_decided_by_revision_then_kind_then_content() {
        let (a, b) = (inst("10.0.0.1", 80), Instance { weight: 2.0, ..inst("10.0.0.1", 80) });
        assert_eq!(content_order(&a, &b), Ordering::Less);
        for (held_rev, in_rev) in [(5, 4), (5, 5), (5, 6)] {
            let versions = [
                Version::Live { revision: in_rev, instance: &a },
                Version::Live { revision: in_rev, instance: &b },
                Version::Removed { revision: in_rev },
            ];
            let helds = [
                Version::Live { revision: held_rev, instance: &a },
                Version::Live { revision: held_rev, instance: &b },
                Version::Removed { revision: held_rev },
            ];
            for incoming in versions {
                for held in helds {
                    let want = match in_rev.cmp(&held_rev) {
                        Ordering::Greater => true,
                        Ordering::Less => false,
                        Ordering::Equal => match (incoming, held) {
                            (Version::Removed { .. }, Version::Live { .. }) => true,
                            (Version::Live { instance: x, .. }, Version::Live { instance: y, .. }) => {
                                std::ptr::eq(x, &b) && std::ptr::eq(y, &a)
                            }
                            _ => false,
                        },
                    };
                    assert_eq!(supersedes(incoming, held), want, "{incoming:?} over {held:?}");
                    // Antisymmetric: two different versions never both win.
                    if incoming != held {
                        assert!(!(supersedes(incoming, held) && supersedes(held, incoming)), "{incoming:?} {held:?}");
                    }
                    assert!(!supersedes(held, held), "a version does not supersede itself");
                }
            }
        }
    }

    #[test]
    fn concurrent_writers_of_one_client_on_two_members_keep_both_writes() {
        // Two members each take a write for the same ip:port client (one
        // address, two services), each from its own view of who is
        // responsible; their syncs cross.
        let now = Instant::now();
        let (mut a, mut b) = (ip_port(), ip_port());
        a.write(&svc("orders"), inst("10.0.0.1", 80), 100, now);
        b.write(&svc("billing"), inst("10.0.0.1", 80), 101, now);
        let (from_a, from_b) = (a.delta(None), b.delta(None));
        assert_eq!(b.merge(&from_a, now).services, BTreeSet::from([svc("orders")]));
        assert_eq!(a.merge(&from_b, now).services, BTreeSet::from([svc("billing")]));
        let both = vec![("billing".into(), "10.0.0.1".into(), 80, 101), ("orders".into(), "10.0.0.1".into(), 80, 100)];
        assert_eq!(live(&a), both);
        assert_eq!(canonical(&a), canonical(&b));
        assert_eq!((a.revision, a.digest), (101, b.digest));
        // One instance written on both: the later write wins everywhere.
        a.write(&svc("orders"), Instance { weight: 3.0, ..inst("10.0.0.1", 80) }, 105, now);
        b.write(&svc("orders"), Instance { weight: 4.0, ..inst("10.0.0.1", 80) }, 106, now);
        let (from_a, from_b) = (a.delta(None), b.delta(None));
        a.merge(&from_b, now);
        b.merge(&from_a, now);
        assert_eq!(canonical(&a), canonical(&b));
        assert_eq!(a.published[&svc("orders")].values().next().map(|p| p.instance.weight), Some(4.0));
    }

    #[test]
    fn a_removal_racing_a_write_is_decided_by_revision_the_same_everywhere() {
        let now = Instant::now();
        let key = inst("10.0.0.1", 80).key();
        for (removed_at, written_at, survives) in [(110, 105, false), (105, 110, true), (110, 110, false)] {
            let (mut a, mut b) = (ip_port(), ip_port());
            a.write(&svc("s"), inst("10.0.0.1", 80), 100, now);
            b.merge(&a.delta(None), now);
            // A deregisters while B takes an update of the same instance.
            a.remove(&svc("s"), &key, removed_at, now, false);
            b.write(&svc("s"), Instance { weight: 9.0, ..inst("10.0.0.1", 80) }, written_at, now);
            let slot = [(svc("s"), key.clone())];
            let (from_a, from_b) = (a.delta(Some(&slot)), b.delta(Some(&slot)));
            a.merge(&from_b, now);
            b.merge(&from_a, now);
            assert_eq!(canonical(&a), canonical(&b), "removed at {removed_at}, written at {written_at}");
            assert_eq!(!live(&a).is_empty(), survives, "removed at {removed_at}, written at {written_at}");
        }
    }

    #[test]
    fn a_dropped_delta_is_found_by_the_digest_and_repaired_by_a_whole_copy() {
        let now = Instant::now();
        let (mut a, mut b) = (ip_port(), ip_port());
        a.write(&svc("s"), inst("10.0.0.1", 80), 100, now);
        b.merge(&a.delta(None), now);
        assert_eq!((a.revision, a.digest), (b.revision, b.digest));
        // A's next delta is lost on the way to B.
        a.write(&svc("t"), inst("10.0.0.1", 80), 101, now);
        assert_ne!((a.revision, a.digest), (b.revision, b.digest), "verify sees the difference");
        // Equal revisions with different contents differ by digest alone.
        b.write(&svc("u"), inst("10.0.0.1", 80), 101, now);
        assert_eq!(a.revision, b.revision);
        assert_ne!(a.digest, b.digest);
        // The repair: both sides send their whole copy.
        let (from_a, from_b) = (a.delta(None), b.delta(None));
        a.merge(&from_b, now);
        b.merge(&from_a, now);
        assert_eq!(canonical(&a), canonical(&b));
        assert_eq!(a.digest, b.digest);
        assert_eq!(live(&a).len(), 3);
    }

    #[test]
    fn a_snapshot_merged_over_local_writes_keeps_them() {
        // A loading member took a write for a client before its snapshot
        // arrived; the snapshot's copy of that client merges around it.
        let now = Instant::now();
        let mut loading = ip_port();
        loading.write(&svc("new"), inst("10.0.0.1", 80), 200, now);
        let mut peer = ip_port();
        peer.write(&svc("old"), inst("10.0.0.1", 80), 150, now);
        peer.remove(&svc("gone"), &inst("10.0.0.1", 80).key(), 160, now, true);
        let merged = loading.merge(&peer.delta(None), now);
        assert_eq!(merged.services, BTreeSet::from([svc("old")]));
        assert_eq!(live(&loading).iter().map(|l| l.0.as_str()).collect::<Vec<_>>(), ["new", "old"]);
        assert_eq!(loading.revision, 200, "the highest revision seen");
        assert!(loading.version(&svc("gone"), &inst("10.0.0.1", 80).key()).is_some(), "the removal record came too");
    }

    #[test]
    fn crashed_between_two_steps_a_delta_applied_in_part_then_again_gives_one_result() {
        // A member applies the first slots of a delta, then stops (its
        // acknowledgement never left); the sender sends the delta again.
        let now = Instant::now();
        let mut source = ip_port();
        for (i, name) in ["a", "b", "c"].iter().enumerate() {
            source.write(&svc(name), inst("10.0.0.1", 80), 100 + i as u64, now);
        }
        source.remove(&svc("a"), &inst("10.0.0.1", 80).key(), 110, now, false);
        let whole = source.delta(None);
        let mut once = ip_port();
        once.merge(&whole, now);
        let mut part = ip_port();
        part.merge(&Delta { live: whole.live[..1].to_vec(), removed: vec![], ..whole.clone() }, now);
        part.merge(&whole, now);
        part.merge(&whole, now);
        assert_eq!(canonical(&part), canonical(&once));
        assert_eq!(canonical(&once), canonical(&source));
        assert!(!part.merge(&whole, now).changed, "a repeated delta changes nothing");
    }

    #[test]
    fn a_whole_client_removal_takes_what_is_at_or_below_it_and_nothing_written_later() {
        let now = Instant::now();
        let mut conn =
            Client { origin: Origin::Synced { source: "b:1".into() }, ..Client::new("c", ClientKind::Connection) };
        conn.merge(
            &Delta {
                revision: 120,
                live: vec![(svc("a"), inst("10.0.0.1", 80), 100), (svc("b"), inst("10.0.0.1", 81), 120)],
                ..Delta::default()
            },
            now,
        );
        let merged = conn.merge(&Delta { revision: 110, floor: 110, ..Delta::default() }, now);
        assert_eq!(merged.services, BTreeSet::from([svc("a")]));
        assert_eq!(live(&conn), [("b".into(), "10.0.0.1".into(), 81, 120)]);
        // An old copy of the removed slot cannot come back.
        let old = Delta { revision: 100, live: vec![(svc("a"), inst("10.0.0.1", 80), 100)], ..Delta::default() };
        assert!(!conn.merge(&old, now).changed);
        assert_eq!(live(&conn).len(), 1);
        // A floor from a peer never removes a local connection.
        let mut mine = Client::new("m", ClientKind::Connection);
        mine.write(&svc("a"), inst("10.0.0.1", 80), 100, now);
        assert!(!mine
            .merge(&Delta { revision: 200, floor: 200, ..Delta::default() }, now)
            .services
            .contains(&svc("a")));
        assert_eq!(live(&mine).len(), 1);
        // ...but its own removal does.
        assert_eq!(mine.remove_all(201), BTreeSet::from([svc("a")]));
        assert!(mine.published.is_empty() && mine.floor == 201);
    }

    #[test]
    fn removals_are_recorded_and_forgotten_after_their_ttl() {
        let t0 = Instant::now();
        let key = inst("10.0.0.1", 80).key();
        let mut c = ip_port();
        assert!(!c.remove(&svc("s"), &key, 100, t0, false), "nothing to remove");
        assert!(c.version(&svc("s"), &key).is_none(), "and nothing recorded without blind");
        c.remove(&svc("s"), &key, 100, t0, true);
        assert_eq!(c.version(&svc("s"), &key), Some(Version::Removed { revision: 100 }));
        let ttl = Duration::from_secs(10);
        assert!(!c.forget_removals(t0 + ttl, ttl), "kept for the TTL exactly");
        assert!(c.forget_removals(t0 + ttl + Duration::from_millis(1), ttl));
        assert!(c.is_empty());
    }

    #[test]
    fn the_digest_follows_every_change_and_only_live_slots_and_their_revisions() {
        let now = Instant::now();
        let mut c = ip_port();
        assert_eq!(c.digest, 0);
        c.write(&svc("s"), inst("10.0.0.1", 80), 100, now);
        let one = c.digest;
        c.write(&svc("s"), Instance { weight: 5.0, ..inst("10.0.0.1", 80) }, 101, now);
        assert_ne!(c.digest, one, "a new revision of a slot changes it");
        c.set_health(&svc("s"), &inst("10.0.0.1", 80).key(), false, 102);
        c.write(&svc("t"), inst("10.0.0.1", 80), 103, now);
        c.remove(&svc("t"), &inst("10.0.0.1", 80).key(), 104, now, false);
        assert_eq!(c.digest, c.recomputed_digest());
        assert_eq!(c.digest, slot_digest(&svc("s"), &inst("10.0.0.1", 80).key(), 102));
        c.remove_all(200);
        assert_eq!((c.digest, c.recomputed_digest()), (0, 0));
        // Fixed values: the digest is the same on every build and release.
        assert_eq!(fnv1a(FNV_OFFSET, b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(FNV_OFFSET, b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a(FNV_OFFSET, b"foobar"), 0x8594_4171_f739_67e8);
    }

    /// One write of a history: on member `at`, slot `slot` of one client
    /// is written (`Some(weight)`) or removed (`None`) at `revision`; or,
    /// with `slot` of `usize::MAX`, the whole client is removed.
    #[derive(Debug, Clone, Copy)]
    struct Op {
        at: usize,
        slot: usize,
        weight: Option<u8>,
        revision: u64,
    }

    fn slot(i: usize) -> (ServiceKey, Instance) {
        (svc(["a", "b"][i % 2]), inst("10.0.0.1", if i < 2 { 80 } else { 81 }))
    }

    /// Runs `ops` on `members` members (each op's delta made where it ran)
    /// and delivers every delta to every member in the order `order` picks.
    fn run(ops: &[Op], members: usize, order: &[usize]) -> Vec<Client> {
        let now = Instant::now();
        let mut nodes: Vec<Client> =
            (0..members).map(|_| Client { origin: Origin::Synced { source: "x:1".into() }, ..ip_port() }).collect();
        let mut deltas = Vec::new();
        for op in ops {
            let node = &mut nodes[op.at];
            if op.slot == usize::MAX {
                node.remove_all(op.revision);
                deltas.push(node.delta(Some(&[])));
                continue;
            }
            let (service, instance) = slot(op.slot);
            let key = instance.key();
            match op.weight {
                Some(w) => {
                    node.write(&service, Instance { weight: f64::from(w), ..instance }, op.revision, now);
                }
                None => {
                    node.remove(&service, &key, op.revision, now, true);
                }
            }
            deltas.push(node.delta(Some(&[(service, key)])));
        }
        for &i in order {
            for node in nodes.iter_mut() {
                node.merge(&deltas[i], now);
            }
        }
        nodes
    }

    /// What must be live after every delta reached everyone: per slot, the
    /// greatest version of all ops, if it is a write above every floor.
    fn expected(ops: &[Op]) -> Vec<(String, String, u16, u64)> {
        let floor = ops.iter().filter(|o| o.slot == usize::MAX).map(|o| o.revision).max().unwrap_or(0);
        let mut out = Vec::new();
        for i in 0..4 {
            let (service, instance) = slot(i);
            let versions: Vec<(u64, Option<Instance>)> = ops
                .iter()
                .filter(|o| o.slot == i)
                .map(|o| (o.revision, o.weight.map(|w| Instance { weight: f64::from(w), ..instance.clone() })))
                .collect();
            fn as_version(x: &(u64, Option<Instance>)) -> Version<'_> {
                match &x.1 {
                    Some(i) => Version::Live { revision: x.0, instance: i },
                    None => Version::Removed { revision: x.0 },
                }
            }
            let best = versions.iter().fold(None::<&(u64, Option<Instance>)>, |best, v| match best {
                Some(b) if !supersedes(as_version(v), as_version(b)) => Some(b),
                _ => Some(v),
            });
            if let Some((revision, Some(live))) = best {
                if *revision > floor {
                    out.push((service.name.clone(), live.ip.clone(), live.port, *revision));
                }
            }
        }
        out.sort();
        out
    }

    /// Every permutation of `0..n`.
    fn permutations(n: usize) -> Vec<Vec<usize>> {
        if n == 0 {
            return vec![Vec::new()];
        }
        let mut out = Vec::new();
        for p in permutations(n - 1) {
            for i in 0..=p.len() {
                let mut q = p.clone();
                q.insert(i, n - 1);
                out.push(q);
            }
        }
        out
    }

    #[test]
    fn every_interleaving_of_the_same_writes_on_any_members_converges_to_the_same_set() {
        // Histories of four ops over three members, with clashing
        // revisions, removals racing writes and a whole-client removal;
        // every delivery order of their deltas (and each delta twice).
        let histories: Vec<Vec<Op>> = vec![
            vec![
                Op { at: 0, slot: 0, weight: Some(1), revision: 10 },
                Op { at: 1, slot: 1, weight: Some(2), revision: 10 },
                Op { at: 2, slot: 0, weight: None, revision: 11 },
                Op { at: 1, slot: 0, weight: Some(3), revision: 11 },
            ],
            vec![
                Op { at: 0, slot: 2, weight: Some(1), revision: 5 },
                Op { at: 1, slot: 2, weight: Some(2), revision: 5 },
                Op { at: 2, slot: 3, weight: Some(1), revision: 7 },
                Op { at: 0, slot: usize::MAX, weight: None, revision: 6 },
            ],
            vec![
                Op { at: 0, slot: 0, weight: Some(1), revision: 20 },
                Op { at: 0, slot: 0, weight: None, revision: 21 },
                Op { at: 1, slot: 0, weight: Some(7), revision: 21 },
                Op { at: 2, slot: 1, weight: None, revision: 3 },
            ],
        ];
        for ops in &histories {
            let want = expected(ops);
            let mut seen: Option<Canonical> = None;
            for order in permutations(ops.len()) {
                let doubled: Vec<usize> = order.iter().chain(order.iter().rev()).copied().collect();
                let nodes = run(ops, 3, &doubled);
                for node in &nodes {
                    assert_eq!(live(node), want, "{ops:?} delivered as {order:?}");
                    assert_eq!(node.digest, node.recomputed_digest());
                    let c = canonical(node);
                    assert_eq!(seen.get_or_insert(c.clone()), &c, "{ops:?} delivered as {order:?}");
                }
            }
        }
    }

    #[test]
    fn random_histories_converge_whatever_the_delivery_order() {
        let mut rng = fastrand::Rng::with_seed(0x5eed);
        for round in 0..300 {
            let n = rng.usize(1..=7);
            let ops: Vec<Op> = (0..n)
                .map(|_| Op {
                    at: rng.usize(0..3),
                    slot: if rng.u8(0..10) == 0 { usize::MAX } else { rng.usize(0..4) },
                    weight: if rng.bool() { Some(rng.u8(0..3)) } else { None },
                    revision: rng.u64(1..8),
                })
                .collect();
            let want = expected(&ops);
            let mut first: Option<Canonical> = None;
            for _ in 0..5 {
                let mut order: Vec<usize> = (0..n).chain(0..n).collect();
                rng.shuffle(&mut order);
                for node in run(&ops, 3, &order) {
                    assert_eq!(live(&node), want, "round {round}: {ops:?} as {order:?}");
                    let c = canonical(&node);
                    assert_eq!(first.get_or_insert(c.clone()), &c, "round {round}: {ops:?} as {order:?}");
                }
            }
        }
    }
}
