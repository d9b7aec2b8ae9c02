//! Signed peer requests: who sent a request, proven with the cluster secret.
//!
//! Every request a member sends to another member (peer gRPC calls and
//! forwarded HTTP writes) carries three headers:
//!
//! | header | value |
//! |---|---|
//! | [`PEER_HEADER`] | the sender's member name (`host:port`) |
//! | [`TIME_HEADER`] | the sender's clock, Unix milliseconds |
//! | [`SIGNATURE_HEADER`] | hex HMAC-SHA256 with the cluster secret over `roster-peer-v1`, member, time, method and path |
//!
//! The receiver recomputes the MAC and compares in constant time
//! (`ring::hmac::verify`), and refuses a time further than
//! [`MAX_CLOCK_SKEW`] from its own clock, so a captured signature is useless
//! for more than that window and never for another method or path. The
//! secret itself never crosses the wire. Nothing else of the request (no
//! `User-Agent`, no "server" marker, the flaw of Nacos's
//! `User-Agent: Nacos-Server` trust) grants anything.
//!
//! The body is not covered: the calls are streamed gRPC messages, and
//! buffering them before authentication would let anyone make a member
//! hold large bodies in memory. Within the skew window, an on-path attacker
//! who can read a signature could pair it with another body of the same
//! call; TLS on the peer port ([`super::tls`]) closes that.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderMap, HeaderValue};
use ring::hmac;

use super::secret::{hex, unhex, ClusterSecret};

/// Header naming the member that signed the request.
pub const PEER_HEADER: &str = "x-roster-peer";
/// Header with the signing time, Unix milliseconds.
pub const TIME_HEADER: &str = "x-roster-peer-time";
/// Header with the hex HMAC-SHA256 signature.
pub const SIGNATURE_HEADER: &str = "x-roster-peer-signature";
/// How far a signing time may be from the receiver's clock, either way.
pub const MAX_CLOCK_SKEW: Duration = Duration::from_secs(60);

label_set! {
    /// Why a peer request was refused; the label is the metric's `reason`.
    pub enum AuthFailure {
        /// This node has no cluster secret, so it accepts no peer at all.
        NoSecret => "no_secret",
        /// A signature header is absent.
        Missing => "missing",
        /// A header is not what a member sends (not ASCII, not a number, not hex).
        Malformed => "malformed",
        /// The signing time is outside the skew window.
        Stale => "stale",
        /// The signature does not match: another secret, or altered headers.
        BadSignature => "bad_signature",
        /// The signature is valid but the request names another member as its
        /// sender than the one that signed it.
        WrongSender => "wrong_sender",
    }
}

impl AuthFailure {
    /// What the refused sender is told.
    pub fn message(self) -> &'static str {
        match self {
            AuthFailure::NoSecret => "this node has no cluster secret and accepts no peer requests",
            AuthFailure::Missing => "peer request without a member signature",
            AuthFailure::Malformed => "peer request with a malformed signature",
            AuthFailure::Stale => "peer request signed outside the allowed clock skew",
            AuthFailure::BadSignature => "peer request with an invalid signature",
            AuthFailure::WrongSender => "peer request naming another sender than its signer",
        }
    }
}

/// Signs and checks peer requests with the cluster secret.
pub struct PeerAuth {
    key: hmac::Key,
    member: String,
    max_skew: Duration,
}

