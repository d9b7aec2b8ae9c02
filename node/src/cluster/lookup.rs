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
//! * **address-server**: `GET <url>` every poll interval (default 5 s).
//!
//! Both sources are parsed by [`parse_member_list`], the same format Nacos
//! reads (`EnvUtil.analyzeClusterConf`): one `host[:port]` per line, `#`
//! comments (whole-line or trailing), several members on a line separated by
//! commas, a missing port meaning 8848. Invalid entries are logged and
//! skipped, never fatal.
//!
//! The local member is always part of the list a lookup publishes (Nacos
//! does the same), so a node that is missing from its own `cluster.conf`
//! still sees itself. A source that cannot be read, answers with a status
//! other than 200, or yields no valid member at all (a truncated file, an
//! empty answer) keeps the last list: losing the member list must never be
//! the result of a transient failure.
//!
//! The list is published, sorted and without duplicates, through a
//! `tokio::sync::watch` channel that changes only when the list does.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use super::http_get::{self, HttpUrl};
use super::metrics::ClusterMetrics;
use super::ClusterSettings;
use crate::config::{Config, LookupMode};
use crate::error::{Error, Result};

/// Port assumed for a member listed without one (Nacos's main port).
pub const DEFAULT_MEMBER_PORT: u16 = 8848;

/// Largest `cluster.conf` read, in bytes (a member list is tiny; this only
/// guards against pointing the flag at the wrong file).
const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// A line (or comma-separated entry) that is not a member address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidEntry {
    /// 1-based line number in the source.
    pub line: usize,
    /// The entry as written (trimmed).
    pub text: String,
    /// Why it was refused.
    pub reason: String,
}

/// The result of parsing a member list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParsedMemberList {
    /// Valid members, `host:port`, sorted, without duplicates.
    pub members: Vec<String>,
    /// Entries that were skipped.
    pub invalid: Vec<InvalidEntry>,
}

/// Parses a member list (`cluster.conf` or an address-server body): one
/// `host[:port]` per line; blank lines and `#` comments ignored; commas
/// separate several members on one line; whitespace trimmed; port 8848 when
/// absent; duplicates removed; result sorted. Invalid entries are reported in
/// [`ParsedMemberList::invalid`] and otherwise ignored.
pub fn parse_member_list(text: &str) -> ParsedMemberList {
    let mut members = BTreeSet::new();
    let mut invalid = Vec::new();
    for (index, raw_line) in text.lines().enumerate() {
        let line = match raw_line.find('#') {
            Some(i) => &raw_line[..i],
            None => raw_line,
        };
        for entry in line.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            match parse_member_address(entry) {
                Ok(member) => {
                    members.insert(member);
                }
                Err(reason) => invalid.push(InvalidEntry { line: index + 1, text: entry.to_string(), reason }),
            }
        }
    }
    ParsedMemberList { members: members.into_iter().collect(), invalid }
}

/// Normalises one member entry to `host:port`.
///
/// Accepted: a DNS name or IPv4 address with an optional port, or a
/// bracketed IPv6 address (`[::1]:8848`). A Nacos-style `?raft_port=…`
/// suffix is dropped (Roster derives every port from the main port). The
/// port must be 1–65535.
pub fn parse_member_address(entry: &str) -> std::result::Result<String, String> {
    let entry = entry.trim();
    let entry = match entry.split_once('?') {
        Some((address, _)) => address.trim_end(),
        None => entry,
    };
    if entry.is_empty() {
        return Err("empty address".into());
    }
    if entry.chars().any(char::is_whitespace) {
        return Err("spaces inside an address".into());
    }
    let (host, port) = if let Some(after) = entry.strip_prefix('[') {
        let Some(end) = after.find(']') else {
            return Err("unclosed '[' in an IPv6 address".into());
        };
        let ip = &after[..end];
        if ip.parse::<Ipv6Addr>().is_err() {
            return Err(format!("'{ip}' is not an IPv6 address"));
        }
        let port = match &after[end + 1..] {
            "" => None,
            rest => match rest.strip_prefix(':') {
                Some(p) => Some(p),
                None => return Err("unexpected text after ']'".into()),
            },
        };
        (format!("[{ip}]"), port)
    } else {
        if entry.matches(':').count() > 1 {
            return Err("IPv6 addresses must be written in brackets, e.g. [::1]:8848".into());
        }
        let (host, port) = match entry.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (entry, None),
        };
        validate_host(host)?;
        (host.to_string(), port)
    };
    let port = match port {
        None => DEFAULT_MEMBER_PORT,
        Some(p) => match p.parse::<u16>() {
            Ok(0) | Err(_) => return Err(format!("'{p}' is not a port (1-65535)")),
            Ok(p) => p,
        },
    };
    Ok(format!("{host}:{port}"))
}

