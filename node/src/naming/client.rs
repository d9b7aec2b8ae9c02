//! Clients: the unit that owns ephemeral instances.
//!
//! As in Nacos 2, an ephemeral instance always belongs to a client. A gRPC
//! connection is a *connection-based* client (its instances live as long as the
//! connection); an HTTP registration belongs to an *ip:port* client named
//! `ip:port#true`, kept alive by beats. A client is also what Distro
//! replicates: every instance carries the revision at which it was last
//! written, a removed one leaves a removal record, and the client carries
//! the highest revision it has seen and an [`Origin`] saying whether this
//! node or a peer last wrote it. The rules that change and merge these are
//! in `naming::replica`.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use super::clock;
use super::model::{Instance, InstanceKey, ServiceKey};

/// How a client is kept alive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientKind {
    /// A gRPC connection; removed when the connection closes.
    Connection,
    /// An HTTP client identified by `ip:port`; instances expire without beats.
    IpPort,
}

/// Suffix of ip:port client ids (Nacos marks ephemeral ip:port clients so).
const IP_PORT_SUFFIX: &str = "#true";
/// Suffix of the id Nacos 2 gives the client holding the persistent
/// instances at one address (`IpPortBasedClient.getClientId(addr, false)`).
const PERSISTENT_SUFFIX: &str = "#false";

/// The id of the ip:port client that owns an HTTP-registered instance.
pub fn ip_port_client_id(ip: &str, port: u16) -> String {
    format!("{ip}:{port}{IP_PORT_SUFFIX}")
}

/// The id `ip:port#false` under which Nacos 2 shows the persistent
/// instances at `ip:port`. Roster keeps persistent instances per service
/// (Raft owns them, no client does); this id only names them the Nacos way
/// in the client introspection API.
pub fn persistent_client_id(ip: &str, port: u16) -> String {
    format!("{ip}:{port}{PERSISTENT_SUFFIX}")
}

/// The address an ip:port client id names, and whether it is the ephemeral
/// (`ip:port#true`) or the persistent (`ip:port#false`) one; `None` for
/// connection ids and anything else. The port is split off at the last
/// `:`, so IPv6 addresses keep theirs.
pub fn ip_port_address(client_id: &str) -> Option<(&str, u16, bool)> {
    let (address, ephemeral) = match client_id.strip_suffix(IP_PORT_SUFFIX) {
        Some(address) => (address, true),
        None => (client_id.strip_suffix(PERSISTENT_SUFFIX)?, false),
    };
    let (ip, port) = address.rsplit_once(':')?;
    let port = port.parse().ok()?;
    (!ip.is_empty()).then_some((ip, port, ephemeral))
}

/// The Distro responsibility tag of an ip:port client: its `ip:port`, the
/// same tag an HTTP write for it is routed by.
pub fn distro_tag(client_id: &str) -> &str {
    client_id.strip_suffix(IP_PORT_SUFFIX).unwrap_or(client_id)
}

/// The revision that follows `revision` for a change made now: past both
/// it and the wall clock in milliseconds.
pub fn next_revision(revision: u64) -> u64 {
    let now_ms = u64::try_from(clock::now_millis()).unwrap_or(0);
    revision.saturating_add(1).max(now_ms)
}

/// Where a client's current data was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// On this node: a connection to this node, or an ip:port client whose
    /// last change was made here.
    Local,
    /// Received from the peer `source` (`host:port`) by Distro.
    Synced {
        /// The member it came from.
        source: String,
    },
}

/// The member a connection-based client is connected to, in the process
/// incarnation it had then: a copy of a connection is alive only as long
/// as that incarnation of its owner is (see `docs/ARCHITECTURE.md`, "One
/// ephemeral registration").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    /// The member, `host:port`.
    pub member: String,
    /// Its incarnation (start time in ms since the epoch).
    pub incarnation: u64,
}

