//! The benchmark behind `roster-bench`: a load generator that speaks the
//! Nacos 2.x gRPC protocol itself (and the HTTP Open API), the steps of the
//! side-by-side method, the peers Roster is measured against (r-nacos,
//! etcd), and the JSON and table reports.
//!
//! # Layout
//! - [`client`]: one Nacos gRPC connection (envelope, handshake, unary
//!   requests, acknowledged pushes) and the request bodies.
//! - [`cluster`]: the Nacos-speaking cluster under test (Roster started
//!   here or given with `--target`, or r-nacos).
//! - [`rnacos`], [`etcd`]: the peers' binaries and clusters; [`process`]:
//!   their processes, killed when dropped.
//! - [`scenarios`]: the steps (registration, queries, convergence, push,
//!   persistent writes, memory and bootstrap at a large data set).
//! - [`stats`]: HDR latency histograms, rates, machine facts, `/proc` memory.
//! - [`report`]: one run's table; [`compare`]: medians and ratios side by side.

pub mod client;
pub mod cluster;
pub mod compare;
pub mod etcd;
pub mod process;
pub mod report;
pub mod rnacos;
pub mod scenarios;
pub mod stats;

/// Every step, in the order of the reports.
pub const STEPS: [&str; 9] = [
    "grpc-register",
    "grpc-query",
    "http-register",
    "http-query",
    "convergence",
    "push",
    "persistent",
    "memory",
    "bootstrap",
];
