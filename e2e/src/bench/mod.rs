//! The benchmark behind `roster-bench`: a load generator that speaks the
//! Nacos 2.x gRPC protocol itself (and HTTP for queries), named scenarios,
//! and the JSON and table reports.
//!
//! # Layout
//! - [`client`]: one Nacos gRPC connection (envelope, handshake, unary
//!   requests, acknowledged pushes) and the request bodies.
//! - [`cluster`]: the nodes under test, started here or given with `--target`.
//! - [`scenarios`]: `register`, `query`, `convergence`, `push`, `raft`,
//!   and the large data set behind `memory` and `bootstrap`.
//! - [`stats`]: HDR latency histograms, rates, machine facts, `/proc` memory.
//! - [`report`]: the human table.

pub mod client;
pub mod cluster;
pub mod report;
pub mod scenarios;
pub mod stats;

/// Every scenario, in the order `all` runs them.
pub const SCENARIOS: [&str; 7] = ["register", "query", "convergence", "push", "raft", "memory", "bootstrap"];
