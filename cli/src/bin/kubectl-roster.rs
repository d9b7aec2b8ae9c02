//! `kubectl-roster`: the same tool as `roster`, run by kubectl as
//! `kubectl roster ...` when this binary is on the `PATH`.

fn main() -> std::process::ExitCode {
    roster_cli::main_with("kubectl roster")
}
