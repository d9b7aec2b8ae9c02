//! Distro: the AP replication of ephemeral instances (DESIGN §5).
//!
//! Every node holds every ephemeral client and answers reads from memory.
//! A client is written on the node responsible for it (its connection's
//! node; for an ip:port client, the member [`Responsibility`] names, to
//! which HTTP writes are forwarded) and copied to every other member:
//!
//! * **Sync** ([`sync`]): a local change is queued for every peer, merged
//!   within the sync delay and sent with the client's revision; failed sends
//!   are retried until the peer leaves the member list.
//! * **Verify** ([`verify`]): every verify interval a loaded node sends each
//!   peer the `(client, revision)` pairs it vouches for; the peer confirms,
//!   reports what it lacks (re-synced in full) and sends back what it holds
//!   newer. Copies that stop being confirmed expire.
//! * **Snapshot** ([`snapshot`]): a starting node streams the whole data set
//!   from one peer in chunks before it is ready, and sends no verify data
//!   until then.
//!
//! The store applies the merge rules ([`crate::naming::store`]: higher
//! revision wins, a connection belongs to its node, copies expire); this
//! module moves data and decides when.
//!
//! [`Responsibility`]: crate::cluster::Responsibility

pub mod codec;
pub mod snapshot;
pub mod sync;
pub mod verify;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use roster_proto::peer::{DistroAck, DistroSyncRequest, DistroVerifyReply, DistroVerifyRequest, SnapshotRequest};
use serde::Serialize;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tonic::Status;
use tracing::{debug, warn};

use crate::cluster::peer::SnapshotStream;
use crate::cluster::{DistroHandler, Membership, PeerChannels};
use crate::config::Config;
use crate::metrics::Metrics;
use crate::naming::validate::Limits;
use crate::naming::{Applied, NamingStore, StoreCounts};

use self::sync::SyncQueues;

/// Largest peer message accepted (a sync, verify or snapshot chunk).
pub const MAX_PEER_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

/// Distro's timings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DistroSettings {
    /// Merge window of changes to one client before a send.
    pub sync_delay: Duration,
    /// Wait before a failed send is retried.
    pub sync_retry_delay: Duration,
    /// Timeout of one sync, verify or snapshot call.
    pub sync_timeout: Duration,
    /// Interval of verify rounds (and copy expiry checks).
    pub verify_interval: Duration,
    /// Life of an unconfirmed copy.
    pub copy_expiry: Duration,
    /// How long a removed client is remembered, so that an older copy
    /// still held across a partition cannot bring it back.
    pub tombstone_ttl: Duration,
    /// Wait between snapshot load rounds when no peer could serve one.
    pub load_retry_delay: Duration,
    /// Clients per snapshot chunk.
    pub snapshot_chunk: usize,
}

impl DistroSettings {
    /// The settings of `config`.
    pub fn from_config(config: &Config) -> DistroSettings {
        DistroSettings {
            sync_delay: config.distro_sync_delay,
            sync_retry_delay: config.distro_sync_retry_delay,
            sync_timeout: config.distro_sync_timeout,
            verify_interval: config.distro_verify_interval,
            copy_expiry: config.distro_copy_expiry,
            tombstone_ttl: config.distro_tombstone_ttl,
            load_retry_delay: config.distro_load_retry_delay,
            snapshot_chunk: config.distro_snapshot_chunk,
        }
    }
}

/// Where the snapshot load stands; loaded once `loaded_at` is set.
#[derive(Debug, Default)]
struct LoadState {
    source: Option<String>,
    loaded_at: Option<SystemTime>,
}

/// The `distro` section of `/roster/v1/status` (DESIGN §7).
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
    channels: Arc<PeerChannels>,
    metrics: Arc<Metrics>,
    limits: Limits,
    settings: DistroSettings,
    load: Mutex<LoadState>,
    queues: SyncQueues,
    stop: watch::Sender<bool>,
}

