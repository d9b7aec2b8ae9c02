//! The HTTP clients (ephemeral instances kept alive by light beats, some
//! stopped, some deregistered) and the persistent writer, over the v1 API.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::model::{HttpModel, HttpState, Outcome, PersistentModel};
use super::world::World;
use super::{CHURN_SERVICES, PERSISTENT_IP, PERSISTENT_SERVICE};

/// HTTP clients: registers `count` instances, then until `deadline` adds
/// more, stops beating some and deregisters some; beats every live one
/// every 500 ms until `stop`.
pub(super) async fn http_clients(
    world: Arc<World>,
    mut rng: fastrand::Rng,
    count: usize,
    deadline: Instant,
    stop: Arc<AtomicBool>,
) {
    let mut next = 0u16;
    for _ in 0..count {
        http_register_new(&world, &mut rng, &mut next).await;
    }
    while !stop.load(Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_millis(500)).await;
        // Beat every beating instance through a random running node; one
        // the cluster lost is registered again, as Nacos clients do.
        let beating: Vec<HttpModel> = world
            .model
            .lock()
            .map(|m| m.http.iter().filter(|h| h.state == HttpState::Beating).cloned().collect())
            .unwrap_or_default();
        for inst in &beating {
            let Some(node) = world.pick_up(&mut rng) else { break };
            if world.beat(node, inst).await == Some(20404) {
                let port = inst.port.to_string();
                let params =
                    [("serviceName", inst.service.as_str()), ("ip", inst.ip.as_str()), ("port", port.as_str())];
                let _ = world.write(node, reqwest::Method::POST, &params).await;
            }
        }
        if Instant::now() >= deadline {
            continue;
        }
        match rng.u32(..100) {
            0..40 => http_register_new(&world, &mut rng, &mut next).await,
            40..60 => {
                if let Some(i) = random_beating(&world, &mut rng) {
                    if let Ok(mut model) = world.model.lock() {
                        model.http[i].state = HttpState::Stopped;
                    }
                }
            }
            60..80 => {
                let Some(i) = random_beating(&world, &mut rng) else { continue };
                let Some(inst) = world.model.lock().ok().map(|mut m| {
                    m.http[i].state = HttpState::Deregistered;
                    m.http[i].clone()
                }) else {
                    continue;
                };
                let Some(node) = world.pick_up(&mut rng) else { continue };
                let port = inst.port.to_string();
                let params =
                    [("serviceName", inst.service.as_str()), ("ip", inst.ip.as_str()), ("port", port.as_str())];
                // Acknowledged or not, it is gone in the end: its beats stopped.
                let _ = world.write(node, reqwest::Method::DELETE, &params).await;
            }
            _ => {}
        }
    }
}

fn random_beating(world: &World, rng: &mut fastrand::Rng) -> Option<usize> {
    let model = world.model.lock().ok()?;
    let beating: Vec<usize> = (0..model.http.len()).filter(|i| model.http[*i].state == HttpState::Beating).collect();
    (!beating.is_empty()).then(|| beating[rng.usize(..beating.len())])
}

async fn http_register_new(world: &World, rng: &mut fastrand::Rng, next: &mut u16) {
    let n = *next;
    *next += 1;
    let inst = HttpModel {
        service: CHURN_SERVICES[rng.usize(..CHURN_SERVICES.len())].to_owned(),
        ip: format!("10.50.{}.{}", n / 200, 1 + n % 200),
        port: 8000 + n,
        state: HttpState::Beating,
    };
    if let Ok(mut model) = world.model.lock() {
        model.http.push(inst.clone());
    }
    // Whatever the answer, it beats from now on and is registered again if
    // the cluster does not know it.
    if let Some(node) = world.pick_up(rng) {
        let port = inst.port.to_string();
        let params = [("serviceName", inst.service.as_str()), ("ip", inst.ip.as_str()), ("port", port.as_str())];
        let _ = world.write(node, reqwest::Method::POST, &params).await;
    }
}

/// Persistent writes through random running nodes until `deadline`: new
/// instances, and deregistrations of acknowledged ones.
pub(super) async fn persistent_writer(world: Arc<World>, mut rng: fastrand::Rng, deadline: Instant) {
    let mut next = 20_000u16;
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(rng.u64(100..400))).await;
        let Some(node) = world.pick_up(&mut rng) else { continue };
        let deregister = rng.u32(..100) < 20;
        if deregister {
            let candidates: Vec<u16> = world
                .model
                .lock()
                .map(|m| {
                    m.persistent
                        .iter()
                        .filter(|(_, w)| w.register == Outcome::Acked && w.deregister.is_none())
                        .map(|(p, _)| *p)
                        .collect()
                })
                .unwrap_or_default();
            if candidates.is_empty() {
                continue;
            }
            let port = candidates[rng.usize(..candidates.len())];
            if let Ok(mut model) = world.model.lock() {
                if let Some(w) = model.persistent.get_mut(&port) {
                    w.deregister = Some(Outcome::Unknown);
                }
            }
            let port_text = port.to_string();
            let params = [
                ("serviceName", PERSISTENT_SERVICE),
                ("ip", PERSISTENT_IP),
                ("port", port_text.as_str()),
                ("ephemeral", "false"),
            ];
            let outcome = world.write(node, reqwest::Method::DELETE, &params).await;
            if let Ok(mut model) = world.model.lock() {
                if let Some(w) = model.persistent.get_mut(&port) {
                    w.deregister = Some(outcome);
                }
            }
        } else {
            let port = next;
            next += 1;
            let value = format!("w{port}-n{node}");
            if let Ok(mut model) = world.model.lock() {
                model.persistent.insert(
                    port,
                    PersistentModel { value: value.clone(), register: Outcome::Unknown, deregister: None },
                );
            }
            let (port_text, metadata) = (port.to_string(), format!("v={value}"));
            let params = [
                ("serviceName", PERSISTENT_SERVICE),
                ("ip", PERSISTENT_IP),
                ("port", port_text.as_str()),
                ("ephemeral", "false"),
                ("metadata", metadata.as_str()),
            ];
            let outcome = world.write(node, reqwest::Method::POST, &params).await;
            if let Ok(mut model) = world.model.lock() {
                if let Some(w) = model.persistent.get_mut(&port) {
                    w.register = outcome;
                }
            }
        }
    }
}
