//! Distro: the AP replication of ephemeral instances (`docs/ARCHITECTURE.md`,
//! "One ephemeral registration").
//!
//! Every node holds every ephemeral client and answers reads from memory.
//! A client is written on the node responsible for it (its connection's
//! node; for an ip:port client, the member [`Responsibility`] names, to
//! which HTTP writes are forwarded) and copied to every other member:
//!
//! * **Sync** ([`sync`]): a local change (the slots it touched) is queued
//!   for every peer and sent as a delta, at once when the link is idle and
//!   gathered with the next changes while a send is in flight; failed sends
//!   are retried until the peer leaves the member list.
//! * **Verify** ([`verify`]): every verify interval a loaded node sends each
//!   peer the `(client, revision, digest)` it vouches for; the peer
//!   confirms, reports what it lacks or holds differently (re-synced whole)
//!   and sends back what it holds newer or differently. Copies that stop
//!   being confirmed expire.
//! * **Snapshot** ([`snapshot`]): a starting node streams the whole data set
//!   from one peer in chunks before it is ready, and sends no verify data
//!   until then; it loads from nobody only when alone by configuration.
//! * **Restarts** ([`Distro::run_restart_watch`]): when a member reports a
//!   new process incarnation, the copies of the connections its earlier run
//!   held are dropped at once (they died with it), not after the expiry.
//!
//! The store applies the merge rules ([`crate::naming::replica`]: per slot
//! the higher revision wins, removals outlive older writes, a connection
//! belongs to its node, copies expire); this module moves data and decides
//! when. Messages travel through the peer plane ([`crate::peer`]): out
//! through its [`PeerTransport`], in through [`DistroPeer`], the
//! [`DistroHandler`] the peer service calls.
//!
//! # Layout
//! - [`codec`]: clients on the wire.
//! - [`sync`]: the per-peer send queues.
//! - [`verify`]: verify rounds and copy expiry.
//! - [`snapshot`]: serving and loading the snapshot.
//! - [`metrics`]: the event counter, `roster_distro_events_total{event}`.
//! - this module: [`DistroSettings`], [`Distro`] and its status section.
//!
//! [`Responsibility`]: crate::cluster::Responsibility

pub mod codec;
pub mod metrics;
pub mod snapshot;
pub mod sync;
pub mod verify;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use parking_lot::Mutex;
use roster_proto::peer::{DistroAck, DistroSyncRequest, DistroVerifyReply, DistroVerifyRequest, SnapshotRequest};
use serde::Serialize;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tonic::Status;
use tracing::{debug, warn};

use std::collections::HashMap;

use crate::cluster::Membership;
use crate::duration;
use crate::error::{Error, Result};
use crate::naming::validate::Limits;
use crate::naming::{Applied, ClientCopy, NamingStore, Owner, StoreCounts, Vouched};
use crate::peer::{DistroHandler, Faults, PeerTransport, SnapshotStream};

use self::metrics::{DistroEvent, DistroMetrics};
use self::sync::SyncQueues;

/// Distro's timings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::Args)]
#[command(next_help_heading = "Distro (ephemeral instances)")]
pub struct DistroSettings {
    /// Distro: how long a change waits on an idle link for more to join its
    /// send (0: it leaves at once). While a send to a peer is in flight,
    /// changes gather for the next one whatever this says (Nacos: a fixed
    /// 1 s window).
    #[arg(long = "distro-sync-delay", id = "distro_sync_delay", value_name = "DISTRO_SYNC_DELAY", env = "ROSTER_DISTRO_SYNC_DELAY", default_value = "0ms", value_parser = duration::parse)]
    pub sync_delay: Duration,

    /// Distro: how long a failed send waits before it is retried (Nacos: 3 s).
    #[arg(long = "distro-sync-retry-delay", id = "distro_sync_retry_delay", value_name = "DISTRO_SYNC_RETRY_DELAY", env = "ROSTER_DISTRO_SYNC_RETRY_DELAY", default_value = "1s", value_parser = duration::parse)]
    pub sync_retry_delay: Duration,

    /// Distro: timeout of one sync or verify call to a peer.
    #[arg(long = "distro-sync-timeout", id = "distro_sync_timeout", value_name = "DISTRO_SYNC_TIMEOUT", env = "ROSTER_DISTRO_SYNC_TIMEOUT", default_value = "3s", value_parser = duration::parse)]
    pub sync_timeout: Duration,

    /// Distro: how often each node verifies the clients it is responsible
    /// for with every peer (Nacos: 5 s).
    #[arg(long = "distro-verify-interval", id = "distro_verify_interval", value_name = "DISTRO_VERIFY_INTERVAL", env = "ROSTER_DISTRO_VERIFY_INTERVAL", default_value = "5s", value_parser = duration::parse)]
    pub verify_interval: Duration,

