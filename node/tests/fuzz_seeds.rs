//! The fuzz targets' seed corpus and regression inputs (`fuzz/seeds/`,
//! `fuzz/regressions/`) run through the same entry points as the fuzzer,
//! in the ordinary test build: an input that once crashed the node stays
//! fixed, and the seeds keep decoding without a panic.

use std::path::Path;

use roster_node::fuzzing;

/// A fuzz entry point.
type Target = fn(&[u8]);

fn run_dir(dir: &Path, target: Target) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    let mut n = 0;
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_file() {
            let data = std::fs::read(&path).expect("read input");
            target(&data);
            n += 1;
        }
    }
    n
}

#[test]
fn seeds_and_regressions_decode_without_panicking() {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let targets: [(&str, Target); 3] = [
        ("grpc_payload", fuzzing::grpc_payload),
        ("http_params", fuzzing::http_params),
        ("peer_message", fuzzing::peer_message),
    ];
    for (name, target) in targets {
        let seeds = run_dir(&fuzz.join("seeds").join(name), target);
        assert!(seeds > 0, "no seeds for {name}");
        run_dir(&fuzz.join("regressions").join(name), target);
    }
    // Degenerate inputs every target must take.
    for (_, target) in targets {
        target(&[]);
        target(&[0]);
        target(&[255; 64]);
    }
}
