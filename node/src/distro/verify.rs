//! Verify and copy expiry.
//!
//! Every verify interval, a loaded node sends every peer the
//! `(client, revision)` pairs of the clients it vouches for (its own
//! connections and the ip:port clients it is responsible for or last
//! changed). The receiver confirms those it holds at that revision, answers
//! with those it lacks or holds older (the sender re-syncs them in full)
//! and sends back those it holds newer. Copies nobody confirms expire.

use std::sync::Arc;

use roster_proto::peer::{ClientRevision, DistroVerifyRequest};
use tokio::sync::watch;
use tracing::debug;

use super::metrics::DistroEvent;
use super::{now, Distro};
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
        let expired = self.store.expire_copies(now(), self.settings.copy_expiry, self.settings.tombstone_ttl, |tag| {
            responsibility.is_local(tag)
        });
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
            .map(|(client_id, revision)| ClientRevision { client_id, revision })
            .collect();
        if pairs.is_empty() {
            return;
        }
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
        for batch in pairs.chunks(MAX_PAIRS_PER_VERIFY) {
            let request = DistroVerifyRequest { source: self.membership.local().to_owned(), clients: batch.to_vec() };
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
                self.queue(peer, reply.missing_client_ids);
            }
        }
    }
}
