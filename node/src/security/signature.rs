//! Signed peer requests: who sent a request, proven with the cluster secret,
//! for this body, once.
//!
//! Every request a member sends to another member (peer gRPC calls and
//! forwarded HTTP writes) carries five headers:
//!
//! | header | value |
//! |---|---|
//! | [`PEER_HEADER`] | the sender's member name (`host:port`) |
//! | [`TIME_HEADER`] | the sender's clock, Unix milliseconds |
//! | [`NONCE_HEADER`] | 16 random bytes, hex, new for every request |
//! | [`DIGEST_HEADER`] | hex SHA-256 of the request body |
//! | [`SIGNATURE_HEADER`] | hex HMAC-SHA256 with the cluster secret over `roster-peer-v2`, member, time, nonce, method, path (with the query) and body digest |
//!
//! The receiver recomputes the MAC and compares in constant time
//! (`ring::hmac::verify`), refuses a time further than [`MAX_CLOCK_SKEW`]
//! from its own clock, and refuses a nonce it has seen within that window
//! ([`ReplayCache`]), so a captured set of headers is good for one request
//! only, never for another method, path or body. Only then is the body
//! read (a member's, bounded by the peer message limit) and its digest
//! compared, so no caller without the secret makes a member buffer
//! anything. The secret itself never crosses the wire. Nothing else of the
//! request (no `User-Agent`, no "server" marker, the flaw of Nacos's
//! `User-Agent: Nacos-Server` trust) grants anything.
//!
//! **Rolling upgrades.** Members before this scheme signed only member,
//! time, method and path, in [`V1_SIGNATURE_HEADER`], and refuse the new
//! headers (and the new members refuse theirs). A member started with
//! `--peer-signature-compat` also signs the old way and also accepts the
//! old signature, so a cluster can be upgraded one member at a time; the
//! old signature is replayable within the skew window, so the flag is for
//! the upgrade only (see `SECURITY.md`).

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderMap, HeaderValue};
use parking_lot::Mutex;
use ring::{digest, hmac};

use super::secret::{hex, unhex, ClusterSecret};

/// Header naming the member that signed the request.
pub const PEER_HEADER: &str = "x-roster-peer";
/// Header with the signing time, Unix milliseconds.
pub const TIME_HEADER: &str = "x-roster-peer-time";
/// Header with the request's nonce (16 bytes, hex).
pub const NONCE_HEADER: &str = "x-roster-peer-nonce";
/// Header with the hex SHA-256 of the request body.
pub const DIGEST_HEADER: &str = "x-roster-peer-digest";
/// Header with the hex HMAC-SHA256 signature.
pub const SIGNATURE_HEADER: &str = "x-roster-peer-signature-v2";
/// Header of the signature members before body digests and nonces sent
/// (member, time, method and path only); sent and accepted only with
/// `--peer-signature-compat`.
pub const V1_SIGNATURE_HEADER: &str = "x-roster-peer-signature";
/// How far a signing time may be from the receiver's clock, either way.
pub const MAX_CLOCK_SKEW: Duration = Duration::from_secs(60);
/// Most nonces remembered; see [`ReplayCache`].
pub const REPLAY_CACHE_CAPACITY: usize = 200_000;

const NONCE_BYTES: usize = 16;

label_set! {
    /// Why a peer request was refused; the label is the metric's `reason`.
    pub enum AuthFailure {
        /// This node has no cluster secret, so it accepts no peer at all.
        NoSecret => "no_secret",
        /// A signature header is absent.
        Missing => "missing",
        /// A header is not what a member sends (not ASCII, not a number, not hex).
        Malformed => "malformed",
        /// The signing time is outside the skew window (or before what the
        /// replay cache still remembers).
        Stale => "stale",
        /// The signature does not match: another secret, or altered headers.
        BadSignature => "bad_signature",
        /// The signature is valid but was seen before: a replay.
        Replayed => "replayed",
        /// The signature is valid but the body is not the one it was made for.
        BadDigest => "bad_digest",
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
            AuthFailure::Replayed => "peer request whose signature was used before",
            AuthFailure::BadDigest => "peer request whose body does not match its signature",
            AuthFailure::WrongSender => "peer request naming another sender than its signer",
        }
    }
}

