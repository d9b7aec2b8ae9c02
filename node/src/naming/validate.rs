//! Input validation shared by the gRPC and HTTP APIs.
//!
//! Every check returns [`Error::InvalidParam`] with a message naming the
//! parameter, and runs before anything is written, so bad input changes
//! nothing.

use std::collections::BTreeMap;

use super::model::{
    Instance, InstanceWire, ServiceKey, DEFAULT_CLUSTER, DEFAULT_GROUP, DEFAULT_NAMESPACE, GROUP_SEPARATOR,
    META_BEAT_INTERVAL, META_BEAT_TIMEOUT, META_DELETE_TIMEOUT,
};
use crate::error::{Error, Result};

/// Size limits applied to client input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Maximum bytes of one instance's (or service's) metadata, keys plus values.
    pub max_metadata_bytes: usize,
    /// Maximum instances in one batch registration.
    pub max_batch_instances: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_metadata_bytes: 16 * 1024, max_batch_instances: 1_000 }
    }
}

/// Longest namespace, group, service or cluster name accepted.
pub const MAX_NAME_LEN: usize = 256;
/// Largest weight Nacos accepts.
pub const MAX_WEIGHT: f64 = 10_000.0;
/// Smallest positive weight: Nacos raises a weight between 0 and this to
/// it (its `MIN_POSITIVE_WEIGHT_VALUE`), so that a subnormal weight such as
/// `1e-320` never reaches a client's weighted choice.
pub const MIN_POSITIVE_WEIGHT: f64 = 0.01;
/// Longest host name (RFC 1123: 253 characters in text form).
pub const MAX_HOST_LEN: usize = 253;

fn check_name(kind: &str, value: &str) -> Result<()> {
    if value.trim().is_empty() {
        return Err(Error::invalid(format!("Param '{kind}' is required and must not be blank.")));
    }
    if value.len() > MAX_NAME_LEN {
        return Err(Error::invalid(format!("Param '{kind}' is longer than {MAX_NAME_LEN} bytes.")));
    }
    if value.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(Error::invalid(format!("Param '{kind}' must not contain whitespace or control characters.")));
    }
    Ok(())
}

/// Validates a namespace id, or returns the default for `None`/empty.
pub fn namespace(value: Option<&str>) -> Result<String> {
    match value.map(str::trim) {
        None | Some("") => Ok(DEFAULT_NAMESPACE.to_owned()),
        Some(ns) => {
            check_name("namespaceId", ns)?;
            if !ns.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':')) {
                return Err(Error::invalid(format!(
                    "Param 'namespaceId' is illegal: '{ns}' (allowed: letters, digits, '_', '-', '.', ':')."
                )));
            }
            Ok(ns.to_owned())
        }
    }
}

/// Validates a cluster name, or returns the default for `None`/empty.
pub fn cluster(value: Option<&str>) -> Result<String> {
    match value.map(str::trim) {
        None | Some("") => Ok(DEFAULT_CLUSTER.to_owned()),
        Some(c) => {
            check_name("clusterName", c)?;
            if !c.chars().all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '-' | '_' | '.')) {
                return Err(Error::invalid(format!(
                    "Param 'clusterName' is illegal: '{c}' (allowed: letters, digits, '-', '_', '.')."
                )));
            }
            Ok(c.to_owned())
        }
    }
}

/// Builds a [`ServiceKey`] from a namespace, an optional group and a service
/// name that may carry its group as `group@@service`.
pub fn service_key(namespace_id: Option<&str>, group: Option<&str>, service_name: Option<&str>) -> Result<ServiceKey> {
    let namespace = namespace(namespace_id)?;
    let raw = service_name.map(str::trim).unwrap_or("");
    if raw.is_empty() {
        return Err(Error::invalid("Param 'serviceName' is required and must not be blank."));
    }
    let (group_from_name, name) = match raw.split_once(GROUP_SEPARATOR) {
        Some((g, n)) => (Some(g), n),
        None => (None, raw),
    };
    if name.contains(GROUP_SEPARATOR) {
        return Err(Error::invalid(format!("Param 'serviceName' is illegal: '{raw}' has more than one '@@'.")));
    }
    let group = match (group_from_name, group.map(str::trim).filter(|g| !g.is_empty())) {
        (Some(g), _) => g,
        (None, Some(g)) => g,
        (None, None) => DEFAULT_GROUP,
    };
    check_name("groupName", group)?;
    if group.contains(GROUP_SEPARATOR) {
        return Err(Error::invalid("Param 'groupName' must not contain '@@'."));
    }
    check_name("serviceName", name)?;
    Ok(ServiceKey::new(namespace, group, name))
}

