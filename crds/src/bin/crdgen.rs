//! Prints the `RegistryCluster` CRD as YAML.
//!
//! `crdgen` writes to stdout; `crdgen PATH` writes to PATH instead. The
//! committed `crds/registrycluster.yaml` is this output, and the crate's
//! `crd_fresh` test fails when the two differ.

use std::process::ExitCode;

fn main() -> ExitCode {
    let yaml = match roster_crds::crd_yaml() {
        Ok(yaml) => yaml,
        Err(err) => {
            eprintln!("crdgen: {err}");
            return ExitCode::FAILURE;
        }
    };
    match std::env::args_os().nth(1) {
        None => {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            if let Err(err) = out.write_all(yaml.as_bytes()).and_then(|()| out.flush()) {
                eprintln!("crdgen: cannot write to stdout: {err}");
                return ExitCode::FAILURE;
            }
        }
        Some(path) => {
            if let Err(err) = std::fs::write(&path, yaml) {
                eprintln!("crdgen: cannot write {}: {err}", path.to_string_lossy());
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::SUCCESS
}
