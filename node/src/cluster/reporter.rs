//! Member reports, outbound: every report interval this node sends its own
//! [`MemberReport`] to every other member and records the outcome.
//!
//! This is Nacos's `MemberInfoReportTask` with two differences: the report
//! goes over the peer gRPC port instead of HTTP, and it goes to *every* peer
//! each round (Nacos picks one peer per round, round-robin), so a dead
//! member is noticed within `DOWN threshold × interval` whatever the cluster
//! size. All peers are asked concurrently, each with its own timeout, so one
//! silent member cannot delay the verdict on the others.
//!
//! Reports travel through the peer plane's [`PeerTransport`] (gRPC
//! between nodes, an in-process network in the harness tests).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use roster_proto::peer::MemberReport;
use tokio::sync::watch;
use tracing::{debug, warn};

use super::member::MemberState;
use super::membership::Membership;
use super::metrics::{ClusterMetrics, ReportOutcome};
use crate::peer::{PeerError, PeerTransport};

/// Why a report failed; the label is the metric's `result`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ReportFailure {
    /// The resolver has no endpoint for the member.
    Unresolved,
    /// No answer within the report timeout.
    Timeout,
    /// The RPC failed (connection refused, reset, error status).
    Failed(String),
    /// Someone answered, but not the member we asked: a stale DNS entry or
    /// a port reused by another node. Counting it as an answer would keep a
    /// dead member `UP`.
    WrongMember(String),
}

impl ReportFailure {
    fn outcome(&self) -> ReportOutcome {
        match self {
            ReportFailure::Unresolved => ReportOutcome::Unresolved,
            ReportFailure::Timeout => ReportOutcome::Timeout,
            ReportFailure::Failed(_) => ReportOutcome::Failed,
            ReportFailure::WrongMember(_) => ReportOutcome::WrongMember,
        }
    }
}

impl fmt::Display for ReportFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReportFailure::Unresolved => f.write_str("no peer endpoint for this member"),
            ReportFailure::Timeout => f.write_str("timed out"),
            ReportFailure::Failed(e) => write!(f, "{e}"),
            ReportFailure::WrongMember(m) => write!(f, "answered as '{m}'"),
        }
    }
}

/// Most tries of one probe ([`Reporter::probe`]).
const PROBE_ATTEMPTS: u32 = 5;
/// The pause between two tries of a probe.
const PROBE_SPACING: Duration = Duration::from_millis(200);

/// Sends this node's report to every other member each interval.
#[derive(Debug)]
pub struct Reporter {
    membership: Arc<Membership>,
    transport: Arc<dyn PeerTransport>,
    timeout: Duration,
    metrics: Arc<ClusterMetrics>,
}

impl Reporter {
    /// A reporter for `membership`, sending through `transport`, each report
    /// bounded by `timeout`.
    pub fn new(
        membership: Arc<Membership>,
        transport: Arc<dyn PeerTransport>,
        timeout: Duration,
        metrics: Arc<ClusterMetrics>,
    ) -> Reporter {
        Reporter { membership, transport, timeout, metrics }
    }

    /// Reports every `interval` until `stop` turns true (or its sender is
    /// dropped). The first round starts at once. Beside the rounds, a
    /// member held unhealthy that reports to us is reported to at once
    /// ([`Membership::probes`], [`Reporter::probe`]).
    pub async fn run(self, interval: Duration, mut stop: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let rounds = async {
            loop {
                tick.tick().await;
                self.round().await;
            }
        };
        let probes = async {
            loop {
                let peers = self.membership.probes().await;
                self.probe(&peers).await;
            }
        };
        // Rounds and probes in flight are abandoned on stop, not awaited.
        tokio::select! {
            _ = stop.wait_for(|s| *s) => {}
            _ = rounds => {}
            _ = probes => {}
        }
    }

    /// Reports to `peers`, unhealthy members that just reported to us, until
    /// one answers (it is `UP` at once), [`PROBE_ATTEMPTS`] tries have
    /// failed [`PROBE_SPACING`] apart, or a round found it `UP`. A member
    /// that reports is alive, and what keeps us from reaching it just after
    /// it started is short-lived: its name not resolvable yet (a new pod's
    /// DNS record), its peer port not serving yet. A failed probe is not
    /// counted: the rounds count failures, one per interval.
    async fn probe(&self, peers: &[String]) {
        let report = self.membership.local_report();
        futures::future::join_all(peers.iter().map(|peer| async {
            for attempt in 1..=PROBE_ATTEMPTS {
                if self.membership.member(peer).is_none_or(|m| m.state == MemberState::Up) {
                    return;
                }
                match self.send(peer, report.clone()).await {
                    Ok(reply) => {
                        self.answered(peer, &reply);
                        return;
                    }
                    Err(failure) => {
                        debug!(member = peer.as_str(), attempt, error = %failure, "probe of an unhealthy member failed");
                        tokio::time::sleep(PROBE_SPACING).await;
                    }
                }
            }
        }))
        .await;
    }

    /// One round: a report to every other member, concurrently, each outcome
    /// applied to the membership as soon as it is known.
    pub async fn round(&self) {
        let report = self.membership.local_report();
        let peers = self.membership.peers();
        futures::future::join_all(peers.iter().map(|peer| self.report_to(peer, report.clone()))).await;
    }

    async fn report_to(&self, peer: &str, report: MemberReport) {
        match self.send(peer, report).await {
            Ok(reply) => self.answered(peer, &reply),
            Err(failure) => {
                self.metrics.report(failure.outcome());
                debug!(member = peer, error = %failure, "member report failed");
                if let ReportFailure::WrongMember(_) = failure {
                    warn!(member = peer, error = %failure, "a different member answers at this member's peer endpoint");
                }
                self.membership.report_failed(peer, now());
            }
        }
    }

    /// Records that `peer` answered a report (a round's or a probe's).
    fn answered(&self, peer: &str, reply: &MemberReport) {
        self.metrics.report(ReportOutcome::Ok);
        self.membership.report_succeeded(peer, reply, now());
    }

    async fn send(&self, peer: &str, report: MemberReport) -> Result<MemberReport, ReportFailure> {
        let reply = match self.transport.report(peer, report, self.timeout).await {
            Err(PeerError::Unreachable(_)) => return Err(ReportFailure::Unresolved),
            Err(PeerError::Timeout) => return Err(ReportFailure::Timeout),
            Err(PeerError::Status(status)) => return Err(ReportFailure::Failed(status.to_string())),
            Ok(reply) => reply,
        };
        match reply.self_report {
            Some(r) if r.member == peer => Ok(r),
            Some(r) => Err(ReportFailure::WrongMember(r.member)),
            None => Err(ReportFailure::Failed("the answer carries no report".into())),
        }
    }
}

/// The time a report outcome is recorded at: tokio's clock, so that tests
/// on paused time see the outcomes at the times they advanced to.
fn now() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}
