//! The Nacos v2 client introspection API (`ClientInfoControllerV2`): which
//! clients this node holds, what each publishes and watches, and who
//! publishes or watches a service. Every route is a read-only `GET`
//! answered in the v2 shape of [`super::v2`]; with authentication on, only
//! admins may call them ([`super::auth`], Nacos's resource `nacos/admin`).
//!
//! | route | `data` |
//! |---|---|
//! | `/nacos/v2/ns/client/list` | every client id held here ([`list`]) |
//! | `/nacos/v2/ns/client?clientId=` | one client ([`detail`], [`ClientDetail`]) |
//! | `/nacos/v2/ns/client/publish/list?clientId=` | its instances ([`published`]) |
//! | `/nacos/v2/ns/client/subscribe/list?clientId=` | its subscriptions ([`subscribed`]) |
//! | `/nacos/v2/ns/client/service/publisher/list?serviceName=` | who publishes an address ([`service_publishers`]) |
//! | `/nacos/v2/ns/client/service/subscriber/list?serviceName=` | who watches the service ([`service_subscribers`]) |
//!
//! Clients are what Nacos 2 calls them: a gRPC connection (`clientType`
//! `connection`), the ip:port client `ip:port#true` of HTTP-registered
//! instances (`ipPort`), and, as Nacos files persistent instances, the
//! persistent client `ip:port#false` of every address with persistent
//! instances (`ipPort`, `ephemeral: false`; see
//! [`crate::naming::persistent_client_id`]). Every member holds every
//! ephemeral client (Distro), so the answers cover the whole cluster;
//! what only the connected member knows (a connection's app, version and
//! address, its subscriptions) is answered by that member alone.
//!
//! Errors: an unknown `clientId` is 404 `RESOURCE_NOT_FOUND` with
//! `data: "clientId [ <id> ] not exist"`, as Nacos; a missing (or blank)
//! `clientId` or `serviceName` is 400 `PARAMETER_MISSING`; a malformed
//! value (a port that is not 1..=65535, a namespace, group or service name
//! [`validate`] refuses) is 400 `PARAMETER_VALIDATE_ERROR`, where Nacos
//! answers its parameter checker's plain text or a 500. Nothing here
//! changes any state.

use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use serde::Serialize;

use super::params::Params;
use super::v2::{success, V2Error, V2Result};
use crate::api::grpc::connection::Connection;
use crate::api::ClientState;
use crate::error::Error;
use crate::naming::{ip_port_address, validate, AddressFilter, Client, ClientKind, Instance, Origin, ServiceKey};

/// What a v2 handler answers.
type Answer<T> = Result<Json<V2Result<T>>, V2Error>;

/// The label in which an SDK names its application at connection setup
/// (Nacos's `Constants.APPNAME`).
const APP_NAME_LABEL: &str = "AppName";
/// `connectType` of gRPC connections (Nacos's `ConnectionType.GRPC`).
const GRPC: &str = "GRPC";
/// `app` of a subscriber whose client named none, as Nacos defaults it.
const UNKNOWN_APP: &str = "unknown";

/// A parameter that must be present and not blank; missing is Nacos's
/// `PARAMETER_MISSING`, worded as the Spring error Nacos passes on.
fn required<'a>(p: &'a Params, name: &str) -> Result<&'a str, Error> {
    p.get(name).ok_or_else(|| {
        Error::MissingParam(format!(
            "Required request parameter '{name}' for method parameter type String is not present"
        ))
    })
}

/// A client as these routes see it.
enum Held {
    /// A client in the store: a connection or an ephemeral ip:port client.
    Client(Client),
    /// The persistent client `ip:port#false`: the persistent instances at
    /// one address, with their services.
    Persistent { ip: String, port: u16, instances: Vec<(ServiceKey, Instance)> },
}

/// The client named by the `clientId` parameter, or Nacos's 404.
fn held(state: &ClientState, p: &Params) -> Result<(String, Held), Error> {
    let id = required(p, "clientId")?.to_owned();
    if let Some(client) = state.store.client(&id) {
        return Ok((id, Held::Client(client)));
    }
    if let Some((ip, port, false)) = ip_port_address(&id) {
        let instances = state.store.persistent_published(ip, port);
        if !instances.is_empty() {
            let ip = ip.to_owned();
            return Ok((id, Held::Persistent { ip, port, instances }));
        }
    }
    Err(Error::NotFound(format!("clientId [ {id} ] not exist")))
}

