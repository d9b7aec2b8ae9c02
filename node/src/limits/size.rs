//! The gRPC status of a message over the size limit.
//!
//! tonic refuses a message larger than a service's
//! `max_decoding_message_size` before it is decoded, with status
//! `OUT_OF_RANGE`. gRPC's own implementations (C core, Java, Go) answer
//! `RESOURCE_EXHAUSTED` for that, which is what clients expect and retry
//! differently from a bad argument. [`MessageLimitLayer`] wraps a gRPC
//! server: a call answered `OUT_OF_RANGE` at once (the handlers of both
//! ports never return that code themselves) is re-coded
//! `RESOURCE_EXHAUSTED`, keeping tonic's message with the sizes, and counted.
//! Streams see the error in their handler instead (`api/grpc/mod.rs`).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::HeaderValue;

use super::{Limit, LimitMetrics};

/// `grpc-status` of `OUT_OF_RANGE`.
const OUT_OF_RANGE: &str = "11";
/// `grpc-status` of `RESOURCE_EXHAUSTED`.
const RESOURCE_EXHAUSTED: &str = "8";

/// A tower layer counting and re-coding oversized messages; see the module docs.
#[derive(Debug, Clone)]
pub struct MessageLimitLayer {
    which: Limit,
    metrics: Arc<LimitMetrics>,
}

impl MessageLimitLayer {
    /// Counts refusals as `which`.
    pub fn new(which: Limit, metrics: Arc<LimitMetrics>) -> Self {
        MessageLimitLayer { which, metrics }
    }
}

impl<S> tower_layer::Layer<S> for MessageLimitLayer {
    type Service = MessageLimit<S>;

    fn layer(&self, inner: S) -> MessageLimit<S> {
        MessageLimit { inner, which: self.which, metrics: self.metrics.clone() }
    }
}

/// The service of [`MessageLimitLayer`].
#[derive(Debug, Clone)]
pub struct MessageLimit<S> {
    inner: S,
    which: Limit,
    metrics: Arc<LimitMetrics>,
}

impl<S, ReqBody, ResBody> tower_service::Service<http::Request<ReqBody>> for MessageLimit<S>
where
    S: tower_service::Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
{
    type Response = http::Response<ResBody>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<ReqBody>) -> Self::Future {
        let answer = self.inner.call(request);
        let (which, metrics) = (self.which, self.metrics.clone());
        Box::pin(async move {
            let mut response = answer.await?;
            if recode(response.headers_mut()) {
                metrics.rejected(which);
            }
            Ok(response)
        })
    }
}

/// Re-codes an `OUT_OF_RANGE` status in `headers`; true if it did.
fn recode(headers: &mut http::HeaderMap) -> bool {
    if headers.get("grpc-status").is_some_and(|v| v == OUT_OF_RANGE) {
        headers.insert("grpc-status", HeaderValue::from_static(RESOURCE_EXHAUSTED));
        true
    } else {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_out_of_range_is_recoded() {
        let mut h = http::HeaderMap::new();
        h.insert("grpc-status", HeaderValue::from_static("11"));
        assert!(recode(&mut h));
        assert_eq!(h.get("grpc-status").map(|v| v.as_bytes()), Some(&b"8"[..]));
        let mut h = http::HeaderMap::new();
        h.insert("grpc-status", HeaderValue::from_static("3"));
        assert!(!recode(&mut h));
        assert!(!recode(&mut http::HeaderMap::new()));
    }
}