    /// Distro: how long a copy of another node's client lives without being
    /// verified (Nacos: 3 min).
    #[arg(long = "distro-copy-expiry", id = "distro_copy_expiry", value_name = "DISTRO_COPY_EXPIRY", env = "ROSTER_DISTRO_COPY_EXPIRY", default_value = "3m", value_parser = duration::parse)]
    pub copy_expiry: Duration,

    /// Distro: how long a removed client is remembered, so that a copy
    /// older than its removal (held across a partition) cannot revive it.
    #[arg(long = "distro-tombstone-ttl", id = "distro_tombstone_ttl", value_name = "DISTRO_TOMBSTONE_TTL", env = "ROSTER_DISTRO_TOMBSTONE_TTL", default_value = "10m", value_parser = duration::parse)]
    pub tombstone_ttl: Duration,

    /// Distro: how long to wait before another snapshot load round when no
    /// peer could serve one (Nacos: 30 s).
    #[arg(long = "distro-load-retry-delay", id = "distro_load_retry_delay", value_name = "DISTRO_LOAD_RETRY_DELAY", env = "ROSTER_DISTRO_LOAD_RETRY_DELAY", default_value = "5s", value_parser = duration::parse)]
    pub load_retry_delay: Duration,

    /// Distro: clients per snapshot chunk.
    #[arg(
        long = "distro-snapshot-chunk",
        id = "distro_snapshot_chunk",
        value_name = "DISTRO_SNAPSHOT_CHUNK",
        env = "ROSTER_DISTRO_SNAPSHOT_CHUNK",
        default_value_t = 500
    )]
    pub snapshot_chunk: usize,
}

impl Default for DistroSettings {
    fn default() -> Self {
        DistroSettings {
            sync_delay: Duration::ZERO,
            sync_retry_delay: Duration::from_secs(1),
            sync_timeout: Duration::from_secs(3),
            verify_interval: Duration::from_secs(5),
            copy_expiry: Duration::from_secs(180),
            tombstone_ttl: Duration::from_secs(600),
            load_retry_delay: Duration::from_secs(5),
            snapshot_chunk: 500,
        }
    }
}

impl DistroSettings {
    /// Refuses timings that would make a task spin or every copy expire.
    pub fn validate(&self) -> Result<()> {
        for (name, d) in [
            ("--distro-sync-timeout", self.sync_timeout),
            ("--distro-verify-interval", self.verify_interval),
            ("--distro-copy-expiry", self.copy_expiry),
            ("--distro-load-retry-delay", self.load_retry_delay),
            ("--distro-sync-retry-delay", self.sync_retry_delay),
        ] {
            if d.is_zero() {
                return Err(Error::Config(format!("{name} must be greater than zero")));
            }
        }
        if self.tombstone_ttl < self.copy_expiry {
            return Err(Error::Config("--distro-tombstone-ttl must not be shorter than --distro-copy-expiry".into()));
        }
        if self.copy_expiry <= self.verify_interval {
            return Err(Error::Config(
                "--distro-copy-expiry must be longer than --distro-verify-interval, or every copy would expire".into(),
            ));
        }
        if self.snapshot_chunk == 0 {
            return Err(Error::Config("--distro-snapshot-chunk must be at least 1".into()));
        }
        Ok(())
    }
}

/// Distro's clock: tokio's, so that tests on paused time drive expiry and
/// merge windows alike (outside tests it is the system's monotonic clock).
pub(crate) fn now() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}

/// Where the snapshot load stands; loaded once `loaded_at` is set.
#[derive(Debug, Default)]
struct LoadState {
    source: Option<String>,
    loaded_at: Option<SystemTime>,
}

/// The `distro` section of `/roster/v1/status` (the status document in
/// `docs/ARCHITECTURE.md`).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DistroStatus {
    /// Whether the snapshot is loaded (or the node is alone).
    pub initialized: bool,
    /// The member the snapshot came from; `null` when there was none.
    pub snapshot_source: Option<String>,
    /// When the snapshot was loaded, RFC 3339 UTC.
    pub snapshot_loaded_at: Option<String>,
    /// Clients this node vouches for in verify rounds.
    pub responsible_clients: usize,
    /// Clients held, local and copied.
    pub clients: usize,
    /// Instances held, ephemeral and persistent.
    pub instances: usize,
    /// Client ids waiting to be sent to peers.
    pub pending_syncs: usize,
    /// Sync messages delivered so far.
    pub syncs_sent: u64,
    /// Sync sends that failed (and were retried).
    pub sync_failures: u64,
    /// Clients peers reported missing in verify rounds (re-synced).
    pub verify_repairs: u64,
    /// Copies dropped because nobody confirmed them.
    pub copies_expired: u64,
    /// Sync messages dropped by fault injection.
    pub dropped_syncs: u64,
}

