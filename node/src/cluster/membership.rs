//! The current members and their states, as this node sees them.
//!
//! [`Membership`] is the one place Distro and Raft ask "who is in the
//! cluster, and who is healthy?". It is fed by two inputs: the lookup's list
//! ([`Membership::apply_member_list`]) and the outcome of each report sent
//! by the reporter ([`Membership::report_succeeded`],
//! [`Membership::report_failed`]), whose effect on a member is the pure
//! [`on_report_result`]. Reports received from other members
//! ([`Membership::receive_report`]) only refresh the sender's metadata; a
//! report from a member held `SUSPICIOUS` or `DOWN` also asks the reporter
//! to report to it at once ([`Membership::probes`]), so that a restarted
//! member is seen `UP` within a round trip of its first report rather than
//! at the next interval (our own reports still decide its state).
//!
//! Subscribers get a `watch` of the sorted member list. It is notified when
//! a member joins or leaves, changes state, or reports a different version,
//! Distro initialisation or Raft id; bookkeeping (failure counts, the time of
//! the last answer) is updated in place without waking anyone.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;
use roster_proto::peer::MemberReport;
use tokio::sync::{watch, Notify};
use tracing::{debug, info, warn};

use super::member::{on_report_result, Member, MemberState, Transition};
use super::metrics::ClusterMetrics;
use super::responsibility;
use crate::peer::MemberHandler;

/// Who is responsible for Distro tags, fixed at one moment: the local
/// member when standalone, else Nacos's `DistroMapper` choice over the
/// healthy members that are not draining and have loaded their Distro
/// snapshot (all healthy, non-draining members when none has, as in a
/// fresh cluster). A member that joins is thus handed clients only once it
/// holds the data, never while it is still loading, and a member that
/// drains hands its clients on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Responsibility {
    local: String,
    standalone: bool,
    /// Sorted addresses of the members that share the tags.
    candidates: Vec<String>,
}

impl Responsibility {
    /// The member responsible for `tag`.
    pub fn member_for(&self, tag: &str) -> Option<&str> {
        if self.standalone {
            return Some(&self.local);
        }
        responsibility::responsible_member(tag, &self.candidates)
    }

    /// Whether the local member is responsible for `tag`.
    pub fn is_local(&self, tag: &str) -> bool {
        self.member_for(tag) == Some(self.local.as_str())
    }

    /// The members sharing the tags, sorted.
    pub fn candidates(&self) -> &[String] {
        &self.candidates
    }
}

/// The Roster version members report.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The members of the cluster and their states.
#[derive(Debug)]
pub struct Membership {
    local: String,
    standalone: bool,
    down_after: u32,
    /// Every listed member, the local one included, by address (so
    /// iteration is sorted, as responsibility requires).
    members: Mutex<BTreeMap<String, Member>>,
    changes: watch::Sender<Vec<Member>>,
    metrics: Arc<ClusterMetrics>,
    /// This process's incarnation: its start time in ms since the epoch.
    incarnation: u64,
    /// Whether a member list has been applied (a lookup produced one), or
    /// the node is standalone: until then the list of one is no list.
    list_known: AtomicBool,
    /// Whether the last list applied named this member.
    listed: AtomicBool,
    /// Unhealthy members heard from since the reporter last looked, and
    /// the reporter's wake-up.
    probes: Mutex<BTreeSet<String>>,
    probe_wanted: Notify,
}

