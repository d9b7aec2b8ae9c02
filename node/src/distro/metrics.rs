//! Prometheus metrics of Distro: `roster_distro_events_total{event}`, one
//! counter per [`DistroEvent`], a closed set.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

label_set! {
    /// What happened in Distro.
    pub enum DistroEvent {
        /// A sync message was delivered.
        SyncSent => "sync_sent",
        /// A sync send failed (and will be retried).
        SyncFailed => "sync_failed",
        /// A sync message was dropped by fault injection.
        SyncDropped => "sync_dropped",
        /// Clients sent in delivered syncs.
        ClientsSent => "clients_sent",
        /// Clients from a peer's sync that changed what was held.
        ClientsApplied => "clients_applied",
        /// Copies of connections dropped because their member restarted.
        RestartedConnections => "restarted_connections",
        /// A verify message was answered.
        VerifySent => "verify_sent",
        /// A verify call failed.
        VerifyFailed => "verify_failed",
        /// Clients a peer reported missing (re-synced in full).
        VerifyMissing => "verify_missing",
        /// Clients sent back whole to a peer whose sync carried an older
        /// version than the one held.
        SentBack => "sent_back",
        /// Copies dropped because nobody confirmed them.
        CopiesExpired => "copies_expired",
        /// A snapshot served to a loading peer.
        SnapshotServed => "snapshot_served",
        /// The snapshot was loaded (the node is initialized).
        SnapshotLoaded => "snapshot_loaded",
        /// A load round in which no peer could serve a snapshot.
        SnapshotRoundFailed => "snapshot_round_failed",
        /// An HTTP write forwarded to the responsible member.
        HttpForwarded => "http_forwarded",
        /// An HTTP write that could not be forwarded (handled here).
        HttpForwardFailed => "http_forward_failed",
    }
}

/// Labels of Distro events.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DistroLabels {
    /// What happened.
    pub event: DistroEvent,
}

/// Distro's metrics. Share one per node.
#[derive(Debug, Default)]
pub struct DistroMetrics {
    events: Family<DistroLabels, Counter>,
}

impl DistroMetrics {
    /// Registers `roster_distro_events_total{event}`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register("distro_events", "Distro replication events by kind", self.events.clone());
    }

    /// Counts `n` events of kind `event`.
    pub fn event(&self, event: DistroEvent, n: u64) {
        if n > 0 {
            self.events.get_or_create(&DistroLabels { event }).inc_by(n);
        }
    }

    /// How many events of kind `event` happened so far.
    pub fn count(&self, event: DistroEvent) -> u64 {
        self.events.get_or_create(&DistroLabels { event }).get()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn events_render_under_their_labels() {
        let metrics = DistroMetrics::default();
        let mut registry = Registry::with_prefix("roster");
        metrics.register(&mut registry);
        metrics.event(DistroEvent::VerifyMissing, 3);
        metrics.event(DistroEvent::SyncSent, 0);
        let mut out = String::new();
        assert!(prometheus_client::encoding::text::encode(&mut out, &registry).is_ok());
        assert!(out.contains("roster_distro_events_total{event=\"verify_missing\"} 3"), "{out}");
        assert!(!out.contains("sync_sent"), "zero counts create nothing: {out}");
        assert_eq!(metrics.count(DistroEvent::VerifyMissing), 3);
    }

    #[test]
    fn every_event_has_its_own_label() {
        let labels: BTreeSet<&str> = DistroEvent::ALL.iter().map(|e| e.label()).collect();
        assert_eq!(labels.len(), DistroEvent::ALL.len());
        assert!(labels.iter().all(|l| l.chars().all(|c| c.is_ascii_lowercase() || c == '_')));
    }
}