/// The signature headers of a request, parsed (not yet checked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureHeaders<'a> {
    /// The member that claims to have signed.
    pub member: &'a str,
    /// The signing time, Unix ms.
    pub time: u64,
    /// What the signature covers besides the request line.
    pub kind: SignatureKind,
    /// The MAC.
    pub signature: Vec<u8>,
}

/// Which scheme a request was signed with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureKind {
    /// Nonce and body digest covered.
    V2 {
        /// The nonce.
        nonce: [u8; NONCE_BYTES],
        /// SHA-256 of the body.
        digest: [u8; 32],
    },
    /// Member, time, method and path only (before body digests).
    V1,
}

/// Parses the signature headers: the v2 set if its signature header is
/// there, else (only when `legacy` is accepted) the v1 set. Pure, and the
/// entry point of the `peer_signature` fuzz target.
pub fn parse_headers(headers: &HeaderMap, legacy: bool) -> Result<SignatureHeaders<'_>, AuthFailure> {
    let text = |name: &str| -> Result<&str, AuthFailure> {
        headers.get(name).ok_or(AuthFailure::Missing)?.to_str().map_err(|_| AuthFailure::Malformed)
    };
    let fixed = |name: &str| -> Result<Vec<u8>, AuthFailure> { unhex(text(name)?).ok_or(AuthFailure::Malformed) };
    let v2 = headers.contains_key(SIGNATURE_HEADER);
    let v1 = legacy && headers.contains_key(V1_SIGNATURE_HEADER);
    if !(v2 || v1) {
        return Err(AuthFailure::Missing);
    }
    let member = text(PEER_HEADER)?;
    let time_text = text(TIME_HEADER)?;
    if time_text.is_empty() || time_text.len() > 20 || !time_text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(AuthFailure::Malformed);
    }
    let time: u64 = time_text.parse().map_err(|_| AuthFailure::Malformed)?;
    if !v2 {
        return Ok(SignatureHeaders { member, time, kind: SignatureKind::V1, signature: fixed(V1_SIGNATURE_HEADER)? });
    }
    let nonce: [u8; NONCE_BYTES] = fixed(NONCE_HEADER)?.try_into().map_err(|_| AuthFailure::Malformed)?;
    let digest: [u8; 32] = fixed(DIGEST_HEADER)?.try_into().map_err(|_| AuthFailure::Malformed)?;
    Ok(SignatureHeaders {
        member,
        time,
        kind: SignatureKind::V2 { nonce, digest },
        signature: fixed(SIGNATURE_HEADER)?,
    })
}

/// A request whose headers passed: its signer, and the body digest it must
/// still match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The member that signed.
    pub member: String,
    digest: Option<[u8; 32]>,
}

impl Verified {
    /// Whether `body` is the body that was signed (a v1 signature, accepted
    /// only with `--peer-signature-compat`, covers no body).
    pub fn check_body(&self, body: &[u8]) -> Result<(), AuthFailure> {
        match &self.digest {
            None => Ok(()),
            Some(expected) if digest::digest(&digest::SHA256, body).as_ref() == expected => Ok(()),
            Some(_) => Err(AuthFailure::BadDigest),
        }
    }

    /// Whether the request was signed the old way (no body, no nonce).
    pub fn is_legacy(&self) -> bool {
        self.digest.is_none()
    }
}