impl Membership {
    /// Membership for the member `local` (`host:mainPort`), which starts as
    /// the only member. `standalone` makes this node responsible for every
    /// Distro key; `down_after` is the number of consecutive failed reports
    /// after which a member is `DOWN`.
    pub fn new(
        local: impl Into<String>,
        standalone: bool,
        down_after: u32,
        metrics: Arc<ClusterMetrics>,
    ) -> Membership {
        let local = local.into();
        let incarnation = u64::try_from(crate::naming::clock::now_millis()).unwrap_or(0);
        let mut me = Member::new(local.clone());
        me.version = Some(VERSION.to_string());
        me.incarnation = Some(incarnation);
        let members = BTreeMap::from([(local.clone(), me)]);
        let (changes, _) = watch::channel(members.values().cloned().collect());
        let membership = Membership {
            local,
            standalone,
            down_after,
            members: Mutex::new(members),
            changes,
            metrics,
            incarnation,
            list_known: AtomicBool::new(standalone),
            listed: AtomicBool::new(true),
            probes: Mutex::new(Default::default()),
            probe_wanted: Notify::new(),
        };
        membership.publish(&membership.members.lock(), true);
        membership
    }

    /// The same membership with another incarnation (tests that restart a
    /// member within one millisecond of its first run).
    pub fn with_incarnation(mut self, incarnation: u64) -> Membership {
        self.incarnation = incarnation;
        self.update_local(|me| me.incarnation = Some(incarnation));
        self
    }

    /// This member's address, `host:mainPort`.
    pub fn local(&self) -> &str {
        &self.local
    }

    /// Whether the node runs standalone (a cluster of one).
    pub fn is_standalone(&self) -> bool {
        self.standalone
    }

    /// This process's incarnation (its start time in ms since the epoch),
    /// sent in every report.
    pub fn incarnation(&self) -> u64 {
        self.incarnation
    }

    /// Whether this node knows a member list: standalone, or a list the
    /// lookup produced (the file was read, the address server answered, or
    /// its last answer was cached). Only then does a list naming no peer
    /// mean the node is alone.
    pub fn knows_list(&self) -> bool {
        self.list_known.load(Ordering::Acquire)
    }

    /// Whether the lookup's source names this member (true until it was
    /// read, and when standalone); see [`Membership::set_listed`].
    pub fn is_listed(&self) -> bool {
        self.listed.load(Ordering::Acquire)
    }

    /// Whether this node is draining (see [`Membership::set_draining`]).
    pub fn is_draining(&self) -> bool {
        self.members.lock().get(&self.local).is_some_and(|m| m.draining)
    }

    /// Records whether this node drains: while it does, it takes no Distro
    /// responsibility (here and, through its reports, on every peer) and
    /// reports not ready.
    pub fn set_draining(&self, draining: bool) {
        self.update_local(|me| me.draining = draining);
    }

    /// Whether this node has loaded its Distro snapshot (as it reports).
    pub fn is_loaded(&self) -> bool {
        self.members.lock().get(&self.local).is_some_and(|m| m.distro_initialized)
    }

    /// Every member, the local one included, sorted by address.
    pub fn members(&self) -> Vec<Member> {
        self.members.lock().values().cloned().collect()
    }

    /// One member by address.
    pub fn member(&self, address: &str) -> Option<Member> {
        self.members.lock().get(address).cloned()
    }

    /// Addresses of the members that count for Distro responsibility (`UP`
    /// or `SUSPICIOUS`), sorted. Always contains the local member.
    pub fn healthy_members(&self) -> Vec<String> {
        self.members.lock().values().filter(|m| m.is_healthy()).map(|m| m.address.clone()).collect()
    }

    /// Addresses of every other member whatever its state, sorted: the
    /// targets of reports and of Distro syncs (which retry until a target
    /// leaves the list, not merely while it is `DOWN`).
    pub fn peers(&self) -> Vec<String> {
        self.members.lock().keys().filter(|a| **a != self.local).cloned().collect()
    }

    /// Who is responsible for Distro tags right now (see [`Responsibility`]).
    /// Take one per pass over many clients rather than asking per client.
    pub fn responsibility(&self) -> Responsibility {
        let members = self.members.lock();
        let serving: Vec<&Member> = members.values().filter(|m| m.can_serve()).collect();
        let loaded: Vec<String> = serving.iter().filter(|m| m.distro_initialized).map(|m| m.address.clone()).collect();
        let candidates = if loaded.is_empty() { serving.iter().map(|m| m.address.clone()).collect() } else { loaded };
        Responsibility { local: self.local.clone(), standalone: self.standalone, candidates }
    }

