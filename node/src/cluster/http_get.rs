//! A minimal HTTP/1.1 `GET` for the address-server lookup.
//!
//! The node depends on no HTTP client (hyper's client lives in the tree only
//! behind axum and tonic), and a member list is a few hundred bytes of text,
//! so a plain request over a `TcpStream` is enough: `http://host[:port]/path`,
//! `Connection: close`, a status line, and a body framed by
//! `Content-Length`, `Transfer-Encoding: chunked` or the end of the stream.
//! No TLS, no redirects. Responses are capped in size.
//!
//! Parsing ([`try_parse`]) is separate from I/O so it is unit-tested.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::error::{Error, Result};

/// Largest response accepted (headers and body).
pub(crate) const MAX_RESPONSE_BYTES: usize = 1024 * 1024;

/// An `http://` URL split for a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HttpUrl {
    /// Host as written (name, IPv4, or bracketed IPv6).
    pub host: String,
    /// Port (80 when absent).
    pub port: u16,
    /// Path and query, starting with `/`.
    pub path: String,
}

impl HttpUrl {
    /// Parses `http://host[:port][/path][?query]`.
    pub fn parse(url: &str) -> Result<HttpUrl> {
        let bad = |why: &str| Error::Config(format!("address server URL '{url}': {why}"));
        let rest = url.trim();
        let rest = match rest.get(..7) {
            Some(scheme) if scheme.eq_ignore_ascii_case("http://") => &rest[7..],
            _ if rest.to_ascii_lowercase().starts_with("https://") => {
                return Err(bad("https is not supported, use http://"))
            }
            _ => return Err(bad("must start with http://")),
        };
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) if rest[i..].starts_with('/') => (&rest[..i], rest[i..].to_string()),
            Some(i) => (&rest[..i], format!("/{}", &rest[i..])),
            None => (rest, "/".to_string()),
        };
        let path = match path.find('#') {
            Some(i) => path[..i].to_string(),
            None => path,
        };
        if authority.contains('@') {
            return Err(bad("credentials in the URL are not supported"));
        }
        let (host, port) = if let Some(after) = authority.strip_prefix('[') {
            let end = after.find(']').ok_or_else(|| bad("unclosed '[' in the host"))?;
            let host = &authority[..end + 2];
            match &after[end + 1..] {
                "" => (host, None),
                p => (host, Some(p.strip_prefix(':').ok_or_else(|| bad("junk after ']'"))?)),
            }
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        if host.is_empty() {
            return Err(bad("no host"));
        }
        let port = match port {
            None => 80,
            Some(p) => p.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(|| bad("bad port"))?,
        };
        if path.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad("the path must not contain spaces or control characters"));
        }
        Ok(HttpUrl { host: host.to_string(), port, path })
    }

    /// `host:port` for connecting and for the `Host` header.
    fn authority(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// The host without IPv6 brackets, for `TcpStream::connect`.
    fn connect_host(&self) -> &str {
        self.host.trim_start_matches('[').trim_end_matches(']')
    }
}

/// A parsed response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// Body, de-chunked.
    pub body: Vec<u8>,
}

/// Sends `GET url` and reads the response, all within `timeout`.
pub(crate) async fn get(url: &HttpUrl, timeout: Duration) -> Result<HttpResponse> {
    match tokio::time::timeout(timeout, get_inner(url)).await {
        Ok(result) => result,
        Err(_) => {
            Err(Error::Internal(format!("GET http://{}{} timed out after {timeout:?}", url.authority(), url.path)))
        }
    }
}

