//! A Nacos 2.x gRPC client written for load: `roster_proto::client`'s
//! connection (the `Payload` envelope with a JSON body, the handshake,
//! unary requests, the keep-alive) with a reader that answers the server's
//! requests (`NotifySubscriberRequest` pushes, `ClientDetectionRequest`
//! probes) and reports pushes.
//!
//! One [`NacosClient`] is one HTTP/2 connection, hence one connection-based
//! client on the server: its ephemeral instances live while it is held.
//! It is much lighter than `nacos-sdk` (no global runtime, no caches), so a
//! single process can hold a thousand of them.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use roster_proto::client::{self, Connection, Setup};
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio_stream::StreamExt;
use tonic::transport::Channel;

pub use roster_proto::client::{open, payload};

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
    /// Unary requests and the client's half of the stream; dropping it
    /// (and the tasks) closes the connection.
    connection: Connection,
    /// The connection id the server assigned.
    pub connection_id: String,
    reader: tokio::task::JoinHandle<()>,
    keepalive: tokio::task::JoinHandle<()>,
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
        let setup = Setup {
            client_version: "roster-bench".into(),
            max_message_bytes: MAX_MESSAGE_BYTES,
            request_timeout: REQUEST_TIMEOUT,
            ..Setup::default()
        };
        let (connection, mut inbound) =
            client::connect(channel, setup).await.with_context(|| format!("setting a connection up on {grpc}"))?;
        let replies = connection.to_server.clone();
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
                if t == "SetupAckRequest" {
                    continue;
                }
                if let Some(ack) = client::ack(&t, &v) {
                    if replies.send(ack).await.is_err() {
                        return;
                    }
                }
            }
        });
        let keepalive = connection.keep_alive(KEEPALIVE);
        let connection_id = connection.connection_id.clone();
        Ok(NacosClient { connection, connection_id, reader, keepalive })
    }

    /// Sends a unary request and returns its JSON body; anything but
    /// `resultCode` 200 is an error.
    pub async fn call(&self, type_name: &str, body: Value) -> Result<Value> {
        Ok(self.connection.call(type_name, body).await?)
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
