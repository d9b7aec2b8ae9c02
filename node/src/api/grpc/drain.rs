//! Draining: moving this node's gRPC clients to other members before it
//! stops (SIGTERM) or once it has left the member list, so that a
//! scale-down or a rolling restart loses no live client's instances, not
//! even for the time of a reconnect.
//!
//! The steps (see "Draining" in the README):
//! 1. The node reports itself draining ([`Membership::set_draining`]):
//!    readiness turns 503, every member stops counting it for Distro
//!    responsibility, and it refuses new connections (`ServerCheckRequest`
//!    and new streams), so clients pick another server.
//! 2. Every connection is sent `ConnectResetRequest` naming another
//!    member that serves (Nacos's `serverIp` and `serverPort`): Java and
//!    Python clients switch to it. Clients that ignore it (nacos-sdk-rust
//!    0.8.3 reconnects only when its stream ends) are closed after
//!    `--drain-reset-wait`; they then connect to another server of their
//!    list.
//! 3. A connection that goes while the node drains does not take its
//!    instances with it: its client stays in the store (and so on every
//!    member, whose copies this node keeps confirming) until each of its
//!    instances is published by another client (the same client, registered
//!    again over its new connection elsewhere), or `--drain-handover-wait`
//!    passes. Then it is removed, and the removal syncs everywhere.
//!
//! A node with no other member to send its clients to (standalone, or the
//! last one) skips all this and stops as before.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tracing::{debug, info, warn};

use super::close_connection;
use crate::api::ClientState;
use crate::duration;
use crate::error::Result;

/// How draining waits for clients to move.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::Args)]
#[command(next_help_heading = "Draining")]
pub struct DrainSettings {
    /// Draining: how long clients told to move (`ConnectResetRequest`) get
    /// before this node closes their connections.
    #[arg(long = "drain-reset-wait", id = "drain_reset_wait", value_name = "DRAIN_RESET_WAIT", env = "ROSTER_DRAIN_RESET_WAIT", default_value = "2s", value_parser = duration::parse)]
    pub reset_wait: Duration,

    /// Draining: how long the instances of a connection that left stay
    /// visible (on every member) for its client to register them elsewhere.
    /// nacos-sdk-rust 0.8.3 notices a closed stream at its next health
    /// check (up to 10 s), waits 2 s, reconnects and registers again at its
    /// next redo round (3 s): 18 s covers that.
    #[arg(long = "drain-handover-wait", id = "drain_handover_wait", value_name = "DRAIN_HANDOVER_WAIT", env = "ROSTER_DRAIN_HANDOVER_WAIT", default_value = "18s", value_parser = duration::parse)]
    pub handover_wait: Duration,
}

impl Default for DrainSettings {
    fn default() -> Self {
        DrainSettings { reset_wait: Duration::from_secs(2), handover_wait: Duration::from_secs(18) }
    }
}

/// The longest a drain may take, so that it fits well within Kubernetes'
/// default termination grace of 30 s with the rest of a shutdown.
pub const MAX_DRAIN: Duration = Duration::from_secs(25);

impl DrainSettings {
    /// Refuses waits that could not fit in a pod's termination grace.
    pub fn validate(&self) -> Result<()> {
        if self.reset_wait + self.handover_wait > MAX_DRAIN {
            return Err(crate::error::Error::Config(format!(
                "--drain-reset-wait and --drain-handover-wait together must not exceed {MAX_DRAIN:?}"
            )));
        }
        Ok(())
    }
}

/// What a drain did, for the log and the tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Drained {
    /// Connections sent `ConnectResetRequest`.
    pub reset: usize,
    /// Connections still open after the reset wait, closed by this node.
    pub closed: usize,
    /// Clients whose instances were registered again elsewhere in time.
    pub handed_over: usize,
    /// Clients removed when the handover wait ran out.
    pub given_up: usize,
}

/// How often the drain looks at what moved.
const POLL: Duration = Duration::from_millis(50);

/// The members a client can be sent to: loaded, serving, not this one;
/// as `(serverIp, serverPort)`, the main port, as Nacos clients expect.
fn targets(state: &ClientState) -> Vec<(String, String)> {
    state
        .membership
        .members()
        .into_iter()
        .filter(|m| m.address != state.member && m.can_serve() && m.distro_initialized)
        .filter_map(|m| m.address.rsplit_once(':').map(|(host, port)| (host.to_owned(), port.to_owned())))
        .collect()
}

/// Drains this node (the steps above) and returns what it did. The node
/// must already report itself draining ([`Membership::set_draining`]).
///
/// [`Membership::set_draining`]: crate::cluster::Membership::set_draining
pub async fn drain(state: &Arc<ClientState>, settings: &DrainSettings) -> Drained {
    let mut done = Drained::default();
    let targets = targets(state);
    if targets.is_empty() {
        info!("draining: no other member serves; clients are not moved");
        return done;
    }
    let connections = state.connections.all();
    done.reset = connections.len();
    info!(connections = connections.len(), targets = targets.len(), "draining: moving gRPC clients to other members");
    for (i, conn) in connections.into_iter().enumerate() {
        let (ip, port) = targets[i % targets.len()].clone();
        let timeout = settings.reset_wait;
        tokio::spawn(async move {
            let body = json!({ "serverIp": ip, "serverPort": port, "headers": {}, "module": "internal" });
            match conn.request("ConnectResetRequest", &body, timeout).await {
                Ok(_) => debug!(connection = %conn.id, server = %ip, "client answered ConnectResetRequest"),
                Err(e) => debug!(connection = %conn.id, error = %e, "no answer to ConnectResetRequest"),
            }
        });
    }
    let deadline = tokio::time::Instant::now() + settings.reset_wait;
    while state.connections.count() > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(POLL).await;
    }
    for conn in state.connections.all() {
        done.closed += 1;
        close_connection(state, &conn.id);
    }
    let deadline = tokio::time::Instant::now() + settings.handover_wait;
    loop {
        for id in state.store.local_connections() {
            if state.connections.get(&id).is_none() && state.store.republished_elsewhere(&id) {
                state.store.remove_client(&id);
                done.handed_over += 1;
            }
        }
        let waiting: Vec<String> =
            state.store.local_connections().into_iter().filter(|id| state.connections.get(id).is_none()).collect();
        if waiting.is_empty() {
            break;
        }
        if tokio::time::Instant::now() >= deadline {
            warn!(clients = waiting.len(), "draining: clients not registered elsewhere in time; removing them");
            for id in waiting {
                state.store.remove_client(&id);
                done.given_up += 1;
            }
            break;
        }
        tokio::time::sleep(POLL).await;
    }
    info!(?done, "draining: clients moved");
    done
}
