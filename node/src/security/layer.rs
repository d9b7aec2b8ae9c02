//! Where signatures are added and checked on the peer port.
//!
//! Outbound, every peer call goes through a [`SignedChannel`]: the tonic
//! channel of [`crate::peer::PeerChannels`] with the signature headers
//! added to each request, whatever the RPC (reports, Distro, Raft), so no
//! caller can forget them. Inbound, the whole peer service is wrapped in
//! [`Authenticated`], which checks the signature before any RPC handler
//! runs and answers `UNAUTHENTICATED` otherwise. The signer's name travels
//! to the handlers as a [`PeerIdentity`] request extension, so they can
//! refuse a body that claims another sender.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::future::{Either, Ready};
use tonic::codegen::Service;
use tonic::server::NamedService;
use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
use tonic::transport::Channel;
use tonic::Status;
use tracing::warn;

use super::signature::{AuthFailure, PeerAuth};
use super::SecurityMetrics;

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

impl Service<http::Request<tonic::body::Body>> for SignedChannel {
    type Response = http::Response<tonic::body::Body>;
    type Error = tonic::transport::Error;
    type Future = <Channel as Service<http::Request<tonic::body::Body>>>::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Service::poll_ready(&mut self.inner, cx)
    }

    fn call(&mut self, mut request: http::Request<tonic::body::Body>) -> Self::Future {
        if let Some(auth) = &self.auth {
            let path = request.uri().path().to_owned();
            let method = request.method().as_str().to_owned();
            auth.sign(request.headers_mut(), &method, &path);
        }
        Service::call(&mut self.inner, request)
    }
}

/// A gRPC service that only members holding the cluster secret may call.
#[derive(Debug, Clone)]
pub struct Authenticated<S> {
    inner: S,
    auth: Option<Arc<PeerAuth>>,
    metrics: Arc<SecurityMetrics>,
}

impl<S> Authenticated<S> {
    /// Wraps `inner`; with `auth` = `None` (no secret) every call is refused.
    pub fn new(inner: S, auth: Option<Arc<PeerAuth>>, metrics: Arc<SecurityMetrics>) -> Authenticated<S> {
        Authenticated { inner, auth, metrics }
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

impl<S, B> Service<http::Request<B>> for Authenticated<S>
where
    S: Service<http::Request<B>, Response = http::Response<tonic::body::Body>, Error = Infallible>,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = Either<S::Future, Ready<Result<Self::Response, Infallible>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        let verdict = match &self.auth {
            None => Err(AuthFailure::NoSecret),
            Some(auth) => auth.verify(request.headers(), request.method().as_str(), request.uri().path()),
        };
        match verdict {
            Ok(member) => {
                request.extensions_mut().insert(PeerIdentity(member));
                Either::Left(self.inner.call(request))
            }
            Err(failure) => {
                let claimed = request.headers().get(super::signature::PEER_HEADER).and_then(|v| v.to_str().ok());
                warn!(
                    remote = ?remote_addr(&request),
                    claimed_member = claimed,
                    path = request.uri().path(),
                    reason = failure.label(),
                    "peer request refused"
                );
                self.metrics.peer_auth_failure(failure);
                Either::Right(futures::future::ready(Ok(Status::unauthenticated(failure.message()).into_http())))
            }
        }
    }
}
