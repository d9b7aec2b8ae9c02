//! Request parameters of the v1 API, from the query string *and* the form body.
//!
//! Nacos clients put parameters in either place, for every method (the Java
//! 1.x client sends `PUT .../beat` with `beat` in the form body and the rest
//! in the query), so handlers read one merged list. As in a servlet
//! container, query parameters come first and the first value of a name wins.
//!
//! Every accessor parses the raw text itself and reports a malformed value as
//! [`Error::InvalidParam`] naming the parameter, so a client never sees a
//! framework's rejection text.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::StatusCode;

use crate::api::ClientState;
use crate::error::{Error, Result};
use crate::naming::{validate, InstanceKey, ServiceKey};

/// Names a client may use for an instance's cluster (`cluster` is the alias
/// older SDKs send).
pub const CLUSTER_NAMES: &[&str] = &["clusterName", "cluster"];

/// The merged query and form parameters of one request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params {
    pairs: Vec<(String, String)>,
}

impl Params {
    /// Parameters from an already decoded list (query first, then body).
    #[cfg(test)]
    pub fn from_pairs(pairs: Vec<(String, String)>) -> Self {
        Params { pairs }
    }

    /// Parses a query string and an `application/x-www-form-urlencoded` body.
    pub fn parse(query: Option<&str>, form: Option<&[u8]>) -> Result<Self> {
        let mut pairs = Vec::new();
        if let Some(q) = query {
            decode_into(q.as_bytes(), "query string", &mut pairs)?;
        }
        if let Some(body) = form {
            decode_into(body, "form body", &mut pairs)?;
        }
        Ok(Params { pairs })
    }

    /// Every parameter, query first, in the order sent.
    pub fn pairs(&self) -> &[(String, String)] {
        &self.pairs
    }

    /// The first value of `name`, as sent (possibly empty).
    pub fn raw(&self, name: &str) -> Option<&str> {
        self.pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// The first non-blank value of `name`, trimmed.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.raw(name).map(str::trim).filter(|v| !v.is_empty())
    }

    /// The first non-blank value among `names` (a parameter and its aliases).
    pub fn get_any(&self, names: &[&str]) -> Option<&str> {
        names.iter().find_map(|n| self.get(n))
    }

    /// A value that must be present and not blank.
    pub fn required(&self, name: &str) -> Result<&str> {
        self.get(name).ok_or_else(|| Error::invalid(format!("Param '{name}' is required and must not be blank.")))
    }

    /// A boolean: `true` or `false` (any case); absent or blank gives `None`.
    pub fn bool_any(&self, names: &[&str]) -> Result<Option<bool>> {
        let Some((name, value)) = names.iter().find_map(|n| self.get(n).map(|v| (*n, v))) else {
            return Ok(None);
        };
        if value.eq_ignore_ascii_case("true") {
            Ok(Some(true))
        } else if value.eq_ignore_ascii_case("false") {
            Ok(Some(false))
        } else {
            Err(Error::invalid(format!("Param '{name}' must be 'true' or 'false', got '{value}'.")))
        }
    }

    /// A boolean parameter without aliases; see [`Params::bool_any`].
    pub fn bool(&self, name: &str) -> Result<Option<bool>> {
        self.bool_any(&[name])
    }

    /// A whole number, if given.
    pub fn int(&self, name: &str) -> Result<Option<i64>> {
        self.get(name)
            .map(|v| {
                v.parse::<i64>().map_err(|_| Error::invalid(format!("Param '{name}' is not a whole number: '{v}'.")))
            })
            .transpose()
    }

    /// A number, if given. `NaN` and infinities parse here and are refused by
    /// the range checks that follow.
    pub fn float(&self, name: &str) -> Result<Option<f64>> {
        self.get(name)
            .map(|v| v.parse::<f64>().map_err(|_| Error::invalid(format!("Param '{name}' is not a number: '{v}'."))))
            .transpose()
    }