/// The live connection `id` on this node, if it is one.
fn live_connection(state: &ClientState, id: &str) -> Option<Arc<Connection>> {
    state.connections.get(id).filter(|c| !c.is_closed())
}

/// The IP a connection's client reported at setup (what Nacos shows), or
/// the TCP peer's when it reported none.
fn client_ip(conn: &Connection) -> String {
    let reported = conn.info.client_ip.trim();
    if reported.is_empty() {
        conn.remote.ip().to_string()
    } else {
        reported.to_owned()
    }
}

/// `GET /nacos/v2/ns/client/list`: the id of every client this node holds
/// (connections to any member, ip:port clients whether this node is
/// responsible for them or holds a synced copy, and the persistent
/// `ip:port#false` clients), sorted.
pub async fn list(State(state): State<Arc<ClientState>>) -> Answer<Vec<String>> {
    let mut ids = state.store.client_ids();
    ids.extend(state.store.persistent_client_ids());
    ids.sort_unstable();
    Ok(success(ids))
}

/// The answer of `GET /nacos/v2/ns/client`: Nacos's fields, then two of
/// Roster's (`source`, `connected`).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientDetail {
    /// The id asked for.
    pub client_id: String,
    /// `true` for connections and `ip:port#true` clients, `false` for a
    /// persistent `ip:port#false` client.
    pub ephemeral: bool,
    /// The client's revision, in ms since the epoch. Every change, on
    /// whichever member made it, sets the revision to max(previous + 1,
    /// now in ms) ([`crate::naming::client::next_revision`]), so it is the
    /// wall-clock time of the last change (a little later only after
    /// several changes within one millisecond), which is what Nacos shows
    /// here. `null` for a persistent client: persistent instances are Raft
    /// entries and carry no time of change.
    pub last_updated_time: Option<u64>,
    /// `connection` or `ipPort`.
    pub client_type: &'static str,
    /// Where the client is: the connection's facts when it is connected
    /// to this node, or the address of an ip:port client. Absent for a
    /// connection to another member (Nacos fails with a 500 there).
    #[serde(flatten)]
    pub address: Option<ClientAddress>,
    /// Roster addition: `null` when the client's data was written on this
    /// node (its connection is here, or the last change of an ip:port
    /// client was made here) and for persistent clients (replicated by
    /// Raft, the same on every member); otherwise the member (`host:port`)
    /// whose Distro sync this copy came from.
    pub source: Option<String>,
    /// Roster addition: whether the client is a gRPC connection open on
    /// this node right now.
    pub connected: bool,
}

/// The location part of a [`ClientDetail`].
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum ClientAddress {
    /// A gRPC connection open on this node.
    Connection(ConnectionFacts),
    /// An ip:port client: the address in its id.
    IpPort(IpPortAddress),
}

/// What a connection told this node at setup.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionFacts {
    /// Always `GRPC`.
    pub connect_type: &'static str,
    /// The `AppName` label of the setup; `null` when the client sent none.
    pub app_name: Option<String>,
    /// The client's version string, e.g. `Nacos-Java-Client:v2.4.0`.
    pub version: String,
    /// The IP the client reported (the TCP peer's if it reported none).
    pub client_ip: String,
    /// The TCP peer's port, as text: Nacos cuts it from the connection id
    /// (`<millis>_<ip>_<port>`), which names the same port.
    pub client_port: String,
}

/// The address of an ip:port client.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IpPortAddress {
    /// The IP of `ip:port#...`.
    pub client_ip: String,
    /// The port of `ip:port#...`, as text (as Nacos answers it).
    pub client_port: String,
}

