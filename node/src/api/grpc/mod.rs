//! The Nacos 2.x client gRPC API (client port, main + 1000).
//!
//! # Layout
//! - [`payload`]: the `Payload` envelope and JSON bodies.
//! - [`messages`]: request bodies.
//! - [`connection`]: connection ids, registration, server requests.
//! - [`drain`]: moving the connections to other members before stopping.
//! - [`handlers`]: one function per request type.
//! - [`settings`]: connection and push flags, the port offset.
//! - this module: the two tonic services, the stream lifecycle and the
//!   ejector of silent connections.

pub mod connection;
pub mod drain;
pub mod handlers;
pub mod messages;
pub mod payload;
pub mod settings;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use roster_proto::nacos::bi_request_stream_server::{BiRequestStream, BiRequestStreamServer};
use roster_proto::nacos::request_server::{Request, RequestServer};
use roster_proto::nacos::Payload;
use serde_json::json;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Response, Status, Streaming};
use tracing::{debug, info, warn, Instrument};

use self::connection::{ClientInfo, Connection};
pub use self::drain::DrainSettings;
use self::messages::{ConnectionSetupRequest, StreamResponse};
use self::payload::{error_response, ok_response, Envelope};
pub use self::settings::{ConnectionSettings, PushSettings, GRPC_PORT_OFFSET};
use crate::api::ClientState;
use crate::error::Error;
use crate::limits::Limit;
use crate::metrics::GrpcRequestType;
use crate::naming::ClientKind;

/// How long a unary request waits for its connection's stream setup.
const SETUP_WAIT: Duration = Duration::from_secs(3);
/// How long a new stream may take to send its `ConnectionSetupRequest`.
const SETUP_TIMEOUT: Duration = Duration::from_secs(10);
/// Outbound messages queued per connection before senders wait.
const STREAM_BUFFER: usize = 256;

/// Both tonic services, ready to add to a server.
pub fn services(state: Arc<ClientState>) -> (RequestServer<UnaryService>, BiRequestStreamServer<StreamService>) {
    let max = state.max_grpc_message_bytes;
    let unary = RequestServer::new(UnaryService { state: state.clone() })
        .max_decoding_message_size(max)
        .max_encoding_message_size(max);
    let stream = BiRequestStreamServer::new(StreamService { state })
        .max_decoding_message_size(max)
        .max_encoding_message_size(max);
    (unary, stream)
}

/// `/Request/request`: every unary request.
#[derive(Debug, Clone)]
pub struct UnaryService {
    state: Arc<ClientState>,
}

#[tonic::async_trait]
impl Request for UnaryService {
    async fn request(&self, request: tonic::Request<Payload>) -> Result<Response<Payload>, Status> {
        let remote = request.remote_addr();
        Ok(Response::new(unary(&self.state, remote, request.into_inner()).await))
    }
}

