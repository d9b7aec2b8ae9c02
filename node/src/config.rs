//! Node configuration: command-line flags, each with a `ROSTER_*`
//! environment variable, so the same binary is driven by scripts, the
//! operator's pod template and the test harness.
//!
//! With no flags at all the node runs standalone on the Nacos ports
//! (8848 HTTP, 9848 client gRPC).

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};

use crate::cluster::ClusterSettings;
use crate::error::{Error, Result};

/// Offset of the client gRPC port from the main port (Nacos convention).
pub const GRPC_PORT_OFFSET: u16 = 1000;
/// Offset of the peer gRPC port from the main port (Nacos convention).
pub const PEER_PORT_OFFSET: u16 = 1001;

/// How the node finds the other members.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LookupMode {
    /// A cluster of one.
    Standalone,
    /// A `cluster.conf` file of `host:port` lines.
    File,
    /// A URL polled for `host:port` lines.
    AddressServer,
}

impl LookupMode {
    /// The name used in flags and in `/roster/v1/status`.
    pub fn as_str(&self) -> &'static str {
        match self {
            LookupMode::Standalone => "standalone",
            LookupMode::File => "file",
            LookupMode::AddressServer => "address-server",
        }
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Parses durations such as `500ms`, `15s`, `3m` or a bare number of milliseconds.
pub fn parse_duration(raw: &str) -> std::result::Result<Duration, String> {
    let raw = raw.trim();
    let (digits, unit) = raw.split_at(raw.find(|c: char| !c.is_ascii_digit()).unwrap_or(raw.len()));
    let n: u64 = digits.parse().map_err(|_| format!("'{raw}' is not a duration (try 500ms, 15s, 3m)"))?;
    match unit {
        "" | "ms" => Ok(Duration::from_millis(n)),
        "s" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n.saturating_mul(60))),
        "h" => Ok(Duration::from_secs(n.saturating_mul(3600))),
        _ => Err(format!("'{raw}' has an unknown unit '{unit}' (use ms, s, m or h)")),
    }
}

/// Everything the node can be told at start-up.
#[derive(Debug, Clone, Parser)]
#[command(name = "roster-node", version, about = "Roster: a Nacos-compatible service registry node")]
pub struct Config {
    /// Address the listeners bind to.
    #[arg(long, env = "ROSTER_BIND", default_value = "0.0.0.0")]
    pub bind: IpAddr,

    /// Main HTTP port (Nacos Open API, status, metrics). 0 picks a free port.
    #[arg(long, env = "ROSTER_PORT", default_value_t = 8848)]
    pub port: u16,

    /// Client gRPC port [default: port + 1000; 0 when --port is 0].
    #[arg(long, env = "ROSTER_GRPC_PORT")]
    pub grpc_port: Option<u16>,

    /// Peer gRPC port [default: port + 1001]. Members reach each other here;
    /// every member is assumed to use the same offset from its main port.
    #[arg(long, env = "ROSTER_PEER_PORT")]
    pub peer_port: Option<u16>,

    /// This member's name in member lists, host:port [default: first
    /// non-loopback IP, else 127.0.0.1, with --port].
    #[arg(long, env = "ROSTER_ADVERTISE")]
    pub advertise: Option<String>,

    /// Directory for durable state (the Raft log and snapshots).
    #[arg(long, env = "ROSTER_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,

    /// How members are found: standalone, file or address-server.
    #[arg(long, env = "ROSTER_LOOKUP", value_enum, default_value = "standalone")]
    pub lookup: LookupMode,

    /// Member list for `--lookup file`.
    #[arg(long, env = "ROSTER_CLUSTER_CONF", default_value = "./cluster.conf")]
    pub cluster_conf: PathBuf,

    /// Member list URL for `--lookup address-server`.
    #[arg(long, env = "ROSTER_ADDRESS_SERVER_URL")]
    pub address_server_url: Option<String>,

    /// How often `--cluster-conf` is re-read for changes.
    #[arg(long, env = "ROSTER_CLUSTER_CONF_POLL_INTERVAL", default_value = "1s", value_parser = parse_duration)]
    pub cluster_conf_poll_interval: Duration,

