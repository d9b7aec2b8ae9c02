//! The fuzz targets' seed corpus and regression inputs (`fuzz/seeds/`,
//! `fuzz/regressions/`) run through the same entry points as the fuzzer,
//! in the ordinary test build: an input that once crashed the node stays
//! fixed, and the seeds keep decoding without a panic. A seeds or
//! regressions directory that is missing or empty fails the test, so it
//! cannot pass on nothing.
//!
//! `fuzz/regressions/<target>/` holds two kinds of inputs:
//! - **Crash inputs**: a file libFuzzer left in `fuzz/artifacts/<target>/`,
//!   copied here once the node is fixed. They are only replayed.
//! - **Derived inputs**: adversarial messages built below from the node's
//!   own types and encoders, then broken (truncated, oversize, a value of
//!   the wrong type). Each must be refused by the decoder or validator it
//!   names, with the error it names, so the fuzz run starts from the error
//!   paths too; and the committed file must be exactly what is built here.
//!   To add one, add a case to [`derived`] and write the files with
//!   `ROSTER_WRITE_REGRESSIONS=1 cargo test -p roster-node --test integration fuzz_seeds::`.

use std::path::{Path, PathBuf};

use prost::Message;
use roster_node::api::grpc::messages::{InstanceRequest, ServiceQueryRequest};
use roster_node::api::grpc::payload::{self, Envelope};
use roster_node::api::http::params::Params;
use roster_node::distro::codec;
use roster_node::fuzzing;
use roster_node::naming::model::BeatTimeouts;
use roster_node::naming::validate::{self, Limits};
use roster_node::naming::{ClientCopy, ClientKind, Delta, Instance, ServiceKey};
use roster_node::raft::command::Command;
use roster_node::security::signature::{NONCE_HEADER, PEER_HEADER, TIME_HEADER};
use roster_node::security::{ClusterSecret, PeerAuth};
use roster_proto::nacos::{Metadata, Payload};
use roster_proto::peer::{DistroSyncRequest, MemberReport};
use serde_json::{json, Value};

/// A fuzz entry point.
type Target = fn(&[u8]);

/// Every fuzz target, by its directory name under `fuzz/seeds/` and
/// `fuzz/regressions/`.
const TARGETS: [(&str, Target); 4] = [
    ("grpc_payload", fuzzing::grpc_payload),
    ("http_params", fuzzing::http_params),
    ("peer_message", fuzzing::peer_message),
    ("peer_signature", fuzzing::peer_signature),
];

/// The limits the fuzz entry points check with: a node's defaults
/// (`--max-metadata-bytes`, `--max-batch-instances`).
const LIMITS: Limits = Limits { max_metadata_bytes: 16 * 1024, max_batch_instances: 1000 };

/// A metadata value that, under a one-letter key, is one byte past [`LIMITS`].
fn oversize_value() -> String {
    "x".repeat(LIMITS.max_metadata_bytes)
}

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

/// Every file in `dir` with its name, sorted by name; fails the test when
/// `dir` is missing or holds no file.
fn inputs(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{} is expected: {e}", dir.display()));
    let mut files: Vec<(String, Vec<u8>)> = entries
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.is_file())
        .map(|path| {
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            (name, std::fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display())))
        })
        .collect();
    assert!(!files.is_empty(), "{} holds no input", dir.display());
    files.sort();
    files
}

#[test]
fn seeds_and_regressions_decode_without_panicking() {
    let fuzz = fuzz_dir();
    for (name, target) in TARGETS {
        for kind in ["seeds", "regressions"] {
            for (_, data) in inputs(&fuzz.join(kind).join(name)) {
                target(&data);
            }
        }
    }
    // The Distro seeds are real messages: the node's decoder takes them.
    let seed = std::fs::read(fuzz.join("seeds/peer_message/client_data")).expect("the client data seed");
    let data = roster_proto::peer::ClientData::decode(&seed[1..]).expect("a ClientData");
    let copy = codec::decode(data, &LIMITS).expect("a valid client");
    assert_eq!((copy.delta.live.len(), copy.delta.removed.len(), copy.delta.floor), (1, 1, 7));
    let seed = std::fs::read(fuzz.join("seeds/peer_message/distro_sync")).expect("the sync seed");
    let sync = DistroSyncRequest::decode(&seed[1..]).expect("a DistroSyncRequest");
    let copies: Vec<ClientCopy> = sync.upserts.into_iter().map(|d| codec::decode(d, &LIMITS).expect("valid")).collect();
    assert_eq!(copies[1].owner.as_ref().map(|o| o.incarnation), Some(1_700_000_000_000));
    // Degenerate inputs every target must take.
    for (_, target) in TARGETS {
        target(&[]);
        target(&[0]);
        target(&[255; 64]);
    }
}

