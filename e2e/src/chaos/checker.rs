//! The checker: what the cluster must and may hold once the faults stop
//! (from the model), polled until every node holds exactly that or the
//! bound passes; and, for a failed check, what the nodes say about the
//! clients a discrepancy names.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use super::model::{HttpState, Model, Outcome, Views};
use super::report::Discrepancy;
use super::world::World;
use super::{CHURN_SERVICES, PERSISTENT_IP, PERSISTENT_SERVICE, PINNED_SERVICE};

/// What one ephemeral service must and may hold.
#[derive(Debug, Default)]
pub(super) struct ServiceExpectation {
    /// `ip:port` → who holds it.
    pub(super) required: BTreeMap<String, String>,
    /// May be there (unknown outcomes), required ones included.
    pub(super) allowed: BTreeSet<String>,
    /// Must be gone: `ip:port` → why.
    pub(super) gone: BTreeMap<String, String>,
}

/// The final state the clients were told about.
#[derive(Debug, Default)]
pub(super) struct Expectation {
    pub(super) services: BTreeMap<String, ServiceExpectation>,
    /// Acknowledged and not deregistered: port → value.
    pub(super) persistent_required: BTreeMap<u16, String>,
    /// Attempted: port → value.
    pub(super) persistent_attempted: BTreeMap<u16, String>,
    /// Acknowledged deregistrations.
    pub(super) persistent_gone: BTreeSet<u16>,
    /// (client, service, its views).
    pub(super) subscribers: Vec<(String, String, Views)>,
}

impl Model {
    /// What the cluster must and may hold, given what the clients were told.
    pub(super) fn expectation(&self) -> Expectation {
        let mut e = Expectation::default();
        for service in CHURN_SERVICES.iter().chain([&PINNED_SERVICE]) {
            e.services.insert(service.to_string(), ServiceExpectation::default());
        }
        for client in &self.sdk {
            for (service, tried) in &client.tried {
                let Some(s) = e.services.get_mut(service) else { continue };
                let held = client.held.get(service).cloned().unwrap_or_default();
                for instance in tried {
                    if !client.alive {
                        s.gone.insert(instance.clone(), format!("belonged to crashed client {}", client.name));
                    } else if held.required.as_ref() == Some(instance) {
                        s.required.insert(instance.clone(), format!("live gRPC client {}", client.name));
                        s.allowed.insert(instance.clone());
                    } else if held.allowed.contains(instance) {
                        s.allowed.insert(instance.clone());
                    } else {
                        s.gone.insert(
                            instance.clone(),
                            format!("live gRPC client {} replaced or deregistered", client.name),
                        );
                    }
                }
            }
            if client.alive {
                for service in &client.subscriptions {
                    e.subscribers.push((client.name.clone(), service.clone(), client.views.clone()));
                }
            }
        }
        for inst in &self.http {
            let Some(s) = e.services.get_mut(&inst.service) else { continue };
            let address = format!("{}:{}", inst.ip, inst.port);
            match inst.state {
                HttpState::Beating => {
                    s.required.insert(address.clone(), "a beating HTTP client".to_owned());
                    s.allowed.insert(address);
                }
                HttpState::Stopped => {
                    s.gone.insert(address, "stopped beating (expired)".to_owned());
                }
                HttpState::Deregistered => {
                    s.gone.insert(address, "was deregistered and stopped beating".to_owned());
                }
            }
        }
        for (port, w) in &self.persistent {
            e.persistent_attempted.insert(*port, w.value.clone());
            match (w.register, w.deregister) {
                (_, Some(Outcome::Acked)) => {
                    e.persistent_gone.insert(*port);
                }
                (Outcome::Acked, None) => {
                    e.persistent_required.insert(*port, w.value.clone());
                }
                _ => {}
            }
        }
        e
    }
}

