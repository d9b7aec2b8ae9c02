//! Password hashes: PBKDF2-HMAC-SHA256 (from `ring`) in the PHC
//! string format `$pbkdf2-sha256$i=<iterations>$<salt>$<hash>` (salt and
//! hash in unpadded standard base64).
//!
//! The users file stores only such hashes; `roster-node hash-password`
//! makes them. PBKDF2 was chosen over Argon2 because it is small, has no
//! memory-cost knob to size per pod, and is what OWASP lists for
//! FIPS-style settings. [`DEFAULT_ITERATIONS`] makes one check deliberately
//! slow; it is paid only at login (tokens are checked with one HMAC).

use std::fmt;
use std::num::NonZeroU32;

use base64::engine::general_purpose::STANDARD_NO_PAD;
use base64::Engine;
use ring::pbkdf2;

/// Iterations of new hashes (OWASP's 2023 recommendation for PBKDF2-HMAC-SHA256).
pub const DEFAULT_ITERATIONS: u32 = 600_000;
/// Fewer iterations than this are refused when the users file is read.
pub const MIN_ITERATIONS: u32 = 1_000;
/// More iterations than this are refused (a typo would make every login hang).
pub const MAX_ITERATIONS: u32 = 10_000_000;
/// Bytes of random salt in new hashes.
pub const SALT_BYTES: usize = 16;
/// Bytes of derived key stored.
pub const HASH_BYTES: usize = 32;

const PREFIX: &str = "$pbkdf2-sha256$i=";

/// Why a password hash was refused or could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HashError {
    /// Not a `$pbkdf2-sha256$` string.
    #[error("a password must be a hash made by `roster-node hash-password` ($pbkdf2-sha256$i=...)")]
    NotAHash,
    /// The wrong number of `$` parts.
    #[error("a password hash must have the form $pbkdf2-sha256$i=<n>$<salt>$<hash>")]
    Form,
    /// The iteration count is not a number.
    #[error("password hash iterations '{0}' is not a number")]
    IterationsNotANumber(String),
    /// The iteration count is out of range.
    #[error("password hash iterations {0} is outside {MIN_ITERATIONS}..={MAX_ITERATIONS}")]
    IterationsOutOfRange(u32),
    /// Iterations asked for a new hash out of range.
    #[error("iterations must be within {MIN_ITERATIONS}..={MAX_ITERATIONS}")]
    Iterations,
    /// The salt is not base64.
    #[error("password hash salt is not base64")]
    SaltEncoding,
    /// The hash is not base64.
    #[error("password hash is not base64")]
    HashEncoding,
    /// The salt is too short.
    #[error("password hash salt is shorter than 8 bytes")]
    ShortSalt,
    /// The hash has the wrong length.
    #[error("password hash must be {HASH_BYTES} bytes, is {0}")]
    HashLength(usize),
    /// No randomness for a salt.
    #[error("no system randomness for a salt: {0}")]
    Randomness(String),
}

/// Why `roster-node hash-password` printed no hash.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// `-h`/`--help`: the usage text.
    #[error("usage: roster-node hash-password [--iterations N] < password\nReads the password from the first line of standard input and prints its hash.")]
    Usage,
    /// `--iterations` without a value.
    #[error("--iterations needs a number")]
    MissingIterations,
    /// `--iterations` with something else than a number.
    #[error("--iterations: '{0}' is not a number")]
    BadIterations(String),
    /// An argument the command does not take.
    #[error("hash-password: unknown argument '{0}'")]
    UnknownArgument(String),
    /// Standard input could not be read.
    #[error("cannot read the password from stdin: {0}")]
    Stdin(#[from] std::io::Error),
    /// The first line of standard input is empty.
    #[error("hash-password: the password (first line of stdin) is empty")]
    EmptyPassword,
    /// The hash could not be made.
    #[error("{0}")]
    Hash(#[from] HashError),
}

/// A parsed password hash. `Debug` shows only the iteration count.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordHash {
    iterations: u32,
    salt: Vec<u8>,
    hash: Vec<u8>,
}

impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PasswordHash(pbkdf2-sha256, {} iterations)", self.iterations)
    }
}

impl PasswordHash {
    /// Parses a PHC string, refusing anything but PBKDF2-HMAC-SHA256 with
    /// sane parameters.
    pub fn parse(encoded: &str) -> Result<Self, HashError> {
        let rest = encoded.strip_prefix(PREFIX).ok_or(HashError::NotAHash)?;
        let mut parts = rest.split('$');
        let (Some(iterations), Some(salt), Some(hash), None) = (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(HashError::Form);
        };
        let iterations: u32 = iterations.parse().map_err(|_| HashError::IterationsNotANumber(iterations.to_owned()))?;
        if !(MIN_ITERATIONS..=MAX_ITERATIONS).contains(&iterations) {
            return Err(HashError::IterationsOutOfRange(iterations));
        }
        let salt = STANDARD_NO_PAD.decode(salt).map_err(|_| HashError::SaltEncoding)?;
        let hash = STANDARD_NO_PAD.decode(hash).map_err(|_| HashError::HashEncoding)?;
        if salt.len() < 8 {
            return Err(HashError::ShortSalt);
        }
        if hash.len() != HASH_BYTES {
            return Err(HashError::HashLength(hash.len()));
        }
        Ok(PasswordHash { iterations, salt, hash })
    }

