//! The gRPC clients: `sdk-client` processes (the official `nacos-sdk`)
//! driven over stdin and stdout, and the slots that start, drive, crash and
//! replace them.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

use super::model::{note, History, Outcome, Redone, SdkModel, SdkOp, Views};
use super::world::World;
use super::{CHURN_SERVICES, OP_TIMEOUT, PERSISTENT_SERVICE, PINNED_PORT, PINNED_SERVICE};
use crate::binary;

/// A `sdk-client --commands` process.
pub(super) struct Driven {
    child: Child,
    stdin: ChildStdin,
    done: tokio::sync::mpsc::UnboundedReceiver<(u64, Result<(), String>)>,
    next: u64,
    redone: Redone,
}

impl Driven {
    /// Starts a client of `servers` (member names) and waits for it to be
    /// connected; pushed views land in `views`, the SDK's own events in
    /// `history` (times since `started`).
    fn start(servers: &[String], views: Views, history: History, started: Instant) -> Result<Driven> {
        let bin = binary("roster-e2e", "sdk-client")?;
        let mut child = Command::new(bin)
            .args(["--server", &servers.join(","), "--grpc-port", "9848", "--commands"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("spawning sdk-client")?;
        let stdout = child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
        let stdin = child.stdin.take().ok_or_else(|| anyhow!("no stdin"))?;
        // Why a client gave up: its `Error: ...` line (a backtrace may
        // follow it), else its last line.
        let stderr = child.stderr.take().ok_or_else(|| anyhow!("no stderr"))?;
        let said = Arc::new(Mutex::new(String::new()));
        let why = said.clone();
        std::thread::spawn(move || {
            let mut error_seen = false;
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if error_seen {
                    continue;
                }
                error_seen = line.starts_with("Error: ");
                if let Ok(mut why) = why.lock() {
                    *why = line;
                }
            }
        });
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (done_tx, done) = tokio::sync::mpsc::unbounded_channel();
        let redone: Redone = Arc::default();
        let counts = redone.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let mut words = line.splitn(3, ' ');
                match (words.next(), words.next(), words.next()) {
                    (Some("ready"), None, None) => {
                        let _ = ready_tx.send(());
                    }
                    (Some("push"), Some(service), Some(hosts)) => {
                        let hosts: Vec<String> =
                            if hosts == "-" { Vec::new() } else { hosts.split(',').map(str::to_owned).collect() };
                        if let Ok(mut views) = views.lock() {
                            views.insert(service.to_owned(), hosts);
                        }
                    }
                    (Some("event"), Some(what), detail) => {
                        if let (Ok(mut counts), ("redo", Some(service))) = (counts.lock(), (what, detail)) {
                            *counts.entry(service.to_owned()).or_default() += 1;
                        }
                        note(&history, started.elapsed(), format!("sdk: {what} {}", detail.unwrap_or("")));
                    }
                    (Some("done"), Some(id), Some(rest)) => {
                        let Ok(id) = id.parse() else { continue };
                        let result = if rest == "ok" { Ok(()) } else { Err(rest.to_owned()) };
                        let _ = done_tx.send((id, result));
                    }
                    _ => {}
                }
            }
        });
        let mut driven = Driven { child, stdin, done, next: 0, redone };
        if ready_rx.recv_timeout(Duration::from_secs(30)).is_err() {
            driven.kill();
            let said = said.lock().map(|s| s.clone()).unwrap_or_default();
            bail!("sdk-client of {servers:?} did not connect within 30 s (it said {said:?})");
        }
        Ok(driven)
    }

    /// Sends one command and waits for its answer; `Unknown` on an error
    /// or a timeout.
    async fn command(&mut self, command: &str) -> Outcome {
        self.next += 1;
        let id = self.next;
        if writeln!(self.stdin, "{id} {command}").and_then(|()| self.stdin.flush()).is_err() {
            return Outcome::Unknown;
        }
        let deadline = tokio::time::Instant::now() + OP_TIMEOUT;
        loop {
            match tokio::time::timeout_at(deadline, self.done.recv()).await {
                Ok(Some((got, result))) if got == id => {
                    return if result.is_ok() { Outcome::Acked } else { Outcome::Unknown };
                }
                Ok(Some(_)) => continue,
                Ok(None) | Err(_) => return Outcome::Unknown,
            }
        }
    }

    /// How many times the SDK has resent its register of `service` on its
    /// own so far (every such event before the last answer is counted).
    fn redos(&self, service: &str) -> u64 {
        self.redone.lock().map(|c| c.get(service).copied().unwrap_or(0)).unwrap_or(0)
    }

    /// Kills the client process and reaps it (a crash, or the end of the run).
    pub(super) fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Driven {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One client slot: a client process at a time, doing random operations
/// until `deadline`; with faults on, sometimes crashed and replaced.
/// Returns the live client at the end.
pub(super) async fn sdk_slot(
    world: Arc<World>,
    slot: usize,
    mut rng: fastrand::Rng,
    deadline: Instant,
    inject_faults: bool,
) -> Option<Driven> {
    let mut generation = 0usize;
    let mut current: Option<(usize, Driven)> = None;
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(rng.u64(200..900))).await;
        let Some((index, client)) = current.as_mut() else {
            current = start_client(&world, slot, generation, &mut rng).await;
            generation += 1;
            continue;
        };
        let index = *index;
        let ip = client_ip(slot, generation - 1);
        let roll = rng.u32(..100);
        if inject_faults && roll < 2 {
            client.kill();
            if let Ok(mut model) = world.model.lock() {
                model.sdk[index].alive = false;
                model.crashed += 1;
            }
            world.log(format!("crash gRPC client {}", client_name(slot, generation - 1)));
            world.note_sdk(index, world.started.elapsed(), "killed".to_owned());
            current = None;
            continue;
        }
        let service = CHURN_SERVICES[rng.usize(..CHURN_SERVICES.len())];
        if roll < 70 {
            let instance = format!("{ip}:{}", rng.u16(7000..8000));
            let began = world.started.elapsed();
            let outcome = client.command(&format!("register {service} {}", instance.replace(':', " "))).await;
            let redos = client.redos(service);
            world.record_sdk(index, SdkOp { service, instance: &instance, register: true, outcome, began, redos });
        } else {
            let held = world.model.lock().ok().and_then(|m| m.sdk[index].held.get(service).cloned());
            let Some(instance) = held.and_then(|h| h.required.or_else(|| h.allowed.iter().next().cloned())) else {
                continue;
            };
            let began = world.started.elapsed();
            let outcome = client.command(&format!("deregister {service} {}", instance.replace(':', " "))).await;
            let redos = client.redos(service);
            world.record_sdk(index, SdkOp { service, instance: &instance, register: false, outcome, began, redos });
        }
    }
    current.map(|(_, client)| client)
}