/// One published instance: the revision at which it was last written
/// (what Distro's merge compares), and when it was last renewed by a beat.
#[derive(Debug, Clone)]
pub struct Published {
    /// The instance as registered (health updated by beats and expiry).
    pub instance: Instance,
    /// The revision of the write that made it what it is.
    pub revision: u64,
    /// Last beat (ip:port clients) or registration time.
    pub last_beat: Instant,
}

/// What is left of a removed instance: the revision of its removal, so
/// that an older write of it arriving later cannot bring it back, and when
/// the record was made (it is forgotten after the Distro tombstone TTL).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Removal {
    /// The revision of the removal.
    pub revision: u64,
    /// When the record was made, on the monotonic clock.
    pub at: Instant,
}

/// A client and everything it publishes.
///
/// The instance maps and the revisions are private: every change goes
/// through the methods of `naming::replica`, which keep the client's
/// revision and digest right and apply Distro's merge rules.
#[derive(Debug, Clone)]
pub struct Client {
    /// Connection id, or `ip:port#true`.
    pub id: String,
    /// How the client is kept alive.
    pub kind: ClientKind,
    /// Who wrote the current data.
    pub origin: Origin,
    /// The member a copy of a connection belongs to (`None` for this
    /// node's own connections and for ip:port clients).
    pub owner: Option<Owner>,
    /// When a copy was last confirmed by its source (sync or verify); a copy
    /// that goes unconfirmed for the Distro expiry is dropped.
    pub refreshed: Instant,
    /// The highest revision this client has seen (writes, removals, floor).
    pub(super) revision: u64,
    /// Every slot written at or below this revision is removed (a
    /// whole-client removal); 0 when never removed.
    pub(super) floor: u64,
    /// The live instances, per service.
    pub(super) published: HashMap<ServiceKey, BTreeMap<InstanceKey, Published>>,
    /// Removal records of instances, per service.
    pub(super) removed: HashMap<ServiceKey, BTreeMap<InstanceKey, Removal>>,
    /// Wrapping sum of the digests of the live slots (see `replica`).
    pub(super) digest: u64,
}

impl Client {
    /// A local client that publishes nothing yet.
    pub fn new(id: impl Into<String>, kind: ClientKind) -> Self {
        Client {
            id: id.into(),
            kind,
            origin: Origin::Local,
            owner: None,
            refreshed: clock::now(),
            revision: 0,
            floor: 0,
            published: HashMap::new(),
            removed: HashMap::new(),
            digest: 0,
        }
    }

    /// A connection to this node (the only clients whose removal is decided
    /// here and nowhere else).
    pub fn is_local_connection(&self) -> bool {
        self.kind == ClientKind::Connection && self.origin == Origin::Local
    }

    /// The highest revision this client has seen; grows with every change.
    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// The live instances this client publishes, per service.
    pub fn published(&self) -> &HashMap<ServiceKey, BTreeMap<InstanceKey, Published>> {
        &self.published
    }

    /// The digest of the live slots and their revisions, which Distro's
    /// verify compares besides the revision.
    pub fn digest(&self) -> u64 {
        self.digest
    }

    /// Number of instances published, over all services.
    pub fn instance_count(&self) -> usize {
        self.published.values().map(BTreeMap::len).sum()
    }

    /// Whether the client publishes nothing and remembers no removal.
    pub fn is_empty(&self) -> bool {
        self.published.is_empty() && self.removed.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_port_ids_name_their_address_and_kind() {
        assert_eq!(ip_port_address(&ip_port_client_id("10.0.0.1", 80)), Some(("10.0.0.1", 80, true)));
        assert_eq!(ip_port_address(&persistent_client_id("10.0.0.1", 80)), Some(("10.0.0.1", 80, false)));
        assert_eq!(ip_port_address("fe80::1:8080#true"), Some(("fe80::1", 8080, true)));
        for not_one in
            ["1700000000000_127.0.0.1_5555", "10.0.0.1:80", ":80#true", "10.0.0.1:x#true", "10.0.0.1:70000#false"]
        {
            assert_eq!(ip_port_address(not_one), None, "{not_one}");
        }
    }
}
