//! Client authentication, compatible with Nacos clients (off by default).
//!
//! With `--auth-enabled`, a client logs in with `POST /nacos/v1/auth/login`
//! (`username`, `password`) and gets an `accessToken` valid for
//! `--auth-token-ttl` (default 18000 s, as Nacos). It sends the token with
//! every naming request: HTTP clients as the `accessToken` parameter or an
//! `Authorization: Bearer` header, gRPC clients as the `accessToken` entry
//! of the payload headers. Reads need the `read` right on the request's
//! namespace, writes `read-write` (see [`users`]).
//!
//! What it deliberately does not do, after Nacos's history (see
//! `research/nacos.md` §6): there is no default signing key (an enabled node
//! without one refuses to start), and no header such as
//! `User-Agent: Nacos-Server` or Roster's own forwarding header skips the
//! check. Members forward a client's write together with the client's token,
//! and the receiving member checks it again.
//!
//! # Layout
//! - [`password`]: PBKDF2 password hashes and `roster-node hash-password`.
//! - [`token`]: HS256 JSON Web Tokens.
//! - [`users`]: the users file, roles and per-namespace rights.
//! - this module: [`Auth`], which logs users in and judges tokens, and
//!   counts and logs every refusal.
//!
//! The HTTP login route and the per-request checks live with the client
//! planes (`api::http::auth`, `api::grpc::handlers`).

pub mod password;
pub mod settings;
pub mod token;
pub mod users;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use tracing::warn;

pub use self::settings::{AuthSettings, Secret};
use self::token::TokenError;
pub use self::token::TokenKey;
pub use self::users::{Action, Users};
use crate::error::{Error, Result};

/// File name of the signing key inside `--auth-dir` (a Secret key).
pub const TOKEN_KEY_FILE: &str = "token-key";
/// File name of the users file inside `--auth-dir` (a Secret key).
pub const USERS_FILE: &str = "users.json";
/// Name of the token parameter (HTTP) and payload header (gRPC).
pub const ACCESS_TOKEN: &str = "accessToken";

/// The token of an `Authorization: Bearer <token>` header, if any.
pub fn bearer_token(headers: &http::HeaderMap) -> Option<&str> {
    headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

label_set! {
    /// Why a request or login was refused; each is a metric label.
    pub enum Refusal {
        /// No token at all.
        MissingToken => "missing_token",
        /// Not a token this node could read.
        MalformedToken => "malformed_token",
        /// A token naming another algorithm than HS256 (including `none`).
        UnsupportedAlgorithm => "unsupported_algorithm",
        /// A signature that does not match (another key, changed content).
        BadSignature => "bad_signature",
        /// A genuine token past its expiry.
        ExpiredToken => "expired_token",
        /// A genuine token for a user no longer in the users file.
        UnknownUser => "unknown_user",
        /// A genuine token whose user lacks the right for this namespace, or
        /// the `admin` role an administrative route needs.
        Forbidden => "forbidden",
        /// A login with a wrong user name or password.
        BadCredentials => "bad_credentials",
    }
}

impl Refusal {
    /// The message the client gets, in Nacos's words, so that SDKs that
    /// match on them (to log in again) behave as with Nacos.
    pub fn message(&self) -> &'static str {
        match self {
            Refusal::MissingToken | Refusal::UnknownUser => "user not found!",
            Refusal::MalformedToken | Refusal::UnsupportedAlgorithm | Refusal::BadSignature => "token invalid!",
            Refusal::ExpiredToken => "token expired!",
            Refusal::Forbidden => "authorization failed!",
            Refusal::BadCredentials => "User not found! Please check user exist or password is right!",
        }
    }

    fn from_token_error(e: TokenError) -> Self {
        match e {
            TokenError::Malformed => Refusal::MalformedToken,
            TokenError::Algorithm => Refusal::UnsupportedAlgorithm,
            TokenError::Signature => Refusal::BadSignature,
            TokenError::Expired => Refusal::ExpiredToken,
        }
    }
}

