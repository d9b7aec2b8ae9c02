//! Request-rate limits of the client planes.
//!
//! - gRPC: one bucket per TCP connection (a Nacos connection id is one TCP
//!   connection), checked before the request is decoded further. Over the
//!   rate, the client gets an `ErrorResponse` with error code 503, Nacos's
//!   `OVER_THRESHOLD`, which is what Nacos's own TPS control answers and what
//!   its clients treat as a failed call to retry (their redo tasks re-register).
//! - HTTP: one bucket per client IP, so a client cannot escape its limit by
//!   opening more connections. Over the rate: 429 with `Retry-After` and a
//!   `caused: ...;` body. The check runs in the HTTP plane's guard
//!   (`crate::api::http::guard`), which also exempts writes another member
//!   forwarded and signed. The admin plane (status, probes, metrics) is
//!   served outside these limits altogether (`crate::admin`), so a flood
//!   cannot make Kubernetes restart the node.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::{ClientLimits, KeyedBuckets, Limit};
use crate::error::Error;

/// Whole seconds to wait, at least one, for `Retry-After`.
fn retry_after_secs(wait: Duration) -> u64 {
    wait.as_secs().saturating_add(u64::from(wait.subsec_nanos() > 0)).max(1)
}

/// The HTTP answer to a request refused by a limit: `err` (429 and its
/// `caused: ...;` body) with `Retry-After` for `wait`.
pub fn refusal(err: Error, wait: Duration) -> Response {
    let mut response = err.into_response();
    if let Ok(value) = header::HeaderValue::from_str(&retry_after_secs(wait).to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

/// Takes a token from `ip`'s bucket in `buckets`; without one, counts a
/// refusal by `limit` and returns its answer: "Too many `what` from `ip`
/// ...", 429.
pub fn refused_by_rate(
    limits: &ClientLimits,
    buckets: &KeyedBuckets<IpAddr>,
    ip: IpAddr,
    limit: Limit,
    what: &str,
) -> Option<Response> {
    buckets.check(ip, Instant::now()).err().map(|wait| {
        limits.rejected(limit);
        let rate = buckets.settings();
        let err = Error::RateLimited(format!(
            "Too many {what} from {ip}: more than {} per second (burst {}); retry later.",
            rate.per_second, rate.burst
        ));
        refusal(err, wait)
    })
}

/// Checks a gRPC request from the TCP connection `remote` against its
/// connection's rate; the error names the limit.
pub fn check_grpc(limits: &ClientLimits, remote: SocketAddr) -> Result<(), Error> {
    limits.grpc_rate.check(remote, Instant::now()).map_err(|wait| {
        limits.rejected(Limit::GrpcRate);
        let rate = limits.grpc_rate.settings();
        Error::RateLimited(format!(
            "Tps Flow restricted: this connection sent more than {} requests per second (burst {}); retry in {} ms.",
            rate.per_second,
            rate.burst,
            wait.as_millis()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1500)), 2);
        assert_eq!(retry_after_secs(Duration::from_secs(3)), 3);
        assert_eq!(retry_after_secs(Duration::MAX), u64::MAX);
    }
}
