//! The committed CRD manifest must be exactly what the Rust types generate,
//! so the chart and `kubectl apply -f crds/registrycluster.yaml` never install
//! a schema that the operator's types disagree with.

use std::path::Path;

#[test]
fn committed_crd_matches_generated() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("registrycluster.yaml");
    let generated = roster_crds::crd_yaml().expect("the CRD renders as YAML");
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    if committed != generated {
        let first_diff = committed.lines().zip(generated.lines()).position(|(a, b)| a != b).map_or_else(
            || "one file is a prefix of the other".to_owned(),
            |i| format!("first difference at line {}", i + 1),
        );
        panic!(
            "{} is stale or missing ({first_diff}).\n\
             Regenerate it from the workspace root with:\n\
             \n    cargo run -p roster-crds --bin crdgen > crds/registrycluster.yaml\n",
            path.display()
        );
    }
}