/// A DNS name (RFC 1123 labels; `_` tolerated as some tools generate it) or
/// an IPv4 address.
fn validate_host(host: &str) -> std::result::Result<(), String> {
    if host.is_empty() {
        return Err("no host".into());
    }
    if host.parse::<IpAddr>().is_ok() {
        return Ok(());
    }
    if host.len() > 253 {
        return Err("host name longer than 253 characters".into());
    }
    let name = host.strip_suffix('.').unwrap_or(host);
    let labels_ok = name.split('.').all(|label| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    });
    if !labels_ok {
        return Err(format!("'{host}' is not a host name or IP address"));
    }
    // All-numeric dotted names that are not IPv4 (e.g. 10.0.0.256) are typos.
    if name.split('.').all(|l| l.chars().all(|c| c.is_ascii_digit())) {
        return Err(format!("'{host}' is not a valid IPv4 address"));
    }
    Ok(())
}

/// `members` plus `local`, sorted and without duplicates.
pub fn with_local(members: &[String], local: &str) -> Vec<String> {
    let mut all: BTreeSet<String> = members.iter().cloned().collect();
    all.insert(local.to_string());
    all.into_iter().collect()
}

/// Where the member list comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LookupSource {
    /// A cluster of one.
    Standalone,
    /// A `cluster.conf` file.
    File(PathBuf),
    /// An address-server URL (`http://host:port/path`).
    AddressServer(String),
}

