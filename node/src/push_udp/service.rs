//! The UDP push task: turns store changes into pushes to the subscribers
//! of [`super::UdpSubscribers`], takes their acks on the same socket and
//! resends or gives up as [`super::outbox`] decides.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::net::UdpSocket;
use tokio::sync::broadcast::error::RecvError;
use tokio::time::Instant;
use tracing::{debug, warn};

use super::metrics::{UdpPushMetrics, UdpPushOutcome};
use super::outbox::{Outbox, Overdue};
use super::packet;
use super::{UdpPushSettings, UdpSubscribers};
use crate::naming::{NamingStore, Selection, ServiceKey};

/// Largest datagram read from the socket (acks are tiny; anything longer
/// is cut and then refused as malformed).
const RECEIVE_BUFFER: usize = 2048;

/// Everything the push task works with.
#[derive(Debug)]
pub struct UdpPushTask {
    /// Where views come from and changes are announced.
    pub store: Arc<NamingStore>,
    /// Who is pushed to.
    pub subscribers: Arc<UdpSubscribers>,
    /// Counters.
    pub metrics: Arc<UdpPushMetrics>,
    /// Ack timeout and retries.
    pub settings: UdpPushSettings,
    /// Changes to one service within this window are pushed once (the
    /// gRPC push's `--push-delay`).
    pub merge_window: Duration,
}

impl UdpPushTask {
    /// Runs until the store's change channel closes.
    pub async fn run(self, socket: UdpSocket) {
        let mut changes = self.store.subscribe_changes();
        let mut outbox = Outbox::new(self.settings.ack_timeout, self.settings.retries);
        let mut dirty: HashSet<ServiceKey> = HashSet::new();
        let mut flush_at: Option<Instant> = None;
        // Retries and expiry are checked a few times per ack timeout.
        let period = (self.settings.ack_timeout / 4).clamp(Duration::from_millis(10), Duration::from_secs(1));
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut buf = vec![0u8; RECEIVE_BUFFER];
        loop {
            let flush = async move {
                match flush_at {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                change = changes.recv() => match change {
                    Ok(key) => {
                        if self.subscribers.watched(&key) {
                            dirty.insert(key);
                            flush_at.get_or_insert_with(|| Instant::now() + self.merge_window);
                        }
                    }
                    Err(RecvError::Lagged(missed)) => {
                        warn!(missed, "UDP push lagged behind the store; pushing every watched service");
                        dirty.extend(self.subscribers.services());
                        flush_at.get_or_insert_with(|| Instant::now() + self.merge_window);
                    }
                    Err(RecvError::Closed) => return,
                },
                () = flush => {
                    flush_at = None;
                    for key in std::mem::take(&mut dirty) {
                        self.push_service(&socket, &mut outbox, &key).await;
                    }
                }
                received = socket.recv_from(&mut buf) => match received {
                    Ok((n, from)) => self.take_ack(&mut outbox, &buf[..n], from),
                    // Errors are per datagram (e.g. an ICMP error reported
                    // on the socket); the socket itself stays usable.
                    Err(e) => debug!(error = %e, "UDP receive failed"),
                },
                _ = tick.tick() => {
                    let now = Instant::now();
                    for action in outbox.overdue(now) {
                        match action {
                            Overdue::Resend { addr, datagram } => {
                                self.metrics.count(UdpPushOutcome::Retried);
                                self.send(&socket, &datagram, addr).await;
                            }
                            Overdue::GiveUp { service, addr } => {
                                self.metrics.count(UdpPushOutcome::Dropped);
                                debug!(%service, %addr, "UDP push not acknowledged; the client will poll");
                            }
                        }
                    }
                    let expired = self.subscribers.expire(now);
                    if expired > 0 {
                        debug!(expired, "UDP subscribers expired");
                    }
                    self.metrics.subscribers.set(i64::try_from(self.subscribers.count()).unwrap_or(i64::MAX));
                }
            }
        }
    }

    /// Pushes the current view of `key` to each of its subscribers, with
    /// the clusters each asked for.
    async fn push_service(&self, socket: &UdpSocket, outbox: &mut Outbox, key: &ServiceKey) {
        for subscriber in self.subscribers.of(key) {
            let selection =
                Selection { clusters: subscriber.clusters.clone(), healthy_only: false, grouped_name: true };
            let info = self.store.query(key, &selection);
            let last_ref_time = outbox.next_last_ref_time(now_micros());
            let datagram: Arc<[u8]> = match packet::encode(&info, last_ref_time) {
                Ok(bytes) => bytes.into(),
                Err(e) => {
                    self.metrics.count(UdpPushOutcome::Failed);
                    warn!(service = %key, addr = %subscriber.addr, error = %e, "UDP push not sent; the client will poll");
                    continue;
                }
            };
            if self.send(socket, &datagram, subscriber.addr).await {
                self.metrics.count(UdpPushOutcome::Sent);
                outbox.sent(key.clone(), subscriber.addr, last_ref_time, datagram, Instant::now());
            }
        }
    }

    /// Sends one datagram; false (counted) when the socket refused it.
    async fn send(&self, socket: &UdpSocket, datagram: &[u8], addr: SocketAddr) -> bool {
        match socket.send_to(datagram, addr).await {
            Ok(_) => true,
            Err(e) => {
                self.metrics.count(UdpPushOutcome::Failed);
                debug!(%addr, error = %e, "UDP push send failed");
                false
            }
        }
    }

    fn take_ack(&self, outbox: &mut Outbox, datagram: &[u8], from: SocketAddr) {
        match packet::decode_ack(datagram) {
            Ok(last_ref_time) => match outbox.acked(from, last_ref_time) {
                Some(service) => {
                    self.metrics.count(UdpPushOutcome::Acked);
                    debug!(%service, addr = %from, "UDP push acknowledged");
                }
                None => self.metrics.count(UdpPushOutcome::Stray),
            },
            Err(why) => {
                self.metrics.count(UdpPushOutcome::Stray);
                debug!(addr = %from, why, "UDP datagram ignored");
            }
        }
    }
}

/// Microseconds since the epoch (0 if the clock is before it).
fn now_micros() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}
