//! Durations in flags and environment variables: `500ms`, `15s`, `3m`,
//! `1h`, anything else [`humantime`] reads (`1h 30m`, `1.5s`, `2days`), and a
//! bare number, which is milliseconds (Roster's convention since its first
//! release; humantime has no unitless form).
//!
//! The values of the first releases (a whole number with `ms`, `s`, `m` or
//! `h`) keep exactly their old meaning, including numbers too large for
//! humantime's arithmetic, which saturate as they always did.

use std::time::Duration;

/// A duration flag that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{raw}' is not a duration (try 500ms, 15s, 3m): {reason}")]
pub struct DurationError {
    raw: String,
    reason: String,
}

/// Parses a duration flag; see the module docs.
pub fn parse(raw: &str) -> Result<Duration, DurationError> {
    let raw = raw.trim();
    if !raw.is_empty() && raw.bytes().all(|b| b.is_ascii_digit()) {
        return whole(raw, "ms").ok_or_else(|| error(raw, "the number is too large"));
    }
    match humantime::parse_duration(raw) {
        Ok(d) => Ok(d),
        Err(humantime::DurationError::NumberOverflow) => {
            let split = raw.find(|c: char| !c.is_ascii_digit()).unwrap_or(raw.len());
            let (digits, unit) = raw.split_at(split);
            whole(digits, unit).ok_or_else(|| error(raw, "the number is too large"))
        }
        Err(e) => Err(error(raw, &e.to_string())),
    }
}

/// The reading of the first releases: a whole number and one of four units,
/// saturating; `None` for anything else.
fn whole(digits: &str, unit: &str) -> Option<Duration> {
    let n: u64 = digits.parse().ok()?;
    match unit {
        "ms" => Some(Duration::from_millis(n)),
        "s" => Some(Duration::from_secs(n)),
        "m" => Some(Duration::from_secs(n.saturating_mul(60))),
        "h" => Some(Duration::from_secs(n.saturating_mul(3600))),
        _ => None,
    }
}

fn error(raw: &str, reason: &str) -> DurationError {
    DurationError { raw: raw.to_owned(), reason: reason.to_owned() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_releases_values_keep_their_meaning() {
        assert_eq!(parse("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse("15s"), Ok(Duration::from_secs(15)));
        assert_eq!(parse("3m"), Ok(Duration::from_secs(180)));
        assert_eq!(parse("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse("250"), Ok(Duration::from_millis(250)));
        assert_eq!(parse("0"), Ok(Duration::ZERO));
        assert_eq!(parse(" 007s "), Ok(Duration::from_secs(7)));
        // Too large for humantime's checked arithmetic: saturated, as before.
        assert_eq!(parse("18446744073709551615m"), Ok(Duration::from_secs(u64::MAX)));
        assert_eq!(parse("18446744073709551615h"), Ok(Duration::from_secs(u64::MAX)));
        assert_eq!(parse("99999999999999ms"), Ok(Duration::from_millis(99_999_999_999_999)));
        assert_eq!(parse("18446744073709551615"), Ok(Duration::from_millis(u64::MAX)));
    }

    #[test]
    fn humantime_adds_forms() {
        assert_eq!(parse("1h 30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse("2min"), Ok(Duration::from_secs(120)));
    }

    #[test]
    fn garbage_is_refused() {
        for bad in ["", "fast", "5 parsecs", "+5", "-5s", "18446744073709551616", "s"] {
            let err = parse(bad).expect_err(bad);
            assert!(err.to_string().contains("is not a duration"), "{bad}: {err}");
        }
    }
}
