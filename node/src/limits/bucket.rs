//! The token bucket: `burst` requests at once, then `per_second` on
//! average. A pure function of the clock it is handed, so its arithmetic
//! is tested without waiting.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// A rate: tokens added per second and the bucket's size.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateSettings {
    /// Tokens added per second; 0 turns the limit off.
    pub per_second: f64,
    /// Bucket size: requests that may arrive at once.
    pub burst: u32,
}

impl RateSettings {
    /// A rate of `per_second` with bursts of `burst`.
    pub fn new(per_second: f64, burst: u32) -> Self {
        RateSettings { per_second, burst }
    }

    /// Whether requests are limited at all.
    pub fn enabled(&self) -> bool {
        self.per_second > 0.0 && self.per_second.is_finite() && self.burst > 0
    }
}

/// One client's bucket.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket at `now`.
    pub fn full(settings: &RateSettings, now: Instant) -> Self {
        TokenBucket { tokens: f64::from(settings.burst), last: now }
    }

    fn refill(&mut self, settings: &RateSettings, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * settings.per_second).min(f64::from(settings.burst));
        self.last = now;
    }

    /// Takes one token, or says how long until one is there.
    pub fn try_take(&mut self, settings: &RateSettings, now: Instant) -> Result<(), Duration> {
        self.refill(settings, now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            let wait = (1.0 - self.tokens) / settings.per_second;
            Err(Duration::try_from_secs_f64(wait).unwrap_or(Duration::MAX))
        }
    }

    /// Whether the bucket has refilled completely by `now` (it then carries
    /// no information and can be forgotten).
    pub fn is_full(&self, settings: &RateSettings, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens + elapsed * settings.per_second >= f64::from(settings.burst)
    }
}

/// Buckets are swept of full ones when the map grows past this.
const SWEEP_AT: usize = 4096;
/// Most buckets held. Past it (a flood from more addresses than that, each
/// with a bucket still refilling), the least recently used are forgotten
/// down to half of it: such a client starts with a full bucket again, which
/// a flood from that many addresses gains little from, while memory and the
/// cost of sweeping stay bounded.
pub const MAX_KEYS: usize = 65_536;

/// One bucket per key (a connection, a client IP), created on first use.
#[derive(Debug)]
pub struct KeyedBuckets<K> {
    settings: RateSettings,
    buckets: Mutex<Buckets<K>>,
}

#[derive(Debug)]
struct Buckets<K> {
    map: HashMap<K, TokenBucket>,
    /// The size at which the next sweep runs: twice what the last sweep
    /// left, so sweeps cost O(1) per new key however many keys stay.
    sweep_at: usize,
}

impl<K: Hash + Eq + Copy> KeyedBuckets<K> {
    /// No buckets yet.
    pub fn new(settings: RateSettings) -> Self {
        KeyedBuckets { settings, buckets: Mutex::new(Buckets { map: HashMap::new(), sweep_at: SWEEP_AT }) }
    }

    /// The rate every bucket follows.
    pub fn settings(&self) -> RateSettings {
        self.settings
    }

    /// Takes a token from `key`'s bucket, or says how long until one is there.
    pub fn check(&self, key: K, now: Instant) -> Result<(), Duration> {
        if !self.settings.enabled() {
            return Ok(());
        }
        let mut buckets = self.buckets.lock();
        if buckets.map.len() >= buckets.sweep_at && !buckets.map.contains_key(&key) {
            buckets.sweep(&self.settings, now);
        }
        buckets.map.entry(key).or_insert_with(|| TokenBucket::full(&self.settings, now)).try_take(&self.settings, now)
    }

    /// Forgets `key`'s bucket (its connection closed).
    pub fn remove(&self, key: &K) {
        self.buckets.lock().map.remove(key);
    }

    /// Number of buckets held.
    pub fn len(&self) -> usize {
        self.buckets.lock().map.len()
    }

