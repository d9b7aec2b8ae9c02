//! What the generated OpenAPI schema refuses, checked keyword by keyword,
//! plus the serde side: the example deserializes and typos do not.
//!
//! These tests read the CRD the types generate (not the committed YAML; the
//! `crd_fresh` test ties the two together).

use regex::Regex;
use roster_crds::{
    DistroSpec, DistroTiming, ImagePullPolicy, RaftSpec, RaftTiming, RegistryCluster, IMAGE_MAX_LENGTH, IMAGE_PATTERN,
    QUANTITY_PATTERN,
};
use serde_json::Value;

const EXAMPLE: &str = include_str!("../examples/registrycluster.yaml");

fn crd() -> Value {
    serde_json::to_value(roster_crds::crd()).expect("the CRD serializes")
}

fn version(crd: &Value) -> &Value {
    let versions = crd["spec"]["versions"].as_array().expect("versions list");
    assert_eq!(versions.len(), 1, "exactly one version is served");
    &versions[0]
}

fn spec_schema(crd: &Value) -> &Value {
    &version(crd)["schema"]["openAPIV3Schema"]["properties"]["spec"]
}

fn status_schema(crd: &Value) -> &Value {
    &version(crd)["schema"]["openAPIV3Schema"]["properties"]["status"]
}

fn spec_prop<'a>(crd: &'a Value, path: &[&str]) -> &'a Value {
    let mut node = spec_schema(crd);
    for key in path {
        node = &node["properties"][*key];
        assert!(!node.is_null(), "spec schema has no property {path:?}");
    }
    node
}

fn minimum(schema: &Value) -> f64 {
    schema["minimum"].as_f64().expect("a numeric minimum")
}

fn quantity_regex() -> Regex {
    let crd = crd();
    let pattern = spec_prop(&crd, &["storage", "size"])["pattern"].as_str().expect("storage.size has a pattern");
    Regex::new(pattern).expect("the CRD pattern compiles")
}

fn example() -> RegistryCluster {
    serde_norway::from_str(EXAMPLE).expect("the example manifest deserializes")
}

#[test]
fn crd_names_group_and_scope() {
    let crd = crd();
    assert_eq!(crd["metadata"]["name"], "registryclusters.roster.dev");
    assert_eq!(crd["spec"]["group"], roster_crds::GROUP);
    assert_eq!(crd["spec"]["scope"], "Namespaced");
    assert_eq!(crd["spec"]["names"]["kind"], "RegistryCluster");
    assert_eq!(crd["spec"]["names"]["plural"], "registryclusters");
    assert_eq!(crd["spec"]["names"]["shortNames"], serde_json::json!(["rgc"]));
    let v = version(&crd);
    assert_eq!(v["name"], roster_crds::VERSION);
    assert_eq!(v["served"], true);
    assert_eq!(v["storage"], true);
}

#[test]
fn replicas_has_minimum_one_and_is_required() {
    let crd = crd();
    let replicas = spec_prop(&crd, &["replicas"]);
    assert_eq!(replicas["type"], "integer");
    assert_eq!(minimum(replicas), 1.0);
    let required = spec_schema(&crd)["required"].as_array().expect("required list");
    assert!(required.contains(&Value::from("replicas")));
    assert!(required.contains(&Value::from("image")));
}

#[test]
fn image_has_min_and_max_length() {
    let crd = crd();
    assert_eq!(spec_prop(&crd, &["image"])["minLength"], 1);
    assert_eq!(spec_prop(&crd, &["image"])["maxLength"], IMAGE_MAX_LENGTH);
}

fn image_regex() -> Regex {
    let crd = crd();
    let pattern = spec_prop(&crd, &["image"])["pattern"].as_str().expect("image has a pattern");
    assert_eq!(pattern, IMAGE_PATTERN);
    Regex::new(pattern).expect("the CRD pattern compiles")
}

#[test]
fn image_pattern_accepts_image_references() {
    let re = image_regex();
    let digest = format!("sha256:{}", "0123456789abcdef".repeat(4));
    for ok in [
        "roster-node".to_owned(),
        "roster-node:0.1.0".to_owned(),
        "roster-node:latest".to_owned(),
        "roster/roster-node:0.1.0".to_owned(),
        "registry.example.com/roster/roster-node:0.1.0-rc.1".to_owned(),
        "registry.example.com:5000/roster-node:v1_2".to_owned(),
        "localhost:5000/roster__node".to_owned(),
        "ghcr.io/acme/roster.node-x:0.1.0".to_owned(),
        format!("roster-node@{digest}"),
        format!("registry.example.com/roster-node:0.1.0@{digest}"),
    ] {
        assert!(re.is_match(&ok), "{ok:?} should be accepted");
    }
}

