//! Draining, in process: two or three members on loopback, a hand-made
//! gRPC client on the member that drains. The client is told to move
//! (`ConnectResetRequest` naming another member), the draining member
//! refuses new clients and reports 503, and the client's instance stays
//! visible on every member until it is registered again elsewhere, or the
//! handover wait ends; a member that leaves the list drains and stays up.
//! The official SDK's side of it runs in `e2e/tests/distro.rs`.

use crate::common::{self, grpc::RawClient};

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use roster_node::api::grpc::drain::Drained;
use roster_node::{Config, RunningNode};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(15);

/// Members on `n` loopback addresses, formed and ready, with `drain` set.
async fn members(n: u32, tune: impl Fn(&mut Config)) -> (tempfile::TempDir, std::path::PathBuf, Vec<RunningNode>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let ips = common::loopback_ips(n);
    let (conf, names) = common::member_file(dir.path(), &ips);
    let mut nodes = Vec::new();
    for ip in &ips {
        let mut config = common::member_config(ip, &conf);
        config.cluster.lookup.file_poll_interval = Duration::from_millis(50);
        tune(&mut config);
        nodes.push(common::start(config).await);
    }
    common::responsibility_split(&nodes, &names).await;
    (dir, conf, nodes)
}

async fn readiness(node: &RunningNode) -> u16 {
    let url = format!("{}/nacos/v1/console/health/readiness", common::http_base(node));
    reqwest::get(url).await.expect("GET").status().as_u16()
}

