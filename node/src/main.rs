//! `roster-node`: parses the configuration, sets up logging, runs the node
//! until SIGINT or SIGTERM, then shuts it down cleanly.
//!
//! `roster-node hash-password` instead prints the hash of a password read
//! from standard input, for the users file of client authentication.

use clap::Parser;
use roster_node::{telemetry, Config};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("hash-password") {
        match roster_node::auth::password::hash_password_command(&args[2..]) {
            Ok(hash) => {
                println!("{hash}");
                return Ok(());
            }
            Err(message) => {
                eprintln!("{message}");
                std::process::exit(2);
            }
        }
    }
    let config = Config::parse();
    telemetry::init(config.log_format);
    let node = roster_node::start(config).await?;
    shutdown_signal().await;
    tracing::info!("shutdown requested");
    node.shutdown().await;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
