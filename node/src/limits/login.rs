//! The login throttle. A login checks a password hash that is slow on
//! purpose (PBKDF2, 600 000 iterations by default: about 0.1 s of one
//! core on the benchmark machine), so logins are the cheapest way to take a
//! node's CPU from the registry. Two limits on the login routes, checked
//! before the handler runs:
//!
//! - `--login-rate-limit` / `--login-rate-burst`: one token bucket per
//!   client IP, far below the general HTTP rate. Over it: 429 with
//!   `Retry-After`.
//! - `--max-concurrent-logins`: password hashes computed at once by the
//!   whole node, whoever asks (a flood from many addresses passes the
//!   per-IP rate). A login waits up to `--login-wait` for its turn, then is
//!   answered 429 with `Retry-After: 1`.
//!
//! A refused login checks no password and issues nothing. Nacos clients
//! treat a failed login as one to retry later.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::Response;

use super::rate::{refusal, refused_by_rate};
use super::{ClientLimits, Limit};
use crate::error::Error;

/// Route middleware of the login routes: the per-IP login rate, then a
/// permit to hash, held while the handler runs.
pub async fn login_guard(State(limits): State<Arc<ClientLimits>>, request: Request, next: Next) -> Response {
    let client = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(addr)| addr.ip());
    if let Some(ip) = client {
        if let Some(refused) = refused_by_rate(&limits, &limits.login_rate, ip, Limit::LoginRate, "logins") {
            return refused;
        }
    }
    let permit = tokio::time::timeout(limits.login_wait, limits.logins.clone().acquire_owned()).await;
    let Ok(Ok(_permit)) = permit else {
        limits.rejected(Limit::LoginConcurrency);
        let err = Error::RateLimited(format!(
            "Too many logins at once: {} password checks are running and none finished within {} ms; retry later.",
            limits.logins_capacity(),
            limits.login_wait.as_millis()
        ));
        return refusal(err, Duration::from_secs(1));
    };
    next.run(request).await
}