    /// How often the address server is asked for the member list.
    #[arg(long, env = "ROSTER_ADDRESS_SERVER_POLL_INTERVAL", default_value = "5s", value_parser = parse_duration)]
    pub address_server_poll_interval: Duration,

    /// Timeout of one address-server request.
    #[arg(long, env = "ROSTER_ADDRESS_SERVER_TIMEOUT", default_value = "3s", value_parser = parse_duration)]
    pub address_server_timeout: Duration,

    /// How often this node reports itself to every other member.
    #[arg(long, env = "ROSTER_MEMBER_REPORT_INTERVAL", default_value = "2s", value_parser = parse_duration)]
    pub member_report_interval: Duration,

    /// Timeout of one member report.
    #[arg(long, env = "ROSTER_MEMBER_REPORT_TIMEOUT", default_value = "1s", value_parser = parse_duration)]
    pub member_report_timeout: Duration,

    /// Consecutive failed reports after which a member is DOWN (one failure
    /// makes it SUSPICIOUS).
    #[arg(long, env = "ROSTER_MEMBER_DOWN_AFTER_FAILURES", default_value_t = 3)]
    pub member_down_after_failures: u32,

    /// HTTP instances without a beat for this long turn unhealthy.
    #[arg(long, env = "ROSTER_BEAT_TIMEOUT", default_value = "15s", value_parser = parse_duration)]
    pub beat_timeout: Duration,

    /// HTTP instances without a beat for this long are removed.
    #[arg(long, env = "ROSTER_BEAT_DELETE_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub beat_delete_timeout: Duration,

    /// How often beat expiry is checked.
    #[arg(long, env = "ROSTER_BEAT_CHECK_INTERVAL", default_value = "1s", value_parser = parse_duration)]
    pub beat_check_interval: Duration,

    /// Changes to one service within this window are pushed once.
    #[arg(long, env = "ROSTER_PUSH_DELAY", default_value = "100ms", value_parser = parse_duration)]
    pub push_delay: Duration,

    /// A push not acknowledged within this time is retried.
    #[arg(long, env = "ROSTER_PUSH_TIMEOUT", default_value = "5s", value_parser = parse_duration)]
    pub push_timeout: Duration,

    /// Delay before retrying a failed push.
    #[arg(long, env = "ROSTER_PUSH_RETRY_DELAY", default_value = "1s", value_parser = parse_duration)]
    pub push_retry_delay: Duration,

    /// A gRPC connection silent for this long is probed with ClientDetectionRequest.
    #[arg(long, env = "ROSTER_CONNECTION_IDLE_TIMEOUT", default_value = "20s", value_parser = parse_duration)]
    pub connection_idle_timeout: Duration,

    /// A probed connection that does not answer within this time is closed
    /// and its instances removed.
    #[arg(long, env = "ROSTER_CLIENT_DETECTION_TIMEOUT", default_value = "5s", value_parser = parse_duration)]
    pub client_detection_timeout: Duration,

    /// How often idle connections are looked for.
    #[arg(long, env = "ROSTER_CONNECTION_CHECK_INTERVAL", default_value = "3s", value_parser = parse_duration)]
    pub connection_check_interval: Duration,

    /// Largest HTTP request body accepted, in bytes.
    #[arg(long, env = "ROSTER_MAX_BODY_BYTES", default_value_t = 1024 * 1024)]
    pub max_body_bytes: usize,

    /// Largest gRPC message accepted, in bytes.
    #[arg(long, env = "ROSTER_MAX_GRPC_MESSAGE_BYTES", default_value_t = 10 * 1024 * 1024)]
    pub max_grpc_message_bytes: usize,

    /// Largest message accepted on the peer port (Distro sync and verify,
    /// Raft), in bytes. At least 2 MiB (a Raft snapshot chunk is 1 MiB).
    #[arg(long, env = "ROSTER_MAX_PEER_MESSAGE_BYTES", default_value_t = crate::distro::MAX_PEER_MESSAGE_BYTES)]
    pub max_peer_message_bytes: usize,

