//! Entry points for the fuzz targets in `fuzz/`: each takes arbitrary bytes,
//! runs them through the node's real decoders and validators exactly as a
//! client or peer message would be, and must return without panicking
//! whatever the bytes are. Errors are the expected outcome for most inputs;
//! only a panic, a hang or unbounded memory is a finding.
//!
//! - [`grpc_payload`]: the Nacos `Payload` envelope and its JSON bodies,
//!   decoded into the typed requests and validated as the handlers do.
//! - [`http_params`]: the v1 API's query and form parameters and the
//!   instance and service parameters built from them.
//! - [`peer_message`]: the peer protocol: Distro client data (applied to a
//!   real store), Raft commands (applied to the replicated data), Raft RPC
//!   messages and member reports.
//! - [`peer_signature`]: the signature headers of a peer request (parsed and
//!   verified against a fixed secret and clock, with the body digest and
//!   the replay cache).
//!
//! Nothing here is used by the node itself.

use std::sync::Arc;
use std::time::Instant;

use prost::Message;
use roster_proto::nacos::Payload;
use roster_proto::peer::{ClientData, DistroSyncRequest, MemberReport};

use crate::api::grpc::handlers::instance_key;
use crate::api::grpc::messages::{
    cluster_list, BatchInstanceRequest, ConnectionSetupRequest, InstanceRequest, ServiceListRequest,
    ServiceQueryRequest, StreamResponse, SubscribeServiceRequest,
};
use crate::api::grpc::payload::Envelope;
use crate::api::http::params::Params;
use crate::api::http::{instance, service};
use crate::cluster::{ClusterMetrics, Membership};
use crate::distro::codec;
use crate::naming::model::BeatTimeouts;
use crate::naming::validate::{self, Limits};
use crate::naming::NamingStore;
use crate::raft::command::{Command, PersistentData, ServiceEntry};
use crate::raft::network::{decode, split_frame, Addressed, ForwardReply, ForwardRequest};
use crate::raft::types::{NodeId, TypeConfig};

/// The default limits of a node (`--max-metadata-bytes`, `--max-batch-instances`).
fn limits() -> Limits {
    Limits { max_metadata_bytes: 16 * 1024, max_batch_instances: 1000 }
}

/// The request types the gRPC handlers know, in the order the first byte
/// of a fuzz input picks them.
const REQUEST_TYPES: &[&str] = &[
    "InstanceRequest",
    "PersistentInstanceRequest",
    "BatchInstanceRequest",
    "ServiceQueryRequest",
    "SubscribeServiceRequest",
    "ServiceListRequest",
    "ConnectionSetupRequest",
    "ServerCheckRequest",
    "HealthCheckRequest",
    "NotifySubscriberResponse",
];

/// gRPC payload decoding. The first byte chooses: even, the rest is a
/// protobuf `Payload` (envelope and body); odd, the rest is the JSON body
/// of the request type the byte names.
pub fn grpc_payload(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else { return };
    let payload = if mode % 2 == 0 {
        match Payload::decode(rest) {
            Ok(p) => p,
            Err(_) => return,
        }
    } else {
        let type_name = REQUEST_TYPES[usize::from(mode / 2) % REQUEST_TYPES.len()];
        crate::api::grpc::payload::encode_raw(type_name, rest.to_vec())
    };
    let Ok(env) = Envelope::open(payload) else { return };
    let _ = env.request_id();
    let limits = limits();
    match env.type_name.as_str() {
        "InstanceRequest" | "PersistentInstanceRequest" => {
            if let Ok(req) = env.parse::<InstanceRequest>() {
                let _ = req.base.service_key();
                if let Some(wire) = &req.instance {
                    let _ = validate::instance(wire, Some(env.type_name == "InstanceRequest"), &limits);
                    let _ = instance_key(wire);
                }
            }
        }
        "BatchInstanceRequest" => {
            if let Ok(req) = env.parse::<BatchInstanceRequest>() {
                let _ = req.base.service_key();
                for wire in req.instances.iter().take(limits.max_batch_instances) {
                    let _ = validate::instance(wire, Some(true), &limits);
                    let _ = instance_key(wire);
                }
            }
        }
        "ServiceQueryRequest" => {
            if let Ok(req) = env.parse::<ServiceQueryRequest>() {
                let _ = req.base.service_key();
                let _ = cluster_list(req.cluster.as_deref());
            }
        }
        "SubscribeServiceRequest" => {
            if let Ok(req) = env.parse::<SubscribeServiceRequest>() {
                let _ = req.base.service_key();
                let _ = cluster_list(req.clusters.as_deref());
            }
        }
        "ServiceListRequest" => {
            if let Ok(req) = env.parse::<ServiceListRequest>() {
                let _ = validate::namespace(req.base.namespace.as_deref());
                let _ = crate::api::grpc::handlers::check_service_list(&req);
            }
        }
        "ConnectionSetupRequest" => {
            if let Ok(setup) = env.parse::<ConnectionSetupRequest>() {
                let info = crate::api::grpc::connection::ClientInfo {
                    version: setup.client_version.unwrap_or_default(),
                    tenant: setup.tenant.unwrap_or_default(),
                    labels: setup.labels,
                    client_ip: env.client_ip.clone(),
                };
                let _ = info.check();
            }
        }
        _ => {
            let _ = env.parse::<StreamResponse>();
        }
    }
}