impl std::fmt::Debug for PeerAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerAuth").field("member", &self.member).field("max_skew", &self.max_skew).finish()
    }
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl PeerAuth {
    /// Signs as `member` with `secret`.
    pub fn new(secret: &ClusterSecret, member: impl Into<String>) -> PeerAuth {
        PeerAuth {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret.bytes()),
            member: member.into(),
            max_skew: MAX_CLOCK_SKEW,
        }
    }

    /// The member this node signs as.
    pub fn member(&self) -> &str {
        &self.member
    }

    fn message(member: &str, time: u64, method: &str, path: &str) -> Vec<u8> {
        format!("roster-peer-v1\n{member}\n{time}\n{method}\n{path}").into_bytes()
    }

    /// Adds the signature headers for `method` and `path`, signed now.
    pub fn sign(&self, headers: &mut HeaderMap, method: &str, path: &str) {
        self.sign_at(headers, method, path, now_ms());
    }

    /// Adds the signature headers, signed at `time_ms`.
    pub fn sign_at(&self, headers: &mut HeaderMap, method: &str, path: &str, time_ms: u64) {
        let Ok(member) = HeaderValue::from_str(&self.member) else {
            // A member name that is not a header value cannot sign; the
            // receiver refuses the request as unsigned.
            return;
        };
        let tag = hmac::sign(&self.key, &PeerAuth::message(&self.member, time_ms, method, path));
        headers.insert(PEER_HEADER, member);
        headers.insert(TIME_HEADER, HeaderValue::from(time_ms));
        if let Ok(signature) = HeaderValue::from_str(&hex(tag.as_ref())) {
            headers.insert(SIGNATURE_HEADER, signature);
        }
    }

    /// The member that signed a request for `method` and `path`, checked now.
    pub fn verify(&self, headers: &HeaderMap, method: &str, path: &str) -> Result<String, AuthFailure> {
        self.verify_at(headers, method, path, now_ms())
    }

    /// The member that signed the request, checked against the clock `now_ms`.
    pub fn verify_at(&self, headers: &HeaderMap, method: &str, path: &str, now_ms: u64) -> Result<String, AuthFailure> {
        let text = |name: &str| -> Result<&str, AuthFailure> {
            headers.get(name).ok_or(AuthFailure::Missing)?.to_str().map_err(|_| AuthFailure::Malformed)
        };
        let member = text(PEER_HEADER)?;
        let time: u64 = text(TIME_HEADER)?.parse().map_err(|_| AuthFailure::Malformed)?;
        let signature = unhex(text(SIGNATURE_HEADER)?).ok_or(AuthFailure::Malformed)?;
        let skew = u64::try_from(self.max_skew.as_millis()).unwrap_or(u64::MAX);
        if time.abs_diff(now_ms) > skew {
            return Err(AuthFailure::Stale);
        }
        hmac::verify(&self.key, &PeerAuth::message(member, time, method, path), &signature)
            .map_err(|_| AuthFailure::BadSignature)?;
        Ok(member.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(secret: &[u8; 32], member: &str) -> PeerAuth {
        PeerAuth::new(&ClusterSecret::new(secret).expect("secret"), member)
    }

    const PATH: &str = "/roster.peer.Peer/DistroSync";

    #[test]
    fn a_signed_request_names_its_signer() {
        let a = auth(&[7; 32], "a:8848");
        let b = auth(&[7; 32], "b:8848");
        let mut headers = HeaderMap::new();
        a.sign_at(&mut headers, "POST", PATH, 1_000_000);
        assert_eq!(b.verify_at(&headers, "POST", PATH, 1_000_000 + 59_000), Ok("a:8848".to_string()));
        assert_eq!(b.verify_at(&headers, "POST", PATH, 1_000_000 - 59_000), Ok("a:8848".to_string()));
    }

    #[test]
    fn everything_else_is_refused() {
        let a = auth(&[7; 32], "a:8848");
        let b = auth(&[7; 32], "b:8848");
        let stranger = auth(&[8; 32], "a:8848");
        let now = 5_000_000;
        let signed = |signer: &PeerAuth| {
            let mut headers = HeaderMap::new();
            signer.sign_at(&mut headers, "POST", PATH, now);
            headers
        };

        // No headers at all, or a Nacos-style "I am a server" marker.
        let mut nacos = HeaderMap::new();
        nacos.insert(http::header::USER_AGENT, HeaderValue::from_static("Nacos-Server:v2.2.0"));
        assert_eq!(b.verify_at(&nacos, "POST", PATH, now), Err(AuthFailure::Missing));
        // Another secret.
        assert_eq!(b.verify_at(&signed(&stranger), "POST", PATH, now), Err(AuthFailure::BadSignature));
        // Another path or method than the one signed.
        assert_eq!(
            b.verify_at(&signed(&a), "POST", "/roster.peer.Peer/RaftAppend", now),
            Err(AuthFailure::BadSignature)
        );
        assert_eq!(b.verify_at(&signed(&a), "PUT", PATH, now), Err(AuthFailure::BadSignature));
        // A forged sender name on a valid signature.
        let mut forged = signed(&a);
        forged.insert(PEER_HEADER, HeaderValue::from_static("c:8848"));
        assert_eq!(b.verify_at(&forged, "POST", PATH, now), Err(AuthFailure::BadSignature));
        // A shifted time.
        let mut shifted = signed(&a);
        shifted.insert(TIME_HEADER, HeaderValue::from(now + 1));
        assert_eq!(b.verify_at(&shifted, "POST", PATH, now), Err(AuthFailure::BadSignature));
        // Outside the window either way.
        assert_eq!(b.verify_at(&signed(&a), "POST", PATH, now + 61_000), Err(AuthFailure::Stale));
        assert_eq!(b.verify_at(&signed(&a), "POST", PATH, now - 61_000), Err(AuthFailure::Stale));
        // Garbage.
        let mut garbage = signed(&a);
        garbage.insert(SIGNATURE_HEADER, HeaderValue::from_static("not hex"));
        assert_eq!(b.verify_at(&garbage, "POST", PATH, now), Err(AuthFailure::Malformed));
        let mut garbage = signed(&a);
        garbage.insert(TIME_HEADER, HeaderValue::from_static("soon"));
        assert_eq!(b.verify_at(&garbage, "POST", PATH, now), Err(AuthFailure::Malformed));
        let mut truncated = signed(&a);
        truncated.insert(SIGNATURE_HEADER, HeaderValue::from_static("abcd"));
        assert_eq!(b.verify_at(&truncated, "POST", PATH, now), Err(AuthFailure::BadSignature));
    }
}
