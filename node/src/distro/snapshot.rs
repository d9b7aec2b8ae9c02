//! Snapshot bootstrap: serving the whole ephemeral data set as a stream of
//! chunks, and loading it on start.
//!
//! The loader asks one peer at a time, healthy and already-loaded peers
//! first, and merges each chunk as it arrives (the merge rules of
//! `naming::replica` make a partial or stale chunk harmless and keep what
//! this node wrote meanwhile; nothing is held twice in memory). A snapshot
//! from a peer that has loaded completes the bootstrap. A complete
//! snapshot from a peer that has *not* loaded is accepted only when no
//! loaded peer answers in the whole round (a fresh cluster, or a
//! whole-cluster restart). When no peer answers at all, the next round
//! starts after the load retry delay.
//!
//! A node is loaded from nobody only when it is alone by configuration:
//! standalone, or a member list the lookup actually produced that names no
//! peer. A lookup that has produced nothing yet (an address server that
//! did not answer at start, with no list kept from before) is no list of
//! one: the node keeps waiting, not ready.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use roster_proto::peer::{ClientData, SnapshotChunk, SnapshotRequest};
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;
use tonic::Status;
use tracing::{debug, info, warn};

use super::metrics::DistroEvent;
use super::{codec, Distro};
use crate::cluster::Member;
use crate::peer::{PeerError, SnapshotStream};

/// How long the loader waits for the next chunk before giving up on a peer.
const CHUNK_TIMEOUT: Duration = Duration::from_secs(10);
/// Most clients per chunk, whatever the requester asks for.
const MAX_CHUNK_CLIENTS: usize = 5_000;

/// How a load attempt from one peer ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// Every chunk arrived; `source_initialized` as the peer said.
    Complete {
        /// Whether the peer had itself loaded (or was alone).
        source_initialized: bool,
        /// Clients received.
        clients: usize,
    },
    /// The peer could not be reached or the stream broke.
    Failed(String),
}

/// The order in which peers are asked: healthy and loaded first, then
/// healthy, then the rest (a member marked `DOWN` may just have started).
pub fn load_order(peers: &[Member]) -> Vec<String> {
    let mut ranked: Vec<(u8, &str)> = peers
        .iter()
        .map(|m| {
            let rank = match (m.is_healthy(), m.distro_initialized) {
                (true, true) => 0,
                (true, false) => 1,
                (false, _) => 2,
            };
            (rank, m.address.as_str())
        })
        .collect();
    ranked.sort();
    ranked.into_iter().map(|(_, a)| a.to_owned()).collect()
}

/// What one round decided: the peer whose snapshot completes the load, if
/// any. `attempts` are in the order they were made.
pub fn choose_source(attempts: &[(String, Attempt)]) -> Option<&str> {
    let complete = |want_loaded: bool| {
        attempts.iter().find_map(|(peer, a)| match a {
            Attempt::Complete { source_initialized, .. } if *source_initialized == want_loaded => Some(peer.as_str()),
            _ => None,
        })
    };
    complete(true).or_else(|| complete(false))
}

impl Distro {
    /// Streams every client held, `chunk` clients at a time.
    pub(crate) fn serve_snapshot(&self, request: &SnapshotRequest) -> SnapshotStream {
        let chunk = usize::try_from(request.chunk_clients)
            .ok()
            .filter(|n| *n > 0)
            .unwrap_or(self.settings.snapshot_chunk)
            .min(MAX_CHUNK_CLIENTS);
        let ids = self.store.snapshot_ids();
        let source_initialized = self.is_initialized();
        let store = self.store.clone();
        let owner = self.local_owner();
        let (tx, rx) = mpsc::channel::<Result<SnapshotChunk, Status>>(2);
        self.metrics.event(DistroEvent::SnapshotServed, 1);
        debug!(requester = %request.requester, clients = ids.len(), "serving a Distro snapshot");
        tokio::spawn(async move {
            // A chunk holds at most `chunk` clients and stays within the
            // message budget: clients differ widely in size (a connection
            // may publish thousands of instances).
            let mut pending: Vec<ClientData> = Vec::new();
            for batch in ids.chunks(chunk) {
                // Clients forgotten since the table of contents was taken are skipped.
                let wanted: Vec<(String, Option<Vec<_>>)> = batch.iter().map(|id| (id.clone(), None)).collect();
                let copies = store.copies(&wanted, &owner);
                pending.extend(copies.iter().map(codec::encode));
                drop(copies);
                let mut groups = codec::split_by_size(std::mem::take(&mut pending), chunk, codec::MESSAGE_BUDGET_BYTES);
                // The last group may still fill up with the next batch.
                pending = groups.pop().unwrap_or_default();
                for clients in groups {
                    if tx.send(Ok(SnapshotChunk { clients, source_initialized, last: false })).await.is_err() {
                        return; // The loader went away.
                    }
                }
            }
            let _ = tx.send(Ok(SnapshotChunk { clients: pending, source_initialized, last: true })).await;
        });
        Box::pin(ReceiverStream::new(rx))
    }

