//! The node's whole configuration: command-line flags, each with a
//! `ROSTER_*` environment variable, so the same binary is driven by
//! scripts, the operator's pod template and the test harness.
//!
//! Each subsystem owns its settings (a `clap::Args` struct with its own
//! `validate`), flattened here; this module adds only what belongs to the
//! node as a whole (addresses, ports, data directory, log format). Only the
//! binary and [`crate::server`] use the whole [`Config`]; every subsystem is
//! handed its own part. With no flags at all the node runs standalone on the
//! Nacos ports (8848 HTTP, 9848 client gRPC, 9849 peer gRPC).

use std::net::IpAddr;
use std::path::PathBuf;

use clap::Parser;

use crate::admin::AdminSettings;
use crate::api::grpc::{ConnectionSettings, DrainSettings, PushSettings, GRPC_PORT_OFFSET};
use crate::api::http::beat::BeatSettings;
use crate::auth::AuthSettings;
use crate::cluster::ClusterSettings;
use crate::distro::DistroSettings;
use crate::error::Result;
use crate::limits::LimitSettings;
use crate::naming::cleaner::EmptyServiceSettings;
use crate::peer::{PeerSettings, PEER_PORT_OFFSET};
use crate::push_udp::UdpPushSettings;
use crate::raft::override_cleaner::OverrideSettings;
use crate::raft::RaftSettings;
use crate::security::SecuritySettings;
use crate::telemetry::LogFormat;

pub use crate::duration::parse as parse_duration;

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

    /// Log format.
    #[arg(long, env = "ROSTER_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,

    /// Lookup and member reports ([`crate::cluster`]).
    #[command(flatten)]
    pub cluster: ClusterSettings,

    /// Beats of HTTP instances ([`crate::api::http::beat`]).
    #[command(flatten)]
    pub beats: BeatSettings,

    /// Pushes to subscribers ([`crate::push`]).
    #[command(flatten)]
    pub push: PushSettings,

    /// gRPC connection liveness ([`crate::api::grpc`]).
    #[command(flatten)]
    pub connections: ConnectionSettings,

    /// Moving gRPC clients elsewhere before stopping ([`crate::api::grpc::drain`]).
    #[command(flatten)]
    pub drain: DrainSettings,

    /// Size, connection and rate limits ([`crate::limits`]).
    #[command(flatten)]
    pub limits: LimitSettings,

    /// Distro ([`crate::distro`]).
    #[command(flatten)]
    pub distro: DistroSettings,

    /// The peer plane ([`crate::peer`]).
    #[command(flatten)]
    pub peer: PeerSettings,

    /// Raft ([`crate::raft`]).
    #[command(flatten)]
    pub raft: RaftSettings,

    /// Client authentication ([`crate::auth`]).
    #[command(flatten)]
    pub auth: AuthSettings,

    /// Cluster secret and TLS ([`crate::security`]).
    #[command(flatten)]
    pub security: SecuritySettings,

    /// Overrides of ephemeral instances ([`crate::raft::override_cleaner`]).
    #[command(flatten)]
    pub overrides: OverrideSettings,

    /// Emptied services and their cleaner ([`crate::naming::cleaner`]).
    #[command(flatten)]
    pub empty_services: EmptyServiceSettings,

    /// UDP push to 1.x HTTP clients ([`crate::push_udp`]).
    #[command(flatten)]
    pub udp_push: UdpPushSettings,

    /// The admin plane's own listener ([`crate::admin`]).
    #[command(flatten)]
    pub admin: AdminSettings,
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

    /// Checks settings that clap cannot: each subsystem's, then those that
    /// span several (security depends on the lookup mode).
    pub fn validate(&self) -> Result<()> {
        self.beats.validate()?;
        self.connections.validate()?;
        self.drain.validate()?;
        self.push.validate()?;
        self.distro.validate()?;
        self.limits.validate()?;
        self.peer.validate()?;
        self.auth.validate()?;
        self.cluster.validate()?;
        self.security.validate(self.cluster.lookup.mode)?;
        self.udp_push.validate()?;
        self.empty_services.validate()?;
        self.overrides.validate()?;
        self.raft.validate()
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
    use std::time::Duration;

    use super::*;
    use crate::cluster::LookupMode;

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
        assert_eq!(c.cluster.lookup.mode, LookupMode::Standalone);
        assert!(c.validate().is_ok());
    }

    #[test]
    fn flags_override_and_port_zero_is_ephemeral() {
        let c = Config::parse_from(["roster-node", "--port", "0", "--beat-timeout", "2s"]);
        assert_eq!(c.grpc_port(), 0);
        assert_eq!(c.beats.timeout, Duration::from_secs(2));
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

    #[test]
    fn each_subsystem_default_is_its_flag_default() {
        let c = Config::default();
        assert_eq!(c.cluster, ClusterSettings::default());
        assert_eq!(c.beats, BeatSettings::default());
        assert_eq!(c.push, PushSettings::default());
        assert_eq!(c.connections, ConnectionSettings::default());
        assert_eq!(c.drain, DrainSettings::default());
        assert_eq!(c.limits, LimitSettings::default());
        assert_eq!(c.distro, DistroSettings::default());
        assert_eq!(c.peer, PeerSettings::default());
        assert_eq!(c.raft, crate::raft::RaftSettings::default());
        assert_eq!(c.auth, AuthSettings::default());
        assert_eq!(c.udp_push, UdpPushSettings::default());
        assert_eq!(c.empty_services, EmptyServiceSettings::default());
        assert_eq!(c.overrides, OverrideSettings::default());
    }
}
