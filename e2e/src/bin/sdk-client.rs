//! A client process using the official Rust Nacos client (`nacos-sdk`).
//!
//! Without `--commands` it registers one instance, prints `registered`,
//! then stays connected until killed: tests kill it with SIGKILL to see
//! what a crashed client leaves.
//!
//! With `--commands` it prints `ready` once connected (after registering
//! the `--service` instance if one is given, `registered` then) and obeys
//! one command per line on stdin, answering each by its id:
//!
//! ```text
//! <id> register <service> <ip> <port>    → done <id> ok | done <id> error <message>
//! <id> deregister <service> <ip> <port>  → done <id> ok | done <id> error <message>
//! <id> subscribe <service>               → done <id> ok | done <id> error <message>
//! ```
//!
//! Every view pushed to a subscription is printed as
//! `push <service> <ip:port:healthy,...>` (`-` for an empty list). The
//! chaos suite drives several such clients and compares their last pushed
//! views with the final state.
//!
//! With `--commands` it also reports what the SDK does on its own, read
//! from the SDK's `tracing` events (nacos-sdk 0.8.3 has no listener API for
//! them), so that a chaos report can show them beside the commands:
//!
//! ```text
//! event connected <connection id>      the SDK (re)connected; it redoes its registrations
//! event disconnected <connection id>
//! event redo <service>                 the SDK resends its last register of <service>
//! ```

use std::io::Write;
use std::sync::{Arc, Mutex};

use clap::Parser;
use nacos_sdk::api::naming::{
    NamingChangeEvent, NamingEventListener, NamingService, NamingServiceBuilder, ServiceInstance,
};
use nacos_sdk::api::props::ClientProps;
use tokio::io::AsyncBufReadExt;
use tracing::field::{Field, Visit};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

#[derive(Parser)]
struct Args {
    /// Node main addresses, `host:port`, comma-separated (the client
    /// chooses among them and fails over to another one).
    #[arg(long)]
    server: String,
    /// Node client gRPC port (the same on every listed node).
    #[arg(long)]
    grpc_port: u16,
    /// Service to register one instance in at start.
    #[arg(long, requires_all = ["ip", "port"])]
    service: Option<String>,
    /// Instance IP.
    #[arg(long)]
    ip: Option<String>,
    /// Instance port.
    #[arg(long)]
    port: Option<i32>,
    /// Read commands from stdin instead of only holding the instance.
    #[arg(long)]
    commands: bool,
    /// Log in as this user (a node with `--auth-enabled`); the password is
    /// taken from `ROSTER_SDK_PASSWORD`.
    #[arg(long)]
    username: Option<String>,
}

/// Stdout is shared by the command loop and the push listeners; one lock
/// keeps every line whole.
type Out = Arc<Mutex<std::io::Stdout>>;

fn say(out: &Out, line: &str) {
    if let Ok(mut out) = out.lock() {
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }
}

/// Prints every view pushed for a subscription.
#[derive(Debug)]
struct PrintPushes(Out);

impl NamingEventListener for PrintPushes {
    fn event(&self, event: Arc<NamingChangeEvent>) {
        let mut hosts: Vec<String> = event
            .instances
            .as_ref()
            .map_or_else(Vec::new, |list| list.iter().map(|i| format!("{}:{}:{}", i.ip, i.port, i.healthy)).collect());
        hosts.sort();
        let service = event.service_name.rsplit("@@").next().unwrap_or(&event.service_name);
        let hosts = if hosts.is_empty() { "-".to_owned() } else { hosts.join(",") };
        say(&self.0, &format!("push {service} {hosts}"));
    }
}

/// The `message` of a tracing event, formatted.
#[derive(Default)]
struct Message(String);

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        }
    }
}

/// Turns the SDK's connection and redo events into `event ...` lines. The
/// texts matched are nacos-sdk 0.8.3's (`naming/mod.rs`, `naming/redo`):
/// a changed text yields no lines, never wrong ones.
struct SdkEvents(Out);

impl<S: tracing::Subscriber> Layer<S> for SdkEvents {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        let mut message = Message::default();
        event.record(&mut message);
        let text = message.0.as_str();
        let line = if let Some(rest) = text.strip_prefix("connection ") {
            match (rest.strip_suffix(" connected."), rest.strip_suffix(" disconnected.")) {
                (Some(id), _) => format!("event connected {id}"),
                (_, Some(id)) => format!("event disconnected {id}"),
                _ => return,
            }
        } else if let Some(key) = text.strip_prefix("automatic request task: ") {
            // The task key, debug-quoted: "namespace@@group@@service@@InstanceRequest".
            let parts: Vec<&str> = key.trim_matches('"').split("@@").collect();
            match parts.as_slice() {
                [_, _, service, "InstanceRequest"] => format!("event redo {service}"),
                _ => return,
            }
        } else {
            return;
        };
        say(&self.0, &line);
    }
}

/// Runs one command line; the error is reported to the driver.
async fn obey(naming: &NamingService, out: &Out, words: &[&str]) -> anyhow::Result<()> {
    match words {
        ["register", service, ip, port] => {
            let instance = ServiceInstance { ip: (*ip).to_owned(), port: port.parse()?, ..ServiceInstance::default() };
            naming.register_instance((*service).to_owned(), None, instance).await?;
        }
        ["deregister", service, ip, port] => {
            let instance = ServiceInstance { ip: (*ip).to_owned(), port: port.parse()?, ..ServiceInstance::default() };
            naming.deregister_instance((*service).to_owned(), None, instance).await?;
        }
        ["subscribe", service] => {
            naming.subscribe((*service).to_owned(), None, Vec::new(), Arc::new(PrintPushes(out.clone()))).await?;
        }
        other => anyhow::bail!("unknown command {other:?}"),
    }
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let out: Out = Arc::new(Mutex::new(std::io::stdout()));
    if args.commands {
        let sdk = Targets::new().with_target("nacos_sdk::naming", tracing::Level::DEBUG);
        tracing_subscriber::registry().with(SdkEvents(out.clone()).with_filter(sdk)).init();
    }
    let props = ClientProps::new()
        .server_addr(args.server)
        .remote_grpc_port(args.grpc_port)
        .env_first(false)
        .load_cache_at_start(false)
        .naming_push_empty_protection(false)
        .app_name("sdk-client");
    let naming = match args.username {
        Some(user) => {
            let password = std::env::var("ROSTER_SDK_PASSWORD").unwrap_or_default();
            let props = props.auth_username(user).auth_password(password);
            NamingServiceBuilder::new(props).enable_auth_plugin_http().build().await?
        }
        None => NamingServiceBuilder::new(props).build().await?,
    };
    if let (Some(service), Some(ip), Some(port)) = (args.service, args.ip, args.port) {
        let instance = ServiceInstance { ip, port, ..ServiceInstance::default() };
        naming.register_instance(service, None, instance).await?;
        say(&out, "registered");
    } else {
        say(&out, "ready");
    }
    if args.commands {
        let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
        while let Some(line) = lines.next_line().await? {
            let words: Vec<&str> = line.split_whitespace().collect();
            let Some((id, command)) = words.split_first() else { continue };
            match obey(&naming, &out, command).await {
                Ok(()) => say(&out, &format!("done {id} ok")),
                Err(e) => say(&out, &format!("done {id} error {}", e.to_string().replace('\n', " "))),
            }
        }
    }
    // Stay connected until killed.
    std::future::pending::<()>().await;
    Ok(())
}