fn client_ip(slot: usize, generation: usize) -> String {
    format!("10.{}.{}.1", 10 + slot % 40, generation % 250)
}

fn client_name(slot: usize, generation: usize) -> String {
    format!("grpc-{slot}.{generation}")
}

/// Starts generation `generation` of a slot: connects (the first
/// generation to node `slot mod 3`, later ones to one node or all, at
/// random), registers its pinned instance and subscribes to two services.
async fn start_client(
    world: &Arc<World>,
    slot: usize,
    generation: usize,
    rng: &mut fastrand::Rng,
) -> Option<(usize, Driven)> {
    let servers: Vec<String> = if generation == 0 {
        vec![world.member(slot % world.ips.len())]
    } else if rng.bool() {
        (0..world.ips.len()).map(|i| world.member(i)).collect()
    } else {
        vec![world.member(world.pick_up(rng)?)]
    };
    let mut services: Vec<&str> = CHURN_SERVICES.iter().copied().chain([PINNED_SERVICE, PERSISTENT_SERVICE]).collect();
    rng.shuffle(&mut services);
    let subscriptions: Vec<String> = services[..2].iter().map(|s| s.to_string()).collect();
    let views = Arc::new(Mutex::new(BTreeMap::new()));
    let history: History = Arc::new(Mutex::new(Vec::new()));
    let name = client_name(slot, generation);
    note(&history, world.started.elapsed(), format!("start, servers {servers:?}"));
    let started = {
        let (servers, views, history, since) = (servers.clone(), views.clone(), history.clone(), world.started);
        tokio::task::spawn_blocking(move || Driven::start(&servers, views, history, since)).await
    };
    let mut client = match started {
        Ok(Ok(client)) => client,
        Ok(Err(e)) => {
            world.log(format!("gRPC client {name} of {servers:?} could not start: {e:#}"));
            return None;
        }
        Err(_) => return None,
    };
    let index = {
        let mut model = world.model.lock().ok()?;
        model.sdk.push(SdkModel {
            name: format!("{name} (of {})", servers.join(",")),
            alive: true,
            held: BTreeMap::new(),
            tried: BTreeMap::new(),
            subscriptions: Vec::new(),
            views,
            history,
        });
        model.sdk.len() - 1
    };
    let pinned = format!("{}:{PINNED_PORT}", client_ip(slot, generation));
    let began = world.started.elapsed();
    let outcome = client.command(&format!("register {PINNED_SERVICE} {}", pinned.replace(':', " "))).await;
    let redos = client.redos(PINNED_SERVICE);
    let op = SdkOp { service: PINNED_SERVICE, instance: &pinned, register: true, outcome, began, redos };
    world.record_sdk(index, op);
    for service in subscriptions {
        // An unknown subscription is redone by the SDK; it is checked either way.
        let began = world.started.elapsed();
        let outcome = client.command(&format!("subscribe {service}")).await;
        world.note_sdk(index, began, format!("subscribe {service}: {outcome:?}"));
        if let Ok(mut model) = world.model.lock() {
            model.sdk[index].subscriptions.push(service);
        }
    }
    Some((index, client))
}