async fn unary(state: &ClientState, remote: Option<SocketAddr>, payload: Payload) -> Payload {
    let env = match Envelope::open(payload) {
        Ok(env) => env,
        Err(e) => {
            state.metrics.grpc_request(GrpcRequestType::Unknown, e.label());
            return error_response(&e, None);
        }
    };
    let request_id = env.request_id();
    let request_type = GrpcRequestType::of(&env.type_name);
    if let Some(Err(e)) = remote.map(|addr| crate::limits::rate::check_grpc(&state.client_limits, addr)) {
        state.metrics.grpc_request(request_type, e.label());
        return error_response(&e, request_id.as_deref());
    }
    let result = match env.type_name.as_str() {
        // A draining member takes no new client: it picks another server.
        "ServerCheckRequest" if state.membership.is_draining() => {
            Err(Error::NotReady("this member is draining; connect to another one".into()))
        }
        "ServerCheckRequest" => match remote {
            Some(addr) => Ok(ok_response(
                "ServerCheckResponse",
                request_id.as_deref(),
                json!({ "connectionId": state.connections.id_for(addr), "supportAbilityNegotiation": true }),
            )),
            None => Err(Error::Internal("peer address unknown".into())),
        },
        _ => {
            let conn = match remote {
                Some(addr) => state.connections.wait_registered(addr, SETUP_WAIT).await,
                None => None,
            };
            match conn {
                Some(conn) => {
                    conn.touch();
                    let span = tracing::debug_span!("grpc", r#type = %env.type_name, connection = %conn.id);
                    handlers::handle(state, &conn, &env).instrument(span).await
                }
                None => Err(Error::ConnectionUnregistered),
            }
        }
    };
    match result {
        Ok(answer) => {
            state.metrics.grpc_request(request_type, "ok");
            answer
        }
        Err(e) => {
            debug!(r#type = %env.type_name, error = %e, "request refused");
            state.metrics.grpc_request(request_type, e.label());
            error_response(&e, request_id.as_deref())
        }
    }
}

/// `/BiRequestStream/requestBiStream`: the connection's stream.
#[derive(Debug, Clone)]
pub struct StreamService {
    state: Arc<ClientState>,
}

#[tonic::async_trait]
impl BiRequestStream for StreamService {
    // The generated name follows the proto's lowerCamel method name.
    #[allow(non_camel_case_types)]
    type requestBiStreamStream = ReceiverStream<Result<Payload, Status>>;

    async fn request_bi_stream(
        &self,
        request: tonic::Request<Streaming<Payload>>,
    ) -> Result<Response<Self::requestBiStreamStream>, Status> {
        let remote = request.remote_addr().ok_or_else(|| Status::internal("peer address unknown"))?;
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        let state = self.state.clone();
        let span = tracing::info_span!("connection", remote = %remote);
        tokio::spawn(serve_stream(state, remote, request.into_inner(), tx).instrument(span));
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

/// Runs one connection: setup, then responses to server requests, until the
/// client goes away or the server closes the connection.
async fn serve_stream(
    state: Arc<ClientState>,
    remote: SocketAddr,
    mut inbound: Streaming<Payload>,
    tx: mpsc::Sender<Result<Payload, Status>>,
) {
    let first = match tokio::time::timeout(SETUP_TIMEOUT, inbound.message()).await {
        Ok(Ok(Some(p))) => p,
        Ok(Ok(None)) => return,
        Ok(Err(status)) => {
            refuse_oversized(&state, &tx, &status).await;
            return;
        }
        Err(_) => {
            let _ = tx.send(Err(Status::deadline_exceeded("no ConnectionSetupRequest received"))).await;
            return;
        }
    };
    let setup = Envelope::open(first).and_then(|env| {
        if env.type_name == "ConnectionSetupRequest" {
            Ok((env.parse::<ConnectionSetupRequest>()?, env.client_ip))
        } else {
            Err(Error::BadPayload(format!(
                "the first stream message must be ConnectionSetupRequest, got {}",
                crate::telemetry::clip(&env.type_name)
            )))
        }
    });
    let (setup, client_ip) = match setup {
        Ok(s) => s,
        Err(e) => {
            let _ = tx.send(Err(Status::invalid_argument(e.to_string()))).await;
            return;
        }
    };
    if state.membership.is_draining() {
        let _ = tx.send(Err(Status::unavailable("this member is draining; connect to another one"))).await;
        return;
    }
    let info = ClientInfo {
        version: setup.client_version.unwrap_or_default(),
        tenant: setup.tenant.unwrap_or_default(),
        labels: setup.labels,
        client_ip,
    };
    if let Err(e) = info.check() {
        let _ = tx.send(Err(Status::invalid_argument(e.to_string()))).await;
        return;
    }
    let id = state.connections.id_for(remote);
    let tx_for_errors = tx.clone();
    let conn = Arc::new(Connection::new(id.clone(), remote, info, tx));
    state.store.ensure_client(&id, ClientKind::Connection);
    state.connections.register(conn.clone());
    state.client_limits.grpc_setup.set_up(remote);
    info!(connection = %id, version = %crate::telemetry::clip(&conn.info.version), "connection set up");
    if setup.ability_table.is_some() {
        let ack =
            payload::encode("SetupAckRequest", &json!({ "headers": {}, "abilityTable": {}, "module": "internal" }));
        let _ = conn.send(ack).await;
    }
    loop {
        tokio::select! {
            message = inbound.message() => match message {
                Ok(Some(p)) => {
                    conn.touch();
                    on_stream_message(&conn, p);
                }
                Ok(None) => break,
                Err(status) => {
                    debug!(%status, "stream error");
                    refuse_oversized(&state, &tx_for_errors, &status).await;
                    break;
                }
            },
            _ = conn.closed() => {
                conn.send_status(Status::unavailable("connection closed by the server")).await;
                break;
            }
        }
    }
    close_connection(&state, &id);
}

/// A stream message over `--max-grpc-message-bytes` (tonic's decoder
/// reports `OUT_OF_RANGE`): counted, and the stream ends with
/// `RESOURCE_EXHAUSTED`, as unary calls answer (`limits::size`).
async fn refuse_oversized(state: &ClientState, tx: &mpsc::Sender<Result<Payload, Status>>, status: &Status) {
    if status.code() == tonic::Code::OutOfRange {
        state.client_limits.rejected(Limit::GrpcMessageBytes);
        let _ = tx.send(Err(Status::resource_exhausted(status.message().to_owned()))).await;
    }
}

/// A message on the stream after setup: a response to a server request.
fn on_stream_message(conn: &Connection, payload: Payload) {
    let Ok(env) = Envelope::open(payload.clone()) else { return };
    match env.parse::<StreamResponse>() {
        Ok(StreamResponse { request_id: Some(id), .. }) => {
            if !conn.complete(&id, payload) {
                debug!(request_id = %id, r#type = %env.type_name, "late or unknown response");
            }
        }
        _ => debug!(r#type = %env.type_name, "ignored stream message"),
    }
}

/// Ends a connection and removes everything it owned: its ephemeral
/// instances and its subscriptions. While the node drains, its instances
/// stay for their handover instead ([`drain`]).
pub fn close_connection(state: &ClientState, id: &str) {
    if let Some(conn) = state.connections.unregister(id) {
        conn.close();
        // The TCP connection may stay; it must set up again in time.
        state.client_limits.grpc_setup.torn_down(conn.remote);
    }
    state.subscribers.remove_connection(id);
    if retire_client(state, id) {
        info!(connection = %id, "connection closed; its instances were removed");
    }
}

/// Removes the client of a connection that is gone, unless the node
/// drains: then the client waits for its handover ([`drain`]). Returns
/// whether it was removed.
pub(crate) fn retire_client(state: &ClientState, id: &str) -> bool {
    if state.membership.is_draining() {
        debug!(connection = %id, "draining: the closed connection's instances stay until they are registered elsewhere");
        return false;
    }
    state.store.remove_client(id)
}

/// Probes connections that have been silent too long and closes those that
/// do not answer, as Nacos's connection ejector does.
pub async fn run_ejector(state: Arc<ClientState>) {
    let settings = state.connection_settings;
    let idle_ms = i64::try_from(settings.idle_timeout.as_millis()).unwrap_or(i64::MAX);
    let mut tick = tokio::time::interval(settings.check_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        state.connections.prune_unregistered();
        for conn in state.connections.all() {
            if conn.idle_ms() < idle_ms || !conn.start_probe() {
                continue;
            }
            let state = state.clone();
            tokio::spawn(async move {
                let probe = json!({ "headers": {}, "module": "internal" });
                match conn.request("ClientDetectionRequest", &probe, settings.detection_timeout).await {
                    Ok(_) => conn.touch(),
                    Err(e) => {
                        warn!(connection = %conn.id, error = %e, "silent connection ejected");
                        close_connection(&state, &conn.id);
                    }
                }
                conn.end_probe();
            });
        }
    }
}

/// Closes every connection (shutdown).
pub fn close_all(state: &ClientState) {
    for conn in state.connections.all() {
        close_connection(state, &conn.id);
    }
}