    /// The member responsible for the Distro tag `tag` (an ip:port client's
    /// `ip:port`); see [`Membership::responsibility`].
    pub fn responsible_member(&self, tag: &str) -> Option<String> {
        self.responsibility().member_for(tag).map(str::to_string)
    }

    /// A receiver of the sorted member list, notified on every membership,
    /// state or metadata change.
    pub fn subscribe(&self) -> watch::Receiver<Vec<Member>> {
        self.changes.subscribe()
    }

    /// Records whether this node has loaded its Distro snapshot (sent in
    /// reports; shown to the operator).
    pub fn set_distro_initialized(&self, initialized: bool) {
        self.update_local(|me| me.distro_initialized = initialized);
    }

    /// Records this node's Raft id once the Raft layer knows it.
    pub fn set_raft_id(&self, raft_id: Option<u64>) {
        self.update_local(|me| me.raft_id = raft_id);
    }

    fn update_local(&self, change: impl FnOnce(&mut Member)) {
        let mut members = self.members.lock();
        let Some(me) = members.get_mut(&self.local) else {
            return;
        };
        let before = me.clone();
        change(me);
        let changed = *me != before;
        self.publish(&members, changed);
    }

    /// This node's own report: what it sends to others and answers with.
    pub fn local_report(&self) -> MemberReport {
        let members = self.members.lock();
        let me = members.get(&self.local);
        MemberReport {
            member: self.local.clone(),
            version: VERSION.to_string(),
            distro_initialized: me.is_some_and(|m| m.distro_initialized),
            raft_id: me.and_then(|m| m.raft_id).unwrap_or(0),
            incarnation: self.incarnation,
            draining: me.is_some_and(|m| m.draining),
        }
    }

    /// Makes the member list `list` (the local member is kept even if
    /// absent). New members start `UP`; members that left are forgotten, so
    /// one that comes back starts afresh. Returns whether the list changed.
    /// An empty list is what a lookup that has produced nothing yet
    /// publishes: it changes nothing, and the node still knows no list.
    pub fn apply_member_list(&self, list: &[String]) -> bool {
        if list.is_empty() {
            return false;
        }
        self.list_known.store(true, Ordering::Release);
        let mut members = self.members.lock();
        let before = members.len();
        members.retain(|address, _| *address == self.local || list.contains(address));
        let mut changed = members.len() != before;
        for address in list {
            if !members.contains_key(address) {
                members.insert(address.clone(), Member::new(address.clone()));
                changed = true;
            }
        }
        self.publish(&members, changed);
        changed
    }

    /// Records whether the lookup's source names this member (it keeps the
    /// member in the list it publishes either way); subscribers hear of a
    /// change. A member the source stops naming was removed: it drains.
    pub fn set_listed(&self, listed: bool) {
        if self.listed.swap(listed, Ordering::AcqRel) != listed {
            let members = self.members.lock();
            self.publish(&members, true);
        }
    }

    /// Applies an answered report from `address` at `now`: the member is
    /// `UP` again and its metadata is the answer's. `None` when `address` is
    /// not a member (it left the list while the report was in flight).
    pub fn report_succeeded(&self, address: &str, reply: &MemberReport, now: Instant) -> Option<Transition> {
        self.record(address, true, now, Some(reply))
    }

    /// Applies a failed report to `address` at `now`.
    pub fn report_failed(&self, address: &str, now: Instant) -> Option<Transition> {
        self.record(address, false, now, None)
    }