    /// Hashes `password` with a fresh random salt.
    pub fn new(password: &str, iterations: u32) -> Result<Self, HashError> {
        let rounds = NonZeroU32::new(iterations)
            .filter(|_| (MIN_ITERATIONS..=MAX_ITERATIONS).contains(&iterations))
            .ok_or(HashError::Iterations)?;
        let mut salt = vec![0u8; SALT_BYTES];
        getrandom::fill(&mut salt).map_err(|e| HashError::Randomness(e.to_string()))?;
        let hash = derive(password, &salt, rounds);
        Ok(PasswordHash { iterations, salt, hash })
    }

    /// Whether `password` matches, compared in constant time.
    pub fn matches(&self, password: &str) -> bool {
        // `parse` and `new` keep the count within MIN..=MAX, never zero.
        let Some(rounds) = NonZeroU32::new(self.iterations) else { return false };
        pbkdf2::verify(pbkdf2::PBKDF2_HMAC_SHA256, rounds, &self.salt, password.as_bytes(), &self.hash).is_ok()
    }

    /// The PHC string, as stored in the users file.
    pub fn encode(&self) -> String {
        format!(
            "{PREFIX}{}${}${}",
            self.iterations,
            STANDARD_NO_PAD.encode(&self.salt),
            STANDARD_NO_PAD.encode(&self.hash)
        )
    }
}

fn derive(password: &str, salt: &[u8], rounds: NonZeroU32) -> Vec<u8> {
    let mut out = vec![0u8; HASH_BYTES];
    pbkdf2::derive(pbkdf2::PBKDF2_HMAC_SHA256, rounds, salt, password.as_bytes(), &mut out);
    out
}

/// `roster-node hash-password [--iterations N]`: reads one password from
/// standard input (never from the command line, which other users and the
/// shell history can see) and prints its hash for the users file.
pub fn hash_password_command(args: &[String]) -> Result<String, CommandError> {
    let mut iterations = DEFAULT_ITERATIONS;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--iterations" => {
                let n = args.next().ok_or(CommandError::MissingIterations)?;
                iterations = n.parse().map_err(|_| CommandError::BadIterations(n.clone()))?;
            }
            "-h" | "--help" => return Err(CommandError::Usage),
            other => return Err(CommandError::UnknownArgument(other.to_owned())),
        }
    }
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    let password = line.strip_suffix('\n').map(|l| l.strip_suffix('\r').unwrap_or(l)).unwrap_or(&line);
    if password.is_empty() {
        return Err(CommandError::EmptyPassword);
    }
    Ok(PasswordHash::new(password, iterations)?.encode())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The widely published PBKDF2-HMAC-SHA256 vectors (P = "password",
    /// S = "salt", 32 bytes; Python's `hashlib.pbkdf2_hmac` gives the same):
    /// hashes in users files stay valid whatever library computes them.
    #[test]
    fn derivation_matches_the_published_vectors() {
        let vectors = [
            (1, "120fb6cffcf8b32c43e7225256c4f837a86548c92ccc35480805987cb70be17b"),
            (2, "ae4d0c95af6b46d32d0adff928f06dd02a303f8ef3c251dfd6e2d85a95474c43"),
            (4096, "c5e478d59288c841aa530db6845c4c8d962893a001ce4e11a4963873aa98134a"),
        ];
        let rounds = |n| NonZeroU32::new(n).expect("not zero");
        for (iterations, expected) in vectors {
            assert_eq!(hex(&derive("password", b"salt", rounds(iterations))), expected, "{iterations} iterations");
        }
        let hash = derive("password", b"salt", rounds(4096));
        let stored = PasswordHash { iterations: 4096, salt: b"salt".to_vec(), hash };
        assert!(stored.matches("password"));
        assert!(!stored.matches("passwore"));
    }

    #[test]
    fn hashes_round_trip_and_match_only_their_password() {
        let h = PasswordHash::new("s3cret", MIN_ITERATIONS).expect("hash");
        let encoded = h.encode();
        assert!(encoded.starts_with("$pbkdf2-sha256$i=1000$"), "{encoded}");
        let parsed = PasswordHash::parse(&encoded).expect("parse");
        assert_eq!(parsed, h);
        assert!(parsed.matches("s3cret"));
        assert!(!parsed.matches("s3cret "));
        assert!(!parsed.matches(""));
        assert_ne!(PasswordHash::new("s3cret", MIN_ITERATIONS).expect("hash").encode(), encoded, "salted");
        assert!(!format!("{h:?}").contains(&encoded[25..]), "Debug hides salt and hash");
    }

    #[test]
    fn bad_hashes_are_refused() {
        for bad in [
            "plaintext",
            "$argon2id$v=19$m=65536$abc$def",
            "$pbkdf2-sha256$i=10$c2FsdHNhbHQ$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            "$pbkdf2-sha256$i=1000$c2FsdHNhbHQ$AAAA",
            "$pbkdf2-sha256$i=1000$!!$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            "$pbkdf2-sha256$i=x$c2FsdHNhbHQ$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        ] {
            assert!(PasswordHash::parse(bad).is_err(), "{bad}");
        }
        assert!(PasswordHash::parse("$pbkdf2-sha256$i=1000$c2FsdHNhbHQ$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
            .is_ok());
    }
}
