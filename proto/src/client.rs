//! A Nacos 2.x client connection spoken by hand, for the tools that need
//! one without an SDK: `roster watch` (the CLI) and the benchmark's load
//! clients. The server side is `roster-node`'s `api::grpc`.
//!
//! - [`payload`] and [`open`]: the `Payload` envelope with a JSON body.
//! - [`connect`]: the handshake of a Nacos 2 client. `ServerCheckRequest`
//!   (unary) answers the connection id; `ConnectionSetupRequest` is the
//!   first message of the bi-stream; the server registers the connection
//!   once it has read that message, which a `HealthCheckRequest` answered
//!   200 proves (it is retried while the server answers 301, "connection
//!   unregistered", for at most [`SETUP_WAIT`]).
//! - [`Connection::call`]: one unary request, refused unless its answer's
//!   `resultCode` is 200.
//! - [`ack`]: the answer to a server request on the stream (pushes,
//!   detection probes), which a client must send for each.
//!
//! Every request carries the [`Setup`]'s headers twice, as the SDKs send
//! them: in the envelope's metadata and in the body's `headers` (servers
//! read an `accessToken` from either).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;
use tonic::Streaming;

use crate::nacos::bi_request_stream_client::BiRequestStreamClient;
use crate::nacos::request_client::RequestClient;
use crate::nacos::{Metadata, Payload};

/// How long [`connect`] waits for the server to register the connection.
pub const SETUP_WAIT: Duration = Duration::from_secs(5);
/// How often the health check is tried meanwhile.
const SETUP_POLL: Duration = Duration::from_millis(50);
/// Nacos's error code for a request on a connection the server does not
/// know (yet).
const UNREGISTERED: i64 = 301;
/// Messages the client may queue on the stream before sending waits.
const STREAM_QUEUE: usize = 64;

/// Why a request or the handshake failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The gRPC call itself failed (unreachable, refused, reset).
    #[error("{request}: {status}")]
    Rpc {
        /// The request type.
        request: String,
        /// What gRPC reported.
        status: tonic::Status,
    },
    /// No answer within the [`Setup`]'s request timeout.
    #[error("{request} timed out after {after:?}")]
    Timeout {
        /// The request type.
        request: String,
        /// The timeout.
        after: Duration,
    },
    /// A body that is not JSON.
    #[error("{type_name} body is not JSON: {source}")]
    Body {
        /// The payload's type.
        type_name: String,
        /// The parse error.
        source: serde_json::Error,
    },
    /// An answer of another type than the request's.
    #[error("{request} answered {answered}: {body}")]
    Unexpected {
        /// The request type.
        request: String,
        /// The answer's type.
        answered: String,
        /// The answer's body.
        body: Value,
    },
    /// An answer whose `resultCode` is not 200.
    #[error("{request} refused ({code}): {message}")]
    Refused {
        /// The request type.
        request: String,
        /// The answer's `errorCode` (403: not allowed; 301: unknown connection).
        code: i64,
        /// The answer's `message`.
        message: String,
    },
    /// The server ended the stream.
    #[error("the server closed the connection's stream")]
    Closed,
}