    fn record(&self, address: &str, ok: bool, now: Instant, reply: Option<&MemberReport>) -> Option<Transition> {
        if address == self.local {
            return None;
        }
        let mut members = self.members.lock();
        let member = members.get_mut(address)?;
        let transition = on_report_result(member, ok, now, self.down_after);
        member.apply(&transition);
        let metadata_changed = reply.is_some_and(|r| apply_metadata(member, r));
        if transition.changed() {
            self.metrics.state_change(transition.to);
            match transition.to {
                MemberState::Up => info!(member = address, from = %transition.from, "member is UP"),
                MemberState::Suspicious => {
                    warn!(member = address, fails = transition.fail_count, "member is SUSPICIOUS")
                }
                MemberState::Down => warn!(member = address, fails = transition.fail_count, "member is DOWN"),
            }
        }
        self.publish(&members, transition.changed() || metadata_changed);
        Some(transition)
    }

    /// Takes the metadata of a report received from another member. Returns
    /// whether the sender is a member; reports from others are answered but
    /// otherwise ignored (a node that is not in our list yet, or a stray).
    /// A received report does not change the sender's state: only our own
    /// reports decide whether we can reach it.
    pub fn receive_report(&self, report: &MemberReport) -> bool {
        if report.member == self.local {
            return false;
        }
        let mut members = self.members.lock();
        let Some(member) = members.get_mut(&report.member) else {
            return false;
        };
        let unhealthy = member.state != MemberState::Up;
        let changed = apply_metadata(member, report);
        self.publish(&members, changed);
        drop(members);
        if unhealthy {
            self.probes.lock().insert(report.member.clone());
            self.probe_wanted.notify_one();
        }
        true
    }

    /// Waits until an unhealthy member has been heard from, then returns
    /// the members to report to at once (each taken once).
    pub async fn probes(&self) -> Vec<String> {
        loop {
            let taken: Vec<String> = std::mem::take(&mut *self.probes.lock()).into_iter().collect();
            if !taken.is_empty() {
                return taken;
            }
            self.probe_wanted.notified().await;
        }
    }

    /// Replaces the published list; wakes subscribers only when `notify`.
    fn publish(&self, members: &BTreeMap<String, Member>, notify: bool) {
        let mut counts = [(MemberState::Up, 0), (MemberState::Suspicious, 0), (MemberState::Down, 0)];
        for m in members.values() {
            for (state, n) in counts.iter_mut() {
                if *state == m.state {
                    *n += 1;
                }
            }
        }
        self.metrics.set_members(counts);
        let snapshot: Vec<Member> = members.values().cloned().collect();
        self.changes.send_if_modified(|current| {
            *current = snapshot;
            notify
        });
    }
}

/// Reports received on the peer port: the sender's metadata is recorded
/// ([`Membership::receive_report`]) and the answer is this node's own
/// report, which the sender's reporter needs to mark us `UP`.
impl MemberHandler for Membership {
    fn report(&self, from: MemberReport) -> MemberReport {
        if !self.receive_report(&from) {
            debug!(from = %from.member, "report from a node that is not in the member list");
        }
        self.local_report()
    }
}

