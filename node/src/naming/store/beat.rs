//! Beats of ip:port clients and their expiry.
//!
//! An instance registered over the HTTP API lives as long as its client
//! beats: silent past its beat timeout it turns unhealthy, silent past its
//! delete timeout it is removed, and with its last instance its client
//! (Nacos: 15 s and 30 s by default, or the instance's
//! `preserved.heart.*` metadata). Only the member responsible for a
//! client judges its beats; the others hold copies (see [`super::verify`]).
//!
//! The judgement is [`Silence::of`], a pure function of the instance, the
//! timeouts and the time; [`NamingStore::expire_beats`] applies it to the
//! whole store at the `now` it is given.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use super::NamingStore;
use crate::naming::client::{distro_tag, ClientKind, Published};
use crate::naming::model::{BeatTimeouts, InstanceKey, ServiceKey};
use crate::naming::replica::Slot;

/// The outcome of a beat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BeatOutcome {
    /// The instance exists and was renewed; the client should beat at this interval (ms).
    Renewed {
        /// Interval the client should use.
        interval_ms: u64,
    },
    /// No such instance: the client should register again (Nacos code 20404).
    NotFound,
}

/// What an instance's silence since its last beat calls for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Silence {
    /// Within the beat timeout, or already unhealthy and within the delete
    /// timeout: nothing changes.
    Tolerated,
    /// Past the beat timeout while healthy: it turns unhealthy.
    TurnsUnhealthy,
    /// Past the delete timeout: it is removed.
    Expired,
}

impl Silence {
    /// The verdict on `p` at `now`, with `defaults` where its metadata sets
    /// no timeout.
    fn of(p: &Published, now: Instant, defaults: BeatTimeouts) -> Silence {
        let silent_ms = u64::try_from(now.saturating_duration_since(p.last_beat).as_millis()).unwrap_or(u64::MAX);
        if silent_ms > p.instance.delete_timeout_ms(defaults.delete_ms) {
            Silence::Expired
        } else if p.instance.healthy && silent_ms > p.instance.beat_timeout_ms(defaults.unhealthy_ms) {
            Silence::TurnsUnhealthy
        } else {
            Silence::Tolerated
        }
    }
}

impl NamingStore {
    /// Renews an ip:port client's instance. An unhealthy instance that beats
    /// again is healthy again at once.
    pub fn beat(&self, client_id: &str, key: &ServiceKey, instance: &InstanceKey, now: Instant) -> BeatOutcome {
        let (outcome, changed) = {
            let mut inner = self.inner.write();
            let Some(client) = inner.clients.get_mut(client_id) else { return BeatOutcome::NotFound };
            let Some(renewed) = client.renew(key, instance, now) else { return BeatOutcome::NotFound };
            let interval_ms = renewed.beat_interval_ms();
            let changed = !renewed.healthy;
            if changed {
                let revision = client.touch_local();
                client.set_health(key, instance, true, revision);
            }
            (BeatOutcome::Renewed { interval_ms }, changed)
        };
        if changed {
            self.notify(key);
            self.changed_locally(client_id, Some(vec![(key.clone(), instance.clone())]));
        }
        outcome
    }

