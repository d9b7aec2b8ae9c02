//! Roster's registry node: a Nacos-compatible naming server.
//!
//! Existing Nacos clients work unchanged: the Nacos 2.x gRPC protocol on the
//! client port (main + 1000) and the Nacos Open API v1 on the main HTTP port.
//!
//! # Layout
//! - [`config`]: flags and `ROSTER_*` environment variables.
//! - [`naming`]: the store (namespaces, groups, services, clusters,
//!   instances) and the clients that own ephemeral instances.
//! - [`api`]: the client planes: [`api::grpc`] and [`api::http`].
//! - [`push`]: subscriptions and pushes to subscribers.
//! - [`push_udp`]: UDP pushes to 1.x-style HTTP clients.
//! - [`cluster`]: member lookup (standalone, file, address server), member
//!   health reports over the peer port, Distro responsibility.
//! - [`distro`]: the AP replication of ephemeral instances between members.
//! - [`raft`]: Raft (CP): persistent instances and service settings, durable
//!   and replicated; writes are forwarded to the leader, reads stay local.
//! - [`limits`]: size, connection and rate limits of the client planes.
//! - [`fuzzing`]: the decoders the fuzz targets in `fuzz/` drive.
//! - [`auth`]: client authentication (login, tokens, per-namespace rights).
//! - [`security`]: peer identity (the cluster secret) and TLS of the three ports.
//! - [`status`]: the admin plane (status, health, metrics).
//! - [`server`]: start-up and shutdown of a node.
//! - [`error`]: the node's error type and its Nacos codes.
#![deny(missing_docs)]

pub mod api;
pub mod auth;
pub mod cluster;
pub mod config;
pub mod distro;
pub mod error;
pub mod fuzzing;
pub mod limits;
pub mod metrics;
pub mod naming;
pub mod push;
pub mod push_udp;
pub mod raft;
pub mod security;
pub mod server;
pub mod state;
pub mod status;
pub mod telemetry;

pub use config::Config;
pub use error::{Error, Result};
pub use server::{start, RunningNode};
