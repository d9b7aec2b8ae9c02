//! Where signatures are added and checked on the peer port.
//!
//! Outbound, every peer call goes through a [`SignedChannel`]: the tonic
//! channel of [`crate::peer::PeerChannels`] with the signature headers
//! added to each request, whatever the RPC (reports, Distro, Raft), so no
//! caller can forget them. Every peer RPC sends one message (the answers
//! may stream), so the channel reads the encoded body first and signs its
//! digest with the rest.
//!
//! Inbound, the whole peer service is wrapped in [`Authenticated`]: it
//! checks the signature headers (MAC, time, nonce) before anything else,
//! and only then reads the body, within the peer message limit, and
//! compares its digest; anything else is answered `UNAUTHENTICATED`. The
//! signer's name travels to the handlers as a [`PeerIdentity`] request
//! extension, so they can refuse a body that claims another sender. A
//! connection that carried a valid request is marked set up on the peer
//! port's [`SetupTracker`] (`--peer-auth-timeout`).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::future::BoxFuture;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use tonic::body::Body;
use tonic::codegen::Service;
use tonic::server::NamedService;
use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
use tonic::transport::Channel;
use tonic::Status;
use tracing::warn;

use super::signature::{AuthFailure, PeerAuth};
use super::SecurityMetrics;
use crate::limits::SetupTracker;
use crate::telemetry::clip;

/// The error of a call through a [`SignedChannel`]: the transport's, or the
/// encoding's (tonic reads the boxed `Status` back out).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The length of a gRPC message frame's header (flag and length).
const FRAME_HEADER_BYTES: usize = 5;

/// The member that signed an inbound peer request (a request extension set
/// by [`Authenticated`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerIdentity(pub String);

/// A peer channel that signs every request with the cluster secret (or
/// sends it unsigned when this node has none: such a node has no peers
/// that would accept it).
#[derive(Debug, Clone)]
pub struct SignedChannel {
    inner: Channel,
    auth: Option<Arc<PeerAuth>>,
}

impl SignedChannel {
    /// Signs the calls on `inner` with `auth`.
    pub fn new(inner: Channel, auth: Option<Arc<PeerAuth>>) -> SignedChannel {
        SignedChannel { inner, auth }
    }
}

/// Reads the body of `request` and adds the signature over it.
async fn sign(auth: &PeerAuth, request: http::Request<Body>) -> Result<http::Request<Body>, BoxError> {
    let (mut parts, body) = request.into_parts();
    let bytes = body.collect().await?.to_bytes();
    let target = parts.uri.path_and_query().map_or_else(|| parts.uri.path().to_owned(), |p| p.as_str().to_owned());
    auth.sign(&mut parts.headers, parts.method.as_str(), &target, &bytes);
    Ok(http::Request::from_parts(parts, Body::new(Full::new(bytes))))
}

impl Service<http::Request<Body>> for SignedChannel {
    type Response = http::Response<Body>;
    type Error = BoxError;
    type Future = BoxFuture<'static, Result<Self::Response, BoxError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Service::poll_ready(&mut self.inner, cx).map_err(Into::into)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        // The channel made ready by `poll_ready` serves this call; this
        // handle keeps a fresh clone for the next one.
        let fresh = self.inner.clone();
        let mut ready = std::mem::replace(&mut self.inner, fresh);
        let auth = self.auth.clone();
        Box::pin(async move {
            let request = match auth {
                Some(auth) => sign(&auth, request).await?,
                None => request,
            };
            Ok(ready.call(request).await?)
        })
    }
}

/// A gRPC service that only members holding the cluster secret may call.
#[derive(Debug, Clone)]
pub struct Authenticated<S> {
    inner: S,
    auth: Option<Arc<PeerAuth>>,
    metrics: Arc<SecurityMetrics>,
    max_message_bytes: usize,
    setup: Option<Arc<SetupTracker>>,
}

