//! Request bodies of the Nacos 2.x client protocol (`com.alibaba.nacos.api`
//! `naming.remote.request` and `remote.request`), as JSON.
//!
//! Fields are optional or defaulted so that a client's omissions are judged
//! by validation with a clear message, not by a parse error.

use std::collections::HashMap;

use serde::Deserialize;

use crate::error::Result;
use crate::naming::{validate, InstanceWire, ServiceKey};

/// Fields every naming request carries (`AbstractNamingRequest`).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct NamingBase {
    /// Namespace id.
    pub namespace: Option<String>,
    /// Bare service name.
    pub service_name: Option<String>,
    /// Group name.
    pub group_name: Option<String>,
}

impl NamingBase {
    /// The validated service these fields name.
    pub fn service_key(&self) -> Result<ServiceKey> {
        validate::service_key(self.namespace.as_deref(), self.group_name.as_deref(), self.service_name.as_deref())
    }
}

/// `InstanceRequest` and `PersistentInstanceRequest`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct InstanceRequest {
    /// Service coordinates.
    #[serde(flatten)]
    pub base: NamingBase,
    /// `registerInstance` or `deregisterInstance`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The instance.
    pub instance: Option<InstanceWire>,
}

/// `BatchInstanceRequest`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct BatchInstanceRequest {
    /// Service coordinates.
    #[serde(flatten)]
    pub base: NamingBase,
    /// `batchRegisterInstance` (or `batchDeregisterInstance`).
    #[serde(rename = "type")]
    pub kind: String,
    /// The instances.
    pub instances: Vec<InstanceWire>,
}

/// `ServiceQueryRequest`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ServiceQueryRequest {
    /// Service coordinates.
    #[serde(flatten)]
    pub base: NamingBase,
    /// Comma-separated clusters ("" for all).
    pub cluster: Option<String>,
    /// Only healthy instances.
    pub healthy_only: bool,
    /// UDP push port of 1.x clients; unused over gRPC.
    pub udp_port: i64,
}

/// `SubscribeServiceRequest`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SubscribeServiceRequest {
    /// Service coordinates.
    #[serde(flatten)]
    pub base: NamingBase,
    /// True to subscribe, false to unsubscribe.
    pub subscribe: bool,
    /// Comma-separated clusters ("" for all).
    pub clusters: Option<String>,
}

/// `ServiceListRequest`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ServiceListRequest {
    /// Namespace and group (the service name is unused).
    #[serde(flatten)]
    pub base: NamingBase,
    /// Page number, from 1.
    pub page_no: i64,
    /// Page size.
    pub page_size: i64,
    /// Selector JSON; only `none` selectors are supported.
    pub selector: Option<String>,
}

/// `ConnectionSetupRequest`, the first message on the stream.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ConnectionSetupRequest {
    /// Client version.
    pub client_version: Option<String>,
    /// Namespace.
    pub tenant: Option<String>,
    /// Labels (`module`, `source`, `AppName`).
    pub labels: HashMap<String, String>,
    /// Java clients' ability table; its presence asks for a `SetupAckRequest`.
    pub ability_table: Option<serde_json::Value>,
}

/// The fields of any client response on the stream.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct StreamResponse {
    /// Echo of the server request's id.
    pub request_id: Option<String>,
    /// 200 on success.
    pub result_code: i64,
}

/// Splits a comma-separated cluster list, dropping blanks.
pub fn cluster_list(raw: Option<&str>) -> Vec<String> {
    raw.unwrap_or("").split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect()
}
