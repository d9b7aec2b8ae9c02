//! `roster-operator`: parses flags, sets up logging, and joins the tasks
//! the library provides: the address server and admin endpoints (on every
//! replica), the server-list watcher (every replica), and, on the replica
//! holding the leader Lease, the controller.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result};
use clap::{Parser, ValueEnum};
use k8s_openapi::api::coordination::v1::Lease;
use kube::{Api, Client};
use roster_crds::RegistryCluster;
use roster_operator::controller::{self, Context};
use roster_operator::desired::OperatorSettings;
use roster_operator::leader::{LeaderElector, LeaseTiming};
use roster_operator::metrics::Metrics;
use roster_operator::node_status::{Endpoints, StatusClient};
use roster_operator::{admin, server_lists, AddressServer, ServerLists};
use tokio::sync::watch;
use tracing::{error, info};

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// The Roster Kubernetes operator.
#[derive(Debug, Parser)]
#[command(name = "roster-operator", version)]
struct Args {
    /// Address the address server listens on.
    #[arg(long, env = "ROSTER_OPERATOR_ADDRESS_SERVER_ADDR", default_value = "0.0.0.0:8080")]
    address_server_addr: SocketAddr,

    /// Address of /metrics and /healthz.
    #[arg(long, env = "ROSTER_OPERATOR_ADMIN_ADDR", default_value = "0.0.0.0:9090")]
    admin_addr: SocketAddr,

    /// Base URL under which member pods reach the address server, e.g.
    /// http://roster-operator.roster-system.svc:8080.
    #[arg(long, env = "ROSTER_OPERATOR_ADDRESS_SERVER_URL")]
    address_server_url: String,

    /// Run the controller only while holding the leader Lease.
    #[arg(long, env = "ROSTER_OPERATOR_LEADER_ELECTION", default_value_t = true, action = clap::ArgAction::Set)]
    leader_election: bool,

    /// Name of the leader Lease.
    #[arg(long, env = "ROSTER_OPERATOR_LEASE_NAME", default_value = "roster-operator")]
    lease_name: String,

    /// Namespace of the leader Lease (the operator's own namespace); without
    /// it, the namespace of the kubeconfig context or, in a pod, of its
    /// service account.
    #[arg(long, env = "POD_NAMESPACE")]
    lease_namespace: Option<String>,

    /// This replica's identity in the Lease (the pod name).
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,

    /// Timeout of one member status read, in seconds.
    #[arg(long, env = "ROSTER_OPERATOR_STATUS_TIMEOUT_SECONDS", default_value_t = 2)]
    status_timeout_seconds: u64,

    /// Log format.
    #[arg(long, env = "ROSTER_OPERATOR_LOG_FORMAT", value_enum, default_value = "json")]
    log_format: LogFormat,
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,kube=warn"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().flatten_event(false).init(),
        LogFormat::Text => builder.init(),
    }
}

/// Resolves on SIGTERM or Ctrl-C.
async fn termination() {
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(e) => {
                error!(error = %e, "cannot listen for SIGTERM; only Ctrl-C stops the operator");
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

async fn until_stopped(mut rx: watch::Receiver<bool>) {
    while !*rx.borrow() {
        if rx.changed().await.is_err() {
            return;
        }
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    init_logging(args.log_format);
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        termination().await;
        info!("termination requested");
        let _ = stop_tx.send(true);
    });

    let metrics = Arc::new(Metrics::default());
    let lists = ServerLists::new();
    let (addr, address_server) = AddressServer::new(lists.clone())
        .spawn(args.address_server_addr, until_stopped(stop_rx.clone()))
        .await
        .context("starting the address server")?;
    let admin_listener = tokio::net::TcpListener::bind(args.admin_addr).await.context("binding the admin address")?;
    let admin_addr = admin_listener.local_addr()?;
    let admin_stop = until_stopped(stop_rx.clone());
    let admin_router = admin::router(metrics.clone());
    let admin =
        tokio::spawn(async move { axum::serve(admin_listener, admin_router).with_graceful_shutdown(admin_stop).await });
    info!(address_server = %addr, admin = %admin_addr, "roster operator serving");

    let client = Client::try_default().await.context("connecting to the Kubernetes API")?;
    let sync =
        tokio::spawn(server_lists::sync_server_lists(Api::<RegistryCluster>::all(client.clone()), lists.clone()));

    let identity = match args.identity.clone() {
        Some(id) => id,
        None => std::env::var("HOSTNAME").unwrap_or_else(|_| format!("roster-operator-{}", std::process::id())),
    };
    let lease_namespace = args.lease_namespace.clone().unwrap_or_else(|| client.default_namespace().to_owned());
    let mut elector = args.leader_election.then(|| {
        info!(namespace = %lease_namespace, lease = %args.lease_name, "leader election");
        LeaderElector::new(
            Api::<Lease>::namespaced(client.clone(), &lease_namespace),
            &args.lease_name,
            &identity,
            LeaseTiming::default(),
        )
    });

    let status_client =
        StatusClient::new(Endpoints::Dns, Duration::from_secs(args.status_timeout_seconds)).context("HTTP client")?;
    let settings = OperatorSettings { address_server_base_url: args.address_server_url.clone() };
    let ctx = Arc::new(Context::new(client, settings, lists, status_client, metrics.clone()));
    let outcome = run_controller(ctx, elector.as_mut(), stop_rx.clone()).await;

    if let Some(elector) = elector.as_mut() {
        if let Err(e) = elector.release().await {
            error!(error = %e, "releasing the leader lease failed");
        }
    }
    sync.abort();
    let _ = address_server.await;
    let _ = admin.await;
    outcome
}

/// Runs the controller until termination; with leader election, only while
/// holding the Lease. Losing the Lease ends the process with an error so
/// Kubernetes restarts it as a fresh candidate (what client-go does).
async fn run_controller(
    ctx: Arc<Context>,
    elector: Option<&mut LeaderElector>,
    stop: watch::Receiver<bool>,
) -> Result<()> {
    let Some(elector) = elector else {
        ctx.metrics.leader.set(1);
        controller::run(ctx, until_stopped(stop)).await;
        return Ok(());
    };
    tokio::select! {
        () = elector.acquire() => {}
        () = until_stopped(stop.clone()) => return Ok(()),
    }
    ctx.metrics.leader.set(1);
    info!(identity = %elector.identity(), "leading: starting the controller");
    let metrics = ctx.metrics.clone();
    let result = tokio::select! {
        () = controller::run(ctx, until_stopped(stop)) => Ok(()),
        lost = elector.hold() => Err(anyhow::Error::new(lost)),
    };
    metrics.leader.set(0);
    result
}
