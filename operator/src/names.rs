//! Names, labels and addresses of everything the operator creates.
//!
//! A member is named by its pod's stable DNS name and main port:
//! `<cluster>-<ordinal>.<cluster>-headless.<namespace>.svc:8848`. Every other
//! module asks this one, so the StatefulSet, the headless Service, the
//! server list and the status all agree on the spelling.

use std::collections::BTreeMap;

/// Main HTTP port of a member (Nacos Open API, status, probes).
pub const HTTP_PORT: i32 = 8848;
/// Client gRPC port of a member: main port + 1000.
pub const GRPC_PORT: i32 = 9848;
/// Peer gRPC port of a member: main port + 1001.
pub const PEER_PORT: i32 = 9849;

/// Field manager of every server-side apply the operator makes.
pub const FIELD_MANAGER: &str = "roster-operator";

/// `app.kubernetes.io/name` of member pods.
pub const APP_NAME: &str = "roster";

/// Label keys, from the Kubernetes recommended set.
pub mod label {
    /// The application.
    pub const NAME: &str = "app.kubernetes.io/name";
    /// The RegistryCluster the object belongs to.
    pub const INSTANCE: &str = "app.kubernetes.io/instance";
    /// Who manages the object.
    pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
    /// The role of the object in the application.
    pub const COMPONENT: &str = "app.kubernetes.io/component";
}

/// Name of the headless Service that gives each pod its DNS name.
pub fn headless_service(cluster: &str) -> String {
    format!("{cluster}-headless")
}

/// Name of the client Service (what applications connect to).
pub fn client_service(cluster: &str) -> String {
    cluster.to_owned()
}

/// Name of the StatefulSet.
pub fn statefulset(cluster: &str) -> String {
    cluster.to_owned()
}

/// Name of the PodDisruptionBudget.
pub fn pdb(cluster: &str) -> String {
    cluster.to_owned()
}

/// Name of the Secret holding the cluster secret members sign peer requests with.
pub fn cluster_secret(cluster: &str) -> String {
    format!("{cluster}-cluster-secret")
}

/// Name of the ConfigMap holding the node settings.
pub fn configmap(cluster: &str) -> String {
    format!("{cluster}-config")
}

/// Name of the pod with `ordinal`.
pub fn pod(cluster: &str, ordinal: i32) -> String {
    format!("{cluster}-{ordinal}")
}

/// Member address of the pod with `ordinal`: its stable DNS name and main
/// port.
pub fn member_address(cluster: &str, namespace: &str, ordinal: i32) -> String {
    format!("{}.{}.{namespace}.svc:{HTTP_PORT}", pod(cluster, ordinal), headless_service(cluster))
}

/// The desired members of a cluster with `replicas` members, ordinal order.
pub fn member_addresses(cluster: &str, namespace: &str, replicas: i32) -> Vec<String> {
    (0..replicas.max(0)).map(|i| member_address(cluster, namespace, i)).collect()
}

/// The ordinal encoded in a member address or pod name of `cluster`
/// (`demo-3.demo-headless...` or `demo-3` gives 3).
pub fn ordinal_of(cluster: &str, member_or_pod: &str) -> Option<i32> {
    let host = member_or_pod.split(['.', ':']).next()?;
    let rest = host.strip_prefix(cluster)?.strip_prefix('-')?;
    if rest.is_empty() || !rest.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    rest.parse().ok()
}

/// Labels that select the member pods of `cluster`; also the StatefulSet
/// selector, so they must never change.
pub fn selector_labels(cluster: &str) -> BTreeMap<String, String> {
    BTreeMap::from([(label::NAME.to_owned(), APP_NAME.to_owned()), (label::INSTANCE.to_owned(), cluster.to_owned())])
}

/// Labels on every object the operator owns.
pub fn labels(cluster: &str) -> BTreeMap<String, String> {
    let mut l = selector_labels(cluster);
    l.insert(label::MANAGED_BY.to_owned(), "roster-operator".to_owned());
    l.insert(label::COMPONENT.to_owned(), "registry".to_owned());
    l
}

/// [`selector_labels`] in the string form of `status.selector`
/// (`key=value,key=value`), which the scale subresource publishes.
pub fn selector_string(cluster: &str) -> String {
    selector_labels(cluster).iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_address_is_the_stable_dns_name() {
        assert_eq!(member_address("demo", "ns", 1), "demo-1.demo-headless.ns.svc:8848");
        assert_eq!(member_addresses("demo", "ns", 2).len(), 2);
        assert!(member_addresses("demo", "ns", -1).is_empty());
    }

    #[test]
    fn ordinals_are_read_back() {
        assert_eq!(ordinal_of("demo", "demo-12.demo-headless.ns.svc:8848"), Some(12));
        assert_eq!(ordinal_of("demo", "demo-0"), Some(0));
        assert_eq!(ordinal_of("demo", "demo-x"), None);
        assert_eq!(ordinal_of("demo", "demox-1"), None);
        assert_eq!(ordinal_of("demo", "other-1"), None);
        assert_eq!(ordinal_of("demo-a", "demo-a-2"), Some(2));
    }

    #[test]
    fn selector_string_lists_sorted_labels() {
        assert_eq!(selector_string("demo"), "app.kubernetes.io/instance=demo,app.kubernetes.io/name=roster");
    }
}
