//! The StatefulSet of member pods.
//!
//! Choices, and why:
//!
//! * `podManagementPolicy: Parallel`: no member turns ready before a quorum
//!   of members runs, so the default ordered start (each pod waits for the
//!   previous one to be ready) would never get past the first pod.
//! * `serviceName` is the headless Service: the pods get the stable DNS
//!   names that are their member identities.
//! * A PVC per pod (`data`) when `spec.storage` is set, else an `emptyDir`:
//!   the Raft log and the member's Raft id live there. PVCs of pods removed
//!   by a scale-down are deleted (`whenScaled: Delete`): by then Raft has
//!   removed the member, and a later scale-up must start a new member rather
//!   than revive a removed one. Deleting the RegistryCluster keeps them
//!   (`whenDeleted: Retain`), so data is never lost by accident.
//! * `ROSTER_ADVERTISE` is built from the pod name (downward API), so a
//!   member names itself exactly as the server list does.
//! * `replicas` is decided by the scale planner, not copied from the spec:
//!   on scale-down it stays high until Raft has let the members go.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    StatefulSet, StatefulSetPersistentVolumeClaimRetentionPolicy, StatefulSetSpec, StatefulSetUpdateStrategy,
};
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EmptyDirVolumeSource, EnvFromSource, EnvVar, EnvVarSource, HTTPGetAction,
    ObjectFieldSelector, PersistentVolumeClaim, PersistentVolumeClaimSpec, PodSecurityContext, PodSpec,
    PodTemplateSpec, Probe, SecretVolumeSource, Volume, VolumeMount, VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::configmap::{data_hash, node_environment, DATA_DIR};
use super::secret::{SECRET_DIR, SECRET_KEY};
use super::{OperatorSettings, Target};
use crate::names::{self, GRPC_PORT, HTTP_PORT, PEER_PORT};

/// Name of the node container.
pub const CONTAINER: &str = "roster-node";
/// Name of the data volume (and of the PVC template).
pub const DATA_VOLUME: &str = "data";
/// Name of the cluster-secret volume ([`super::secret`]).
pub const CLUSTER_SECRET_VOLUME: &str = "cluster-secret";
/// Where the auth Secret is mounted when `spec.auth.enabled`; the node
/// reads it through `ROSTER_AUTH_DIR` (set in the ConfigMap).
pub const AUTH_DIR: &str = "/etc/roster/auth";
/// Key of the auth Secret holding the token signing key (at least 32 bytes);
/// the node reads `<AUTH_DIR>/token-key`.
pub const AUTH_TOKEN_KEY: &str = "token-key";
/// Key of the auth Secret holding the users file (JSON); the node reads
/// `<AUTH_DIR>/users.json`.
pub const AUTH_USERS: &str = "users.json";
/// Pod-template annotation with the hash of the ConfigMap data.
pub const CONFIG_HASH_ANNOTATION: &str = "roster.dev/config-hash";
/// Group id of the node image's user (see docker/node.Dockerfile).
pub const NODE_GROUP: i64 = 65532;
/// Readiness endpoint of a member (200 once its Distro snapshot is loaded
/// and it knows a Raft leader).
pub const READINESS_PATH: &str = "/nacos/v1/console/health/readiness";
/// Liveness endpoint of a member.
pub const LIVENESS_PATH: &str = "/nacos/v1/console/health/liveness";

fn probe(path: &str, period: i32, failures: i32, tls: bool) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.to_owned()),
            port: IntOrString::String("http".to_owned()),
            // The kubelet does not verify the certificate of an HTTPS probe.
            scheme: tls.then(|| "HTTPS".to_owned()),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(period),
        failure_threshold: Some(failures),
        timeout_seconds: Some(2),
        ..Probe::default()
    }
}

fn env(name: &str, value: String) -> EnvVar {
    EnvVar { name: name.to_owned(), value: Some(value), value_from: None }
}

/// A variable the kubelet fills from a field of the pod (downward API).
fn field_env(name: &str, field_path: &str) -> EnvVar {
    let field_ref = ObjectFieldSelector { field_path: field_path.to_owned(), api_version: None };
    EnvVar {
        name: name.to_owned(),
        value: None,
        value_from: Some(EnvVarSource { field_ref: Some(field_ref), ..EnvVarSource::default() }),
    }
}

