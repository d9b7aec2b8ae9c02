//! One member of the cluster, and how its health follows the reports we
//! send it.
//!
//! The rule is Nacos's (`MemberUtil.onSuccess` / `onFail`): a failed report
//! makes a member `SUSPICIOUS`, enough consecutive failures make it `DOWN`,
//! and one answered report makes it `UP` again with its failure count reset.
//! Nacos marks a member `DOWN` once the count *exceeds*
//! `nacos.core.member.fail-access-cnt` (and at once on "connection refused");
//! Roster marks it `DOWN` when the count *reaches* the configured number, and
//! treats every failure alike, so the setting reads as "DOWN after N failed
//! reports".
//!
//! [`on_report_result`] is a pure function so that every combination of
//! state, count and outcome is tested below.

use std::fmt;
use std::time::Instant;

/// Consecutive failed reports after which a member is `DOWN` by default.
pub const DEFAULT_DOWN_AFTER_FAILURES: u32 = 3;

/// Health of a member as seen from this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MemberState {
    /// The last report to it was answered (or it just joined the list).
    Up,
    /// Recent reports failed, but fewer than the `DOWN` threshold. Still
    /// counts for Distro responsibility, so one lost packet does not move
    /// clients around.
    Suspicious,
    /// Too many consecutive reports failed. Does not count for Distro
    /// responsibility until it answers again.
    Down,
}

impl MemberState {
    /// The Nacos name: `UP`, `SUSPICIOUS` or `DOWN` (used in status JSON and
    /// metric labels).
    pub fn as_str(self) -> &'static str {
        match self {
            MemberState::Up => "UP",
            MemberState::Suspicious => "SUSPICIOUS",
            MemberState::Down => "DOWN",
        }
    }

    /// Whether a member in this state counts for Distro responsibility
    /// (Nacos `DistroMapper`: `UP` or `SUSPICIOUS`).
    pub fn is_healthy(self) -> bool {
        matches!(self, MemberState::Up | MemberState::Suspicious)
    }

    /// Every state, for exhaustive tests and metric gauges.
    pub const ALL: [MemberState; 3] = [MemberState::Up, MemberState::Suspicious, MemberState::Down];
}

impl fmt::Display for MemberState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One member as this node knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The member's name, `host:mainPort`, exactly as the lookup lists it.
    /// Its other ports are derived from it.
    pub address: String,
    /// Health as decided by our reports to it. The local member is always
    /// `UP`.
    pub state: MemberState,
    /// Reports to it that failed in a row; reset by an answered report.
    pub fail_count: u32,
    /// When it last answered one of our reports; `None` before the first
    /// answer, and always for the local member.
    pub last_report: Option<Instant>,
    /// Roster version it reported; `None` until it has answered or reported.
    pub version: Option<String>,
    /// Whether it has loaded its Distro snapshot (as it last reported).
    pub distro_initialized: bool,
    /// Its Raft id (as it last reported); `None` while it has none.
    pub raft_id: Option<u64>,
    /// Its process incarnation (start time in ms, as it last reported);
    /// `None` until it reported one. It grows when the member restarts.
    pub incarnation: Option<u64>,
    /// Whether it is draining (as it last reported): it takes no Distro
    /// responsibility and is no target for clients moved elsewhere.
    pub draining: bool,
}

impl Member {
    /// A member that just appeared in the list: `UP`, as in Nacos, so that
    /// every node of a fresh cluster computes the same responsibilities
    /// before the first report round.
    pub fn new(address: impl Into<String>) -> Member {
        Member {
            address: address.into(),
            state: MemberState::Up,
            fail_count: 0,
            last_report: None,
            version: None,
            distro_initialized: false,
            raft_id: None,
            incarnation: None,
            draining: false,
        }
    }

    /// Whether it answers our reports (`UP` or `SUSPICIOUS`).
    pub fn is_healthy(&self) -> bool {
        self.state.is_healthy()
    }

    /// Whether it may take Distro responsibility: healthy and not draining.
    pub fn can_serve(&self) -> bool {
        self.is_healthy() && !self.draining
    }

    /// Applies a transition computed by [`on_report_result`].
    pub fn apply(&mut self, transition: &Transition) {
        self.state = transition.to;
        self.fail_count = transition.fail_count;
        self.last_report = transition.last_report;
    }
}

/// What one report outcome does to a member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    /// State before the report.
    pub from: MemberState,
    /// State after the report.
    pub to: MemberState,
    /// Consecutive failures after the report.
    pub fail_count: u32,
    /// Last answered report after the report.
    pub last_report: Option<Instant>,
}

impl Transition {
    /// Whether the state changed (what subscribers are told about).
    pub fn changed(&self) -> bool {
        self.from != self.to
    }
}