/// Watches `service` on `node` until stopped; true if it ever lacked `host`.
fn watch_gap(node: &RunningNode, service: &'static str, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<bool> {
    let store = node.store().clone();
    tokio::spawn(async move {
        let key = roster_node::naming::ServiceKey::new("public", "DEFAULT_GROUP", service);
        let mut gap = false;
        while !stop.load(Ordering::Acquire) {
            gap |= store.query(&key, &roster_node::naming::Selection::default()).hosts.is_empty();
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        gap
    })
}

fn resets(client: &RawClient) -> Vec<Value> {
    client.received.lock().iter().filter(|(t, _)| t == "ConnectResetRequest").map(|(_, v)| v.clone()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_moved_client_s_instance_never_vanishes_and_the_drain_ends_once_it_is_registered_again() {
    let (_dir, _conf, nodes) = members(2, |_| {}).await;
    let (a, b) = (&nodes[0], &nodes[1]);
    let mut old = RawClient::connect(b, true).await;
    let (_, answer) = old.call("InstanceRequest", common::grpc::register("svc-drain", "10.7.0.1", 7000)).await;
    assert_eq!(answer["resultCode"], 200, "{answer}");
    common::eventually("the instance on A", WAIT, || async {
        (common::grpc::hosts(a, "svc-drain") == 1).then_some(())
    })
    .await;
    let stop = Arc::new(AtomicBool::new(false));
    let gap = watch_gap(a, "svc-drain", stop.clone());

    let draining = {
        let drain = async { b.drain().await };
        tokio::pin!(drain);
        // While B drains: 503, told to move to A, no new client taken.
        let moved = async {
            common::eventually("readiness 503", WAIT, || async { (readiness(b).await == 503).then_some(()) }).await;
            let reset =
                common::eventually("a ConnectResetRequest", WAIT, || async { resets(&old).first().cloned() }).await;
            let (host, port) = a.member().rsplit_once(':').expect("host:port");
            assert_eq!((reset["serverIp"].as_str(), reset["serverPort"].as_str()), (Some(host), Some(port)), "{reset}");
            assert_eq!(reset["module"], "internal");
            let refused = tokio::time::timeout(Duration::from_secs(5), RawClient::connect_unchecked(b)).await;
            assert!(matches!(refused, Ok(Err(_))), "a draining member takes no new client");
            // The client does as Java clients do: connects to A, registers
            // again, then closes its old connection.
            let mut new = RawClient::connect(a, true).await;
            new.call("InstanceRequest", common::grpc::register("svc-drain", "10.7.0.1", 7000)).await;
            drop(old);
            new
        };
        let (done, new) = tokio::join!(drain, moved);
        (done, new)
    };
    let (done, _new) = draining;
    stop.store(true, Ordering::Release);
    assert!(!gap.await.expect("watcher"), "the instance was visible on A all along");
    assert_eq!(done, Drained { reset: 1, closed: 0, handed_over: 1, given_up: 0 });
    // B removed the old connection's client once the new one published it.
    common::eventually("the old connection gone from A", WAIT, || async {
        (a.store().local_connections().len() == 1 && a.store().client_ids().len() == 1).then_some(())
    })
    .await;
    assert_eq!(common::grpc::hosts(a, "svc-drain"), 1);
    assert!(b.is_draining());
    for node in nodes {
        node.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_client_that_ignores_the_reset_is_closed_and_its_instance_stays_until_the_handover_wait() {
    let (_dir, _conf, nodes) = members(2, |c| {
        c.drain.reset_wait = Duration::from_millis(300);
        c.drain.handover_wait = Duration::from_millis(1500);
    })
    .await;
    let (a, b) = (&nodes[0], &nodes[1]);
    let mut client = RawClient::connect(b, false).await;
    client.call("InstanceRequest", common::grpc::register("svc-ignore", "10.7.0.2", 7000)).await;
    common::eventually("the instance on A", WAIT, || async {
        (common::grpc::hosts(a, "svc-ignore") == 1).then_some(())
    })
    .await;
    let started = std::time::Instant::now();
    let done = b.drain().await;
    let took = started.elapsed();
    assert_eq!(done, Drained { reset: 1, closed: 1, handed_over: 0, given_up: 1 });
    assert!(took >= Duration::from_millis(1800), "the reset wait, then the handover wait: {took:?}");
    assert!(took < Duration::from_secs(6), "{took:?}");
    assert!(!resets(&client).is_empty(), "it was told");
    common::eventually("the instance removed everywhere after the handover wait", WAIT, || async {
        (common::grpc::hosts(a, "svc-ignore") == 0 && common::grpc::hosts(b, "svc-ignore") == 0).then_some(())
    })
    .await;
    for node in nodes {
        node.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_member_that_leaves_the_list_drains_and_stays_up_not_ready_until_listed_again() {
    let (_dir, conf, nodes) = members(3, |c| c.drain.handover_wait = Duration::from_millis(500)).await;
    let names: Vec<String> = nodes.iter().map(|n| n.member().to_owned()).collect();
    let leaving = &nodes[2];
    let mut client = RawClient::connect(leaving, true).await;
    client.call("InstanceRequest", common::grpc::register("svc-leave", "10.7.0.3", 7000)).await;
    common::write_conf(&conf, &format!("{}\n{}\n", names[0], names[1]));
    common::eventually("the member drains", WAIT, || async { leaving.is_draining().then_some(()) }).await;
    common::eventually("readiness 503", WAIT, || async { (readiness(leaving).await == 503).then_some(()) }).await;
    common::eventually("the client told to move", WAIT, || async { (!resets(&client).is_empty()).then_some(()) }).await;
    let status: Value = reqwest::get(format!("{}/roster/v1/status", common::http_base(leaving)))
        .await
        .expect("GET")
        .json()
        .await
        .expect("json");
    assert_eq!((status["draining"].clone(), status["ready"].clone()), (json!(true), json!(false)), "{status}");
    // It still answers (a drained member is stopped by its operator).
    assert_eq!(
        reqwest::get(format!("{}/nacos/v1/console/health/liveness", common::http_base(leaving)))
            .await
            .expect("GET")
            .status(),
        200
    );
    // Listed again: it serves again.
    common::write_conf(&conf, &names.join("\n"));
    common::eventually("ready again", WAIT, || async { (readiness(leaving).await == 200).then_some(()) }).await;
    assert!(!leaving.is_draining());
    for node in nodes {
        node.shutdown().await;
    }
}
