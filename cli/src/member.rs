//! Talking to one member over HTTP: where it is (`--server`), who the user
//! is (`--token`, or a login with `--username`), and the mapping of its
//! answers to [`Error`]s: no answer is [`Error::Unreachable`], 403
//! [`Error::AuthRefused`], any other failure [`Error::Server`] with the
//! member's own message (`caused: ...;` bodies are unwrapped).

use std::io::{BufRead, IsTerminal};
use std::time::Duration;

use reqwest::Method;
use serde_json::Value;

use crate::error::{Error, Result};

/// The default member (the local cluster's first node).
pub const DEFAULT_SERVER: &str = "127.0.0.1:8848";

/// Where a member is: scheme, host and main port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    /// `http` or `https`.
    pub scheme: &'static str,
    /// Host name or IP (IPv6 in brackets).
    pub host: String,
    /// Main HTTP port.
    pub port: u16,
}

impl Address {
    /// Parses `host:port`, `http://host:port` or `https://host:port` (a
    /// missing port is 8848).
    pub fn parse(text: &str) -> Result<Address> {
        let text = text.trim().trim_end_matches('/');
        let (scheme, rest) = match text.split_once("://") {
            Some(("http", rest)) => ("http", rest),
            Some(("https", rest)) => ("https", rest),
            Some((other, _)) => {
                return Err(Error::bad_input(format!("--server: unknown scheme '{other}' (http or https)")))
            }
            None => ("http", text),
        };
        if rest.is_empty() || rest.contains('/') {
            return Err(Error::bad_input(format!("--server: expected host:port, got '{text}'")));
        }
        let (host, port) = match rest.rsplit_once(':') {
            Some((host, port)) if !host.ends_with(':') => {
                let port = port
                    .parse::<u16>()
                    .ok()
                    .filter(|p| *p > 0)
                    .ok_or_else(|| Error::bad_input(format!("--server: '{port}' is not a port (1..65535)")))?;
                (host, port)
            }
            _ => (rest, 8848),
        };
        if host.is_empty() {
            return Err(Error::bad_input(format!("--server: no host in '{text}'")));
        }
        Ok(Address { scheme, host: host.to_owned(), port })
    }

    /// `host:port`.
    pub fn authority(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// The URL of `path` on this member.
    pub fn url(&self, path: &str) -> String {
        format!("{}://{}{path}", self.scheme, self.authority())
    }
}

/// How the user proves who they are.
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    /// A token from an earlier login.
    pub token: Option<String>,
    /// A user name to log in with.
    pub username: Option<String>,
    /// Its password, from `--password`/`ROSTER_PASSWORD`; read from stdin
    /// when a user name is given without it.
    pub password: Option<String>,
}

/// A member and the token to send it.
#[derive(Debug, Clone)]
pub struct Member {
    /// Where it is.
    pub address: Address,
    http: reqwest::Client,
    token: Option<String>,
}

impl Member {
    /// A client of the member at `address`; `ca_file` is the PEM CA that
    /// signed an https member's certificate; `timeout` bounds each request.
    pub fn new(address: Address, ca_file: Option<&std::path::Path>, timeout: Duration) -> Result<Member> {
        let mut builder = reqwest::Client::builder().timeout(timeout).connect_timeout(timeout);
        if let Some(path) = ca_file {
            let pem =
                std::fs::read(path).map_err(|e| Error::bad_input(format!("--ca-file {}: {e}", path.display())))?;
            let cert = reqwest::Certificate::from_pem(&pem)
                .map_err(|e| Error::bad_input(format!("--ca-file {}: not a PEM certificate: {e}", path.display())))?;
            builder = builder.add_root_certificate(cert);
        }
        let http = builder.build().map_err(|e| Error::bad_input(format!("HTTP client: {e}")))?;
        Ok(Member { address, http, token: None })
    }

    /// The token requests carry, if any.
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// Uses `credentials`: a given token as is, else a login when a user
    /// name is given (the password from the credentials, else stdin).
    pub async fn authenticate(&mut self, credentials: Credentials) -> Result<()> {
        if let Some(token) = credentials.token.filter(|t| !t.trim().is_empty()) {
            self.token = Some(token.trim().to_owned());
            return Ok(());
        }
        let Some(username) = credentials.username else {
            return Ok(());
        };
        let password = match credentials.password {
            Some(p) => p,
            None => read_password()?,
        };
        let answer = self
            .send(Method::POST, "/nacos/v1/auth/login", &[("username", &username), ("password", &password)])
            .await?;
        let token = answer.get("accessToken").and_then(Value::as_str).ok_or_else(|| Error::Server {
            target: self.address.authority(),
            status: 200,
            message: "the login answer has no accessToken".into(),
        })?;
        self.token = Some(token.to_owned());
        Ok(())
    }

