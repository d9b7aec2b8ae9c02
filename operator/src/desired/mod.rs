//! The objects a RegistryCluster owns, built as pure functions of the
//! resource and the operator settings.
//!
//! Every builder returns a complete object that the controller applies with
//! server-side apply under one field manager, so a field the operator stops
//! setting is removed on the next apply, and fields other controllers own
//! (for example the StatefulSet status) are left alone. Each object carries a
//! controller owner reference to the RegistryCluster, so deleting the
//! resource garbage-collects them and their changes wake the controller.
//!
//! # Layout
//!
//! * [`services`]: the headless Service (per-pod DNS, published before
//!   ready) and the client Service.
//! * [`statefulset`]: the member pods.
//! * [`pdb`]: the PodDisruptionBudget (at most a minority unavailable).
//! * [`configmap`]: node settings passed as environment variables.
//! * [`secret`]: the cluster secret (created once, never applied).

pub mod configmap;
pub mod pdb;
pub mod secret;
pub mod services;
pub mod statefulset;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::{Resource, ResourceExt};
use roster_crds::RegistryCluster;

use crate::names;
use crate::{Error, Result};

/// Settings of the operator that end up in the owned objects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorSettings {
    /// Base URL under which the nodes reach the address server, e.g.
    /// `http://roster-operator.roster-system.svc:8080`; the path
    /// `/v1/clusters/{ns}/{name}/serverlist` is appended.
    pub address_server_base_url: String,
}

impl OperatorSettings {
    /// The server-list URL of one cluster.
    pub fn server_list_url(&self, namespace: &str, name: &str) -> String {
        format!("{}/v1/clusters/{namespace}/{name}/serverlist", self.address_server_base_url.trim_end_matches('/'))
    }
}

/// A RegistryCluster with the identity every builder needs, checked once.
#[derive(Debug, Clone)]
pub struct Target<'a> {
    /// The resource.
    pub rc: &'a RegistryCluster,
    /// `metadata.name`.
    pub name: String,
    /// `metadata.namespace`.
    pub namespace: String,
    /// Controller owner reference to the resource.
    pub owner: OwnerReference,
}

impl<'a> Target<'a> {
    /// Checks that the resource has what owned objects need: a name, a
    /// namespace and a uid (every object read from the API server has them).
    pub fn new(rc: &'a RegistryCluster) -> Result<Self> {
        let name = rc.name_any();
        if name.is_empty() {
            return Err(Error::InvalidResource("metadata.name is empty".into()));
        }
        let namespace =
            rc.namespace().ok_or_else(|| Error::InvalidResource(format!("RegistryCluster {name} has no namespace")))?;
        let owner = rc
            .controller_owner_ref(&())
            .ok_or_else(|| Error::InvalidResource(format!("RegistryCluster {namespace}/{name} has no uid")))?;
        Ok(Target { rc, name, namespace, owner })
    }

    /// Metadata of an owned object called `object_name`.
    pub fn meta(&self, object_name: String) -> ObjectMeta {
        ObjectMeta {
            name: Some(object_name),
            namespace: Some(self.namespace.clone()),
            labels: Some(names::labels(&self.name)),
            owner_references: Some(vec![self.owner.clone()]),
            ..ObjectMeta::default()
        }
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    use roster_crds::{RegistryCluster, RegistryClusterSpec};

    /// A RegistryCluster as the API server would hand it over.
    pub fn cluster(replicas: i32) -> RegistryCluster {
        let spec: RegistryClusterSpec =
            serde_json::from_value(serde_json::json!({"replicas": replicas, "image": "roster-node:0.1.0"}))
                .expect("valid spec");
        let mut rc = RegistryCluster::new("demo", spec);
        rc.metadata.namespace = Some("ns".into());
        rc.metadata.uid = Some("uid-1".into());
        rc.metadata.generation = Some(1);
        rc
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::cluster;
    use super::*;

    #[test]
    fn target_needs_namespace_and_uid() {
        let rc = cluster(3);
        let t = Target::new(&rc).expect("valid");
        assert_eq!(t.owner.kind, "RegistryCluster");
        assert_eq!(t.owner.controller, Some(true));
        let mut no_ns = cluster(3);
        no_ns.metadata.namespace = None;
        assert!(matches!(Target::new(&no_ns), Err(Error::InvalidResource(_))));
        let mut no_uid = cluster(3);
        no_uid.metadata.uid = None;
        assert!(matches!(Target::new(&no_uid), Err(Error::InvalidResource(_))));
    }

    #[test]
    fn server_list_url_joins_cleanly() {
        let s = OperatorSettings { address_server_base_url: "http://op.sys.svc:8080/".into() };
        assert_eq!(s.server_list_url("ns", "demo"), "http://op.sys.svc:8080/v1/clusters/ns/demo/serverlist");
    }
}
