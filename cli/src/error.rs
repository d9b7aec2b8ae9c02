//! The CLI's one error type. Each variant is one kind of failure a user
//! acts on differently, and has its own exit code (see [`Error::exit_code`]).

/// Result with the CLI's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong. The message is one line, printed after `roster: `.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad input on the command line or on stdin (exit code 2, as clap's
    /// own usage errors).
    #[error("{0}")]
    BadInput(String),
    /// The member could not be reached (exit code 3).
    #[error("cannot reach {target}: {detail}")]
    Unreachable {
        /// What was being reached (`host:port`, a URL).
        target: String,
        /// Why not.
        detail: String,
    },
    /// A login or token was refused, or the user lacks the right (exit code 4).
    #[error("refused by {target}: {message}")]
    AuthRefused {
        /// The member that refused.
        target: String,
        /// Its reason.
        message: String,
    },
    /// The member answered with an error (exit code 1).
    #[error("{target} answered {status}: {message}")]
    Server {
        /// The member.
        target: String,
        /// HTTP status (or gRPC error code).
        status: u16,
        /// Its message.
        message: String,
    },
    /// Kubernetes: no usable kubeconfig, or the API server refused (exit code 1).
    #[error("kubernetes: {0}")]
    Kube(String),
    /// Writing the output failed (exit code 1).
    #[error("output: {0}")]
    Output(#[from] std::io::Error),
}

impl Error {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::BadInput(_) => 2,
            Error::Unreachable { .. } => 3,
            Error::AuthRefused { .. } => 4,
            Error::Server { .. } | Error::Kube(_) | Error::Output(_) => 1,
        }
    }

    /// Shorthand for [`Error::BadInput`].
    pub fn bad_input(message: impl Into<String>) -> Self {
        Error::BadInput(message.into())
    }
}
