//! `roster`, the command line of the Roster registry, and `kubectl-roster`,
//! the same tool as a kubectl plugin (`kubectl roster ...`).
//!
//! It talks to one member: the Open API v1 and Nacos's catalog routes for
//! registry data and writes, the console's service view, the admin plane's
//! cluster view (`/roster/v1/cluster`), the Nacos 2 gRPC protocol for
//! `watch` (`roster_proto::client`), and Kubernetes for `cluster get`.
//! Both binaries are a thin `main` over [`main_with`]; everything else is
//! here, so it is testable.
//!
//! # Layout
//! - this file: the command line ([`Cli`]) and [`run`], which dispatches.
//! - [`member`]: one member over HTTP (address, login, errors).
//! - [`commands`]: the subcommands, one file per group.
//! - [`output`]: `-o table|json|yaml`.
//! - [`error`]: the error type and its exit codes.
//!
//! # Exit codes
//! 0 success; 1 the member or Kubernetes answered with an error; 2 bad
//! input (usage errors included); 3 a member could not be reached; 4 a
//! login, token or right was refused. Every failure prints one line on
//! stderr: `roster: <what failed>`.
#![deny(missing_docs)]

pub mod commands;
pub mod error;
pub mod member;
pub mod output;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use clap_complete::Shell;

use crate::commands::catalog::ServiceQuery;
use crate::commands::instance::{InstanceRef, Registration};
use crate::commands::watch::WatchArgs;
use crate::commands::ServiceRef;
pub use crate::error::{Error, Result};
use crate::member::{Address, Credentials, Member, DEFAULT_SERVER};
use crate::output::Format;

/// The command line.
#[derive(Debug, Parser)]
#[command(name = "roster", version, about = "Command line of the Roster service registry")]
pub struct Cli {
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = Format::Table, global = true)]
    pub output: Format,
    /// The member to ask: host:port of its main (HTTP) port, or an http(s) URL.
    #[arg(long, env = "ROSTER_SERVER", default_value = DEFAULT_SERVER, global = true)]
    pub server: String,
    /// Its client gRPC port (default: the main port + 1000), for `watch`.
    #[arg(long, env = "ROSTER_GRPC_PORT", global = true)]
    pub grpc_port: Option<u16>,
    /// A token from an earlier login (`accessToken`).
    #[arg(long, env = "ROSTER_TOKEN", hide_env_values = true, global = true)]
    pub token: Option<String>,
    /// Log in as this user first (when authentication is on).
    #[arg(long, env = "ROSTER_USERNAME", global = true)]
    pub username: Option<String>,
    /// The user's password. Prefer the variable or stdin: a flag shows in the
    /// process list. Without either, it is prompted for (or read from stdin).
    #[arg(long, env = "ROSTER_PASSWORD", hide_env_values = true, global = true)]
    pub password: Option<String>,
    /// PEM CA that signed the member's certificate (for https).
    #[arg(long, env = "ROSTER_CA_FILE", global = true)]
    pub ca_file: Option<PathBuf>,
    /// Seconds to wait for each answer (and for the gRPC connection).
    #[arg(long, default_value_t = 5, global = true)]
    pub timeout: u64,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Where a service is.
#[derive(Debug, Clone, Args)]
pub struct ServiceArgs {
    /// The service (`group@@name` names its group too).
    pub service: String,
    /// Its group (default DEFAULT_GROUP).
    #[arg(long, short = 'g')]
    pub group: Option<String>,
    /// Its namespace.
    #[arg(long, short = 'n', default_value = "public")]
    pub namespace: String,
}

impl ServiceArgs {
    fn service(&self) -> Result<ServiceRef> {
        ServiceRef::new(&self.namespace, self.group.as_deref(), &self.service)
    }
}

/// One instance of a service.
#[derive(Debug, Clone, Args)]
pub struct InstanceArgs {
    /// The service.
    #[command(flatten)]
    pub service: ServiceArgs,
    /// The instance's IP (or host).
    #[arg(long)]
    pub ip: String,
    /// Its port.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    pub port: u16,
    /// Its cluster.
    #[arg(long, default_value = "DEFAULT")]
    pub cluster: String,
    /// A persistent instance (kept by Raft, health-checked by the leader)
    /// instead of an ephemeral one (kept alive by beats).
    #[arg(long)]
    pub persistent: bool,
}