impl LookupSource {
    /// The source the node's flags ask for (`--lookup`, `--cluster-conf`,
    /// `--address-server-url`).
    pub fn from_config(config: &Config) -> Result<LookupSource> {
        match config.lookup {
            LookupMode::Standalone => Ok(LookupSource::Standalone),
            LookupMode::File => Ok(LookupSource::File(config.cluster_conf.clone())),
            LookupMode::AddressServer => match &config.address_server_url {
                Some(url) => {
                    HttpUrl::parse(url)?;
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
    /// `settings`.
    pub async fn start(
        self,
        local: &str,
        settings: &ClusterSettings,
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
    /// Successful reads of the source (whether or not the list changed).
    pub fn refreshes(&self) -> u64 {
        self.refreshes.load(Ordering::Relaxed)
    }

    /// Failed reads (unreachable, non-200, unreadable, no valid member).
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    /// Whether the source has been read successfully at least once. Until
    /// then the list holds only the local member: in `address-server` mode a
    /// node must not mistake that for a cluster of one.
    pub fn loaded(&self) -> bool {
        self.loaded.load(Ordering::Relaxed)
    }
}

/// A running lookup: its list channel and its polling task.
#[derive(Debug)]
pub struct MemberLookup {
    mode: LookupMode,
    list: watch::Receiver<Vec<String>>,
    stats: Arc<LookupStats>,
    task: Option<JoinHandle<()>>,
}

impl MemberLookup {
    /// A standalone lookup: the local member alone, no task.
    pub fn standalone(local: &str) -> MemberLookup {
        let (tx, list) = watch::channel(vec![local.to_string()]);
        // Nothing ever changes: dropping the sender leaves the value readable.
        drop(tx);
        let stats = Arc::new(LookupStats::default());
        stats.loaded.store(true, Ordering::Relaxed);
        MemberLookup { mode: LookupMode::Standalone, list, stats, task: None }
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
/// current list. Returns whether the list changed.
fn publish(tx: &watch::Sender<Vec<String>>, members: &[String], local: &str) -> bool {
    let next = with_local(members, local);
    tx.send_if_modified(|current| {
        if *current == next {
            false
        } else {
            *current = next;
            true
        }
    })
}

/// Logs the invalid entries of a list read from `source`.
fn log_invalid(source: &str, invalid: &[InvalidEntry]) {
    for entry in invalid {
        warn!(source, line = entry.line, entry = %entry.text, reason = %entry.reason, "skipping invalid member entry");
    }
}

/// `cluster.conf` lookup.
#[derive(Debug, Clone)]
pub struct FileLookup {
    /// The file.
    pub path: PathBuf,
    /// This member, always part of the list.
    pub local: String,
    /// How often the file is re-read.
    pub interval: Duration,
}

impl FileLookup {
    /// Reads the file once (an unreadable file is an error here: a wrong
    /// path should stop the node at start-up, not make it run alone) and
    /// starts polling it.
    pub async fn start(self, metrics: Arc<ClusterMetrics>) -> Result<MemberLookup> {
        if self.interval.is_zero() {
            return Err(Error::Config("the cluster.conf poll interval must be greater than zero".into()));
        }
        let text = read_file(&self.path)
            .await
            .map_err(|e| Error::Config(format!("cannot read cluster.conf {}: {e}", self.path.display())))?;
        let parsed = parse_member_list(&text);
        let source = self.path.display().to_string();
        log_invalid(&source, &parsed.invalid);
        if parsed.members.is_empty() {
            warn!(file = %source, "cluster.conf lists no valid member; starting with the local member only");
        }
        let (tx, list) = watch::channel(with_local(&parsed.members, &self.local));
        let stats = Arc::new(LookupStats::default());
        stats.refreshes.fetch_add(1, Ordering::Relaxed);
        stats.loaded.store(true, Ordering::Relaxed);
        metrics.lookup_refresh(true);
        info!(file = %source, members = ?*list.borrow(), "member list read from cluster.conf");
        let task = tokio::spawn(self.poll(tx, text, stats.clone(), metrics));
        Ok(MemberLookup { mode: LookupMode::File, list, stats, task: Some(task) })
    }

    async fn poll(
        self,
        tx: watch::Sender<Vec<String>>,
        mut last_text: String,
        stats: Arc<LookupStats>,
        metrics: Arc<ClusterMetrics>,
    ) {
        let source = self.path.display().to_string();
        let mut tick = tokio::time::interval(self.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        let mut failing = false;
        loop {
            tick.tick().await;
            // The content is compared, not only the mtime: coarse mtimes
            // and symlink swaps (Kubernetes ConfigMaps) would hide edits.
            let text = match read_file(&self.path).await {
                Ok(text) => text,
                Err(e) => {
                    stats.failures.fetch_add(1, Ordering::Relaxed);
                    metrics.lookup_refresh(false);
                    if !failing {
                        warn!(file = %source, error = %e, "cannot read cluster.conf; keeping the last member list");
                    }
                    failing = true;
                    continue;
                }
            };
            if failing {
                info!(file = %source, "cluster.conf readable again");
                failing = false;
            }
            if text == last_text {
                stats.refreshes.fetch_add(1, Ordering::Relaxed);
                metrics.lookup_refresh(true);
                continue;
            }
            last_text = text;
            let parsed = parse_member_list(&last_text);
            log_invalid(&source, &parsed.invalid);
            if parsed.members.is_empty() {
                stats.failures.fetch_add(1, Ordering::Relaxed);
                metrics.lookup_refresh(false);
                warn!(file = %source, "cluster.conf lists no valid member; keeping the last member list");
                continue;
            }
            stats.refreshes.fetch_add(1, Ordering::Relaxed);
            metrics.lookup_refresh(true);
            if publish(&tx, &parsed.members, &self.local) {
                info!(file = %source, members = ?*tx.borrow(), "cluster.conf changed");
            }
        }
    }
}

async fn read_file(path: &Path) -> Result<String> {
    let meta = tokio::fs::metadata(path).await?;
    if meta.len() > MAX_FILE_BYTES {
        return Err(Error::TooLarge(format!("larger than {MAX_FILE_BYTES} bytes")));
    }
    let bytes = tokio::fs::read(path).await?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// Address-server lookup.
#[derive(Debug, Clone)]
pub struct AddressServerLookup {
    /// `http://host:port/path` answering `host:port` lines.
    pub url: String,
    /// This member, always part of the list.
    pub local: String,
    /// How often the server is asked.
    pub interval: Duration,
    /// Timeout of one request.
    pub timeout: Duration,
}

impl AddressServerLookup {
    /// Validates the URL, asks the server once and starts polling it.
    ///
    /// Unlike a missing `cluster.conf`, an unreachable address server is not
    /// an error: on Kubernetes the operator serving the list may be
    /// restarting when pods start. Until the first good answer the list is
    /// the local member alone and [`LookupStats::loaded`] is false.
    pub async fn start(self, metrics: Arc<ClusterMetrics>) -> Result<MemberLookup> {
        let url = HttpUrl::parse(&self.url)?;
        if self.interval.is_zero() || self.timeout.is_zero() {
            return Err(Error::Config("the address-server poll interval and timeout must be greater than zero".into()));
        }
        let (tx, list) = watch::channel(vec![self.local.clone()]);
        let stats = Arc::new(LookupStats::default());
        let mut failing = false;
        self.refresh(&url, &tx, &stats, &metrics, &mut failing).await;
        let task = tokio::spawn(self.poll(url, tx, stats.clone(), metrics, failing));
        Ok(MemberLookup { mode: LookupMode::AddressServer, list, stats, task: Some(task) })
    }

    async fn poll(
        self,
        url: HttpUrl,
        tx: watch::Sender<Vec<String>>,
        stats: Arc<LookupStats>,
        metrics: Arc<ClusterMetrics>,
        mut failing: bool,
    ) {
        let mut tick = tokio::time::interval(self.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            self.refresh(&url, &tx, &stats, &metrics, &mut failing).await;
        }
    }

    /// One request. Failures are logged once per outage, not every poll.
    async fn refresh(
        &self,
        url: &HttpUrl,
        tx: &watch::Sender<Vec<String>>,
        stats: &LookupStats,
        metrics: &ClusterMetrics,
        failing: &mut bool,
    ) {
        match self.fetch(url).await {
            Ok(members) => {
                stats.refreshes.fetch_add(1, Ordering::Relaxed);
                stats.loaded.store(true, Ordering::Relaxed);
                metrics.lookup_refresh(true);
                if *failing {
                    info!(url = %self.url, "address server answers again");
                    *failing = false;
                }
                if publish(tx, &members, &self.local) {
                    info!(url = %self.url, members = ?*tx.borrow(), "member list from the address server changed");
                } else {
                    debug!(url = %self.url, "member list unchanged");
                }
            }
            Err(e) => {
                stats.failures.fetch_add(1, Ordering::Relaxed);
                metrics.lookup_refresh(false);
                if !*failing {
                    warn!(url = %self.url, error = %e, "address server lookup failed; keeping the last member list");
                } else {
                    debug!(url = %self.url, error = %e, "address server lookup still failing");
                }
                *failing = true;
            }
        }
    }

    async fn fetch(&self, url: &HttpUrl) -> Result<Vec<String>> {
        let response = http_get::get(url, self.timeout).await?;
        if response.status != 200 {
            return Err(Error::Internal(format!("address server answered HTTP {}", response.status)));
        }
        let parsed = parse_member_list(&String::from_utf8_lossy(&response.body));
        log_invalid(&self.url, &parsed.invalid);
        if parsed.members.is_empty() {
            return Err(Error::Internal("address server listed no valid member".into()));
        }
        Ok(parsed.members)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(text: &str) -> Vec<String> {
        parse_member_list(text).members
    }

    #[test]
    fn lines_comments_blanks_and_default_port() {
        let text = "# the cluster\n\n  10.0.0.2:8848  \n10.0.0.1\n\t\ndemo-0.demo-headless.ns.svc:8848 # pod 0\n   # indented comment\n";
        assert_eq!(members(text), vec!["10.0.0.1:8848", "10.0.0.2:8848", "demo-0.demo-headless.ns.svc:8848"]);
        assert!(parse_member_list(text).invalid.is_empty());
    }

    #[test]
    fn duplicates_removed_and_sorted() {
        let text = "10.0.0.3:8848\n10.0.0.1:8848\n10.0.0.3:8848\n10.0.0.1\n10.0.0.2:8858";
        assert_eq!(members(text), vec!["10.0.0.1:8848", "10.0.0.2:8858", "10.0.0.3:8848"]);
    }

    #[test]
    fn commas_crlf_and_nacos_raft_port_suffix() {
        let text = "10.0.0.1:8848,10.0.0.2:8848 , 10.0.0.3\r\n10.0.0.4:8848?raft_port=8807\r\n";
        assert_eq!(members(text), vec!["10.0.0.1:8848", "10.0.0.2:8848", "10.0.0.3:8848", "10.0.0.4:8848"]);
    }

    #[test]
    fn ipv6_in_brackets() {
        assert_eq!(members("[::1]:8848\n[fe80::2]"), vec!["[::1]:8848", "[fe80::2]:8848"]);
        let parsed = parse_member_list("::1:8848\n[::1:8848\n[nothex]:1\n[::1]x");
        assert!(parsed.members.is_empty());
        assert_eq!(parsed.invalid.len(), 4);
    }

    #[test]
    fn invalid_entries_are_reported_not_fatal() {
        let text = "10.0.0.1:8848\nhost:0\nhost:99999\nhost:http\n:8848\nbad host:1\n-bad-:1\n10.0.0.256:1\na..b:1\n10.0.0.2:8848";
        let parsed = parse_member_list(text);
        assert_eq!(parsed.members, vec!["10.0.0.1:8848", "10.0.0.2:8848"]);
        let lines: Vec<usize> = parsed.invalid.iter().map(|e| e.line).collect();
        assert_eq!(lines, vec![2, 3, 4, 5, 6, 7, 8, 9]);
        assert_eq!(parsed.invalid[0].text, "host:0");
        assert!(parsed.invalid[0].reason.contains("port"));
    }

    #[test]
    fn empty_inputs() {
        assert_eq!(parse_member_list(""), ParsedMemberList::default());
        assert_eq!(parse_member_list("\n# only comments\n  \n,,\n"), ParsedMemberList::default());
    }

    #[test]
    fn single_addresses() {
        assert_eq!(parse_member_address(" localhost "), Ok("localhost:8848".into()));
        assert_eq!(parse_member_address("a_b.svc:1"), Ok("a_b.svc:1".into()));
        assert_eq!(parse_member_address("host.:9"), Ok("host.:9".into()));
        assert_eq!(parse_member_address("1.2.3.4:65535"), Ok("1.2.3.4:65535".into()));
        assert!(parse_member_address("").is_err());
        assert!(parse_member_address("h:1:2").is_err());
        assert!(parse_member_address(&format!("{}:1", "a".repeat(64))).is_err());
    }

    #[test]
    fn local_member_is_always_included() {
        let list = vec!["10.0.0.2:8848".to_string(), "10.0.0.3:8848".to_string()];
        assert_eq!(with_local(&list, "10.0.0.1:8848"), vec!["10.0.0.1:8848", "10.0.0.2:8848", "10.0.0.3:8848"]);
        assert_eq!(with_local(&list, "10.0.0.2:8848"), list);
        assert_eq!(with_local(&[], "10.0.0.1:8848"), vec!["10.0.0.1:8848"]);
    }

    #[test]
    fn publish_notifies_only_on_change() {
        let (tx, mut rx) = watch::channel(vec!["a:1".to_string()]);
        rx.mark_unchanged();
        assert!(!publish(&tx, &["a:1".to_string()], "a:1"));
        assert!(!rx.has_changed().unwrap_or(true));
        assert!(publish(&tx, &["b:1".to_string()], "a:1"));
        assert!(rx.has_changed().unwrap_or(false));
        assert_eq!(*rx.borrow_and_update(), vec!["a:1", "b:1"]);
    }

    #[test]
    fn source_from_config() {
        use clap::Parser;
        let c = Config::parse_from(["roster-node"]);
        assert_eq!(LookupSource::from_config(&c).ok(), Some(LookupSource::Standalone));
        let c = Config::parse_from(["roster-node", "--lookup", "file", "--cluster-conf", "/etc/c.conf"]);
        assert_eq!(LookupSource::from_config(&c).ok(), Some(LookupSource::File("/etc/c.conf".into())));
        let c = Config::parse_from(["roster-node", "--lookup", "address-server"]);
        assert!(LookupSource::from_config(&c).is_err());
        let c = Config::parse_from([
            "roster-node",
            "--lookup",
            "address-server",
            "--address-server-url",
            "http://op:8080/v1/clusters/ns/demo/serverlist",
        ]);
        assert_eq!(LookupSource::from_config(&c).map(|s| s.mode()).ok(), Some(LookupMode::AddressServer));
        let c = Config::parse_from(["roster-node", "--lookup", "address-server", "--address-server-url", "https://x"]);
        assert!(LookupSource::from_config(&c).is_err());
    }
}
