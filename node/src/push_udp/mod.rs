//! UDP push to 1.x-style HTTP clients (the official Node.js SDK, Java 1.x,
//! Go 1.x, ...), which learn of changes from datagrams rather than from a
//! gRPC stream. Without it they would see a change only at their next
//! poll, up to `cacheMillis` (10 s) late.
//!
//! How Nacos does it (`InstanceController.list`,
//! `InstanceOperatorClientImpl.listInstance`, `UdpPushService`,
//! `UdpConnector` and `PushExecutorUdpImpl` of Nacos 2.5; `PushService` of
//! 1.4), and what Roster does:
//!
//! - **Subscribing.** `GET /nacos/v1/ns/instance/list` with `udpPort` > 0
//!   (and `clientIP`, `app`, the `User-Agent`) from a push-capable agent
//!   ([`agent::push_capable`]) subscribes that address to the service
//!   with the `clusters` asked for; every later list renews it. The v2
//!   list (`/nacos/v2/ns/instance/list`) does the same with `ip` and
//!   `port`. Nacos files the subscriber under the ip:port client
//!   `clientIP:udpPort#true`, which expires 3 minutes after its last
//!   update; Roster keeps it in [`UdpSubscribers`] for
//!   `--udp-subscriber-expiry` (3 min) after the last list.
//! - **Where pushes go.** Nacos sends to `clientIP:udpPort`, an address the
//!   unauthenticated request names. Roster sends to the *source address of
//!   the request* with `udpPort`: otherwise any caller could point the
//!   node's datagrams at any host. `clientIP` is accepted and not used.
//!   Behind a proxy or NAT that rewrites the source address pushes do not
//!   arrive, and the client keeps polling, as with Nacos when UDP is
//!   blocked.
//! - **The datagram** ([`packet`]): `{"type": "dom", "data": "<ServiceInfo
//!   JSON>", "lastRefTime": n}`, gzipped from 1 KiB on, with the hosts of
//!   the subscriber's clusters and the name as `group@@service`.
//! - **When.** On every change of a watched service, after the same merge
//!   window as gRPC pushes (`--push-delay`). Nacos also pushes the current
//!   view right after a subscription; Roster does not, since the list
//!   answer that made the subscription carries that very view.
//! - **Acks and retries** ([`outbox`]): the client answers `push-ack` with
//!   the same `lastRefTime` to the socket the push came from. An
//!   unacknowledged push is sent again after `--udp-ack-timeout` (Nacos:
//!   10 s), `--udp-push-retries` times (Nacos: once), then dropped.
//! - **Bounds.** At most `--udp-max-subscribers` subscriptions (0 turns UDP
//!   push off); at most one push in flight per subscription and service.
//! - **TLS.** With TLS on the client ports UDP push is off: a datagram
//!   would carry in plaintext what HTTPS protects (Nacos pushes anyway).
//!
//! Subscribers are local to the node that answered the list, as in Nacos
//! (Distro does not carry subscriptions); every node pushes the changes it
//! sees, whichever member the change came from.
//!
//! Metrics: `roster_udp_pushes_total{result}` with `sent`, `acked`,
//! `retried`, `dropped` (no ack after the retries), `failed` (not sent:
//! too large for a datagram, or a socket error), `refused` (subscriber
//! table full) and `stray` (a datagram that acknowledges nothing in
//! flight); `roster_udp_subscribers`.
//!
//! # Layout
//! - [`agent`]: which `User-Agent`s get pushes.
//! - [`packet`]: the push datagram and the ack.
//! - [`subscribers`]: the bounded, expiring subscriber table.
//! - [`outbox`]: pushes awaiting their ack (pure).
//! - [`service`]: the task that sends, reads acks and retries.
//! - [`settings`]: the flags; [`metrics`]: the counters.

pub mod agent;
pub mod metrics;
pub mod outbox;
pub mod packet;
pub mod service;
pub mod settings;
pub mod subscribers;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::info;

