//! `/nacos/v1/core/cluster/nodes` and `/nodes/self`: the members as Nacos
//! consoles and 1.x tooling read them.
//!
//! The list and states come from [`crate::cluster::Membership`].

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use serde::Serialize;

use super::params::Params;
use crate::api::ClientState;
use crate::cluster::Member;

/// One member, in Nacos's `Member` JSON shape.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MemberView {
    /// Host part of the address.
    pub ip: String,
    /// Main port; `null` if the address has none.
    pub port: Option<u16>,
    /// `UP`, `SUSPICIOUS` or `DOWN`.
    pub state: &'static str,
    /// `host:port`, the member's name.
    pub address: String,
    /// Extra member facts (Nacos puts `raftPort` and versions here).
    pub extend_info: BTreeMap<String, String>,
    /// Ability flags (none are advertised).
    pub abilities: BTreeMap<String, bool>,
    /// Failed reports in a row.
    pub fail_access_cnt: u32,
}

/// Nacos's `RestResult` envelope of the core API.
#[derive(Debug, Serialize)]
pub struct RestResult<T> {
    /// 200 on success.
    pub code: u16,
    /// Always `null` on success.
    pub message: Option<String>,
    /// The answer.
    pub data: T,
}

impl<T> RestResult<T> {
    fn ok(data: T) -> Json<Self> {
        Json(RestResult { code: 200, message: None, data })
    }
}

/// Splits `host:port` (or `[v6]:port`) into host and port.
pub fn split_address(address: &str) -> (String, Option<u16>) {
    match address.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() => match port.parse() {
            Ok(port) => (host.trim_start_matches('[').trim_end_matches(']').to_owned(), Some(port)),
            Err(_) => (address.to_owned(), None),
        },
        _ => (address.to_owned(), None),
    }
}

fn view(member: &Member) -> MemberView {
    let (ip, port) = split_address(&member.address);
    let mut extend_info = BTreeMap::new();
    if let Some(version) = &member.version {
        extend_info.insert("version".to_owned(), version.clone());
    }
    MemberView {
        ip,
        port,
        state: member.state.as_str(),
        address: member.address.clone(),
        extend_info,
        abilities: BTreeMap::new(),
        fail_access_cnt: member.fail_count,
    }
}

fn this_member(state: &ClientState) -> MemberView {
    match state.membership.member(&state.member) {
        Some(m) => view(&m),
        None => view(&Member::new(state.member.clone())),
    }
}

/// `GET /nacos/v1/core/cluster/nodes[?keyword=]`: members whose address
/// contains `keyword` (all without one).
pub async fn nodes(State(state): State<Arc<ClientState>>, p: Params) -> Json<RestResult<Vec<MemberView>>> {
    let keyword = p.get("keyword").unwrap_or("");
    let members = state.membership.members().iter().filter(|m| m.address.contains(keyword)).map(view).collect();
    RestResult::ok(members)
}

/// `GET /nacos/v1/core/cluster/nodes/self`: this member.
pub async fn node_self(State(state): State<Arc<ClientState>>) -> Json<RestResult<MemberView>> {
    RestResult::ok(this_member(&state))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_split_into_host_and_port() {
        assert_eq!(split_address("10.0.0.1:8848"), ("10.0.0.1".to_owned(), Some(8848)));
        assert_eq!(
            split_address("demo-0.demo-headless.ns.svc:8848"),
            ("demo-0.demo-headless.ns.svc".to_owned(), Some(8848))
        );
        assert_eq!(split_address("[::1]:8848"), ("::1".to_owned(), Some(8848)));
        assert_eq!(split_address("host"), ("host".to_owned(), None));
        assert_eq!(split_address("host:x"), ("host:x".to_owned(), None));
    }
}