    /// Expires ip:port clients' instances that stopped beating: unhealthy after
    /// the beat timeout, removed after the delete timeout. Only clients for
    /// which `responsible(tag)` holds are checked (Distro: the responsible
    /// member judges beats; the others hold copies). Returns the services
    /// that changed.
    ///
    /// The scan runs under the shared lock; the exclusive lock is taken only
    /// when some client actually has to change.
    pub fn expire_beats(&self, now: Instant, responsible: impl Fn(&str) -> bool) -> Vec<ServiceKey> {
        let timeouts = self.timeouts;
        let verdict = |p: &Published| Silence::of(p, now, timeouts);
        let due: Vec<String> = {
            let inner = self.inner.read();
            inner
                .clients
                .values()
                .filter(|c| c.kind == ClientKind::IpPort && responsible(distro_tag(&c.id)))
                .filter(|c| c.published.values().flat_map(BTreeMap::values).any(|p| verdict(p) != Silence::Tolerated))
                .map(|c| c.id.clone())
                .collect()
        };
        if due.is_empty() {
            return Vec::new();
        }
        let mut changed: BTreeSet<ServiceKey> = BTreeSet::new();
        let mut changed_clients: Vec<(String, Vec<Slot>)> = Vec::new();
        {
            let mut inner = self.inner.write();
            for id in &due {
                let Some(client) = inner.clients.get_mut(id) else { continue };
                let verdicts: Vec<(Slot, Silence)> = client
                    .published()
                    .iter()
                    .flat_map(|(s, m)| m.iter().map(move |(k, p)| ((s.clone(), k.clone()), verdict(p))))
                    .filter(|(_, v)| *v != Silence::Tolerated)
                    .collect();
                if verdicts.is_empty() {
                    continue;
                }
                let revision = client.touch_local();
                let mut slots = Vec::with_capacity(verdicts.len());
                for ((service, key), silence) in verdicts {
                    match silence {
                        Silence::Expired => {
                            client.remove(&service, &key, revision, now, false);
                        }
                        Silence::TurnsUnhealthy => {
                            client.set_health(&service, &key, false, revision);
                        }
                        Silence::Tolerated => {}
                    }
                    changed.insert(service.clone());
                    slots.push((service, key));
                }
                let emptied: Vec<ServiceKey> =
                    slots.iter().map(|(s, _)| s.clone()).filter(|s| !client.published().contains_key(s)).collect();
                let gone = client.published().is_empty();
                for service in emptied {
                    inner.unpublish(id, &service);
                }
                if gone {
                    inner.take_and_bury(id);
                }
                changed_clients.push((id.clone(), slots));
            }
        }
        for key in &changed {
            self.notify(key);
        }
        for (id, slots) in changed_clients {
            self.changed_locally(&id, Some(slots));
        }
        changed.into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::time::advance;

    use super::super::tests::{inst, svc};
    use super::super::Selection;
    use super::*;
    use crate::naming::clock;
    use crate::naming::model::{Instance, META_BEAT_TIMEOUT, META_DELETE_TIMEOUT};

    const TIMEOUTS: BeatTimeouts = BeatTimeouts { unhealthy_ms: 100, delete_ms: 200 };

    fn published(instance: Instance, last_beat: Instant) -> Published {
        Published { instance, revision: 1, last_beat }
    }

    #[test]
    fn silence_is_judged_against_each_timeout_exclusively() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let healthy = published(inst("10.0.0.1", 80), t0);
        assert_eq!(Silence::of(&healthy, at(100), TIMEOUTS), Silence::Tolerated, "at the timeout exactly");
        assert_eq!(Silence::of(&healthy, at(101), TIMEOUTS), Silence::TurnsUnhealthy);
        assert_eq!(Silence::of(&healthy, at(200), TIMEOUTS), Silence::TurnsUnhealthy);
        assert_eq!(Silence::of(&healthy, at(201), TIMEOUTS), Silence::Expired);
        let unhealthy = published(Instance { healthy: false, ..inst("10.0.0.1", 80) }, t0);
        assert_eq!(Silence::of(&unhealthy, at(150), TIMEOUTS), Silence::Tolerated, "unhealthy already");
        assert_eq!(Silence::of(&unhealthy, at(201), TIMEOUTS), Silence::Expired);
        // A beat in the future of `now` (taken on another thread) is no silence.
        assert_eq!(Silence::of(&healthy, t0 - Duration::from_millis(5), TIMEOUTS), Silence::Tolerated);
    }

    #[test]
    fn an_instance_s_metadata_overrides_the_timeouts() {
        let t0 = Instant::now();
        let mut own = inst("10.0.0.1", 80);
        own.metadata.insert(META_BEAT_TIMEOUT.into(), "1000".into());
        own.metadata.insert(META_DELETE_TIMEOUT.into(), "2000".into());
        let p = published(own, t0);
        assert_eq!(Silence::of(&p, t0 + Duration::from_millis(900), TIMEOUTS), Silence::Tolerated);
        assert_eq!(Silence::of(&p, t0 + Duration::from_millis(1001), TIMEOUTS), Silence::TurnsUnhealthy);
        assert_eq!(Silence::of(&p, t0 + Duration::from_millis(2001), TIMEOUTS), Silence::Expired);
    }