/// The node container.
fn container(t: &Target<'_>, settings: &OperatorSettings) -> Container {
    let spec = &t.rc.spec;
    let port = |name: &str, number: i32| ContainerPort {
        name: Some(name.to_owned()),
        container_port: number,
        protocol: Some("TCP".to_owned()),
        ..ContainerPort::default()
    };
    let mut mounts =
        vec![VolumeMount { name: DATA_VOLUME.to_owned(), mount_path: DATA_DIR.to_owned(), ..VolumeMount::default() }];
    mounts.push(VolumeMount {
        name: CLUSTER_SECRET_VOLUME.to_owned(),
        mount_path: SECRET_DIR.to_owned(),
        read_only: Some(true),
        ..VolumeMount::default()
    });
    if auth_secret(t).is_some() {
        mounts.push(VolumeMount {
            name: "auth".to_owned(),
            mount_path: AUTH_DIR.to_owned(),
            read_only: Some(true),
            ..VolumeMount::default()
        });
    }
    let tls = tls_secret(t).is_some();
    if tls {
        mounts.push(VolumeMount {
            name: "tls".to_owned(),
            mount_path: TLS_DIR.to_owned(),
            read_only: Some(true),
            ..VolumeMount::default()
        });
    }
    Container {
        name: CONTAINER.to_owned(),
        image: Some(spec.image.clone()),
        image_pull_policy: spec.image_pull_policy.map(|p| p.as_str().to_owned()),
        ports: Some(vec![port("http", HTTP_PORT), port("grpc", GRPC_PORT), port("peer", PEER_PORT)]),
        env: Some(vec![
            field_env("ROSTER_POD_NAME", "metadata.name"),
            // The pod IP, not 0.0.0.0: where members share one network
            // namespace (the Kubernetes e2e suite runs pods as local
            // processes) two members on 0.0.0.0 would collide on their ports.
            // The price: `kubectl port-forward` (which dials localhost inside
            // the pod) does not reach a member (see the README).
            field_env("ROSTER_BIND", "status.podIP"),
            // $(VAR) is expanded by the kubelet from the variables above.
            env(
                "ROSTER_ADVERTISE",
                format!("$(ROSTER_POD_NAME).{}.{}.svc:{HTTP_PORT}", names::headless_service(&t.name), t.namespace),
            ),
            env("ROSTER_LOOKUP", "address-server".to_owned()),
            env("ROSTER_ADDRESS_SERVER_URL", settings.server_list_url(&t.namespace, &t.name)),
            env("ROSTER_CLUSTER_SECRET_FILE", format!("{SECRET_DIR}/{SECRET_KEY}")),
        ]),
        env_from: Some(vec![EnvFromSource {
            config_map_ref: Some(k8s_openapi::api::core::v1::ConfigMapEnvSource {
                name: names::configmap(&t.name),
                optional: Some(false),
            }),
            ..EnvFromSource::default()
        }]),
        readiness_probe: Some(probe(READINESS_PATH, 5, 3, tls)),
        liveness_probe: Some(Probe { initial_delay_seconds: Some(10), ..probe(LIVENESS_PATH, 10, 6, tls) }),
        resources: spec.resources.clone(),
        volume_mounts: Some(mounts),
        ..Container::default()
    }
}

/// Where the TLS Secret (`spec.tls`) is mounted.
pub const TLS_DIR: &str = "/etc/roster/tls";

fn tls_secret(t: &Target<'_>) -> Option<String> {
    t.rc.spec.tls.as_ref().map(|tls| tls.secret_name.clone())
}

fn auth_secret(t: &Target<'_>) -> Option<String> {
    t.rc.spec.auth.as_ref().filter(|a| a.enabled).and_then(|a| a.secret_name.clone())
}

