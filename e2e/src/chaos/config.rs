//! A run's knobs: how long, how many clients, which faults, and the
//! environment variables (`ROSTER_CHAOS_SECS`, `ROSTER_CHAOS`,
//! `ROSTER_CHAOS_SEED`) that set them for the bounded CI run and for
//! replays.

use std::time::Duration;

/// A fault armed on purpose, to show that the checker catches loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArmedFault {
    /// The node at this index drops every Distro sync it sends, for the
    /// whole run. With verify effectively off (a long
    /// `--distro-verify-interval`) nothing repairs them.
    DropEverySyncFrom(usize),
    /// The node at this index skips every Raft write its state machine
    /// applies, for the whole run: the log advances, its data does not,
    /// and writers are still told they succeeded.
    DropEveryApplyOn(usize),
}

/// One chaos run.
#[derive(Debug, Clone)]
pub struct ChaosConfig {
    /// Seed of every random decision.
    pub seed: u64,
    /// How long the workload (and the faults) run.
    pub chaos_for: Duration,
    /// gRPC client processes alive at a time.
    pub sdk_clients: usize,
    /// HTTP instances registered at the start (more come and go).
    pub http_instances: usize,
    /// Whether to kill, partition and drop syncs (and crash clients).
    pub inject_faults: bool,
    /// A fault armed for the whole run.
    pub armed: Option<ArmedFault>,
    /// How long the checker may wait for the cluster to match.
    pub bound: Duration,
    /// Node flags (`--flag value` pairs) replacing the suite's own.
    pub node_args: Vec<String>,
}

impl ChaosConfig {
    /// The configuration of a run with faults, lasting `default_secs` of
    /// chaos unless `ROSTER_CHAOS_SECS` says otherwise (`ROSTER_CHAOS=1`:
    /// ten minutes), seeded from `ROSTER_CHAOS_SEED` or at random.
    pub fn from_env(default_secs: u64) -> ChaosConfig {
        let secs = match (std::env::var("ROSTER_CHAOS_SECS"), std::env::var_os("ROSTER_CHAOS")) {
            (Ok(s), _) => s.trim().parse().unwrap_or(default_secs),
            (Err(_), Some(_)) => 600,
            (Err(_), None) => default_secs,
        };
        ChaosConfig {
            seed: seed_from_env(),
            chaos_for: Duration::from_secs(secs),
            sdk_clients: 4,
            http_instances: 8,
            inject_faults: true,
            armed: None,
            bound: Duration::from_secs(45),
            node_args: Vec::new(),
        }
    }
}

/// The seed in `ROSTER_CHAOS_SEED`, or a random one.
pub fn seed_from_env() -> u64 {
    std::env::var("ROSTER_CHAOS_SEED").ok().and_then(|s| s.trim().parse().ok()).unwrap_or_else(|| fastrand::u64(..))
}