/// `GET /nacos/v2/ns/client?clientId=`: one client ([`ClientDetail`]).
pub async fn detail(State(state): State<Arc<ClientState>>, p: Result<Params, Error>) -> Answer<ClientDetail> {
    let (id, held) = held(&state, &p?)?;
    let detail = match held {
        Held::Client(client) => {
            let live = (client.kind == ClientKind::Connection).then(|| live_connection(&state, &id)).flatten();
            let address = match client.kind {
                ClientKind::Connection => live.as_ref().map(|conn| {
                    ClientAddress::Connection(ConnectionFacts {
                        connect_type: GRPC,
                        app_name: conn.info.labels.get(APP_NAME_LABEL).cloned(),
                        version: conn.info.version.clone(),
                        client_ip: client_ip(conn),
                        client_port: conn.remote.port().to_string(),
                    })
                }),
                ClientKind::IpPort => ip_port_address(&id).map(|(ip, port, _)| {
                    ClientAddress::IpPort(IpPortAddress { client_ip: ip.to_owned(), client_port: port.to_string() })
                }),
            };
            ClientDetail {
                client_id: id,
                ephemeral: true,
                last_updated_time: Some(client.revision()),
                client_type: client_type(client.kind),
                address,
                source: match client.origin {
                    Origin::Local => None,
                    Origin::Synced { source } => Some(source),
                },
                connected: live.is_some(),
            }
        }
        Held::Persistent { ip, port, .. } => ClientDetail {
            client_id: id,
            ephemeral: false,
            last_updated_time: None,
            client_type: client_type(ClientKind::IpPort),
            address: Some(ClientAddress::IpPort(IpPortAddress { client_ip: ip, client_port: port.to_string() })),
            source: None,
            connected: false,
        },
    };
    Ok(success(detail))
}

fn client_type(kind: ClientKind) -> &'static str {
    match kind {
        ClientKind::Connection => "connection",
        ClientKind::IpPort => "ipPort",
    }
}

/// One published instance in `GET /nacos/v2/ns/client/publish/list`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PublishedInstance {
    /// The service's namespace.
    pub namespace: String,
    /// The service's group.
    pub group: String,
    /// The service's bare name.
    pub service_name: String,
    /// The instance.
    pub registered_instance: RegisteredInstance,
}

/// The instance part of a [`PublishedInstance`].
#[derive(Debug, Clone, Serialize)]
pub struct RegisteredInstance {
    /// Its IP.
    pub ip: String,
    /// Its port.
    pub port: u16,
    /// Its cluster.
    pub cluster: String,
}

fn published_instance(key: &ServiceKey, instance: &Instance) -> PublishedInstance {
    PublishedInstance {
        namespace: key.namespace.clone(),
        group: key.group.clone(),
        service_name: key.name.clone(),
        registered_instance: RegisteredInstance {
            ip: instance.ip.clone(),
            port: instance.port,
            cluster: instance.cluster.clone(),
        },
    }
}

/// `GET /nacos/v2/ns/client/publish/list?clientId=`: every instance the
/// client publishes, one item each (a batch registration gives several
/// in one service, as Nacos lists a batch), by service then instance.
pub async fn published(
    State(state): State<Arc<ClientState>>,
    p: Result<Params, Error>,
) -> Answer<Vec<PublishedInstance>> {
    let (_, held) = held(&state, &p?)?;
    let items = match held {
        Held::Client(client) => {
            let mut services: Vec<_> = client.published().iter().collect();
            services.sort_unstable_by(|a, b| a.0.cmp(b.0));
            services
                .into_iter()
                .flat_map(|(key, set)| set.values().map(move |p| published_instance(key, &p.instance)))
                .collect()
        }
        Held::Persistent { instances, .. } => instances.iter().map(|(key, i)| published_instance(key, i)).collect(),
    };
    Ok(success(items))
}

/// One subscription in `GET /nacos/v2/ns/client/subscribe/list`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SubscribedService {
    /// The service's namespace.
    pub namespace: String,
    /// The service's group.
    pub group: String,
    /// The service's bare name.
    pub service_name: String,
    /// Who subscribed.
    pub subscriber_info: SubscriberInfo,
}

/// The subscriber part of a [`SubscribedService`].
#[derive(Debug, Clone, Serialize)]
pub struct SubscriberInfo {
    /// The application. Nacos takes the `app` header of the subscribe
    /// request; Roster keeps no per-request headers and answers the
    /// connection's `AppName` label, which the SDKs fill from the same
    /// setting, or `unknown` as Nacos does without one.
    pub app: String,
    /// The client's version string (Nacos: the connection's version).
    pub agent: String,
    /// The client's IP (Nacos: the IP the client reported).
    pub addr: String,
}