/// One derived regression input.
struct Derived {
    /// The fuzz target it is for.
    target: &'static str,
    /// Its file name in `fuzz/regressions/<target>/`.
    name: &'static str,
    /// The input, mode byte first where the target has one.
    bytes: Vec<u8>,
    /// What the node's decoders make of it: the error that refused it.
    refused: Result<(), String>,
    /// A part of that error, which shows the intended check refused it.
    because: &'static str,
}

fn derived_input(
    target: &'static str,
    name: &'static str,
    bytes: Vec<u8>,
    refused: Result<(), String>,
    because: &'static str,
) -> Derived {
    Derived { target, name, bytes, refused, because }
}

/// `mode` followed by `rest`.
fn with_mode(mode: u8, rest: &[u8]) -> Vec<u8> {
    [&[mode][..], rest].concat()
}

/// `bytes` without its last `n`: a message cut short on the wire.
fn truncated(mut bytes: Vec<u8>, n: usize) -> Vec<u8> {
    bytes.truncate(bytes.len().saturating_sub(n));
    bytes
}

fn service() -> ServiceKey {
    ServiceKey::new("public", "DEFAULT_GROUP", "orders")
}

/// A change made to an instance's JSON.
type Change = fn(&mut Value);

/// An `InstanceRequest` body whose instance is the node's own wire form of
/// `10.0.0.1:8080`, with `change` applied to it.
fn instance_request(change: impl FnOnce(&mut Value)) -> Vec<u8> {
    let wire = Instance::new("10.0.0.1", 8080).to_wire(&service(), &BeatTimeouts::default());
    let mut instance = serde_json::to_value(wire).expect("an instance as JSON");
    change(&mut instance);
    let body = json!({
        "namespace": "public", "groupName": "DEFAULT_GROUP", "serviceName": "orders",
        "type": "registerInstance", "module": "naming", "headers": {}, "requestId": "1",
        "instance": instance,
    });
    serde_json::to_vec(&body).expect("JSON")
}

/// The gRPC handlers' path for a body of `type_name`: the envelope, the
/// typed request, then (for instance requests) the instance's validation.
fn grpc_refusal(type_name: &str, body: &[u8]) -> Result<(), String> {
    let env = Envelope::open(payload::encode_raw(type_name, body.to_vec())).map_err(|e| e.to_string())?;
    if type_name == "ServiceQueryRequest" {
        return env.parse::<ServiceQueryRequest>().map(drop).map_err(|e| e.to_string());
    }
    let request: InstanceRequest = env.parse().map_err(|e| e.to_string())?;
    let wire = request.instance.ok_or("no instance")?;
    validate::instance(&wire, Some(true), &LIMITS).map(drop).map_err(|e| e.to_string())
}

/// The envelope path of a protobuf `Payload` (mode byte 0).
fn envelope_refusal(bytes: &[u8]) -> Result<(), String> {
    let payload = Payload::decode(bytes).map_err(|e| e.to_string())?;
    Envelope::open(payload).map(drop).map_err(|e| e.to_string())
}

