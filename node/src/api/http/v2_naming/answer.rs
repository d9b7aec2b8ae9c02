//! How the v2 naming routes fail: the v2 `Result` shape of [`super::super::v2`]
//! with, where Nacos's naming controllers use one, a naming-specific
//! `ErrorCode` (`21xxx`).
//!
//! Nacos renders a `NacosApiException` as its HTTP status, its detail code
//! and its abstract (`NacosApiExceptionHandler`); a plain
//! `NacosException` as its own code for the status with `SERVER_ERROR`
//! (30000) in the body. Errors without a naming code here go through
//! [`V2Error`] (missing parameter 10000, malformed 20002, not found 20004,
//! ...).

use axum::body::{to_bytes, Body};
use axum::http::{Response, StatusCode};
use axum::response::IntoResponse;
use axum::Json;

use super::super::v2::{success, V2Error, V2Result};
use crate::error::Error;

/// The naming codes of Nacos's `ErrorCode` the v2 naming routes answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NamingCode {
    /// `WEIGHT_ERROR(21001, "weight error")`.
    WeightError,
    /// `INSTANCE_METADATA_ERROR(21002, "instance metadata error")`: the
    /// metadata is neither a JSON object nor `k=v,k=v` (Nacos uses it for
    /// service metadata too).
    InstanceMetadataError,
    /// `INSTANCE_ERROR(21004, "instance error")`: an update of an instance
    /// of a service that does not exist.
    InstanceError,
    /// `SELECTOR_ERROR(21006, "selector error")`.
    SelectorError,
    /// `SERVICE_ALREADY_EXIST(21007, "service already exist")`.
    ServiceAlreadyExist,
    /// `SERVICE_NOT_EXIST(21008, "service not exist")`.
    ServiceNotExist,
    /// `SERVICE_DELETE_FAILURE(21009, "service delete failure")`: the
    /// service still has instances.
    ServiceDeleteFailure,
    /// `SERVER_ERROR(30000, "server error")` with a 400 status: Nacos's
    /// rendering of a plain `NacosException(INVALID_PARAM)`, as the health
    /// route answers for an instance whose health the server checks.
    ServerErrorInvalid,
}

impl NamingCode {
    fn code(self) -> i32 {
        match self {
            NamingCode::WeightError => 21001,
            NamingCode::InstanceMetadataError => 21002,
            NamingCode::InstanceError => 21004,
            NamingCode::SelectorError => 21006,
            NamingCode::ServiceAlreadyExist => 21007,
            NamingCode::ServiceNotExist => 21008,
            NamingCode::ServiceDeleteFailure => 21009,
            NamingCode::ServerErrorInvalid => 30000,
        }
    }

    fn message(self) -> &'static str {
        match self {
            NamingCode::WeightError => "weight error",
            NamingCode::InstanceMetadataError => "instance metadata error",
            NamingCode::InstanceError => "instance error",
            NamingCode::SelectorError => "selector error",
            NamingCode::ServiceAlreadyExist => "service already exist",
            NamingCode::ServiceNotExist => "service not exist",
            NamingCode::ServiceDeleteFailure => "service delete failure",
            NamingCode::ServerErrorInvalid => "server error",
        }
    }
}

/// A failed v2 naming request.
#[derive(Debug)]
pub enum V2Failure {
    /// A naming-specific code; every one of them answers 400, as Nacos's
    /// naming controllers raise them with `INVALID_PARAM` / `BAD_REQUEST`.
    Naming(NamingCode, String),
    /// Anything else, coded by [`V2Error`].
    Other(Error),
}

impl V2Failure {
    /// A failure with a naming code.
    pub fn naming(code: NamingCode, data: impl Into<String>) -> Self {
        V2Failure::Naming(code, data.into())
    }

    /// A required parameter that is absent or blank, worded as Nacos's forms.
    pub fn missing(name: &str, kind: &str) -> Self {
        V2Failure::Other(Error::MissingParam(format!("Required parameter '{name}' type {kind} is not present")))
    }
}

impl From<Error> for V2Failure {
    fn from(e: Error) -> Self {
        V2Failure::Other(e)
    }
}

impl IntoResponse for V2Failure {
    fn into_response(self) -> Response<Body> {
        match self {
            V2Failure::Naming(code, data) => {
                tracing::debug!(code = code.code(), %data, "v2 naming request refused");
                let body = V2Result { code: code.code(), message: code.message(), data };
                (StatusCode::BAD_REQUEST, Json(body)).into_response()
            }
            V2Failure::Other(e) => V2Error(e).into_response(),
        }
    }
}

/// What a v2 naming route answers.
pub type V2Answer = Result<Response<Body>, V2Failure>;

/// The v2 answer of a write done by a v1 handler: its plain `ok` becomes
/// `{"code": 0, "message": "success", "data": "ok"}`. Any other answer
/// came from the responsible member the write was forwarded to, which ran
/// this same v2 route, and is passed on unchanged.
pub async fn ok_from_v1(answer: crate::error::Result<Response<Body>>) -> V2Answer {
    let answer = answer?;
    if answer.status() != StatusCode::OK {
        return Ok(answer);
    }
    let (parts, body) = answer.into_parts();
    let bytes = to_bytes(body, usize::MAX).await.map_err(|e| Error::Internal(format!("reading an answer: {e}")))?;
    if &bytes[..] == b"ok" {
        return Ok(success("ok").into_response());
    }
    Ok(Response::from_parts(parts, Body::from(bytes)))
}

/// The v2 answer carrying `data`.
pub fn answer<T: serde::Serialize>(data: T) -> V2Answer {
    Ok(success(data).into_response())
}
