//! The member-list format Nacos reads (`EnvUtil.analyzeClusterConf`), for
//! both `cluster.conf` and address-server answers: one `host[:port]` per
//! line, `#` comments (whole-line or trailing), several members on a line
//! separated by commas, a missing port meaning 8848. Invalid entries are
//! reported and skipped, never fatal.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv6Addr};

/// Why an entry is not a member address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    /// Nothing but blanks.
    #[error("empty address")]
    Empty,
    /// Blanks inside the entry.
    #[error("spaces inside an address")]
    Spaces,
    /// `[` without `]`.
    #[error("unclosed '[' in an IPv6 address")]
    UnclosedBracket,
    /// Brackets around something else than an IPv6 address.
    #[error("'{0}' is not an IPv6 address")]
    NotIpv6(String),
    /// Something else than `:port` after `]`.
    #[error("unexpected text after ']'")]
    AfterBracket,
    /// An IPv6 address without brackets.
    #[error("IPv6 addresses must be written in brackets, e.g. [::1]:8848")]
    BareIpv6,
    /// A port that is not 1-65535.
    #[error("'{0}' is not a port (1-65535)")]
    Port(String),
    /// An empty host.
    #[error("no host")]
    NoHost,
    /// A host name over 253 characters.
    #[error("host name longer than 253 characters")]
    HostTooLong,
    /// Not a DNS name or IP address.
    #[error("'{0}' is not a host name or IP address")]
    Host(String),
    /// All-numeric labels that are no IPv4 address (e.g. `10.0.0.256`).
    #[error("'{0}' is not a valid IPv4 address")]
    Ipv4(String),
}

/// Port assumed for a member listed without one (Nacos's main port).
pub const DEFAULT_MEMBER_PORT: u16 = 8848;

/// A line (or comma-separated entry) that is not a member address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidEntry {
    /// 1-based line number in the source.
    pub line: usize,
    /// The entry as written (trimmed).
    pub text: String,
    /// Why it was refused.
    pub reason: AddressError,
}

/// The result of parsing a member list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParsedMemberList {
    /// Valid members, `host:port`, sorted, without duplicates.
    pub members: Vec<String>,
    /// Entries that were skipped.
    pub invalid: Vec<InvalidEntry>,
}

/// Parses a member list (`cluster.conf` or an address-server body): one
/// `host[:port]` per line; blank lines and `#` comments ignored; commas
/// separate several members on one line; whitespace trimmed; port 8848 when
/// absent; duplicates removed; result sorted. Invalid entries are reported in
/// [`ParsedMemberList::invalid`] and otherwise ignored.
pub fn parse_member_list(text: &str) -> ParsedMemberList {
    let mut members = BTreeSet::new();
    let mut invalid = Vec::new();
    for (index, raw_line) in text.lines().enumerate() {
        let line = match raw_line.find('#') {
            Some(i) => &raw_line[..i],
            None => raw_line,
        };
        for entry in line.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            match parse_member_address(entry) {
                Ok(member) => {
                    members.insert(member);
                }
                Err(reason) => invalid.push(InvalidEntry { line: index + 1, text: entry.to_string(), reason }),
            }
        }
    }
    ParsedMemberList { members: members.into_iter().collect(), invalid }
}

/// Normalises one member entry to `host:port`.
///
/// Accepted: a DNS name or IPv4 address with an optional port, or a
/// bracketed IPv6 address (`[::1]:8848`). A Nacos-style `?raft_port=…`
/// suffix is dropped (Roster derives every port from the main port). The
/// port must be 1–65535.
pub fn parse_member_address(entry: &str) -> Result<String, AddressError> {
    let entry = entry.trim();
    let entry = match entry.split_once('?') {
        Some((address, _)) => address.trim_end(),
        None => entry,
    };
    if entry.is_empty() {
        return Err(AddressError::Empty);
    }
    if entry.chars().any(char::is_whitespace) {
        return Err(AddressError::Spaces);
    }
    let (host, port) = if let Some(after) = entry.strip_prefix('[') {
        let Some(end) = after.find(']') else {
            return Err(AddressError::UnclosedBracket);
        };
        let ip = &after[..end];
        if ip.parse::<Ipv6Addr>().is_err() {
            return Err(AddressError::NotIpv6(ip.to_owned()));
        }
        let port = match &after[end + 1..] {
            "" => None,
            rest => match rest.strip_prefix(':') {
                Some(p) => Some(p),
                None => return Err(AddressError::AfterBracket),
            },
        };
        (format!("[{ip}]"), port)
    } else {
        if entry.matches(':').count() > 1 {
            return Err(AddressError::BareIpv6);
        }
        let (host, port) = match entry.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (entry, None),
        };
        validate_host(host)?;
        (host.to_string(), port)
    };
    let port = match port {
        None => DEFAULT_MEMBER_PORT,
        Some(p) => match p.parse::<u16>() {
            Ok(0) | Err(_) => return Err(AddressError::Port(p.to_owned())),
            Ok(p) => p,
        },
    };
    Ok(format!("{host}:{port}"))
}

