//! How the Nacos Open API v2 answers: every body is a `Result`
//! `{"code", "message", "data"}` (`com.alibaba.nacos.api.model.v2.Result`).
//!
//! A success is `{"code": 0, "message": "success", "data": ...}`. A failure
//! carries an `ErrorCode` (`com.alibaba.nacos.api.model.v2.ErrorCode`):
//! its number as `code`, its fixed text as `message`, and the particular
//! message as `data`, with the HTTP status of the failure, as Nacos's
//! `NacosApiExceptionHandler` renders a `NacosApiException`. Which code an
//! [`Error`] gets is decided here, in [`V2Error`]'s one `match`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

use crate::error::Error;

/// The v2 error codes Roster answers with, numbered and worded as Nacos's
/// `ErrorCode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// `SUCCESS(0, "success")`.
    Success,
    /// `PARAMETER_MISSING(10000, "parameter missing")`: a required
    /// parameter is absent (Spring's `MissingServletRequestParameterException`).
    ParameterMissing,
    /// `ACCESS_DENIED(10001, "access denied")`.
    AccessDenied,
    /// `PARAMETER_VALIDATE_ERROR(20002, "parameter validate error")`: a
    /// parameter is malformed or out of range.
    ParameterValidateError,
    /// `RESOURCE_NOT_FOUND(20004, "resource not found")`.
    ResourceNotFound,
    /// `RESOURCE_CONFLICT(20005, "resource conflict")`.
    ResourceConflict,
    /// `SERVER_ERROR(30000, "server error")`: anything else.
    ServerError,
}

impl ErrorCode {
    /// The number clients see as `code`.
    pub fn code(self) -> i32 {
        match self {
            ErrorCode::Success => 0,
            ErrorCode::ParameterMissing => 10000,
            ErrorCode::AccessDenied => 10001,
            ErrorCode::ParameterValidateError => 20002,
            ErrorCode::ResourceNotFound => 20004,
            ErrorCode::ResourceConflict => 20005,
            ErrorCode::ServerError => 30000,
        }
    }

    /// The fixed text clients see as `message`.
    pub fn message(self) -> &'static str {
        match self {
            ErrorCode::Success => "success",
            ErrorCode::ParameterMissing => "parameter missing",
            ErrorCode::AccessDenied => "access denied",
            ErrorCode::ParameterValidateError => "parameter validate error",
            ErrorCode::ResourceNotFound => "resource not found",
            ErrorCode::ResourceConflict => "resource conflict",
            ErrorCode::ServerError => "server error",
        }
    }
}

/// A v2 answer body.
#[derive(Debug, Clone, Serialize)]
pub struct V2Result<T> {
    /// [`ErrorCode::code`]: 0 on success.
    pub code: i32,
    /// [`ErrorCode::message`].
    pub message: &'static str,
    /// The answer, or on failure the particular error message.
    pub data: T,
}

/// A successful v2 answer carrying `data`.
pub fn success<T: Serialize>(data: T) -> Json<V2Result<T>> {
    let ok = ErrorCode::Success;
    Json(V2Result { code: ok.code(), message: ok.message(), data })
}

/// An [`Error`] answered in the v2 shape (the v1 routes answer the same
/// errors as plain text, see [`super::error`]).
#[derive(Debug)]
pub struct V2Error(pub Error);

impl From<Error> for V2Error {
    fn from(e: Error) -> Self {
        V2Error(e)
    }
}

impl V2Error {
    /// The HTTP status and v2 code of the error.
    pub fn status_and_code(&self) -> (StatusCode, ErrorCode) {
        let code = match &self.0 {
            Error::MissingParam(_) => ErrorCode::ParameterMissing,
            Error::InvalidParam(_) | Error::TooLarge(_) | Error::BadPayload(_) => ErrorCode::ParameterValidateError,
            Error::NotFound(_) => ErrorCode::ResourceNotFound,
            Error::Conflict(_) => ErrorCode::ResourceConflict,
            Error::Forbidden(_) => ErrorCode::AccessDenied,
            Error::RateLimited(_)
            | Error::NoHandler(_)
            | Error::ConnectionUnregistered
            | Error::NotReady(_)
            | Error::Config(_)
            | Error::Bind(..)
            | Error::Tls(_)
            | Error::Io(_)
            | Error::Internal(_) => ErrorCode::ServerError,
        };
        let status = StatusCode::from_u16(self.0.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (status, code)
    }
}

impl IntoResponse for V2Error {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        if status.is_server_error() {
            tracing::warn!(error = %self.0, "v2 request failed");
        } else {
            tracing::debug!(error = %self.0, status = status.as_u16(), "v2 request refused");
        }
        let body = V2Result { code: code.code(), message: code.message(), data: self.0.to_string() };
        (status, Json(body)).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_get_nacos_codes_and_statuses() {
        let cases = [
            (Error::MissingParam("m".into()), 400, 10000, "parameter missing"),
            (Error::invalid("i"), 400, 20002, "parameter validate error"),
            (Error::NotFound("n".into()), 404, 20004, "resource not found"),
            (Error::Forbidden("f".into()), 403, 10001, "access denied"),
            (Error::Internal("x".into()), 500, 30000, "server error"),
        ];
        for (err, status, code, message) in cases {
            let (s, c) = V2Error(err).status_and_code();
            assert_eq!((s.as_u16(), c.code(), c.message()), (status, code, message));
        }
    }

    #[test]
    fn success_is_code_zero() {
        let Json(body) = success(vec!["a"]);
        let json = serde_json::to_value(&body).expect("json");
        assert_eq!(json, serde_json::json!({"code": 0, "message": "success", "data": ["a"]}));
    }
}