#[test]
fn image_pattern_refuses_whitespace_and_malformed_references() {
    let re = image_regex();
    for bad in [
        "roster-node:0.1.0 ",
        " roster-node:0.1.0",
        "roster node:0.1.0",
        "roster-node:0.1.0\n",
        "roster-node:\t0.1.0",
        "Roster-Node:0.1.0",
        "roster-node:",
        "roster-node:.1",
        "roster-node:-1",
        "roster-node::1",
        ":0.1.0",
        "/roster-node",
        "roster-node/",
        "roster--node:1@sha256:abc",
        "roster-node@sha256:0123",
        "-roster-node",
        "roster-node_",
    ] {
        assert!(!re.is_match(bad), "{bad:?} should be refused");
    }
    let long_tag = format!("roster-node:{}", "a".repeat(129));
    assert!(!re.is_match(&long_tag), "a tag is at most 128 characters");
}

#[test]
fn image_pull_policy_is_an_enum() {
    let crd = crd();
    assert_eq!(spec_prop(&crd, &["imagePullPolicy"])["enum"], serde_json::json!(["Always", "IfNotPresent", "Never"]));
    for policy in [ImagePullPolicy::Always, ImagePullPolicy::IfNotPresent, ImagePullPolicy::Never] {
        assert_eq!(serde_json::to_value(policy).expect("serializes"), policy.as_str());
    }
}

#[test]
fn storage_size_has_the_quantity_pattern() {
    let crd = crd();
    let size = spec_prop(&crd, &["storage", "size"]);
    assert_eq!(size["pattern"], QUANTITY_PATTERN);
    let required = spec_prop(&crd, &["storage"])["required"].as_array().expect("required list");
    assert!(required.contains(&Value::from("size")), "storage without size is refused");
}

#[test]
fn quantity_pattern_accepts_valid_sizes() {
    let re = quantity_regex();
    for ok in ["1Gi", "500Mi", "10G", "1.5Gi", "2Ti", "100", "0.5Gi", ".5Gi", "1e9", "128k", "1E"] {
        assert!(re.is_match(ok), "{ok:?} should be accepted");
    }
}

#[test]
fn quantity_pattern_rejects_malformed_sizes() {
    let re = quantity_regex();
    for bad in [
        "ten", "1GiB", "-1Gi", "", "+1Gi", "0", "0Gi", "0.0Gi", "500m", "1 Gi", "Gi", "1.5.2Gi", "1gi", "1K", " 1Gi",
        "1Gi\n",
    ] {
        assert!(!re.is_match(bad), "{bad:?} should be refused");
    }
}

#[test]
fn secret_name_is_a_dns_subdomain() {
    let crd = crd();
    let secret = spec_prop(&crd, &["auth", "secretName"]);
    assert_eq!(secret["maxLength"], 253);
    let re = Regex::new(secret["pattern"].as_str().expect("pattern")).expect("compiles");
    for ok in ["roster-auth", "a", "roster.auth-1"] {
        assert!(re.is_match(ok), "{ok:?} should be accepted");
    }
    for bad in ["Roster", "-roster", "roster-", "roster_auth", "", "a..b"] {
        assert!(!re.is_match(bad), "{bad:?} should be refused");
    }
}

#[test]
fn timing_knobs_have_minimums() {
    let crd = crd();
    for (path, min) in [
        (["distro", "syncDelayMs"], 0.0),
        (["distro", "verifyIntervalMs"], 100.0),
        (["distro", "loadRetryDelayMs"], 100.0),
        (["distro", "clientExpiryMs"], 1000.0),
        (["raft", "electionTimeoutMinMs"], 100.0),
        (["raft", "electionTimeoutMaxMs"], 100.0),
        (["raft", "heartbeatIntervalMs"], 10.0),
        (["raft", "snapshotLogs"], 100.0),
    ] {
        let knob = spec_prop(&crd, &path);
        assert_eq!(knob["type"], "integer", "{path:?}");
        assert_eq!(minimum(knob), min, "{path:?}");
    }
}

