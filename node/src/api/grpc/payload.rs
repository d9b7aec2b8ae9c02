//! The Nacos payload envelope: `Payload{metadata{type, clientIp, headers},
//! body: Any}` whose `Any.value` is the JSON of the object named by
//! `metadata.type` (Jackson's camelCase field names, nulls omitted).

use std::collections::HashMap;

use roster_proto::nacos::{Metadata, Payload};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{Error, Result};

/// A decoded request: its type name, headers and JSON body.
#[derive(Debug)]
pub struct Envelope {
    /// `metadata.type`, the Java simple class name.
    pub type_name: String,
    /// Request headers (the clients move them out of the body).
    pub headers: HashMap<String, String>,
    /// The client's own IP, as it reports it.
    pub client_ip: String,
    /// The raw JSON body.
    pub body: Vec<u8>,
}

impl Envelope {
    /// Splits a payload into its parts; a payload without a type or body is refused.
    pub fn open(payload: Payload) -> Result<Self> {
        let metadata = payload.metadata.unwrap_or_default();
        if metadata.r#type.is_empty() {
            return Err(Error::BadPayload("payload has no metadata.type".into()));
        }
        let body = payload.body.map(|any| any.value).unwrap_or_default();
        Ok(Envelope { type_name: metadata.r#type, headers: metadata.headers, client_ip: metadata.client_ip, body })
    }

    /// Parses the body as `T`, reporting invalid JSON clearly.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T> {
        let body: &[u8] = if self.body.is_empty() { b"{}" } else { &self.body };
        serde_json::from_slice(body).map_err(|e| Error::BadPayload(format!("invalid {} body: {e}", self.type_name)))
    }

    /// The `requestId` in the body, if any (echoed in the response).
    pub fn request_id(&self) -> Option<String> {
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Id {
            request_id: Option<String>,
        }
        serde_json::from_slice::<Id>(&self.body).ok().and_then(|id| id.request_id)
    }
}

