//! `roster watch SERVICE`: subscribes over gRPC with the Nacos 2 protocol
//! and prints every push as it arrives, until Ctrl-C (or `--count` pushes).
//!
//! The connection is `roster_proto::client`'s (a Nacos 2 client's
//! handshake: server check, setup on the bi-stream, a health check once
//! the member knows the connection), then `SubscribeServiceRequest`. The
//! member pushes the current view of a new subscription at once, then
//! every change, as `NotifySubscriberRequest`s on the stream; each is
//! acknowledged, as are its `ClientDetectionRequest` probes. The token
//! (when one is given) goes in every request's `accessToken` header.

use std::io::Write;
use std::time::Duration;

use roster_proto::client::{self, ClientError, Setup};
use serde_json::{json, Value};
use tokio_stream::StreamExt;
use tonic::transport::Channel;

use super::ServiceRef;
use crate::error::{Error, Result};
use crate::output::{cell, yaml, Format};

/// How often the connection proves it is alive while it waits for pushes,
/// as the SDKs do.
const KEEPALIVE: Duration = Duration::from_secs(5);

/// The CLI's error for a failure of the Nacos connection to `target`.
fn connection_error(target: &str, e: ClientError) -> Error {
    let target = target.to_owned();
    match e {
        ClientError::Rpc { status, .. } => match status.code() {
            tonic::Code::Unavailable | tonic::Code::DeadlineExceeded => {
                Error::Unreachable { target, detail: status.message().to_owned() }
            }
            tonic::Code::Unauthenticated | tonic::Code::PermissionDenied => {
                Error::AuthRefused { target, message: status.message().to_owned() }
            }
            _ => Error::Server { target, status: 500, message: status.to_string() },
        },
        ClientError::Timeout { .. } => Error::Unreachable { target, detail: e.to_string() },
        ClientError::Closed => Error::Unreachable { target, detail: "the member closed the connection".into() },
        ClientError::Refused { code: 403, .. } => Error::AuthRefused { target, message: e.to_string() },
        ClientError::Refused { code, .. } => {
            Error::Server { target, status: u16::try_from(code).unwrap_or(500), message: e.to_string() }
        }
        ClientError::Body { .. } | ClientError::Unexpected { .. } => {
            Error::Server { target, status: 500, message: e.to_string() }
        }
    }
}

/// What `watch` needs to know.
#[derive(Debug, Clone)]
pub struct WatchArgs {
    /// `host:grpcPort`.
    pub grpc: String,
    /// The token to send, if any.
    pub token: Option<String>,
    /// The service.
    pub service: ServiceRef,
    /// Only these clusters (empty: all).
    pub clusters: Vec<String>,
    /// Stop after this many pushes.
    pub count: Option<u64>,
    /// How long to wait for the connection.
    pub timeout: Duration,
}

/// `roster watch`.
pub async fn watch(args: WatchArgs, format: Format, out: &mut dyn Write) -> Result<()> {
    let target = args.grpc.clone();
    let failed = |e| connection_error(&target, e);
    let channel = Channel::from_shared(format!("http://{target}"))
        .map_err(|e| Error::bad_input(format!("gRPC address {target}: {e}")))?
        .connect_timeout(args.timeout)
        .connect()
        .await
        .map_err(|e| Error::Unreachable { target: target.clone(), detail: innermost(&e) })?;
    let setup = Setup {
        client_version: concat!("roster-cli/", env!("CARGO_PKG_VERSION")).into(),
        tenant: args.service.namespace.clone(),
        headers: args.token.iter().map(|t| ("accessToken".to_owned(), t.clone())).collect(),
        request_timeout: args.timeout,
        ..Setup::default()
    };
    let (conn, from_server) = client::connect(channel, setup).await.map_err(failed)?;

    let s = &args.service;
    let subscribe = json!({
        "namespace": s.namespace, "groupName": s.group, "serviceName": s.name,
        "subscribe": true, "clusters": args.clusters.join(","), "module": "naming",
    });
    conn.call("SubscribeServiceRequest", subscribe).await.map_err(failed)?;
    let keepalive = conn.keep_alive(KEEPALIVE);
    let followed = follow(&conn, from_server, &args, format, out).await;
    keepalive.abort();
    followed
}

