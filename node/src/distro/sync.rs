//! Sync, outbound: one queue and one sender task per peer.
//!
//! A local change names a client and the slots it touched (or the whole
//! client, for a removal); the change is added to every peer's queue,
//! which keeps, per client, the set of changed slots (or "whole"). The
//! sender sends the *current* state of exactly those slots (a delta:
//! the live versions and removal records with their revisions, and the
//! client's revision and floor; see `naming::replica`), never the whole
//! client again for a one-instance change.
//!
//! Batching adapts to the link: when nothing is in flight to a peer, a
//! change leaves at once (after `--distro-sync-delay`, 0 by default);
//! while a send is in flight, the changes that arrive gather in the queue
//! (several changes to one slot become one) and leave together as soon as
//! it is answered. A light load thus waits for nothing, and a heavy one
//! fills each message with everything that arrived during one round trip.
//! A failed send puts its clients back and is retried after the retry
//! delay, for as long as the peer is in the member list. The merge is a
//! join of revisions, so the order in which deltas arrive does not matter.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use roster_proto::peer::DistroSyncRequest;
use tokio::sync::{watch, Notify};
use tracing::{debug, warn};

use super::metrics::DistroEvent;
use super::{codec, Distro};
use crate::naming::{LocalChange, Slot};
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

/// What waits to be sent of one client.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Pending {
    /// The whole client (a removal, a repair, or too much to name).
    Whole,
    /// These slots.
    Slots(BTreeSet<Slot>),
}

impl Pending {
    /// Adds `slots` (`None`: the whole client) to what waits.
    fn add(&mut self, slots: Option<Vec<Slot>>) {
        match (&mut *self, slots) {
            (Pending::Whole, _) => {}
            (_, None) => *self = Pending::Whole,
            (Pending::Slots(set), Some(slots)) => set.extend(slots),
        }
    }

    fn into_slots(self) -> Option<Vec<Slot>> {
        match self {
            Pending::Whole => None,
            Pending::Slots(set) => Some(set.into_iter().collect()),
        }
    }
}

/// The clients waiting to be sent to one peer.
#[derive(Debug, Default)]
pub struct PeerQueue {
    pending: Mutex<BTreeMap<String, Pending>>,
    wake: Notify,
}

impl PeerQueue {
    /// Adds a change of `client` (its `slots`, `None`: all of it).
    pub fn add(&self, client: String, slots: Option<Vec<Slot>>) {
        {
            let mut pending = self.pending.lock();
            match pending.get_mut(&client) {
                Some(p) => p.add(slots),
                None => {
                    let mut p = Pending::Slots(BTreeSet::new());
                    p.add(slots);
                    pending.insert(client, p);
                }
            }
        }
        self.wake.notify_one();
    }

    /// Takes up to `n` clients and what waits of each.
    fn take(&self, n: usize) -> Vec<(String, Option<Vec<Slot>>)> {
        let mut pending = self.pending.lock();
        let ids: Vec<String> = pending.keys().take(n).cloned().collect();
        ids.into_iter().filter_map(|id| pending.remove(&id).map(|p| (id, p.into_slots()))).collect()
    }

    /// Puts back what a failed send took (merged with what arrived since).
    fn put_back(&self, batch: Vec<(String, Option<Vec<Slot>>)>) {
        for (client, slots) in batch {
            self.add(client, slots);
        }
    }

    /// Clients waiting.
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
    /// Clients taken from a queue whose send has not been answered yet.
    in_flight: AtomicUsize,
}

impl SyncQueues {
    /// Clients waiting, over all peers.
    pub fn pending(&self) -> usize {
        self.queues.lock().values().map(|q| q.len()).sum()
    }

    /// Clients waiting or in flight, over all peers.
    pub fn unsent(&self) -> usize {
        self.pending() + self.in_flight.load(Ordering::Acquire)
    }

    /// Drops the queue of a peer that left (its sender ends).
    fn remove(&self, peer: &str) {
        self.queues.lock().remove(peer);
    }
}

impl Distro {
    /// The queue of `peer`, starting the peer's sender if needed.
    fn peer_queue(self: &Arc<Self>, peer: &str) -> Arc<PeerQueue> {
        let mut queues = self.queues.queues.lock();
        if let Some(q) = queues.get(peer) {
            return q.clone();
        }
        let q = Arc::new(PeerQueue::default());
        queues.insert(peer.to_owned(), q.clone());
        let distro = self.clone();
        let peer = peer.to_owned();
        let sender_queue = q.clone();
        let stop = self.stop_signal();
        tokio::spawn(async move { distro.run_sender(peer, sender_queue, stop).await });
        q
    }

    /// Queues the whole clients `ids` for `peer` (verify repairs).
    pub(crate) fn queue_whole(self: &Arc<Self>, peer: &str, ids: impl IntoIterator<Item = String>) {
        let queue = self.peer_queue(peer);
        for id in ids {
            queue.add(id, None);
        }
    }

    /// Queues a local change for every peer.
    pub(crate) fn queue_all(self: &Arc<Self>, change: &LocalChange) {
        for peer in self.membership.peers() {
            self.peer_queue(&peer).add(change.client.clone(), change.slots.clone());
        }
    }