/// Copies a report's metadata into `member`; returns whether anything
/// changed.
///
/// A report without a Raft id keeps the id the member reported before: a
/// member just restarted reports before its Raft has started, and its id
/// (kept in its data directory) has not changed. Taking that gap for "no
/// id" made the Raft leader remove a member that only restarted from the
/// voters. A member that lost its data reports its new id once its Raft
/// starts, and that replaces the old one.
fn apply_metadata(member: &mut Member, report: &MemberReport) -> bool {
    let version = (!report.version.is_empty()).then(|| report.version.clone());
    let raft_id = (report.raft_id != 0).then_some(report.raft_id).or(member.raft_id);
    let incarnation = (report.incarnation != 0).then_some(report.incarnation);
    let changed = member.version != version
        || member.distro_initialized != report.distro_initialized
        || member.raft_id != raft_id
        || member.incarnation != incarnation
        || member.draining != report.draining;
    member.version = version;
    member.distro_initialized = report.distro_initialized;
    member.raft_id = raft_id;
    member.incarnation = incarnation;
    member.draining = report.draining;
    changed
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn membership(local: &str) -> Membership {
        Membership::new(local, false, 3, Arc::new(ClusterMetrics::new()))
    }

    fn list(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    fn report(member: &str, raft_id: u64) -> MemberReport {
        MemberReport {
            member: member.into(),
            version: "9.9.9".into(),
            distro_initialized: true,
            raft_id,
            incarnation: 7,
            draining: false,
        }
    }

    #[test]
    fn starts_with_itself_and_follows_the_list() {
        let m = membership("b:8848");
        assert_eq!(m.healthy_members(), vec!["b:8848"]);
        assert!(m.peers().is_empty());
        assert!(m.apply_member_list(&list(&["c:8848", "a:8848", "b:8848"])));
        assert!(!m.apply_member_list(&list(&["a:8848", "b:8848", "c:8848"])));
        let addresses: Vec<String> = m.members().into_iter().map(|x| x.address).collect();
        assert_eq!(addresses, vec!["a:8848", "b:8848", "c:8848"]);
        assert_eq!(m.peers(), vec!["a:8848", "c:8848"]);
        // The local member survives a list that forgot it.
        assert!(m.apply_member_list(&list(&["a:8848"])));
        assert_eq!(m.healthy_members(), vec!["a:8848", "b:8848"]);
    }

    #[test]
    fn reports_drive_states_and_healthy_members() {
        let m = membership("a:8848");
        m.apply_member_list(&list(&["a:8848", "b:8848", "c:8848"]));
        let t0 = Instant::now();
        let t = m.report_failed("b:8848", t0).expect("member");
        assert_eq!((t.from, t.to), (MemberState::Up, MemberState::Suspicious));
        assert_eq!(m.healthy_members(), vec!["a:8848", "b:8848", "c:8848"]);
        m.report_failed("b:8848", t0);
        let t = m.report_failed("b:8848", t0).expect("member");
        assert_eq!(t.to, MemberState::Down);
        assert_eq!(m.healthy_members(), vec!["a:8848", "c:8848"]);
        let later = t0 + Duration::from_secs(1);
        let t = m.report_succeeded("b:8848", &report("b:8848", 7), later).expect("member");
        assert_eq!((t.from, t.to), (MemberState::Down, MemberState::Up));
        let b = m.member("b:8848").expect("member");
        assert_eq!((b.fail_count, b.last_report, b.raft_id), (0, Some(later), Some(7)));
        assert_eq!(b.version.as_deref(), Some("9.9.9"));
        // Unknown or local addresses are ignored.
        assert!(m.report_failed("z:8848", t0).is_none());
        assert!(m.report_failed("a:8848", t0).is_none());
        assert_eq!(m.member("a:8848").map(|x| x.state), Some(MemberState::Up));
    }

    #[test]
    fn a_restarted_member_keeps_its_raft_id_until_it_reports_another() {
        let m = membership("a:8848");
        m.apply_member_list(&list(&["a:8848", "b:8848"]));
        let now = Instant::now();
        m.report_succeeded("b:8848", &report("b:8848", 7), now);
        // Restarted: its first reports come before its Raft has started.
        let restarted = MemberReport { incarnation: 8, ..report("b:8848", 0) };
        m.report_succeeded("b:8848", &restarted, now);
        assert_eq!(m.member("b:8848").and_then(|b| b.raft_id), Some(7));
        assert_eq!(m.member("b:8848").and_then(|b| b.incarnation), Some(8));
        // Its data lost, it has a new id once its Raft runs.
        m.report_succeeded("b:8848", &report("b:8848", 9), now);
        assert_eq!(m.member("b:8848").and_then(|b| b.raft_id), Some(9));
    }

    #[test]
    fn a_member_that_leaves_and_returns_starts_afresh() {
        let m = membership("a:8848");
        m.apply_member_list(&list(&["a:8848", "b:8848"]));
        for _ in 0..3 {
            m.report_failed("b:8848", Instant::now());
        }
        assert_eq!(m.member("b:8848").map(|x| x.state), Some(MemberState::Down));
        m.apply_member_list(&list(&["a:8848"]));
        assert!(m.member("b:8848").is_none());
        m.apply_member_list(&list(&["a:8848", "b:8848"]));
        assert_eq!(m.member("b:8848").map(|x| (x.state, x.fail_count)), Some((MemberState::Up, 0)));
    }

    #[test]
    fn subscribers_wake_on_changes_only() {
        let m = membership("a:8848");
        m.apply_member_list(&list(&["a:8848", "b:8848"]));
        let mut rx = m.subscribe();
        rx.mark_unchanged();
        let now = Instant::now();
        m.report_succeeded("b:8848", &report("b:8848", 0), now);
        assert!(rx.has_changed().unwrap_or(false), "metadata arrived");
        rx.mark_unchanged();
        m.report_succeeded("b:8848", &report("b:8848", 0), now + Duration::from_secs(2));
        assert!(!rx.has_changed().unwrap_or(true), "a routine answer wakes no one");
        // ...but the published value is fresh.
        let b = rx.borrow().iter().find(|x| x.address == "b:8848").cloned().expect("member");
        assert_eq!(b.last_report, Some(now + Duration::from_secs(2)));
        m.report_failed("b:8848", now);
        assert!(rx.has_changed().unwrap_or(false), "UP -> SUSPICIOUS");
        rx.mark_unchanged();
        m.report_failed("b:8848", now);
        assert!(!rx.has_changed().unwrap_or(true), "still SUSPICIOUS");
        m.set_raft_id(Some(42));
        assert!(rx.has_changed().unwrap_or(false));
        assert_eq!(m.local_report().raft_id, 42);
    }

    #[test]
    fn received_reports_refresh_metadata_not_state() {
        let m = membership("a:8848");
        m.apply_member_list(&list(&["a:8848", "b:8848"]));
        for _ in 0..3 {
            m.report_failed("b:8848", Instant::now());
        }
        assert!(m.receive_report(&report("b:8848", 5)));
        let b = m.member("b:8848").expect("member");
        assert_eq!((b.state, b.raft_id, b.distro_initialized), (MemberState::Down, Some(5), true));
        assert!(!m.receive_report(&report("stranger:8848", 1)));
        assert!(!m.receive_report(&report("a:8848", 1)));
    }

    #[test]
    fn local_report_and_responsibility() {
        let m = membership("10.0.0.2:8848");
        m.set_distro_initialized(true);
        let r = m.local_report();
        assert_eq!(
            (r.member.as_str(), r.version.as_str(), r.distro_initialized, r.raft_id),
            ("10.0.0.2:8848", VERSION, true, 0)
        );
        m.apply_member_list(&list(&["10.0.0.1:8848", "10.0.0.2:8848", "10.0.0.3:8848"]));
        // Only this member has loaded its snapshot: it answers for everything.
        assert!(m.responsibility().is_local("127.0.0.1:8080"));
        m.receive_report(&report("10.0.0.1:8848", 1));
        m.receive_report(&report("10.0.0.3:8848", 3));
        // "hello" → index 1 of 3 (see responsibility tests).
        assert_eq!(m.responsible_member("hello").as_deref(), Some("10.0.0.2:8848"));
        assert!(m.responsibility().is_local("hello"));
        assert!(!m.responsibility().is_local("127.0.0.1:8080"));
        // With 10.0.0.3 DOWN, "hello" → index 0 of 2: responsibility moves.
        for _ in 0..3 {
            m.report_failed("10.0.0.3:8848", Instant::now());
        }
        assert_eq!(m.responsible_member("hello").as_deref(), Some("10.0.0.1:8848"));
        assert!(!m.responsibility().is_local("hello"));
        let alone = Membership::new("10.0.0.5:8848", true, 3, Arc::new(ClusterMetrics::new()));
        assert!(alone.responsibility().is_local("anything"));
        assert_eq!(alone.responsible_member("x").as_deref(), Some("10.0.0.5:8848"));
    }
}