/// A payload of `type_name` with `body` as its JSON; the string entries of
/// the body's `headers` object are also the envelope's metadata headers.
pub fn payload(type_name: &str, body: &Value) -> Payload {
    let headers: HashMap<String, String> = body["headers"]
        .as_object()
        .map(|h| h.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned()))).collect())
        .unwrap_or_default();
    Payload {
        metadata: Some(Metadata { r#type: type_name.into(), client_ip: String::new(), headers }),
        body: Some(prost_types::Any { type_url: String::new(), value: body.to_string().into_bytes() }),
    }
}

/// The type name and JSON body of a payload (`{}` when it has no body).
pub fn open(p: &Payload) -> Result<(String, Value), ClientError> {
    let type_name = p.metadata.as_ref().map(|m| m.r#type.clone()).unwrap_or_default();
    let bytes = p.body.as_ref().map_or(&b"{}"[..], |b| b.value.as_slice());
    match serde_json::from_slice(bytes) {
        Ok(body) => Ok((type_name, body)),
        Err(source) => Err(ClientError::Body { type_name, source }),
    }
}

/// The answer to the server request `type_name` (`FooRequest` →
/// `FooResponse`, success, its `requestId`); `None` for anything that is
/// not a request.
pub fn ack(type_name: &str, body: &Value) -> Option<Payload> {
    let kind = type_name.strip_suffix("Request")?;
    let answer = json!({"resultCode": 200, "errorCode": 0, "success": true, "requestId": body["requestId"]});
    Some(payload(&format!("{kind}Response"), &answer))
}

/// The refusal in an answer whose `resultCode` is not 200.
fn refusal(request: &str, answer: &Value) -> Option<ClientError> {
    if answer["resultCode"].as_i64() == Some(200) {
        return None;
    }
    Some(ClientError::Refused {
        request: request.to_owned(),
        code: answer["errorCode"].as_i64().unwrap_or(500),
        message: answer["message"].as_str().unwrap_or("refused").to_owned(),
    })
}

/// How a connection presents itself.
#[derive(Debug, Clone)]
pub struct Setup {
    /// `clientVersion` of the setup (the SDKs send `Nacos-Java-Client:v2...`).
    pub client_version: String,
    /// The namespace the client works in (`tenant`).
    pub tenant: String,
    /// Headers of every request the connection sends (e.g. `accessToken`).
    pub headers: HashMap<String, String>,
    /// Largest message sent or accepted (tonic's default is 4 MiB).
    pub max_message_bytes: usize,
    /// How long one unary request may take.
    pub request_timeout: Duration,
}

impl Default for Setup {
    fn default() -> Self {
        Setup {
            client_version: String::from("roster-proto"),
            tenant: String::new(),
            headers: HashMap::new(),
            max_message_bytes: 4 * 1024 * 1024,
            request_timeout: Duration::from_secs(30),
        }
    }
}

/// A connection the server has registered: its unary side and the
/// client's half of the stream (the server's half is returned beside it by
/// [`connect`], for the caller to read where it likes). Clones share the
/// connection.
#[derive(Debug, Clone)]
pub struct Connection {
    unary: Unary,
    /// The client's half of the stream: answers to server requests.
    pub to_server: mpsc::Sender<Payload>,
    /// The id the server assigned.
    pub connection_id: String,
}

/// The server's half of a connection's stream: its requests (pushes,
/// detection probes), each to be answered (see [`ack`]).
pub type ServerRequests = Streaming<Payload>;

/// The unary side: the `Request` service, with the setup's headers and
/// timeout and the next `requestId` (shared by every clone).
#[derive(Debug, Clone)]
struct Unary {
    client: RequestClient<Channel>,
    headers: HashMap<String, String>,
    timeout: Duration,
    next_id: Arc<AtomicU64>,
}

impl Unary {
    /// Sends the request (the headers and a fresh `requestId` added to the
    /// body) and returns the answer's type and body.
    async fn send(&self, type_name: &str, mut body: Value) -> Result<(String, Value), ClientError> {
        if let Value::Object(map) = &mut body {
            let id = self.next_id.fetch_add(1, Ordering::Relaxed);
            map.insert("requestId".into(), id.to_string().into());
            map.insert("headers".into(), json!(self.headers));
        }
        let mut client = self.client.clone();
        let answer = tokio::time::timeout(self.timeout, client.request(payload(type_name, &body)))
            .await
            .map_err(|_| ClientError::Timeout { request: type_name.into(), after: self.timeout })?
            .map_err(|status| ClientError::Rpc { request: type_name.into(), status })?;
        open(answer.get_ref())
    }

    /// [`Unary::send`], refused unless the answer's `resultCode` is 200.
    async fn call(&self, type_name: &str, body: Value) -> Result<Value, ClientError> {
        let (_, answer) = self.send(type_name, body).await?;
        match refusal(type_name, &answer) {
            None => Ok(answer),
            Some(refused) => Err(refused),
        }
    }
}

/// Sets a connection up on `channel` and returns once the server knows it,
/// with the server's half of its stream.
pub async fn connect(channel: Channel, setup: Setup) -> Result<(Connection, ServerRequests), ClientError> {
    let unary = Unary {
        client: RequestClient::new(channel.clone())
            .max_decoding_message_size(setup.max_message_bytes)
            .max_encoding_message_size(setup.max_message_bytes),
        headers: setup.headers.clone(),
        timeout: setup.request_timeout,
        next_id: Arc::new(AtomicU64::new(1)),
    };
    let (answered, check) = unary.send("ServerCheckRequest", json!({"module": "internal"})).await?;
    if answered != "ServerCheckResponse" {
        return Err(ClientError::Unexpected { request: "ServerCheckRequest".into(), answered, body: check });
    }
    let connection_id = check["connectionId"].as_str().unwrap_or_default().to_owned();

    let (to_server, rx) = mpsc::channel(STREAM_QUEUE);
    let hello = json!({
        "clientVersion": setup.client_version, "tenant": setup.tenant, "headers": setup.headers,
        "module": "internal", "labels": {"module": "naming", "source": "sdk"},
    });
    to_server.send(payload("ConnectionSetupRequest", &hello)).await.map_err(|_| ClientError::Closed)?;
    let from_server = BiRequestStreamClient::new(channel)
        .max_decoding_message_size(setup.max_message_bytes)
        .max_encoding_message_size(setup.max_message_bytes)
        .request_bi_stream(ReceiverStream::new(rx))
        .await
        .map_err(|status| ClientError::Rpc { request: "requestBiStream".into(), status })?
        .into_inner();
    let connection = Connection { unary, to_server, connection_id };

    let deadline = tokio::time::Instant::now() + SETUP_WAIT;
    loop {
        match connection.call("HealthCheckRequest", json!({"module": "internal"})).await {
            Err(ClientError::Refused { code: UNREGISTERED, .. }) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(SETUP_POLL).await;
            }
            Err(e) => return Err(e),
            Ok(_) => return Ok((connection, from_server)),
        }
    }
}

impl Connection {
    /// Sends the unary request `type_name` with `body` (the setup's headers
    /// and a fresh `requestId` added) and returns the answer's JSON body;
    /// an answer whose `resultCode` is not 200 is [`ClientError::Refused`].
    pub async fn call(&self, type_name: &str, body: Value) -> Result<Value, ClientError> {
        self.unary.call(type_name, body).await
    }

    /// Sends a `HealthCheckRequest` every `every` until the returned task is
    /// aborted, as the SDKs do (every 5 s): a server drops a connection
    /// that stays silent, and with it every instance the connection holds.
    /// A failed check is not reported here; the next real request shows it.
    pub fn keep_alive(&self, every: Duration) -> tokio::task::JoinHandle<()> {
        let unary = self.unary.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tick.tick().await;
                let _ = unary.call("HealthCheckRequest", json!({"module": "internal"})).await;
            }
        })
    }

    /// Answers the server request `type_name` read from the stream (see
    /// [`ack`]); nothing for anything else.
    pub async fn answer(&self, type_name: &str, body: &Value) -> Result<(), ClientError> {
        match ack(type_name, body) {
            Some(reply) => self.to_server.send(reply).await.map_err(|_| ClientError::Closed),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_payload_carries_the_body_headers_in_its_metadata_and_opens_again() {
        let body = json!({"headers": {"accessToken": "t", "n": 1}, "module": "naming"});
        let p = payload("SubscribeServiceRequest", &body);
        let metadata = p.metadata.as_ref().expect("metadata");
        assert_eq!(metadata.headers, HashMap::from([("accessToken".to_owned(), "t".to_owned())]), "strings only");
        assert_eq!(open(&p).expect("JSON"), ("SubscribeServiceRequest".to_owned(), body));
        let broken =
            Payload { metadata: None, body: Some(prost_types::Any { type_url: String::new(), value: b"{".to_vec() }) };
        assert!(matches!(open(&broken), Err(ClientError::Body { .. })));
    }

    #[test]
    fn server_requests_are_answered_and_nothing_else() {
        let reply = ack("NotifySubscriberRequest", &json!({"requestId": "7"})).expect("a request");
        let (type_name, body) = open(&reply).expect("JSON");
        assert_eq!(type_name, "NotifySubscriberResponse");
        assert_eq!((body["resultCode"].as_i64(), body["requestId"].as_str()), (Some(200), Some("7")));
        assert!(ack("ServerCheckResponse", &json!({})).is_none());
    }

    #[test]
    fn refusals_keep_their_code() {
        assert!(refusal("x", &json!({"resultCode": 200})).is_none());
        let forbidden = json!({"resultCode": 500, "errorCode": 403, "message": "authorization failed!"});
        assert!(matches!(refusal("x", &forbidden), Some(ClientError::Refused { code: 403, .. })));
        assert!(matches!(refusal("x", &json!({})), Some(ClientError::Refused { code: 500, .. })));
    }
}