/// The next health of `member` after a report to it that succeeded (`ok`)
/// or failed, at `now`, with members `DOWN` after `down_after` consecutive
/// failures (a threshold of 0 behaves as 1: a member is never `DOWN` before
/// it failed once).
///
/// * answered ⇒ `UP`, count 0, `last_report = now` (from any state);
/// * failed ⇒ count + 1 (saturating); `DOWN` when the count reaches the
///   threshold, else `SUSPICIOUS`; a `DOWN` member stays `DOWN`.
pub fn on_report_result(member: &Member, ok: bool, now: Instant, down_after: u32) -> Transition {
    if ok {
        return Transition { from: member.state, to: MemberState::Up, fail_count: 0, last_report: Some(now) };
    }
    let fail_count = member.fail_count.saturating_add(1);
    let to = if member.state == MemberState::Down || fail_count >= down_after.max(1) {
        MemberState::Down
    } else {
        MemberState::Suspicious
    };
    Transition { from: member.state, to, fail_count, last_report: member.last_report }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn member(state: MemberState, fail_count: u32, last_report: Option<Instant>) -> Member {
        Member { state, fail_count, last_report, ..Member::new("10.0.0.1:8848") }
    }

    /// The rule written as a table, independently of the implementation.
    fn expected(state: MemberState, fails: u32, ok: bool, threshold: u32) -> (MemberState, u32) {
        if ok {
            return (MemberState::Up, 0);
        }
        let next = fails.saturating_add(1);
        let effective = if threshold == 0 { 1 } else { threshold };
        match state {
            MemberState::Down => (MemberState::Down, next),
            MemberState::Up | MemberState::Suspicious if next >= effective => (MemberState::Down, next),
            MemberState::Up | MemberState::Suspicious => (MemberState::Suspicious, next),
        }
    }

    #[test]
    fn every_state_count_outcome_and_threshold() {
        let earlier = Instant::now();
        let now = earlier + Duration::from_secs(2);
        let counts = [0, 1, 2, 3, 4, 5, 6, u32::MAX - 1, u32::MAX];
        for state in MemberState::ALL {
            for fails in counts {
                for last in [None, Some(earlier)] {
                    for ok in [true, false] {
                        for threshold in 0..=6 {
                            let m = member(state, fails, last);
                            let before = m.clone();
                            let t = on_report_result(&m, ok, now, threshold);
                            assert_eq!(m, before, "the input is not changed");
                            let (to, count) = expected(state, fails, ok, threshold);
                            let case = format!("{state} fails={fails} ok={ok} threshold={threshold}");
                            assert_eq!(t.from, state, "{case}");
                            assert_eq!(t.to, to, "{case}");
                            assert_eq!(t.fail_count, count, "{case}");
                            assert_eq!(t.changed(), state != to, "{case}");
                            let want_last = if ok { Some(now) } else { last };
                            assert_eq!(t.last_report, want_last, "{case}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn nacos_sequence_with_default_threshold() {
        let t0 = Instant::now();
        let mut m = Member::new("10.0.0.2:8848");
        let mut seen = vec![m.state];
        for (i, ok) in [false, false, false, false, true, false, true].into_iter().enumerate() {
            let t = on_report_result(&m, ok, t0 + Duration::from_secs(i as u64), DEFAULT_DOWN_AFTER_FAILURES);
            m.apply(&t);
            seen.push(m.state);
        }
        use MemberState::*;
        assert_eq!(seen, vec![Up, Suspicious, Suspicious, Down, Down, Up, Suspicious, Up]);
        assert_eq!(m.fail_count, 0);
        assert_eq!(m.last_report, Some(t0 + Duration::from_secs(6)));
    }

    #[test]
    fn failures_must_be_consecutive() {
        let now = Instant::now();
        let mut m = Member::new("a:8848");
        for ok in [false, false, true, false, false] {
            let t = on_report_result(&m, ok, now, 3);
            m.apply(&t);
        }
        assert_eq!(m.state, MemberState::Suspicious);
        assert_eq!(m.fail_count, 2);
    }

    #[test]
    fn threshold_one_is_down_at_first_failure() {
        let m = Member::new("a:8848");
        let t = on_report_result(&m, false, Instant::now(), 1);
        assert_eq!((t.to, t.fail_count), (MemberState::Down, 1));
    }

    #[test]
    fn names_and_health() {
        assert_eq!(MemberState::Up.to_string(), "UP");
        assert_eq!(MemberState::Suspicious.as_str(), "SUSPICIOUS");
        assert_eq!(MemberState::Down.as_str(), "DOWN");
        assert!(MemberState::Up.is_healthy());
        assert!(MemberState::Suspicious.is_healthy());
        assert!(!MemberState::Down.is_healthy());
        let m = Member::new("a:8848");
        assert_eq!((m.state, m.fail_count, m.last_report), (MemberState::Up, 0, None));
    }
}
