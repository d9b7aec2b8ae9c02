//! The Nacos Open API v2 for naming (Nacos 2.2+, `/nacos/v2/ns/...`), which
//! tools and gateways built on Nacos 2 call.
//!
//! Every answer is the v2 `Result` `{"code", "message", "data"}`
//! ([`super::v2`]); success is code 0 with `data` (`"ok"` for writes).
//! Failures carry Nacos's `ErrorCode` and HTTP status ([`answer`]):
//!
//! | case | status | code |
//! |---|---|---|
//! | required parameter absent or blank | 400 | 10000 `parameter missing` |
//! | malformed or out-of-range value | 400 | 20002 `parameter validate error` |
//! | weight outside 0..=10000 | 400 | 21001 `weight error` |
//! | metadata neither JSON nor `k=v,k=v` | 400 | 21002 `instance metadata error` |
//! | update of an instance of an unknown service | 400 | 21004 `instance error` |
//! | selector of an unknown type | 400 | 21006 `selector error` |
//! | create of an existing service | 400 | 21007 `service already exist` |
//! | unknown service (update, delete, detail) | 400 | 21008 `service not exist` |
//! | delete of a service with instances | 400 | 21009 `service delete failure` |
//! | health of a server-checked instance | 400 | 30000 `server error` |
//! | unknown instance (detail, update, health) | 404 | 20004 `resource not found` |
//! | missing right (with `--auth-enabled`) | 403 | v1 text, as Nacos's auth filter answers |
//!
//! Routes (parameters are query or form, as in v1; `namespaceId`,
//! `groupName` and `clusterName` default to `public`, `DEFAULT_GROUP` and
//! `DEFAULT`):
//!
//! - [`instance`]: `POST|PUT|DELETE|GET /nacos/v2/ns/instance`,
//!   `GET /instance/list`, `PUT|DELETE /instance/metadata/batch`, and
//!   `PUT /instance/beat` (the v1 beat, whose answer Nacos's v2 route
//!   shares).
//! - [`service`]: `POST|PUT|DELETE|GET /nacos/v2/ns/service`,
//!   `GET /service/list`.
//! - [`health`]: `PUT /nacos/v2/ns/health/instance` and `/health`.
//! - [`operator`]: `GET /nacos/v2/ns/operator/metrics` and
//!   `/nacos/v2/ns/ops/metrics`.
//!
//! Not served: `PATCH /instance` (its Nacos form requires weight, enabled
//! and metadata at once; v1's PATCH covers it), `/instance/statuses/{key}`
//! (Nacos-internal) and `/operator/switches` (no runtime switches).
//!
//! Edits of instances published by gRPC clients: Nacos keeps the weight,
//! enabled flag and metadata an API sets apart from what the client
//! published (`InstanceOperatorClientImpl.updateInstance` →
//! `NamingMetadataOperateService.updateInstanceMetadata`, a Raft write to
//! the `naming_instance_metadata` group, keyed by service and
//! `ip:port:cluster`), and lays them over the published instance whenever
//! it is queried or pushed (`ServiceStorage.parseInstance` →
//! `InstanceUtil.updateInstanceMetadata`: `enabled` and `weight` replaced,
//! metadata keys added). The override outlives a re-registration and
//! expires 60 s after its instance is gone (`ExpiredMetadataCleaner`).
//! Roster does the same for the v2 update and metadata batch, as for the
//! v1 update ([`crate::naming::overlay`]; the README's "Edits of client
//! instances" says where it differs).
//!
//! # Layout
//! - [`answer`]: the failure shape and the naming codes.

pub mod answer;
pub mod health;
pub mod instance;
pub mod operator;
pub mod service;

use std::sync::Arc;

use axum::middleware;
use axum::routing::{get, put};
use axum::Router;

use super::{auth, beat};
use crate::api::ClientState;

/// The v2 naming routes, behind the same token and namespace checks as the
/// v1 naming routes (the summary needs a login, as its v1 twin).
pub fn routes(state: &Arc<ClientState>) -> Router<Arc<ClientState>> {
    let naming = Router::new()
        .route(
            "/nacos/v2/ns/instance",
            put(instance::update).post(instance::register).delete(instance::deregister).get(instance::detail),
        )
        .route("/nacos/v2/ns/instance/list", get(instance::list))
        .route(
            "/nacos/v2/ns/instance/metadata/batch",
            put(instance::batch_put_metadata).delete(instance::batch_delete_metadata),
        )
        .route("/nacos/v2/ns/instance/beat", put(beat::beat))
        .route(
            "/nacos/v2/ns/service",
            put(service::update).post(service::create).delete(service::delete).get(service::detail),
        )
        .route("/nacos/v2/ns/service/list", get(service::list))
        .route("/nacos/v2/ns/health", put(health::update))
        .route("/nacos/v2/ns/health/instance", put(health::update))
        .route_layer(middleware::from_fn_with_state(state.clone(), auth::require_namespace_right));
    let summary = Router::new()
        .route("/nacos/v2/ns/operator/metrics", get(operator::metrics))
        .route("/nacos/v2/ns/ops/metrics", get(operator::metrics))
        .route_layer(middleware::from_fn_with_state(state.clone(), auth::require_login));
    naming.merge(summary)
}
