//! A Nacos 2.x gRPC client written for load: the `Payload` envelope with a
//! JSON body, `ServerCheckRequest`, `ConnectionSetupRequest` on the
//! bi-stream, unary requests, and answers to the server's requests
//! (`NotifySubscriberRequest` pushes, `ClientDetectionRequest` probes).
//!
//! One [`NacosClient`] is one HTTP/2 connection, hence one connection-based
//! client on the server: its ephemeral instances live while it is held.
//! It is much lighter than `nacos-sdk` (no global runtime, no caches), so a
//! single process can hold a thousand of them.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use roster_proto::nacos::bi_request_stream_client::BiRequestStreamClient;
use roster_proto::nacos::request_client::RequestClient;
use roster_proto::nacos::{Metadata, Payload};
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;
use tonic::transport::Channel;

/// Largest message accepted from the server (a query of a big service).
const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;
/// How long one request may take before it counts as failed.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// A push received on a connection's stream.
#[derive(Debug)]
pub struct Push {
    /// When it arrived (taken before the ack is sent).
    pub at: Instant,
    /// Which client (its index, as given to [`NacosClient::connect`]) got it.
    pub client: usize,
    /// `serviceName` of the push.
    pub service: String,
    /// The `ip:port` of every host in the pushed view.
    pub hosts: Vec<String>,
}

/// One client connection.
#[derive(Debug)]
pub struct NacosClient {
    unary: RequestClient<Channel>,
    /// Held so the stream stays open; dropping it closes the connection.
    _to_server: mpsc::Sender<Payload>,
    /// The connection id the server assigned.
    pub connection_id: String,
    reader: tokio::task::JoinHandle<()>,
    keepalive: tokio::task::JoinHandle<()>,
    next_id: AtomicU64,
}

/// How often an idle connection proves it is alive, as the Nacos SDKs do
/// (`HealthCheckRequest` every 5 s): servers drop a connection that stays
/// silent, and with it every instance it holds.
const KEEPALIVE: Duration = Duration::from_secs(5);

impl Drop for NacosClient {
    fn drop(&mut self) {
        self.reader.abort();
        self.keepalive.abort();
    }
}

/// Builds a payload of `type_name` with a JSON body.
pub fn payload(type_name: &str, body: &Value) -> Payload {
    Payload {
        metadata: Some(Metadata { r#type: type_name.into(), client_ip: "127.0.0.1".into(), headers: HashMap::new() }),
        body: Some(prost_types::Any { type_url: String::new(), value: serde_json::to_vec(body).unwrap_or_default() }),
    }
}

/// The type name and JSON body of a payload.
pub fn open(p: &Payload) -> Result<(String, Value)> {
    let t = p.metadata.as_ref().map(|m| m.r#type.clone()).unwrap_or_default();
    let bytes = p.body.as_ref().map(|b| b.value.as_slice()).unwrap_or(b"{}");
    let v = serde_json::from_slice(bytes).with_context(|| format!("{t} body is not JSON"))?;
    Ok((t, v))
}

impl NacosClient {
    /// Connects to the client gRPC port `grpc`, checks the server, sets the
    /// connection up on the bi-stream and waits until the server knows it.
    /// Pushes are sent to `pushes` (tagged with `index`) when given; every
    /// server request is acknowledged either way.
    pub async fn connect(grpc: SocketAddr, index: usize, pushes: Option<mpsc::UnboundedSender<Push>>) -> Result<Self> {
        let channel = Channel::from_shared(format!("http://{grpc}"))?
            .connect_timeout(Duration::from_secs(10))
            .tcp_nodelay(true)
            .connect()
            .await
            .with_context(|| format!("connecting to {grpc}"))?;
        let mut unary = RequestClient::new(channel.clone())
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES);
        let check = tokio::time::timeout(
            REQUEST_TIMEOUT,
            unary.request(payload("ServerCheckRequest", &json!({"headers": {}, "module": "internal"}))),
        )
        .await
        .context("ServerCheckRequest timed out")??;
        let (t, v) = open(check.get_ref())?;
        if t != "ServerCheckResponse" {
            bail!("ServerCheckRequest answered with {t}: {v}");
        }
        let connection_id = v["connectionId"].as_str().ok_or_else(|| anyhow!("no connectionId in {v}"))?.to_owned();

        let (tx, rx) = mpsc::channel::<Payload>(64);
        let setup = json!({
            "clientVersion": "roster-bench", "tenant": "", "headers": {}, "module": "internal",
            "labels": {"module": "naming", "source": "sdk"},
        });
        tx.send(payload("ConnectionSetupRequest", &setup)).await.map_err(|_| anyhow!("stream closed"))?;
        let mut inbound = BiRequestStreamClient::new(channel)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .request_bi_stream(ReceiverStream::new(rx))
            .await
            .context("opening the bi-stream")?
            .into_inner();
        let replies = tx.clone();
        let reader = tokio::spawn(async move {
            while let Some(Ok(msg)) = inbound.next().await {
                let at = Instant::now();
                let Ok((t, v)) = open(&msg) else { continue };
                if t == "NotifySubscriberRequest" {
                    if let Some(pushes) = &pushes {
                        let info = &v["serviceInfo"];
                        let hosts = info["hosts"]
                            .as_array()
                            .map(|hs| {
                                hs.iter().map(|h| format!("{}:{}", h["ip"].as_str().unwrap_or(""), h["port"])).collect()
                            })
                            .unwrap_or_default();
                        let service = v["serviceName"].as_str().unwrap_or("").to_owned();
                        let _ = pushes.send(Push { at, client: index, service, hosts });
                    }
                }
                // Every server request (push, detection probe) is acknowledged.
                if let Some(kind) = t.strip_suffix("Request") {
                    if t == "SetupAckRequest" {
                        continue;
                    }
                    let ack = json!({"resultCode": 200, "errorCode": 0, "success": true, "requestId": v["requestId"]});
                    if replies.send(payload(&format!("{kind}Response"), &ack)).await.is_err() {
                        return;
                    }
                }
            }
        });
        let keepalive = {
            let mut unary = unary.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(KEEPALIVE);
                tick.tick().await;
                loop {
                    tick.tick().await;
                    let check = payload(
                        "HealthCheckRequest",
                        &json!({"headers": {}, "module": "internal", "requestId": "keepalive"}),
                    );
                    // A failed check shows in the next real request; nothing to do here.
                    let _ = tokio::time::timeout(REQUEST_TIMEOUT, unary.request(check)).await;
                }
            })
        };
        let client =
            NacosClient { unary, _to_server: tx, connection_id, reader, keepalive, next_id: AtomicU64::new(1) };
        // The server registers the connection when it reads the setup
        // message; a health check answered 200 proves it has.
        client.call("HealthCheckRequest", json!({"headers": {}, "module": "internal"})).await?;
        Ok(client)
    }

    /// Sends a unary request and returns its JSON body; anything but
    /// `resultCode` 200 is an error.
    pub async fn call(&self, type_name: &str, mut body: Value) -> Result<Value> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        if let Value::Object(map) = &mut body {
            map.insert("requestId".into(), id.to_string().into());
            map.entry("headers").or_insert_with(|| json!({}));
        }
        let mut unary = self.unary.clone();
        let answer = tokio::time::timeout(REQUEST_TIMEOUT, unary.request(payload(type_name, &body)))
            .await
            .map_err(|_| anyhow!("{type_name} timed out after {REQUEST_TIMEOUT:?}"))?
            .with_context(|| format!("{type_name} failed"))?;
        let (t, v) = open(answer.get_ref())?;
        if v["resultCode"].as_i64() != Some(200) {
            bail!("{type_name} answered {t}: {v}");
        }
        Ok(v)
    }
}