/// Labels of `roster_auth_failures_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AuthFailureLabels {
    /// Why.
    pub reason: Refusal,
}

/// Authentication metrics.
#[derive(Debug, Default)]
pub struct AuthMetrics {
    /// Refused logins and requests by reason.
    pub failures: Family<AuthFailureLabels, Counter>,
    /// Successful logins.
    pub logins: Counter,
}

impl AuthMetrics {
    /// Registers `roster_auth_failures_total{reason}` and `roster_auth_logins_total`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register("auth_failures", "Refused logins and requests, by reason", self.failures.clone());
        registry.register("auth_logins", "Successful logins", self.logins.clone());
    }

    /// How many refusals of `reason` were counted.
    pub fn failure_count(&self, reason: Refusal) -> u64 {
        self.failures.get_or_create(&AuthFailureLabels { reason }).get()
    }
}

/// A caller whose token was accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The user name.
    pub username: String,
    /// Whether the user holds the `admin` role (Nacos's "global admin"),
    /// which the administrative routes require.
    pub global_admin: bool,
}

/// What a successful login answers (Nacos's login JSON).
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LoginAnswer {
    /// The token to send with every request.
    pub access_token: String,
    /// Seconds the token stays valid.
    pub token_ttl: u64,
    /// Whether the user has the `admin` role.
    pub global_admin: bool,
    /// The user name.
    pub username: String,
}

/// Logs users in and judges tokens. Present in the node state only when
/// `--auth-enabled`.
#[derive(Debug)]
pub struct Auth {
    users: Users,
    key: TokenKey,
    ttl: Duration,
    metrics: Arc<AuthMetrics>,
}

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl Auth {
    /// An authenticator over `users`, signing with `key`.
    pub fn new(users: Users, key: TokenKey, ttl: Duration, metrics: Arc<AuthMetrics>) -> Self {
        Auth { users, key, ttl, metrics }
    }

    /// Reads the key and users named by `config`; `None` when auth is off.
    /// Every missing or unusable piece is a [`Error::Config`] that says
    /// which flag or file to fix: the node must not start half-protected.
    pub fn from_settings(config: &AuthSettings, metrics: Arc<AuthMetrics>) -> Result<Option<Arc<Auth>>> {
        if !config.enabled {
            return Ok(None);
        }
        let key = load_key(config)?;
        let users_path =
            config.users_file.clone().or_else(|| config.dir.as_ref().map(|d| d.join(USERS_FILE))).ok_or_else(|| {
                Error::Config(
                    "--auth-enabled needs a users file: set --auth-users-file (ROSTER_AUTH_USERS_FILE) \
                     or --auth-dir (ROSTER_AUTH_DIR) holding users.json"
                        .into(),
                )
            })?;
        let users = Users::load(&users_path).map_err(|e| Error::Config(e.to_string()))?;
        tracing::info!(users = users.len(), ttl_secs = config.token_ttl.as_secs(), "client authentication enabled");
        Ok(Some(Arc::new(Auth::new(users, key, config.token_ttl, metrics))))
    }

    /// How long issued tokens are valid.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    fn refuse(&self, refusal: Refusal, what: &str, user: Option<&str>, namespace: Option<&str>) -> Error {
        self.metrics.failures.get_or_create(&AuthFailureLabels { reason: refusal }).inc();
        // Never the token or password: the user name (from a verified token
        // or a login attempt, cut short) and where the request went.
        let user: Option<String> = user.map(|u| u.chars().take(64).collect());
        let what = crate::telemetry::clip(what);
        warn!(reason = refusal.label(), request = %what, user = user.as_deref(), namespace, "authentication refused");
        Error::Forbidden(refusal.message().to_owned())
    }

    /// Checks a user name and password and issues a token.
    pub fn login(&self, username: Option<&str>, password: Option<&str>) -> Result<LoginAnswer> {
        let (username, password) = (username.unwrap_or(""), password.unwrap_or(""));
        let user = self.users.get(username);
        // Unknown names cost the same hash as known ones, so response times
        // do not tell which names exist.
        let matches = match (user, self.users.any_hash()) {
            (Some(u), _) => u.password.matches(password),
            (None, Some(h)) => {
                let _ = h.matches(password);
                false
            }
            (None, None) => false,
        };
        match user {
            Some(user) if matches && !password.is_empty() => {
                self.metrics.logins.inc();
                let ttl = self.ttl.as_secs().max(1);
                Ok(LoginAnswer {
                    access_token: token::issue(&self.key, &user.name, now_secs(), ttl),
                    token_ttl: ttl,
                    global_admin: user.admin,
                    username: user.name.clone(),
                })
            }
            _ => Err(self.refuse(Refusal::BadCredentials, "login", Some(username), None)),
        }
    }

    /// Accepts a token (from any user in the file) or refuses it.
    pub fn authenticate(&self, token: Option<&str>, what: &str) -> Result<Identity> {
        let token = token.map(str::trim).filter(|t| !t.is_empty());
        let Some(token) = token else {
            return Err(self.refuse(Refusal::MissingToken, what, None, None));
        };
        let claims = token::verify(&self.key, token, now_secs())
            .map_err(|e| self.refuse(Refusal::from_token_error(e), what, None, None))?;
        let Some(user) = self.users.get(&claims.sub) else {
            return Err(self.refuse(Refusal::UnknownUser, what, Some(&claims.sub), None));
        };
        Ok(Identity { global_admin: user.admin, username: claims.sub })
    }

    /// Whether `identity` may use the administrative routes (Nacos's
    /// resource `nacos/admin`): only users with the `admin` role may.
    pub fn authorize_admin(&self, identity: &Identity, what: &str) -> Result<()> {
        if identity.global_admin {
            Ok(())
        } else {
            Err(self.refuse(Refusal::Forbidden, what, Some(&identity.username), None))
        }
    }

    /// Whether `identity` may do `action` in `namespace` (normalised).
    pub fn authorize(&self, identity: &Identity, namespace: &str, action: Action, what: &str) -> Result<()> {
        match self.users.get(&identity.username) {
            Some(user) if user.allows(namespace, action) => Ok(()),
            Some(_) => Err(self.refuse(Refusal::Forbidden, what, Some(&identity.username), Some(namespace))),
            None => Err(self.refuse(Refusal::UnknownUser, what, Some(&identity.username), Some(namespace))),
        }
    }
}

