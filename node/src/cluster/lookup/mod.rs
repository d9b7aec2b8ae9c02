//! Member lookup: where the list of members comes from.
//!
//! Three modes, as in Nacos (`StandaloneMemberLookup`,
//! `FileConfigMemberLookup`, `AddressServerMemberLookup`):
//!
//! * **standalone**: the list is the local member alone, forever;
//! * **file**: `cluster.conf`, re-read every poll interval (default 1 s) and
//!   applied when its content changed (polling, so no inotify dependency,
//!   and ConfigMap symlink swaps on Kubernetes are seen like any edit).
//!   Replace the file atomically (write a temporary file, then rename it, as
//!   editors and Kubernetes do): a poll that lands in the middle of an
//!   in-place rewrite could read a truncated line as a member;
//! * **address-server**: `GET <url>` every poll interval (default 5 s),
//!   `http://` or `https://` (verified against `--tls-ca-file`).
//!
//! Both sources are parsed by [`parse_member_list`] ([`parse`]), the same
//! format Nacos reads. Invalid entries are logged and skipped, never fatal.
//!
//! The local member is always part of the list a lookup publishes (Nacos
//! does the same), so a node that is missing from its own `cluster.conf`
//! still sees itself; the one exception is an address-server lookup that
//! has produced nothing yet (the server did not answer at start and no
//! list was kept from before), whose list is empty until it does. A source
//! that cannot be read, answers with a status other than 200, or yields no
//! valid member at all (a truncated file, an empty answer) keeps the last
//! list: losing the member list must never be the result of a transient
//! failure.
//!
//! The list is published, sorted and without duplicates, through a
//! `tokio::sync::watch` channel that changes only when the list does.

//! # Layout
//! - [`parse`]: the member-list format.
//! - [`file`]: the `cluster.conf` lookup.
//! - [`address_server`]: the address-server lookup.
//! - this module: the flags ([`LookupSettings`]), the source they name
//!   ([`LookupSource`]) and a running lookup ([`MemberLookup`]).

pub mod address_server;
pub mod file;
pub mod parse;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::ValueEnum;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::warn;

pub use self::address_server::AddressServerLookup;
pub use self::file::FileLookup;
pub use self::parse::{
    parse_member_address, parse_member_list, with_local, AddressError, InvalidEntry, ParsedMemberList,
};
use super::metrics::ClusterMetrics;
use crate::duration;
use crate::error::{Error, Result};

/// How the node finds the other members.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LookupMode {
    /// A cluster of one.
    Standalone,
    /// A `cluster.conf` file of `host:port` lines.
    File,
    /// A URL polled for `host:port` lines.
    AddressServer,
}

impl LookupMode {
    /// The name used in flags and in `/roster/v1/status`.
    pub fn as_str(&self) -> &'static str {
        match self {
            LookupMode::Standalone => "standalone",
            LookupMode::File => "file",
            LookupMode::AddressServer => "address-server",
        }
    }
}

/// Where the member list comes from, and how often it is read.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
#[command(next_help_heading = "Membership")]
pub struct LookupSettings {
    /// How members are found: standalone, file or address-server.
    #[arg(
        long = "lookup",
        id = "lookup",
        value_name = "LOOKUP",
        env = "ROSTER_LOOKUP",
        value_enum,
        default_value = "standalone"
    )]
    pub mode: LookupMode,

    /// Member list for `--lookup file`.
    #[arg(long, env = "ROSTER_CLUSTER_CONF", default_value = "./cluster.conf")]
    pub cluster_conf: PathBuf,

    /// Member list URL for `--lookup address-server`.
    #[arg(long, env = "ROSTER_ADDRESS_SERVER_URL")]
    pub address_server_url: Option<String>,

    /// How often `--cluster-conf` is re-read for changes.
    #[arg(long = "cluster-conf-poll-interval", id = "cluster_conf_poll_interval", value_name = "CLUSTER_CONF_POLL_INTERVAL", env = "ROSTER_CLUSTER_CONF_POLL_INTERVAL", default_value = "1s", value_parser = duration::parse)]
    pub file_poll_interval: Duration,

    /// How often the address server is asked for the member list.
    #[arg(long = "address-server-poll-interval", env = "ROSTER_ADDRESS_SERVER_POLL_INTERVAL", default_value = "5s", value_parser = duration::parse)]
    pub address_server_poll_interval: Duration,

    /// Timeout of one address-server request.
    #[arg(long, env = "ROSTER_ADDRESS_SERVER_TIMEOUT", default_value = "3s", value_parser = duration::parse)]
    pub address_server_timeout: Duration,

    /// Where the address-server lookup keeps the last list it was given
    /// (the node sets `<data-dir>/members`; not a flag).
    #[arg(skip)]
    pub list_cache: Option<PathBuf>,
}