/// HTTP parameter parsing. The bytes up to the first NUL are the query
/// string, the rest the form body; the parameters are then read as every
/// v1 handler reads them.
pub fn http_params(data: &[u8]) {
    let (query, form) = match data.iter().position(|b| *b == 0) {
        Some(i) => (&data[..i], Some(&data[i + 1..])),
        None => (data, None),
    };
    let Ok(query) = std::str::from_utf8(query) else { return };
    let Ok(p) = Params::parse(Some(query), form) else { return };
    let limits = limits();
    let _ = p.service_key();
    let _ = p.instance_key();
    let _ = p.cluster();
    let _ = p.weight();
    let _ = p.bool_any(&["enabled", "enable"]);
    let _ = p.bool("healthy");
    let _ = p.int("beat");
    let _ = instance::new_instance(&p, &limits);
    let _ = service::protect_threshold(&p);
    let _ = service::selector(&p);
    let _ = service::metadata(&p, &limits);
    let _ = service::page_param(&p, "pageNo", i64::MAX);
    if let Ok((_, ikey, Some(info))) = crate::api::http::beat::beat_params(&p) {
        let _ = crate::api::http::beat::beat_instance(&ikey, &info, &limits);
    }
}

/// Peer protocol decoding. The first byte chooses the message: a Distro
/// sync (applied to a store), Distro client data, a Raft command (applied
/// to the replicated data), a Raft RPC (forward, vote, append, snapshot
/// frame), a Raft snapshot's service entries, or a member report.
pub fn peer_message(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else { return };
    let limits = limits();
    match mode % 8 {
        0 => {
            let Ok(sync) = DistroSyncRequest::decode(rest) else { return };
            let store = NamingStore::new(BeatTimeouts { unhealthy_ms: 15_000, delete_ms: 30_000 });
            let Ok(copies) = sync.upserts.into_iter().map(|d| codec::decode(d, &limits)).collect::<Result<Vec<_>, _>>()
            else {
                return;
            };
            let now = Instant::now();
            store.apply_copies(&copies, &sync.source, "127.0.0.1:8848", now, |_| false);
            // Applied twice: the merge must be idempotent, whatever came in.
            store.apply_copies(&copies, &sync.source, "127.0.0.1:8848", now, |_| false);
            let _ = store.counts();
            let _ = store.verify_list(|_| true);
        }
        1 => {
            if let Ok(data) = ClientData::decode(rest) {
                let _ = codec::decode(data, &limits);
            }
        }
        2 => {
            if let Ok(command) = serde_json::from_slice::<Command>(rest) {
                let mut state = PersistentData::default();
                let _ = state.apply(&command);
                let _ = state.apply(&command);
                let _ = state.entries();
            }
        }
        3 => {
            let _ = decode::<Addressed<ForwardRequest>>(rest);
            let _ = decode::<ForwardReply>(rest);
        }
        4 => {
            let _ = decode::<Addressed<openraft::raft::VoteRequest<NodeId>>>(rest);
            let _ = decode::<Addressed<openraft::raft::AppendEntriesRequest<TypeConfig>>>(rest);
        }
        5 => {
            if let Ok((header, _data)) = split_frame(rest) {
                let _ = decode::<Addressed<openraft::raft::InstallSnapshotRequest<TypeConfig>>>(header);
            }
        }
        6 => {
            if let Ok(entries) = serde_json::from_slice::<Vec<ServiceEntry>>(rest) {
                let _ = PersistentData::from_entries(entries).instances();
            }
        }
        _ => {
            let Ok(report) = MemberReport::decode(rest) else { return };
            let membership = Membership::new("127.0.0.1:8848", false, 3, Arc::new(ClusterMetrics::new()));
            membership.apply_member_list(&["127.0.0.1:8848".to_owned(), report.member.clone()]);
            membership.receive_report(&report);
            let _ = membership.members();
        }
    }
}