/// The StatefulSet with `replicas` pods (decided by the scale planner).
pub fn statefulset(t: &Target<'_>, settings: &OperatorSettings, replicas: i32) -> StatefulSet {
    let spec = &t.rc.spec;
    let mut annotations: BTreeMap<String, String> = spec.annotations.clone().unwrap_or_default();
    annotations.insert(CONFIG_HASH_ANNOTATION.to_owned(), data_hash(&node_environment(t)));

    let mut volumes = Vec::new();
    let claims = match &spec.storage {
        Some(storage) => Some(vec![PersistentVolumeClaim {
            metadata: ObjectMeta {
                name: Some(DATA_VOLUME.to_owned()),
                labels: Some(names::selector_labels(&t.name)),
                ..ObjectMeta::default()
            },
            spec: Some(PersistentVolumeClaimSpec {
                access_modes: Some(vec!["ReadWriteOnce".to_owned()]),
                storage_class_name: storage.storage_class_name.clone(),
                resources: Some(VolumeResourceRequirements {
                    requests: Some(BTreeMap::from([("storage".to_owned(), Quantity(storage.size.clone()))])),
                    limits: None,
                }),
                ..PersistentVolumeClaimSpec::default()
            }),
            status: None,
        }]),
        None => {
            volumes.push(Volume {
                name: DATA_VOLUME.to_owned(),
                empty_dir: Some(EmptyDirVolumeSource::default()),
                ..Volume::default()
            });
            None
        }
    };
    volumes.push(Volume {
        name: CLUSTER_SECRET_VOLUME.to_owned(),
        secret: Some(SecretVolumeSource {
            secret_name: Some(names::cluster_secret(&t.name)),
            ..SecretVolumeSource::default()
        }),
        ..Volume::default()
    });
    if let Some(secret) = auth_secret(t) {
        volumes.push(Volume {
            name: "auth".to_owned(),
            secret: Some(SecretVolumeSource { secret_name: Some(secret), ..SecretVolumeSource::default() }),
            ..Volume::default()
        });
    }
    if let Some(secret) = tls_secret(t) {
        volumes.push(Volume {
            name: "tls".to_owned(),
            secret: Some(SecretVolumeSource { secret_name: Some(secret), ..SecretVolumeSource::default() }),
            ..Volume::default()
        });
    }

    StatefulSet {
        metadata: t.meta(names::statefulset(&t.name)),
        spec: StatefulSetSpec {
            replicas: Some(replicas),
            service_name: Some(names::headless_service(&t.name)),
            pod_management_policy: Some("Parallel".to_owned()),
            selector: LabelSelector { match_labels: Some(names::selector_labels(&t.name)), match_expressions: None },
            update_strategy: Some(StatefulSetUpdateStrategy {
                // The operator restarts the pods itself, leader last (see
                // `crate::upgrade`); Kubernetes's own rolling update would
                // restart them in ordinal order, whoever leads Raft.
                type_: Some("OnDelete".to_owned()),
                rolling_update: None,
            }),
            persistent_volume_claim_retention_policy: claims.as_ref().map(|_| {
                StatefulSetPersistentVolumeClaimRetentionPolicy {
                    when_scaled: Some("Delete".to_owned()),
                    when_deleted: Some("Retain".to_owned()),
                }
            }),
            volume_claim_templates: claims,
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(names::labels(&t.name)),
                    annotations: Some(annotations),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![container(t, settings)],
                    node_selector: spec.node_selector.clone(),
                    affinity: spec.affinity.clone(),
                    tolerations: spec.tolerations.clone(),
                    // The node image runs as 65532; fsGroup makes the data volume writable for it.
                    security_context: Some(PodSecurityContext {
                        fs_group: Some(NODE_GROUP),
                        ..PodSecurityContext::default()
                    }),
                    // Time to move gRPC clients to other members before stopping (draining).
                    termination_grace_period_seconds: Some(30),
                    volumes: (!volumes.is_empty()).then_some(volumes),
                    ..PodSpec::default()
                }),
            },
            ..StatefulSetSpec::default()
        },
        status: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desired::test_support::cluster;

    /// The configuration hash on the pod template.
    fn config_hash(s: &StatefulSet) -> Option<String> {
        s.spec
            .template
            .metadata
            .as_ref()
            .and_then(|m| m.annotations.as_ref())
            .and_then(|a| a.get(CONFIG_HASH_ANNOTATION).cloned())
    }

    fn settings() -> OperatorSettings {
        OperatorSettings { address_server_base_url: "http://roster-operator.roster-system.svc:8080".into() }
    }

    fn env_value(c: &Container, name: &str) -> Option<String> {
        c.env.as_ref()?.iter().find(|e| e.name == name)?.value.clone()
    }

    #[test]
    fn pods_point_at_the_address_server_and_advertise_their_dns_name() {
        let rc = cluster(3);
        let t = Target::new(&rc).expect("target");
        let sts = statefulset(&t, &settings(), 3);
        let spec = sts.spec;
        assert_eq!(spec.replicas, Some(3));
        assert_eq!(spec.service_name.as_deref(), Some("demo-headless"));
        assert_eq!(spec.pod_management_policy.as_deref(), Some("Parallel"));
        let pod = spec.template.spec.expect("pod spec");
        let c = &pod.containers[0];
        assert_eq!(c.image.as_deref(), Some("roster-node:0.1.0"));
        assert_eq!(env_value(c, "ROSTER_LOOKUP").as_deref(), Some("address-server"));
        assert_eq!(
            env_value(c, "ROSTER_ADDRESS_SERVER_URL").as_deref(),
            Some("http://roster-operator.roster-system.svc:8080/v1/clusters/ns/demo/serverlist")
        );
        assert_eq!(env_value(c, "ROSTER_ADVERTISE").as_deref(), Some("$(ROSTER_POD_NAME).demo-headless.ns.svc:8848"));
        let pod_name = c.env.as_ref().and_then(|e| e.iter().find(|e| e.name == "ROSTER_POD_NAME")).expect("pod name");
        assert_eq!(
            pod_name.value_from.as_ref().and_then(|v| v.field_ref.as_ref()).map(|f| f.field_path.as_str()),
            Some("metadata.name")
        );
        // Every member binds its own pod IP (members may share a network namespace).
        let bind = c.env.as_ref().and_then(|e| e.iter().find(|e| e.name == "ROSTER_BIND")).expect("bind");
        assert_eq!(
            bind.value_from.as_ref().and_then(|v| v.field_ref.as_ref()).map(|f| f.field_path.as_str()),
            Some("status.podIP")
        );
        // ROSTER_POD_NAME must come before ROSTER_ADVERTISE for $(...) to expand.
        let names: Vec<&str> = c.env.as_ref().expect("env").iter().map(|e| e.name.as_str()).collect();
        assert!(
            names.iter().position(|n| *n == "ROSTER_POD_NAME") < names.iter().position(|n| *n == "ROSTER_ADVERTISE")
        );
        let ready = c.readiness_probe.as_ref().and_then(|p| p.http_get.as_ref()).expect("readiness");
        assert_eq!(ready.path.as_deref(), Some(READINESS_PATH));
        let live = c.liveness_probe.as_ref().and_then(|p| p.http_get.as_ref()).expect("liveness");
        assert_eq!(live.path.as_deref(), Some(LIVENESS_PATH));
        assert_eq!(live.port, IntOrString::String("http".into()));
    }

    #[test]
    fn without_storage_data_is_an_empty_dir() {
        let rc = cluster(3);
        let t = Target::new(&rc).expect("target");
        let spec = statefulset(&t, &settings(), 3).spec;
        assert!(spec.volume_claim_templates.is_none());
        assert!(spec.persistent_volume_claim_retention_policy.is_none());
        let volumes = spec.template.spec.and_then(|p| p.volumes).expect("volumes");
        assert_eq!(volumes[0].name, DATA_VOLUME);
        assert!(volumes[0].empty_dir.is_some());
    }

    #[test]
    fn with_storage_each_pod_gets_a_claim() {
        let mut rc = cluster(3);
        rc.spec.storage = Some(
            serde_json::from_value(serde_json::json!({"size": "2Gi", "storageClassName": "fast"})).expect("storage"),
        );
        let t = Target::new(&rc).expect("target");
        let spec = statefulset(&t, &settings(), 5).spec;
        let claims = spec.volume_claim_templates.expect("claims");
        assert_eq!(claims[0].metadata.name.as_deref(), Some(DATA_VOLUME));
        let claim = claims[0].spec.as_ref().expect("claim spec");
        assert_eq!(claim.storage_class_name.as_deref(), Some("fast"));
        assert_eq!(
            claim.resources.as_ref().and_then(|r| r.requests.as_ref()).and_then(|r| r.get("storage")),
            Some(&Quantity("2Gi".into()))
        );
        // The claim replaces the data volume; the only pod volume left is the cluster secret.
        let volumes = spec.template.spec.and_then(|p| p.volumes).unwrap_or_default();
        let names: Vec<&str> = volumes.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(names, [CLUSTER_SECRET_VOLUME]);
        assert_eq!(spec.replicas, Some(5));
    }

    #[test]
    fn settings_changes_roll_the_pods() {
        let rc = cluster(3);
        let t = Target::new(&rc).expect("target");
        let before = config_hash(&statefulset(&t, &settings(), 3));
        let mut changed = cluster(3);
        changed.spec.distro = Some(serde_json::from_value(serde_json::json!({"syncDelayMs": 0})).expect("distro"));
        let t2 = Target::new(&changed).expect("target");
        let after = config_hash(&statefulset(&t2, &settings(), 3));
        assert!(before.is_some());
        assert_ne!(before, after);
    }

    #[test]
    fn tls_secret_is_mounted_and_probes_use_https() {
        let mut rc = cluster(3);
        let t = Target::new(&rc).expect("target");
        let plain = statefulset(&t, &settings(), 3);
        let plain_pod = plain.spec.template.spec.clone().expect("pod");
        let probe = plain_pod.containers[0].readiness_probe.as_ref().and_then(|p| p.http_get.clone()).expect("probe");
        assert_eq!(probe.scheme, None, "plain HTTP without spec.tls");

        rc.spec.tls = Some(serde_json::from_value(serde_json::json!({"secretName": "demo-tls"})).expect("tls"));
        let t = Target::new(&rc).expect("target");
        let sts = statefulset(&t, &settings(), 3);
        let pod = sts.spec.template.spec.clone().expect("pod");
        let volume =
            pod.volumes.as_ref().and_then(|v| v.iter().find(|v| v.name == "tls")).and_then(|v| v.secret.clone());
        assert_eq!(volume.and_then(|s| s.secret_name).as_deref(), Some("demo-tls"));
        let c = &pod.containers[0];
        let mounts = c.volume_mounts.clone().unwrap_or_default();
        assert!(mounts.iter().any(|m| m.name == "tls" && m.mount_path == TLS_DIR && m.read_only == Some(true)));
        for probe in [&c.readiness_probe, &c.liveness_probe] {
            let get = probe.as_ref().and_then(|p| p.http_get.as_ref()).expect("http probe");
            assert_eq!(get.scheme.as_deref(), Some("HTTPS"));
        }
    }

    #[test]
    fn auth_secret_is_mounted_when_enabled() {
        let mut rc = cluster(3);
        rc.spec.auth =
            Some(serde_json::from_value(serde_json::json!({"enabled": true, "secretName": "creds"})).expect("auth"));
        let t = Target::new(&rc).expect("target");
        let pod = statefulset(&t, &settings(), 3).spec.template.spec.expect("pod");
        let secret =
            pod.volumes.as_ref().and_then(|v| v.iter().find(|v| v.name == "auth")).and_then(|v| v.secret.clone());
        assert_eq!(secret.and_then(|s| s.secret_name).as_deref(), Some("creds"));
        let mounts = pod.containers[0].volume_mounts.clone().unwrap_or_default();
        assert!(mounts.iter().any(|m| m.mount_path == AUTH_DIR && m.read_only == Some(true)));
    }

    #[test]
    fn enabled_auth_points_the_node_at_the_mounted_secret() {
        let mut rc = cluster(3);
        let plain = Target::new(&rc).expect("target");
        let plain_set = statefulset(&plain, &settings(), 3);
        let plain_pod = plain_set.spec.template.spec.clone().expect("pod");
        assert!(plain_pod.volumes.unwrap_or_default().iter().all(|v| v.name != "auth"), "no auth Secret without auth");
        assert!(!node_environment(&plain).contains_key("ROSTER_AUTH_DIR"));

        rc.spec.auth =
            Some(serde_json::from_value(serde_json::json!({"enabled": true, "secretName": "creds"})).expect("auth"));
        let t = Target::new(&rc).expect("target");
        let set = statefulset(&t, &settings(), 3);
        let pod = set.spec.template.spec.clone().expect("pod");
        let container = &pod.containers[0];
        // The node's settings come from the ConfigMap...
        let from = container.env_from.clone().unwrap_or_default();
        let configmap = from.iter().find_map(|f| f.config_map_ref.as_ref()).map(|c| c.name.clone());
        assert_eq!(configmap.as_deref(), Some(names::configmap(&t.name).as_str()));
        let env = node_environment(&t);
        assert_eq!(env.get("ROSTER_AUTH_ENABLED").map(String::as_str), Some("true"));
        // ...whose auth directory is where the Secret volume is mounted, so
        // the node reads token-key and users.json from the Secret's keys.
        let dir = env.get("ROSTER_AUTH_DIR").expect("auth dir");
        let mount = container
            .volume_mounts
            .clone()
            .unwrap_or_default()
            .into_iter()
            .find(|m| &m.mount_path == dir)
            .expect("a volume mounted at ROSTER_AUTH_DIR");
        assert_eq!(mount.read_only, Some(true));
        let volume =
            pod.volumes.clone().unwrap_or_default().into_iter().find(|v| v.name == mount.name).expect("volume");
        let secret = volume.secret.expect("a Secret volume");
        assert_eq!(secret.secret_name.as_deref(), Some("creds"));
        assert!(secret.items.is_none(), "every key of the Secret ({AUTH_TOKEN_KEY}, {AUTH_USERS}) becomes a file");
        // Turning auth on changes the pods' configuration hash: they roll.
        assert_ne!(config_hash(&plain_set), config_hash(&set));
    }
}
