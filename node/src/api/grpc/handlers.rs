//! One function per Nacos request type handled on a registered connection,
//! after the token check when authentication is on ([`check_token`]).

use roster_proto::nacos::Payload;
use serde_json::json;

use super::connection::Connection;
use super::messages::{
    cluster_list, BatchInstanceRequest, InstanceRequest, NamingBase, ServiceListRequest, ServiceQueryRequest,
    SubscribeServiceRequest,
};
use super::payload::{ok_response, ok_response_with, write_json_str, Envelope};
use crate::api::ClientState;
use crate::auth::{Action, ACCESS_TOKEN};
use crate::error::{Error, Result};
use crate::naming::model::DEFAULT_GROUP;
use crate::naming::store::now_millis;
use crate::naming::{validate, ClientKind, Form, InstanceKey, Selection, ServiceKey};
use crate::raft::Command;

/// Largest page a `ServiceListRequest` may ask for.
const MAX_PAGE_SIZE: i64 = 10_000;

/// Handles one unary request from a registered connection.
pub async fn handle(state: &ClientState, conn: &Connection, env: &Envelope) -> Result<Payload> {
    let request_id = env.request_id();
    let rid = request_id.as_deref();
    check_token(state, env)?;
    match env.type_name.as_str() {
        "HealthCheckRequest" => Ok(ok_response_with("HealthCheckResponse", rid, &[])),
        "InstanceRequest" => instance(state, conn, env.parse()?, rid, true),
        "PersistentInstanceRequest" => persistent_instance(state, env.parse()?, rid).await,
        "BatchInstanceRequest" => batch_instance(state, conn, env.parse()?, rid),
        "ServiceQueryRequest" => service_query(state, env.parse()?, rid),
        "SubscribeServiceRequest" => subscribe(state, conn, env.parse()?, rid),
        "ServiceListRequest" => service_list(state, env.parse()?, rid),
        other => Err(Error::NoHandler(format!("RequestHandler Not Found: no handler for request type '{other}'"))),
    }
}

/// What a request type needs of its caller when authentication is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Need {
    /// Nothing: connection keep-alive.
    Open,
    /// The right for the request's namespace.
    Right(Action),
    /// Any valid token: every type not listed, so that a type added later
    /// is never open by mistake.
    LoggedIn,
}

fn need(type_name: &str) -> Need {
    match type_name {
        "HealthCheckRequest" => Need::Open,
        "InstanceRequest" | "PersistentInstanceRequest" | "BatchInstanceRequest" => Need::Right(Action::Write),
        "ServiceQueryRequest" | "SubscribeServiceRequest" | "ServiceListRequest" => Need::Right(Action::Read),
        _ => Need::LoggedIn,
    }
}

/// Headers some clients leave in the JSON body instead of the payload
/// metadata; Nacos merges both, and so does this check.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
struct BodyHeaders {
    headers: std::collections::HashMap<String, String>,
}

/// Checks the `accessToken` header (payload metadata first, then the body's
/// `headers`) and the right on the request's namespace. `ServerCheckRequest`
/// and `ConnectionSetupRequest` never get here: they open the connection.
/// Pushes to a subscription go on after its token expires, as in Nacos: the
/// right was checked when it subscribed.
pub fn check_token(state: &ClientState, env: &Envelope) -> Result<()> {
    let Some(auth) = &state.auth else {
        return Ok(());
    };
    let need = need(&env.type_name);
    if need == Need::Open {
        return Ok(());
    }
    let in_body = || env.parse::<BodyHeaders>().ok().and_then(|b| b.headers.get(ACCESS_TOKEN).cloned());
    let token = env.headers.get(ACCESS_TOKEN).cloned().or_else(in_body);
    let identity = auth.authenticate(token.as_deref(), &env.type_name)?;
    if let Need::Right(action) = need {
        let base: NamingBase = env.parse()?;
        let namespace = validate::namespace(base.namespace.as_deref())?;
        auth.authorize(&identity, &namespace, action, &env.type_name)?;
    }
    Ok(())
}

/// Refuses a new service on a connection that holds
/// `--max-services-per-connection` already (`held`: how many it holds and
/// whether `key`'s is one of them); changing one it holds is always fine.
fn check_services(state: &ClientState, held: (usize, bool), what: &str) -> Result<()> {
    let max = state.client_limits.max_services_per_connection;
    let (count, has) = held;
    if max == 0 || has || count < max {
        return Ok(());
    }
    state.client_limits.rejected(crate::limits::Limit::ServicesPerConnection);
    Err(Error::invalid(format!(
        "This connection {what} {count} services already, the limit of one connection \
         (--max-services-per-connection {max})."
    )))
}