impl Distro {
    /// Distro over `store` for the members of `membership`, talking through
    /// `channels`. Nothing runs until [`Distro::start`].
    pub fn new(
        store: Arc<NamingStore>,
        membership: Arc<Membership>,
        channels: Arc<PeerChannels>,
        metrics: Arc<Metrics>,
        limits: Limits,
        settings: DistroSettings,
    ) -> Arc<Distro> {
        let (stop, _) = watch::channel(false);
        Arc::new(Distro {
            store,
            membership,
            channels,
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
        ]
    }

    /// Stops every Distro task, the per-peer senders included.
    pub fn stop(&self) {
        let _ = self.stop.send(true);
    }

    fn stop_signal(&self) -> watch::Receiver<bool> {
        self.stop.subscribe()
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
            syncs_sent: self.metrics.distro_count("sync_sent"),
            sync_failures: self.metrics.distro_count("sync_failed"),
            verify_repairs: self.metrics.distro_count("verify_missing"),
            copies_expired: self.metrics.distro_count("copies_expired"),
            dropped_syncs: self.channels.faults().dropped_syncs(),
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
            .collect::<Result<Vec<_>, String>>()
            .map_err(|e| {
                warn!(source = %request.source, error = %e, "refusing an invalid Distro sync");
                Status::invalid_argument(format!("invalid client data: {e}"))
            })?;
        let now = Instant::now();
        let mut replaced = 0u64;
        for copy in copies {
            if distro.store.apply_copy(copy, &request.source, now) == Applied::Replaced {
                replaced += 1;
            }
        }
        let removed = request.removed.iter().filter(|r| distro.store.remove_copy(&r.client_id, r.revision)).count();
        distro.metrics.distro_event("clients_applied", replaced);
        distro.metrics.distro_event("clients_removed", removed as u64);
        debug!(source = %request.source, replaced, removed, "applied a Distro sync");
        Ok(DistroAck { accepted: true, message: String::new() })
    }

    fn verify(&self, request: DistroVerifyRequest) -> Result<DistroVerifyReply, Status> {
        let distro = &self.0;
        let pairs: Vec<(String, u64)> = request.clients.into_iter().map(|c| (c.client_id, c.revision)).collect();
        let responsibility = distro.membership.responsibility();
        let outcome = distro.store.verify(&pairs, Instant::now(), |tag| responsibility.is_local(tag));
        if !outcome.newer_here.is_empty() && distro.membership.member(&request.source).is_some() {
            debug!(source = %request.source, newer = outcome.newer_here.len(), "sending newer copies back");
            distro.queue(&request.source, outcome.newer_here);
        }
        Ok(DistroVerifyReply { missing_client_ids: outcome.missing })
    }

    fn snapshot(&self, request: SnapshotRequest) -> Result<SnapshotStream, Status> {
        Ok(self.0.serve_snapshot(&request))
    }
}

/// `time` as RFC 3339 in UTC with second precision.
pub fn rfc3339(time: SystemTime) -> String {
    let secs = time.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (hour, minute, second) = (rem / 3600, rem % 3600 / 60, rem % 60);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}Z")
}

#[cfg(test)]
mod tests {
    use roster_proto::peer::{ClientRevision, SnapshotChunk};
    use tokio_stream::StreamExt;

    use super::*;
    use crate::cluster::{ClusterMetrics, PeerAddressResolver};
    use crate::naming::{ClientCopy, ClientKind, Instance, Selection, ServiceKey};

    fn distro() -> Arc<Distro> {
        let metrics = Arc::new(Metrics::new());
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
        Distro::new(store, membership, channels, metrics, limits, settings)
    }

    fn client(id: &str, revision: u64, ip: &str) -> ClientCopy {
        let instance = Instance::new(ip, 80);
        ClientCopy {
            id: id.into(),
            kind: ClientKind::Connection,
            revision,
            instances: vec![(ServiceKey::new("public", "DEFAULT_GROUP", "s"), instance)],
        }
    }

    #[tokio::test]
    async fn a_sync_with_one_bad_client_changes_nothing() {
        let d = distro();
        let peer = DistroPeer(d.clone());
        let good = codec::encode(&client("c1", 1, "10.0.0.1"));
        let mut bad = codec::encode(&client("c2", 1, "10.0.0.2"));
        bad.instances[0].instance_json = "not json".into();
        let request = DistroSyncRequest { source: "b:8848".into(), upserts: vec![good.clone(), bad], removed: vec![] };
        let status = peer.sync(request).expect_err("refused");
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        assert_eq!(d.store.counts().clients, 0, "nothing applied");

        let request = DistroSyncRequest { source: "b:8848".into(), upserts: vec![good], removed: vec![] };
        assert!(peer.sync(request).expect("accepted").accepted);
        let held = d.store.query(&ServiceKey::new("public", "DEFAULT_GROUP", "s"), &Selection::default());
        assert_eq!(held.hosts.len(), 1);
        // Verify: held at that revision is confirmed; unknown is missing.
        let reply = peer
            .verify(DistroVerifyRequest {
                source: "b:8848".into(),
                clients: vec![
                    ClientRevision { client_id: "c1".into(), revision: 1 },
                    ClientRevision { client_id: "c9".into(), revision: 3 },
                ],
            })
            .expect("verify");
        assert_eq!(reply.missing_client_ids, ["c9"]);
    }

    #[tokio::test]
    async fn a_snapshot_streams_every_client_in_chunks() {
        let d = distro();
        for n in 0..5 {
            d.store.apply_copy(client(&format!("c{n}"), 1, &format!("10.0.0.{n}")), "b:8848", Instant::now());
        }
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
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(UNIX_EPOCH + Duration::from_secs(951_782_400)), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(UNIX_EPOCH + Duration::from_secs(1_795_000_000)), "2026-11-18T11:06:40Z");
    }
}
