//! A client process using the official Rust Nacos client (`nacos-sdk`):
//! registers one instance, prints `registered`, then stays connected until
//! killed. Tests kill it with SIGKILL to see what a crashed client leaves.

use clap::Parser;
use nacos_sdk::api::naming::{NamingServiceBuilder, ServiceInstance};
use nacos_sdk::api::props::ClientProps;

#[derive(Parser)]
struct Args {
    /// Node main address, host:port.
    #[arg(long)]
    server: String,
    /// Node client gRPC port.
    #[arg(long)]
    grpc_port: u16,
    /// Service to register in.
    #[arg(long)]
    service: String,
    /// Instance IP.
    #[arg(long)]
    ip: String,
    /// Instance port.
    #[arg(long)]
    port: i32,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let props = ClientProps::new()
        .server_addr(args.server)
        .remote_grpc_port(args.grpc_port)
        .env_first(false)
        .load_cache_at_start(false)
        .app_name("sdk-client");
    let naming = NamingServiceBuilder::new(props).build().await?;
    let instance = ServiceInstance { ip: args.ip, port: args.port, ..ServiceInstance::default() };
    naming.register_instance(args.service, None, instance).await?;
    println!("registered");
    // Stay connected until killed.
    std::future::pending::<()>().await;
    Ok(())
}
