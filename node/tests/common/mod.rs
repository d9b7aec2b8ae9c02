//! Shared helpers for the node's integration tests: an in-process node on
//! ephemeral loopback ports and bounded polling.
#![allow(dead_code)]

use std::future::Future;
use std::time::{Duration, Instant};

use roster_node::{Config, RunningNode};

/// A config for tests: loopback, ephemeral ports, short timers.
pub fn test_config() -> Config {
    let mut config = Config::default();
    config.bind = "127.0.0.1".parse().expect("loopback");
    config.port = 0;
    config.push_delay = Duration::from_millis(20);
    config.push_retry_delay = Duration::from_millis(200);
    config.beat_check_interval = Duration::from_millis(100);
    config
}

/// Starts a node with `config`.
pub async fn start(config: Config) -> RunningNode {
    roster_node::start(config).await.expect("node starts")
}

/// Polls `check` every 50 ms until it returns `Some`, failing after `limit`.
pub async fn eventually<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out after {limit:?} waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