/// The cluster secret the `peer_signature` target verifies with.
pub const FUZZ_SECRET: &[u8] = b"roster-fuzz-secret-7Kq2Wm9Xz4Lp8Vn3";
/// The receiver's clock of the `peer_signature` target (Unix ms).
pub const FUZZ_NOW_MS: u64 = 1_700_000_000_000;
/// The path the `peer_signature` target's requests are for.
pub const FUZZ_PATH: &str = "/roster.peer.v1.Peer/DistroSync";

/// A `peer_signature` input: the mode byte (bit 0: accept the v1 scheme, as
/// `--peer-signature-compat` does), `name: value` header lines, an empty
/// line, the body.
pub fn peer_signature_input(legacy: bool, headers: &http::HeaderMap, body: &[u8]) -> Vec<u8> {
    let mut out = vec![u8::from(legacy)];
    for (name, value) in headers {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.push(b'\n');
    }
    out.push(b'\n');
    out.extend_from_slice(body);
    out
}

/// What a receiver holding [`FUZZ_SECRET`] at [`FUZZ_NOW_MS`] makes of a
/// `peer_signature` input: the signer, or the refusal's label. A request
/// that passes is checked a second time and must then be refused as a
/// replay (a panic otherwise: that is a finding).
pub fn peer_signature_check(data: &[u8]) -> Result<String, &'static str> {
    use crate::security::signature::{parse_headers, AuthFailure, PeerAuth};
    let Some((&mode, rest)) = data.split_first() else { return Err("empty") };
    let legacy = mode & 1 == 1;
    let split = rest.windows(2).position(|w| w == b"\n\n");
    let (head, body) = match split {
        Some(i) => (&rest[..i], &rest[i + 2..]),
        None => (rest, &rest[rest.len()..]),
    };
    let mut headers = http::HeaderMap::new();
    for line in head.split(|b| *b == b'\n') {
        let Some(colon) = line.iter().position(|b| *b == b':') else { continue };
        let value = line[colon + 1..].trim_ascii();
        if let (Ok(name), Ok(value)) =
            (http::HeaderName::from_bytes(&line[..colon]), http::HeaderValue::from_bytes(value))
        {
            headers.append(name, value);
        }
    }
    let _ = parse_headers(&headers, legacy);
    let Ok(secret) = crate::security::ClusterSecret::new(FUZZ_SECRET) else { return Err("secret") };
    let auth = PeerAuth::new(&secret, "127.0.0.1:8848").with_legacy(legacy);
    let verified = auth.verify_headers_at(&headers, "POST", FUZZ_PATH, FUZZ_NOW_MS).map_err(AuthFailure::label)?;
    verified.check_body(body).map_err(AuthFailure::label)?;
    let again = auth.verify_headers_at(&headers, "POST", FUZZ_PATH, FUZZ_NOW_MS);
    if !verified.is_legacy() {
        assert_eq!(again, Err(AuthFailure::Replayed), "an accepted signature must not be accepted twice");
    }
    Ok(verified.member)
}

/// Peer signature checking (see [`peer_signature_check`]).
pub fn peer_signature(data: &[u8]) {
    let _ = peer_signature_check(data);
}