    /// Most open TCP connections on the client gRPC port; more are answered
    /// RESOURCE_EXHAUSTED and closed. 0: no limit.
    #[arg(long, env = "ROSTER_MAX_GRPC_CONNECTIONS", default_value_t = 10_000)]
    pub max_grpc_connections: usize,

    /// Most open TCP connections on the main HTTP port; more are answered
    /// 503 and closed. 0: no limit.
    #[arg(long, env = "ROSTER_MAX_HTTP_CONNECTIONS", default_value_t = 1_024)]
    pub max_http_connections: usize,

    /// Requests per second one gRPC connection may send (token bucket
    /// refill); more are answered with error code 503. 0: no limit.
    #[arg(long, env = "ROSTER_GRPC_RATE_LIMIT", default_value_t = 200.0)]
    pub grpc_rate_limit: f64,

    /// Requests one gRPC connection may send at once (token bucket size).
    #[arg(long, env = "ROSTER_GRPC_RATE_BURST", default_value_t = 400)]
    pub grpc_rate_burst: u32,

    /// Requests per second one client IP may send to the HTTP port (token
    /// bucket refill); more are answered 429. 0: no limit.
    #[arg(long, env = "ROSTER_HTTP_RATE_LIMIT", default_value_t = 500.0)]
    pub http_rate_limit: f64,

    /// Requests one client IP may send to the HTTP port at once (token bucket size).
    #[arg(long, env = "ROSTER_HTTP_RATE_BURST", default_value_t = 1_000)]
    pub http_rate_burst: u32,

    /// Logins per second one client IP may attempt (token bucket refill);
    /// more are answered 429. Every login costs a deliberately slow password
    /// hash, so this is far below `--http-rate-limit`. 0: no limit.
    #[arg(long, env = "ROSTER_LOGIN_RATE_LIMIT", default_value_t = 1.0)]
    pub login_rate_limit: f64,

    /// Logins one client IP may attempt at once (token bucket size).
    #[arg(long, env = "ROSTER_LOGIN_RATE_BURST", default_value_t = 10)]
    pub login_rate_burst: u32,

    /// Password hashes the node computes at once for logins, from all
    /// clients together; the rest wait (see `--login-wait`). Caps the CPU a
    /// login flood from many addresses can take from the registry.
    #[arg(long, env = "ROSTER_MAX_CONCURRENT_LOGINS", default_value_t = 1)]
    pub max_concurrent_logins: usize,

    /// How long a login waits for a free password hash before it is
    /// answered 429 (`--max-concurrent-logins`).
    #[arg(long, env = "ROSTER_LOGIN_WAIT", default_value = "3s", value_parser = parse_duration)]
    pub login_wait: Duration,

    /// Largest metadata of one instance or service (keys plus values), in bytes.
    #[arg(long, env = "ROSTER_MAX_METADATA_BYTES", default_value_t = 16 * 1024)]
    pub max_metadata_bytes: usize,

    /// Most instances in one batch registration.
    #[arg(long, env = "ROSTER_MAX_BATCH_INSTANCES", default_value_t = 1000)]
    pub max_batch_instances: usize,

    /// Distro: how long changes to one client are gathered into one send
    /// (Nacos: 1 s).
    #[arg(long, env = "ROSTER_DISTRO_SYNC_DELAY", default_value = "200ms", value_parser = parse_duration)]
    pub distro_sync_delay: Duration,

    /// Distro: how long a failed send waits before it is retried (Nacos: 3 s).
    #[arg(long, env = "ROSTER_DISTRO_SYNC_RETRY_DELAY", default_value = "1s", value_parser = parse_duration)]
    pub distro_sync_retry_delay: Duration,

    /// Distro: timeout of one sync or verify call to a peer.
    #[arg(long, env = "ROSTER_DISTRO_SYNC_TIMEOUT", default_value = "3s", value_parser = parse_duration)]
    pub distro_sync_timeout: Duration,

    /// Distro: how often each node verifies the clients it is responsible
    /// for with every peer (Nacos: 5 s).
    #[arg(long, env = "ROSTER_DISTRO_VERIFY_INTERVAL", default_value = "5s", value_parser = parse_duration)]
    pub distro_verify_interval: Duration,