/// The Distro protocol of one node.
#[derive(Debug)]
pub struct Distro {
    store: Arc<NamingStore>,
    membership: Arc<Membership>,
    transport: Arc<dyn PeerTransport>,
    faults: Arc<Faults>,
    metrics: Arc<DistroMetrics>,
    limits: Limits,
    settings: DistroSettings,
    load: Mutex<LoadState>,
    queues: SyncQueues,
    stop: watch::Sender<bool>,
}

impl Distro {
    /// Distro over `store` for the members of `membership`, sending through
    /// `transport` (sync drops asked of `faults` are honoured there). Nothing
    /// runs until [`Distro::start`].
    pub fn new(
        store: Arc<NamingStore>,
        membership: Arc<Membership>,
        transport: Arc<dyn PeerTransport>,
        faults: Arc<Faults>,
        metrics: Arc<DistroMetrics>,
        limits: Limits,
        settings: DistroSettings,
    ) -> Arc<Distro> {
        let (stop, _) = watch::channel(false);
        Arc::new(Distro {
            store,
            membership,
            transport,
            faults,
            metrics,
            limits,
            settings,
            load: Mutex::new(LoadState::default()),
            queues: SyncQueues::default(),
            stop,
        })
    }

    /// Starts loading the snapshot, syncing local changes and verifying. A
    /// standalone node has nobody to talk to and is initialized at once.
    pub fn start(self: &Arc<Self>) -> Vec<JoinHandle<()>> {
        if self.membership.is_standalone() {
            self.mark_loaded(None);
            return Vec::new();
        }
        vec![
            tokio::spawn(self.clone().run_dispatcher(self.stop_signal())),
            tokio::spawn(self.clone().run_loader(self.stop_signal())),
            tokio::spawn(self.clone().run_verifier(self.stop_signal())),
            tokio::spawn(self.clone().run_restart_watch(self.stop_signal())),
        ]
    }

    /// This member as the owner of its connections.
    pub(crate) fn local_owner(&self) -> Owner {
        Owner { member: self.membership.local().to_owned(), incarnation: self.membership.incarnation() }
    }

    /// Whether the connection copies of `owner` belong to an earlier run of
    /// it than the one its reports name (so they are gone), given the
    /// members' `known` incarnations.
    fn is_stale(known: &HashMap<String, u64>, owner: &Owner) -> bool {
        known.get(&owner.member).is_some_and(|current| owner.incarnation < *current)
    }

    /// The incarnation every member last reported.
    fn incarnations(&self) -> HashMap<String, u64> {
        self.membership.members().into_iter().filter_map(|m| Some((m.address, m.incarnation?))).collect()
    }

    /// Merges copies received from `source` into the store.
    pub(crate) fn apply(&self, copies: &[ClientCopy], source: &str) -> Applied {
        let known = self.incarnations();
        let stale = |owner: &Owner| Distro::is_stale(&known, owner);
        self.store.apply_copies(copies, source, self.membership.local(), now(), stale)
    }

    /// Drops the copies of connections of members that have restarted,
    /// whenever the members change (a member's report of a new incarnation
    /// is such a change).
    pub(crate) async fn run_restart_watch(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let mut members = self.membership.subscribe();
        loop {
            let known = self.incarnations();
            let dropped = self.store.drop_stale_connections(|owner| Distro::is_stale(&known, owner));
            if dropped > 0 {
                self.metrics.event(DistroEvent::RestartedConnections, dropped as u64);
                debug!(dropped, "dropped the copies of connections of members that restarted");
            }
            tokio::select! {
                changed = members.changed() => if changed.is_err() { return },
                _ = stop.wait_for(|s| *s) => return,
            }
        }
    }

    /// Stops every Distro task, the per-peer senders included.
    pub fn stop(&self) {
        let _ = self.stop.send(true);
    }

    fn stop_signal(&self) -> watch::Receiver<bool> {
        self.stop.subscribe()
    }

    /// Changes not yet delivered to every peer (queued or in flight).
    pub fn unsent(&self) -> usize {
        self.queues.unsent()
    }

    /// Whether the snapshot is loaded (or the node is alone).
    pub fn is_initialized(&self) -> bool {
        self.load.lock().loaded_at.is_some()
    }

