//! The UDP push datagram and its acknowledgement, as Nacos's
//! `UdpPushService` and the 1.x SDKs' `PushReceiver` shape them.
//!
//! A push is the JSON object `{"type": "dom", "data": <ServiceInfo as a
//! JSON string>, "lastRefTime": <number>}`. From [`COMPRESS_FROM`] bytes
//! on it is gzipped (clients look for the gzip magic and inflate). The
//! client answers `{"type": "push-ack", "lastRefTime": <the same>,
//! "data": ""}`; the Java SDK writes `lastRefTime` as a string, the
//! Node.js SDK as a number, so both are read.
//!
//! `lastRefTime` identifies the push, together with the client's address.
//! Nacos uses the JVM's `nanoTime`; Roster uses microseconds since the
//! epoch, kept increasing, which stays below 2^53 so that JavaScript
//! clients echo it exactly (a nanosecond count since the epoch would not).

use std::io::Write;

use flate2::write::GzEncoder;
use flate2::Compression;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::naming::ServiceInfo;

/// Pushes of at least this many bytes are gzipped (Nacos: 1 KiB).
pub const COMPRESS_FROM: usize = 1024;

/// The largest UDP payload over IPv4; a bigger push cannot be sent.
pub const MAX_DATAGRAM: usize = 65_507;

/// The push datagram before compression.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Push<'a> {
    r#type: &'static str,
    data: &'a str,
    last_ref_time: u64,
}

/// Encodes the push of `info` identified by `last_ref_time`, gzipped when
/// large. Fails when even the compressed datagram exceeds [`MAX_DATAGRAM`].
pub fn encode(info: &ServiceInfo, last_ref_time: u64) -> Result<Vec<u8>> {
    let data = serde_json::to_string(info).map_err(|e| Error::Internal(format!("service info to JSON: {e}")))?;
    let push = serde_json::to_vec(&Push { r#type: "dom", data: &data, last_ref_time })
        .map_err(|e| Error::Internal(format!("push to JSON: {e}")))?;
    let bytes = if push.len() < COMPRESS_FROM { push } else { gzip(&push)? };
    if bytes.len() > MAX_DATAGRAM {
        return Err(Error::TooLarge(format!(
            "the push of {} is {} bytes, more than one datagram ({MAX_DATAGRAM}) even compressed",
            info.name,
            bytes.len()
        )));
    }
    Ok(bytes)
}

fn gzip(bytes: &[u8]) -> Result<Vec<u8>> {
    let mut encoder = GzEncoder::new(Vec::with_capacity(bytes.len() / 4), Compression::default());
    encoder.write_all(bytes).and_then(|()| encoder.finish()).map_err(|e| Error::Internal(format!("gzip: {e}")))
}

/// An acknowledgement as clients send it.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Ack {
    #[serde(default)]
    r#type: String,
    last_ref_time: Value,
}

/// The `lastRefTime` a datagram acknowledges, or why it is not an ack.
///
/// Any `*-ack` type counts, as in Nacos (whose receiver matches on the
/// address and `lastRefTime` alone): the 1.x SDKs answer an unknown
/// packet type with `unknown-ack`.
pub fn decode_ack(datagram: &[u8]) -> std::result::Result<u64, String> {
    let text = std::str::from_utf8(datagram).map_err(|_| "not UTF-8".to_owned())?;
    let ack: Ack = serde_json::from_str(text.trim()).map_err(|e| format!("not an ack: {e}"))?;
    if !ack.r#type.ends_with("-ack") {
        return Err(format!("type '{}' is not an ack", ack.r#type));
    }
    match &ack.last_ref_time {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
    .ok_or_else(|| format!("lastRefTime {} is not a whole number", ack.last_ref_time))
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use flate2::read::GzDecoder;

    use super::*;
    use crate::naming::InstanceWire;

    fn info(hosts: usize) -> ServiceInfo {
        ServiceInfo {
            name: "DEFAULT_GROUP@@orders".into(),
            group_name: "DEFAULT_GROUP".into(),
            clusters: "DEFAULT".into(),
            cache_millis: 10_000,
            hosts: (0..hosts)
                .map(|i| InstanceWire { ip: format!("10.0.0.{i}"), port: 8080, ..InstanceWire::default() })
                .collect(),
            last_ref_time: 1,
            checksum: "c".into(),
            all_ips: false,
            reach_protection_threshold: false,
            valid: true,
        }
    }

    #[test]
    fn a_small_push_is_plain_json_with_the_service_info_as_a_string() {
        let bytes = encode(&info(1), 1_700_000_000_000_001).expect("encode");
        assert!(bytes.len() < COMPRESS_FROM);
        let push: Value = serde_json::from_slice(&bytes).expect("json");
        assert_eq!(push["type"], "dom");
        assert_eq!(push["lastRefTime"], 1_700_000_000_000_001_u64);
        let data: ServiceInfo = serde_json::from_str(push["data"].as_str().expect("string")).expect("service info");
        assert_eq!(data, info(1));
    }

    #[test]
    fn a_large_push_is_gzipped() {
        let bytes = encode(&info(40), 7).expect("encode");
        assert_eq!(&bytes[..2], &[0x1f, 0x8b], "gzip magic");
        let mut json = String::new();
        GzDecoder::new(&bytes[..]).read_to_string(&mut json).expect("gunzip");
        assert!(json.len() >= COMPRESS_FROM);
        let push: Value = serde_json::from_str(&json).expect("json");
        assert_eq!(push["lastRefTime"], 7);
        let data: ServiceInfo = serde_json::from_str(push["data"].as_str().expect("string")).expect("service info");
        assert_eq!(data.hosts.len(), 40);
    }

    #[test]
    fn acks_carry_last_ref_time_as_a_number_or_a_string() {
        assert_eq!(decode_ack(br#"{"type":"push-ack","lastRefTime":12,"data":""}"#), Ok(12));
        assert_eq!(decode_ack(br#"{"type": "push-ack", "lastRefTime":"34", "data":""}"#), Ok(34));
        assert_eq!(decode_ack(br#"{"type":"unknown-ack","lastRefTime":5,"data":""}"#), Ok(5));
    }

    #[test]
    fn anything_else_is_not_an_ack() {
        for bad in [
            &b"\xff\xfe"[..],
            b"",
            b"push-ack",
            br#"{"type":"dom","lastRefTime":1}"#,
            br#"{"type":"push-ack"}"#,
            br#"{"type":"push-ack","lastRefTime":-1}"#,
            br#"{"type":"push-ack","lastRefTime":"x"}"#,
            br#"{"type":"push-ack","lastRefTime":1.5}"#,
        ] {
            assert!(decode_ack(bad).is_err(), "{bad:?}");
        }
    }
}
