//! The one error type of the node.
//!
//! Every variant maps to a Nacos error code (used in gRPC `ErrorResponse`s and
//! as the HTTP status of the v1 API) and to a short label used in metrics.

/// Result with the node's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong while serving a request or running the node.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A parameter is missing, malformed or out of range. Nothing was changed.
    #[error("{0}")]
    InvalidParam(String),
    /// A required parameter is absent (or blank). Kept apart from
    /// [`Error::InvalidParam`] because the v2 API answers it with its own
    /// code (`PARAMETER_MISSING`). Nothing was changed.
    #[error("{0}")]
    MissingParam(String),
    /// The named service or instance does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The request conflicts with the current state (for example deleting a
    /// service that still has instances). Nothing was changed.
    #[error("{0}")]
    Conflict(String),
    /// A request body or message is larger than the configured limit.
    #[error("{0}")]
    TooLarge(String),
    /// The client sent more requests than its rate limit allows. Nothing was changed.
    #[error("{0}")]
    RateLimited(String),
    /// A gRPC payload whose type has no handler here.
    #[error("{0}")]
    NoHandler(String),
    /// A gRPC payload that could not be decoded (invalid JSON, missing body).
    #[error("{0}")]
    BadPayload(String),
    /// A unary gRPC request on a connection that never sent its setup.
    #[error("Connection is unregistered.")]
    ConnectionUnregistered,
    /// Authentication or authorization refused the request (Nacos's
    /// `NO_RIGHT`): no, a bad or an expired token, a wrong password, or a
    /// user without the right for the namespace. Nothing was changed.
    #[error("{0}")]
    Forbidden(String),
    /// The node is not ready to serve this request yet.
    #[error("{0}")]
    NotReady(String),
    /// Configuration refused at start-up (flags, or the files they name).
    #[error("configuration: {0}")]
    Config(String),
    /// A listener could not be bound at start-up (the port is taken, or the
    /// address is not this host's).
    #[error("cannot bind {0}: {1}")]
    Bind(String, #[source] std::io::Error),
    /// A TLS configuration the transport refused at start-up.
    #[error("TLS of {0}")]
    Tls(String),
    /// An I/O failure (binding a port, reading a file).
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// Anything else that is the server's fault.
    #[error("{0}")]
    Internal(String),
}

impl Error {
    /// The Nacos `errorCode` for this error (`NacosException` constants).
    pub fn nacos_code(&self) -> i32 {
        match self {
            Error::InvalidParam(_) | Error::MissingParam(_) | Error::Conflict(_) | Error::TooLarge(_) => 400,
            Error::NotFound(_) => 404,
            Error::Forbidden(_) => 403,
            Error::NoHandler(_) => 302,
            Error::ConnectionUnregistered => 301,
            Error::NotReady(_) => 300,
            // Nacos's OVER_THRESHOLD, the code of its TPS control.
            Error::RateLimited(_) => 503,
            Error::BadPayload(_) => 502,
            Error::Config(_) | Error::Bind(..) | Error::Tls(_) | Error::Io(_) | Error::Internal(_) => 500,
        }
    }

    /// The HTTP status for the v1 API.
    pub fn http_status(&self) -> u16 {
        match self {
            Error::InvalidParam(_) | Error::MissingParam(_) | Error::Conflict(_) | Error::BadPayload(_) => 400,
            Error::NotFound(_) => 404,
            Error::TooLarge(_) => 413,
            Error::RateLimited(_) => 429,
            Error::Forbidden(_) => 403,
            Error::NoHandler(_) => 501,
            Error::ConnectionUnregistered | Error::NotReady(_) => 503,
            Error::Config(_) | Error::Bind(..) | Error::Tls(_) | Error::Io(_) | Error::Internal(_) => 500,
        }
    }

    /// A short, stable label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Error::InvalidParam(_) => "invalid_param",
            Error::MissingParam(_) => "missing_param",
            Error::NotFound(_) => "not_found",
            Error::Conflict(_) => "conflict",
            Error::Forbidden(_) => "forbidden",
            Error::TooLarge(_) => "too_large",
            Error::RateLimited(_) => "rate_limited",
            Error::NoHandler(_) => "no_handler",
            Error::BadPayload(_) => "bad_payload",
            Error::ConnectionUnregistered => "unregistered",
            Error::NotReady(_) => "not_ready",
            Error::Config(_) => "config",
            Error::Bind(..) => "bind",
            Error::Tls(_) => "tls",
            Error::Io(_) => "io",
            Error::Internal(_) => "internal",
        }
    }

    /// Shorthand for [`Error::InvalidParam`].
    pub fn invalid(msg: impl Into<String>) -> Self {
        Error::InvalidParam(msg.into())
    }
}