/// The nonces of signatures accepted within the skew window, so that each
/// is accepted once.
///
/// Only requests whose MAC is valid get here, so only members fill it.
/// Entries are kept by signing time and forgotten once that time is out of
/// the window (a replay would then be stale anyway). Past
/// [`REPLAY_CACHE_CAPACITY`] entries (a member sending more than that
/// within the window) the oldest is forgotten and its time becomes a
/// floor: anything signed at or before it is refused as stale, so a
/// forgotten nonce can never be replayed, at the cost of a narrower window
/// under such a load.
#[derive(Debug)]
pub struct ReplayCache {
    capacity: usize,
    window_ms: u64,
    state: Mutex<ReplayState>,
}

#[derive(Debug, Default)]
struct ReplayState {
    seen: BTreeSet<(u64, [u8; NONCE_BYTES])>,
    floor: u64,
}

impl ReplayCache {
    /// Remembers up to `capacity` nonces for `window` after their time.
    pub fn new(capacity: usize, window: Duration) -> ReplayCache {
        let window_ms = u64::try_from(window.as_millis()).unwrap_or(u64::MAX);
        ReplayCache { capacity: capacity.max(1), window_ms, state: Mutex::new(ReplayState::default()) }
    }

    /// Accepts `(time, nonce)` once, at `now_ms`.
    pub fn accept(&self, time: u64, nonce: [u8; NONCE_BYTES], now_ms: u64) -> Result<(), AuthFailure> {
        let mut state = self.state.lock();
        let horizon = now_ms.saturating_sub(self.window_ms);
        while state.seen.first().is_some_and(|(t, _)| *t < horizon) {
            state.seen.pop_first();
        }
        if time <= state.floor && state.floor > 0 {
            return Err(AuthFailure::Stale);
        }
        if !state.seen.insert((time, nonce)) {
            return Err(AuthFailure::Replayed);
        }
        while state.seen.len() > self.capacity {
            if let Some((t, _)) = state.seen.pop_first() {
                state.floor = state.floor.max(t);
            }
        }
        Ok(())
    }

    /// Nonces remembered now.
    pub fn len(&self) -> usize {
        self.state.lock().seen.len()
    }