/// Validates an instance address: an IPv4 or IPv6 address, or a DNS host
/// name (RFC 1123: dot-separated labels of 1 to 63 letters, digits and
/// `-`, not starting or ending with `-`, at most 253 characters). A name of
/// digits and dots only must be an IPv4 address (Nacos refuses
/// `999.1.1.1` as "spelled incorrectly" too).
pub fn ip(value: Option<&str>) -> Result<String> {
    let ip = value.map(str::trim).unwrap_or("");
    if ip.is_empty() {
        return Err(Error::invalid("Param 'ip' is required and must not be blank."));
    }
    if ip.parse::<std::net::IpAddr>().is_ok() {
        return Ok(ip.to_owned());
    }
    let shown = crate::telemetry::clip(ip);
    if ip.bytes().all(|b| b.is_ascii_digit() || b == b'.') || ip.contains(':') {
        return Err(Error::invalid(format!("Param 'ip' is not a valid IP address: '{shown}'.")));
    }
    if !is_host_name(ip) {
        return Err(Error::invalid(format!(
            "Param 'ip' is neither an IP address nor a host name (RFC 1123: labels of letters, digits and '-', \
             separated by dots, at most {MAX_HOST_LEN} characters): '{shown}'."
        )));
    }
    Ok(ip.to_owned())
}

