//! Access tokens: compact JSON Web Tokens signed with HMAC-SHA256 (`HS256`).
//!
//! Nacos clients treat the token as an opaque string; only this node reads
//! it. The format is nevertheless a standard JWT so that operators can
//! inspect one with common tools. Three rules keep forgeries out:
//!
//! - the key is the operator's, at least [`MIN_KEY_BYTES`] long; there is no
//!   built-in key (Nacos's shipped default key let anyone forge tokens);
//! - the header must name `HS256` and nothing else (`none`, `RS256` and
//!   other algorithm-confusion tricks are refused before anything else);
//! - the signature is checked in constant time, before the claims are read.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::hmac;
use serde::{Deserialize, Serialize};

/// The shortest signing key accepted: 256 bits, the size of the HMAC-SHA256
/// output (RFC 7518 §3.2 requires a key at least that long for HS256).
pub const MIN_KEY_BYTES: usize = 32;

/// Tokens longer than this are refused unread (a real one is ~150 bytes).
pub const MAX_TOKEN_BYTES: usize = 4096;

/// The only algorithm issued and accepted.
pub const ALGORITHM: &str = "HS256";

/// A signing key shorter than [`MIN_KEY_BYTES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "the token signing key is {0} bytes; at least {MIN_KEY_BYTES} are required (for example: head -c 48 /dev/urandom | base64)"
)]
pub struct KeyTooShort(pub usize);

/// The signing key (HMAC-SHA256 from `ring`, as the peer signatures use).
/// Its `Debug` never shows the bytes.
#[derive(Clone)]
pub struct TokenKey {
    key: hmac::Key,
    len: usize,
}

impl fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenKey({} bytes, redacted)", self.len)
    }
}

impl TokenKey {
    /// A key from raw bytes; refused when shorter than [`MIN_KEY_BYTES`].
    pub fn new(bytes: Vec<u8>) -> Result<Self, KeyTooShort> {
        if bytes.len() < MIN_KEY_BYTES {
            return Err(KeyTooShort(bytes.len()));
        }
        Ok(TokenKey { key: hmac::Key::new(hmac::HMAC_SHA256, &bytes), len: bytes.len() })
    }
}

/// What a token says: who it was issued to and until when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user name (JWT `sub`).
    pub sub: String,
    /// Issued at, seconds since the Unix epoch (JWT `iat`).
    #[serde(default)]
    pub iat: u64,
    /// Expiry, seconds since the Unix epoch (JWT `exp`); the token is
    /// refused from this second on.
    pub exp: u64,
}

/// Why a token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenError {
    /// Not three base64url parts, unreadable JSON, or too long.
    Malformed,
    /// The header names another algorithm than `HS256` (including `none`).
    Algorithm,
    /// The signature does not match: another key, or a changed header or payload.
    Signature,
    /// The signature is good but `exp` has passed.
    Expired,
}

#[derive(Serialize, Deserialize)]
struct Header {
    alg: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    typ: Option<String>,
}

/// Signs a token for `subject`, valid from `now` (Unix seconds) for `ttl_secs`.
pub fn issue(key: &TokenKey, subject: &str, now: u64, ttl_secs: u64) -> String {
    let claims = Claims { sub: subject.to_owned(), iat: now, exp: now.saturating_add(ttl_secs) };
    sign_parts(key, &Header { alg: ALGORITHM.to_owned(), typ: Some("JWT".to_owned()) }, &claims)
}

/// Signs arbitrary header and claims JSON; [`issue`] is the only caller
/// outside tests (which use it to build hostile tokens).
fn sign_parts<H: Serialize, C: Serialize>(key: &TokenKey, header: &H, claims: &C) -> String {
    let header = URL_SAFE_NO_PAD.encode(serde_json::to_vec(header).unwrap_or_default());
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap_or_default());
    let signing_input = format!("{header}.{payload}");
    let signature = URL_SAFE_NO_PAD.encode(hmac::sign(&key.key, signing_input.as_bytes()));
    format!("{signing_input}.{signature}")
}

/// Checks `token` against `key` at time `now` (Unix seconds) and returns
/// its claims. The order of the checks matters: shape, algorithm, signature
/// (constant time), and only then the claims and their expiry.
pub fn verify(key: &TokenKey, token: &str, now: u64) -> Result<Claims, TokenError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(TokenError::Malformed);
    }
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed);
    };
    let header_json = URL_SAFE_NO_PAD.decode(header).map_err(|_| TokenError::Malformed)?;
    let header_value: Header = serde_json::from_slice(&header_json).map_err(|_| TokenError::Malformed)?;
    if header_value.alg != ALGORITHM {
        return Err(TokenError::Algorithm);
    }
    let signature = URL_SAFE_NO_PAD.decode(signature).map_err(|_| TokenError::Malformed)?;
    // The signing input is the token up to its last dot: `header.payload`.
    let signing_input = &token[..header.len() + 1 + payload.len()];
    hmac::verify(&key.key, signing_input.as_bytes(), &signature).map_err(|_| TokenError::Signature)?;
    let claims_json = URL_SAFE_NO_PAD.decode(payload).map_err(|_| TokenError::Malformed)?;
    let claims: Claims = serde_json::from_slice(&claims_json).map_err(|_| TokenError::Malformed)?;
    if now >= claims.exp {
        return Err(TokenError::Expired);
    }
    Ok(claims)
}