    /// `GET path` with `params`; the answer as JSON.
    pub async fn get(&self, path: &str, params: &[(&str, &str)]) -> Result<Value> {
        self.send(Method::GET, path, params).await
    }

    /// Sends `params` (query string for `GET`, else a form body) with the
    /// token; the answer as JSON, or as a JSON string when it is text.
    pub async fn send(&self, method: Method, path: &str, params: &[(&str, &str)]) -> Result<Value> {
        let mut params: Vec<(&str, &str)> = params.to_vec();
        if let Some(token) = &self.token {
            params.push(("accessToken", token));
        }
        let request = self.http.request(method.clone(), self.address.url(path));
        let request = if method == Method::GET { request.query(&params) } else { request.form(&params) };
        let target = self.address.authority();
        let answer = request.send().await.map_err(|e| unreachable(&target, &e))?;
        let status = answer.status();
        let body = answer.text().await.map_err(|e| unreachable(&target, &e))?;
        if status.is_success() {
            return Ok(serde_json::from_str(&body).unwrap_or(Value::String(body)));
        }
        let message = reason(&body);
        if status == reqwest::StatusCode::FORBIDDEN {
            return Err(Error::AuthRefused { target, message });
        }
        if status == reqwest::StatusCode::BAD_REQUEST {
            return Err(Error::BadInput(format!("{target} refused the input: {message}")));
        }
        Err(Error::Server { target, status: status.as_u16(), message })
    }
}

/// The error of a request that got no (complete) answer, in one line.
fn unreachable(target: &str, e: &reqwest::Error) -> Error {
    let detail = if e.is_timeout() {
        "no answer in time".to_owned()
    } else if e.is_connect() {
        // The innermost cause says what the OS said (connection refused, ...).
        let mut source: Option<&dyn std::error::Error> = Some(e);
        let mut last = e.to_string();
        while let Some(s) = source {
            last = s.to_string();
            source = s.source();
        }
        last
    } else {
        e.to_string()
    };
    Error::Unreachable { target: target.to_owned(), detail }
}

/// The message of a v1 error body (`caused: <message>;`), or the body.
pub fn reason(body: &str) -> String {
    let text = body.trim();
    let text = text.strip_prefix("caused: ").and_then(|t| t.strip_suffix(';')).unwrap_or(text);
    let line = text.lines().next().unwrap_or("").trim();
    if line.is_empty() {
        "(no message)".to_owned()
    } else {
        line.to_owned()
    }
}

/// The password of a login: prompted without echo on a terminal, else the
/// first line of stdin (for scripts: `printf '%s\n' "$PW" | roster ...`).
fn read_password() -> Result<String> {
    let password = if std::io::stdin().is_terminal() {
        rpassword::prompt_password("Password: ").map_err(|e| Error::bad_input(format!("reading the password: {e}")))?
    } else {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| Error::bad_input(format!("reading the password from stdin: {e}")))?;
        line.trim_end_matches(['\n', '\r']).to_owned()
    };
    if password.is_empty() {
        return Err(Error::bad_input(
            "--username needs a password: set ROSTER_PASSWORD or write it on stdin".to_owned(),
        ));
    }
    Ok(password)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_take_a_scheme_and_default_the_port() {
        let a = Address::parse("127.0.0.1:8858").expect("parses");
        assert_eq!((a.scheme, a.host.as_str(), a.port), ("http", "127.0.0.1", 8858));
        assert_eq!(Address::parse("https://demo.ns.svc").expect("parses").url("/x"), "https://demo.ns.svc:8848/x");
        assert_eq!(Address::parse("http://[::1]:9000/").expect("parses").authority(), "[::1]:9000");
        for bad in ["", "ftp://x:1", "x:0", "x:70000", "x:port", "x:1/path", ":80"] {
            assert!(Address::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn v1_error_bodies_are_unwrapped() {
        assert_eq!(reason("caused: token invalid!;"), "token invalid!");
        assert_eq!(reason("plain\nsecond"), "plain");
        assert_eq!(reason(""), "(no message)");
    }
}
