//! Structured logs with `tracing`. The level comes from `RUST_LOG`
//! (default `info`), the format from `--log-format`.

use clap::ValueEnum;
use tracing_subscriber::EnvFilter;

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Installs the global subscriber; a second call is a no-op.
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// Longest text a client or peer sent that goes into one log field.
pub const MAX_LOGGED_CHARS: usize = 128;

/// `text` as it may be logged: at most [`MAX_LOGGED_CHARS`] characters,
/// with the length of what was cut. Whatever a client sends (a user name,
/// a header, a path) is logged through this, so that one request cannot
/// write megabytes to the log.
pub fn clip(text: &str) -> std::borrow::Cow<'_, str> {
    match text.char_indices().nth(MAX_LOGGED_CHARS) {
        None => std::borrow::Cow::Borrowed(text),
        Some((cut, _)) => std::borrow::Cow::Owned(format!("{}… ({} bytes)", &text[..cut], text.len())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_client_text_is_clipped_in_logs() {
        assert_eq!(clip("short"), "short");
        let exact = "é".repeat(MAX_LOGGED_CHARS);
        assert_eq!(clip(&exact), exact.as_str());
        let long = format!("{}{}", "x".repeat(MAX_LOGGED_CHARS), "y".repeat(1024 * 1024));
        let clipped = clip(&long);
        assert_eq!(clipped, format!("{}… ({} bytes)", "x".repeat(MAX_LOGGED_CHARS), long.len()));
        assert!(clipped.len() < 200);
    }
}
