//! The shared cluster secret every member holds.
//!
//! It comes from a file (`--cluster-secret-file`, what the operator mounts
//! from a Kubernetes Secret) or from the environment
//! (`ROSTER_CLUSTER_SECRET`). Leading and trailing ASCII whitespace is
//! dropped, so a file written by `echo` works; what is left must be at least
//! [`MIN_SECRET_BYTES`] long and must not be obviously weak
//! ([`weakness`]: a run of one byte, few distinct bytes, a short pattern
//! repeated). The secret is never logged or sent: peers sign their requests
//! with it ([`super::signature`]).

use std::fmt;
use std::path::Path;

use crate::error::{Error, Result};

/// Shortest accepted secret: 32 bytes, the output size of SHA-256.
pub const MIN_SECRET_BYTES: usize = 32;
/// Fewest distinct byte values an accepted secret has. Random hex of 32
/// characters has 16 about always; a word repeated or typed on one key does
/// not.
pub const MIN_DISTINCT_BYTES: usize = 10;

/// Why `secret` looks made by hand rather than drawn at random, if it does.
/// This catches the obvious (36 identical bytes, `abab...`, a word typed
/// twice), not every weak secret: use a random one
/// (`head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n'`).
pub fn weakness(secret: &[u8]) -> Option<String> {
    let mut seen = [false; 256];
    for b in secret {
        seen[usize::from(*b)] = true;
    }
    let distinct = seen.iter().filter(|s| **s).count();
    if distinct < MIN_DISTINCT_BYTES {
        return Some(format!("it has only {distinct} distinct byte values (at least {MIN_DISTINCT_BYTES} are needed)"));
    }
    // A pattern of at most half the length, repeated to fill it.
    if let Some(period) = (1..=secret.len() / 2).find(|p| secret.iter().skip(*p).zip(secret).all(|(a, b)| a == b)) {
        return Some(format!("it repeats a pattern of {period} bytes"));
    }
    None
}

/// The cluster secret. Its `Debug` output never shows the value.
#[derive(Clone, PartialEq, Eq)]
pub struct ClusterSecret(Vec<u8>);

impl ClusterSecret {
    /// A secret from raw bytes (whitespace at both ends dropped); refused
    /// when shorter than [`MIN_SECRET_BYTES`] or obviously weak.
    pub fn new(raw: &[u8]) -> Result<ClusterSecret> {
        let trimmed = raw.trim_ascii();
        if trimmed.len() < MIN_SECRET_BYTES {
            return Err(Error::Config(format!(
                "the cluster secret has {} bytes; at least {MIN_SECRET_BYTES} are needed",
                trimmed.len()
            )));
        }
        if let Some(why) = weakness(trimmed) {
            return Err(Error::Config(format!(
                "the cluster secret is too weak: {why}; use a random one, e.g. \
                 `head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \\n'`"
            )));
        }
        Ok(ClusterSecret(trimmed.to_vec()))
    }

    /// Reads the secret from `path`.
    pub fn from_file(path: &Path) -> Result<ClusterSecret> {
        let raw = std::fs::read(path)
            .map_err(|e| Error::Config(format!("cannot read the cluster secret file {}: {e}", path.display())))?;
        ClusterSecret::new(&raw)
    }

    /// A fresh random secret of 32 bytes, hex-encoded (64 characters), for
    /// tools that start clusters (the local cluster command, test harnesses).
    pub fn generate_hex() -> Result<String> {
        let mut bytes = [0u8; 32];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
            .map_err(|_| Error::Internal("the system random generator failed".into()))?;
        Ok(hex(&bytes))
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for ClusterSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ClusterSecret({} bytes)", self.0.len())
    }
}

/// Lower-case hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

/// Bytes of a hex string, or `None` when it is not hex.
pub(crate) fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| text.get(i..i + 2).and_then(|pair| u8::from_str_radix(pair, 16).ok())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_secrets_are_refused_and_whitespace_is_dropped() {
        assert!(ClusterSecret::new(b"too short").is_err());
        assert!(ClusterSecret::new(&[b' '; 64]).is_err());
        let s = ClusterSecret::new(b"  9f86d081884c7d659a2feaa0c55ad015\n").expect("32 bytes");
        assert_eq!(s.bytes(), b"9f86d081884c7d659a2feaa0c55ad015");
        assert_eq!(format!("{s:?}"), "ClusterSecret(32 bytes)");
    }

    #[test]
    fn obviously_weak_secrets_are_refused_with_the_reason() {
        let err = |raw: &[u8]| ClusterSecret::new(raw).expect_err("weak").to_string();
        let message = err(&[b'a'; 36]);
        assert!(message.contains("only 1 distinct byte") && message.contains("/dev/urandom"), "{message}");
        assert!(err(b"abababababababababababababababababab").contains("only 2 distinct"));
        assert!(err(b"passwordpasswordpasswordpassword").contains("distinct"));
        let twice = err(b"0123456789abcdef0123456789abcdef");
        assert!(twice.contains("repeats a pattern of 16 bytes"), "{twice}");
        assert!(err(b"quick-brown-fox-jumps-quick-brown-fox-jumps-").contains("pattern of 22"));
        // Random ones pass, in raw or hex form.
        for _ in 0..100 {
            let hex_secret = ClusterSecret::generate_hex().expect("random");
            assert!(ClusterSecret::new(hex_secret.as_bytes()).is_ok(), "{hex_secret}");
        }
        let mut raw = [0u8; 32];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut raw).expect("random");
        assert_eq!(weakness(&raw), None);
    }

    #[test]
    fn generated_secrets_are_long_and_distinct() {
        let a = ClusterSecret::generate_hex().expect("random");
        let b = ClusterSecret::generate_hex().expect("random");
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
        assert!(ClusterSecret::new(a.as_bytes()).is_ok());
        assert_eq!(unhex(&hex(&[0, 1, 0xab, 0xff])), Some(vec![0, 1, 0xab, 0xff]));
        assert_eq!(unhex("0g"), None);
        assert_eq!(unhex("abc"), None);
    }
}