/// The v1 API's path for a query string (and form body after a NUL).
fn params_refusal(data: &[u8]) -> Result<(), String> {
    let (query, form) = match data.iter().position(|b| *b == 0) {
        Some(i) => (&data[..i], Some(&data[i + 1..])),
        None => (data, None),
    };
    let query = std::str::from_utf8(query).map_err(|e| e.to_string())?;
    let p = Params::parse(Some(query), form).map_err(|e| e.to_string())?;
    p.port().map_err(|e| e.to_string())?;
    p.weight().map_err(|e| e.to_string())?;
    if let Some(metadata) = p.metadata().map_err(|e| e.to_string())? {
        validate::metadata(&metadata, &LIMITS).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// A client of one instance as Distro sends it (the node's own encoder).
fn client_copy(instance: Instance) -> ClientCopy {
    let delta = Delta { revision: 42, live: vec![(service(), instance, 42)], ..Delta::default() };
    ClientCopy { id: "10.0.0.1:80#true".into(), kind: ClientKind::IpPort, owner: None, delta }
}

/// The Distro path of one client's data.
fn client_data_refusal(bytes: &[u8]) -> Result<(), String> {
    let data = roster_proto::peer::ClientData::decode(bytes).map_err(|e| e.to_string())?;
    codec::decode(data, &LIMITS).map(drop).map_err(|e| e.to_string())
}

/// The adversarial inputs of every target, each with the node's verdict.
fn derived() -> Vec<Derived> {
    let mut all = Vec::new();

    // grpc_payload: an even first byte is a protobuf Payload; an odd one
    // the JSON body of the request type it names (1: InstanceRequest,
    // 7: ServiceQueryRequest).
    let envelope = payload::encode("InstanceRequest", &json!({"requestId": "1"})).encode_to_vec();
    let cut = truncated(envelope, 4);
    all.push(derived_input(
        "grpc_payload",
        "envelope_truncated",
        with_mode(0, &cut),
        envelope_refusal(&cut),
        "failed to decode",
    ));
    let untyped = Payload {
        metadata: Some(Metadata::default()),
        body: Some(prost_types::Any { type_url: String::new(), value: instance_request(|_| ()) }),
    }
    .encode_to_vec();
    all.push(derived_input(
        "grpc_payload",
        "envelope_without_type",
        with_mode(0, &untyped),
        envelope_refusal(&untyped),
        "no metadata.type",
    ));
    let cases: [(&str, Change, &str); 3] = [
        ("instance_port_as_text", |i| i["port"] = json!("eighty"), "invalid InstanceRequest body"),
        ("instance_port_out_of_range", |i| i["port"] = json!(70_000), "port"),
        ("instance_metadata_oversize", |i| i["metadata"] = json!({"k": oversize_value()}), "too large"),
    ];
    for (name, change, because) in cases {
        let body = instance_request(change);
        let refused = grpc_refusal("InstanceRequest", &body);
        all.push(derived_input("grpc_payload", name, with_mode(1, &body), refused, because));
    }
    let query = serde_json::to_vec(&json!({
        "namespace": "public", "serviceName": "orders", "groupName": "DEFAULT_GROUP",
        "cluster": "DEFAULT", "healthyOnly": true, "requestId": "2",
    }))
    .expect("JSON");
    let query = truncated(query, 9);
    let refused = grpc_refusal("ServiceQueryRequest", &query);
    all.push(derived_input(
        "grpc_payload",
        "query_json_truncated",
        with_mode(7, &query),
        refused,
        "invalid ServiceQueryRequest body",
    ));

    // http_params: the query string, then a NUL and the form body.
    let register = "serviceName=orders&ip=10.0.0.1&port=80";
    let oversize = format!("{register}\0metadata=k%3D{}", oversize_value());
    let cases: [(&'static str, Vec<u8>, &'static str); 5] = [
        ("escape_malformed", b"serviceName=orders&ip=10.0.0.%zz&port=80".to_vec(), "malformed '%' escape"),
        ("escape_not_utf8", b"serviceName=orders%ff%fe&ip=10.0.0.1&port=80".to_vec(), "not valid UTF-8"),
        ("port_out_of_range", b"serviceName=orders&ip=10.0.0.1&port=65536".to_vec(), "port"),
        ("weight_as_text", format!("{register}&weight=heavy").into_bytes(), "weight"),
        ("metadata_oversize", oversize.into_bytes(), "too large"),
    ];
    for (name, bytes, because) in cases {
        let refused = params_refusal(&bytes);
        all.push(derived_input("http_params", name, bytes, refused, because));
    }

    // peer_message: the first byte modulo 8 picks the decoder (0: Distro
    // sync, 1: Distro client data, 2: Raft command, 7: member report).
    let client = codec::encode(&client_copy(Instance::new("10.0.0.1", 80)));
    let sync = DistroSyncRequest { source: "127.0.0.2:8848".into(), upserts: vec![client.clone()] };
    let sync = truncated(sync.encode_to_vec(), 3);
    let refused = DistroSyncRequest::decode(sync.as_slice()).map(drop).map_err(|e| e.to_string());
    all.push(derived_input("peer_message", "distro_sync_truncated", with_mode(0, &sync), refused, "failed to decode"));
    let mut port_out_of_range = client.clone();
    port_out_of_range.instances[0].port = 70_000;
    let mut removed_without_ip = codec::encode(&ClientCopy {
        delta: Delta {
            revision: 43,
            removed: vec![(service(), Instance::new("10.0.0.1", 80).key(), 43)],
            ..Delta::default()
        },
        ..client_copy(Instance::new("10.0.0.1", 80))
    });
    removed_without_ip.removed[0].ip = String::new();
    let mut oversize = Instance::new("10.0.0.1", 80);
    oversize.metadata.insert("k".into(), oversize_value());
    let cases = [
        ("client_data_port_out_of_range", port_out_of_range, "port"),
        ("client_data_removed_without_ip", removed_without_ip, "ip"),
        ("client_data_metadata_oversize", codec::encode(&client_copy(oversize)), "too large"),
    ];
    for (name, data, because) in cases {
        let bytes = data.encode_to_vec();
        let refused = client_data_refusal(&bytes);
        all.push(derived_input("peer_message", name, with_mode(1, &bytes), refused, because));
    }
    let command = Command::RegisterInstance { service: service(), instance: Instance::new("10.0.0.1", 80) };
    let mut command = serde_json::to_value(command).expect("a command as JSON");
    command["instance"]["port"] = json!("eighty");
    let command = serde_json::to_vec(&command).expect("JSON");
    let refused = serde_json::from_slice::<Command>(&command).map(drop).map_err(|e| e.to_string());
    all.push(derived_input("peer_message", "command_port_as_text", with_mode(2, &command), refused, "invalid type"));
    let report = MemberReport {
        member: "127.0.0.2:8848".into(),
        version: "0.1.0".into(),
        distro_initialized: true,
        raft_id: 9,
        incarnation: 1_700_000_000_000,
        draining: false,
    };
    // Cut inside the incarnation's varint.
    let report = truncated(report.encode_to_vec(), 3);
    let refused = MemberReport::decode(report.as_slice()).map(drop).map_err(|e| e.to_string());
    all.push(derived_input(
        "peer_message",
        "member_report_truncated",
        with_mode(7, &report),
        refused,
        "failed to decode",
    ));

    // peer_signature: headers signed by the node's own signer with the
    // target's secret and clock, then broken.
    let secret = ClusterSecret::new(fuzzing::FUZZ_SECRET).expect("the fuzz secret");
    let signer = PeerAuth::new(&secret, "127.0.0.2:8848");
    let body = b"\0\0\0\0\x05hello";
    let sign = |time: u64, nonce: u8| {
        let mut headers = http::HeaderMap::new();
        signer.sign_with(&mut headers, "POST", fuzzing::FUZZ_PATH, body, time, [nonce; 16]);
        headers
    };
    let now = fuzzing::FUZZ_NOW_MS;
    let with = |mut headers: http::HeaderMap, name: &'static str, value: &str| {
        headers.insert(name, http::HeaderValue::from_str(value).expect("a header value"));
        headers
    };
    let cases: [(&'static str, http::HeaderMap, &[u8], &'static str); 6] = [
        ("signature_body_swapped", sign(now, 1), b"\0\0\0\0\x05other", "bad_digest"),
        ("signature_stale", sign(now - 61_000, 2), body, "stale"),
        ("signature_nonce_short", with(sign(now, 3), NONCE_HEADER, "abcd"), body, "malformed"),
        ("signature_time_not_a_number", with(sign(now, 4), TIME_HEADER, "-1"), body, "malformed"),
        ("signature_sender_forged", with(sign(now, 5), PEER_HEADER, "127.0.0.9:8848"), body, "bad_signature"),
        ("signature_missing", http::HeaderMap::new(), body, "missing"),
    ];
    for (name, headers, body, because) in cases {
        let bytes = fuzzing::peer_signature_input(false, &headers, body);
        let refused = fuzzing::peer_signature_check(&bytes).map(drop).map_err(str::to_owned);
        all.push(derived_input("peer_signature", name, bytes, refused, because));
    }
    all
}

/// The seeds of `peer_signature` (written by `fuzz/seeds/make_seeds.py`,
/// which signs in Python) pass the node's check: the two implementations of
/// the signed message agree, and the fuzzer starts past the MAC.
#[test]
fn signature_seeds_are_accepted_by_the_node() {
    for (name, data) in inputs(&fuzz_dir().join("seeds").join("peer_signature")) {
        assert_eq!(fuzzing::peer_signature_check(&data), Ok("127.0.0.2:8848".to_owned()), "seed {name}");
    }
}

#[test]
fn derived_regressions_are_refused_and_committed_as_built() {
    let write = std::env::var_os("ROSTER_WRITE_REGRESSIONS").is_some();
    let regressions = fuzz_dir().join("regressions");
    for case in derived() {
        let what = format!("{}/{}", case.target, case.name);
        match &case.refused {
            Ok(()) => panic!("{what}: the node accepts it; a regression input must take an error path"),
            Err(e) => assert!(e.contains(case.because), "{what}: refused, but not for {:?}: {e}", case.because),
        }
        let (_, target) = TARGETS.iter().find(|(name, _)| *name == case.target).expect("a fuzz target");
        target(&case.bytes);
        let path = regressions.join(case.target).join(case.name);
        if write {
            std::fs::create_dir_all(path.parent().expect("a directory")).expect("create the directory");
            std::fs::write(&path, &case.bytes).expect("write the input");
            continue;
        }
        let committed = std::fs::read(&path).unwrap_or_default();
        assert!(
            committed == case.bytes,
            "{} is stale or missing; write it from the workspace root with\n\n    \
             ROSTER_WRITE_REGRESSIONS=1 cargo test -p roster-node --test integration fuzz_seeds::\n",
            path.display()
        );
    }
}