    #[tokio::test(start_paused = true)]
    async fn beats_expire_to_unhealthy_then_removed() {
        let store = NamingStore::new(TIMEOUTS);
        let i = inst("10.0.0.1", 80);
        store.register_ephemeral("10.0.0.1:80#true", ClientKind::IpPort, &svc("a"), i.clone());
        advance(Duration::from_millis(50)).await;
        assert!(store.expire_beats(clock::now(), |_| true).is_empty());
        advance(Duration::from_millis(100)).await;
        assert_eq!(store.expire_beats(clock::now(), |_| true), vec![svc("a")]);
        assert!(!store.query(&svc("a"), &Selection::default()).hosts[0].healthy);
        let healthy_only = Selection { healthy_only: true, ..Selection::default() };
        assert!(store.query(&svc("a"), &healthy_only).hosts.is_empty());
        // A beat revives it.
        advance(Duration::from_millis(10)).await;
        let outcome = store.beat("10.0.0.1:80#true", &svc("a"), &i.key(), clock::now());
        assert_eq!(outcome, BeatOutcome::Renewed { interval_ms: 5000 });
        assert!(store.query(&svc("a"), &Selection::default()).hosts[0].healthy);
        // Renewed: silent for less than the beat timeout since the beat.
        advance(Duration::from_millis(90)).await;
        assert!(store.expire_beats(clock::now(), |_| true).is_empty(), "the beat renewed it");
        // Silence past the delete timeout removes it and its client.
        advance(Duration::from_millis(150)).await;
        store.expire_beats(clock::now(), |_| true);
        assert!(store.query(&svc("a"), &Selection::default()).hosts.is_empty());
        assert!(!store.has_client("10.0.0.1:80#true"));
        assert_eq!(store.beat("10.0.0.1:80#true", &svc("a"), &i.key(), clock::now()), BeatOutcome::NotFound);
    }

    #[tokio::test(start_paused = true)]
    async fn only_the_responsible_member_expires_ip_port_clients() {
        let store = NamingStore::new(TIMEOUTS);
        store.register_ephemeral("10.0.0.1:80#true", ClientKind::IpPort, &svc("a"), inst("10.0.0.1", 80));
        store.register_ephemeral("10.0.0.2:80#true", ClientKind::IpPort, &svc("a"), inst("10.0.0.2", 80));
        store.register_ephemeral("conn", ClientKind::Connection, &svc("a"), inst("10.0.0.3", 80));
        let mut local = store.subscribe_local_changes();
        advance(Duration::from_millis(300)).await;
        assert_eq!(store.expire_beats(clock::now(), |tag| tag == "10.0.0.1:80"), vec![svc("a")]);
        assert!(!store.has_client("10.0.0.1:80#true"));
        assert!(store.has_client("10.0.0.2:80#true"), "another member judges its beats");
        assert!(store.has_client("conn"), "a connection does not beat");
        assert_eq!(local.try_recv().ok().map(|c| c.client), Some("10.0.0.1:80#true".to_owned()), "announced to Distro");
        assert!(local.try_recv().is_err());
        assert!(store.expire_beats(clock::now(), |tag| tag == "10.0.0.1:80").is_empty(), "nothing left to do");
    }

    #[tokio::test(start_paused = true)]
    async fn an_ip_port_client_loses_only_its_silent_instances() {
        let store = NamingStore::new(TIMEOUTS);
        let id = "10.0.0.1:80#true";
        let east = Instance { cluster: "east".into(), ..inst("10.0.0.1", 80) };
        store.register_ephemeral(id, ClientKind::IpPort, &svc("a"), inst("10.0.0.1", 80));
        store.register_ephemeral(id, ClientKind::IpPort, &svc("a"), east.clone());
        advance(Duration::from_millis(150)).await;
        assert_eq!(store.beat(id, &svc("a"), &east.key(), clock::now()), BeatOutcome::Renewed { interval_ms: 5000 });
        advance(Duration::from_millis(100)).await;
        store.expire_beats(clock::now(), |_| true);
        let clusters: Vec<String> =
            store.query(&svc("a"), &Selection::default()).hosts.iter().filter_map(|h| h.cluster_name.clone()).collect();
        assert_eq!(clusters, ["east"], "silent for 250 ms, the DEFAULT one went; east beat 100 ms ago");
        assert!(store.has_client(id));
    }
}