impl Default for LookupSettings {
    fn default() -> Self {
        LookupSettings {
            mode: LookupMode::Standalone,
            cluster_conf: PathBuf::from("./cluster.conf"),
            address_server_url: None,
            file_poll_interval: Duration::from_secs(1),
            address_server_poll_interval: Duration::from_secs(5),
            address_server_timeout: Duration::from_secs(3),
            list_cache: None,
        }
    }
}

impl LookupSettings {
    /// Refuses an address-server mode without a URL and intervals that
    /// would make a poll spin.
    pub fn validate(&self) -> Result<()> {
        if self.mode == LookupMode::AddressServer && self.address_server_url.is_none() {
            return Err(Error::Config("--lookup address-server needs --address-server-url".into()));
        }
        for (name, d) in [
            ("file poll interval", self.file_poll_interval),
            ("address-server poll interval", self.address_server_poll_interval),
            ("address-server timeout", self.address_server_timeout),
        ] {
            if d.is_zero() {
                return Err(Error::Config(format!("the {name} must be greater than zero")));
            }
        }
        Ok(())
    }
}

/// Where the member list comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LookupSource {
    /// A cluster of one.
    Standalone,
    /// A `cluster.conf` file.
    File(PathBuf),
    /// An address-server URL (`http://host:port/path`, or `https://`).
    AddressServer(String),
}

impl LookupSource {
    /// The source the flags ask for (`--lookup`, `--cluster-conf`,
    /// `--address-server-url`).
    pub fn from_settings(settings: &LookupSettings) -> Result<LookupSource> {
        match settings.mode {
            LookupMode::Standalone => Ok(LookupSource::Standalone),
            LookupMode::File => Ok(LookupSource::File(settings.cluster_conf.clone())),
            LookupMode::AddressServer => match &settings.address_server_url {
                Some(url) => {
                    address_server::parse_url(url)?;
                    Ok(LookupSource::AddressServer(url.clone()))
                }
                None => Err(Error::Config("--lookup address-server needs --address-server-url".into())),
            },
        }
    }

    /// The lookup mode of this source.
    pub fn mode(&self) -> LookupMode {
        match self {
            LookupSource::Standalone => LookupMode::Standalone,
            LookupSource::File(_) => LookupMode::File,
            LookupSource::AddressServer(_) => LookupMode::AddressServer,
        }
    }

    /// Starts the lookup for the member `local` with the intervals of
    /// `settings`; an address server is asked with `http`.
    pub async fn start(
        self,
        local: &str,
        settings: &LookupSettings,
        http: reqwest::Client,
        metrics: Arc<ClusterMetrics>,
    ) -> Result<MemberLookup> {
        match self {
            LookupSource::Standalone => Ok(MemberLookup::standalone(local)),
            LookupSource::File(path) => {
                FileLookup { path, local: local.to_string(), interval: settings.file_poll_interval }
                    .start(metrics)
                    .await
            }
            LookupSource::AddressServer(url) => {
                AddressServerLookup {
                    url,
                    local: local.to_string(),
                    interval: settings.address_server_poll_interval,
                    timeout: settings.address_server_timeout,
                    http,
                    cache: settings.list_cache.clone(),
                }
                .start(metrics)
                .await
            }
        }
    }
}