    /// Loads the snapshot, round after round, until some peer's completes
    /// it; then marks this node initialized.
    pub(crate) async fn run_loader(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let mut round = 0u32;
        let mut waiting_for_list = false;
        loop {
            let peers = self.membership.members();
            let peers: Vec<Member> = peers.into_iter().filter(|m| m.address != self.membership.local()).collect();
            if peers.is_empty() && self.membership.knows_list() {
                self.mark_loaded(None);
                return;
            }
            if peers.is_empty() {
                if !waiting_for_list {
                    warn!("no member list yet (the lookup has produced none); not loading from nobody, waiting");
                    waiting_for_list = true;
                }
                tokio::select! {
                    _ = tokio::time::sleep(self.settings.load_retry_delay) => {}
                    _ = stop.wait_for(|s| *s) => return,
                }
                continue;
            }
            round += 1;
            let mut attempts = Vec::new();
            for peer in load_order(&peers) {
                let attempt = self.load_from(&peer).await;
                debug!(peer, round, ?attempt, "Distro snapshot attempt");
                let loaded = matches!(attempt, Attempt::Complete { source_initialized: true, .. });
                attempts.push((peer, attempt));
                if loaded {
                    break;
                }
            }
            if let Some(source) = choose_source(&attempts) {
                self.mark_loaded(Some(source.to_owned()));
                return;
            }
            self.metrics.event(DistroEvent::SnapshotRoundFailed, 1);
            warn!(round, retry_in = ?self.settings.load_retry_delay, "no peer could serve a Distro snapshot");
            tokio::select! {
                _ = tokio::time::sleep(self.settings.load_retry_delay) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
        }
    }

    /// Loads one peer's snapshot, applying chunks as they arrive.
    async fn load_from(&self, peer: &str) -> Attempt {
        let request = SnapshotRequest {
            requester: self.membership.local().to_owned(),
            chunk_clients: u32::try_from(self.settings.snapshot_chunk).unwrap_or(u32::MAX),
        };
        let mut stream = match self.transport.distro_snapshot(peer, request, self.settings.sync_timeout).await {
            Err(PeerError::Status(status)) => return Attempt::Failed(status.to_string()),
            Err(e) => return Attempt::Failed(e.to_string()),
            Ok(stream) => stream,
        };
        let mut clients = 0usize;
        loop {
            let chunk = match tokio::time::timeout(CHUNK_TIMEOUT, stream.next()).await {
                Err(_) => return Attempt::Failed(format!("no chunk within {CHUNK_TIMEOUT:?}")),
                Ok(None) => return Attempt::Failed("the stream ended before its last chunk".into()),
                Ok(Some(Err(status))) => return Attempt::Failed(status.to_string()),
                Ok(Some(Ok(chunk))) => chunk,
            };
            let mut copies = Vec::with_capacity(chunk.clients.len());
            for data in chunk.clients {
                match codec::decode(data, &self.limits) {
                    Ok(copy) => copies.push(copy),
                    Err(e) => warn!(peer, error = %e, "skipping an invalid client in a snapshot"),
                }
            }
            clients += copies.len();
            self.apply(&copies, peer);
            if chunk.last {
                return Attempt::Complete { source_initialized: chunk.source_initialized, clients };
            }
        }
    }

    pub(super) fn mark_loaded(&self, source: Option<String>) {
        {
            let mut load = self.load.lock();
            load.source = source.clone();
            load.loaded_at = Some(SystemTime::now());
        }
        self.membership.set_distro_initialized(true);
        self.metrics.event(DistroEvent::SnapshotLoaded, 1);
        info!(
            source = source.as_deref().unwrap_or("none (alone by configuration)"),
            "Distro snapshot loaded; node is initialized"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::MemberState;

    fn member(address: &str, state: MemberState, loaded: bool) -> Member {
        Member { state, distro_initialized: loaded, ..Member::new(address) }
    }

    #[test]
    fn loaded_healthy_peers_are_asked_first() {
        let peers = [
            member("a:1", MemberState::Down, true),
            member("b:1", MemberState::Up, false),
            member("c:1", MemberState::Suspicious, true),
            member("d:1", MemberState::Up, true),
        ];
        assert_eq!(load_order(&peers), ["c:1", "d:1", "b:1", "a:1"]);
    }

    #[test]
    fn an_unloaded_snapshot_counts_only_when_no_loaded_one_does() {
        let complete = |loaded| Attempt::Complete { source_initialized: loaded, clients: 0 };
        let failed = || Attempt::Failed("refused".into());
        assert_eq!(choose_source(&[]), None);
        assert_eq!(choose_source(&[("a".into(), failed())]), None);
        assert_eq!(choose_source(&[("a".into(), complete(false)), ("b".into(), failed())]), Some("a"));
        assert_eq!(choose_source(&[("a".into(), complete(false)), ("b".into(), complete(true))]), Some("b"));
    }
}