/// An instance body as the Nacos clients send it.
pub fn instance(ip: &str, port: u16, ephemeral: bool) -> Value {
    let metadata = if ephemeral { json!({}) } else { json!({"preserved.health.checker": "NONE"}) };
    json!({
        "ip": ip, "port": port, "weight": 1.0, "healthy": true, "enabled": true,
        "ephemeral": ephemeral, "clusterName": "DEFAULT", "metadata": metadata,
    })
}

/// `InstanceRequest` registering one ephemeral instance in `service`.
pub fn register(service: &str, ip: &str, port: u16) -> Value {
    json!({
        "namespace": "public", "serviceName": service, "groupName": "DEFAULT_GROUP",
        "type": "registerInstance", "module": "naming", "instance": instance(ip, port, true),
    })
}

/// `PersistentInstanceRequest` registering one persistent instance (its
/// server health check is off: the address is made up).
pub fn register_persistent(service: &str, ip: &str, port: u16) -> Value {
    json!({
        "namespace": "public", "serviceName": service, "groupName": "DEFAULT_GROUP",
        "type": "registerInstance", "module": "naming", "instance": instance(ip, port, false),
    })
}

/// `BatchInstanceRequest` publishing `instances` in `service` (replacing
/// what this connection published there before).
pub fn batch_register(service: &str, instances: Vec<Value>) -> Value {
    json!({
        "namespace": "public", "serviceName": service, "groupName": "DEFAULT_GROUP",
        "type": "batchRegisterInstance", "module": "naming", "instances": instances,
    })
}

/// `ServiceQueryRequest` for every instance of `service`.
pub fn query(service: &str) -> Value {
    json!({
        "namespace": "public", "serviceName": service, "groupName": "DEFAULT_GROUP",
        "cluster": "", "healthyOnly": false, "udpPort": 0, "module": "naming",
    })
}

/// `SubscribeServiceRequest` for `service`.
pub fn subscribe(service: &str) -> Value {
    json!({
        "namespace": "public", "serviceName": service, "groupName": "DEFAULT_GROUP",
        "subscribe": true, "clusters": "", "module": "naming",
    })
}

/// Number of hosts in a query or subscribe answer.
pub fn host_count(answer: &Value) -> usize {
    answer["serviceInfo"]["hosts"].as_array().map_or(0, Vec::len)
}

/// A made-up instance address in 127.64.0.0/10, unique for (`client`,
/// `n`): nothing is ever sent to it (ephemeral instances are not checked
/// by the server and persistent ones are registered with checks off), and
/// it stays on loopback even if something were.
pub fn fake_address(client: usize, n: usize) -> (String, u16) {
    let c = client as u32;
    let ip = format!("127.{}.{}.{}", 64 + ((c >> 16) & 0x3f), (c >> 8) & 0xff, c & 0xff);
    let port = 1 + (n % 65_534) as u16;
    (ip, port)
}
