//! The UDP push flags.

use std::time::Duration;

use crate::duration;
use crate::error::{Error, Result};

/// How UDP pushes are bounded, awaited and retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::Args)]
#[command(next_help_heading = "UDP push to 1.x HTTP clients")]
pub struct UdpPushSettings {
    /// Most UDP push subscriptions (service and client address) held; 0
    /// turns UDP push to 1.x HTTP clients off.
    #[arg(
        long = "udp-max-subscribers",
        id = "udp_max_subscribers",
        value_name = "UDP_MAX_SUBSCRIBERS",
        env = "ROSTER_UDP_MAX_SUBSCRIBERS",
        default_value_t = 10_000
    )]
    pub max_subscribers: usize,

    /// A UDP push not acknowledged within this time is sent again (Nacos: 10 s).
    #[arg(long = "udp-ack-timeout", id = "udp_ack_timeout", value_name = "UDP_ACK_TIMEOUT", env = "ROSTER_UDP_ACK_TIMEOUT", default_value = "10s", value_parser = duration::parse)]
    pub ack_timeout: Duration,

    /// How many times an unacknowledged UDP push is sent again before it is
    /// dropped (Nacos: 1).
    #[arg(
        long = "udp-push-retries",
        id = "udp_push_retries",
        value_name = "UDP_PUSH_RETRIES",
        env = "ROSTER_UDP_PUSH_RETRIES",
        default_value_t = 1
    )]
    pub retries: u32,

    /// A UDP subscriber that has not listed its service for this long is
    /// forgotten (Nacos 2: 3 min, the expiry of its ip:port client).
    #[arg(long = "udp-subscriber-expiry", id = "udp_subscriber_expiry", value_name = "UDP_SUBSCRIBER_EXPIRY", env = "ROSTER_UDP_SUBSCRIBER_EXPIRY", default_value = "3m", value_parser = duration::parse)]
    pub subscriber_expiry: Duration,
}

impl Default for UdpPushSettings {
    fn default() -> Self {
        UdpPushSettings {
            max_subscribers: 10_000,
            ack_timeout: Duration::from_secs(10),
            retries: 1,
            subscriber_expiry: Duration::from_secs(180),
        }
    }
}

impl UdpPushSettings {
    /// Refuses timings that would push nothing or retry without pause.
    pub fn validate(&self) -> Result<()> {
        if self.ack_timeout.is_zero() || self.subscriber_expiry.is_zero() {
            return Err(Error::Config(
                "--udp-ack-timeout and --udp-subscriber-expiry must be greater than zero".into(),
            ));
        }
        Ok(())
    }
}