/// `GET /nacos/v2/ns/client/subscribe/list?clientId=`: the services the
/// client watches. Subscriptions live with their gRPC connection on the
/// member it is connected to, so only that member lists them: other
/// members, ip:port clients (Roster has no v1 UDP subscribers) and
/// persistent clients answer an empty list.
pub async fn subscribed(
    State(state): State<Arc<ClientState>>,
    p: Result<Params, Error>,
) -> Answer<Vec<SubscribedService>> {
    let (id, _) = held(&state, &p?)?;
    let Some(conn) = live_connection(&state, &id) else { return Ok(success(Vec::new())) };
    let info = SubscriberInfo {
        app: conn
            .info
            .labels
            .get(APP_NAME_LABEL)
            .filter(|a| !a.trim().is_empty())
            .cloned()
            .unwrap_or_else(|| UNKNOWN_APP.to_owned()),
        agent: conn.info.version.clone(),
        addr: client_ip(&conn),
    };
    let items = state
        .subscribers
        .services_of(&id)
        .into_iter()
        .map(|key| SubscribedService {
            namespace: key.namespace,
            group: key.group,
            service_name: key.name,
            subscriber_info: info.clone(),
        })
        .collect();
    Ok(success(items))
}

/// The service and address filter of the two `service/...` routes.
struct ServiceFilter {
    key: ServiceKey,
    ephemeral: bool,
    address: AddressFilter,
}

impl ServiceFilter {
    /// `namespaceId` (default `public`), `groupName` (default
    /// `DEFAULT_GROUP`), `serviceName` (required), `ephemeral` (default
    /// true), `ip` and `port` (optional).
    fn parse(p: &Params) -> Result<Self, Error> {
        let name = required(p, "serviceName")?;
        let key = validate::service_key(p.get("namespaceId"), p.get("groupName"), Some(name))?;
        let ephemeral = p.bool("ephemeral")?.unwrap_or(true);
        let ip = p.get("ip").map(|ip| validate::ip(Some(ip))).transpose()?;
        let port = p.int("port")?.map(validate::port).transpose()?;
        Ok(ServiceFilter { key, ephemeral, address: AddressFilter { ip, port } })
    }
}

/// One client in the `service/...` lists.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientAtAddress {
    /// The client's id.
    pub client_id: String,
    /// The published instance's IP, or the subscriber's IP.
    pub ip: String,
    /// The published instance's port, or the subscriber's connection port.
    pub port: u16,
}

/// `GET /nacos/v2/ns/client/service/publisher/list`: the clients
/// publishing an instance of the service at `ip` and `port`.
///
/// Nacos compares both exactly, so a request without them finds nothing;
/// Roster's choice: an omitted `ip` or `port` does not filter on it (no
/// filter lists every publisher of the service). `ephemeral=false` answers
/// the persistent instances, each under the id Nacos 2 files it under,
/// `ip:port#false` (`IpPortBasedClient.getClientId(address, false)`);
/// Nacos ignores the flag in this lookup, as a Nacos service holds only
/// one kind of instance, but a Roster service may hold both.
pub async fn service_publishers(
    State(state): State<Arc<ClientState>>,
    p: Result<Params, Error>,
) -> Answer<Vec<ClientAtAddress>> {
    let filter = ServiceFilter::parse(&p?)?;
    let items = state
        .store
        .publishers(&filter.key, filter.ephemeral, &filter.address)
        .into_iter()
        .map(|p| ClientAtAddress { client_id: p.client_id, ip: p.ip, port: p.port })
        .collect();
    Ok(success(items))
}

/// `GET /nacos/v2/ns/client/service/subscriber/list`: the gRPC
/// connections on this node watching the service, with the client's IP
/// and connection port, filtered by `ip` and `port` where given (as for
/// publishers, an omitted one does not filter). Nacos answers port 0 for
/// every gRPC subscriber; Roster answers the connection's port, the one
/// `clientPort` shows, so that a subscriber can be told apart and found.
/// Subscriptions are per service, so `ephemeral` is checked but selects
/// nothing.
pub async fn service_subscribers(
    State(state): State<Arc<ClientState>>,
    p: Result<Params, Error>,
) -> Answer<Vec<ClientAtAddress>> {
    let filter = ServiceFilter::parse(&p?)?;
    let mut items: Vec<ClientAtAddress> = state
        .subscribers
        .of(&filter.key)
        .into_iter()
        // A connection closing right now has no facts left to show.
        .filter_map(|(id, _)| live_connection(&state, &id))
        .map(|conn| ClientAtAddress { client_id: conn.id.clone(), ip: client_ip(&conn), port: conn.remote.port() })
        .filter(|c| filter.address.matches(&c.ip, c.port))
        .collect();
    items.sort_unstable_by(|a, b| a.client_id.cmp(&b.client_id));
    Ok(success(items))
}
