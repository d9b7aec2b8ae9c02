//! The `cluster.conf` lookup: the file is re-read every poll interval
//! (default 1 s) and applied when its content changed (polling, so no
//! inotify dependency, and ConfigMap symlink swaps on Kubernetes are seen
//! like any edit). Replace the file atomically (write a temporary file, then
//! rename it, as editors and Kubernetes do): a poll that lands in the middle
//! of an in-place rewrite could read a truncated line as a member.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tracing::{info, warn};

use super::parse::{parse_member_list, with_local};
use super::{log_invalid, publish, ListSender, LookupMode, LookupStats, MemberLookup};
use crate::cluster::metrics::ClusterMetrics;
use crate::error::{Error, Result};

/// Largest `cluster.conf` read, in bytes (a member list is tiny; this only
/// guards against pointing the flag at the wrong file).
const MAX_FILE_BYTES: u64 = 1024 * 1024;

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
        // A start-up refusal: the node's flags name a file it cannot read.
        let text = read_file(&self.path)
            .await
            .map_err(|e| Error::Config(format!("cannot read cluster.conf {}: {e}", self.path.display())))?;
        let parsed = parse_member_list(&text);
        let source = self.path.display().to_string();
        log_invalid(&source, &parsed.invalid);
        if parsed.members.is_empty() {
            warn!(file = %source, "cluster.conf lists no valid member; starting with the local member only");
        }
        let named = parsed.members.is_empty() || parsed.members.contains(&self.local);
        let (tx, list, listed) = ListSender::new(with_local(&parsed.members, &self.local), named);
        let stats = Arc::new(LookupStats::default());
        stats.record(true, &metrics);
        info!(file = %source, members = ?*list.borrow(), "member list read from cluster.conf");
        let task = tokio::spawn(self.poll(tx, text, stats.clone(), metrics));
        Ok(MemberLookup::running(LookupMode::File, (list, listed), stats, task))
    }

    async fn poll(self, tx: ListSender, mut last_text: String, stats: Arc<LookupStats>, metrics: Arc<ClusterMetrics>) {
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
                    stats.record(false, &metrics);
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
                stats.record(true, &metrics);
                continue;
            }
            last_text = text;
            let parsed = parse_member_list(&last_text);
            log_invalid(&source, &parsed.invalid);
            if parsed.members.is_empty() {
                stats.record(false, &metrics);
                warn!(file = %source, "cluster.conf lists no valid member; keeping the last member list");
                continue;
            }
            stats.record(true, &metrics);
            if publish(&tx, &parsed.members, &self.local) {
                info!(file = %source, members = ?tx.current(), "cluster.conf changed");
            }
        }
    }
}

/// Why `cluster.conf` could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The file system refused.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// Larger than [`MAX_FILE_BYTES`].
    #[error("larger than {MAX_FILE_BYTES} bytes")]
    TooLarge,
}

async fn read_file(path: &Path) -> Result<String, ReadError> {
    let meta = tokio::fs::metadata(path).await?;
    if meta.len() > MAX_FILE_BYTES {
        return Err(ReadError::TooLarge);
    }
    let bytes = tokio::fs::read(path).await?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}