    /// Whether none is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Signs and checks peer requests with the cluster secret.
pub struct PeerAuth {
    key: hmac::Key,
    member: String,
    max_skew: Duration,
    legacy: bool,
    replays: ReplayCache,
    random: ring::rand::SystemRandom,
}

impl std::fmt::Debug for PeerAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerAuth")
            .field("member", &self.member)
            .field("max_skew", &self.max_skew)
            .field("legacy", &self.legacy)
            .finish_non_exhaustive()
    }
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl PeerAuth {
    /// Signs as `member` with `secret`, the current scheme only.
    pub fn new(secret: &ClusterSecret, member: impl Into<String>) -> PeerAuth {
        PeerAuth {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret.bytes()),
            member: member.into(),
            max_skew: MAX_CLOCK_SKEW,
            legacy: false,
            replays: ReplayCache::new(REPLAY_CACHE_CAPACITY, MAX_CLOCK_SKEW),
            random: ring::rand::SystemRandom::new(),
        }
    }

    /// The same, also signing and accepting the scheme of members before
    /// body digests (`--peer-signature-compat`, for a rolling upgrade).
    pub fn with_legacy(self, legacy: bool) -> PeerAuth {
        PeerAuth { legacy, ..self }
    }

    /// The member this node signs as.
    pub fn member(&self) -> &str {
        &self.member
    }

    /// The nonces remembered against replays.
    pub fn replay_cache(&self) -> &ReplayCache {
        &self.replays
    }

    fn message(member: &str, time: u64, kind: &SignatureKind, method: &str, target: &str) -> Vec<u8> {
        match kind {
            SignatureKind::V2 { nonce, digest } => {
                format!("roster-peer-v2\n{member}\n{time}\n{}\n{method}\n{target}\n{}", hex(nonce), hex(digest))
                    .into_bytes()
            }
            SignatureKind::V1 => format!("roster-peer-v1\n{member}\n{time}\n{method}\n{target}").into_bytes(),
        }
    }

    /// Adds the signature headers for `method`, `target` (the path, with
    /// the query if any) and `body`, signed now with a fresh nonce.
    pub fn sign(&self, headers: &mut HeaderMap, method: &str, target: &str, body: &[u8]) {
        let mut nonce = [0u8; NONCE_BYTES];
        if ring::rand::SecureRandom::fill(&self.random, &mut nonce).is_err() {
            // Without randomness a nonce could repeat; send it unsigned and
            // let the receiver refuse it rather than risk that.
            return;
        }
        self.sign_with(headers, method, target, body, now_ms(), nonce);
    }

    /// Adds the signature headers, signed at `time_ms` with `nonce`.
    pub fn sign_with(
        &self,
        headers: &mut HeaderMap,
        method: &str,
        target: &str,
        body: &[u8],
        time_ms: u64,
        nonce: [u8; NONCE_BYTES],
    ) {
        let Ok(member) = HeaderValue::from_str(&self.member) else {
            // A member name that is not a header value cannot sign; the
            // receiver refuses the request as unsigned.
            return;
        };
        let mut digest = [0u8; 32];
        digest.copy_from_slice(digest::digest(&digest::SHA256, body).as_ref());
        let kind = SignatureKind::V2 { nonce, digest };
        let tag = hmac::sign(&self.key, &PeerAuth::message(&self.member, time_ms, &kind, method, target));
        headers.insert(PEER_HEADER, member);
        headers.insert(TIME_HEADER, HeaderValue::from(time_ms));
        for (name, value) in
            [(NONCE_HEADER, hex(&nonce)), (DIGEST_HEADER, hex(&digest)), (SIGNATURE_HEADER, hex(tag.as_ref()))]
        {
            if let Ok(value) = HeaderValue::from_str(&value) {
                headers.insert(name, value);
            }
        }
        if self.legacy {
            let tag =
                hmac::sign(&self.key, &PeerAuth::message(&self.member, time_ms, &SignatureKind::V1, method, target));
            if let Ok(value) = HeaderValue::from_str(&hex(tag.as_ref())) {
                headers.insert(V1_SIGNATURE_HEADER, value);
            }
        }
    }

    /// Checks the headers of a request for `method` and `target` now: the
    /// MAC, the time and the nonce (which is used up). The body is checked
    /// afterwards with [`Verified::check_body`].
    pub fn verify_headers(&self, headers: &HeaderMap, method: &str, target: &str) -> Result<Verified, AuthFailure> {
        self.verify_headers_at(headers, method, target, now_ms())
    }

    /// [`PeerAuth::verify_headers`] against the clock `now_ms`.
    pub fn verify_headers_at(
        &self,
        headers: &HeaderMap,
        method: &str,
        target: &str,
        now_ms: u64,
    ) -> Result<Verified, AuthFailure> {
        let parsed = parse_headers(headers, self.legacy)?;
        let skew = u64::try_from(self.max_skew.as_millis()).unwrap_or(u64::MAX);
        if parsed.time.abs_diff(now_ms) > skew {
            return Err(AuthFailure::Stale);
        }
        let message = PeerAuth::message(parsed.member, parsed.time, &parsed.kind, method, target);
        hmac::verify(&self.key, &message, &parsed.signature).map_err(|_| AuthFailure::BadSignature)?;
        let digest = match parsed.kind {
            SignatureKind::V2 { nonce, digest } => {
                self.replays.accept(parsed.time, nonce, now_ms)?;
                Some(digest)
            }
            SignatureKind::V1 => None,
        };
        Ok(Verified { member: parsed.member.to_owned(), digest })
    }

    /// Checks a whole request (headers and body) now; the signer's name.
    pub fn verify(&self, headers: &HeaderMap, method: &str, target: &str, body: &[u8]) -> Result<String, AuthFailure> {
        let verified = self.verify_headers(headers, method, target)?;
        verified.check_body(body)?;
        Ok(verified.member)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(seed: u8) -> ClusterSecret {
        let bytes: Vec<u8> = (0..32u8).map(|i| i.wrapping_mul(37).wrapping_add(seed)).collect();
        ClusterSecret::new(&bytes).expect("secret")
    }

    fn auth(seed: u8, member: &str) -> PeerAuth {
        PeerAuth::new(&secret(seed), member)
    }

    const PATH: &str = "/roster.peer.Peer/DistroSync";
    const BODY: &[u8] = b"the body";

    fn signed(signer: &PeerAuth, time: u64, nonce: u8) -> HeaderMap {
        let mut headers = HeaderMap::new();
        signer.sign_with(&mut headers, "POST", PATH, BODY, time, [nonce; NONCE_BYTES]);
        headers
    }

    #[test]
    fn a_signed_request_names_its_signer_once() {
        let a = auth(7, "a:8848");
        let b = auth(7, "b:8848");
        let now = 1_000_000;
        let headers = signed(&a, now, 1);
        let verified = b.verify_headers_at(&headers, "POST", PATH, now + 59_000).expect("valid");
        assert_eq!(verified.member, "a:8848");
        assert_eq!(verified.check_body(BODY), Ok(()));
        assert_eq!(verified.check_body(b"another body"), Err(AuthFailure::BadDigest));
        assert!(!verified.is_legacy());
        // The same headers again: a replay, whatever the body.
        assert_eq!(b.verify_headers_at(&headers, "POST", PATH, now + 59_001), Err(AuthFailure::Replayed));
        // Another nonce at the same time is another request.
        assert!(b.verify_headers_at(&signed(&a, now, 2), "POST", PATH, now - 59_000).is_ok());
        let mut fresh = HeaderMap::new();
        a.sign(&mut fresh, "POST", PATH, BODY);
        assert_eq!(b.verify(&fresh, "POST", PATH, BODY), Ok("a:8848".to_string()));
        let mut fresh = HeaderMap::new();
        a.sign(&mut fresh, "POST", PATH, BODY);
        assert_eq!(b.verify(&fresh, "POST", PATH, b"swapped"), Err(AuthFailure::BadDigest));
    }

    #[test]
    fn everything_else_is_refused() {
        let a = auth(7, "a:8848");
        let b = auth(7, "b:8848");
        let stranger = auth(8, "a:8848");
        let now = 5_000_000;
        let check = |headers: &HeaderMap| b.verify_headers_at(headers, "POST", PATH, now).map(|v| v.member);

        // No headers at all, or a Nacos-style "I am a server" marker.
        let mut nacos = HeaderMap::new();
        nacos.insert(http::header::USER_AGENT, HeaderValue::from_static("Nacos-Server:v2.2.0"));
        assert_eq!(check(&nacos), Err(AuthFailure::Missing));
        // Another secret.
        assert_eq!(check(&signed(&stranger, now, 3)), Err(AuthFailure::BadSignature));
        // Another path or method than the one signed.
        let headers = signed(&a, now, 4);
        assert_eq!(
            b.verify_headers_at(&headers, "POST", "/roster.peer.Peer/RaftAppend", now),
            Err(AuthFailure::BadSignature)
        );
        assert_eq!(b.verify_headers_at(&headers, "PUT", PATH, now), Err(AuthFailure::BadSignature));
        // A forged sender, time, nonce or digest on a valid signature.
        for (name, value) in [
            (PEER_HEADER, "c:8848".to_string()),
            (TIME_HEADER, (now + 1).to_string()),
            (NONCE_HEADER, hex(&[9; NONCE_BYTES])),
            (DIGEST_HEADER, hex(digest::digest(&digest::SHA256, b"other").as_ref())),
        ] {
            let mut forged = signed(&a, now, 5);
            forged.insert(name, HeaderValue::from_str(&value).expect("header"));
            assert_eq!(check(&forged), Err(AuthFailure::BadSignature), "{name}");
        }
        // Outside the window either way.
        assert_eq!(check(&signed(&a, now + 61_000, 6)), Err(AuthFailure::Stale));
        assert_eq!(check(&signed(&a, now - 61_000, 6)), Err(AuthFailure::Stale));
        // Garbage.
        for (name, value) in [
            (SIGNATURE_HEADER, "not hex"),
            (TIME_HEADER, "soon"),
            (TIME_HEADER, "+5000000"),
            (NONCE_HEADER, "abcd"),
            (DIGEST_HEADER, ""),
        ] {
            let mut garbage = signed(&a, now, 7);
            garbage.insert(name, HeaderValue::from_static(value));
            assert_eq!(check(&garbage), Err(AuthFailure::Malformed), "{name}: {value}");
        }
        let mut truncated = signed(&a, now, 8);
        truncated.insert(SIGNATURE_HEADER, HeaderValue::from_static("abcd"));
        assert_eq!(check(&truncated), Err(AuthFailure::BadSignature));
        // The old scheme alone is not accepted without the compat flag.
        let mut v1 = signed(&a.with_legacy(true), now, 9);
        v1.remove(SIGNATURE_HEADER);
        assert_eq!(check(&v1), Err(AuthFailure::Missing));
    }

    #[test]
    fn compat_members_sign_and_accept_the_old_scheme_too() {
        let new = auth(7, "a:8848");
        let compat = auth(7, "b:8848").with_legacy(true);
        let now = 9_000_000;
        // A compat member's request carries both; a strict member checks the new one.
        let both = signed(&auth(7, "c:8848").with_legacy(true), now, 1);
        assert!(both.contains_key(V1_SIGNATURE_HEADER) && both.contains_key(SIGNATURE_HEADER));
        assert_eq!(new.verify_headers_at(&both, "POST", PATH, now).map(|v| v.member), Ok("c:8848".into()));
        // What an old member sends: the v1 headers only.
        let mut old = both.clone();
        for name in [SIGNATURE_HEADER, NONCE_HEADER, DIGEST_HEADER] {
            old.remove(name);
        }
        let verified = compat.verify_headers_at(&old, "POST", PATH, now).expect("accepted in compat mode");
        assert!(verified.is_legacy());
        assert_eq!(verified.check_body(b"any body"), Ok(()), "v1 covers no body");
        assert_eq!(new.verify_headers_at(&old, "POST", PATH, now), Err(AuthFailure::Missing));
        // With both present the new signature decides: a bad one is not
        // rescued by the old.
        let mut bad = both;
        bad.insert(SIGNATURE_HEADER, HeaderValue::from_str(&"0".repeat(64)).expect("header"));
        assert_eq!(compat.verify_headers_at(&bad, "POST", PATH, now), Err(AuthFailure::BadSignature));
    }

    #[test]
    fn the_replay_cache_forgets_outside_the_window_and_never_lets_a_forgotten_nonce_back() {
        let cache = ReplayCache::new(3, Duration::from_secs(60));
        let now = 1_000_000;
        for n in 0..3u8 {
            assert_eq!(cache.accept(now + u64::from(n), [n; NONCE_BYTES], now), Ok(()));
        }
        assert_eq!(cache.accept(now, [0; NONCE_BYTES], now), Err(AuthFailure::Replayed));
        // Over capacity: the oldest goes, and its time becomes the floor.
        assert_eq!(cache.accept(now + 10, [9; NONCE_BYTES], now), Ok(()));
        assert_eq!(cache.len(), 3);
        assert_eq!(cache.accept(now, [0; NONCE_BYTES], now), Err(AuthFailure::Stale), "forgotten, not replayable");
        assert_eq!(cache.accept(now, [7; NONCE_BYTES], now), Err(AuthFailure::Stale));
        assert_eq!(cache.accept(now + 11, [7; NONCE_BYTES], now), Ok(()));
        // Once their times leave the window, entries are dropped.
        assert_eq!(cache.accept(now + 70_000, [1; NONCE_BYTES], now + 70_000), Ok(()));
        assert_eq!(cache.len(), 1);
    }
}
