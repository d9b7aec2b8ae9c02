//! The Nacos gRPC envelope spoken by hand, for the tests that drive the
//! client port without an SDK.

use std::collections::HashMap;

use roster_node::naming::{Selection, ServiceKey};
use roster_node::RunningNode;
use roster_proto::nacos::bi_request_stream_client::BiRequestStreamClient;
use roster_proto::nacos::request_client::RequestClient;
use roster_proto::nacos::{Metadata, Payload};
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;
use tonic::transport::Channel;

/// A request of `type_name` with `body` as its JSON, from 127.0.0.1.
pub fn payload(type_name: &str, body: &Value) -> Payload {
    Payload {
        metadata: Some(Metadata { r#type: type_name.into(), client_ip: "127.0.0.1".into(), headers: HashMap::new() }),
        body: Some(prost_types::Any { type_url: String::new(), value: serde_json::to_vec(body).expect("json") }),
    }
}

/// The type and JSON body of an answer.
pub fn body(p: &Payload) -> (String, Value) {
    let t = p.metadata.as_ref().map(|m| m.r#type.clone()).unwrap_or_default();
    let v = serde_json::from_slice(&p.body.as_ref().expect("body").value).expect("json body");
    (t, v)
}

/// The body of an `InstanceRequest` registering `ip:port` in `service`
/// (public namespace, default group and cluster).
pub fn register(service: &str, ip: &str, port: i64) -> Value {
    json!({
        "headers": {}, "namespace": "public", "serviceName": service, "groupName": "DEFAULT_GROUP",
        "type": "registerInstance", "module": "naming",
        "instance": {"ip": ip, "port": port, "weight": 1.0, "healthy": true, "enabled": true, "ephemeral": true, "clusterName": "DEFAULT", "metadata": {}}
    })
}

/// How many instances `node` holds for `service` (public, default group).
pub fn hosts(node: &RunningNode, service: &str) -> usize {
    node.store().query(&ServiceKey::new("public", "DEFAULT_GROUP", service), &Selection::default()).hosts.len()
}

/// A hand-made client: a channel, its connection id and its stream.
pub struct RawClient {
    /// The unary `Request` service on the client's channel.
    pub unary: RequestClient<Channel>,
    /// The client's half of the stream; taking and dropping it ends the
    /// stream while the channel stays open.
    pub to_server: Option<mpsc::Sender<Payload>>,
    /// The id the server assigned (its `ServerCheckResponse`).
    pub connection_id: String,
    /// Whether the client answers server requests (pushes, probes).
    pub answers: bool,
    /// Every server request received on the stream: its type and body.
    pub received: std::sync::Arc<parking_lot::Mutex<Vec<(String, Value)>>>,
    reader: tokio::task::JoinHandle<()>,
}

impl Drop for RawClient {
    /// Dropping the client drops its stream and channel: the connection closes.
    fn drop(&mut self) {
        self.reader.abort();
    }
}

impl RawClient {
    /// Connects, checks the server and sets the connection up as version
    /// `raw-test` without an app name. When `answers` is false the client
    /// never answers server requests.
    pub async fn connect(node: &RunningNode, answers: bool) -> RawClient {
        Self::connect_with(node, answers, "raw-test", json!({"module": "naming", "source": "sdk"})).await
    }

    /// [`RawClient::connect`] with the `clientVersion` and `labels` of the
    /// `ConnectionSetupRequest` given (an SDK names its app in the
    /// `AppName` label).
    pub async fn connect_with(node: &RunningNode, answers: bool, version: &str, labels: Value) -> RawClient {
        let channel =
            Channel::from_shared(format!("http://{}", node.grpc_addr)).expect("uri").connect().await.expect("connect");
        let mut unary = RequestClient::new(channel.clone());
        let check = unary
            .request(payload("ServerCheckRequest", &json!({"headers": {}, "module": "internal"})))
            .await
            .expect("check");
        let (t, v) = body(check.get_ref());
        assert_eq!(t, "ServerCheckResponse");
        let connection_id = v["connectionId"].as_str().expect("connectionId").to_owned();

        let (tx, rx) = mpsc::channel::<Payload>(16);
        tx.send(payload(
            "ConnectionSetupRequest",
            &json!({"clientVersion": version, "tenant": "", "labels": labels, "headers": {}, "module": "internal"}),
        ))
        .await
        .expect("setup");
        let mut inbound = BiRequestStreamClient::new(channel)
            .request_bi_stream(ReceiverStream::new(rx))
            .await
            .expect("stream")
            .into_inner();
        let replies = tx.clone();
        let received = std::sync::Arc::new(parking_lot::Mutex::new(Vec::new()));
        let log = received.clone();
        let reader = tokio::spawn(async move {
            while let Some(Ok(msg)) = inbound.next().await {
                let (t, v) = body(&msg);
                log.lock().push((t.clone(), v.clone()));
                if !answers {
                    continue;
                }
                let response = t.replace("Request", "Response");
                let reply = json!({"resultCode": 200, "errorCode": 0, "success": true, "requestId": v["requestId"]});
                if replies.send(payload(&response, &reply)).await.is_err() {
                    return;
                }
            }
        });
        RawClient { unary, to_server: Some(tx), connection_id, answers, received, reader }
    }

    /// Connects as [`RawClient::connect`] does, but returns what refused
    /// the connection (the server check or the stream) instead of failing.
    pub async fn connect_unchecked(node: &RunningNode) -> Result<RawClient, String> {
        let channel =
            Channel::from_shared(format!("http://{}", node.grpc_addr)).map_err(|e| e.to_string())?.connect().await;
        let mut unary = RequestClient::new(channel.map_err(|e| e.to_string())?);
        let check = unary
            .request(payload("ServerCheckRequest", &json!({"headers": {}, "module": "internal"})))
            .await
            .map_err(|e| e.to_string())?;
        let (t, v) = body(check.get_ref());
        if t != "ServerCheckResponse" {
            return Err(format!("{t}: {v}"));
        }
        Ok(Self::connect(node, true).await)
    }

    /// A unary request; its answer's type and JSON body.
    pub async fn call(&mut self, type_name: &str, body_json: Value) -> (String, Value) {
        let answer = self.unary.request(payload(type_name, &body_json)).await.expect("unary call");
        body(answer.get_ref())
    }

    /// A unary request as given, however malformed.
    pub async fn call_raw(&mut self, p: Payload) -> (String, Value) {
        let answer = self.unary.request(p).await.expect("unary call");
        body(answer.get_ref())
    }
}
