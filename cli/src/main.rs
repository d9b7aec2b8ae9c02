//! `roster`: see the library for the commands.

fn main() -> std::process::ExitCode {
    roster_cli::main_with("roster")
}
