//! `roster watch SERVICE`: subscribes over gRPC with the Nacos 2 protocol
//! and prints every push as it arrives, until Ctrl-C (or `--count` pushes).
//!
//! The handshake is a Nacos 2 client's: `ServerCheckRequest` (unary) for a
//! connection id, `ConnectionSetupRequest` as the first message of the
//! bi-stream, a `HealthCheckRequest` once the member knows the connection,
//! then `SubscribeServiceRequest`. The member pushes the current view of a
//! new subscription at once, then every change, as
//! `NotifySubscriberRequest`s on the stream; each is acknowledged, as are
//! its `ClientDetectionRequest` probes. The token (when one is given) goes
//! in every request's `accessToken` header.

use std::collections::HashMap;
use std::io::Write;
use std::time::Duration;

use roster_proto::nacos::bi_request_stream_client::BiRequestStreamClient;
use roster_proto::nacos::request_client::RequestClient;
use roster_proto::nacos::{Metadata, Payload};
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;
use tonic::transport::Channel;

use super::ServiceRef;
use crate::error::{Error, Result};
use crate::output::{cell, yaml, Format};

/// How often, and how many times, the health check is tried while the
/// member has not read the connection's setup yet.
const SETUP_POLL: Duration = Duration::from_millis(50);
const SETUP_TRIES: u32 = 100;

/// A Nacos gRPC connection to one member, as far as `watch` needs one.
struct Connection {
    unary: RequestClient<Channel>,
    target: String,
    token: Option<String>,
}