fn load_key(config: &AuthSettings) -> Result<TokenKey> {
    let file = config.token_key_file.clone().or_else(|| config.dir.as_ref().map(|d| d.join(TOKEN_KEY_FILE)));
    // An empty ROSTER_AUTH_TOKEN_KEY counts as unset (a template left blank).
    let inline = config.token_key.as_ref().filter(|k| !k.expose().trim().is_empty());
    let bytes = match (inline, file) {
        (Some(_), Some(_)) if config.token_key_file.is_some() => {
            return Err(Error::Config(
                "give the token key either in ROSTER_AUTH_TOKEN_KEY or in --auth-token-key-file, not both".into(),
            ))
        }
        (Some(key), _) => key.expose().trim().as_bytes().to_vec(),
        (None, Some(path)) => read_key_file(&path)?,
        (None, None) => {
            return Err(Error::Config(
                "--auth-enabled needs a token signing key and Roster has no default one: set \
                 --auth-token-key-file (ROSTER_AUTH_TOKEN_KEY_FILE), ROSTER_AUTH_TOKEN_KEY, or \
                 --auth-dir (ROSTER_AUTH_DIR) holding a token-key file"
                    .into(),
            ))
        }
    };
    TokenKey::new(bytes).map_err(|e| Error::Config(e.to_string()))
}

fn read_key_file(path: &Path) -> Result<Vec<u8>> {
    let raw = std::fs::read(path)
        .map_err(|e| Error::Config(format!("cannot read the token key file {}: {e}", path.display())))?;
    // Secrets and editors often end files with a newline; it is not key material.
    Ok(raw.trim_ascii().to_vec())
}