/// If the connection closed while a write ran, undo what the write left:
/// the close may have cleaned up before the write landed.
fn undo_if_closed(state: &ClientState, conn: &Connection) {
    if conn.is_closed() {
        super::retire_client(state, &conn.id);
        state.subscribers.remove_connection(&conn.id);
    }
}

pub(crate) fn instance_key(wire: &crate::naming::InstanceWire) -> Result<InstanceKey> {
    Ok(InstanceKey {
        ip: validate::ip(Some(&wire.ip))?,
        port: validate::port(wire.port)?,
        cluster: validate::cluster(wire.cluster_name.as_deref())?,
    })
}

/// `InstanceRequest` (ephemeral, owned by the connection) and
/// `PersistentInstanceRequest` (persistent, owned by nobody).
fn instance(
    state: &ClientState,
    conn: &Connection,
    req: InstanceRequest,
    rid: Option<&str>,
    ephemeral: bool,
) -> Result<Payload> {
    let key = req.base.service_key()?;
    let wire = req.instance.ok_or_else(|| Error::invalid("Param 'instance' is required."))?;
    if ephemeral && !wire.ephemeral {
        return Err(Error::invalid(
            "InstanceRequest registers ephemeral instances only; use PersistentInstanceRequest for ephemeral=false.",
        ));
    }
    match req.kind.as_str() {
        "registerInstance" => {
            let inst = validate::instance(&wire, Some(ephemeral), &state.limits)?;
            if ephemeral {
                check_services(state, state.store.published_services(&conn.id, &key), "publishes in")?;
                state.store.register_ephemeral(&conn.id, ClientKind::Connection, &key, inst);
                undo_if_closed(state, conn);
            } else {
                state.store.register_persistent(&key, inst);
            }
        }
        "deregisterInstance" => {
            let ikey = instance_key(&wire)?;
            if ephemeral {
                // Nacos (`EphemeralClientOperationServiceImpl`) removes
                // whatever the connection publishes in the service, whatever
                // instance the request names: after a batch registration,
                // one deregistration takes the whole batch. The instance
                // must still be well formed.
                if state.store.publishes_in(&conn.id, &key) {
                    state.store.batch_register(&conn.id, ClientKind::Connection, &key, Vec::new());
                }
            } else {
                state.store.deregister_persistent(&key, &ikey);
            }
        }
        other => return Err(Error::invalid(format!("Unsupported request type '{other}'."))),
    }
    Ok(typed_response("InstanceResponse", rid, &req.kind))
}

/// An answer whose one field is `type`: the request's kind, echoed.
fn typed_response(type_name: &str, rid: Option<&str>, kind: &str) -> Payload {
    ok_response_with(type_name, rid, &[("type", &|out| write_json_str(out, kind))])
}

/// `PersistentInstanceRequest`: persistent instances belong to no
/// connection; they are written through Raft (forwarded to the leader when
/// this node follows) and answered once committed.
async fn persistent_instance(state: &ClientState, req: InstanceRequest, rid: Option<&str>) -> Result<Payload> {
    let service = req.base.service_key()?;
    let wire = req.instance.ok_or_else(|| Error::invalid("Param 'instance' is required."))?;
    let command = match req.kind.as_str() {
        "registerInstance" => {
            Command::RegisterInstance { service, instance: validate::instance(&wire, Some(false), &state.limits)? }
        }
        "deregisterInstance" => Command::DeregisterInstance { service, instance: instance_key(&wire)? },
        other => return Err(Error::invalid(format!("Unsupported request type '{other}'."))),
    };
    state.raft.write(command).await?;
    Ok(typed_response("InstanceResponse", rid, &req.kind))
}