    /// The `distro` section of the status document, with the store's
    /// `counts` as the caller read them.
    pub fn status(&self, counts: StoreCounts) -> DistroStatus {
        let (source, loaded_at) = {
            let load = self.load.lock();
            (load.source.clone(), load.loaded_at)
        };
        let responsibility = self.membership.responsibility();
        DistroStatus {
            initialized: loaded_at.is_some(),
            snapshot_source: source,
            snapshot_loaded_at: loaded_at.map(rfc3339),
            responsible_clients: self.store.verified_count(|tag| responsibility.is_local(tag)),
            clients: counts.clients,
            instances: counts.instances,
            pending_syncs: self.queues.pending(),
            syncs_sent: self.metrics.count(DistroEvent::SyncSent),
            sync_failures: self.metrics.count(DistroEvent::SyncFailed),
            verify_repairs: self.metrics.count(DistroEvent::VerifyMissing),
            copies_expired: self.metrics.count(DistroEvent::CopiesExpired),
            dropped_syncs: self.faults.dropped_syncs(),
        }
    }
}

/// The handler methods need the `Arc` to queue reverse syncs; the peer
/// service holds `Arc<Distro>` through this wrapper.
#[derive(Debug)]
pub struct DistroPeer(pub Arc<Distro>);

impl DistroHandler for DistroPeer {
    fn sync(&self, request: DistroSyncRequest) -> Result<DistroAck, Status> {
        let distro = &self.0;
        // Decode everything first: a message with one bad client changes nothing.
        let copies = request
            .upserts
            .into_iter()
            .map(|data| codec::decode(data, &distro.limits))
            .collect::<Result<Vec<_>, codec::DecodeError>>()
            .map_err(|e| {
                warn!(source = %request.source, error = %e, "refusing an invalid Distro sync");
                Status::invalid_argument(format!("invalid client data: {e}"))
            })?;
        let applied = distro.apply(&copies, &request.source);
        distro.metrics.event(DistroEvent::ClientsApplied, applied.changed as u64);
        debug!(source = %request.source, clients = copies.len(), changed = applied.changed, "applied a Distro sync");
        // The sender holds an older version of these (a removal or a write
        // it missed): it gets this node's, or it would keep what this node
        // has superseded and hand it on at every verify.
        if !applied.behind.is_empty() && distro.membership.member(&request.source).is_some() {
            debug!(source = %request.source, behind = applied.behind.len(), "sending newer copies back");
            distro.metrics.event(DistroEvent::SentBack, applied.behind.len() as u64);
            distro.queue_whole(&request.source, applied.behind);
        }
        Ok(DistroAck { accepted: true, message: String::new() })
    }

    fn verify(&self, request: DistroVerifyRequest) -> Result<DistroVerifyReply, Status> {
        let distro = &self.0;
        let sent: Vec<Vouched<'_>> = request
            .clients
            .iter()
            .map(|c| Vouched { id: &c.client_id, revision: c.revision, digest: c.digest })
            .collect();
        let responsibility = distro.membership.responsibility();
        let outcome = distro.store.verify(
            &sent,
            now(),
            |tag| responsibility.is_local(tag),
            |tag| request.whole && responsibility.member_for(tag) == Some(request.source.as_str()),
        );
        if !outcome.newer_here.is_empty() && distro.membership.member(&request.source).is_some() {
            debug!(source = %request.source, newer = outcome.newer_here.len(), "sending newer copies back");
            distro.queue_whole(&request.source, outcome.newer_here);
        }
        Ok(DistroVerifyReply { missing_client_ids: outcome.missing })
    }

    fn snapshot(&self, request: SnapshotRequest) -> Result<SnapshotStream, Status> {
        Ok(self.0.serve_snapshot(&request))
    }
}

/// `time` as RFC 3339 in UTC with second precision.
pub fn rfc3339(time: SystemTime) -> String {
    humantime::format_rfc3339_seconds(time).to_string()
}

#[cfg(test)]
mod tests {
    use roster_proto::peer::{ClientRevision, SnapshotChunk};
    use tokio_stream::StreamExt;

    use super::*;
    use crate::cluster::ClusterMetrics;
    use crate::naming::{ClientCopy, ClientKind, Delta, Instance, Selection, ServiceKey};
    use crate::peer::{PeerAddressResolver, PeerChannels};