#[test]
fn cross_field_rules_are_in_the_schema() {
    let crd = crd();
    let rules = |path: &[&str]| -> Vec<String> {
        spec_prop(&crd, path)["x-kubernetes-validations"]
            .as_array()
            .unwrap_or_else(|| panic!("{path:?} has x-kubernetes-validations"))
            .iter()
            .map(|r| r["rule"].as_str().expect("rule string").to_owned())
            .collect()
    };
    let raft = rules(&["raft"]);
    assert!(raft.iter().any(|r| r.contains("self.electionTimeoutMinMs < self.electionTimeoutMaxMs")));
    assert!(raft.iter().any(|r| r.contains("self.heartbeatIntervalMs < self.electionTimeoutMinMs")));
    assert!(rules(&["distro"]).iter().any(|r| r.contains("self.clientExpiryMs > self.verifyIntervalMs")));
    assert!(rules(&["auth"]).iter().any(|r| r.contains("has(self.secretName)")));
}

#[test]
fn placement_uses_kubernetes_types() {
    let crd = crd();
    assert_eq!(spec_prop(&crd, &["nodeSelector"])["additionalProperties"]["type"], "string");
    assert_eq!(spec_prop(&crd, &["annotations"])["additionalProperties"]["type"], "string");
    assert_eq!(spec_prop(&crd, &["tolerations"])["type"], "array");
    assert!(spec_prop(&crd, &["affinity", "podAntiAffinity"]).is_object());
    assert!(spec_prop(&crd, &["resources", "requests"]).is_object());
}

/// Walks a schema and reports every object schema that would let unknown
/// fields through: one with `x-kubernetes-preserve-unknown-fields`, or one that
/// declares `properties` and still opens `additionalProperties`.
fn open_objects(schema: &Value, path: String, found: &mut Vec<String>) {
    let Some(obj) = schema.as_object() else {
        return;
    };
    if obj.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true)) {
        found.push(format!("{path}: x-kubernetes-preserve-unknown-fields"));
    }
    if obj.contains_key("properties") && obj.contains_key("additionalProperties") {
        found.push(format!("{path}: additionalProperties next to properties"));
    }
    if obj.get("type") == Some(&Value::from("object"))
        && !obj.contains_key("properties")
        && !obj.contains_key("additionalProperties")
    {
        found.push(format!("{path}: object without properties (a free-form object)"));
    }
    if let Some(props) = obj.get("properties").and_then(Value::as_object) {
        for (name, sub) in props {
            open_objects(sub, format!("{path}.{name}"), found);
        }
    }
    for key in ["items", "additionalProperties"] {
        if let Some(sub) = obj.get(key) {
            open_objects(sub, format!("{path}[{key}]"), found);
        }
    }
}

#[test]
fn spec_schema_refuses_unknown_fields_everywhere() {
    let crd = crd();
    let mut found = Vec::new();
    open_objects(spec_schema(&crd), "spec".to_owned(), &mut found);
    assert!(found.is_empty(), "spec schema lets unknown fields through at:\n{}", found.join("\n"));
}

#[test]
fn status_schema_is_closed_and_lists_are_maps() {
    let crd = crd();
    let status = status_schema(&crd);
    let mut found = Vec::new();
    open_objects(status, "status".to_owned(), &mut found);
    assert!(found.is_empty(), "status schema is open at:\n{}", found.join("\n"));

    for (list, key) in [("conditions", "type"), ("members", "name")] {
        let schema = &status["properties"][list];
        assert_eq!(schema["x-kubernetes-list-type"], "map", "{list}");
        assert_eq!(schema["x-kubernetes-list-map-keys"], serde_json::json!([key]), "{list}");
        let required = schema["items"]["required"].as_array().expect("required list");
        assert!(required.contains(&Value::from(key)), "{list} key {key} must be required");
    }
    for field in ["observedGeneration", "replicas", "readyReplicas", "selector", "leader"] {
        assert!(status["properties"][field].is_object(), "status.{field}");
    }
    for field in
        ["name", "address", "state", "ready", "distroInitialized", "snapshotSource", "raftRole", "appliedIndex"]
    {
        assert!(status["properties"]["members"]["items"]["properties"][field].is_object(), "members[].{field}");
    }
    for field in ["type", "status", "reason", "message", "lastTransitionTime", "observedGeneration"] {
        assert!(status["properties"]["conditions"]["items"]["properties"][field].is_object(), "conditions[].{field}");
    }
}

#[test]
fn status_and_scale_subresources() {
    let crd = crd();
    let sub = &version(&crd)["subresources"];
    assert!(sub["status"].is_object(), "status subresource enabled");
    assert_eq!(sub["scale"]["specReplicasPath"], ".spec.replicas");
    assert_eq!(sub["scale"]["statusReplicasPath"], ".status.replicas");
    assert_eq!(sub["scale"]["labelSelectorPath"], ".status.selector");
}

