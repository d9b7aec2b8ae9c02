//! The address-server lookup: `GET <url>` every poll interval (default 5 s),
//! answered with `host:port` lines, over `http://` or `https://` (verified
//! against the cluster CA, `--tls-ca-file`: the node's HTTP client trusts
//! nothing else).
//!
//! Unlike a missing `cluster.conf`, an unreachable address server is not an
//! error at start: on Kubernetes the operator serving the list may be
//! restarting when pods start. The last list the server gave is kept in a
//! file (`<data-dir>/members`, written atomically on every change), and a
//! node that starts while the server does not answer starts from that
//! list. With no such file, the published list is *empty* until the first
//! good answer ([`super::LookupStats::loaded`] is false): no consumer can
//! mistake "no list yet" for "a cluster of one" (Distro would declare its
//! snapshot loaded from nobody, see `distro::snapshot`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use reqwest::Url;
use tracing::{debug, info, warn};

use super::parse::parse_member_list;
use super::{log_invalid, publish, ListSender, LookupMode, LookupStats, MemberLookup};
use crate::cluster::metrics::ClusterMetrics;
use crate::error::{Error, Result};

/// Largest answer accepted, in bytes (a member list is a few hundred).
pub const MAX_RESPONSE_BYTES: usize = 1024 * 1024;

/// Checks an address-server URL: `http` or `https`, a host, no credentials.
pub fn parse_url(url: &str) -> Result<Url> {
    let bad = |why: &str| Error::Config(format!("address server URL '{url}': {why}"));
    let parsed = Url::parse(url.trim()).map_err(|e| bad(&e.to_string()))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(bad("must start with http:// or https://"));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(bad("credentials in the URL are not supported"));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(bad("no host"));
    }
    Ok(parsed)
}

/// Why one read of the address server failed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// No answer: refused, reset, timed out, a TLS failure.
    #[error("{0}")]
    Request(#[from] reqwest::Error),
    /// An answer other than 200.
    #[error("address server answered HTTP {0}")]
    Status(u16),
    /// More than [`MAX_RESPONSE_BYTES`].
    #[error("address server answered more than {MAX_RESPONSE_BYTES} bytes")]
    TooLarge,
    /// No valid member in the answer.
    #[error("address server listed no valid member")]
    NoMember,
}

/// Address-server lookup.
#[derive(Debug, Clone)]
pub struct AddressServerLookup {
    /// `http(s)://host:port/path` answering `host:port` lines.
    pub url: String,
    /// This member, always part of the list.
    pub local: String,
    /// How often the server is asked.
    pub interval: Duration,
    /// Timeout of one request.
    pub timeout: Duration,
    /// The HTTP client that asks.
    pub http: reqwest::Client,
    /// Where the last list the server gave is kept (none: not kept).
    pub cache: Option<PathBuf>,
}

/// Reads a list kept by [`write_cache`]; `None` when there is none or it
/// names no valid member.
pub fn read_cache(path: &Path) -> Option<Vec<String>> {
    let text = std::fs::read_to_string(path).ok()?;
    let parsed = parse_member_list(&text);
    (!parsed.members.is_empty()).then_some(parsed.members)
}

/// Keeps `members` in `path`: written to a temporary file, synced, then
/// renamed over the old one, so a crash leaves the old list or the new one.
pub fn write_cache(path: &Path, members: &[String]) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::File::create(&tmp)?;
    for m in members {
        writeln!(file, "{m}")?;
    }
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}

impl AddressServerLookup {
    /// Validates the URL, asks the server once and starts polling it.
    pub async fn start(self, metrics: Arc<ClusterMetrics>) -> Result<MemberLookup> {
        let url = parse_url(&self.url)?;
        if self.interval.is_zero() || self.timeout.is_zero() {
            return Err(Error::Config("the address-server poll interval and timeout must be greater than zero".into()));
        }
        // Until the server answers, nothing says this member was removed.
        let (tx, list, listed) = ListSender::new(Vec::new(), true);
        let stats = Arc::new(LookupStats::default());
        let mut failing = false;
        self.refresh(&url, &tx, &stats, &metrics, &mut failing).await;
        if !stats.loaded() {
            match self.cache.as_deref().and_then(read_cache) {
                Some(cached) => {
                    publish(&tx, &cached, &self.local);
                    stats.mark_loaded();
                    info!(
                        url = %self.url,
                        members = ?tx.current(),
                        "address server unreachable at start; starting from the member list it gave last"
                    );
                }
                None => warn!(
                    url = %self.url,
                    "address server unreachable at start and no member list kept from before; waiting for it"
                ),
            }
        }
        let task = tokio::spawn(self.poll(url, tx, stats.clone(), metrics, failing));
        Ok(MemberLookup::running(LookupMode::AddressServer, (list, listed), stats, task))
    }

