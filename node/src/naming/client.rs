//! Clients: the unit that owns ephemeral instances.
//!
//! As in Nacos 2, an ephemeral instance always belongs to a client. A gRPC
//! connection is a *connection-based* client (its instances live as long as the
//! connection); an HTTP registration belongs to an *ip:port* client named
//! `ip:port#true`, kept alive by beats. A client is also what Distro
//! replicates: it carries a revision that grows with every change.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use super::model::{Instance, InstanceKey, ServiceKey};

/// How a client is kept alive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientKind {
    /// A gRPC connection; removed when the connection closes.
    Connection,
    /// An HTTP client identified by `ip:port`; instances expire without beats.
    IpPort,
}

/// The id of the ip:port client that owns an HTTP-registered instance.
pub fn ip_port_client_id(ip: &str, port: u16) -> String {
    format!("{ip}:{port}#true")
}

/// One published instance and when it was last renewed by a beat.
#[derive(Debug, Clone)]
pub struct Published {
    /// The instance as registered (health updated by beats and expiry).
    pub instance: Instance,
    /// Last beat (ip:port clients) or registration time.
    pub last_beat: Instant,
}

/// A client and everything it publishes.
#[derive(Debug, Clone)]
pub struct Client {
    /// Connection id, or `ip:port#true`.
    pub id: String,
    /// How the client is kept alive.
    pub kind: ClientKind,
    /// Grows with every change; Distro verify compares it.
    pub revision: u64,
    /// The instances this client publishes, per service.
    pub published: HashMap<ServiceKey, BTreeMap<InstanceKey, Published>>,
}

impl Client {
    /// A client that publishes nothing yet.
    pub fn new(id: impl Into<String>, kind: ClientKind) -> Self {
        Client { id: id.into(), kind, revision: 0, published: HashMap::new() }
    }

    /// Number of instances published, over all services.
    pub fn instance_count(&self) -> usize {
        self.published.values().map(BTreeMap::len).sum()
    }
}
