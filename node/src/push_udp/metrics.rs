//! Prometheus metrics of UDP push: `roster_udp_pushes_total{result}`, one
//! counter per [`UdpPushOutcome`] (a closed set), and
//! `roster_udp_subscribers`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

label_set! {
    /// What happened to a UDP push or datagram.
    pub enum UdpPushOutcome {
        /// A push was sent.
        Sent => "sent",
        /// A push was acknowledged.
        Acked => "acked",
        /// An unacknowledged push was sent again.
        Retried => "retried",
        /// No ack after every retry: given up (the client polls).
        Dropped => "dropped",
        /// Not sent: too large for a datagram, or a socket error.
        Failed => "failed",
        /// A new subscriber refused: the table is full.
        Refused => "refused",
        /// A datagram that acknowledges nothing in flight.
        Stray => "stray",
    }
}

/// Labels of a UDP push event.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct UdpPushLabels {
    /// The outcome.
    pub result: UdpPushOutcome,
}

/// UDP push metrics. Share one per node.
#[derive(Debug, Default)]
pub struct UdpPushMetrics {
    pushes: Family<UdpPushLabels, Counter>,
    /// Subscriptions held (updated by the push task).
    pub subscribers: Gauge,
}

impl UdpPushMetrics {
    /// Registers `roster_udp_pushes_total{result}` and `roster_udp_subscribers`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register("udp_pushes", "UDP pushes to 1.x HTTP clients by outcome", self.pushes.clone());
        registry.register("udp_subscribers", "UDP push subscriptions held", self.subscribers.clone());
    }

    /// Counts one event.
    pub fn count(&self, result: UdpPushOutcome) {
        self.pushes.get_or_create(&UdpPushLabels { result }).inc();
    }

    /// How many events of this outcome happened so far.
    pub fn get(&self, result: UdpPushOutcome) -> u64 {
        self.pushes.get_or_create(&UdpPushLabels { result }).get()
    }
}