/// Prints and acknowledges the pushes on the stream until `--count` of
/// them, Ctrl-C, or the end of the stream.
async fn follow(
    conn: &client::Connection,
    mut from_server: client::ServerRequests,
    args: &WatchArgs,
    format: Format,
    out: &mut dyn Write,
) -> Result<()> {
    let target = args.grpc.clone();
    let failed = |e| connection_error(&target, e);
    let mut pushes = 0u64;
    loop {
        if args.count.is_some_and(|n| pushes >= n) {
            return Ok(());
        }
        let message = tokio::select! {
            m = from_server.next() => m,
            _ = tokio::signal::ctrl_c() => return Ok(()),
        };
        let message = match message {
            Some(Ok(m)) => m,
            Some(Err(status)) => return Err(failed(ClientError::Rpc { request: "requestBiStream".into(), status })),
            None => return Err(failed(ClientError::Closed)),
        };
        let (t, body) = client::open(&message).map_err(failed)?;
        if t == "NotifySubscriberRequest" {
            pushes += 1;
            print_push(&body["serviceInfo"], format, out)?;
        }
        if t == "ConnectResetRequest" {
            return Err(Error::Server {
                target,
                status: 503,
                message: "the member asked this connection to move to another member (it is draining)".into(),
            });
        }
        // Every server request is acknowledged (pushes, detection probes).
        conn.answer(&t, &body).await.map_err(failed)?;
    }
}

fn innermost(e: &dyn std::error::Error) -> String {
    let mut last = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        last = s.to_string();
        source = s.source();
    }
    last
}

/// One push: a line (`group@@service: n hosts: ip:port healthy w=1, ...`),
/// a JSON line, or a YAML document.
fn print_push(info: &Value, format: Format, out: &mut dyn Write) -> Result<()> {
    match format {
        Format::Json => writeln!(out, "{info}")?,
        Format::Yaml => write!(out, "---\n{}", yaml(info))?,
        Format::Table => writeln!(out, "{}", push_line(info))?,
    }
    out.flush()?;
    Ok(())
}

/// The one-line form of a pushed view.
pub fn push_line(info: &Value) -> String {
    let hosts = info["hosts"].as_array().cloned().unwrap_or_default();
    let mut shown: Vec<String> = hosts
        .iter()
        .map(|h| {
            let health = if h["healthy"].as_bool() == Some(true) { "healthy" } else { "unhealthy" };
            format!("{}:{} {health} w={}", cell(&h["ip"]), cell(&h["port"]), cell(&h["weight"]))
        })
        .collect();
    shown.sort();
    let name = match (info["groupName"].as_str(), info["name"].as_str()) {
        (Some(g), Some(n)) if !n.contains("@@") => format!("{g}@@{n}"),
        (_, Some(n)) => n.to_owned(),
        _ => "?".to_owned(),
    };
    let list = if shown.is_empty() { "-".to_owned() } else { shown.join(", ") };
    format!("{name}: {} hosts: {list}", hosts.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pushes_print_as_one_sorted_line() {
        let info = json!({"name": "orders", "groupName": "DEFAULT_GROUP", "hosts": [
            {"ip": "10.0.0.2", "port": 80, "healthy": false, "weight": 1.0},
            {"ip": "10.0.0.1", "port": 80, "healthy": true, "weight": 2.5},
        ]});
        assert_eq!(
            push_line(&info),
            "DEFAULT_GROUP@@orders: 2 hosts: 10.0.0.1:80 healthy w=2.5, 10.0.0.2:80 unhealthy w=1.0"
        );
        assert_eq!(push_line(&json!({"name": "g@@a", "hosts": []})), "g@@a: 0 hosts: -");
    }

    #[test]
    fn connection_failures_keep_their_kind() {
        let refused = |code| ClientError::Refused { request: "x".into(), code, message: "m".into() };
        assert!(matches!(connection_error("m", refused(403)), Error::AuthRefused { .. }));
        assert!(matches!(connection_error("m", refused(400)), Error::Server { status: 400, .. }));
        let rpc = |code| ClientError::Rpc { request: "x".into(), status: tonic::Status::new(code, "m") };
        assert!(matches!(connection_error("m", rpc(tonic::Code::Unavailable)), Error::Unreachable { .. }));
        assert!(matches!(connection_error("m", rpc(tonic::Code::Unauthenticated)), Error::AuthRefused { .. }));
        assert!(matches!(connection_error("m", ClientError::Closed), Error::Unreachable { .. }));
    }
}
