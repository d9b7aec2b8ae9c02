//! The pushes waiting for their ack: when to send one again and when to
//! give up (Nacos's `UdpConnector` with its `UdpRetrySender`). Pure: the
//! caller passes the time and does the sending.
//!
//! Nacos sends a push, waits `ACK_TIMEOUT_NANOS` (10 s) for its ack, sends
//! it once more (`UDP_MAX_RETRY_TIMES` = 1) and, after another 10 s
//! without an ack, drops it for good (a `NoRequiredRetryException`: the
//! push engine does not try again; the client still polls). Roster does
//! the same with `--udp-ack-timeout` and `--udp-push-retries`.
//!
//! One difference: a subscriber has at most one push in flight per
//! service. A newer push of the same service to the same address replaces
//! the older one (which could only bring an older view), so the outbox
//! never holds more entries than there are subscribers.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::naming::ServiceKey;

/// One push in flight.
#[derive(Debug, Clone)]
struct InFlight {
    last_ref_time: u64,
    datagram: Arc<[u8]>,
    /// Sends so far, the first included.
    sends: u32,
    /// When to resend or give up.
    due: Instant,
}

/// What to do now about a push whose ack is overdue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Overdue {
    /// Send the same datagram again.
    Resend {
        /// The subscriber.
        addr: SocketAddr,
        /// The push, as first sent.
        datagram: Arc<[u8]>,
    },
    /// No ack after every retry: forget it.
    GiveUp {
        /// The service pushed.
        service: ServiceKey,
        /// The subscriber.
        addr: SocketAddr,
    },
}

/// The pushes in flight, keyed by service and subscriber.
#[derive(Debug)]
pub struct Outbox {
    ack_timeout: Duration,
    retries: u32,
    in_flight: HashMap<(ServiceKey, SocketAddr), InFlight>,
    /// `(addr, lastRefTime)` of each push in flight, to match acks.
    by_ack: HashMap<(SocketAddr, u64), ServiceKey>,
    last_ref_time: u64,
}

impl Outbox {
    /// An empty outbox: acks are awaited `ack_timeout` after each send, and
    /// an unacknowledged push is sent again `retries` times.
    pub fn new(ack_timeout: Duration, retries: u32) -> Self {
        Outbox { ack_timeout, retries, in_flight: HashMap::new(), by_ack: HashMap::new(), last_ref_time: 0 }
    }

    /// A fresh `lastRefTime`: `now_micros` (microseconds since the epoch),
    /// or one past the previous one if the clock has not moved on.
    pub fn next_last_ref_time(&mut self, now_micros: u64) -> u64 {
        self.last_ref_time = now_micros.max(self.last_ref_time + 1);
        self.last_ref_time
    }

    /// Records the first send of a push. Returns true when it replaced a
    /// push of the same service to the same subscriber still in flight.
    pub fn sent(
        &mut self,
        service: ServiceKey,
        addr: SocketAddr,
        last_ref_time: u64,
        datagram: Arc<[u8]>,
        now: Instant,
    ) -> bool {
        self.by_ack.insert((addr, last_ref_time), service.clone());
        let entry = InFlight { last_ref_time, datagram, sends: 1, due: now + self.ack_timeout };
        match self.in_flight.insert((service, addr), entry) {
            Some(old) => {
                self.by_ack.remove(&(addr, old.last_ref_time));
                true
            }
            None => false,
        }
    }

    /// Takes an ack from `addr` for `last_ref_time`; returns the service
    /// pushed, or `None` when no such push is in flight (a late ack of a
    /// push given up or replaced, or a stray datagram).
    pub fn acked(&mut self, addr: SocketAddr, last_ref_time: u64) -> Option<ServiceKey> {
        let service = self.by_ack.remove(&(addr, last_ref_time))?;
        self.in_flight.remove(&(service.clone(), addr));
        Some(service)
    }

    /// The pushes whose ack is overdue at `now`: each is resent (and
    /// awaited again) while it has retries left, else given up.
    pub fn overdue(&mut self, now: Instant) -> Vec<Overdue> {
        let mut actions = Vec::new();
        let mut given_up = Vec::new();
        for ((service, addr), push) in &mut self.in_flight {
            if push.due > now {
                continue;
            }
            if push.sends <= self.retries {
                push.sends += 1;
                push.due = now + self.ack_timeout;
                actions.push(Overdue::Resend { addr: *addr, datagram: push.datagram.clone() });
            } else {
                given_up.push((service.clone(), *addr, push.last_ref_time));
            }
        }
        for (service, addr, last_ref_time) in given_up {
            self.in_flight.remove(&(service.clone(), addr));
            self.by_ack.remove(&(addr, last_ref_time));
            actions.push(Overdue::GiveUp { service, addr });
        }
        actions
    }