impl<S> Authenticated<S> {
    /// Wraps `inner`; with `auth` = `None` (no secret) every call is
    /// refused. Bodies are read up to one message of `max_message_bytes`.
    pub fn new(
        inner: S,
        auth: Option<Arc<PeerAuth>>,
        metrics: Arc<SecurityMetrics>,
        max_message_bytes: usize,
    ) -> Authenticated<S> {
        Authenticated { inner, auth, metrics, max_message_bytes, setup: None }
    }

    /// Marks connections that carried a valid request set up on `tracker`.
    pub fn with_setup(self, tracker: Arc<SetupTracker>) -> Authenticated<S> {
        Authenticated { setup: Some(tracker), ..self }
    }
}

impl<S: NamedService> NamedService for Authenticated<S> {
    const NAME: &'static str = S::NAME;
}

/// The remote address of an inbound request, plain or TLS.
pub fn remote_addr<B>(request: &http::Request<B>) -> Option<SocketAddr> {
    let extensions = request.extensions();
    extensions
        .get::<TcpConnectInfo>()
        .and_then(TcpConnectInfo::remote_addr)
        .or_else(|| extensions.get::<TlsConnectInfo<TcpConnectInfo>>().and_then(|info| info.get_ref().remote_addr()))
}

/// Counts and logs a refused peer request; its answer.
fn refuse(
    metrics: &SecurityMetrics,
    failure: AuthFailure,
    parts: &http::request::Parts,
    remote: Option<SocketAddr>,
) -> http::Response<Body> {
    let claimed = parts.headers.get(super::signature::PEER_HEADER).and_then(|v| v.to_str().ok()).map(clip);
    warn!(
        remote = ?remote,
        claimed_member = claimed.as_deref(),
        path = %clip(parts.uri.path()),
        reason = failure.label(),
        "peer request refused"
    );
    metrics.peer_auth_failure(failure);
    Status::unauthenticated(failure.message()).into_http()
}

impl<S> Service<http::Request<Body>> for Authenticated<S>
where
    S: Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let fresh = self.inner.clone();
        let mut ready = std::mem::replace(&mut self.inner, fresh);
        let (auth, metrics, setup) = (self.auth.clone(), self.metrics.clone(), self.setup.clone());
        let limit = self.max_message_bytes.saturating_add(FRAME_HEADER_BYTES);
        Box::pin(async move {
            let remote = remote_addr(&request);
            let (parts, body) = request.into_parts();
            let target = parts.uri.path_and_query().map_or(parts.uri.path(), |p| p.as_str());
            let verified = match &auth {
                None => Err(AuthFailure::NoSecret),
                Some(auth) => auth.verify_headers(&parts.headers, parts.method.as_str(), target),
            };
            let verified = match verified {
                Ok(verified) => verified,
                Err(failure) => return Ok(refuse(&metrics, failure, &parts, remote)),
            };
            // Only a member's request gets this far: reading its body is safe.
            let bytes = match Limited::new(body, limit).collect().await {
                Ok(collected) => collected.to_bytes(),
                Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => {
                    // Re-coded RESOURCE_EXHAUSTED and counted by the
                    // message-size layer, as tonic's own refusal is.
                    let status = Status::out_of_range(format!(
                        "message length too large: the limit is {} bytes",
                        limit - FRAME_HEADER_BYTES
                    ));
                    return Ok(status.into_http());
                }
                Err(e) => return Ok(Status::cancelled(format!("the request body broke off: {e}")).into_http()),
            };
            if let Err(failure) = verified.check_body(&bytes) {
                return Ok(refuse(&metrics, failure, &parts, remote));
            }
            if let (Some(setup), Some(remote)) = (&setup, remote) {
                setup.set_up(remote);
            }
            let mut request = http::Request::from_parts(parts, Body::new(Full::new(bytes)));
            request.extensions_mut().insert(PeerIdentity(verified.member));
            ready.call(request).await
        })
    }
}
