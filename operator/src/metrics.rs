//! Prometheus metrics of the operator, served on `/metrics`.
//!
//! Every reconcile is counted and timed; every failure is counted by its
//! [`Error::metric_label`](crate::Error::metric_label); every member status
//! that could not be read is counted; the leader gauge tells which replica
//! is reconciling.

use std::sync::atomic::AtomicI64;
use std::time::Instant;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// Labels of the failure counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    /// `namespace/name` of the RegistryCluster.
    pub cluster: String,
    /// The error's metric label.
    pub error: String,
}

/// Labels of per-cluster metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ClusterLabels {
    /// `namespace/name` of the RegistryCluster.
    pub cluster: String,
}

/// The operator's metrics and their registry.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Reconciles started.
    pub reconciles: Counter,
    /// Reconciles that failed, by cluster and error.
    pub failures: Family<ErrorLabels, Counter>,
    /// Reconcile duration in seconds.
    pub duration: Histogram,
    /// Member status reads that failed, by cluster.
    pub status_read_failures: Family<ClusterLabels, Counter>,
    /// 1 while this replica holds the leader Lease.
    pub leader: Gauge<i64, AtomicI64>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("roster_operator");
        let reconciles = Counter::default();
        registry.register("reconciles", "Reconciles started", reconciles.clone());
        let failures = Family::<ErrorLabels, Counter>::default();
        registry.register("reconcile_failures", "Reconciles that failed, by error", failures.clone());
        let duration = Histogram::new(exponential_buckets(0.005, 2.0, 12));
        registry.register("reconcile_duration_seconds", "Duration of one reconcile", duration.clone());
        let status_read_failures = Family::<ClusterLabels, Counter>::default();
        registry.register(
            "member_status_read_failures",
            "Member /roster/v1/status reads that failed",
            status_read_failures.clone(),
        );
        let leader = Gauge::<i64, AtomicI64>::default();
        registry.register("leader", "1 while this replica holds the leader Lease", leader.clone());
        Metrics { registry, reconciles, failures, duration, status_read_failures, leader }
    }
}

impl Metrics {
    /// Counts a reconcile and returns a timer that records its duration when
    /// dropped.
    pub fn start_reconcile(&self) -> ReconcileTimer<'_> {
        self.reconciles.inc();
        ReconcileTimer { histogram: &self.duration, start: Instant::now() }
    }

    /// The metrics in the OpenMetrics text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// Records a reconcile's duration on drop.
#[derive(Debug)]
pub struct ReconcileTimer<'a> {
    histogram: &'a Histogram,
    start: Instant,
}

impl Drop for ReconcileTimer<'_> {
    fn drop(&mut self) {
        self.histogram.observe(self.start.elapsed().as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_failures() {
        let m = Metrics::default();
        drop(m.start_reconcile());
        m.failures.get_or_create(&ErrorLabels { cluster: "ns/demo".into(), error: "kube".into() }).inc();
        let text = m.render();
        assert!(text.contains("roster_operator_reconciles_total 1"), "{text}");
        assert!(
            text.contains(r#"roster_operator_reconcile_failures_total{cluster="ns/demo",error="kube"} 1"#),
            "{text}"
        );
        assert!(text.contains("roster_operator_reconcile_duration_seconds_count 1"), "{text}");
    }
}
