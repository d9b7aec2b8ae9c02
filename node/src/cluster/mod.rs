//! Cluster membership: who the members are (lookup), whether each one
//! answers (member health), and which member is responsible for a Distro
//! key (responsibility).
//!
//! Distro and Raft read the member list and its states from
//! [`Membership`]; they do not talk to lookups or keep their own idea of who
//! is alive. Reports travel over the peer plane ([`crate::peer`]), which
//! hands received reports to [`Membership`] (its
//! [`MemberHandler`](crate::peer::MemberHandler)).
//!
//! # How it works (Nacos conventions)
//!
//! * **Lookup** ([`lookup`]) produces the list of member addresses
//!   (`host:mainPort`), always including the local member, in one of three
//!   modes: standalone (a list of one), `file` (a `cluster.conf` polled for
//!   changes) or `address-server` (a URL polled for `host:port` lines). The
//!   list travels through a `tokio::sync::watch` channel; an unreadable file
//!   or an unreachable address server keeps the last list.
//! * **Membership** ([`membership`]) keeps one [`Member`] per listed address
//!   with its [`MemberState`]. A member that joins the list starts `UP`
//!   (as in Nacos, so a fresh cluster agrees on responsibility at once).
//! * **Member reports** ([`reporter`]): every report interval each
//!   node sends its own [`MemberReport`](roster_proto::peer::MemberReport) to
//!   every other member over the peer gRPC port and applies the outcome with
//!   the pure transition [`on_report_result`]: one failure makes a member
//!   `SUSPICIOUS`, `N` consecutive failures (default 3) make it `DOWN`, and
//!   the first answered report makes it `UP` again. Only the reports *we*
//!   send decide a member's state: a member we cannot reach is not healthy
//!   for us even if it reaches us, because Distro must be able to send to it.
//!   Reports we receive only refresh the sender's metadata (version, Distro
//!   initialisation, Raft id).
//! * **Responsibility** ([`responsibility`]) is Nacos's `DistroMapper`: Java
//!   `String.hashCode` of the tag, modulo the number of healthy (`UP` or
//!   `SUSPICIOUS`) members, over the sorted list of their addresses.
//!
//! # Layout
//! - [`member`]: [`Member`], [`MemberState`] and the pure health transition.
//! - [`lookup`]: member-list parsing and the three lookup modes.
//! - [`membership`]: the current members, their states and change
//!   notifications.
//! - [`reporter`]: the outbound report task.
//! - [`responsibility`]: the Distro responsibility hash.
//! - [`metrics`]: Prometheus metrics of lookups and reports.
//! - this module: [`ClusterSettings`] and [`Cluster`], which wires a lookup, a
//!   [`Membership`] and the reporter together and stops them.

pub mod lookup;
pub mod member;
pub mod membership;
pub mod metrics;
pub mod reporter;
pub mod responsibility;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{debug, info};

use crate::duration;
use crate::error::{Error, Result};
use crate::peer::{PeerService, PeerTransport};

pub use self::lookup::{
    parse_member_list, AddressServerLookup, FileLookup, LookupMode, LookupSettings, LookupSource, MemberLookup,
};
pub use self::member::{on_report_result, Member, MemberState, Transition};
pub use self::membership::{Membership, Responsibility};
pub use self::metrics::ClusterMetrics;
pub use self::reporter::Reporter;
pub use self::responsibility::{java_string_hash, responsible_member};

/// Lookup and member-report settings.
///
/// The defaults are Nacos's where Nacos has one (2 s report interval, `DOWN`
/// after 3 failed reports) and small enough elsewhere that a changed member
/// list is seen within seconds.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
#[command(next_help_heading = "Membership")]
pub struct ClusterSettings {
    /// Where the member list comes from.
    #[command(flatten)]
    pub lookup: LookupSettings,

    /// How often this node reports itself to every other member.
    #[arg(long = "member-report-interval", id = "member_report_interval", value_name = "MEMBER_REPORT_INTERVAL", env = "ROSTER_MEMBER_REPORT_INTERVAL", default_value = "2s", value_parser = duration::parse)]
    pub report_interval: Duration,

    /// Timeout of one member report.
    #[arg(long = "member-report-timeout", id = "member_report_timeout", value_name = "MEMBER_REPORT_TIMEOUT", env = "ROSTER_MEMBER_REPORT_TIMEOUT", default_value = "1s", value_parser = duration::parse)]
    pub report_timeout: Duration,

    /// Consecutive failed reports after which a member is DOWN (one failure
    /// makes it SUSPICIOUS).
    #[arg(
        long = "member-down-after-failures",
        id = "member_down_after_failures",
        value_name = "MEMBER_DOWN_AFTER_FAILURES",
        env = "ROSTER_MEMBER_DOWN_AFTER_FAILURES",
        default_value_t = 3
    )]
    pub down_after_failures: u32,
}

impl Default for ClusterSettings {
    fn default() -> Self {
        ClusterSettings {
            lookup: LookupSettings::default(),
            report_interval: Duration::from_secs(2),
            report_timeout: Duration::from_secs(1),
            down_after_failures: member::DEFAULT_DOWN_AFTER_FAILURES,
        }
    }
}

