//! The official Rust client (`nacos-sdk`) against a real node: register,
//! query, subscribe and receive pushes, deregister, batch register, and a
//! dropped client's instances disappearing.

use crate::common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use nacos_sdk::api::naming::{
    NamingChangeEvent, NamingEventListener, NamingService, NamingServiceBuilder, ServiceInstance,
};
use nacos_sdk::api::props::ClientProps;
use parking_lot::Mutex;
use roster_node::naming::{Selection, ServiceKey};
use roster_node::RunningNode;

use common::{eventually, start, test_config};

const WAIT: Duration = Duration::from_secs(15);

async fn client(node: &RunningNode, app: &str) -> NamingService {
    let props = ClientProps::new()
        .server_addr(format!("127.0.0.1:{}", node.http_addr.port()))
        .remote_grpc_port(node.grpc_addr.port())
        .namespace("")
        .app_name(app)
        .env_first(false)
        .naming_push_empty_protection(false)
        .load_cache_at_start(false);
    NamingServiceBuilder::new(props).build().await.expect("client connects")
}

fn instance(ip: &str, port: i32) -> ServiceInstance {
    ServiceInstance {
        ip: ip.to_owned(),
        port,
        weight: 2.0,
        metadata: HashMap::from([("zone".to_owned(), "a".to_owned())]),
        ..ServiceInstance::default()
    }
}

fn ips(instances: &[ServiceInstance]) -> Vec<String> {
    let mut v: Vec<String> = instances.iter().map(|i| format!("{}:{}", i.ip, i.port)).collect();
    v.sort();
    v
}

/// Records every push a subscription delivers.
#[derive(Default)]
struct Recorder {
    events: Mutex<Vec<Vec<String>>>,
}

impl NamingEventListener for Recorder {
    fn event(&self, event: Arc<NamingChangeEvent>) {
        let hosts = event.instances.clone().unwrap_or_default();
        self.events.lock().push(ips(&hosts));
    }
}

impl Recorder {
    fn last(&self) -> Option<Vec<String>> {
        self.events.lock().last().cloned()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_query_deregister() {
    let node = start(test_config()).await;
    let naming = client(&node, "provider").await;

    naming.register_instance("orders".into(), None, instance("10.1.0.1", 8080)).await.expect("register");
    let found = naming.get_all_instances("orders".into(), None, vec![], false).await.expect("query");
    assert_eq!(ips(&found), vec!["10.1.0.1:8080"]);
    let got = &found[0];
    assert_eq!(got.weight, 2.0);
    assert!(got.healthy && got.enabled && got.ephemeral);
    assert_eq!(got.cluster_name.as_deref(), Some("DEFAULT"));
    assert_eq!(got.service_name.as_deref(), Some("DEFAULT_GROUP@@orders"));
    assert_eq!(got.metadata.get("zone").map(String::as_str), Some("a"));
    assert_eq!(got.instance_id.as_deref(), Some("10.1.0.1#8080#DEFAULT#DEFAULT_GROUP@@orders"));

    // The store holds it under the default namespace and group.
    let key = ServiceKey::new("public", "DEFAULT_GROUP", "orders");
    assert_eq!(node.store().query(&key, &Selection::default()).hosts.len(), 1);

    // Service list through the client.
    let (names, count) = naming.get_service_list(1, 10, None).await.expect("list");
    assert_eq!((names, count), (vec!["orders".to_owned()], 1));

    naming.deregister_instance("orders".into(), None, instance("10.1.0.1", 8080)).await.expect("deregister");
    let found = naming.get_all_instances("orders".into(), None, vec![], false).await.expect("query");
    assert!(found.is_empty(), "deregistered instance still listed: {found:?}");
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriber_is_pushed_every_change() {
    let node = start(test_config()).await;
    let provider = client(&node, "provider").await;
    let consumer = client(&node, "consumer").await;
    let recorder = Arc::new(Recorder::default());
    consumer.subscribe("payments".into(), Some("shop".into()), vec![], recorder.clone()).await.expect("subscribe");

    provider
        .register_instance("payments".into(), Some("shop".into()), instance("10.2.0.1", 9000))
        .await
        .expect("register");
    eventually("push with the new instance", WAIT, || async {
        (recorder.last() == Some(vec!["10.2.0.1:9000".to_owned()])).then_some(())
    })
    .await;

    provider
        .batch_register_instance(
            "payments".into(),
            Some("shop".into()),
            vec![instance("10.2.0.1", 9000), instance("10.2.0.2", 9000), instance("10.2.0.3", 9000)],
        )
        .await
        .expect("batch register");
    eventually("push with the batch", WAIT, || async { (recorder.last().map(|v| v.len()) == Some(3)).then_some(()) })
        .await;

    provider
        .batch_register_instance("payments".into(), Some("shop".into()), vec![instance("10.2.0.2", 9000)])
        .await
        .expect("batch replace");
    eventually("push after the batch shrank", WAIT, || async {
        (recorder.last() == Some(vec!["10.2.0.2:9000".to_owned()])).then_some(())
    })
    .await;

    let pushes = node.metrics_text();
    assert!(pushes.contains("roster_pushes_total{result=\"ok\"}"), "push metric missing:\n{pushes}");
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_client_instances_disappear_and_subscribers_hear_it() {
    let node = start(test_config()).await;
    let consumer = client(&node, "consumer").await;
    let recorder = Arc::new(Recorder::default());
    consumer.subscribe("cart".into(), None, vec![], recorder.clone()).await.expect("subscribe");

    let provider = client(&node, "provider").await;
    provider.register_instance("cart".into(), None, instance("10.3.0.1", 7000)).await.expect("register");
    eventually("push with the instance", WAIT, || async {
        (recorder.last() == Some(vec!["10.3.0.1:7000".to_owned()])).then_some(())
    })
    .await;

    // Close the provider's connection from the server side, as a dropped TCP
    // connection would: the client's instances go with it.
    let key = ServiceKey::new("public", "DEFAULT_GROUP", "cart");
    let (owner, _) = node
        .store()
        .owner_of(
            &key,
            &roster_node::naming::InstanceKey { ip: "10.3.0.1".into(), port: 7000, cluster: "DEFAULT".into() },
        )
        .expect("instance has an owner");
    drop(provider);
    node.close_connection(&owner);

    eventually("push with the empty list", WAIT, || async { (recorder.last() == Some(vec![])).then_some(()) }).await;
    assert!(node.store().query(&key, &Selection::default()).hosts.is_empty());
    node.shutdown().await;
}