    /// Pushes in flight.
    pub fn len(&self) -> usize {
        self.in_flight.len()
    }

    /// Whether nothing is in flight.
    pub fn is_empty(&self) -> bool {
        self.in_flight.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMEOUT: Duration = Duration::from_secs(10);

    fn key(name: &str) -> ServiceKey {
        ServiceKey::new("public", "DEFAULT_GROUP", name)
    }

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    fn datagram(text: &str) -> Arc<[u8]> {
        Arc::from(text.as_bytes())
    }

    #[test]
    fn last_ref_times_always_increase() {
        let mut outbox = Outbox::new(TIMEOUT, 1);
        assert_eq!(outbox.next_last_ref_time(100), 100);
        assert_eq!(outbox.next_last_ref_time(100), 101);
        assert_eq!(outbox.next_last_ref_time(50), 102);
        assert_eq!(outbox.next_last_ref_time(500), 500);
    }

    #[test]
    fn an_acked_push_is_done() {
        let t0 = Instant::now();
        let mut outbox = Outbox::new(TIMEOUT, 1);
        assert!(!outbox.sent(key("a"), addr(1), 7, datagram("p"), t0));
        assert_eq!(outbox.acked(addr(2), 7), None, "another address");
        assert_eq!(outbox.acked(addr(1), 8), None, "another push");
        assert_eq!(outbox.acked(addr(1), 7), Some(key("a")));
        assert!(outbox.is_empty());
        assert_eq!(outbox.acked(addr(1), 7), None, "a second ack");
        assert!(outbox.overdue(t0 + TIMEOUT * 5).is_empty());
    }

    #[test]
    fn an_unacked_push_is_resent_once_per_timeout_then_given_up() {
        // Nacos: one send, one retry 10 s later, given up 10 s after that.
        let t0 = Instant::now();
        let mut outbox = Outbox::new(TIMEOUT, 1);
        outbox.sent(key("a"), addr(1), 7, datagram("p"), t0);
        assert!(outbox.overdue(t0 + TIMEOUT - Duration::from_millis(1)).is_empty());
        assert_eq!(outbox.overdue(t0 + TIMEOUT), vec![Overdue::Resend { addr: addr(1), datagram: datagram("p") }]);
        assert!(outbox.overdue(t0 + TIMEOUT * 2 - Duration::from_millis(1)).is_empty());
        assert_eq!(outbox.overdue(t0 + TIMEOUT * 2), vec![Overdue::GiveUp { service: key("a"), addr: addr(1) }]);
        assert!(outbox.is_empty());
        assert_eq!(outbox.acked(addr(1), 7), None, "an ack after giving up");
    }

    #[test]
    fn an_ack_of_the_retry_ends_it() {
        let t0 = Instant::now();
        let mut outbox = Outbox::new(TIMEOUT, 3);
        outbox.sent(key("a"), addr(1), 7, datagram("p"), t0);
        assert_eq!(outbox.overdue(t0 + TIMEOUT).len(), 1);
        assert_eq!(outbox.overdue(t0 + TIMEOUT * 2).len(), 1);
        assert_eq!(outbox.acked(addr(1), 7), Some(key("a")));
        assert!(outbox.overdue(t0 + TIMEOUT * 10).is_empty());
    }

    #[test]
    fn no_retries_means_give_up_after_the_first_timeout() {
        let t0 = Instant::now();
        let mut outbox = Outbox::new(TIMEOUT, 0);
        outbox.sent(key("a"), addr(1), 7, datagram("p"), t0);
        assert_eq!(outbox.overdue(t0 + TIMEOUT), vec![Overdue::GiveUp { service: key("a"), addr: addr(1) }]);
    }

    #[test]
    fn a_newer_push_replaces_the_one_in_flight() {
        let t0 = Instant::now();
        let mut outbox = Outbox::new(TIMEOUT, 1);
        outbox.sent(key("a"), addr(1), 7, datagram("old"), t0);
        outbox.sent(key("b"), addr(1), 8, datagram("other service"), t0);
        assert!(outbox.sent(key("a"), addr(1), 9, datagram("new"), t0 + Duration::from_secs(1)));
        assert_eq!(outbox.len(), 2);
        assert_eq!(outbox.acked(addr(1), 7), None, "the replaced push");
        let resends = outbox.overdue(t0 + TIMEOUT + Duration::from_secs(1));
        assert_eq!(resends.len(), 2);
        assert!(resends.contains(&Overdue::Resend { addr: addr(1), datagram: datagram("new") }));
        assert_eq!(outbox.acked(addr(1), 9), Some(key("a")));
        assert_eq!(outbox.acked(addr(1), 8), Some(key("b")));
    }
}