    /// Distro: how long a copy of another node's client lives without being
    /// verified (Nacos: 3 min).
    #[arg(long, env = "ROSTER_DISTRO_COPY_EXPIRY", default_value = "3m", value_parser = parse_duration)]
    pub distro_copy_expiry: Duration,

    /// Distro: how long a removed client is remembered, so that a copy
    /// older than its removal (held across a partition) cannot revive it.
    #[arg(long, env = "ROSTER_DISTRO_TOMBSTONE_TTL", default_value = "10m", value_parser = parse_duration)]
    pub distro_tombstone_ttl: Duration,

    /// Distro: how long to wait before another snapshot load round when no
    /// peer could serve one (Nacos: 30 s).
    #[arg(long, env = "ROSTER_DISTRO_LOAD_RETRY_DELAY", default_value = "5s", value_parser = parse_duration)]
    pub distro_load_retry_delay: Duration,

    /// Distro: clients per snapshot chunk.
    #[arg(long, env = "ROSTER_DISTRO_SNAPSHOT_CHUNK", default_value_t = 500)]
    pub distro_snapshot_chunk: usize,

    /// Accept `PUT /roster/v1/faults` to cut peers or drop syncs (tests only;
    /// never enable in production).
    #[arg(long, env = "ROSTER_FAULT_INJECTION", default_value_t = false)]
    pub fault_injection: bool,

    /// Log format.
    #[arg(long, env = "ROSTER_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,

    /// Shortest Raft election timeout.
    #[arg(long, env = "ROSTER_RAFT_ELECTION_TIMEOUT_MIN", default_value = "1000ms", value_parser = parse_duration)]
    pub raft_election_timeout_min: Duration,

    /// Longest Raft election timeout: a leader lost is replaced within about this.
    #[arg(long, env = "ROSTER_RAFT_ELECTION_TIMEOUT_MAX", default_value = "2000ms", value_parser = parse_duration)]
    pub raft_election_timeout_max: Duration,

    /// How often the Raft leader sends heartbeats.
    #[arg(long, env = "ROSTER_RAFT_HEARTBEAT_INTERVAL", default_value = "250ms", value_parser = parse_duration)]
    pub raft_heartbeat_interval: Duration,

    /// Build a Raft snapshot (and compact the log) after this many entries.
    #[arg(long, env = "ROSTER_RAFT_SNAPSHOT_LOGS", default_value_t = 10_000)]
    pub raft_snapshot_logs: u64,

    /// Raft log entries kept behind a snapshot for members that lag briefly.
    #[arg(long, env = "ROSTER_RAFT_LOGS_TO_KEEP", default_value_t = 1_000)]
    pub raft_logs_to_keep: u64,

    /// How long a persistent write may wait for a Raft leader and its commit.
    #[arg(long, env = "ROSTER_RAFT_WRITE_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub raft_write_timeout: Duration,

    /// Time between health checks of persistent instances (by the Raft leader); 0 turns them off.
    #[arg(long, env = "ROSTER_HEALTH_CHECK_INTERVAL", default_value = "5s", value_parser = parse_duration)]
    pub health_check_interval: Duration,

    /// Timeout of one health check of a persistent instance.
    #[arg(long, env = "ROSTER_HEALTH_CHECK_TIMEOUT", default_value = "2s", value_parser = parse_duration)]
    pub health_check_timeout: Duration,

    /// Require clients to log in (`POST /nacos/v1/auth/login`) and send a
    /// token with every naming request. Needs a token key and a users file.
    #[arg(long, env = "ROSTER_AUTH_ENABLED", default_value_t = false)]
    pub auth_enabled: bool,

    /// Directory holding `token-key` and `users.json` (the operator mounts
    /// the auth Secret here); the file flags below take precedence.
    #[arg(long, env = "ROSTER_AUTH_DIR")]
    pub auth_dir: Option<PathBuf>,

    /// File holding the token signing key (at least 32 bytes; surrounding
    /// whitespace is ignored). There is no default key.
    #[arg(long, env = "ROSTER_AUTH_TOKEN_KEY_FILE")]
    pub auth_token_key_file: Option<PathBuf>,