/// Whether `name` is a host name as RFC 1123 defines it.
pub fn is_host_name(name: &str) -> bool {
    name.len() <= MAX_HOST_LEN
        && name.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// Validates a port number (1..=65535).
pub fn port(value: i64) -> Result<u16> {
    match u16::try_from(value) {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(Error::invalid(format!("Param 'port' is out of range: {value} (must be 1..65535)."))),
    }
}

/// Validates a weight: finite, 0 to 10000 as in Nacos; a positive weight
/// below [`MIN_POSITIVE_WEIGHT`] becomes that, as Nacos does.
pub fn weight(value: f64) -> Result<f64> {
    if !(value.is_finite() && (0.0..=MAX_WEIGHT).contains(&value)) {
        return Err(Error::invalid(format!(
            "Param 'weight' is out of range: {value} (the weights range from 0.0 to {MAX_WEIGHT:.1})."
        )));
    }
    Ok(if value > 0.0 && value < MIN_POSITIVE_WEIGHT { MIN_POSITIVE_WEIGHT } else { value })
}

/// Validates metadata size and the `preserved.*` timing keys.
pub fn metadata(meta: &BTreeMap<String, String>, limits: &Limits) -> Result<()> {
    let size: usize = meta.iter().map(|(k, v)| k.len() + v.len()).sum();
    if size > limits.max_metadata_bytes {
        return Err(Error::invalid(format!(
            "Param 'metadata' is too large: {size} bytes (limit {} bytes).",
            limits.max_metadata_bytes
        )));
    }
    if meta.keys().any(|k| k.is_empty()) {
        return Err(Error::invalid("Param 'metadata' has an empty key."));
    }
    let millis = |key: &str| -> Result<Option<u64>> {
        match meta.get(key) {
            None => Ok(None),
            Some(v) => match v.trim().parse::<u64>() {
                Ok(n) if n > 0 => Ok(Some(n)),
                _ => Err(Error::invalid(format!("Metadata '{key}' must be a positive number of milliseconds."))),
            },
        }
    };
    let interval = millis(META_BEAT_INTERVAL)?.unwrap_or(5_000);
    let timeout = millis(META_BEAT_TIMEOUT)?.unwrap_or(15_000);
    let delete = millis(META_DELETE_TIMEOUT)?.unwrap_or(30_000);
    if interval > timeout || interval > delete {
        return Err(Error::invalid(
            "Instance 'heart beat interval' must be less than 'heart beat timeout' and 'ip delete timeout'.",
        ));
    }
    Ok(())
}

/// Turns a client's instance JSON into a validated [`Instance`].
///
/// `ephemeral` overrides the instance's own flag when the request type fixes
/// it (an `InstanceRequest` is always ephemeral, a `PersistentInstanceRequest`
/// never).
pub fn instance(wire: &InstanceWire, ephemeral: Option<bool>, limits: &Limits) -> Result<Instance> {
    let ip = ip(Some(&wire.ip))?;
    let port = port(wire.port)?;
    let weight = weight(wire.weight)?;
    let cluster = cluster(wire.cluster_name.as_deref())?;
    metadata(&wire.metadata, limits)?;
    Ok(Instance {
        ip,
        port,
        weight,
        healthy: wire.healthy,
        enabled: wire.enabled,
        ephemeral: ephemeral.unwrap_or(wire.ephemeral),
        cluster,
        metadata: wire.metadata.clone(),
    })
}

/// Metadata from a JSON object, by the one rule both APIs follow (Nacos
/// reads metadata as a map of strings with Jackson): a string is taken as
/// it is, a number or boolean as its text, `null` as an empty string, and
/// a nested object or array is refused.
pub fn metadata_from_json(obj: &serde_json::Map<String, serde_json::Value>) -> Result<BTreeMap<String, String>> {
    obj.iter().map(|(k, v)| Ok((k.clone(), metadata_value(k, v)?))).collect()
}

/// One metadata value by the rule of [`metadata_from_json`].
pub fn metadata_value(key: &str, value: &serde_json::Value) -> Result<String> {
    match value {
        serde_json::Value::String(s) => Ok(s.clone()),
        serde_json::Value::Number(n) => Ok(n.to_string()),
        serde_json::Value::Bool(b) => Ok(b.to_string()),
        serde_json::Value::Null => Ok(String::new()),
        serde_json::Value::Object(_) | serde_json::Value::Array(_) => Err(Error::invalid(format!(
            "Metadata '{}' has a nested JSON value; metadata values must be strings (numbers and booleans are \
             taken as text).",
            crate::telemetry::clip(key)
        ))),
    }
}

/// Parses metadata given over HTTP: JSON object, or `k=v,k=v`.
pub fn parse_metadata_param(raw: &str) -> Result<BTreeMap<String, String>> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Ok(BTreeMap::new());
    }
    if raw.starts_with('{') {
        let value: serde_json::Value = serde_json::from_str(raw)
            .map_err(|e| Error::invalid(format!("Param 'metadata' is not valid JSON: {e}")))?;
        let obj = value.as_object().ok_or_else(|| Error::invalid("Param 'metadata' must be a JSON object."))?;
        return metadata_from_json(obj);
    }
    let mut out = BTreeMap::new();
    for pair in raw.split(',').filter(|p| !p.trim().is_empty()) {
        let (k, v) = pair
            .split_once('=')
            .ok_or_else(|| Error::invalid(format!("Param 'metadata' is illegal: '{pair}' is not key=value.")))?;
        out.insert(k.trim().to_owned(), v.trim().to_owned());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_key_defaults_and_grouped_names() {
        let k = service_key(None, None, Some("svc")).expect("valid");
        assert_eq!(k, ServiceKey::new("public", "DEFAULT_GROUP", "svc"));
        let k = service_key(Some("dev"), Some("ignored"), Some("g1@@svc")).expect("valid");
        assert_eq!(k, ServiceKey::new("dev", "g1", "svc"));
        let k = service_key(None, Some("g2"), Some("svc")).expect("valid");
        assert_eq!(k.group, "g2");
    }

    #[test]
    fn bad_names_are_refused() {
        assert!(service_key(None, None, None).is_err());
        assert!(service_key(None, None, Some("  ")).is_err());
        assert!(service_key(None, None, Some("a@@b@@c")).is_err());
        assert!(service_key(None, None, Some("has space")).is_err());
        assert!(service_key(Some("bad ns"), None, Some("svc")).is_err());
        assert!(service_key(None, None, Some(&"x".repeat(MAX_NAME_LEN + 1))).is_err());
        assert!(cluster(Some("bad/cluster")).is_err());
    }

    #[test]
    fn ports_and_weights_are_range_checked() {
        assert!(port(0).is_err());
        assert!(port(65536).is_err());
        assert!(port(-1).is_err());
        assert_eq!(port(8080).expect("valid"), 8080);
        assert!(weight(-0.1).is_err());
        assert!(weight(10_000.1).is_err());
        assert!(weight(f64::NAN).is_err());
        assert!(weight(f64::INFINITY).is_err());
        assert_eq!(weight(0.0).expect("valid"), 0.0);
        assert_eq!(weight(10_000.0).expect("valid"), 10_000.0);
        assert_eq!(weight(1e-320).expect("raised"), MIN_POSITIVE_WEIGHT, "as Nacos does");
        assert_eq!(weight(0.005).expect("raised"), MIN_POSITIVE_WEIGHT);
        assert_eq!(weight(0.5).expect("valid"), 0.5);
        let err = weight(-0.0001).expect_err("negative").to_string();
        assert!(err.contains("'weight'") && err.contains("0.0 to 10000.0"), "{err}");
    }

    #[test]
    fn addresses_are_ips_or_host_names() {
        for good in [
            "10.0.0.1",
            "::1",
            "fe80::1",
            "2001:db8::8a2e:370:7334",
            "orders-0",
            "orders-0.orders.ns.svc",
            "a.b-c.d",
            "x",
            "1host.example",
            &format!("{}.x", "a".repeat(63)),
        ] {
            assert_eq!(ip(Some(good)).expect(good), good);
        }
        assert_eq!(ip(Some(" 10.0.0.1 ")).expect("trimmed"), "10.0.0.1");
        for bad in [
            "not..an..ip",
            "999.1.1.1",
            "1.2.3",
            "10.0.0.1.",
            ".host",
            "-host",
            "host-",
            "ho st",
            "h_st",
            "host/",
            "a#b",
            "a,b",
            "fe80::1%eth0",
            "::g",
            "[::1]",
            &"a".repeat(64),
            &format!("{}.com", "a.".repeat(126)),
        ] {
            let err = ip(Some(bad)).expect_err(bad).to_string();
            assert!(err.contains("'ip'"), "{bad}: {err}");
        }
        assert!(ip(None).is_err());
        assert!(ip(Some("  ")).is_err());
    }

    #[test]
    fn metadata_limits_and_timings() {
        let limits = Limits { max_metadata_bytes: 8, ..Limits::default() };
        let mut m = BTreeMap::new();
        m.insert("k".to_owned(), "1234567".to_owned());
        assert!(metadata(&m, &limits).is_ok());
        m.insert("k2".to_owned(), "x".to_owned());
        assert!(metadata(&m, &limits).is_err());

        let mut m = BTreeMap::new();
        m.insert(META_BEAT_INTERVAL.to_owned(), "20000".to_owned());
        assert!(metadata(&m, &Limits::default()).is_err(), "interval above timeout");
        m.insert(META_BEAT_INTERVAL.to_owned(), "abc".to_owned());
        assert!(metadata(&m, &Limits::default()).is_err());
    }

    #[test]
    fn metadata_param_forms() {
        let m = parse_metadata_param(r#"{"a":"1","b":2}"#).expect("json");
        assert_eq!(m.get("a").map(String::as_str), Some("1"));
        assert_eq!(m.get("b").map(String::as_str), Some("2"));
        let m = parse_metadata_param("a=1, b=2").expect("pairs");
        assert_eq!(m.len(), 2);
        let m = parse_metadata_param(r#"{"n":1.5,"t":true,"z":null}"#).expect("scalars");
        assert_eq!((m["n"].as_str(), m["t"].as_str(), m["z"].as_str()), ("1.5", "true", ""));
        for nested in [r#"{"a":{"b":"c"}}"#, r#"{"a":[1,2]}"#] {
            let err = parse_metadata_param(nested).expect_err(nested).to_string();
            assert!(err.contains("nested"), "{err}");
        }
        assert!(parse_metadata_param("{not json").is_err());
        assert!(parse_metadata_param("novalue").is_err());
        assert!(parse_metadata_param("[1,2]").is_err());
    }
}
