//! The shared cluster secret every member holds.
//!
//! It comes from a file (`--cluster-secret-file`, what the operator mounts
//! from a Kubernetes Secret) or from the environment
//! (`ROSTER_CLUSTER_SECRET`). Leading and trailing ASCII whitespace is
//! dropped, so a file written by `echo` works; what is left must be at least
//! [`MIN_SECRET_BYTES`] long. The secret is never logged or sent: peers sign
//! their requests with it ([`super::signature`]).

use std::fmt;
use std::path::Path;

use crate::error::{Error, Result};

/// Shortest accepted secret: 32 bytes, the output size of SHA-256.
pub const MIN_SECRET_BYTES: usize = 32;

/// The cluster secret. Its `Debug` output never shows the value.
#[derive(Clone, PartialEq, Eq)]
pub struct ClusterSecret(Vec<u8>);

impl ClusterSecret {
    /// A secret from raw bytes (whitespace at both ends dropped); refused
    /// when shorter than [`MIN_SECRET_BYTES`].
    pub fn new(raw: &[u8]) -> Result<ClusterSecret> {
        let trimmed = raw.trim_ascii();
        if trimmed.len() < MIN_SECRET_BYTES {
            return Err(Error::Config(format!(
                "the cluster secret has {} bytes; at least {MIN_SECRET_BYTES} are needed",
                trimmed.len()
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
        let s = ClusterSecret::new(b"  0123456789abcdef0123456789abcdef\n").expect("32 bytes");
        assert_eq!(s.bytes(), b"0123456789abcdef0123456789abcdef");
        assert_eq!(format!("{s:?}"), "ClusterSecret(32 bytes)");
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