/// Polls until the cluster matches what the clients were told, or `bound`
/// passes; returns how long it took, or every difference of the last round.
pub(super) async fn check(world: &World, bound: Duration) -> Result<Duration, Vec<Discrepancy>> {
    let expectation = world
        .model
        .lock()
        .map(|m| m.expectation())
        .map_err(|_| vec![Discrepancy::Harness("model lock poisoned".into())])?;
    let started = Instant::now();
    loop {
        let found = check_once(world, &expectation).await;
        if found.is_empty() {
            return Ok(started.elapsed());
        }
        if started.elapsed() >= bound {
            return Err(found);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn check_once(world: &World, e: &Expectation) -> Vec<Discrepancy> {
    let mut found = Vec::new();
    let mut agreed: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let services: Vec<&String> = e.services.keys().collect();
    for service in services.iter().map(|s| s.as_str()).chain([PERSISTENT_SERVICE]) {
        let mut lists = Vec::new();
        for node in 0..world.ips.len() {
            let Some(hosts) = world.hosts(node, service).await else {
                found.push(Discrepancy::Unreachable { node, what: format!("the list of {service}") });
                continue;
            };
            if service == PERSISTENT_SERVICE {
                check_persistent(node, &hosts, e, &mut found);
            } else if let Some(s) = e.services.get(service) {
                check_ephemeral(node, service, &hosts, s, &mut found);
            }
            lists.push(hosts.iter().map(|(a, h, _)| format!("{a}:{h}")).collect::<Vec<String>>());
        }
        if lists.windows(2).any(|w| w[0] != w[1]) {
            found.push(Discrepancy::Diverged { service: service.to_owned(), lists: lists.clone() });
        }
        if let Some(first) = lists.into_iter().next() {
            agreed.insert(service.to_owned(), first);
        }
    }
    for (client, service, views) in &e.subscribers {
        let pushed = views.lock().ok().and_then(|v| v.get(service).cloned());
        let actual = agreed.get(service).cloned().unwrap_or_default();
        if pushed.as_ref().unwrap_or(&Vec::new()) != &actual {
            found.push(Discrepancy::StaleView { client: client.clone(), service: service.clone(), pushed, actual });
        }
    }
    found
}

fn check_ephemeral(
    node: usize,
    service: &str,
    hosts: &[(String, bool, Option<String>)],
    s: &ServiceExpectation,
    found: &mut Vec<Discrepancy>,
) {
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for (address, healthy, _) in hosts {
        *seen.entry(address.as_str()).or_default() += 1;
        let instance = address.clone();
        let service = service.to_owned();
        if s.allowed.contains(address) {
            if s.required.contains_key(address) && !healthy {
                found.push(Discrepancy::Unhealthy { node, service, instance });
            }
        } else if let Some(why) = s.gone.get(address) {
            found.push(Discrepancy::NotGone { node, service, instance, why: why.clone() });
        } else {
            found.push(Discrepancy::Unwritten { node, service, instance });
        }
    }
    for (address, n) in &seen {
        if *n > 1 {
            found.push(Discrepancy::Duplicate { node, service: service.to_owned(), instance: address.to_string() });
        }
    }
    for (address, owner) in &s.required {
        if !seen.contains_key(address.as_str()) {
            found.push(Discrepancy::Missing {
                node,
                service: service.to_owned(),
                instance: address.clone(),
                owner: owner.clone(),
            });
        }
    }
}

fn check_persistent(
    node: usize,
    hosts: &[(String, bool, Option<String>)],
    e: &Expectation,
    found: &mut Vec<Discrepancy>,
) {
    let mut held: BTreeMap<u16, Option<String>> = BTreeMap::new();
    for (address, _, value) in hosts {
        let port = address.strip_prefix(&format!("{PERSISTENT_IP}:")).and_then(|p| p.parse::<u16>().ok());
        let service = PERSISTENT_SERVICE.to_owned();
        let Some(port) = port else {
            found.push(Discrepancy::Unwritten { node, service, instance: address.clone() });
            continue;
        };
        if held.insert(port, value.clone()).is_some() {
            found.push(Discrepancy::Duplicate { node, service, instance: address.clone() });
        } else if e.persistent_gone.contains(&port) {
            let why = "had an acknowledged deregistration".to_owned();
            found.push(Discrepancy::NotGone { node, service, instance: address.clone(), why });
        } else if e.persistent_attempted.get(&port) != value.as_ref() {
            found.push(Discrepancy::Unwritten { node, service, instance: format!("{address} v={value:?}") });
        }
    }
    for (port, value) in &e.persistent_required {
        let got = held.get(port).cloned().flatten();
        if got.as_ref() != Some(value) {
            found.push(Discrepancy::LostWrite {
                node,
                instance: format!("{PERSISTENT_IP}:{port}"),
                value: value.clone(),
                found: got,
            });
        }
    }
}

impl World {
    /// The histories of the gRPC clients the discrepancies name.
    pub(super) fn histories_named_by(&self, discrepancies: &[Discrepancy]) -> Vec<(String, Vec<String>)> {
        let texts: Vec<String> = discrepancies.iter().map(ToString::to_string).collect();
        let Ok(model) = self.model.lock() else { return Vec::new() };
        model
            .sdk
            .iter()
            .filter(|c| texts.iter().any(|t| t.contains(&c.name)))
            .map(|c| (c.name.clone(), c.history.lock().map(|h| h.clone()).unwrap_or_default()))
            .collect()
    }

    /// For each ephemeral instance a discrepancy names, the clients each
    /// node says publish it, and what the node knows of them.
    pub(super) async fn publishers_of(&self, discrepancies: &[Discrepancy]) -> Vec<String> {
        let mut asked = BTreeSet::new();
        for d in discrepancies {
            match d {
                Discrepancy::Missing { service, instance, .. }
                | Discrepancy::Unhealthy { service, instance, .. }
                | Discrepancy::NotGone { service, instance, .. }
                | Discrepancy::Unwritten { service, instance, .. }
                | Discrepancy::Duplicate { service, instance, .. }
                    if service != PERSISTENT_SERVICE =>
                {
                    asked.insert((service.clone(), instance.clone()));
                }
                _ => {}
            }
        }
        let mut lines = Vec::new();
        for (service, instance) in asked {
            let Some((ip, port)) = instance.rsplit_once(':') else { continue };
            for node in 0..self.ips.len() {
                let query = [("serviceName", service.as_str()), ("ip", ip), ("port", port)];
                let Some(list) = self.get_json(node, "/nacos/v2/ns/client/service/publisher/list", &query).await else {
                    lines.push(format!("node {node}: {service} {instance}: no answer"));
                    continue;
                };
                let ids: Vec<&str> = list["data"]
                    .as_array()
                    .map(|a| a.iter().filter_map(|c| c["clientId"].as_str()).collect())
                    .unwrap_or_default();
                if ids.is_empty() {
                    lines.push(format!("node {node}: {service} {instance}: published by no client"));
                }
                for id in ids {
                    let detail = self.get_json(node, "/nacos/v2/ns/client", &[("clientId", id)]).await;
                    let described = match detail.as_ref().map(|d| &d["data"]) {
                        Some(d) if d.is_object() => {
                            let kind = d["clientType"].as_str().unwrap_or("?");
                            let written = d["source"].as_str().map_or_else(|| "here".to_owned(), |s| format!("on {s}"));
                            match kind {
                                "connection" => {
                                    format!("connection, connected here: {}, written {written}", d["connected"])
                                }
                                _ => format!("{kind}, written {written}"),
                            }
                        }
                        _ => "no detail".to_owned(),
                    };
                    lines.push(format!("node {node}: {service} {instance} published by client {id} ({described})"));
                }
            }
        }
        lines
    }

    /// How many instances whose deregistration the SDK's redo may have
    /// undone are on node 0 (after a passing check: on every node), their
    /// clients still alive.
    pub(super) async fn put_back_by_redo(&self) -> usize {
        let overlaps: Vec<(String, String)> = match self.model.lock() {
            Ok(m) => m
                .redo_overlaps
                .iter()
                .filter(|(i, _, _)| m.sdk[*i].alive)
                .map(|(_, s, inst)| (s.clone(), inst.clone()))
                .collect(),
            Err(_) => return 0,
        };
        let mut put_back = 0;
        for (service, instance) in overlaps {
            if let Some(hosts) = self.hosts(0, &service).await {
                if hosts.iter().any(|(address, _, _)| *address == instance) {
                    put_back += 1;
                    eprintln!("chaos: the SDK's redo put back {service} {instance} after its deregistration");
                }
            }
        }
        put_back
    }
}

#[cfg(test)]
mod tests {
    //! The model's account of gRPC deregistrations, as the checker expects it.

    use super::super::model::{History, SdkModel, SdkOp};
    use super::*;

    /// A world with one live gRPC client that registered `ip:port` in
    /// `chaos-a` (acknowledged, with `redos` SDK resends counted then).
    fn world_with_registered(instance: &str, redos: u64) -> World {
        let world = World::new(&["127.0.0.1".to_owned()], None);
        if let Ok(mut model) = world.model.lock() {
            model.sdk.push(SdkModel {
                name: "grpc-0.0 (of test)".to_owned(),
                alive: true,
                held: BTreeMap::new(),
                tried: BTreeMap::new(),
                subscriptions: Vec::new(),
                views: Views::default(),
                history: History::default(),
            });
        }
        let began = Duration::ZERO;
        let op = SdkOp { service: "chaos-a", instance, register: true, outcome: Outcome::Acked, began, redos };
        world.record_sdk(0, op);
        world
    }

    fn deregister(world: &World, instance: &str, redos: u64) -> ServiceExpectation {
        let began = Duration::ZERO;
        let op = SdkOp { service: "chaos-a", instance, register: false, outcome: Outcome::Acked, began, redos };
        world.record_sdk(0, op);
        let mut e = world.model.lock().expect("model").expectation();
        e.services.remove("chaos-a").expect("the churn service is expected")
    }

    #[test]
    fn an_acknowledged_deregistration_must_be_gone() {
        let world = world_with_registered("10.0.0.1:7000", 2);
        // Resends before the register do not count: it replaced them.
        let e = deregister(&world, "10.0.0.1:7000", 2);
        assert!(e.gone.contains_key("10.0.0.1:7000"), "{e:?}");
        assert!(!e.allowed.contains("10.0.0.1:7000"), "{e:?}");
    }

    #[test]
    fn a_deregistration_the_sdk_may_have_undone_is_allowed_but_not_required() {
        let world = world_with_registered("10.0.0.1:7000", 2);
        // The SDK resent its register of the service after it (a reconnect).
        let e = deregister(&world, "10.0.0.1:7000", 3);
        assert!(e.allowed.contains("10.0.0.1:7000"), "{e:?}");
        assert!(!e.required.contains_key("10.0.0.1:7000"), "{e:?}");
        assert!(!e.gone.contains_key("10.0.0.1:7000"), "{e:?}");
        let history = world.model.lock().expect("model").sdk[0].history.lock().expect("history").join("\n");
        assert!(history.contains("may stay: the SDK resent its register"), "{history}");
        assert_eq!(world.model.lock().expect("model").redo_overlaps.len(), 1);
        // A later register replaces whatever the SDK put back.
        let began = Duration::ZERO;
        let op = SdkOp {
            service: "chaos-a",
            instance: "10.0.0.1:7001",
            register: true,
            outcome: Outcome::Acked,
            began,
            redos: 3,
        };
        world.record_sdk(0, op);
        let model = world.model.lock().expect("model");
        assert!(model.redo_overlaps.is_empty());
        assert_eq!(model.redo_overlaps_seen, 1);
    }
}
