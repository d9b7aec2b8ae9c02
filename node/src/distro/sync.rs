//! Sync, outbound: one queue and one sender task per peer.
//!
//! A changed client's id is added to every peer's pending set. The sender
//! waits for the merge window, so that several changes to one client become
//! one send, then sends the *current* data of every pending client (or its
//! removal, when it is gone). A failed send puts its ids back and is retried
//! after the retry delay, for as long as the peer is in the member list.
//! Because the data is read at send time and each peer has one sender, an
//! older state can never overtake a newer one.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use parking_lot::Mutex;
use roster_proto::peer::{ClientRevision, DistroSyncRequest};
use tokio::sync::{watch, Notify};
use tracing::{debug, warn};

use super::metrics::DistroEvent;
use super::{codec, Distro};
use crate::peer::PeerError;

/// Why a sync was not delivered (it is retried).
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The call brought no answer.
    #[error("{0}")]
    Peer(#[from] PeerError),
    /// The peer answered but did not accept the data.
    #[error("refused: {0}")]
    Refused(String),
}

/// Most clients in one sync message.
const MAX_CLIENTS_PER_SYNC: usize = 500;

/// The clients waiting to be sent to one peer.
#[derive(Debug, Default)]
pub struct PeerQueue {
    pending: Mutex<BTreeSet<String>>,
    wake: Notify,
}

impl PeerQueue {
    /// Adds client ids to send.
    pub fn add(&self, ids: impl IntoIterator<Item = String>) {
        let before = {
            let mut pending = self.pending.lock();
            let before = pending.len();
            pending.extend(ids);
            before != pending.len()
        };
        if before {
            self.wake.notify_one();
        }
    }

    /// Takes up to `n` pending ids.
    fn take(&self, n: usize) -> Vec<String> {
        let mut pending = self.pending.lock();
        let taken: Vec<String> = pending.iter().take(n).cloned().collect();
        for id in &taken {
            pending.remove(id);
        }
        taken
    }

