//! Protocol buffers for Roster.
//!
//! # Layout
//! - [`nacos`]: the Nacos 2.x client protocol (`Payload` envelope, the unary
//!   `Request` service and the `BiRequestStream` service), wire-compatible with
//!   the official clients. The `.proto` has no package, so the method paths are
//!   `/Request/request` and `/BiRequestStream/requestBiStream`.
//! - [`peer`]: Roster's own member-to-member protocol (reports, Distro, Raft).
//! - [`client`]: a Nacos client connection spoken by hand (the envelope, the
//!   handshake, acknowledgements), for the tools that need one without an
//!   SDK: `roster watch` and the benchmark's load clients.
//!
//! Code is generated at build time by `protox` + `tonic-prost-build`, so no
//! system `protoc` is needed.
#![deny(missing_docs)]

/// The Nacos client protocol (generated).
#[allow(missing_docs, non_camel_case_types, clippy::all)]
pub mod nacos {
    include!(concat!(env!("OUT_DIR"), "/_.rs"));
}

/// Roster's peer protocol (generated).
#[allow(missing_docs, clippy::all)]
pub mod peer {
    include!(concat!(env!("OUT_DIR"), "/roster.peer.v1.rs"));
}

pub mod client;