    /// A port (1..=65535) that must be present.
    pub fn port(&self) -> Result<u16> {
        match self.int("port")? {
            Some(p) => validate::port(p),
            None => Err(Error::invalid("Param 'port' is required and must not be blank.")),
        }
    }

    /// An instance weight (0..=10000), if given.
    pub fn weight(&self) -> Result<Option<f64>> {
        self.float("weight")?.map(validate::weight).transpose()
    }

    /// The service named by `namespaceId`, `groupName` and `serviceName`
    /// (which may carry its group as `group@@service`), with Nacos's defaults.
    pub fn service_key(&self) -> Result<ServiceKey> {
        validate::service_key(self.get("namespaceId"), self.get("groupName"), self.raw("serviceName"))
    }

    /// The cluster named by `clusterName` (or `cluster`), `DEFAULT` if none.
    pub fn cluster(&self) -> Result<String> {
        validate::cluster(self.get_any(CLUSTER_NAMES))
    }

    /// The instance named by `ip`, `port` and the cluster parameters.
    pub fn instance_key(&self) -> Result<InstanceKey> {
        Ok(InstanceKey { ip: validate::ip(self.get("ip"))?, port: self.port()?, cluster: self.cluster()? })
    }

    /// Metadata as JSON or `k=v,k=v`, if given. An empty value means "no
    /// metadata", which lets updates clear it.
    pub fn metadata(&self) -> Result<Option<BTreeMap<String, String>>> {
        self.raw("metadata").map(validate::parse_metadata_param).transpose()
    }
}

/// Whether a body with this content type carries form parameters. A missing
/// content type counts as a form, as curl and some SDKs omit it.
pub(crate) fn is_form(content_type: Option<&str>) -> bool {
    match content_type {
        None => true,
        Some(ct) => {
            ct.split(';').next().is_some_and(|m| m.trim().eq_ignore_ascii_case("application/x-www-form-urlencoded"))
        }
    }
}

impl FromRequest<Arc<ClientState>> for Params {
    type Rejection = Error;

    async fn from_request(req: Request, state: &Arc<ClientState>) -> Result<Self> {
        let query = req.uri().query().map(str::to_owned);
        let form = is_form(req.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()));
        // Reading through `Bytes` applies the node's `DefaultBodyLimit`.
        let body = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                Error::TooLarge(format!("Request body is larger than the limit of {} bytes.", state.max_body_bytes))
            } else {
                Error::invalid(format!("Cannot read the request body: {e}"))
            }
        })?;
        let form_body = (form && !body.is_empty()).then_some(&body[..]);
        Params::parse(query.as_deref(), form_body)
    }
}

/// Decodes `a=1&b=x%20y` into pairs, refusing bad escapes and invalid UTF-8.
fn decode_into(raw: &[u8], place: &str, out: &mut Vec<(String, String)>) -> Result<()> {
    for part in raw.split(|b| *b == b'&').filter(|p| !p.is_empty()) {
        let (k, v) = match part.iter().position(|b| *b == b'=') {
            Some(i) => (&part[..i], &part[i + 1..]),
            None => (part, &part[part.len()..]),
        };
        let key = percent_decode(k, place)?;
        if key.is_empty() {
            continue;
        }
        out.push((key, percent_decode(v, place)?));
    }
    Ok(())
}

