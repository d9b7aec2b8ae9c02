//! The empty-service cleaner, after Nacos's `EmptyServiceAutoCleanerV2`.
//!
//! An implicit service (one that exists through its instances only) whose
//! last instance leaves stays listed, with no hosts, in `ServiceListRequest`,
//! the v1 and v2 service lists, the service detail and queries, so that a
//! dashboard or an SDK's `list_services` right after a deregistration does
//! not see it vanish. The cleaner removes it once it has been empty and
//! unchanged for `--empty-service-retention` (Nacos:
//! `nacos.naming.clean.empty-service.expired-time`, 60 s); it runs 30 s
//! after start, then every `--empty-service-clean-interval` (Nacos:
//! `nacos.naming.clean.empty-service.interval`, 60 s, as a fixed delay). A
//! retention of 0 forgets an emptied service at once.
//!
//! Replicas agree without talking about it: every member holds every
//! instance (Distro copies the ephemeral ones, Raft the persistent ones),
//! so each sees a service empty out when its last instance leaves its own
//! replicated view, keeps it, and drops it after the same retention; the
//! members differ by at most one clean interval and the replication delay.
//!
//! Explicit services (created through the API, with settings Raft holds)
//! are never cleaned; they stay until deleted. Nacos cleans them too, but
//! in Roster they are replicated, acknowledged writes: removing them would
//! take a Raft write no client asked for, and a service created before its
//! instances register (the usual order for a deployment pipeline) would
//! vanish if they are late.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;
use tracing::info;

use super::clock;
use super::NamingStore;
use crate::duration;
use crate::error::{Error, Result};

/// When the cleaner first runs after start (Nacos: 30 s), unless the clean
/// interval is shorter.
pub const FIRST_RUN: Duration = Duration::from_secs(30);

/// How long emptied services are kept, and how often that is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::Args)]
#[command(next_help_heading = "Empty services")]
pub struct EmptyServiceSettings {
    /// An implicit service whose last instance left stays listed (with no
    /// hosts) until it has been empty for this long (Nacos: 60 s); 0 forgets
    /// it at once.
    #[arg(long = "empty-service-retention", id = "empty_service_retention", value_name = "EMPTY_SERVICE_RETENTION", env = "ROSTER_EMPTY_SERVICE_RETENTION", default_value = "60s", value_parser = duration::parse)]
    pub retention: Duration,

    /// Time between runs of the empty-service cleaner (Nacos: 60 s); the
    /// first run comes 30 s after start, or after one interval if shorter.
    #[arg(long = "empty-service-clean-interval", id = "empty_service_clean_interval", value_name = "EMPTY_SERVICE_CLEAN_INTERVAL", env = "ROSTER_EMPTY_SERVICE_CLEAN_INTERVAL", default_value = "60s", value_parser = duration::parse)]
    pub clean_interval: Duration,
}

impl Default for EmptyServiceSettings {
    fn default() -> Self {
        EmptyServiceSettings { retention: Duration::from_secs(60), clean_interval: Duration::from_secs(60) }
    }
}

impl EmptyServiceSettings {
    /// Refuses a clean interval of zero while services are kept (the
    /// cleaner would spin).
    pub fn validate(&self) -> Result<()> {
        if !self.retention.is_zero() && self.clean_interval.is_zero() {
            return Err(Error::Config(
                "--empty-service-clean-interval must be greater than zero (or --empty-service-retention 0)".into(),
            ));
        }
        Ok(())
    }

    /// Whether emptied services are kept at all.
    pub fn keeps_emptied(&self) -> bool {
        !self.retention.is_zero()
    }

    /// When the first run comes after start.
    pub fn first_run(&self) -> Duration {
        FIRST_RUN.min(self.clean_interval)
    }
}

/// The cleaner's counter: `roster_empty_services_cleaned_total`.
#[derive(Debug, Default)]
pub struct CleanerMetrics {
    cleaned: Counter,
}

impl CleanerMetrics {
    /// Registers `roster_empty_services_cleaned_total`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register("empty_services_cleaned", "Emptied services removed by the cleaner", self.cleaned.clone());
    }

    /// How many emptied services were removed so far.
    pub fn cleaned(&self) -> u64 {
        self.cleaned.get()
    }
}

