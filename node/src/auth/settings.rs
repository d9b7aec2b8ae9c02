//! The flags of client authentication.

use std::path::PathBuf;
use std::time::Duration;

use crate::duration;
use crate::error::{Error, Result};

/// A secret setting: its `Debug` never shows the value, so logging the
/// configuration cannot leak it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// clap's parser for secret values (any text is a secret).
    pub fn parse(raw: &str) -> std::result::Result<Secret, std::convert::Infallible> {
        Ok(Secret(raw.to_owned()))
    }

    /// The value itself.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(redacted)")
    }
}

/// Client authentication settings.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
#[command(next_help_heading = "Client authentication")]
pub struct AuthSettings {
    /// Require clients to log in (`POST /nacos/v1/auth/login`) and send a
    /// token with every naming request. Needs a token key and a users file.
    #[arg(long = "auth-enabled", id = "auth_enabled", env = "ROSTER_AUTH_ENABLED", default_value_t = false)]
    pub enabled: bool,

    /// Directory holding `token-key` and `users.json` (the operator mounts
    /// the auth Secret here); the file flags below take precedence.
    #[arg(long = "auth-dir", id = "auth_dir", value_name = "AUTH_DIR", env = "ROSTER_AUTH_DIR")]
    pub dir: Option<PathBuf>,

    /// File holding the token signing key (at least 32 bytes; surrounding
    /// whitespace is ignored). There is no default key.
    #[arg(
        long = "auth-token-key-file",
        id = "auth_token_key_file",
        value_name = "AUTH_TOKEN_KEY_FILE",
        env = "ROSTER_AUTH_TOKEN_KEY_FILE"
    )]
    pub token_key_file: Option<PathBuf>,

    /// The token signing key itself; prefer the environment variable or the
    /// key file, as command lines are visible to other local users.
    #[arg(long = "auth-token-key", id = "auth_token_key", value_name = "AUTH_TOKEN_KEY", env = "ROSTER_AUTH_TOKEN_KEY", hide_env_values = true, value_parser = Secret::parse)]
    pub token_key: Option<Secret>,

    /// The users file (JSON: names, password hashes, roles, per-namespace rights).
    #[arg(
        long = "auth-users-file",
        id = "auth_users_file",
        value_name = "AUTH_USERS_FILE",
        env = "ROSTER_AUTH_USERS_FILE"
    )]
    pub users_file: Option<PathBuf>,

    /// How long an access token is valid (Nacos: 18000 s).
    #[arg(long = "auth-token-ttl", id = "auth_token_ttl", value_name = "AUTH_TOKEN_TTL", env = "ROSTER_AUTH_TOKEN_TTL", default_value = "18000s", value_parser = duration::parse)]
    pub token_ttl: Duration,
}

impl Default for AuthSettings {
    fn default() -> Self {
        AuthSettings {
            enabled: false,
            dir: None,
            token_key_file: None,
            token_key: None,
            users_file: None,
            token_ttl: Duration::from_secs(18_000),
        }
    }
}

impl AuthSettings {
    /// Refuses a token lifetime under a second.
    pub fn validate(&self) -> Result<()> {
        if self.token_ttl < Duration::from_secs(1) {
            return Err(Error::Config("--auth-token-ttl must be at least 1s".into()));
        }
        Ok(())
    }
}
