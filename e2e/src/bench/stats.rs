//! Latency histograms (HDR, microsecond resolution) and the machine facts
//! written next to every figure.

use std::time::Duration;

use hdrhistogram::Histogram;
use serde_json::{json, Value};

/// Latencies of one kind of operation, in microseconds.
#[derive(Debug, Clone)]
pub struct Latencies {
    hist: Histogram<u64>,
}

impl Default for Latencies {
    fn default() -> Self {
        Latencies::new()
    }
}

impl Latencies {
    /// An empty histogram: 1 µs to 1 h, three significant digits.
    pub fn new() -> Self {
        let hist = Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("constant histogram bounds are valid");
        Latencies { hist }
    }

    /// Records one latency (clamped to the histogram's range).
    pub fn record(&mut self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX).clamp(1, 3_600_000_000);
        self.hist.saturating_record(us);
    }

    /// Adds another histogram's samples.
    pub fn merge(&mut self, other: &Latencies) {
        let _ = self.hist.add(&other.hist);
    }

    /// Samples recorded.
    pub fn count(&self) -> u64 {
        self.hist.len()
    }

    /// The value at `quantile` in milliseconds.
    pub fn ms(&self, quantile: f64) -> f64 {
        ms(self.hist.value_at_quantile(quantile))
    }

    /// `{count, p50_ms, p90_ms, p99_ms, max_ms, mean_ms}`.
    pub fn summary(&self) -> Value {
        json!({
            "count": self.count(),
            "p50_ms": self.ms(0.5),
            "p90_ms": self.ms(0.9),
            "p99_ms": self.ms(0.99),
            "max_ms": ms(self.hist.max()),
            "mean_ms": round3(self.hist.mean() / 1000.0),
        })
    }
}

fn ms(us: u64) -> f64 {
    round3(us as f64 / 1000.0)
}

/// Rounds to three decimals (JSON readability).
pub fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Operations per second, rounded to one decimal.
pub fn per_second(n: u64, elapsed: Duration) -> f64 {
    let secs = elapsed.as_secs_f64();
    if secs <= 0.0 {
        return 0.0;
    }
    (n as f64 / secs * 10.0).round() / 10.0
}

/// The 1, 5 and 15 minute load averages (`/proc/loadavg`).
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// Logical CPUs, CPU model and memory of this machine.
pub fn machine() -> Value {
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name").and_then(|r| r.split_once(':')).map(|(_, m)| m.trim().to_owned()))
        .unwrap_or_else(|| "unknown".into());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_kb = proc_field_kb(&meminfo, "MemTotal:");
    json!({"cpus": cpus, "cpu_model": model, "mem_total_mib": mem_kb.map(|k| k / 1024)})
}

/// A `Name:   1234 kB` field of a `/proc` file, in kB.
pub fn proc_field_kb(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

/// Resident (`VmRSS`) and peak resident (`VmHWM`) memory of a process, in kB.
pub fn rss_kb(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    Some((proc_field_kb(&status, "VmRSS:")?, proc_field_kb(&status, "VmHWM:")?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_and_rates() {
        let mut l = Latencies::new();
        for ms in 1..=100u64 {
            l.record(Duration::from_millis(ms));
        }
        assert_eq!(l.count(), 100);
        assert!((l.ms(0.5) - 50.0).abs() < 0.1, "{}", l.ms(0.5));
        assert!((l.ms(0.99) - 99.0).abs() < 0.1, "{}", l.ms(0.99));
        let mut other = Latencies::new();
        other.record(Duration::from_secs(2));
        l.merge(&other);
        // Three significant digits: the maximum is within 0.1 % of 2 s.
        let max = l.summary()["max_ms"].as_f64().expect("max");
        assert!((max - 2000.0).abs() <= 2.0, "{max}");
        assert_eq!(per_second(50, Duration::from_millis(500)), 100.0);
        assert_eq!(proc_field_kb("VmRSS:\t  1234 kB\nVmHWM: 5 kB\n", "VmHWM:"), Some(5));
        assert!(rss_kb(std::process::id()).is_some_and(|(rss, hwm)| rss > 0 && hwm >= rss));
    }
}
