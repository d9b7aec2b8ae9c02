//! `roster-node`: parses the configuration, sets up logging, runs the node
//! until SIGINT or SIGTERM, then drains it (its gRPC clients move to other
//! members) and shuts it down cleanly.
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
    // Listen for the signals before the node says it serves: a SIGTERM
    // sent right after "roster node serving" must stop it cleanly, not
    // kill it by the default action.
    let stop = shutdown_signal()?;
    let node = roster_node::start(config).await?;
    stop.await;
    tracing::info!("shutdown requested; draining first");
    node.drain().await;
    node.shutdown().await;
    Ok(())
}

/// A future that completes on SIGINT or SIGTERM; both are listened for
/// from the moment this returns.
#[cfg(unix)]
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
    })
}

/// A future that completes on Ctrl-C.
#[cfg(not(unix))]
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
    })
}