async fn get_inner(url: &HttpUrl) -> Result<HttpResponse> {
    let mut stream = TcpStream::connect((url.connect_host(), url.port)).await?;
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nAccept: text/plain, */*\r\nUser-Agent: roster-node/{}\r\nConnection: close\r\n\r\n",
        url.path,
        url.authority(),
        env!("CARGO_PKG_VERSION"),
    );
    stream.write_all(request.as_bytes()).await?;
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 8192];
    loop {
        let n = stream.read(&mut chunk).await?;
        if n > 0 {
            buf.extend_from_slice(&chunk[..n]);
            if buf.len() > MAX_RESPONSE_BYTES {
                return Err(Error::TooLarge(format!("response larger than {MAX_RESPONSE_BYTES} bytes")));
            }
        }
        if let Some(response) = try_parse(&buf, n == 0)? {
            return Ok(response);
        }
        if n == 0 {
            return Err(Error::Internal("connection closed before a complete response".into()));
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn protocol(msg: impl Into<String>) -> Error {
    Error::Internal(format!("bad HTTP response: {}", msg.into()))
}

/// Parses a response from the bytes read so far: `Ok(None)` when more bytes
/// are needed, `Ok(Some(_))` when complete. `eof` says the peer closed, which
/// completes a body framed by the end of the stream.
pub(crate) fn try_parse(buf: &[u8], eof: bool) -> Result<Option<HttpResponse>> {
    let Some(head_end) = find(buf, b"\r\n\r\n") else {
        return if eof { Err(protocol("incomplete headers")) } else { Ok(None) };
    };
    let head = String::from_utf8_lossy(&buf[..head_end]);
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/1.") {
        return Err(protocol(format!("status line '{status_line}'")));
    }
    let status = parts
        .next()
        .and_then(|s| s.parse::<u16>().ok())
        .filter(|s| (100..=999).contains(s))
        .ok_or_else(|| protocol(format!("status line '{status_line}'")))?;
    let mut content_length = None;
    let mut chunked = false;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            return Err(protocol(format!("header line '{line}'")));
        };
        let value = value.trim();
        if name.trim().eq_ignore_ascii_case("content-length") {
            let n = value.parse::<usize>().map_err(|_| protocol(format!("Content-Length '{value}'")))?;
            content_length = Some(n);
        } else if name.trim().eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.to_ascii_lowercase().split(',').any(|t| t.trim() == "chunked");
        }
    }
    let body = &buf[head_end + 4..];
    if chunked {
        return match dechunk(body)? {
            Some(body) => Ok(Some(HttpResponse { status, body })),
            None if eof => Err(protocol("truncated chunked body")),
            None => Ok(None),
        };
    }
    if status == 204 || status == 304 || (100..200).contains(&status) {
        return Ok(Some(HttpResponse { status, body: Vec::new() }));
    }
    match content_length {
        Some(n) if body.len() >= n => Ok(Some(HttpResponse { status, body: body[..n].to_vec() })),
        Some(_) if eof => Err(protocol("body shorter than Content-Length")),
        Some(_) => Ok(None),
        None if eof => Ok(Some(HttpResponse { status, body: body.to_vec() })),
        None => Ok(None),
    }
}

/// Decodes a chunked body: `Ok(None)` when incomplete.
fn dechunk(mut rest: &[u8]) -> Result<Option<Vec<u8>>> {
    let mut body = Vec::new();
    loop {
        let Some(line_end) = find(rest, b"\r\n") else {
            return Ok(None);
        };
        let line = String::from_utf8_lossy(&rest[..line_end]);
        let size_text = line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16).map_err(|_| protocol(format!("chunk size '{size_text}'")))?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            // Trailers (ignored) end with an empty line.
            return Ok(if rest.starts_with(b"\r\n") || find(rest, b"\r\n\r\n").is_some() { Some(body) } else { None });
        }
        let Some(end) = size.checked_add(2) else {
            return Err(protocol("chunk size overflows"));
        };
        if rest.len() < end {
            return Ok(None);
        }
        if &rest[size..end] != b"\r\n" {
            return Err(protocol("chunk not followed by CRLF"));
        }
        body.extend_from_slice(&rest[..size]);
        rest = &rest[end..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let u = HttpUrl::parse("http://127.0.0.1:8080/v1/clusters/ns/demo/serverlist").expect("url");
        assert_eq!(u, HttpUrl { host: "127.0.0.1".into(), port: 8080, path: "/v1/clusters/ns/demo/serverlist".into() });
        let u = HttpUrl::parse("HTTP://jmenv.tbsite.net").expect("url");
        assert_eq!((u.host.as_str(), u.port, u.path.as_str()), ("jmenv.tbsite.net", 80, "/"));
        let u = HttpUrl::parse("http://h:1?x=1#frag").expect("url");
        assert_eq!(u.path, "/?x=1");
        let u = HttpUrl::parse("http://[::1]:9/list").expect("url");
        assert_eq!((u.host.as_str(), u.connect_host(), u.port), ("[::1]", "::1", 9));
        for bad in [
            "https://h/x",
            "ftp://h",
            "h:80/x",
            "http://",
            "http://h:0/",
            "http://h:x/",
            "http://u:p@h/",
            "http://h/a b",
        ] {
            assert!(HttpUrl::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn content_length_body() {
        let raw = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n\r\nhello";
        assert_eq!(try_parse(&raw[..20], false).expect("parse"), None);
        assert_eq!(try_parse(&raw[..raw.len() - 1], false).expect("parse"), None);
        let r = try_parse(raw, false).expect("parse").expect("complete");
        assert_eq!((r.status, r.body.as_slice()), (200, &b"hello"[..]));
        assert!(try_parse(&raw[..raw.len() - 1], true).is_err());
    }

    #[test]
    fn body_until_eof() {
        let raw = b"HTTP/1.0 404 Not Found\r\nServer: x\r\n\r\nnope";
        assert_eq!(try_parse(raw, false).expect("parse"), None);
        let r = try_parse(raw, true).expect("parse").expect("complete");
        assert_eq!((r.status, r.body.as_slice()), (404, &b"nope"[..]));
    }

    #[test]
    fn chunked_body() {
        let raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\na:1\n\r\n6;ext=1\r\nb:2\nc:\r\n0\r\n\r\n";
        let r = try_parse(raw, false).expect("parse").expect("complete");
        assert_eq!(r.body, b"a:1\nb:2\nc:");
        assert_eq!(try_parse(&raw[..raw.len() - 2], false).expect("parse"), None);
        assert!(try_parse(&raw[..raw.len() - 7], true).is_err());
        let bad = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n";
        assert!(try_parse(bad, false).is_err());
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(try_parse(b"SSH-2.0-OpenSSH\r\n\r\n", false).is_err());
        assert!(try_parse(b"HTTP/1.1 abc\r\n\r\n", false).is_err());
        assert!(try_parse(b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", false).is_err());
        assert!(try_parse(b"HTTP/1.1 200", true).is_err());
    }
}
