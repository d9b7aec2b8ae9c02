//! What the list routes need to subscribe a 1.x-style client to UDP
//! pushes ([`crate::push_udp`]): the request's source address and agent.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::header::USER_AGENT;
use axum::http::request::Parts;

use super::params::Params;
use crate::api::ClientState;
use crate::error::{Error, Result};
use crate::naming::ServiceKey;
use crate::push_udp::ListSubscription;

/// Nacos's fallback for the agent when `User-Agent` is absent.
const CLIENT_VERSION: &str = "Client-Version";

/// The caller of a list request, as far as UDP push cares.
#[derive(Debug, Clone)]
pub struct ListCaller {
    /// The source address of the connection (absent only when the router
    /// is served without connection info, as in unit tests).
    source: Option<IpAddr>,
    /// `User-Agent`, else `Client-Version`, else empty.
    agent: String,
}

impl FromRequestParts<Arc<ClientState>> for ListCaller {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &Arc<ClientState>) -> Result<Self, Self::Rejection> {
        let source = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(addr)| addr.ip());
        let header = |name| parts.headers.get(name).and_then(|v| v.to_str().ok()).filter(|v| !v.is_empty());
        let agent = header(USER_AGENT.as_str()).or_else(|| header(CLIENT_VERSION)).unwrap_or_default().to_owned();
        Ok(ListCaller { source, agent })
    }
}

/// The UDP port a list names in `param`: absent, blank, 0 or negative
/// means none; anything else must be a port.
pub fn udp_port(p: &Params, param: &str) -> Result<u16> {
    match p.int(param)? {
        // Nacos subscribes only for a port above 0 and ignores the rest.
        None | Some(..=0) => Ok(0),
        Some(port) => u16::try_from(port)
            .map_err(|_| Error::invalid(format!("Param '{param}' is out of range: {port} (must be 0..65535)."))),
    }
}

/// Subscribes the caller of a list of `service` to UDP pushes when it asked
/// for them (a `udp_port`) and its agent takes them. Called before the
/// list is answered, so no change after the answer goes unpushed.
pub fn subscribe(
    state: &ClientState,
    caller: &ListCaller,
    service: &ServiceKey,
    udp_port: u16,
    clusters: &[String],
    p: &Params,
) {
    let Some(source) = caller.source else { return };
    let list = ListSubscription {
        service,
        udp_port,
        source,
        clusters: clusters.to_vec(),
        agent: &caller.agent,
        app: p.get("app"),
    };
    if let Some(outcome) = state.udp_push.from_list(list) {
        tracing::debug!(%service, udp_port, %source, ?outcome, "UDP push subscription");
    }
}
