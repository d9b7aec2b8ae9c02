//! The ConfigMap of node settings.
//!
//! Its keys are `ROSTER_*` environment variables that every member loads
//! with `envFrom` (each node flag has one, see the README's
//! "Configuration"). Settings that are the same for every member live here;
//! the per-pod ones (`ROSTER_ADVERTISE`, `ROSTER_BIND`) are set in the pod
//! template. The pod template carries a hash of this
//! data, so a change of the knobs rolls the pods.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use roster_crds::{DistroSpec, RaftSpec};

use super::Target;
use crate::names::{self, HTTP_PORT};

/// Where a member keeps its Raft data inside the pod.
pub const DATA_DIR: &str = "/var/lib/roster";

/// The environment every member gets from the ConfigMap.
///
/// The Distro and Raft knobs are passed as `ROSTER_DISTRO_*`/`ROSTER_RAFT_*`
/// durations in milliseconds (`1000ms`), the format of the node's duration
/// flags; a node build that does not know one of them ignores it.
pub fn node_environment(t: &Target<'_>) -> BTreeMap<String, String> {
    let spec = &t.rc.spec;
    let distro = DistroSpec::effective(spec.distro.as_ref());
    let raft = RaftSpec::effective(spec.raft.as_ref());
    let ms = |v: i64| format!("{v}ms");
    let mut env = BTreeMap::from([
        ("ROSTER_PORT".to_owned(), HTTP_PORT.to_string()),
        ("ROSTER_DATA_DIR".to_owned(), DATA_DIR.to_owned()),
        ("ROSTER_LOG_FORMAT".to_owned(), "json".to_owned()),
        ("ROSTER_DISTRO_SYNC_DELAY".to_owned(), ms(distro.sync_delay_ms)),
        ("ROSTER_DISTRO_VERIFY_INTERVAL".to_owned(), ms(distro.verify_interval_ms)),
        ("ROSTER_DISTRO_LOAD_RETRY_DELAY".to_owned(), ms(distro.load_retry_delay_ms)),
        ("ROSTER_DISTRO_COPY_EXPIRY".to_owned(), ms(distro.client_expiry_ms)),
        ("ROSTER_RAFT_ELECTION_TIMEOUT_MIN".to_owned(), ms(raft.election_timeout_min_ms)),
        ("ROSTER_RAFT_ELECTION_TIMEOUT_MAX".to_owned(), ms(raft.election_timeout_max_ms)),
        ("ROSTER_RAFT_HEARTBEAT_INTERVAL".to_owned(), ms(raft.heartbeat_interval_ms)),
        ("ROSTER_RAFT_SNAPSHOT_LOGS".to_owned(), raft.snapshot_logs.to_string()),
    ]);
    if spec.auth.as_ref().is_some_and(|a| a.enabled) {
        env.insert("ROSTER_AUTH_ENABLED".to_owned(), "true".to_owned());
        env.insert("ROSTER_AUTH_DIR".to_owned(), super::statefulset::AUTH_DIR.to_owned());
    }
    if spec.tls.is_some() {
        // One certificate for the client ports and the peer port; `ca.crt`
        // makes the peer port mutual TLS (node/src/security).
        let dir = super::statefulset::TLS_DIR;
        env.insert("ROSTER_TLS_CERT_FILE".to_owned(), format!("{dir}/tls.crt"));
        env.insert("ROSTER_TLS_KEY_FILE".to_owned(), format!("{dir}/tls.key"));
        env.insert("ROSTER_TLS_CA_FILE".to_owned(), format!("{dir}/ca.crt"));
    }
    env
}

/// The ConfigMap `<name>-config`.
pub fn configmap(t: &Target<'_>) -> ConfigMap {
    ConfigMap { metadata: t.meta(names::configmap(&t.name)), data: Some(node_environment(t)), ..ConfigMap::default() }
}

/// A stable hash of the ConfigMap data (FNV-1a 64, hex), put on the pod
/// template so a settings change rolls the pods. Not cryptographic: it only
/// has to change when the data does.
pub fn data_hash(data: &BTreeMap<String, String>) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for (k, v) in data {
        for b in k.bytes().chain([0]).chain(v.bytes()).chain([0]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    format!("{h:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desired::test_support::cluster;

    #[test]
    fn defaults_and_knobs_become_environment() {
        let mut rc = cluster(3);
        rc.spec.raft = Some(serde_json::from_value(serde_json::json!({"heartbeatIntervalMs": 100})).expect("raft"));
        let t = Target::new(&rc).expect("target");
        let env = node_environment(&t);
        assert_eq!(env["ROSTER_PORT"], "8848");
        assert_eq!(env["ROSTER_DATA_DIR"], DATA_DIR);
        assert_eq!(env["ROSTER_RAFT_HEARTBEAT_INTERVAL"], "100ms");
        assert_eq!(env["ROSTER_DISTRO_VERIFY_INTERVAL"], "5000ms");
        assert!(!env.contains_key("ROSTER_AUTH_ENABLED"));
        assert!(!env.contains_key("ROSTER_TLS_CERT_FILE"));
        let cm = configmap(&t);
        assert_eq!(cm.metadata.name.as_deref(), Some("demo-config"));
    }

    #[test]
    fn tls_points_the_node_at_the_mounted_secret() {
        let mut rc = cluster(3);
        rc.spec.tls = Some(serde_json::from_value(serde_json::json!({"secretName": "demo-tls"})).expect("tls"));
        let t = Target::new(&rc).expect("target");
        let env = node_environment(&t);
        assert_eq!(env["ROSTER_TLS_CERT_FILE"], "/etc/roster/tls/tls.crt");
        assert_eq!(env["ROSTER_TLS_KEY_FILE"], "/etc/roster/tls/tls.key");
        assert_eq!(env["ROSTER_TLS_CA_FILE"], "/etc/roster/tls/ca.crt");
    }

    #[test]
    fn hash_follows_the_data() {
        let a = BTreeMap::from([("A".to_owned(), "1".to_owned())]);
        let b = BTreeMap::from([("A".to_owned(), "2".to_owned())]);
        let c = BTreeMap::from([("A1".to_owned(), String::new())]);
        assert_eq!(data_hash(&a), data_hash(&a.clone()));
        assert_ne!(data_hash(&a), data_hash(&b));
        assert_ne!(data_hash(&a), data_hash(&c));
        assert_eq!(data_hash(&a).len(), 16);
    }
}