    fn distro() -> Arc<Distro> {
        let metrics = Arc::new(DistroMetrics::default());
        let membership = Arc::new(Membership::new("a:8848", false, 3, Arc::new(ClusterMetrics::new())));
        let channels = Arc::new(PeerChannels::new(PeerAddressResolver::default(), Duration::from_millis(100)));
        let store = Arc::new(NamingStore::new(Default::default()));
        let limits = Limits { max_metadata_bytes: 1024, max_batch_instances: 10 };
        let settings = DistroSettings {
            sync_delay: Duration::from_millis(10),
            sync_retry_delay: Duration::from_millis(10),
            sync_timeout: Duration::from_millis(100),
            verify_interval: Duration::from_millis(100),
            copy_expiry: Duration::from_secs(1),
            tombstone_ttl: Duration::from_secs(2),
            load_retry_delay: Duration::from_millis(10),
            snapshot_chunk: 2,
        };
        Distro::new(store, membership, channels, Arc::default(), metrics, limits, settings)
    }

    fn client(id: &str, revision: u64, ip: &str) -> ClientCopy {
        let live = vec![(ServiceKey::new("public", "DEFAULT_GROUP", "s"), Instance::new(ip, 80), revision)];
        ClientCopy {
            id: id.into(),
            kind: ClientKind::Connection,
            owner: None,
            delta: Delta { revision, live, ..Delta::default() },
        }
    }

    #[tokio::test]
    async fn a_sync_with_one_bad_client_changes_nothing() {
        let d = distro();
        let peer = DistroPeer(d.clone());
        let good = codec::encode(&client("c1", 1, "10.0.0.1"));
        let mut bad = codec::encode(&client("c2", 1, "10.0.0.2"));
        bad.instances[0].port = 0;
        let request = DistroSyncRequest { source: "b:8848".into(), upserts: vec![good.clone(), bad] };
        let status = peer.sync(request).expect_err("refused");
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        assert_eq!(d.store.counts().clients, 0, "nothing applied");

        let request = DistroSyncRequest { source: "b:8848".into(), upserts: vec![good] };
        assert!(peer.sync(request).expect("accepted").accepted);
        let held = d.store.query(&ServiceKey::new("public", "DEFAULT_GROUP", "s"), &Selection::default());
        assert_eq!(held.hosts.len(), 1);
        // Verify: held at that revision and digest is confirmed; unknown is
        // missing; the same revision with another digest is missing too.
        let digest = d.store.client("c1").map(|c| c.digest()).expect("held");
        let reply = peer
            .verify(DistroVerifyRequest {
                source: "b:8848".into(),
                clients: vec![
                    ClientRevision { client_id: "c1".into(), revision: 1, digest },
                    ClientRevision { client_id: "c9".into(), revision: 3, digest: 0 },
                ],
                whole: true,
            })
            .expect("verify");
        assert_eq!(reply.missing_client_ids, ["c9"]);
        let reply = peer
            .verify(DistroVerifyRequest {
                source: "b:8848".into(),
                clients: vec![ClientRevision { client_id: "c1".into(), revision: 1, digest: digest ^ 1 }],
                whole: true,
            })
            .expect("verify");
        assert_eq!(reply.missing_client_ids, ["c1"]);
    }

    #[tokio::test]
    async fn a_snapshot_streams_every_client_in_chunks() {
        let d = distro();
        let copies: Vec<ClientCopy> = (0..5).map(|n| client(&format!("c{n}"), 1, &format!("10.0.0.{n}"))).collect();
        d.apply(&copies, "b:8848");
        let stream = DistroPeer(d.clone())
            .snapshot(SnapshotRequest { requester: "c:8848".into(), chunk_clients: 0 })
            .expect("stream");
        let chunks: Vec<SnapshotChunk> = stream.map(|c| c.expect("chunk")).collect().await;
        assert_eq!(chunks.iter().map(|c| c.clients.len()).collect::<Vec<_>>(), [2, 2, 1]);
        assert_eq!(chunks.iter().map(|c| c.last).collect::<Vec<_>>(), [false, false, true]);
        assert!(chunks.iter().all(|c| !c.source_initialized), "this node has not loaded");

        // An empty node answers one empty, last chunk.
        let empty = distro();
        let stream = DistroPeer(empty).snapshot(SnapshotRequest::default()).expect("stream");
        let chunks: Vec<SnapshotChunk> = stream.map(|c| c.expect("chunk")).collect().await;
        assert_eq!(chunks.len(), 1);
        assert!(chunks[0].last && chunks[0].clients.is_empty());
    }

    #[test]
    fn rfc3339_formats_utc() {
        use std::time::UNIX_EPOCH;
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(UNIX_EPOCH + Duration::from_secs(951_782_400)), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(UNIX_EPOCH + Duration::from_secs(1_795_000_000)), "2026-11-18T11:06:40Z");
    }
}
