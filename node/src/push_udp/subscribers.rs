//! Who gets UDP pushes: the 1.x-style clients that asked for a service's
//! instances with a `udpPort`, each until it stops asking.
//!
//! A subscriber is one (service, UDP address) pair, as in Nacos 2, where
//! the ip:port client of that address holds one subscription per service
//! and a later list with other clusters replaces the earlier filter. Each
//! list renews it; one not renewed within the expiry is forgotten (Nacos 2:
//! the ip:port client expires 3 minutes after its last update when it
//! publishes nothing, `nacos.naming.client.expired.time`).
//!
//! The table is bounded: clients are not authenticated unless
//! `--auth-enabled`, so a new subscriber beyond the limit is refused (its
//! client still gets its answer and keeps polling).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::Instant;

use crate::naming::ServiceKey;

/// One subscription's filter and bookkeeping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UdpSubscriber {
    /// Where pushes go.
    pub addr: SocketAddr,
    /// The clusters asked for (all when empty).
    pub clusters: Vec<String>,
    /// The client's `User-Agent`.
    pub agent: String,
    /// The client's `app` parameter (`unknown` when absent, as Nacos).
    pub app: String,
    /// When it last asked.
    pub last_seen: Instant,
}

/// What [`UdpSubscribers::subscribe`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subscribed {
    /// A new subscriber.
    New,
    /// A known one, renewed (its filter replaced).
    Renewed,
    /// Refused: the table is full (or UDP push is off, a limit of 0).
    Full,
}

/// The subscriber table, shared by the list handlers (which add) and the
/// push task (which reads and expires).
#[derive(Debug)]
pub struct UdpSubscribers {
    max: usize,
    expiry: Duration,
    inner: Mutex<Table>,
}

#[derive(Debug, Default)]
struct Table {
    by_service: HashMap<ServiceKey, HashMap<SocketAddr, UdpSubscriber>>,
    count: usize,
}

impl UdpSubscribers {
    /// An empty table of at most `max` subscribers, each forgotten `expiry`
    /// after its last list.
    pub fn new(max: usize, expiry: Duration) -> Self {
        UdpSubscribers { max, expiry, inner: Mutex::new(Table::default()) }
    }

    /// Whether UDP push is on at all (a limit above 0).
    pub fn enabled(&self) -> bool {
        self.max > 0
    }

    /// Adds or renews the subscription of `subscriber.addr` to `key`.
    pub fn subscribe(&self, key: &ServiceKey, subscriber: UdpSubscriber) -> Subscribed {
        let mut table = self.inner.lock();
        let full = table.count >= self.max;
        let Table { by_service, count } = &mut *table;
        if let Some(existing) = by_service.get_mut(key).and_then(|subs| subs.get_mut(&subscriber.addr)) {
            *existing = subscriber;
            return Subscribed::Renewed;
        }
        if full {
            return Subscribed::Full;
        }
        by_service.entry(key.clone()).or_default().insert(subscriber.addr, subscriber);
        *count += 1;
        Subscribed::New
    }

    /// Whether anyone subscribes to `key`.
    pub fn watched(&self, key: &ServiceKey) -> bool {
        self.inner.lock().by_service.contains_key(key)
    }

    /// The subscribers of `key`, as they are now.
    pub fn of(&self, key: &ServiceKey) -> Vec<UdpSubscriber> {
        self.inner.lock().by_service.get(key).map(|subs| subs.values().cloned().collect()).unwrap_or_default()
    }

    /// Every watched service.
    pub fn services(&self) -> Vec<ServiceKey> {
        self.inner.lock().by_service.keys().cloned().collect()
    }

    /// Forgets the subscribers not renewed within the expiry; returns how
    /// many.
    pub fn expire(&self, now: Instant) -> usize {
        let mut table = self.inner.lock();
        let before = table.count;
        let expiry = self.expiry;
        table.by_service.retain(|_, subs| {
            subs.retain(|_, s| now.saturating_duration_since(s.last_seen) < expiry);
            !subs.is_empty()
        });
        table.count = table.by_service.values().map(HashMap::len).sum();
        before - table.count
    }

    /// How many subscriptions there are.
    pub fn count(&self) -> usize {
        self.inner.lock().count
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> ServiceKey {
        ServiceKey::new("public", "DEFAULT_GROUP", name)
    }

    fn sub(port: u16, clusters: &[&str], at: Instant) -> UdpSubscriber {
        UdpSubscriber {
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            clusters: clusters.iter().map(|c| (*c).to_owned()).collect(),
            agent: "Nacos-Java-Client:v1.0.0".into(),
            app: "unknown".into(),
            last_seen: at,
        }
    }

    #[test]
    fn one_subscription_per_service_and_address_the_latest_filter_wins() {
        let t0 = Instant::now();
        let subs = UdpSubscribers::new(10, Duration::from_secs(180));
        assert_eq!(subs.subscribe(&key("a"), sub(5000, &["DEFAULT"], t0)), Subscribed::New);
        assert_eq!(subs.subscribe(&key("a"), sub(5000, &["east"], t0)), Subscribed::Renewed);
        assert_eq!(subs.subscribe(&key("b"), sub(5000, &[], t0)), Subscribed::New);
        assert_eq!(subs.count(), 2);
        assert_eq!(subs.of(&key("a")), vec![sub(5000, &["east"], t0)]);
        assert!(subs.watched(&key("b")) && !subs.watched(&key("c")));
    }

    #[test]
    fn the_table_is_bounded_but_renewals_always_pass() {
        let t0 = Instant::now();
        let subs = UdpSubscribers::new(2, Duration::from_secs(180));
        assert_eq!(subs.subscribe(&key("a"), sub(1, &[], t0)), Subscribed::New);
        assert_eq!(subs.subscribe(&key("a"), sub(2, &[], t0)), Subscribed::New);
        assert_eq!(subs.subscribe(&key("a"), sub(3, &[], t0)), Subscribed::Full);
        assert_eq!(subs.subscribe(&key("a"), sub(2, &[], t0)), Subscribed::Renewed);
        assert_eq!(subs.count(), 2);
        let off = UdpSubscribers::new(0, Duration::from_secs(180));
        assert!(!off.enabled());
        assert_eq!(off.subscribe(&key("a"), sub(1, &[], t0)), Subscribed::Full);
    }

    #[test]
    fn subscribers_expire_unless_renewed() {
        let t0 = Instant::now();
        let expiry = Duration::from_secs(180);
        let subs = UdpSubscribers::new(10, expiry);
        subs.subscribe(&key("a"), sub(1, &[], t0));
        subs.subscribe(&key("a"), sub(2, &[], t0));
        subs.subscribe(&key("a"), sub(2, &[], t0 + Duration::from_secs(100)));
        assert_eq!(subs.expire(t0 + expiry - Duration::from_millis(1)), 0);
        assert_eq!(subs.expire(t0 + expiry), 1);
        assert_eq!(subs.of(&key("a")).len(), 1);
        assert_eq!(subs.expire(t0 + Duration::from_secs(280)), 1);
        assert_eq!(subs.count(), 0);
        assert!(subs.services().is_empty());
    }
}
