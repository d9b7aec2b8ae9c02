//! The peer plane: what members say to each other on the peer port
//! (main + 1001), for three protocols: member reports ([`crate::cluster`]),
//! Distro ([`crate::distro`]) and Raft ([`crate::raft`]).
//!
//! This module owns everything the three share, so that they depend on it
//! and not on each other:
//!
//! * the **handler traits** ([`handlers`]), one per protocol, through which
//!   the inbound service reaches each protocol: [`MemberHandler`],
//!   [`DistroHandler`], [`RaftHandler`];
//! * the **outbound side** ([`transport`]): the [`PeerTransport`] trait each
//!   protocol sends through, implemented over gRPC by [`PeerChannels`]
//!   ([`channels`]: one signed, lazily connected channel per member) and,
//!   in the tests, by an in-process network that can drop, delay and
//!   partition messages;
//! * the **inbound service** ([`service`]): the tonic `Peer` service that
//!   checks who sent a call and hands it to the protocol's handler;
//! * the **one message limit** of the port, `--max-peer-message-bytes`
//!   ([`PeerSettings`]), used for every message both ways;
//! * the **fault switch** ([`faults`]) of the chaos tests.
//!
//! Who may call at all (the cluster secret, mutual TLS) is
//! [`crate::security`]'s, applied around the service by the server.

pub mod channels;
pub mod faults;
pub mod handlers;
pub mod service;
pub mod transport;

use crate::error::{Error, Result};

pub use self::channels::{peer_endpoint, PeerAddressResolver, PeerChannels};
pub use self::faults::{FaultSettings, Faults};
pub use self::handlers::{DistroHandler, MemberHandler, RaftCall, RaftHandler, SnapshotStream};
pub use self::service::PeerService;
pub use self::transport::{PeerError, PeerTransport};

/// Offset of the peer gRPC port from the main port (Nacos convention); every
/// member is assumed to use the same offset.
pub const PEER_PORT_OFFSET: u16 = 1001;

/// The default of `--max-peer-message-bytes`.
pub const DEFAULT_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

/// The smallest `--max-peer-message-bytes`: a Raft snapshot chunk (1 MiB)
/// and its header must fit.
pub const MIN_MESSAGE_BYTES: usize = 2 * 1024 * 1024;

/// Settings of the peer plane.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
#[command(next_help_heading = "Peer plane")]
pub struct PeerSettings {
    /// Largest message accepted on the peer port (Distro sync and verify,
    /// Raft), in bytes. At least 2 MiB (a Raft snapshot chunk is 1 MiB).
    #[arg(long = "max-peer-message-bytes", id = "max_peer_message_bytes", value_name = "MAX_PEER_MESSAGE_BYTES", env = "ROSTER_MAX_PEER_MESSAGE_BYTES", default_value_t = DEFAULT_MESSAGE_BYTES)]
    pub max_message_bytes: usize,

    /// Accept `PUT /roster/v1/faults` to cut peers or drop syncs (tests only;
    /// never enable in production).
    #[arg(long, env = "ROSTER_FAULT_INJECTION", default_value_t = false)]
    pub fault_injection: bool,
}

impl Default for PeerSettings {
    fn default() -> Self {
        PeerSettings { max_message_bytes: DEFAULT_MESSAGE_BYTES, fault_injection: false }
    }
}

impl PeerSettings {
    /// Refuses a message limit too small for a Raft snapshot chunk.
    pub fn validate(&self) -> Result<()> {
        if self.max_message_bytes < MIN_MESSAGE_BYTES {
            return Err(Error::Config(format!(
                "--max-peer-message-bytes must be at least {MIN_MESSAGE_BYTES} (a Raft snapshot chunk must fit)"
            )));
        }
        Ok(())
    }
}