/// Builds a payload of `type_name` carrying `body` as JSON.
pub fn encode<T: Serialize>(type_name: &str, body: &T) -> Payload {
    let value = serde_json::to_vec(body).unwrap_or_else(|_| b"{}".to_vec());
    Payload {
        metadata: Some(Metadata { r#type: type_name.to_owned(), client_ip: String::new(), headers: HashMap::new() }),
        body: Some(prost_types::Any { type_url: String::new(), value }),
    }
}

/// A payload of `type_name` whose body is `body` as given (the fuzz
/// targets build requests this way).
pub fn encode_raw(type_name: &str, body: Vec<u8>) -> Payload {
    Payload {
        metadata: Some(Metadata { r#type: type_name.to_owned(), client_ip: String::new(), headers: HashMap::new() }),
        body: Some(prost_types::Any { type_url: String::new(), value: body }),
    }
}

/// A successful response of `type_name`: the common fields plus `fields`.
pub fn ok_response(type_name: &str, request_id: Option<&str>, fields: serde_json::Value) -> Payload {
    let mut obj = serde_json::Map::new();
    obj.insert("resultCode".into(), 200.into());
    obj.insert("errorCode".into(), 0.into());
    obj.insert("success".into(), true.into());
    if let Some(id) = request_id {
        obj.insert("requestId".into(), id.into());
    }
    if let serde_json::Value::Object(extra) = fields {
        obj.extend(extra);
    }
    encode(type_name, &serde_json::Value::Object(obj))
}

/// Writes one field's value, already as JSON, into a response body.
pub type FieldWriter<'a> = &'a dyn Fn(&mut Vec<u8>);

/// A successful response of `type_name`: the common fields plus `fields`,
/// each written by its function as JSON. The keys come out sorted, as
/// [`ok_response`] writes them through a `serde_json::Value`, so both give
/// the same bytes; this one builds no tree and copies encoded values (a
/// cached view) straight into the body. A field named like a common one
/// replaces it, as in [`ok_response`].
pub fn ok_response_with(type_name: &str, request_id: Option<&str>, fields: &[(&str, FieldWriter<'_>)]) -> Payload {
    let id = |out: &mut Vec<u8>| write_json_str(out, request_id.unwrap_or_default());
    let mut all: Vec<(&str, FieldWriter<'_>)> =
        vec![("resultCode", &|out| out.extend_from_slice(b"200")), ("errorCode", &|out| out.push(b'0'))];
    all.push(("success", &|out| out.extend_from_slice(b"true")));
    if request_id.is_some() {
        all.push(("requestId", &id));
    }
    all.extend_from_slice(fields);
    // Stable: of equal keys the field given last stays.
    all.sort_by(|a, b| a.0.cmp(b.0));
    let mut body = Vec::with_capacity(128);
    body.push(b'{');
    for (i, (key, write)) in all.iter().enumerate() {
        if all.get(i + 1).is_some_and(|next| next.0 == *key) {
            continue;
        }
        if body.len() > 1 {
            body.push(b',');
        }
        write_json_str(&mut body, key);
        body.push(b':');
        write(&mut body);
    }
    body.push(b'}');
    encode_raw(type_name, body)
}

/// Appends `value` as a JSON string.
pub fn write_json_str(out: &mut Vec<u8>, value: &str) {
    // A string always serialises.
    let _ = serde_json::to_writer(&mut *out, value);
}

/// An `ErrorResponse` for `error`.
pub fn error_response(error: &Error, request_id: Option<&str>) -> Payload {
    let mut obj = serde_json::Map::new();
    obj.insert("resultCode".into(), 500.into());
    obj.insert("errorCode".into(), error.nacos_code().into());
    obj.insert("message".into(), error.to_string().into());
    obj.insert("success".into(), false.into());
    if let Some(id) = request_id {
        obj.insert("requestId".into(), id.into());
    }
    encode("ErrorResponse", &serde_json::Value::Object(obj))
}

/// Reads a response payload's `resultCode` (200 means success).
pub fn result_code(payload: &Payload) -> Option<i64> {
    let body = payload.body.as_ref()?;
    let value: serde_json::Value = serde_json::from_slice(&body.value).ok()?;
    value.get("resultCode")?.as_i64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_errors() {
        let p = ok_response("InstanceResponse", Some("7"), serde_json::json!({"type": "registerInstance"}));
        let env = Envelope::open(p).expect("open");
        assert_eq!(env.type_name, "InstanceResponse");
        let v: serde_json::Value = env.parse().expect("json");
        assert_eq!(v["resultCode"], 200);
        assert_eq!(v["requestId"], "7");
        assert_eq!(v["type"], "registerInstance");

        let e = error_response(&Error::NoHandler("x".into()), None);
        let v: serde_json::Value = Envelope::open(e).expect("open").parse().expect("json");
        assert_eq!(v["errorCode"], 302);
        assert_eq!(v["resultCode"], 500);
        assert_eq!(v["success"], false);

        assert!(Envelope::open(Payload::default()).is_err(), "no type");
        let bad =
            Envelope { type_name: "T".into(), headers: HashMap::new(), client_ip: String::new(), body: b"{".to_vec() };
        assert!(matches!(bad.parse::<serde_json::Value>(), Err(Error::BadPayload(_))));
    }

    /// The writer without a tree gives the very bytes of the one with it.
    #[test]
    fn responses_written_directly_match_the_value_tree_byte_for_byte() {
        let body = |p: Payload| p.body.expect("body").value;
        let info = serde_json::json!({"hosts": [{"ip": "10.0.0.1", "port": 80}], "name": "a\"b"});
        let info_bytes = serde_json::to_vec(&info).expect("json");
        for rid in [None, Some("7"), Some("a\"quote")] {
            let tree = ok_response("QueryServiceResponse", rid, serde_json::json!({ "serviceInfo": info }));
            let direct = ok_response_with(
                "QueryServiceResponse",
                rid,
                &[("serviceInfo", &|out: &mut Vec<u8>| out.extend_from_slice(&info_bytes))],
            );
            assert_eq!(body(direct), body(tree), "request id {rid:?}");
        }
        let tree = ok_response("InstanceResponse", Some("1"), serde_json::json!({"type": "registerInstance"}));
        let direct = ok_response_with(
            "InstanceResponse",
            Some("1"),
            &[("type", &|out| write_json_str(out, "registerInstance"))],
        );
        assert_eq!(body(direct), body(tree));
        // A field named like a common one replaces it, as in the tree.
        let tree = ok_response("X", None, serde_json::json!({"success": false, "zz": 1}));
        let direct = ok_response_with(
            "X",
            None,
            &[("success", &|out| out.extend_from_slice(b"false")), ("zz", &|out| out.push(b'1'))],
        );
        assert_eq!(body(direct), body(tree));
    }
}