    async fn poll(
        self,
        url: Url,
        tx: ListSender,
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
        url: &Url,
        tx: &ListSender,
        stats: &LookupStats,
        metrics: &ClusterMetrics,
        failing: &mut bool,
    ) {
        match self.fetch(url).await {
            Ok(members) => {
                stats.record(true, metrics);
                if *failing {
                    info!(url = %self.url, "address server answers again");
                    *failing = false;
                }
                if publish(tx, &members, &self.local) {
                    info!(url = %self.url, members = ?tx.current(), "member list from the address server changed");
                } else {
                    debug!(url = %self.url, "member list unchanged");
                }
                if let Some(path) = &self.cache {
                    if read_cache(path).as_deref() != Some(members.as_slice()) {
                        if let Err(e) = write_cache(path, &members) {
                            warn!(path = %path.display(), error = %e, "cannot keep the member list");
                        }
                    }
                }
            }
            Err(e) => {
                stats.record(false, metrics);
                if !*failing {
                    warn!(url = %self.url, error = %e, "address server lookup failed; keeping the last member list");
                } else {
                    debug!(url = %self.url, error = %e, "address server lookup still failing");
                }
                *failing = true;
            }
        }
    }

    async fn fetch(&self, url: &Url) -> Result<Vec<String>, FetchError> {
        let mut response = self.http.get(url.clone()).timeout(self.timeout).send().await?;
        if response.status() != reqwest::StatusCode::OK {
            return Err(FetchError::Status(response.status().as_u16()));
        }
        if response.content_length().is_some_and(|n| n > MAX_RESPONSE_BYTES as u64) {
            return Err(FetchError::TooLarge);
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await? {
            if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
                return Err(FetchError::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        let parsed = parse_member_list(&String::from_utf8_lossy(&body));
        log_invalid(&self.url, &parsed.invalid);
        if parsed.members.is_empty() {
            return Err(FetchError::NoMember);
        }
        Ok(parsed.members)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked() {
        assert!(parse_url("http://op:8080/v1/clusters/ns/demo/serverlist").is_ok());
        assert!(parse_url("HTTP://op/").is_ok());
        assert!(parse_url("https://op:8443/x?y=1").is_ok());
        assert!(parse_url("http://[::1]:8080/").is_ok());
        for bad in ["ftp://op/", "op:8080/list", "http://user:pw@op/", "http://", "", "http://op:99999/"] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn an_answer_is_read_and_limits_hold() {
        use axum::routing::get;
        let big = "10.0.0.1:8848\n".repeat(MAX_RESPONSE_BYTES / 14 + 10);
        let app = axum::Router::new()
            .route("/list", get(|| async { "10.0.0.2:8848\n# comment\n10.0.0.1\n" }))
            .route("/empty", get(|| async { "# nothing\n" }))
            .route("/gone", get(|| async { (axum::http::StatusCode::NOT_FOUND, "no") }))
            .route("/big", get(move || async move { big }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let lookup = |path: &str| AddressServerLookup {
            url: format!("http://{addr}{path}"),
            local: "10.0.0.9:8848".into(),
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(2),
            http: reqwest::Client::new(),
            cache: None,
        };
        let fetch = |path: &'static str| {
            let l = lookup(path);
            async move {
                let url = parse_url(&l.url).expect("url");
                l.fetch(&url).await
            }
        };
        assert_eq!(fetch("/list").await.expect("members"), ["10.0.0.1:8848", "10.0.0.2:8848"]);
        assert!(matches!(fetch("/empty").await, Err(FetchError::NoMember)));
        assert!(matches!(fetch("/gone").await, Err(FetchError::Status(404))));
        assert!(matches!(fetch("/big").await, Err(FetchError::TooLarge)));
        server.abort();
    }

    #[test]
    fn a_kept_list_reads_back_and_a_broken_one_is_none() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("members");
        assert_eq!(read_cache(&path), None, "nothing kept");
        let list = vec!["10.0.0.1:8848".to_string(), "10.0.0.2:8848".to_string()];
        write_cache(&path, &list).expect("write");
        assert_eq!(read_cache(&path), Some(list));
        assert!(!path.with_extension("tmp").exists(), "the temporary file was renamed");
        std::fs::write(&path, "# nothing valid\nnot an address\n").expect("write");
        assert_eq!(read_cache(&path), None);
    }
}