impl InstanceArgs {
    fn instance(&self) -> Result<InstanceRef> {
        if self.ip.trim().is_empty() {
            return Err(Error::bad_input("--ip must not be empty"));
        }
        Ok(InstanceRef {
            service: self.service.service()?,
            ip: self.ip.trim().to_owned(),
            port: self.port,
            cluster: self.cluster.clone(),
            persistent: self.persistent,
        })
    }
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// The members: state, readiness, Distro snapshot, Raft role and indices.
    Status,
    /// Raft: leader, voters, learners and each member's indices.
    Raft,
    /// The services of a namespace, with instance and healthy counts.
    Services {
        /// The namespace.
        #[arg(long, short = 'n', default_value = "public")]
        namespace: String,
        /// Only groups containing this text.
        #[arg(long, short = 'g')]
        group: Option<String>,
        /// Only services whose name contains this text.
        #[arg(long)]
        name: Option<String>,
        /// Page, from 1.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
        page: u32,
        /// Services per page.
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=10000))]
        page_size: u32,
    },
    /// A service's instances, disabled ones included, each with the member
    /// responsible for it.
    Instances(ServiceArgs),
    /// Registers an instance over HTTP (ephemeral unless --persistent; an
    /// ephemeral one needs `beat` every 5 s to stay).
    Register {
        /// The instance.
        #[command(flatten)]
        instance: InstanceArgs,
        /// Load-balancing weight (0..10000).
        #[arg(long)]
        weight: Option<f64>,
        /// Metadata, `k=v,k=v` or JSON.
        #[arg(long)]
        metadata: Option<String>,
        /// Register it disabled (consumers do not get it).
        #[arg(long)]
        disabled: bool,
    },
    /// Deregisters an instance.
    Deregister(InstanceArgs),
    /// Sends one heartbeat for an HTTP-registered instance.
    Beat(InstanceArgs),
    /// Subscribes to a service over gRPC and prints every push as it arrives.
    Watch {
        /// The service.
        #[command(flatten)]
        service: ServiceArgs,
        /// Only these clusters (comma-separated).
        #[arg(long, value_delimiter = ',')]
        clusters: Vec<String>,
        /// Stop after this many pushes (the first is the current view).
        #[arg(long)]
        count: Option<u64>,
    },
    /// RegistryCluster resources on Kubernetes.
    Cluster {
        /// What to do with it.
        #[command(subcommand)]
        action: ClusterAction,
    },
    /// Prints a shell completion script.
    Completions {
        /// The shell.
        shell: Shell,
    },
}

/// `roster cluster ...`.
#[derive(Debug, Subcommand)]
pub enum ClusterAction {
    /// A RegistryCluster's status (members, leader, conditions).
    Get {
        /// Its name.
        name: String,
        /// Its namespace (default: the kubeconfig context's).
        #[arg(long, short = 'n')]
        namespace: Option<String>,
    },
}

impl Cli {
    fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout.max(1))
    }

    async fn member(&self) -> Result<Member> {
        let address = Address::parse(&self.server)?;
        let mut member = Member::new(address, self.ca_file.as_deref(), self.timeout())?;
        let credentials =
            Credentials { token: self.token.clone(), username: self.username.clone(), password: self.password.clone() };
        member.authenticate(credentials).await?;
        Ok(member)
    }
}

/// Runs one command line, writing its output to `out`.
pub async fn run(cli: Cli, bin: &'static str, out: &mut dyn Write) -> Result<()> {
    let report = match &cli.command {
        Command::Completions { shell } => {
            let mut command = Cli::command().name(bin).bin_name(bin);
            clap_complete::generate(*shell, &mut command, bin, out);
            return Ok(());
        }
        Command::Cluster { action: ClusterAction::Get { name, namespace } } => {
            commands::cluster::get(name, namespace.as_deref()).await?
        }
        Command::Watch { service, clusters, count } => {
            let member = cli.member().await?;
            let grpc_port = match cli.grpc_port {
                Some(p) => p,
                None => member.address.port.checked_add(1000).ok_or_else(|| {
                    Error::bad_input(format!(
                        "--server port {} + 1000 is past 65535: give --grpc-port",
                        member.address.port
                    ))
                })?,
            };
            let args = WatchArgs {
                grpc: format!("{}:{grpc_port}", member.address.host),
                token: member.token().map(str::to_owned),
                service: service.service()?,
                clusters: clusters.clone(),
                count: *count,
                timeout: cli.timeout(),
            };
            return commands::watch::watch(args, cli.output, out).await;
        }
        Command::Status => commands::status::status(&cli.member().await?).await?,
        Command::Raft => commands::status::raft(&cli.member().await?).await?,
        Command::Services { namespace, group, name, page, page_size } => {
            let query = ServiceQuery {
                namespace: namespace.clone(),
                group: group.clone(),
                name: name.clone(),
                page: *page,
                page_size: *page_size,
            };
            commands::catalog::services(&cli.member().await?, &query).await?
        }
        Command::Instances(service) => commands::catalog::instances(&cli.member().await?, &service.service()?).await?,
        Command::Register { instance, weight, metadata, disabled } => {
            let registration = Registration { weight: *weight, metadata: metadata.clone(), disabled: *disabled };
            commands::instance::register(&cli.member().await?, &instance.instance()?, &registration).await?
        }
        Command::Deregister(instance) => {
            commands::instance::deregister(&cli.member().await?, &instance.instance()?).await?
        }
        Command::Beat(instance) => commands::instance::beat(&cli.member().await?, &instance.instance()?).await?,
    };
    report.print(cli.output, out)
}

/// The whole program under the name `bin` (`roster`, or `kubectl roster`
/// for the plugin): parses the command line, runs it and turns a failure
/// into one line on stderr and its exit code.
pub fn main_with(bin: &'static str) -> ExitCode {
    let matches = Cli::command().name(bin).bin_name(bin).get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{bin}: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match runtime.block_on(run(cli, bin, &mut out)) {
        Ok(()) => ExitCode::SUCCESS,
        // A closed pipe (`roster watch ... | head -1`) is a normal end.
        Err(Error::Output(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            let _ = out.flush();
            eprintln!("{bin}: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