/// Decodes one form-encoded name or value: `+` is a space, `%XX` a byte
/// (decoded by `percent-encoding`). Stricter than that crate, which passes
/// a malformed escape through as text: a `%` not followed by two hex digits
/// is refused, as is a result that is not UTF-8.
fn percent_decode(raw: &[u8], place: &str) -> Result<String> {
    let malformed = raw
        .iter()
        .enumerate()
        .any(|(i, b)| *b == b'%' && !raw.get(i + 1..i + 3).is_some_and(|hex| hex.iter().all(u8::is_ascii_hexdigit)));
    if malformed {
        return Err(Error::invalid(format!("The {place} has a malformed '%' escape.")));
    }
    // `+` is replaced before decoding, so an escaped `%2B` stays a plus.
    let spaced: Cow<'_, [u8]> = if raw.contains(&b'+') {
        Cow::Owned(raw.iter().map(|b| if *b == b'+' { b' ' } else { *b }).collect())
    } else {
        Cow::Borrowed(raw)
    };
    percent_encoding::percent_decode(&spaced)
        .decode_utf8()
        .map(Cow::into_owned)
        .map_err(|_| Error::invalid(format!("The {place} is not valid UTF-8.")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_comes_before_body_and_first_value_wins() {
        let p = Params::parse(Some("a=1&b=2&a=3"), Some(b"a=4&c=x+y%21")).expect("parses");
        assert_eq!(p.get("a"), Some("1"));
        assert_eq!(p.get("b"), Some("2"));
        assert_eq!(p.get("c"), Some("x y!"));
        assert_eq!(p.get("d"), None);
    }

    #[test]
    fn blank_values_count_as_absent_except_raw() {
        let p = Params::parse(Some("a=&b=%20&flag"), None).expect("parses");
        assert_eq!(p.get("a"), None);
        assert_eq!(p.raw("a"), Some(""));
        assert_eq!(p.get("b"), None);
        assert_eq!(p.raw("flag"), Some(""));
    }

    #[test]
    fn escapes_decode_like_forms_do() {
        let p = Params::parse(Some("a=%2B+b&c=%e2%82%ac&d=100%25&e=a%20b"), None).expect("parses");
        assert_eq!(p.get("a"), Some("+ b"), "an escaped plus stays a plus");
        assert_eq!(p.get("c"), Some("€"));
        assert_eq!(p.get("d"), Some("100%"));
        assert_eq!(p.get("e"), Some("a b"));
        assert!(Params::parse(Some("a=%"), None).is_err());
        assert!(Params::parse(Some("a=%%41"), None).is_err());
        assert!(Params::parse(Some("%zz=1"), None).is_err(), "names are checked too");
    }

    #[test]
    fn malformed_encodings_are_refused() {
        assert!(Params::parse(Some("a=%zz"), None).is_err());
        assert!(Params::parse(Some("a=%4"), None).is_err());
        assert!(Params::parse(Some("a=%+f"), None).is_err(), "a sign is not a hex digit");
        assert!(Params::parse(None, Some(b"a=%ff")).is_err(), "invalid UTF-8");
    }

    #[test]
    fn typed_accessors_name_the_parameter() {
        let p = Params::parse(Some("port=abc&weight=NaN&ok=TRUE&bad=yes&n=-3"), None).expect("parses");
        let err = p.port().expect_err("not a number").to_string();
        assert!(err.contains("'port'"), "{err}");
        let err = p.weight().expect_err("NaN").to_string();
        assert!(err.contains("'weight'"), "{err}");
        assert_eq!(p.bool("ok").expect("bool"), Some(true));
        assert_eq!(p.bool("missing").expect("bool"), None);
        assert!(p.bool("bad").expect_err("not a bool").to_string().contains("'bad'"));
        assert_eq!(p.int("n").expect("int"), Some(-3));
    }

    #[test]
    fn ports_are_range_checked() {
        for bad in ["0", "70000", "-1", "1.5"] {
            let p = Params::from_pairs(vec![("port".into(), bad.into())]);
            assert!(p.port().is_err(), "{bad}");
        }
        let p = Params::from_pairs(vec![("port".into(), "8080".into())]);
        assert_eq!(p.port().expect("valid"), 8080);
    }

    #[test]
    fn aliases_are_tried_in_order() {
        let p = Params::parse(Some("cluster=c1&enable=false"), None).expect("parses");
        assert_eq!(p.get_any(&["clusterName", "cluster"]), Some("c1"));
        assert_eq!(p.bool_any(&["enabled", "enable"]).expect("bool"), Some(false));
    }

    #[test]
    fn content_types() {
        assert!(is_form(None));
        assert!(is_form(Some("application/x-www-form-urlencoded; charset=UTF-8")));
        assert!(!is_form(Some("application/json")));
    }
}
