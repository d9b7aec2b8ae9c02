//! Roster's registry node: a Nacos-compatible naming server.
//!
//! Existing Nacos clients work unchanged: the Nacos 2.x gRPC protocol on the
//! client port (main + 1000) and the Nacos Open API v1 on the main HTTP port.
//! `docs/ARCHITECTURE.md` in the repository walks through the planes and the
//! data paths; this is the map.
//!
//! # Layout
//! Three planes, each with its own module and its own narrow state:
//! - [`api`]: the client plane: [`api::grpc`] and [`api::http`], sharing
//!   [`api::ClientState`].
//! - [`peer`]: the peer plane: the peer port's service, channels, handler
//!   traits (member reports, Distro, Raft) and its one message limit.
//! - [`admin`]: the admin plane (status, health, metrics, faults).
//!
//! What the planes serve:
//! - [`naming`]: the store (namespaces, groups, services, clusters,
//!   instances) and the clients that own ephemeral instances.
//! - [`push`]: subscriptions and pushes to subscribers.
//! - [`push_udp`]: UDP pushes to 1.x-style HTTP clients.
//! - [`cluster`]: member lookup (standalone, file, address server), member
//!   health reports, Distro responsibility.
//! - [`distro`]: the AP replication of ephemeral instances between members.
//! - [`raft`]: Raft (CP): persistent instances and service settings, durable
//!   and replicated; writes are forwarded to the leader, reads stay local.
//!
//! Around them:
//! - [`limits`]: size, connection and rate limits of the client plane.
//! - [`auth`]: client authentication (login, tokens, per-namespace rights).
//! - [`security`]: peer identity (the cluster secret) and TLS of the three ports.
//! - [`console`]: the web console at `/console/`: the embedded UI and the
//!   registry views it reads, beside the client plane's limits.
//! - [`config`]: the whole configuration, flattened from each subsystem's
//!   settings; [`duration`]: how duration flags read.
//! - [`metrics`]: the client plane's metrics (each subsystem owns its own).
//! - [`server`]: start-up and shutdown of a node; [`listeners`]: how each
//!   port admits and serves its connections; [`telemetry`]: logs.
//! - [`fuzzing`]: the decoders the fuzz targets in `fuzz/` drive.
//! - [`error`]: the node's error type and its Nacos codes.
#![deny(missing_docs)]

// First: the `label_set!` macro every metrics module uses.
#[macro_use]
mod labels;

pub mod admin;
pub mod api;
pub mod auth;
pub mod cluster;
pub mod config;
pub mod console;
pub mod distro;
pub mod duration;
pub mod error;
pub mod fuzzing;
pub mod limits;
pub mod listeners;
pub mod metrics;
pub mod naming;
pub mod peer;
pub mod push;
pub mod push_udp;
pub mod raft;
pub mod security;
pub mod server;
pub mod telemetry;

pub use config::Config;
pub use error::{Error, Result};
pub use server::{start, NodeMetrics, RunningNode};
