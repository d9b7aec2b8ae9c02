//! The Roster Kubernetes operator.
//!
//! Not built yet: the controller, the address server and status aggregation
//! arrive with the operator issue. The `RegistryCluster` types it will
//! reconcile live in `roster-crds`.
#![deny(missing_docs)]