/// Counters of a running lookup, for status, metrics and tests.
#[derive(Debug, Default)]
pub struct LookupStats {
    refreshes: AtomicU64,
    failures: AtomicU64,
    loaded: AtomicBool,
}

impl LookupStats {
    /// Records a read of the source: `ok`, or a failure.
    pub(crate) fn record(&self, ok: bool, metrics: &ClusterMetrics) {
        if ok {
            self.refreshes.fetch_add(1, Ordering::Relaxed);
            self.loaded.store(true, Ordering::Relaxed);
        } else {
            self.failures.fetch_add(1, Ordering::Relaxed);
        }
        metrics.lookup_refresh(ok);
    }
}

impl LookupStats {
    /// Records that the list comes from a source read before (a kept list).
    pub(crate) fn mark_loaded(&self) {
        self.loaded.store(true, Ordering::Relaxed);
    }

    /// Successful reads of the source (whether or not the list changed).
    pub fn refreshes(&self) -> u64 {
        self.refreshes.load(Ordering::Relaxed)
    }

    /// Failed reads (unreachable, non-200, unreadable, no valid member).
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    /// Whether the source has been read successfully at least once (or a
    /// list it gave before was kept). Until then the list is empty.
    pub fn loaded(&self) -> bool {
        self.loaded.load(Ordering::Relaxed)
    }
}

/// The sending side of a running lookup: the list (the local member
/// always in it) and whether the source itself named the local member.
#[derive(Debug)]
pub(crate) struct ListSender {
    list: watch::Sender<Vec<String>>,
    listed: watch::Sender<bool>,
}

impl ListSender {
    /// Channels starting with `list`, which names the local member or not.
    pub(crate) fn new(
        list: Vec<String>,
        listed: bool,
    ) -> (ListSender, watch::Receiver<Vec<String>>, watch::Receiver<bool>) {
        let (list_tx, list_rx) = watch::channel(list);
        let (listed_tx, listed_rx) = watch::channel(listed);
        (ListSender { list: list_tx, listed: listed_tx }, list_rx, listed_rx)
    }

    /// The list published now.
    pub(crate) fn current(&self) -> Vec<String> {
        self.list.borrow().clone()
    }
}

/// A running lookup: its list channels and its polling task.
#[derive(Debug)]
pub struct MemberLookup {
    mode: LookupMode,
    list: watch::Receiver<Vec<String>>,
    listed: watch::Receiver<bool>,
    stats: Arc<LookupStats>,
    task: Option<JoinHandle<()>>,
}

impl MemberLookup {
    fn running(
        mode: LookupMode,
        (list, listed): (watch::Receiver<Vec<String>>, watch::Receiver<bool>),
        stats: Arc<LookupStats>,
        task: JoinHandle<()>,
    ) -> Self {
        MemberLookup { mode, list, listed, stats, task: Some(task) }
    }

    /// A standalone lookup: the local member alone, no task.
    pub fn standalone(local: &str) -> MemberLookup {
        // Nothing ever changes: dropping the senders leaves the values readable.
        let (_, list, listed) = ListSender::new(vec![local.to_string()], true);
        let stats = Arc::new(LookupStats::default());
        stats.loaded.store(true, Ordering::Relaxed);
        MemberLookup { mode: LookupMode::Standalone, list, listed, stats, task: None }
    }

    /// A receiver of whether the source names the local member (a member
    /// the source stopped naming has been removed and drains). True until
    /// the source was read.
    pub fn subscribe_listed(&self) -> watch::Receiver<bool> {
        self.listed.clone()
    }

    /// The lookup mode.
    pub fn mode(&self) -> LookupMode {
        self.mode
    }

    /// A receiver of the member list (sorted, local member included); it is
    /// notified only when the list changes.
    pub fn subscribe(&self) -> watch::Receiver<Vec<String>> {
        self.list.clone()
    }

