//! Clearing the overrides of instances that are gone
//! ([`crate::naming::overlay`]), after Nacos's `ExpiredMetadataCleaner`.
//!
//! An override outlives its instance for a while, so that a client that
//! reconnects (and registers again) finds its edit still laid over it; once
//! no client has published the instance for `--instance-override-expiry`
//! (Nacos: `nacos.naming.clean.expired-metadata.expired-time`, 60 s), the
//! Raft leader clears the override through Raft ([`Command::ClearOverride`]).
//! The leader judges from its own store, checking every
//! `--instance-override-clean-interval` (Nacos: 5 s); a new leader starts
//! its count afresh, so a change of leader can only delay a clearing.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::RwLock;
use tokio::sync::watch;
use tracing::{debug, info};

use super::command::Command;
use super::health::leads;
use super::metrics::RaftMetricSet;
use super::state_machine::SmState;
use super::types::{NodeId, Raft};
use crate::duration;
use crate::error::{Error, Result};
use crate::naming::{clock, InstanceKey, NamingStore, ServiceKey};

/// How long an override outlives its instance, and how often the leader
/// looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::Args)]
#[command(next_help_heading = "Instance overrides")]
pub struct OverrideSettings {
    /// An edit of an ephemeral instance (weight, enabled, metadata) is
    /// cleared once no client has published the instance for this long
    /// (Nacos: 60 s).
    #[arg(long = "instance-override-expiry", id = "instance_override_expiry", value_name = "INSTANCE_OVERRIDE_EXPIRY", env = "ROSTER_INSTANCE_OVERRIDE_EXPIRY", default_value = "60s", value_parser = duration::parse)]
    pub expiry: Duration,

    /// How often the Raft leader looks for overrides of gone instances
    /// (Nacos: 5 s).
    #[arg(long = "instance-override-clean-interval", id = "instance_override_clean_interval", value_name = "INSTANCE_OVERRIDE_CLEAN_INTERVAL", env = "ROSTER_INSTANCE_OVERRIDE_CLEAN_INTERVAL", default_value = "5s", value_parser = duration::parse)]
    pub clean_interval: Duration,
}

impl Default for OverrideSettings {
    fn default() -> Self {
        OverrideSettings { expiry: Duration::from_secs(60), clean_interval: Duration::from_secs(5) }
    }
}

impl OverrideSettings {
    /// Refuses a clean interval of zero (the cleaner would spin).
    pub fn validate(&self) -> Result<()> {
        if self.clean_interval.is_zero() {
            return Err(Error::Config("--instance-override-clean-interval must be greater than zero".into()));
        }
        Ok(())
    }
}

/// Since when each overridden instance has been seen gone (pure: the
/// caller passes what it sees and the time).
#[derive(Debug, Default)]
pub struct GoneSince {
    since: HashMap<(ServiceKey, InstanceKey), Instant>,
}

impl GoneSince {
    /// Records that `gone` are the overridden instances no client
    /// publishes at `now` (the others, back or no longer overridden, are
    /// forgotten); returns those gone for at least `expiry`.
    pub fn observe(
        &mut self,
        gone: Vec<(ServiceKey, InstanceKey)>,
        now: Instant,
        expiry: Duration,
    ) -> Vec<(ServiceKey, InstanceKey)> {
        let mut since = HashMap::with_capacity(gone.len());
        let mut expired = Vec::new();
        for pair in gone {
            let first = self.since.get(&pair).copied().unwrap_or(now);
            if now.saturating_duration_since(first) >= expiry {
                expired.push(pair.clone());
            }
            since.insert(pair, first);
        }
        self.since = since;
        expired
    }

    /// Forgets every observation (this member stopped leading).
    pub fn clear(&mut self) {
        self.since.clear();
    }
}

/// The leader's task that clears the overrides of gone instances.
pub struct OverrideCleaner {
    /// The local Raft (clearings are written through it, as leader).
    pub raft: Raft,
    /// Its id.
    pub id: NodeId,
    /// The replicated data (the overrides).
    pub state: Arc<RwLock<SmState>>,
    /// Where the published instances are.
    pub store: Arc<NamingStore>,
    /// Expiry and interval.
    pub settings: OverrideSettings,
    /// Where clearings are counted.
    pub metrics: Arc<RaftMetricSet>,
}

impl OverrideCleaner {
    /// Runs until `stop` turns true.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(self.settings.clean_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut gone = GoneSince::default();
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            if !leads(&self.raft, self.id) {
                gone.clear();
                continue;
            }
            let overridden = self.state.read().data.overridden();
            let unpublished = self.store.unpublished(&overridden);
            for (service, instance) in gone.observe(unpublished, clock::now(), self.settings.expiry) {
                let command = Command::ClearOverride { service: service.clone(), instance: instance.clone() };
                match self.raft.client_write(command).await {
                    Ok(_) => {
                        info!(%service, %instance, "override of a gone instance cleared");
                        self.metrics.overrides_cleared.inc();
                    }
                    Err(e) => debug!(error = %e, "override not cleared (no longer leader?)"),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(ip: &str) -> (ServiceKey, InstanceKey) {
        (
            ServiceKey::new("public", "DEFAULT_GROUP", "a"),
            InstanceKey { ip: ip.into(), port: 80, cluster: "DEFAULT".into() },
        )
    }

    #[test]
    fn an_override_expires_once_its_instance_has_been_gone_for_the_expiry() {
        let expiry = Duration::from_secs(60);
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut gone = GoneSince::default();
        assert!(gone.observe(vec![pair("1"), pair("2")], at(0), expiry).is_empty());
        assert!(gone.observe(vec![pair("1"), pair("2")], at(59), expiry).is_empty());
        // "2" came back at 59 s and left again at 61 s: its count starts over.
        assert!(gone.observe(vec![pair("1")], at(60), expiry) == vec![pair("1")]);
        assert!(gone.observe(vec![pair("2")], at(61), expiry).is_empty());
        assert!(gone.observe(vec![pair("2")], at(120), expiry).is_empty());
        assert_eq!(gone.observe(vec![pair("2")], at(121), expiry), vec![pair("2")]);
    }

    #[test]
    fn a_member_that_stops_leading_starts_afresh() {
        let expiry = Duration::from_secs(60);
        let t0 = Instant::now();
        let mut gone = GoneSince::default();
        gone.observe(vec![pair("1")], t0, expiry);
        gone.clear();
        assert!(gone.observe(vec![pair("1")], t0 + expiry, expiry).is_empty(), "only delayed, never early");
        assert_eq!(gone.observe(vec![pair("1")], t0 + expiry * 2, expiry), vec![pair("1")]);
        assert!(OverrideSettings::default().validate().is_ok());
        let spinning = OverrideSettings { clean_interval: Duration::ZERO, ..OverrideSettings::default() };
        assert!(spinning.validate().is_err());
    }
}