    /// Ids waiting.
    pub fn len(&self) -> usize {
        self.pending.lock().len()
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Every peer's queue; a sender task is started with each queue.
#[derive(Debug, Default)]
pub struct SyncQueues {
    queues: Mutex<HashMap<String, Arc<PeerQueue>>>,
}

impl SyncQueues {
    /// Ids waiting, over all peers.
    pub fn pending(&self) -> usize {
        self.queues.lock().values().map(|q| q.len()).sum()
    }

    /// Drops the queue of a peer that left (its sender ends).
    fn remove(&self, peer: &str) {
        self.queues.lock().remove(peer);
    }
}

impl Distro {
    /// Queues `ids` for `peer`, starting the peer's sender if needed.
    pub(crate) fn queue(self: &Arc<Self>, peer: &str, ids: impl IntoIterator<Item = String>) {
        let queue = {
            let mut queues = self.queues.queues.lock();
            match queues.get(peer) {
                Some(q) => q.clone(),
                None => {
                    let q = Arc::new(PeerQueue::default());
                    queues.insert(peer.to_owned(), q.clone());
                    let distro = self.clone();
                    let peer = peer.to_owned();
                    let sender_queue = q.clone();
                    let stop = self.stop_signal();
                    tokio::spawn(async move { distro.run_sender(peer, sender_queue, stop).await });
                    q
                }
            }
        };
        queue.add(ids);
    }

    /// Queues `ids` for every peer.
    pub(crate) fn queue_all(self: &Arc<Self>, ids: &[String]) {
        for peer in self.membership.peers() {
            self.queue(&peer, ids.iter().cloned());
        }
    }

    /// Forwards every local change to every peer's queue. A lagging
    /// receiver (more changes than the channel holds) queues every client
    /// this node vouches for.
    pub(crate) async fn run_dispatcher(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let mut changes = self.store.subscribe_local_changes();
        loop {
            tokio::select! {
                change = changes.recv() => match change {
                    Ok(id) => self.queue_all(&[id]),
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(missed)) => {
                        warn!(missed, "Distro fell behind local changes; re-sending every local client");
                        let responsibility = self.membership.responsibility();
                        let ids: Vec<String> = self
                            .store
                            .verify_list(|tag| responsibility.is_local(tag))
                            .into_iter()
                            .map(|(id, _)| id)
                            .collect();
                        self.queue_all(&ids);
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                },
                _ = stop.wait_for(|s| *s) => return,
            }
        }
    }

    /// Sends `peer`'s queue until the peer leaves the member list.
    async fn run_sender(self: Arc<Self>, peer: String, queue: Arc<PeerQueue>, mut stop: watch::Receiver<bool>) {
        loop {
            if queue.is_empty() {
                tokio::select! {
                    _ = queue.wake.notified() => {}
                    _ = stop.wait_for(|s| *s) => return,
                }
            }
            // The merge window: later changes to the same clients join this send.
            tokio::select! {
                _ = tokio::time::sleep(self.settings.sync_delay) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            while !queue.is_empty() {
                if self.membership.member(&peer).is_none() {
                    debug!(peer, dropped = queue.len(), "peer left the member list; its pending syncs are dropped");
                    self.queues.remove(&peer);
                    return;
                }
                let ids = queue.take(MAX_CLIENTS_PER_SYNC);
                if let Err(e) = self.send_sync(&peer, &ids).await {
                    self.metrics.event(DistroEvent::SyncFailed, 1);
                    debug!(peer, clients = ids.len(), error = %e, "Distro sync failed; will retry");
                    queue.add(ids);
                    tokio::select! {
                        _ = tokio::time::sleep(self.settings.sync_retry_delay) => {}
                        _ = stop.wait_for(|s| *s) => return,
                    }
                }
            }
        }
    }

    /// Sends the current state of `ids` to `peer`: one message, or several
    /// when the clients' data exceeds the message budget (clients with
    /// thousands of instances). Removals go with the first.
    async fn send_sync(&self, peer: &str, ids: &[String]) -> Result<(), SyncError> {
        let (copies, removed) = self.store.client_copies(ids);
        let upserts: Vec<_> = copies.iter().map(codec::encode).collect();
        drop(copies);
        let mut removed: Vec<ClientRevision> =
            removed.into_iter().map(|(client_id, revision)| ClientRevision { client_id, revision }).collect();
        let mut groups = codec::split_by_size(upserts, MAX_CLIENTS_PER_SYNC, codec::MESSAGE_BUDGET_BYTES);
        if groups.is_empty() {
            groups.push(Vec::new());
        }
        for upserts in groups {
            let request = DistroSyncRequest {
                source: self.membership.local().to_owned(),
                upserts,
                removed: std::mem::take(&mut removed),
            };
            self.send_sync_message(peer, request).await?;
        }
        self.metrics.event(DistroEvent::ClientsSent, ids.len() as u64);
        Ok(())
    }

    /// Sends one sync message.
    async fn send_sync_message(&self, peer: &str, request: DistroSyncRequest) -> Result<(), SyncError> {
        let clients = request.upserts.len() + request.removed.len();
        if self.faults.drop_sync() {
            self.metrics.event(DistroEvent::SyncDropped, 1);
            debug!(peer, clients, "Distro sync dropped by fault injection");
            return Ok(());
        }
        let ack = self.transport.distro_sync(peer, request, self.settings.sync_timeout).await?;
        if !ack.accepted {
            return Err(SyncError::Refused(ack.message));
        }
        self.metrics.event(DistroEvent::SyncSent, 1);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_merges_and_takes_in_batches() {
        let q = PeerQueue::default();
        q.add(["b".to_string(), "a".to_string()]);
        q.add(["a".to_string()]);
        assert_eq!(q.len(), 2, "one entry per client however often it changed");
        assert_eq!(q.take(1), ["a"]);
        assert_eq!(q.take(5), ["b"]);
        assert!(q.is_empty());
    }
}
