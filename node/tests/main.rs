//! The node's integration tests, one module per area, built as one test
//! binary: one link of the node instead of one per file, which saves the
//! 2-core CI machines minutes and about a gigabyte of disk. Run one area
//! with `cargo test -p roster-node --test integration <module>::`.

mod common;

mod architecture;

mod auth;
mod client_api;
mod cluster_membership;
mod console;
mod distro_harness;
mod distro_readiness;
mod drain;
mod empty_services;
mod fuzz_seeds;
mod grpc_protocol;
mod grpc_sdk;
mod hardening;
mod hardening_input;
mod harness;
mod http_api;
mod http_bad_input;
mod http_beat;
mod http_v2_naming;
mod instance_overrides;
mod limits;
mod peer_security;
mod raft_cluster;
mod raft_standalone;
mod status;
mod tls;
mod udp_push;