    /// Forwards every local change to every peer's queue. A lagging
    /// receiver (more changes than the channel holds) queues every client
    /// this node vouches for, whole.
    pub(crate) async fn run_dispatcher(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let mut changes = self.store.subscribe_local_changes();
        loop {
            tokio::select! {
                change = changes.recv() => match change {
                    Ok(change) => self.queue_all(&change),
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(missed)) => {
                        warn!(missed, "Distro fell behind local changes; re-sending every local client");
                        let responsibility = self.membership.responsibility();
                        let ids: Vec<String> = self
                            .store
                            .verify_list(|tag| responsibility.is_local(tag))
                            .into_iter()
                            .map(|(id, _, _)| id)
                            .collect();
                        for peer in self.membership.peers() {
                            self.queue_whole(&peer, ids.iter().cloned());
                        }
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                },
                _ = stop.wait_for(|s| *s) => return,
            }
        }
    }

    /// Sends `peer`'s queue until the peer leaves the member list: at once
    /// when the link is idle, and what gathered during a send right after it.
    async fn run_sender(self: Arc<Self>, peer: String, queue: Arc<PeerQueue>, mut stop: watch::Receiver<bool>) {
        loop {
            if queue.is_empty() {
                tokio::select! {
                    _ = queue.wake.notified() => {}
                    _ = stop.wait_for(|s| *s) => return,
                }
                continue;
            }
            if self.membership.member(&peer).is_none() {
                debug!(peer, dropped = queue.len(), "peer left the member list; its pending syncs are dropped");
                self.queues.remove(&peer);
                return;
            }
            if !self.settings.sync_delay.is_zero() {
                tokio::select! {
                    _ = tokio::time::sleep(self.settings.sync_delay) => {}
                    _ = stop.wait_for(|s| *s) => return,
                }
            }
            let batch = queue.take(MAX_CLIENTS_PER_SYNC);
            self.queues.in_flight.fetch_add(batch.len(), Ordering::AcqRel);
            let sent = self.send_sync(&peer, &batch).await;
            self.queues.in_flight.fetch_sub(batch.len(), Ordering::AcqRel);
            if let Err(e) = sent {
                self.metrics.event(DistroEvent::SyncFailed, 1);
                debug!(peer, clients = batch.len(), error = %e, "Distro sync failed; will retry");
                queue.put_back(batch);
                tokio::select! {
                    _ = tokio::time::sleep(self.settings.sync_retry_delay) => {}
                    _ = stop.wait_for(|s| *s) => return,
                }
            }
        }
    }

    /// Sends the current state of `batch` to `peer`: one message, or several
    /// when the clients' data exceeds the message budget (clients with
    /// thousands of instances).
    async fn send_sync(&self, peer: &str, batch: &[(String, Option<Vec<Slot>>)]) -> Result<(), SyncError> {
        let copies = self.store.copies(batch, &self.local_owner());
        let upserts: Vec<_> = copies.iter().map(codec::encode).collect();
        drop(copies);
        let sent = upserts.len() as u64;
        for upserts in codec::split_by_size(upserts, MAX_CLIENTS_PER_SYNC, codec::MESSAGE_BUDGET_BYTES) {
            let request = DistroSyncRequest { source: self.membership.local().to_owned(), upserts };
            self.send_sync_message(peer, request).await?;
        }
        self.metrics.event(DistroEvent::ClientsSent, sent);
        Ok(())
    }

    /// Sends one sync message.
    async fn send_sync_message(&self, peer: &str, request: DistroSyncRequest) -> Result<(), SyncError> {
        let clients = request.upserts.len();
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
    use crate::naming::{InstanceKey, ServiceKey};

    fn slot(service: &str, port: u16) -> Slot {
        (
            ServiceKey::new("public", "DEFAULT_GROUP", service),
            InstanceKey { ip: "10.0.0.1".into(), port, cluster: "DEFAULT".into() },
        )
    }

    #[test]
    fn a_queue_merges_the_slots_of_each_client_and_a_whole_change_absorbs_them() {
        let q = PeerQueue::default();
        q.add("b".into(), Some(vec![slot("s", 1)]));
        q.add("a".into(), Some(vec![slot("s", 1)]));
        q.add("a".into(), Some(vec![slot("s", 2), slot("s", 1)]));
        q.add("c".into(), Some(vec![slot("s", 1)]));
        q.add("c".into(), None);
        q.add("c".into(), Some(vec![slot("s", 3)]));
        assert_eq!(q.len(), 3, "one entry per client however often it changed");
        assert_eq!(q.take(1), [("a".to_string(), Some(vec![slot("s", 1), slot("s", 2)]))]);
        let rest = q.take(5);
        assert_eq!(rest, [("b".to_string(), Some(vec![slot("s", 1)])), ("c".to_string(), None)]);
        assert!(q.is_empty());
        // A failed send is put back under what arrived meanwhile.
        q.add("b".into(), Some(vec![slot("s", 9)]));
        q.put_back(rest);
        assert_eq!(q.take(5), [("b".to_string(), Some(vec![slot("s", 1), slot("s", 9)])), ("c".to_string(), None)]);
    }
}
