//! The flags of the client gRPC plane: connection liveness and pushes to
//! subscribers.

use std::time::Duration;

use crate::duration;
use crate::error::{Error, Result};

/// Offset of the client gRPC port from the main port (Nacos convention).
pub const GRPC_PORT_OFFSET: u16 = 1000;

/// How silent connections are found and closed (Nacos's connection ejector).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::Args)]
#[command(next_help_heading = "Client connections")]
pub struct ConnectionSettings {
    /// A gRPC connection silent for this long is probed with ClientDetectionRequest.
    #[arg(long = "connection-idle-timeout", id = "connection_idle_timeout", value_name = "CONNECTION_IDLE_TIMEOUT", env = "ROSTER_CONNECTION_IDLE_TIMEOUT", default_value = "20s", value_parser = duration::parse)]
    pub idle_timeout: Duration,

    /// A probed connection that does not answer within this time is closed
    /// and its instances removed.
    #[arg(long = "client-detection-timeout", id = "client_detection_timeout", value_name = "CLIENT_DETECTION_TIMEOUT", env = "ROSTER_CLIENT_DETECTION_TIMEOUT", default_value = "5s", value_parser = duration::parse)]
    pub detection_timeout: Duration,

    /// How often idle connections are looked for.
    #[arg(long = "connection-check-interval", id = "connection_check_interval", value_name = "CONNECTION_CHECK_INTERVAL", env = "ROSTER_CONNECTION_CHECK_INTERVAL", default_value = "3s", value_parser = duration::parse)]
    pub check_interval: Duration,
}

impl Default for ConnectionSettings {
    fn default() -> Self {
        ConnectionSettings {
            idle_timeout: Duration::from_secs(20),
            detection_timeout: Duration::from_secs(5),
            check_interval: Duration::from_secs(3),
        }
    }
}

impl ConnectionSettings {
    /// Refuses a check interval of zero (the ejector would spin).
    pub fn validate(&self) -> Result<()> {
        if self.check_interval.is_zero() {
            return Err(Error::Config("--connection-check-interval must be greater than zero".into()));
        }
        Ok(())
    }
}

/// How pushes to subscribers are merged, awaited and retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::Args)]
#[command(next_help_heading = "Pushes to subscribers")]
pub struct PushSettings {
    /// Shortest time between two pushes of one service to one subscriber
    /// while changes keep coming (a change with no push in flight is pushed
    /// at once; changes during a push are merged into the next one).
    #[arg(long = "push-delay", id = "push_delay", value_name = "PUSH_DELAY", env = "ROSTER_PUSH_DELAY", default_value = "100ms", value_parser = duration::parse)]
    pub delay: Duration,

    /// A push not acknowledged within this time is retried.
    #[arg(long = "push-timeout", id = "push_timeout", value_name = "PUSH_TIMEOUT", env = "ROSTER_PUSH_TIMEOUT", default_value = "5s", value_parser = duration::parse)]
    pub timeout: Duration,

    /// Delay before retrying a failed push.
    #[arg(long = "push-retry-delay", id = "push_retry_delay", value_name = "PUSH_RETRY_DELAY", env = "ROSTER_PUSH_RETRY_DELAY", default_value = "1s", value_parser = duration::parse)]
    pub retry_delay: Duration,
}

impl Default for PushSettings {
    fn default() -> Self {
        PushSettings {
            delay: Duration::from_millis(100),
            timeout: Duration::from_secs(5),
            retry_delay: Duration::from_secs(1),
        }
    }
}

impl PushSettings {
    /// Refuses a push timeout of zero (every push would time out).
    pub fn validate(&self) -> Result<()> {
        if self.timeout.is_zero() {
            return Err(Error::Config("--push-timeout must be greater than zero".into()));
        }
        Ok(())
    }
}
