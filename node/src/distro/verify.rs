//! Verify and copy expiry.
//!
//! Every verify interval, a loaded node sends every peer the
//! `(client, revision, digest)` of the clients it vouches for (its own
//! connections and the ip:port clients it is responsible for or last
//! changed). The receiver confirms those it holds at that revision with
//! that digest, answers with those it lacks, holds older or holds
//! differently (the sender re-syncs them whole) and sends back, whole,
//! those it holds newer or differently: two copies of one client that
//! differ at the same revision (a sync lost on the way, two members that
//! wrote one client) are thus merged on both sides. Copies nobody confirms
//! expire.

use std::sync::Arc;

use roster_proto::peer::{ClientRevision, DistroVerifyRequest};
use tokio::sync::watch;
use tracing::debug;

use super::metrics::DistroEvent;
use super::{now, Distro};
use crate::naming::CopyExpiry;
use crate::peer::PeerError;

/// Most `(client, revision)` pairs in one verify message.
const MAX_PAIRS_PER_VERIFY: usize = 5_000;

impl Distro {
    /// Verifies with every peer each interval, and expires unconfirmed
    /// copies on the same beat.
    pub(crate) async fn run_verifier(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(self.settings.verify_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            self.expire_copies();
            if self.is_initialized() {
                self.verify_round().await;
            }
        }
    }

    /// Drops copies whose source stopped confirming them.
    pub(crate) fn expire_copies(&self) {
        let responsibility = self.membership.responsibility();
        let expiry = CopyExpiry { connection: self.settings.copy_expiry, tombstone_ttl: self.settings.tombstone_ttl };
        let expired = self.store.expire_copies(now(), expiry, |tag| responsibility.is_local(tag));
        if expired > 0 {
            self.metrics.event(DistroEvent::CopiesExpired, expired as u64);
            debug!(expired, "Distro copies expired without verification");
        }
    }

    /// One verify round with every peer, concurrently.
    async fn verify_round(self: &Arc<Self>) {
        let responsibility = self.membership.responsibility();
        let pairs: Vec<ClientRevision> = self
            .store
            .verify_list(|tag| responsibility.is_local(tag))
            .into_iter()
            .map(|(client_id, revision, digest)| ClientRevision { client_id, revision, digest })
            .collect();
        // Sent even when empty: a peer then hands over the ip:port clients
        // this node is responsible for but lacks.
        let pairs = Arc::new(pairs);
        let rounds: Vec<_> = self
            .membership
            .peers()
            .into_iter()
            .map(|peer| {
                let distro = self.clone();
                let pairs = pairs.clone();
                tokio::spawn(async move { distro.verify_with(&peer, &pairs).await })
            })
            .collect();
        for round in rounds {
            let _ = round.await;
        }
    }

    /// Verifies `pairs` with `peer` and queues the re-sync of what it lacks.
    async fn verify_with(self: &Arc<Self>, peer: &str, pairs: &[ClientRevision]) {
        let whole = pairs.len() <= MAX_PAIRS_PER_VERIFY;
        // An empty list still goes out as one message (see verify_round).
        let batches: Vec<&[ClientRevision]> =
            if pairs.is_empty() { vec![pairs] } else { pairs.chunks(MAX_PAIRS_PER_VERIFY).collect() };
        for batch in batches {
            let request =
                DistroVerifyRequest { source: self.membership.local().to_owned(), clients: batch.to_vec(), whole };
            let reply = match self.transport.distro_verify(peer, request, self.settings.sync_timeout).await {
                Ok(reply) => reply,
                // Nothing was sent: the peer has no endpoint or is cut.
                Err(PeerError::Unreachable(_)) => return,
                Err(e) => {
                    debug!(peer, error = %e, "Distro verify failed");
                    self.metrics.event(DistroEvent::VerifyFailed, 1);
                    return;
                }
            };
            self.metrics.event(DistroEvent::VerifySent, 1);
            if !reply.missing_client_ids.is_empty() {
                debug!(peer, missing = reply.missing_client_ids.len(), "peer lacks clients; re-syncing them");
                self.metrics.event(DistroEvent::VerifyMissing, reply.missing_client_ids.len() as u64);
                self.queue_whole(peer, reply.missing_client_ids);
            }
        }
    }
}