    /// The token signing key itself; prefer the environment variable or the
    /// key file, as command lines are visible to other local users.
    #[arg(long, env = "ROSTER_AUTH_TOKEN_KEY", hide_env_values = true, value_parser = Secret::parse)]
    pub auth_token_key: Option<Secret>,

    /// The users file (JSON: names, password hashes, roles, per-namespace rights).
    #[arg(long, env = "ROSTER_AUTH_USERS_FILE")]
    pub auth_users_file: Option<PathBuf>,

    /// How long an access token is valid (Nacos: 18000 s).
    #[arg(long, env = "ROSTER_AUTH_TOKEN_TTL", default_value = "18000s", value_parser = parse_duration)]
    pub auth_token_ttl: Duration,

    /// Cluster secret and TLS ([`crate::security`]).
    #[command(flatten)]
    pub security: crate::security::SecurityConfig,

    /// UDP push to 1.x HTTP clients ([`crate::push_udp`]).
    #[command(flatten)]
    pub udp_push: crate::push_udp::UdpPushSettings,
}

/// A secret setting: its `Debug` never shows the value, so logging the
/// configuration cannot leak it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// clap's parser for secret values.
    pub fn parse(raw: &str) -> std::result::Result<Secret, String> {
        Ok(Secret(raw.to_owned()))
    }

    /// The value itself.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(redacted)")
    }
}

impl Default for Config {
    fn default() -> Self {
        Config::parse_from(["roster-node"])
    }
}

impl Config {
    /// The client gRPC port to bind.
    pub fn grpc_port(&self) -> u16 {
        self.grpc_port.unwrap_or(if self.port == 0 { 0 } else { self.port.saturating_add(GRPC_PORT_OFFSET) })
    }

    /// The peer gRPC port.
    pub fn peer_port(&self) -> u16 {
        self.peer_port.unwrap_or(if self.port == 0 { 0 } else { self.port.saturating_add(PEER_PORT_OFFSET) })
    }

    /// Checks settings that clap cannot.
    pub fn validate(&self) -> Result<()> {
        self.udp_push.validate()?;
        if self.beat_delete_timeout < self.beat_timeout {
            return Err(Error::Config("--beat-delete-timeout must not be shorter than --beat-timeout".into()));
        }
        for (name, d) in [
            ("--beat-check-interval", self.beat_check_interval),
            ("--connection-check-interval", self.connection_check_interval),
            ("--push-timeout", self.push_timeout),
            ("--distro-sync-timeout", self.distro_sync_timeout),
            ("--distro-verify-interval", self.distro_verify_interval),
            ("--distro-copy-expiry", self.distro_copy_expiry),
            ("--distro-load-retry-delay", self.distro_load_retry_delay),
            ("--distro-sync-retry-delay", self.distro_sync_retry_delay),
        ] {
            if d.is_zero() {
                return Err(Error::Config(format!("{name} must be greater than zero")));
            }
        }
        if self.distro_tombstone_ttl < self.distro_copy_expiry {
            return Err(Error::Config("--distro-tombstone-ttl must not be shorter than --distro-copy-expiry".into()));
        }
        if self.distro_copy_expiry <= self.distro_verify_interval {
            return Err(Error::Config(
                "--distro-copy-expiry must be longer than --distro-verify-interval, or every copy would expire".into(),
            ));
        }
        if self.distro_snapshot_chunk == 0 {
            return Err(Error::Config("--distro-snapshot-chunk must be at least 1".into()));
        }
        if self.max_body_bytes == 0 || self.max_grpc_message_bytes == 0 {
            return Err(Error::Config("message size limits must be greater than zero".into()));
        }
        if self.max_peer_message_bytes < crate::limits::MIN_PEER_MESSAGE_BYTES {
            return Err(Error::Config(format!(
                "--max-peer-message-bytes must be at least {} (a Raft snapshot chunk must fit)",
                crate::limits::MIN_PEER_MESSAGE_BYTES
            )));
        }
        for (name, rate, burst) in [
            ("--grpc-rate-limit", self.grpc_rate_limit, self.grpc_rate_burst),
            ("--http-rate-limit", self.http_rate_limit, self.http_rate_burst),
            ("--login-rate-limit", self.login_rate_limit, self.login_rate_burst),
        ] {
            if !rate.is_finite() || rate < 0.0 {
                return Err(Error::Config(format!("{name} must be a number of requests per second, 0 for no limit")));
            }
            if rate > 0.0 && burst == 0 {
                return Err(Error::Config(format!("{name} needs a burst of at least 1")));
            }
        }
        if self.max_concurrent_logins == 0 {
            return Err(Error::Config("--max-concurrent-logins must be at least 1".into()));
        }
        if self.auth_token_ttl < Duration::from_secs(1) {
            return Err(Error::Config("--auth-token-ttl must be at least 1s".into()));
        }
        if self.lookup == LookupMode::AddressServer && self.address_server_url.is_none() {
            return Err(Error::Config("--lookup address-server needs --address-server-url".into()));
        }
        self.security.validate(self.lookup)?;
        self.raft_settings().validate()?;
        self.cluster_settings().validate()
    }