/// `BatchInstanceRequest`: replaces what the connection publishes in the service.
fn batch_instance(
    state: &ClientState,
    conn: &Connection,
    req: BatchInstanceRequest,
    rid: Option<&str>,
) -> Result<Payload> {
    let key = req.base.service_key()?;
    if req.instances.len() > state.limits.max_batch_instances {
        return Err(Error::invalid(format!(
            "Param 'instances' has {} instances (limit {}).",
            req.instances.len(),
            state.limits.max_batch_instances
        )));
    }
    match req.kind.as_str() {
        "batchRegisterInstance" => {
            if req.instances.iter().any(|w| !w.ephemeral) {
                return Err(Error::invalid("BatchInstanceRequest registers ephemeral instances only."));
            }
            let instances = req
                .instances
                .iter()
                .map(|w| validate::instance(w, Some(true), &state.limits))
                .collect::<Result<Vec<_>>>()?;
            check_services(state, state.store.published_services(&conn.id, &key), "publishes in")?;
            state.store.batch_register(&conn.id, ClientKind::Connection, &key, instances);
            undo_if_closed(state, conn);
        }
        "batchDeregisterInstance" => {
            let keys = req.instances.iter().map(instance_key).collect::<Result<Vec<_>>>()?;
            for ikey in keys {
                state.store.deregister_ephemeral(&conn.id, &key, &ikey, false);
            }
        }
        other => return Err(Error::invalid(format!("Unsupported request type '{other}'."))),
    }
    Ok(typed_response("BatchInstanceResponse", rid, &req.kind))
}

/// `ServiceQueryRequest`: the current view, filtered.
fn service_query(state: &ClientState, req: ServiceQueryRequest, rid: Option<&str>) -> Result<Payload> {
    let key = req.base.service_key()?;
    let selection = Selection {
        clusters: cluster_list(req.cluster.as_deref()),
        healthy_only: req.healthy_only,
        grouped_name: false,
    };
    Ok(view_response(state, "QueryServiceResponse", rid, &key, &selection))
}

/// An answer carrying the view of `key` (its encoded form, shared by every
/// query until the service changes).
fn view_response(
    state: &ClientState,
    type_name: &str,
    rid: Option<&str>,
    key: &ServiceKey,
    selection: &Selection,
) -> Payload {
    let view = state.store.answer(key, selection, Form::Sorted);
    let now = now_millis();
    ok_response_with(type_name, rid, &[("serviceInfo", &|out| view.write(now, out))])
}

/// `SubscribeServiceRequest`: (un)subscribes and answers with the current view.
fn subscribe(
    state: &ClientState,
    conn: &Connection,
    req: SubscribeServiceRequest,
    rid: Option<&str>,
) -> Result<Payload> {
    let key = req.base.service_key()?;
    let clusters = cluster_list(req.clusters.as_deref());
    if req.subscribe {
        check_services(state, state.subscribers.subscribed(&conn.id, &key), "subscribes to")?;
        state.subscribers.add(&conn.id, &key, clusters.clone());
        undo_if_closed(state, conn);
    } else {
        state.subscribers.remove(&conn.id, &key);
    }
    let selection = Selection { clusters, healthy_only: false, grouped_name: false };
    Ok(view_response(state, "SubscribeServiceResponse", rid, &key, &selection))
}

/// `ServiceListRequest`: one page of service names of a group.
fn service_list(state: &ClientState, req: ServiceListRequest, rid: Option<&str>) -> Result<Payload> {
    let (namespace, group, page_no, page_size) = check_service_list(&req)?;
    let (count, names) = state.store.list_services(&namespace, group, page_no, page_size);
    Ok(ok_response("ServiceListResponse", rid, json!({ "count": count, "serviceNames": names })))
}

/// The namespace, group, page number and page size of a `ServiceListRequest`, validated.
pub(crate) fn check_service_list(req: &ServiceListRequest) -> Result<(String, &str, usize, usize)> {
    let namespace = validate::namespace(req.base.namespace.as_deref())?;
    let group = req.base.group_name.as_deref().map(str::trim).filter(|g| !g.is_empty()).unwrap_or(DEFAULT_GROUP);
    // Validate the group with a placeholder service name.
    validate::service_key(Some(&namespace), Some(group), Some("_"))?;
    if req.page_no < 1 {
        return Err(Error::invalid(format!("Param 'pageNo' must be at least 1, got {}.", req.page_no)));
    }
    if !(1..=MAX_PAGE_SIZE).contains(&req.page_size) {
        return Err(Error::invalid(format!("Param 'pageSize' must be 1..{MAX_PAGE_SIZE}, got {}.", req.page_size)));
    }
    if let Some(selector) = req.selector.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        let value: serde_json::Value = serde_json::from_str(selector)
            .map_err(|e| Error::invalid(format!("Param 'selector' is not valid JSON: {e}")))?;
        match value.get("type").and_then(|t| t.as_str()) {
            None | Some("none") => {}
            Some(other) => return Err(Error::invalid(format!("Selector type '{other}' is not supported."))),
        }
    }
    let page_no = usize::try_from(req.page_no).unwrap_or(1);
    let page_size = usize::try_from(req.page_size).unwrap_or(1);
    Ok((namespace, group, page_no, page_size))
}
