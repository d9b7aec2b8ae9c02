//! The set-up deadline of a connection: a TCP connection that has not
//! proven what it is for within the deadline is closed.
//!
//! * Client gRPC port: a connection is *set up* once its stream has sent a
//!   `ConnectionSetupRequest` and the connection is registered; it is torn
//!   down again when that registration ends. A connection that stays
//!   unregistered for `--grpc-setup-timeout` is closed, so silent,
//!   never-set-up connections (an HTTP/2 preface and nothing else) do not
//!   hold a socket for ever.
//! * Peer port: a connection is set up once it carried one request with a
//!   valid member signature (`--peer-auth-timeout`).
//!
//! Each admitted connection carries a [`SetupWatch`] in its stream wrapper
//! ([`super::Admitted`]); the watch is polled with every read, and once it
//! has expired the read fails, which makes the HTTP/2 server drop the
//! connection. The handlers mark set-up and tear-down through the shared
//! [`SetupTracker`], by the connection's remote address (the key gRPC
//! already uses to match unary calls to their stream).

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::Context;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::{Instant, Sleep};

use super::{Limit, LimitMetrics};

/// `since` of a connection that is set up.
const SET_UP: u64 = u64::MAX;

/// The set-up state of one connection: `SET_UP`, or the time (ms since the
/// tracker's epoch) since which it has not been set up.
#[derive(Debug)]
struct SetupState {
    since_ms: AtomicU64,
}

/// The set-up states of one port's open connections.
#[derive(Debug)]
pub struct SetupTracker {
    timeout: Duration,
    epoch: Instant,
    states: Mutex<HashMap<SocketAddr, Arc<SetupState>>>,
    which: Limit,
    metrics: Arc<LimitMetrics>,
}

impl SetupTracker {
    /// Connections must be set up within `timeout`; closures are counted
    /// as `which`.
    pub fn new(timeout: Duration, which: Limit, metrics: Arc<LimitMetrics>) -> Arc<SetupTracker> {
        Arc::new(SetupTracker { timeout, epoch: Instant::now(), states: Mutex::new(HashMap::new()), which, metrics })
    }

    /// The deadline.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(SET_UP - 1).min(SET_UP - 1)
    }

    /// Starts watching the connection from `remote`, not set up yet.
    pub fn watch(self: &Arc<Self>, remote: SocketAddr) -> SetupWatch {
        let state = Arc::new(SetupState { since_ms: AtomicU64::new(self.now_ms()) });
        self.states.lock().insert(remote, state.clone());
        SetupWatch {
            tracker: self.clone(),
            remote,
            state,
            sleep: Box::pin(tokio::time::sleep(self.timeout)),
            expired: false,
        }
    }

    /// The connection from `remote` is set up: it stays open.
    pub fn set_up(&self, remote: SocketAddr) {
        if let Some(state) = self.states.lock().get(&remote) {
            state.since_ms.store(SET_UP, Ordering::Release);
        }
    }

    /// The connection from `remote` is no longer set up (its registration
    /// ended): it must be set up again within the deadline.
    pub fn torn_down(&self, remote: SocketAddr) {
        let now = self.now_ms();
        if let Some(state) = self.states.lock().get(&remote) {
            let _ = state.since_ms.compare_exchange(SET_UP, now, Ordering::AcqRel, Ordering::Acquire);
        }
    }

    /// Connections watched now (open on this port).
    pub fn watched(&self) -> usize {
        self.states.lock().len()
    }

    fn forget(&self, remote: SocketAddr, state: &Arc<SetupState>) {
        let mut states = self.states.lock();
        // A new connection from the same address and port replaces the entry
        // only after this one closed; never remove another connection's.
        if states.get(&remote).is_some_and(|held| Arc::ptr_eq(held, state)) {
            states.remove(&remote);
        }
    }
}

/// One connection's deadline, polled from its reads.
#[derive(Debug)]
pub struct SetupWatch {
    tracker: Arc<SetupTracker>,
    remote: SocketAddr,
    state: Arc<SetupState>,
    sleep: Pin<Box<Sleep>>,
    expired: bool,
}

impl SetupWatch {
    /// Whether the connection has stayed unset-up past the deadline. When
    /// it has not, the waker is registered for the next moment it could.
    pub fn poll_expired(&mut self, cx: &mut Context<'_>) -> bool {
        if self.expired {
            return true;
        }
        loop {
            if self.sleep.as_mut().poll(cx).is_pending() {
                return false;
            }
            let since = self.state.since_ms.load(Ordering::Acquire);
            let now = Instant::now();
            let next = if since == SET_UP {
                // Set up: look again one deadline from now (it may be torn
                // down later).
                now + self.tracker.timeout
            } else {
                let deadline = self.tracker.epoch + Duration::from_millis(since) + self.tracker.timeout;
                if now >= deadline {
                    self.expired = true;
                    self.tracker.metrics.rejected(self.tracker.which);
                    tracing::debug!(remote = %self.remote, "connection closed: not set up within the deadline");
                    return true;
                }
                deadline
            };
            self.sleep.as_mut().reset(next);
        }
    }
}

impl Drop for SetupWatch {
    fn drop(&mut self) {
        self.tracker.forget(self.remote, &self.state);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn poll(watch: &mut SetupWatch) -> bool {
        let waker = futures::task::noop_waker();
        watch.poll_expired(&mut Context::from_waker(&waker))
    }

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_never_set_up_expires_at_the_deadline() {
        let metrics = Arc::new(LimitMetrics::default());
        let tracker = SetupTracker::new(Duration::from_secs(10), Limit::GrpcSetupTimeout, metrics.clone());
        let mut watch = tracker.watch(addr(1));
        assert!(!poll(&mut watch));
        tokio::time::advance(Duration::from_millis(9_999)).await;
        assert!(!poll(&mut watch));
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(poll(&mut watch));
        assert!(poll(&mut watch), "it stays expired");
        assert_eq!(metrics.rejections(Limit::GrpcSetupTimeout), 1, "counted once");
        drop(watch);
        assert_eq!(tracker.watched(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_set_up_connection_stays_until_torn_down_and_then_gets_a_new_deadline() {
        let metrics = Arc::new(LimitMetrics::default());
        let tracker = SetupTracker::new(Duration::from_secs(10), Limit::GrpcSetupTimeout, metrics.clone());
        let mut watch = tracker.watch(addr(2));
        let mut other = tracker.watch(addr(3));
        tokio::time::advance(Duration::from_secs(5)).await;
        tracker.set_up(addr(2));
        for _ in 0..10 {
            tokio::time::advance(Duration::from_secs(10)).await;
            assert!(!poll(&mut watch), "set up: never closed");
        }
        assert!(poll(&mut other), "the other, never set up, expired");
        tracker.torn_down(addr(2));
        tokio::time::advance(Duration::from_millis(9_999)).await;
        assert!(!poll(&mut watch), "a full deadline from the tear-down");
        tracker.set_up(addr(2));
        tracker.torn_down(addr(2));
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(!poll(&mut watch), "set up again in time: the deadline restarts");
        tokio::time::advance(Duration::from_secs(10)).await;
        assert!(poll(&mut watch));
        assert_eq!(metrics.rejections(Limit::GrpcSetupTimeout), 2);
    }
}
