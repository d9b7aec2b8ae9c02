//! The address server over real HTTP on loopback: what a node's
//! `--lookup address-server` poll sees.

use std::net::SocketAddr;

use roster_operator::{AddressServer, ServerLists};
use tokio::sync::oneshot;

async fn start(
    lists: ServerLists,
) -> (SocketAddr, oneshot::Sender<()>, tokio::task::JoinHandle<roster_operator::Result<()>>) {
    let (stop, stopped) = oneshot::channel::<()>();
    let (addr, task) = AddressServer::new(lists)
        .spawn("127.0.0.1:0".parse().expect("addr"), async {
            let _ = stopped.await;
        })
        .await
        .expect("address server starts");
    (addr, stop, task)
}

async fn get(addr: SocketAddr, path: &str) -> (u16, Option<String>, String) {
    let resp = reqwest::get(format!("http://{addr}{path}")).await.expect("GET");
    let status = resp.status().as_u16();
    let content_type = resp.headers().get("content-type").and_then(|v| v.to_str().ok()).map(str::to_owned);
    (status, content_type, resp.text().await.expect("body"))
}

#[tokio::test]
async fn serves_the_published_list_as_lines() {
    let lists = ServerLists::new();
    lists.set("ns", "demo", vec!["demo-0.demo-headless.ns.svc:8848".into(), "demo-1.demo-headless.ns.svc:8848".into()]);
    let (addr, stop, task) = start(lists).await;
    let (status, content_type, body) = get(addr, "/v1/clusters/ns/demo/serverlist").await;
    assert_eq!(status, 200);
    assert!(content_type.is_some_and(|c| c.starts_with("text/plain")));
    assert_eq!(body, "demo-0.demo-headless.ns.svc:8848\ndemo-1.demo-headless.ns.svc:8848\n");
    let _ = stop.send(());
    task.await.expect("task").expect("clean shutdown");
}

#[tokio::test]
async fn unknown_clusters_and_paths_are_404() {
    let lists = ServerLists::new();
    lists.set("ns", "demo", vec!["a:8848".into()]);
    let (addr, stop, task) = start(lists).await;
    let (status, _, body) = get(addr, "/v1/clusters/ns/other/serverlist").await;
    assert_eq!(status, 404);
    assert!(body.contains("unknown cluster ns/other"), "{body}");
    assert_eq!(get(addr, "/v1/clusters/other/demo/serverlist").await.0, 404, "namespaces are kept apart");
    assert_eq!(get(addr, "/v1/clusters/ns/demo").await.0, 404);
    assert_eq!(get(addr, "/nacos/serverlist").await.0, 404);
    let _ = stop.send(());
    task.await.expect("task").expect("clean shutdown");
}

#[tokio::test]
async fn changes_are_served_immediately_and_removal_turns_into_404() {
    let lists = ServerLists::new();
    lists.set("ns", "demo", vec!["a:8848".into(), "b:8848".into(), "c:8848".into()]);
    let (addr, stop, task) = start(lists.clone()).await;
    assert_eq!(get(addr, "/v1/clusters/ns/demo/serverlist").await.2, "a:8848\nb:8848\nc:8848\n");
    lists.set("ns", "demo", vec!["a:8848".into()]);
    assert_eq!(get(addr, "/v1/clusters/ns/demo/serverlist").await.2, "a:8848\n");
    lists.remove("ns", "demo");
    assert_eq!(get(addr, "/v1/clusters/ns/demo/serverlist").await.0, 404);
    let _ = stop.send(());
    task.await.expect("task").expect("clean shutdown");
}

#[tokio::test]
async fn refuses_a_busy_port_with_a_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr");
    let err = AddressServer::new(ServerLists::new()).spawn(addr, async {}).await.expect_err("port in use");
    assert!(err.to_string().contains(&addr.to_string()), "{err}");
}