/// Runs the cleaner over `store` for ever (the node aborts it at shutdown);
/// returns at once when emptied services are not kept.
pub async fn run(store: Arc<NamingStore>, settings: EmptyServiceSettings, metrics: Arc<CleanerMetrics>) {
    if !settings.keeps_emptied() {
        return;
    }
    tokio::time::sleep(settings.first_run()).await;
    loop {
        for service in store.clean_empty_services(clock::now(), settings.retention) {
            info!(%service, "emptied service removed by the cleaner");
            metrics.cleaned.inc();
        }
        tokio::time::sleep(settings.clean_interval).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::naming::model::{BeatTimeouts, Instance, ServiceMeta};
    use crate::naming::store::tests::svc;
    use crate::naming::{ClientKind, Delta, Selection};

    fn listed(store: &NamingStore) -> Vec<String> {
        store.list_services("public", "DEFAULT_GROUP", 1, 100).1
    }

    fn kept_store() -> Arc<NamingStore> {
        Arc::new(NamingStore::new(BeatTimeouts::default()).keeping_emptied_services())
    }

    /// Lets the cleaner task run whatever is due at the current paused time.
    async fn settle() {
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn an_emptied_service_is_listed_until_empty_for_the_retention_then_cleaned_at_the_next_run() {
        let store = kept_store();
        let metrics = Arc::new(CleanerMetrics::default());
        let settings = EmptyServiceSettings::default();
        let cleaner = tokio::spawn(run(store.clone(), settings, metrics.clone()));
        settle().await; // the cleaner waits for its first run, due at 30 s
        let instance = Instance::new("10.0.0.1", 80);
        store.register_ephemeral("c", ClientKind::Connection, &svc("a"), instance.clone());
        tokio::time::advance(Duration::from_secs(10)).await;
        store.deregister_ephemeral("c", &svc("a"), &instance.key(), false);
        assert_eq!(listed(&store), ["a"], "kept, listed");
        assert!(store.query(&svc("a"), &Selection::default()).hosts.is_empty(), "with no hosts");
        assert!(store.service(&svc("a")).is_some_and(|d| d.clusters.is_empty()));

        // First run at 30 s: empty for 20 s only.
        tokio::time::advance(Duration::from_secs(20)).await;
        settle().await;
        assert_eq!(listed(&store), ["a"]);
        // Second run at 90 s: empty for 80 s, cleaned.
        tokio::time::advance(Duration::from_secs(59)).await;
        settle().await;
        assert_eq!(listed(&store), ["a"], "not before the run");
        tokio::time::advance(Duration::from_secs(1)).await;
        settle().await;
        assert!(listed(&store).is_empty());
        assert_eq!(metrics.cleaned(), 1);
        cleaner.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn a_service_that_fills_again_is_kept_and_its_retention_starts_over_when_it_empties_again() {
        let store = kept_store();
        let retention = Duration::from_secs(60);
        let instance = Instance::new("10.0.0.1", 80);
        store.register_ephemeral("c", ClientKind::Connection, &svc("a"), instance.clone());
        store.deregister_ephemeral("c", &svc("a"), &instance.key(), false);
        tokio::time::advance(Duration::from_secs(50)).await;
        store.register_ephemeral("c", ClientKind::Connection, &svc("a"), instance.clone());
        tokio::time::advance(Duration::from_secs(20)).await;
        assert!(store.clean_empty_services(clock::now(), retention).is_empty(), "it holds an instance");
        store.deregister_ephemeral("c", &svc("a"), &instance.key(), false);
        // Deregistering what is not there changes nothing, so it renews nothing.
        tokio::time::advance(Duration::from_secs(30)).await;
        store.deregister_ephemeral("c", &svc("a"), &instance.key(), false);
        tokio::time::advance(Duration::from_secs(29)).await;
        assert!(store.clean_empty_services(clock::now(), retention).is_empty(), "empty for 59 s");
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(store.clean_empty_services(clock::now(), retention), [svc("a")]);
    }

    #[tokio::test(start_paused = true)]
    async fn explicit_services_stay_and_a_deleted_one_goes_at_once() {
        let store = kept_store();
        let retention = Duration::from_secs(60);
        store.set_persistent_service(&svc("created"), Some(ServiceMeta::default()), Vec::new());
        let persistent = Instance { ephemeral: false, ..Instance::new("10.0.0.2", 80) };
        store.set_persistent_service(&svc("persistent"), None, vec![persistent]);
        store.set_persistent_service(&svc("persistent"), None, Vec::new());
        tokio::time::advance(Duration::from_secs(3600)).await;
        assert_eq!(store.clean_empty_services(clock::now(), retention), [svc("persistent")]);
        assert_eq!(listed(&store), ["created"], "explicit services are not cleaned");
        store.set_persistent_service(&svc("created"), None, Vec::new());
        assert!(listed(&store).is_empty(), "a deleted service goes at once, kept or not");
    }

    #[tokio::test(start_paused = true)]
    async fn a_copy_removed_by_distro_empties_the_service_on_that_replica_too() {
        let store = kept_store();
        let (id, service, instance) = ("10.0.0.1:80#true", svc("a"), Instance::new("10.0.0.1", 80));
        let copy =
            |delta: Delta| crate::naming::ClientCopy { id: id.into(), kind: ClientKind::IpPort, owner: None, delta };
        let written = Delta { revision: 5, live: vec![(service.clone(), instance.clone(), 5)], ..Delta::default() };
        let removed = Delta { revision: 6, removed: vec![(service, instance.key(), 6)], ..Delta::default() };
        store.apply_copies(&[copy(written)], "peer:8848", "me:8848", clock::now(), |_| false);
        store.apply_copies(&[copy(removed)], "peer:8848", "me:8848", clock::now(), |_| false);
        assert_eq!(listed(&store), ["a"], "a replica keeps it as the responsible member does");
        tokio::time::advance(Duration::from_secs(60)).await;
        assert_eq!(store.clean_empty_services(clock::now(), Duration::from_secs(60)), [svc("a")]);
    }

    #[test]
    fn a_store_not_told_to_keep_forgets_at_once_and_zero_retention_needs_no_interval() {
        let store = NamingStore::new(BeatTimeouts::default());
        let instance = Instance::new("10.0.0.1", 80);
        store.register_ephemeral("c", ClientKind::Connection, &svc("a"), instance.clone());
        store.deregister_ephemeral("c", &svc("a"), &instance.key(), false);
        assert!(listed(&store).is_empty());
        let off = EmptyServiceSettings { retention: Duration::ZERO, clean_interval: Duration::ZERO };
        assert!(off.validate().is_ok() && !off.keeps_emptied());
        let spinning = EmptyServiceSettings { retention: Duration::from_secs(1), clean_interval: Duration::ZERO };
        assert!(spinning.validate().is_err());
        assert_eq!(EmptyServiceSettings::default().first_run(), FIRST_RUN);
        let quick =
            EmptyServiceSettings { retention: Duration::from_secs(1), clean_interval: Duration::from_millis(200) };
        assert_eq!(quick.first_run(), Duration::from_millis(200));
    }
}
