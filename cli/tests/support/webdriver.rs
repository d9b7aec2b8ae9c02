//! A small W3C WebDriver client over reqwest, enough to drive Debian's
//! chromium through chromedriver: sessions, navigation, elements, clicks,
//! keys, scripts and screenshots. (The WebDriver crates pull in native TLS
//! or a second HTTP stack; this needs neither.)

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use base64::Engine;
use serde_json::{json, Value};

/// Where Debian installs them (`apt-get install chromium chromium-driver`).
pub const CHROMIUM: &str = "/usr/bin/chromium";
/// Debian's chromedriver.
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// The key W3C WebDriver names an element reference by.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A headless chromium session, closed (and chromedriver killed) on drop.
pub struct Browser {
    http: reqwest::Client,
    session: String,
    driver: Child,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts chromedriver on a free loopback port and opens a headless
    /// session with a fresh profile and nothing that calls home.
    pub async fn start() -> Result<Browser> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let driver = Command::new(CHROMEDRIVER)
            .args([format!("--port={port}"), "--allowed-ips=127.0.0.1".into()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting chromedriver")?;
        let profile = tempfile::tempdir()?;
        let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build()?;
        let mut browser = Browser { http, session: format!("http://127.0.0.1:{port}"), driver, _profile: profile };
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let ready = browser.http.get(format!("{}/status", browser.session)).send().await;
            if let Ok(r) = ready {
                let v: Value = r.json().await.unwrap_or_default();
                if v["value"]["ready"] == true {
                    break;
                }
            }
            if Instant::now() > deadline {
                bail!("chromedriver did not get ready within 15 s");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--window-size=1400,900",
            &format!("--user-data-dir={}", browser._profile.path().display()),
        ];
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": CHROMIUM, "args": args},
        }}});
        let created = browser.http.post(format!("{}/session", browser.session)).json(&caps).send().await?;
        let created: Value = created.json().await?;
        let id = created["value"]["sessionId"].as_str().ok_or_else(|| anyhow!("no session: {created}"))?;
        browser.session = format!("{}/session/{id}", browser.session);
        Ok(browser)
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Result<Value> {
        let mut request = self.http.request(method, format!("{}{path}", self.session));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let answer: Value = request.send().await?.json().await?;
        if let Some(error) = answer["value"]["error"].as_str() {
            bail!("WebDriver {path}: {error}: {}", answer["value"]["message"]);
        }
        Ok(answer["value"].clone())
    }

    /// Opens `url`.
    pub async fn goto(&self, url: &str) -> Result<()> {
        self.call(reqwest::Method::POST, "/url", Some(json!({"url": url}))).await.map(|_| ())
    }

    /// The first element matching `css`.
    pub async fn find(&self, css: &str) -> Result<String> {
        let found =
            self.call(reqwest::Method::POST, "/element", Some(json!({"using": "css selector", "value": css}))).await?;
        found[ELEMENT].as_str().map(str::to_owned).ok_or_else(|| anyhow!("no element reference for {css}"))
    }

    /// Clicks the first element matching `css`.
    pub async fn click(&self, css: &str) -> Result<()> {
        let element = self.find(css).await?;
        self.call(reqwest::Method::POST, &format!("/element/{element}/click"), Some(json!({}))).await.map(|_| ())
    }

    /// Replaces the value of the first input matching `css` with `text`.
    pub async fn type_into(&self, css: &str, text: &str) -> Result<()> {
        let element = self.find(css).await?;
        self.call(reqwest::Method::POST, &format!("/element/{element}/clear"), Some(json!({}))).await?;
        self.call(reqwest::Method::POST, &format!("/element/{element}/value"), Some(json!({"text": text})))
            .await
            .map(|_| ())
    }

    /// Runs `script` (a function body) with `args`; its return value.
    pub async fn script(&self, script: &str, args: Value) -> Result<Value> {
        self.call(reqwest::Method::POST, "/execute/sync", Some(json!({"script": script, "args": args}))).await
    }

    /// The text of the first element matching `css`, `None` when there is none.
    pub async fn text(&self, css: &str) -> Result<Option<String>> {
        let v = self
            .script("const e = document.querySelector(arguments[0]); return e ? e.textContent : null;", json!([css]))
            .await?;
        Ok(v.as_str().map(str::to_owned))
    }

    /// Whether the first element matching `css` is shown (exists, not hidden).
    pub async fn visible(&self, css: &str) -> Result<bool> {
        let v = self
            .script(
                "const e = document.querySelector(arguments[0]); return !!e && !e.closest('[hidden]');",
                json!([css]),
            )
            .await?;
        Ok(v == true)
    }

    /// Polls the text of `css` until `want` accepts it, failing after `limit`
    /// with the last text seen.
    pub async fn wait_text(&self, css: &str, limit: Duration, want: impl Fn(&str) -> bool) -> Result<String> {
        let deadline = Instant::now() + limit;
        let mut last = None;
        loop {
            if let Some(text) = self.text(css).await? {
                if want(&text) {
                    return Ok(text);
                }
                last = Some(text);
            }
            if Instant::now() > deadline {
                bail!("{css} never showed what was expected within {limit:?}; last: {last:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Saves a PNG of the window to `path`.
    pub async fn screenshot(&self, path: &Path) -> Result<()> {
        let data = self.call(reqwest::Method::GET, "/screenshot", None).await?;
        let png = base64::engine::general_purpose::STANDARD.decode(data.as_str().unwrap_or_default())?;
        if !png.starts_with(b"\x89PNG") {
            bail!("the screenshot is not a PNG");
        }
        std::fs::write(path, png).with_context(|| format!("writing {}", path.display()))
    }

    /// Ends the session and chromedriver.
    pub async fn quit(self) {
        let _ = self.call(reqwest::Method::DELETE, "", None).await;
        // Drop kills chromedriver (the session is gone: its DELETE is a no-op).
    }
}

impl Drop for Browser {
    /// A test that fails half-way still closes chromium: the session is
    /// deleted over a plain socket (no runtime needed here), then
    /// chromedriver is killed.
    fn drop(&mut self) {
        use std::io::{Read, Write};
        if let Some((address, path)) = self.session.strip_prefix("http://").and_then(|s| s.split_once('/')) {
            if let Ok(mut socket) = std::net::TcpStream::connect(address) {
                let _ = socket.set_read_timeout(Some(Duration::from_secs(10)));
                let request = format!("DELETE /{path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
                if socket.write_all(request.as_bytes()).is_ok() {
                    let _ = socket.read_to_end(&mut Vec::new());
                }
            }
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
