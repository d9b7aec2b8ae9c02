//! The naming store and model: namespaces, groups, services, clusters and
//! instances, and the clients that own ephemeral instances.
//!
//! # Layout
//! - [`model`]: the data types and their Nacos JSON shapes.
//! - [`client`]: connection-based and ip:port clients.
//! - [`overlay`]: overrides of ephemeral instances made through the API.
//! - [`cleaner`]: the empty-service cleaner and its flags.
//! - [`replica`]: a client's replicated state and Distro's merge rules,
//!   without I/O.
//! - [`store`]: the store itself, with change notification.
//! - [`validate`]: input validation shared by both client APIs.
//! - [`clock`]: the monotonic and wall clocks the store and clients use.

pub mod cleaner;
pub mod client;
pub mod clock;
pub mod model;
pub mod overlay;
pub mod replica;
pub mod store;
pub mod validate;

pub use client::{
    distro_tag, ip_port_address, ip_port_client_id, persistent_client_id, Client, ClientKind, Origin, Owner,
};
pub use model::{Instance, InstanceKey, InstanceWire, ServiceInfo, ServiceKey, ServiceMeta};
pub use replica::{Delta, Slot};
pub use store::{
    AddressFilter, Applied, BeatOutcome, ClientCopy, CopyExpiry, EncodedView, Form, LocalChange, NamingStore,
    PublisherRef, Selection, StoreCounts, VerifyOutcome, Vouched,
};
