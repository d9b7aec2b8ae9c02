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
}