    /// The current list.
    pub fn current(&self) -> Vec<String> {
        self.list.borrow().clone()
    }

    /// Read counters.
    pub fn stats(&self) -> &Arc<LookupStats> {
        &self.stats
    }

    /// Stops polling. Receivers keep the last list.
    pub async fn stop(mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }
}

impl Drop for MemberLookup {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// Publishes `members` (plus the local member) when they differ from the
/// current list, and whether they name the local member. Returns whether
/// the list changed.
pub(crate) fn publish(tx: &ListSender, members: &[String], local: &str) -> bool {
    let named = members.iter().any(|m| m == local);
    tx.listed.send_if_modified(|listed| std::mem::replace(listed, named) != named);
    let next = with_local(members, local);
    tx.list.send_if_modified(|current| {
        if *current == next {
            false
        } else {
            *current = next;
            true
        }
    })
}

/// Logs the invalid entries of a list read from `source`.
pub(crate) fn log_invalid(source: &str, invalid: &[InvalidEntry]) {
    for entry in invalid {
        warn!(source, line = entry.line, entry = %entry.text, reason = %entry.reason, "skipping invalid member entry");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_notifies_only_on_change() {
        let (tx, mut rx, mut listed) = ListSender::new(vec!["a:1".to_string()], true);
        rx.mark_unchanged();
        assert!(!publish(&tx, &["a:1".to_string()], "a:1"));
        assert!(!rx.has_changed().unwrap_or(true));
        assert!(!listed.has_changed().unwrap_or(true));
        assert!(publish(&tx, &["b:1".to_string()], "a:1"));
        assert!(rx.has_changed().unwrap_or(false));
        assert_eq!(*rx.borrow_and_update(), vec!["a:1", "b:1"], "the local member stays in the list");
        assert!(listed.has_changed().unwrap_or(false), "but the source no longer names it");
        assert!(!*listed.borrow_and_update());
        assert!(!publish(&tx, &["a:1".to_string(), "b:1".to_string()], "a:1"), "the same list");
        assert!(*listed.borrow_and_update(), "named again");
    }

    #[derive(Debug, clap::Parser)]
    struct Flags {
        #[command(flatten)]
        lookup: LookupSettings,
    }

    fn settings(args: &[&str]) -> LookupSettings {
        use clap::Parser;
        Flags::parse_from(std::iter::once("roster-node").chain(args.iter().copied())).lookup
    }

    #[test]
    fn source_from_settings() {
        let c = settings(&[]);
        assert_eq!(c, LookupSettings::default());
        assert_eq!(LookupSource::from_settings(&c).ok(), Some(LookupSource::Standalone));
        let c = settings(&["--lookup", "file", "--cluster-conf", "/etc/c.conf"]);
        assert_eq!(LookupSource::from_settings(&c).ok(), Some(LookupSource::File("/etc/c.conf".into())));
        let c = settings(&["--lookup", "address-server"]);
        assert!(LookupSource::from_settings(&c).is_err());
        assert!(c.validate().is_err(), "address-server needs a URL");
        let c = settings(&[
            "--lookup",
            "address-server",
            "--address-server-url",
            "http://op:8080/v1/clusters/ns/demo/serverlist",
        ]);
        assert_eq!(LookupSource::from_settings(&c).map(|s| s.mode()).ok(), Some(LookupMode::AddressServer));
        // https comes with reqwest; other schemes are still refused.
        let c = settings(&["--lookup", "address-server", "--address-server-url", "https://x"]);
        assert_eq!(LookupSource::from_settings(&c).map(|s| s.mode()).ok(), Some(LookupMode::AddressServer));
        let c = settings(&["--lookup", "address-server", "--address-server-url", "ftp://x"]);
        assert!(LookupSource::from_settings(&c).is_err());
        let c = settings(&["--cluster-conf-poll-interval", "0"]);
        assert!(c.validate().is_err());
    }
}