/// A DNS name (RFC 1123 labels; `_` tolerated as some tools generate it) or
/// an IPv4 address.
fn validate_host(host: &str) -> Result<(), AddressError> {
    if host.is_empty() {
        return Err(AddressError::NoHost);
    }
    if host.parse::<IpAddr>().is_ok() {
        return Ok(());
    }
    if host.len() > 253 {
        return Err(AddressError::HostTooLong);
    }
    let name = host.strip_suffix('.').unwrap_or(host);
    let labels_ok = name.split('.').all(|label| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    });
    if !labels_ok {
        return Err(AddressError::Host(host.to_owned()));
    }
    // All-numeric dotted names that are not IPv4 (e.g. 10.0.0.256) are typos.
    if name.split('.').all(|l| l.chars().all(|c| c.is_ascii_digit())) {
        return Err(AddressError::Ipv4(host.to_owned()));
    }
    Ok(())
}

/// `members` plus `local`, sorted and without duplicates.
pub fn with_local(members: &[String], local: &str) -> Vec<String> {
    let mut all: BTreeSet<String> = members.iter().cloned().collect();
    all.insert(local.to_string());
    all.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(text: &str) -> Vec<String> {
        parse_member_list(text).members
    }

    #[test]
    fn lines_comments_blanks_and_default_port() {
        let text = "# the cluster\n\n  10.0.0.2:8848  \n10.0.0.1\n\t\ndemo-0.demo-headless.ns.svc:8848 # pod 0\n   # indented comment\n";
        assert_eq!(members(text), vec!["10.0.0.1:8848", "10.0.0.2:8848", "demo-0.demo-headless.ns.svc:8848"]);
        assert!(parse_member_list(text).invalid.is_empty());
    }

    #[test]
    fn duplicates_removed_and_sorted() {
        let text = "10.0.0.3:8848\n10.0.0.1:8848\n10.0.0.3:8848\n10.0.0.1\n10.0.0.2:8858";
        assert_eq!(members(text), vec!["10.0.0.1:8848", "10.0.0.2:8858", "10.0.0.3:8848"]);
    }

    #[test]
    fn commas_crlf_and_nacos_raft_port_suffix() {
        let text = "10.0.0.1:8848,10.0.0.2:8848 , 10.0.0.3\r\n10.0.0.4:8848?raft_port=8807\r\n";
        assert_eq!(members(text), vec!["10.0.0.1:8848", "10.0.0.2:8848", "10.0.0.3:8848", "10.0.0.4:8848"]);
    }

    #[test]
    fn ipv6_in_brackets() {
        assert_eq!(members("[::1]:8848\n[fe80::2]"), vec!["[::1]:8848", "[fe80::2]:8848"]);
        let parsed = parse_member_list("::1:8848\n[::1:8848\n[nothex]:1\n[::1]x");
        assert!(parsed.members.is_empty());
        assert_eq!(parsed.invalid.len(), 4);
    }

    #[test]
    fn invalid_entries_are_reported_not_fatal() {
        let text = "10.0.0.1:8848\nhost:0\nhost:99999\nhost:http\n:8848\nbad host:1\n-bad-:1\n10.0.0.256:1\na..b:1\n10.0.0.2:8848";
        let parsed = parse_member_list(text);
        assert_eq!(parsed.members, vec!["10.0.0.1:8848", "10.0.0.2:8848"]);
        let lines: Vec<usize> = parsed.invalid.iter().map(|e| e.line).collect();
        assert_eq!(lines, vec![2, 3, 4, 5, 6, 7, 8, 9]);
        assert_eq!(parsed.invalid[0].text, "host:0");
        assert!(parsed.invalid[0].reason.to_string().contains("port"));
    }

    #[test]
    fn empty_inputs() {
        assert_eq!(parse_member_list(""), ParsedMemberList::default());
        assert_eq!(parse_member_list("\n# only comments\n  \n,,\n"), ParsedMemberList::default());
    }

    #[test]
    fn single_addresses() {
        assert_eq!(parse_member_address(" localhost "), Ok("localhost:8848".into()));
        assert_eq!(parse_member_address("a_b.svc:1"), Ok("a_b.svc:1".into()));
        assert_eq!(parse_member_address("host.:9"), Ok("host.:9".into()));
        assert_eq!(parse_member_address("1.2.3.4:65535"), Ok("1.2.3.4:65535".into()));
        assert!(parse_member_address("").is_err());
        assert!(parse_member_address("h:1:2").is_err());
        assert!(parse_member_address(&format!("{}:1", "a".repeat(64))).is_err());
    }

    #[test]
    fn local_member_is_always_included() {
        let list = vec!["10.0.0.2:8848".to_string(), "10.0.0.3:8848".to_string()];
        assert_eq!(with_local(&list, "10.0.0.1:8848"), vec!["10.0.0.1:8848", "10.0.0.2:8848", "10.0.0.3:8848"]);
        assert_eq!(with_local(&list, "10.0.0.2:8848"), list);
        assert_eq!(with_local(&[], "10.0.0.1:8848"), vec!["10.0.0.1:8848"]);
    }
}
