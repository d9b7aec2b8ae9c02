//! The two clocks of the naming store.
//!
//! - [`now`], the monotonic clock, times beats, copy confirmations and
//!   removal records. It reads tokio's clock, which is the system's
//!   monotonic clock in production and stands still under
//!   `tokio::time::pause()`, so the timer logic built on it is tested by
//!   advancing time instead of sleeping.
//! - [`now_millis`], the wall clock, stamps what is compared across nodes
//!   (client revisions) or shown to clients (`lastRefTime`).
//!
//! A module of its own because the store and the clients both need them,
//! and neither should import the other for it.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// The current instant of the monotonic clock (tokio's: paused in tests
/// that pause it).
pub fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// Milliseconds since the Unix epoch.
pub fn now_millis() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}