pub use metrics::{UdpPushMetrics, UdpPushOutcome};
pub use settings::UdpPushSettings;
pub use subscribers::{Subscribed, UdpSubscriber, UdpSubscribers};

use crate::error::{Error, Result};
use crate::naming::{NamingStore, ServiceKey};

/// What a list request tells about a would-be UDP subscriber.
#[derive(Debug, Clone)]
pub struct ListSubscription<'a> {
    /// The service listed.
    pub service: &'a ServiceKey,
    /// The UDP port it listens on (`udpPort` in v1, `port` in v2); 0 or
    /// absent means it only polls.
    pub udp_port: u16,
    /// The source address of the request, where pushes go.
    pub source: IpAddr,
    /// The `clusters` (v1) or `clusterName` (v2) asked for.
    pub clusters: Vec<String>,
    /// The `User-Agent` header (or `Client-Version` when it is absent).
    pub agent: &'a str,
    /// The `app` parameter.
    pub app: Option<&'a str>,
}

/// The node's UDP push: the subscriber table the list routes fill, the
/// settings and the counters the push task works with. The client planes
/// hold one ([`crate::api::ClientState`]).
#[derive(Debug)]
pub struct UdpPush {
    settings: UdpPushSettings,
    subscribers: Arc<UdpSubscribers>,
    metrics: Arc<UdpPushMetrics>,
}

impl UdpPush {
    /// The node's UDP push: off (a limit of 0) when the client ports use
    /// TLS, since a datagram would carry in plaintext what HTTPS protects;
    /// 1.x clients then poll over HTTPS.
    pub fn new(settings: UdpPushSettings, client_tls: bool, metrics: Arc<UdpPushMetrics>) -> Self {
        let max = if client_tls { 0 } else { settings.max_subscribers };
        UdpPush { settings, subscribers: Arc::new(UdpSubscribers::new(max, settings.subscriber_expiry)), metrics }
    }

    /// Whether UDP push is on at all.
    pub fn enabled(&self) -> bool {
        self.subscribers.enabled()
    }

    /// The subscriber table.
    pub fn subscribers(&self) -> &Arc<UdpSubscribers> {
        &self.subscribers
    }

    /// The counters.
    pub fn metrics(&self) -> &Arc<UdpPushMetrics> {
        &self.metrics
    }

    /// Subscribes the client of a list request when it asked for pushes
    /// and can take them; `None` when it did not or cannot (it polls).
    pub fn from_list(&self, list: ListSubscription<'_>) -> Option<Subscribed> {
        if list.udp_port == 0 || !self.enabled() || !agent::push_capable(list.agent) {
            return None;
        }
        let subscriber = UdpSubscriber {
            addr: SocketAddr::new(list.source, list.udp_port),
            clusters: list.clusters,
            agent: list.agent.to_owned(),
            app: list.app.filter(|a| !a.is_empty()).unwrap_or("unknown").to_owned(),
            last_seen: Instant::now(),
        };
        let outcome = self.subscribers.subscribe(list.service, subscriber);
        if outcome == Subscribed::Full {
            self.metrics.count(UdpPushOutcome::Refused);
        }
        Some(outcome)
    }

    /// Binds the push socket (an ephemeral port on `bind`) and starts the
    /// push task over `store`'s changes, merged for `merge_window` (the
    /// gRPC push's `--push-delay`); `None` when UDP push is off.
    pub async fn start(
        &self,
        bind: IpAddr,
        store: Arc<NamingStore>,
        merge_window: Duration,
    ) -> Result<Option<JoinHandle<()>>> {
        if !self.enabled() {
            return Ok(None);
        }
        let socket =
            UdpSocket::bind((bind, 0)).await.map_err(|e| Error::Bind(format!("the UDP push socket on {bind}"), e))?;
        info!(addr = %socket.local_addr()?, "UDP push to 1.x clients ready");
        let task = service::UdpPushTask {
            store,
            subscribers: self.subscribers.clone(),
            metrics: self.metrics.clone(),
            settings: self.settings,
            merge_window,
        };
        Ok(Some(tokio::spawn(task.run(socket))))
    }
}