impl ClusterSettings {
    /// Refuses settings that would make a task spin or never fail.
    pub fn validate(&self) -> Result<()> {
        self.lookup.validate()?;
        for (name, d) in
            [("member report interval", self.report_interval), ("member report timeout", self.report_timeout)]
        {
            if d.is_zero() {
                return Err(Error::Config(format!("the {name} must be greater than zero")));
            }
        }
        if self.down_after_failures == 0 {
            return Err(Error::Config("a member must be allowed at least one failed report before it is DOWN".into()));
        }
        Ok(())
    }
}

/// A running membership: the lookup, the task that applies its lists to the
/// [`Membership`], and the reporter. Serve [`Cluster::peer_service`] on the
/// peer port next to it.
#[derive(Debug)]
pub struct Cluster {
    membership: Arc<Membership>,
    metrics: Arc<ClusterMetrics>,
    lookup: Option<MemberLookup>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Cluster {
    /// Starts membership for the member `local` (`host:mainPort`), reporting
    /// through `transport` (for a node, the signed peer channels); an
    /// address server is asked with `http`.
    ///
    /// The lookup runs at once (a missing `cluster.conf` is an error here; an
    /// unreachable address server is not, see [`AddressServerLookup`]), then
    /// the list follower and, unless standalone, the reporter.
    pub async fn start(
        local: impl Into<String>,
        settings: &ClusterSettings,
        transport: Arc<dyn PeerTransport>,
        http: reqwest::Client,
        metrics: Arc<ClusterMetrics>,
    ) -> Result<Cluster> {
        let source = LookupSource::from_settings(&settings.lookup)?;
        Cluster::start_with(local, source, settings, transport, http, metrics).await
    }

    /// [`Cluster::start`] with the member list from `source` instead of
    /// the lookup settings (tests, and tools that build their own source).
    pub async fn start_with(
        local: impl Into<String>,
        source: LookupSource,
        settings: &ClusterSettings,
        transport: Arc<dyn PeerTransport>,
        http: reqwest::Client,
        metrics: Arc<ClusterMetrics>,
    ) -> Result<Cluster> {
        settings.validate()?;
        let local = local.into();
        lookup::parse_member_address(&local)
            .map_err(|reason| Error::Config(format!("the advertised member '{local}' is not host:port: {reason}")))?;
        let standalone = matches!(source, LookupSource::Standalone);
        let lookup = source.start(&local, &settings.lookup, http, metrics.clone()).await?;
        let membership =
            Arc::new(Membership::new(local.clone(), standalone, settings.down_after_failures, metrics.clone()));
        let (stop, stop_rx) = watch::channel(false);

        // Apply the first list before returning, so callers see the members
        // the lookup already knows.
        membership.apply_member_list(&lookup.current());
        membership.set_listed(*lookup.subscribe_listed().borrow());
        let mut tasks = vec![tokio::spawn(follow_member_list(
            lookup.subscribe(),
            lookup.subscribe_listed(),
            membership.clone(),
            transport.clone(),
            stop_rx.clone(),
        ))];
        if !standalone {
            let reporter = Reporter::new(membership.clone(), transport, settings.report_timeout, metrics.clone());
            tasks.push(tokio::spawn(reporter.run(settings.report_interval, stop_rx)));
        }
        info!(member = %local, lookup = lookup.mode().as_str(), "cluster membership started");
        Ok(Cluster { membership, metrics, lookup: Some(lookup), stop, tasks })
    }

    /// The members and their states.
    pub fn membership(&self) -> &Arc<Membership> {
        &self.membership
    }

    /// Lookup and report metrics.
    pub fn metrics(&self) -> &Arc<ClusterMetrics> {
        &self.metrics
    }

    /// The running lookup (mode, current list, refresh counters).
    pub fn lookup(&self) -> Option<&MemberLookup> {
        self.lookup.as_ref()
    }

    /// The `Peer` gRPC service answering reports for this membership
    /// (add Distro and Raft with [`PeerService::with_distro`] and
    /// [`PeerService::with_raft`]).
    pub fn peer_service(&self) -> PeerService {
        PeerService::new(self.membership.clone())
    }

    /// Stops the reporter, the list follower and the lookup, and waits for
    /// them to end.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        for task in self.tasks.drain(..) {
            let abort = task.abort_handle();
            if tokio::time::timeout(Duration::from_secs(5), task).await.is_err() {
                abort.abort();
            }
        }
        if let Some(lookup) = self.lookup.take() {
            lookup.stop().await;
        }
        debug!(member = %self.membership.local(), "cluster membership stopped");
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // A Cluster dropped without shutdown() must not leave tasks behind.
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Applies every list the lookup publishes to the membership (and whether
/// its source names this member) and lets the transport drop the
/// connections of members that left.
async fn follow_member_list(
    mut lists: watch::Receiver<Vec<String>>,
    mut listed: watch::Receiver<bool>,
    membership: Arc<Membership>,
    transport: Arc<dyn PeerTransport>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let list = lists.borrow_and_update().clone();
        if membership.apply_member_list(&list) {
            info!(members = ?list, "member list changed");
        }
        membership.set_listed(*listed.borrow_and_update());
        transport.retain(&membership.peers());
        tokio::select! {
            changed = lists.changed() => {
                if changed.is_err() {
                    // The lookup stopped; the last list stays.
                    return;
                }
            }
            changed = listed.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}