/// Hostile tokens for tests (here and in the integration tests): they are
/// built with the real signing code, so the checks above are what refuses them.
pub mod forge {
    use super::*;

    /// A token whose header says `alg`, signed with `key` as HS256 would be
    /// (for `none`, with an empty signature, as the attack sends it).
    pub fn with_algorithm(key: &TokenKey, alg: &str, subject: &str, exp: u64) -> String {
        let claims = Claims { sub: subject.to_owned(), iat: 0, exp };
        let token = sign_parts(key, &Header { alg: alg.to_owned(), typ: Some("JWT".to_owned()) }, &claims);
        if alg.eq_ignore_ascii_case("none") {
            let cut = token.rfind('.').map_or(token.len(), |i| i + 1);
            return token[..cut].to_owned();
        }
        token
    }

    /// `token` with its payload replaced by claims for `subject` (the
    /// signature is kept, so it no longer matches).
    pub fn with_payload(token: &str, subject: &str, exp: u64) -> String {
        let claims = Claims { sub: subject.to_owned(), iat: 0, exp };
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap_or_default());
        let mut parts: Vec<&str> = token.split('.').collect();
        if parts.len() == 3 {
            parts[1] = &payload;
        }
        parts.join(".")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> TokenKey {
        TokenKey::new(vec![byte; 32]).expect("32 bytes")
    }

    /// RFC 7515 Appendix A.1: a JWS signed with HMAC SHA-256 under the
    /// RFC's key. Its signature must check here; its claims then fail to
    /// read (it has no `sub`), which only happens after the signature.
    #[test]
    fn the_rfc_7515_example_signature_checks() {
        let jwk = "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow";
        let k = TokenKey::new(URL_SAFE_NO_PAD.decode(jwk).expect("base64url key")).expect("64 bytes");
        let signed = "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9\
                      .eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ";
        let token = format!("{signed}.dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk");
        assert_eq!(verify(&k, &token, 0), Err(TokenError::Malformed), "signature accepted, claims unreadable");
        let altered = format!("{signed}.eBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk");
        assert_eq!(verify(&k, &altered, 0), Err(TokenError::Signature));
    }

    #[test]
    fn short_keys_are_refused() {
        assert!(TokenKey::new(vec![1; 31]).is_err());
        assert!(TokenKey::new(Vec::new()).is_err());
        assert!(TokenKey::new(vec![1; 32]).is_ok());
        assert!(!format!("{:?}", key(7)).contains('7'), "Debug must not show the key");
    }

    #[test]
    fn issued_tokens_verify_until_they_expire() {
        let k = key(1);
        let t = issue(&k, "alice", 1_000, 60);
        assert_eq!(verify(&k, &t, 1_000), Ok(Claims { sub: "alice".into(), iat: 1_000, exp: 1_060 }));
        assert!(verify(&k, &t, 1_059).is_ok());
        assert_eq!(verify(&k, &t, 1_060), Err(TokenError::Expired));
    }

    #[test]
    fn forgeries_are_refused() {
        let k = key(1);
        let good = issue(&k, "reader", 1_000, 60);
        assert_eq!(verify(&key(2), &good, 1_000), Err(TokenError::Signature), "another key");
        let tampered = forge::with_payload(&good, "admin", 9_999);
        assert_eq!(verify(&k, &tampered, 1_000), Err(TokenError::Signature), "changed payload");
        let none = forge::with_algorithm(&k, "none", "admin", 9_999);
        assert!(none.ends_with('.'), "{none}");
        assert_eq!(verify(&k, &none, 1_000), Err(TokenError::Algorithm));
        let hs512 = forge::with_algorithm(&k, "HS512", "admin", 9_999);
        assert_eq!(verify(&k, &hs512, 1_000), Err(TokenError::Algorithm));
        for junk in ["", "a.b", "a.b.c.d", "!!!.???.***", &"x".repeat(MAX_TOKEN_BYTES + 1)] {
            assert_eq!(verify(&k, junk, 1_000), Err(TokenError::Malformed), "{junk:.20}");
        }
        // A valid signature over a payload that is not our claims.
        let odd = sign_parts(&k, &Header { alg: ALGORITHM.into(), typ: None }, &serde_json::json!({"user": "x"}));
        assert_eq!(verify(&k, &odd, 1_000), Err(TokenError::Malformed));
    }
}