#[test]
fn printer_columns() {
    let crd = crd();
    let columns: Vec<(String, String, String)> = version(&crd)["additionalPrinterColumns"]
        .as_array()
        .expect("printer columns")
        .iter()
        .map(|c| {
            let s = |k: &str| c[k].as_str().expect("string").to_owned();
            (s("name"), s("type"), s("jsonPath"))
        })
        .collect();
    let expected = [
        ("Replicas", "integer", ".spec.replicas"),
        ("Ready", "integer", ".status.readyReplicas"),
        ("Leader", "string", ".status.leader"),
        ("Available", "string", r#".status.conditions[?(@.type=="Available")].status"#),
        ("Age", "date", ".metadata.creationTimestamp"),
    ];
    let expected: Vec<(String, String, String)> =
        expected.iter().map(|(n, t, p)| ((*n).to_owned(), (*t).to_owned(), (*p).to_owned())).collect();
    assert_eq!(columns, expected);
}

#[test]
fn example_manifest_deserializes() {
    let rc = example();
    assert_eq!(rc.metadata.name.as_deref(), Some("demo"));
    assert_eq!(rc.spec.replicas, 3);
    assert_eq!(rc.spec.image, "roster-node:0.1.0");
    assert_eq!(rc.spec.image_pull_policy, Some(ImagePullPolicy::IfNotPresent));
    let storage = rc.spec.storage.as_ref().expect("storage is set");
    assert_eq!(storage.size, "1Gi");
    assert!(quantity_regex().is_match(&storage.size), "the example passes the schema's pattern");
    assert!(rc.status.is_none());
}

#[test]
fn example_manifest_round_trips() {
    let rc = example();
    let yaml = serde_norway::to_string(&rc).expect("serializes");
    let again: RegistryCluster = serde_norway::from_str(&yaml).expect("deserializes again");
    assert_eq!(again.spec, rc.spec);
}

#[test]
fn unknown_spec_fields_are_rejected_by_serde() {
    for (typo, needle) in [
        ("  replicas: 3\n", "  replicas: 3\n  replica: 3\n"),
        ("    size: 1Gi\n", "    size: 1Gi\n    sise: 2Gi\n"),
        ("  replicas: 3\n", "  replicas: 3\n  raft:\n    electionTimeoutMs: 100\n"),
        ("  replicas: 3\n", "  replicas: 3\n  distro:\n    syncDelay: 100\n"),
        ("  replicas: 3\n", "  replicas: 3\n  auth:\n    secret: x\n"),
    ] {
        assert!(EXAMPLE.contains(typo), "example contains {typo:?}");
        let manifest = EXAMPLE.replacen(typo, needle, 1);
        let err = serde_norway::from_str::<RegistryCluster>(&manifest).expect_err("an unknown field must be refused");
        assert!(err.to_string().contains("unknown field"), "{err}");
    }
}

#[test]
fn unknown_image_pull_policy_is_rejected_by_serde() {
    let manifest = EXAMPLE.replacen("imagePullPolicy: IfNotPresent", "imagePullPolicy: Sometimes", 1);
    assert!(serde_norway::from_str::<RegistryCluster>(&manifest).is_err());
}

#[test]
fn effective_timings_fill_defaults() {
    assert_eq!(
        DistroSpec::effective(None),
        DistroTiming {
            sync_delay_ms: 200,
            verify_interval_ms: 5_000,
            load_retry_delay_ms: 5_000,
            client_expiry_ms: 180_000,
        }
    );
    assert_eq!(
        RaftSpec::effective(None),
        RaftTiming {
            election_timeout_min_ms: 1_000,
            election_timeout_max_ms: 2_000,
            heartbeat_interval_ms: 250,
            snapshot_logs: 5_000,
        }
    );
    let distro = DistroSpec { verify_interval_ms: Some(2_000), ..DistroSpec::default() };
    let t = DistroSpec::effective(Some(&distro));
    assert_eq!(t.verify_interval_ms, 2_000);
    assert_eq!(t.sync_delay_ms, roster_crds::DEFAULT_DISTRO_SYNC_DELAY_MS);
    let raft = RaftSpec { snapshot_logs: Some(100), ..RaftSpec::default() };
    assert_eq!(RaftSpec::effective(Some(&raft)).snapshot_logs, 100);
}

#[test]
fn defaults_respect_the_schema_rules() {
    let d = DistroSpec::effective(None);
    assert!(d.client_expiry_ms > d.verify_interval_ms);
    let r = RaftSpec::effective(None);
    assert!(r.heartbeat_interval_ms < r.election_timeout_min_ms);
    assert!(r.election_timeout_min_ms < r.election_timeout_max_ms);
}
