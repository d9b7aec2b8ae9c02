//! How errors look on the v1 API: the status from [`Error::http_status`] and
//! a plain-text body `caused: <message>;`, the shape Nacos 1.x/2.x servers
//! answer v1 requests with and that its SDKs log verbatim.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::error::Error;

/// The body Nacos sends with a failed v1 request.
pub fn error_body(err: &Error) -> String {
    format!("caused: {err};")
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        if status.is_server_error() {
            tracing::warn!(error = %self, "v1 request failed");
        } else {
            tracing::debug!(error = %self, status = status.as_u16(), "v1 request refused");
        }
        (status, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], error_body(&self)).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_carry_status_and_nacos_body() {
        let resp = Error::invalid("Param 'port' is out of range").into_response();
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            resp.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()),
            Some("text/plain; charset=utf-8")
        );
        assert_eq!(error_body(&Error::NotFound("service a not found!".into())), "caused: service a not found!;");
        let resp = Error::TooLarge("big".into()).into_response();
        assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    }
}