    /// Raft timing, compaction and health-check settings.
    pub fn raft_settings(&self) -> crate::raft::RaftSettings {
        crate::raft::RaftSettings {
            election_timeout_min: self.raft_election_timeout_min,
            election_timeout_max: self.raft_election_timeout_max,
            heartbeat_interval: self.raft_heartbeat_interval,
            snapshot_logs: self.raft_snapshot_logs,
            logs_to_keep: self.raft_logs_to_keep,
            write_timeout: self.raft_write_timeout,
            health_check_interval: self.health_check_interval,
            health_check_timeout: self.health_check_timeout,
        }
    }

    /// Lookup and member-report settings.
    pub fn cluster_settings(&self) -> ClusterSettings {
        ClusterSettings {
            file_poll_interval: self.cluster_conf_poll_interval,
            address_server_poll_interval: self.address_server_poll_interval,
            address_server_timeout: self.address_server_timeout,
            report_interval: self.member_report_interval,
            report_timeout: self.member_report_timeout,
            down_after_failures: self.member_down_after_failures,
            fault_injection: self.fault_injection,
        }
    }

    /// Offset of the peer port from the main port, assumed for every member.
    pub fn peer_port_offset(&self) -> u16 {
        match self.peer_port {
            Some(peer) if self.port != 0 && peer > self.port => peer - self.port,
            _ => PEER_PORT_OFFSET,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("15s"), Ok(Duration::from_secs(15)));
        assert_eq!(parse_duration("3m"), Ok(Duration::from_secs(180)));
        assert_eq!(parse_duration("250"), Ok(Duration::from_millis(250)));
        assert!(parse_duration("fast").is_err());
        assert!(parse_duration("5 parsecs").is_err());
    }

    #[test]
    fn defaults_follow_nacos_ports() {
        let c = Config::default();
        assert_eq!(c.port, 8848);
        assert_eq!(c.grpc_port(), 9848);
        assert_eq!(c.peer_port(), 9849);
        assert_eq!(c.lookup, LookupMode::Standalone);
        assert!(c.validate().is_ok());
    }

    #[test]
    fn flags_override_and_port_zero_is_ephemeral() {
        let c = Config::parse_from(["roster-node", "--port", "0", "--beat-timeout", "2s"]);
        assert_eq!(c.grpc_port(), 0);
        assert_eq!(c.beat_timeout, Duration::from_secs(2));
        let bad = Config::parse_from(["roster-node", "--beat-timeout", "40s"]);
        assert!(bad.validate().is_err());
        let bad = Config::parse_from(["roster-node", "--lookup", "address-server", "--cluster-secret-file", "/s"]);
        assert!(bad.validate().is_err(), "address-server needs a URL");
        let bad = Config::parse_from(["roster-node", "--member-down-after-failures", "0"]);
        assert!(bad.validate().is_err());
        let c = Config::parse_from(["roster-node", "--port", "8858", "--peer-port", "9900"]);
        assert_eq!(c.peer_port_offset(), 1042);
        assert_eq!(Config::default().peer_port_offset(), 1001);
    }
}