impl Connection {
    fn payload(&self, type_name: &str, mut body: Value) -> Payload {
        let mut headers = HashMap::new();
        if let Some(t) = &self.token {
            headers.insert("accessToken".to_owned(), t.clone());
        }
        if let Value::Object(map) = &mut body {
            map.insert("headers".into(), json!(headers));
        }
        Payload {
            metadata: Some(Metadata { r#type: type_name.into(), client_ip: String::new(), headers }),
            body: Some(prost_types::Any { type_url: String::new(), value: body.to_string().into_bytes() }),
        }
    }

    /// A unary request; its answer's type and JSON body.
    async fn call(&self, type_name: &str, body: Value) -> Result<(String, Value)> {
        let payload = self.payload(type_name, body);
        let answer = self.unary.clone().request(payload).await.map_err(|status| grpc_error(&self.target, &status))?;
        open(answer.get_ref())
    }
}

/// The type name and JSON body of a payload.
fn open(p: &Payload) -> Result<(String, Value)> {
    let t = p.metadata.as_ref().map(|m| m.r#type.clone()).unwrap_or_default();
    let bytes = p.body.as_ref().map_or(&b"{}"[..], |b| b.value.as_slice());
    let body = serde_json::from_slice(bytes).unwrap_or(Value::Null);
    Ok((t, body))
}

fn grpc_error(target: &str, status: &tonic::Status) -> Error {
    match status.code() {
        tonic::Code::Unavailable | tonic::Code::DeadlineExceeded => {
            Error::Unreachable { target: target.to_owned(), detail: status.message().to_owned() }
        }
        tonic::Code::Unauthenticated | tonic::Code::PermissionDenied => {
            Error::AuthRefused { target: target.to_owned(), message: status.message().to_owned() }
        }
        _ => Error::Server { target: target.to_owned(), status: 500, message: format!("{status}") },
    }
}

/// A refusal in a Nacos answer body (`resultCode` not 200).
fn refused(target: &str, what: &str, answer: &Value) -> Option<Error> {
    if answer["resultCode"].as_i64() == Some(200) {
        return None;
    }
    let message = format!("{what}: {}", answer["message"].as_str().unwrap_or("refused"));
    let code = answer["errorCode"].as_i64().unwrap_or(500);
    Some(if code == 403 {
        Error::AuthRefused { target: target.to_owned(), message }
    } else {
        Error::Server { target: target.to_owned(), status: u16::try_from(code).unwrap_or(500), message }
    })
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
    let channel = Channel::from_shared(format!("http://{target}"))
        .map_err(|e| Error::bad_input(format!("gRPC address {target}: {e}")))?
        .connect_timeout(args.timeout)
        .connect()
        .await
        .map_err(|e| Error::Unreachable { target: target.clone(), detail: innermost(&e) })?;
    let conn = Connection { unary: RequestClient::new(channel.clone()), target: target.clone(), token: args.token };
    let (t, check) = conn.call("ServerCheckRequest", json!({"module": "internal"})).await?;
    if t != "ServerCheckResponse" {
        return Err(Error::Server {
            target,
            status: 500,
            message: format!("ServerCheckRequest answered {t}: {check}"),
        });
    }

    let (to_server, rx) = mpsc::channel::<Payload>(16);
    let setup = json!({
        "clientVersion": concat!("roster-cli/", env!("CARGO_PKG_VERSION")), "tenant": args.service.namespace,
        "module": "internal", "labels": {"module": "naming", "source": "sdk"},
    });
    to_server.send(conn.payload("ConnectionSetupRequest", setup)).await.map_err(|_| closed(&target))?;
    let mut inbound = BiRequestStreamClient::new(channel)
        .request_bi_stream(ReceiverStream::new(rx))
        .await
        .map_err(|status| grpc_error(&target, &status))?
        .into_inner();

    // The member registers the connection once it has read the setup.
    let mut tries = 0;
    loop {
        let (_, health) = conn.call("HealthCheckRequest", json!({"module": "internal"})).await?;
        match refused(&target, "HealthCheckRequest", &health) {
            None => break,
            Some(_) if tries < SETUP_TRIES && health["errorCode"].as_i64() == Some(301) => {
                tries += 1;
                tokio::time::sleep(SETUP_POLL).await;
            }
            Some(e) => return Err(e),
        }
    }

    let s = &args.service;
    let subscribe = json!({
        "namespace": s.namespace, "groupName": s.group, "serviceName": s.name,
        "subscribe": true, "clusters": args.clusters.join(","), "module": "naming",
    });
    let (_, answer) = conn.call("SubscribeServiceRequest", subscribe).await?;
    if let Some(e) = refused(&target, "SubscribeServiceRequest", &answer) {
        return Err(e);
    }

    let mut pushes = 0u64;
    loop {
        if args.count.is_some_and(|n| pushes >= n) {
            return Ok(());
        }
        let message = tokio::select! {
            m = inbound.next() => m,
            _ = tokio::signal::ctrl_c() => return Ok(()),
        };
        let message = match message {
            Some(Ok(m)) => m,
            Some(Err(status)) => return Err(grpc_error(&target, &status)),
            None => return Err(closed(&target)),
        };
        let (t, body) = open(&message)?;
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
        if let Some(kind) = t.strip_suffix("Request") {
            let ack = json!({"resultCode": 200, "errorCode": 0, "success": true, "requestId": body["requestId"]});
            if to_server.send(conn.payload(&format!("{kind}Response"), ack)).await.is_err() {
                return Err(closed(&target));
            }
        }
    }
}

fn closed(target: &str) -> Error {
    Error::Unreachable { target: target.to_owned(), detail: "the member closed the connection".into() }
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
    fn refusals_in_answers_keep_their_code() {
        let ok = json!({"resultCode": 200});
        assert!(refused("m", "x", &ok).is_none());
        let forbidden = json!({"resultCode": 500, "errorCode": 403, "message": "authorization failed!"});
        assert!(matches!(refused("m", "x", &forbidden), Some(Error::AuthRefused { .. })));
        let bad = json!({"resultCode": 500, "errorCode": 400, "message": "bad"});
        assert!(matches!(refused("m", "x", &bad), Some(Error::Server { status: 400, .. })));
    }
}