    /// Whether no bucket is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<K: Hash + Eq + Copy> Buckets<K> {
    /// Drops full buckets (the same as absent ones), then, past half of
    /// [`MAX_KEYS`], the least recently used ones down to that half. The
    /// next sweep runs once the map has doubled, so sweeps cost O(1) per
    /// new key.
    fn sweep(&mut self, settings: &RateSettings, now: Instant) {
        self.map.retain(|_, b| !b.is_full(settings, now));
        let keep = MAX_KEYS / 2;
        if self.map.len() > keep {
            let mut ages: Vec<Instant> = self.map.values().map(|b| b.last).collect();
            let cut = ages.len() - keep;
            let (_, oldest_kept, _) = ages.select_nth_unstable(cut);
            let oldest_kept = *oldest_kept;
            // Ties at the cut go too: never more than `keep` stay.
            self.map.retain(|_, b| b.last > oldest_kept);
        }
        self.sweep_at = (self.map.len() * 2).clamp(SWEEP_AT, MAX_KEYS);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_rate() {
        let s = RateSettings::new(2.0, 3);
        let t0 = Instant::now();
        let mut b = TokenBucket::full(&s, t0);
        for _ in 0..3 {
            assert!(b.try_take(&s, t0).is_ok());
        }
        let wait = b.try_take(&s, t0).expect_err("empty");
        assert_eq!(wait, Duration::from_millis(500));
        assert!(b.try_take(&s, t0 + Duration::from_millis(499)).is_err());
        assert!(b.try_take(&s, t0 + Duration::from_millis(1000)).is_ok(), "refilled one");
        // Refill never exceeds the burst.
        let later = t0 + Duration::from_secs(3600);
        assert!(b.is_full(&s, later));
        for _ in 0..3 {
            assert!(b.try_take(&s, later).is_ok());
        }
        assert!(b.try_take(&s, later).is_err());
    }

    #[test]
    fn tiny_rates_do_not_overflow() {
        let s = RateSettings::new(1e-300, 1);
        let t0 = Instant::now();
        let mut b = TokenBucket::full(&s, t0);
        assert!(b.try_take(&s, t0).is_ok());
        assert_eq!(b.try_take(&s, t0), Err(Duration::MAX));
    }

    #[test]
    fn keys_have_their_own_buckets_and_zero_disables() {
        let buckets = KeyedBuckets::new(RateSettings::new(1.0, 1));
        let now = Instant::now();
        assert!(buckets.check(1, now).is_ok());
        assert!(buckets.check(1, now).is_err());
        assert!(buckets.check(2, now).is_ok(), "another key is not starved");
        buckets.remove(&1);
        assert!(buckets.check(1, now).is_ok(), "a forgotten key starts full");

        let off = KeyedBuckets::new(RateSettings::new(0.0, 1));
        for _ in 0..100 {
            assert!(off.check(1, now).is_ok());
        }
        assert!(off.is_empty());
    }

    #[test]
    fn full_buckets_are_swept() {
        let buckets = KeyedBuckets::new(RateSettings::new(1.0, 2));
        let now = Instant::now();
        for k in 0..SWEEP_AT as u32 {
            assert!(buckets.check(k, now).is_ok());
        }
        assert_eq!(buckets.len(), SWEEP_AT);
        // Two seconds later every bucket has refilled; a new key sweeps them.
        assert!(buckets.check(u32::MAX, now + Duration::from_secs(2)).is_ok());
        assert_eq!(buckets.len(), 1);
    }

    #[test]
    fn a_flood_of_keys_that_never_refill_stays_bounded() {
        // A slow rate: no bucket refills during the test, so no sweep can
        // drop a bucket for being full (what a flood of logins from many
        // addresses looks like: one token taken from each).
        let buckets = KeyedBuckets::new(RateSettings::new(0.001, 10));
        let start = Instant::now();
        for k in 0..(3 * MAX_KEYS as u32) {
            let now = start + Duration::from_micros(u64::from(k));
            assert!(buckets.check(k, now).is_ok(), "a new key starts with a full bucket");
            assert!(buckets.len() <= MAX_KEYS, "{} buckets after {k} keys", buckets.len());
        }
        // The most recent keys are kept (their refusals still count).
        let last = 3 * MAX_KEYS as u32 - 1;
        let now = start + Duration::from_micros(u64::from(last));
        for _ in 0..9 {
            assert!(buckets.check(last, now).is_ok());
        }
        assert!(buckets.check(last, now).is_err(), "the latest key kept its spent bucket");
    }
}
