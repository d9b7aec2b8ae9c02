//! The Nacos v2 client introspection API (`/nacos/v2/ns/client...`)
//! against a real node: gRPC connections, HTTP ip:port clients, persistent
//! `ip:port#false` clients and a client synced from a peer, each as listed,
//! described, by what it publishes and watches, and found by the service
//! and address it publishes or watches; the v2 error shape and codes of
//! Nacos's `ErrorCode`; and with `--auth-enabled`, admins only.

use crate::common;

use std::time::{Duration, Instant};

use reqwest::Method;
use roster_node::naming::{ClientCopy, ClientKind, Delta, Instance, ServiceKey};
use roster_node::{Config, RunningNode};
use serde_json::{json, Value};

use common::grpc::{register, RawClient};
use common::{auth_dir, http_base, http_form, http_query, start, test_config};

const LIST: &str = "/nacos/v2/ns/client/list";
const DETAIL: &str = "/nacos/v2/ns/client";
const PUBLISHED: &str = "/nacos/v2/ns/client/publish/list";
const SUBSCRIBED: &str = "/nacos/v2/ns/client/subscribe/list";
const PUBLISHERS: &str = "/nacos/v2/ns/client/service/publisher/list";
const SUBSCRIBERS: &str = "/nacos/v2/ns/client/service/subscriber/list";
const INSTANCE: &str = "/nacos/v1/ns/instance";

fn url(node: &RunningNode, path: &str) -> String {
    format!("{}{path}", http_base(node))
}

/// `GET path` with `params` and, if given, `accessToken`: status and body.
async fn get(node: &RunningNode, path: &str, params: &[(&str, &str)], token: Option<&str>) -> (u16, String) {
    let mut params = params.to_vec();
    if let Some(token) = token {
        params.push(("accessToken", token));
    }
    http_query(Method::GET, &url(node, path), &params).await
}

/// `GET path` that must answer 200 with `{"code":0,"message":"success"}`;
/// returns its `data`.
async fn data(node: &RunningNode, path: &str, params: &[(&str, &str)]) -> Value {
    let (status, body) = get(node, path, params, None).await;
    assert_eq!(status, 200, "GET {path} {params:?}: {body}");
    let v: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path} answered non-JSON ({e}): {body}"));
    assert_eq!((&v["code"], &v["message"]), (&json!(0), &json!("success")), "GET {path} {params:?}: {body}");
    v["data"].clone()
}

/// `GET path` that must fail with `status` and the v2 error body of `code`
/// and `message`; returns its `data` (the particular message).
async fn error(
    node: &RunningNode,
    path: &str,
    params: &[(&str, &str)],
    status: u16,
    code: i64,
    message: &str,
) -> String {
    let (got, body) = get(node, path, params, None).await;
    assert_eq!(got, status, "GET {path} {params:?}: {body}");
    let v: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path} answered non-JSON ({e}): {body}"));
    assert_eq!((&v["code"], &v["message"]), (&json!(code), &json!(message)), "GET {path} {params:?}: {body}");
    v["data"].as_str().unwrap_or_else(|| panic!("data is the error message: {body}")).to_owned()
}

fn ids(list: &Value) -> Vec<String> {
    list.as_array().expect("a list").iter().map(|v| v.as_str().expect("an id").to_owned()).collect()
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_millis() as u64
}

/// The TCP port of a connection, the last part of its id `<ms>_<ip>_<port>`.
fn port_of(connection_id: &str) -> u16 {
    connection_id.rsplit('_').next().and_then(|p| p.parse().ok()).expect("a connection id ends in its port")
}

#[tokio::test]
async fn a_grpc_client_is_listed_described_and_found_by_its_instance() {
    let node = start(test_config()).await;
    let mut c = RawClient::connect_with(
        &node,
        true,
        "Nacos-Java-Client:v2.4.0",
        json!({"module": "naming", "AppName": "orders"}),
    )
    .await;
    let before = now_ms();
    let (_, answer) = c.call("InstanceRequest", register("svc", "10.0.0.1", 80)).await;
    assert_eq!(answer["resultCode"], 200, "{answer}");
    let id = c.connection_id.clone();

    assert_eq!(ids(&data(&node, LIST, &[]).await), vec![id.clone()]);

    let detail = data(&node, DETAIL, &[("clientId", &id)]).await;
    let revision = node.store().client(&id).expect("held").revision();
    assert_eq!(
        detail,
        json!({
            "clientId": id, "ephemeral": true, "lastUpdatedTime": revision, "clientType": "connection",
            "connectType": "GRPC", "appName": "orders", "version": "Nacos-Java-Client:v2.4.0",
            "clientIp": "127.0.0.1", "clientPort": port_of(&id).to_string(),
            "source": null, "connected": true,
        })
    );
    assert!((before..=now_ms()).contains(&revision), "lastUpdatedTime {revision} is the time of the registration");

    assert_eq!(
        data(&node, PUBLISHED, &[("clientId", &id)]).await,
        json!([{"namespace": "public", "group": "DEFAULT_GROUP", "serviceName": "svc",
                "registeredInstance": {"ip": "10.0.0.1", "port": 80, "cluster": "DEFAULT"}}])
    );

    let owner = json!([{"clientId": id, "ip": "10.0.0.1", "port": 80}]);
    let at = |ip: &'static str, port: &'static str| [("serviceName", "svc"), ("ip", ip), ("port", port)];
    assert_eq!(data(&node, PUBLISHERS, &at("10.0.0.1", "80")).await, owner);
    assert_eq!(data(&node, PUBLISHERS, &at("10.0.0.1", "81")).await, json!([]), "another port");
    assert_eq!(data(&node, PUBLISHERS, &at("10.0.0.2", "80")).await, json!([]), "another ip");
    assert_eq!(data(&node, PUBLISHERS, &[("serviceName", "svc")]).await, owner, "no ip or port: no filter");
    assert_eq!(data(&node, PUBLISHERS, &[("serviceName", "svc"), ("port", "80")]).await, owner);
    assert_eq!(data(&node, PUBLISHERS, &[("serviceName", "other")]).await, json!([]), "another service");
    assert_eq!(
        data(&node, PUBLISHERS, &[("serviceName", "svc"), ("ephemeral", "false")]).await,
        json!([]),
        "no persistent instance there"
    );
    assert_eq!(data(&node, SUBSCRIBED, &[("clientId", &id)]).await, json!([]), "subscribed to nothing yet");

    drop(c);
    common::eventually("the closed connection's client is gone", Duration::from_secs(10), || async {
        ids(&data(&node, LIST, &[]).await).is_empty().then_some(())
    })
    .await;
    assert_eq!(data(&node, PUBLISHERS, &[("serviceName", "svc")]).await, json!([]));
    node.shutdown().await;
}

#[tokio::test]
async fn an_http_instance_belongs_to_its_ip_port_client_until_deregistered() {
    let node = start(test_config()).await;
    let instance = [("serviceName", "web"), ("ip", "10.0.0.5"), ("port", "8080")];
    assert_eq!(http_form(Method::POST, &url(&node, INSTANCE), &instance).await, (200, "ok".to_owned()));
    let id = "10.0.0.5:8080#true";
    assert_eq!(ids(&data(&node, LIST, &[]).await), vec![id]);

    let detail = data(&node, DETAIL, &[("clientId", id)]).await;
    let revision = node.store().client(id).expect("held").revision();
    assert_eq!(
        detail,
        json!({
            "clientId": id, "ephemeral": true, "lastUpdatedTime": revision, "clientType": "ipPort",
            "clientIp": "10.0.0.5", "clientPort": "8080", "source": null, "connected": false,
        })
    );
    assert_eq!(
        data(&node, PUBLISHED, &[("clientId", id)]).await,
        json!([{"namespace": "public", "group": "DEFAULT_GROUP", "serviceName": "web",
                "registeredInstance": {"ip": "10.0.0.5", "port": 8080, "cluster": "DEFAULT"}}])
    );
    assert_eq!(data(&node, SUBSCRIBED, &[("clientId", id)]).await, json!([]), "no v1 subscribers");
    assert_eq!(data(&node, PUBLISHERS, &instance).await, json!([{"clientId": id, "ip": "10.0.0.5", "port": 8080}]));

    assert_eq!(http_query(Method::DELETE, &url(&node, INSTANCE), &instance).await, (200, "ok".to_owned()));
    assert_eq!(data(&node, PUBLISHERS, &instance).await, json!([]), "deregistered");
    assert_eq!(data(&node, LIST, &[]).await, json!([]));
    let missing = error(&node, DETAIL, &[("clientId", id)], 404, 20004, "resource not found").await;
    assert_eq!(missing, format!("clientId [ {id} ] not exist"));
    node.shutdown().await;
}

#[tokio::test]
async fn persistent_instances_answer_under_their_ip_port_false_client() {
    let node = start(test_config()).await;
    let instance = [("serviceName", "db"), ("ip", "10.0.0.9"), ("port", "5432"), ("ephemeral", "false")];
    assert_eq!(http_form(Method::POST, &url(&node, INSTANCE), &instance).await, (200, "ok".to_owned()));
    let id = "10.0.0.9:5432#false";

    assert_eq!(ids(&data(&node, LIST, &[]).await), vec![id]);
    assert_eq!(data(&node, PUBLISHERS, &instance).await, json!([{"clientId": id, "ip": "10.0.0.9", "port": 5432}]));
    let ephemeral = [("serviceName", "db"), ("ip", "10.0.0.9"), ("port", "5432")];
    assert_eq!(data(&node, PUBLISHERS, &ephemeral).await, json!([]), "ephemeral=true (the default) looks at clients");
    assert_eq!(
        data(&node, DETAIL, &[("clientId", id)]).await,
        json!({
            "clientId": id, "ephemeral": false, "lastUpdatedTime": null, "clientType": "ipPort",
            "clientIp": "10.0.0.9", "clientPort": "5432", "source": null, "connected": false,
        })
    );
    assert_eq!(
        data(&node, PUBLISHED, &[("clientId", id)]).await,
        json!([{"namespace": "public", "group": "DEFAULT_GROUP", "serviceName": "db",
                "registeredInstance": {"ip": "10.0.0.9", "port": 5432, "cluster": "DEFAULT"}}])
    );
    error(&node, DETAIL, &[("clientId", "10.0.0.9:5433#false")], 404, 20004, "resource not found").await;
    node.shutdown().await;
}

#[tokio::test]
async fn a_client_synced_from_a_peer_names_its_source_and_is_not_connected_here() {
    let node = start(test_config()).await;
    let id = "1700000000000_10.1.0.7_40000";
    let revision = now_ms();
    let copy = ClientCopy {
        id: id.to_owned(),
        kind: ClientKind::Connection,
        owner: None,
        delta: Delta {
            revision,
            live: vec![(
                ServiceKey::new("public", "DEFAULT_GROUP", "remote"),
                Instance::new("10.1.0.7", 9000),
                revision,
            )],
            ..Delta::default()
        },
    };
    node.store().apply_copies(&[copy], "10.1.0.1:8848", node.member(), Instant::now(), |_| false);

    assert_eq!(
        data(&node, DETAIL, &[("clientId", id)]).await,
        json!({
            "clientId": id, "ephemeral": true, "lastUpdatedTime": revision, "clientType": "connection",
            "source": "10.1.0.1:8848", "connected": false,
        }),
        "a connection to another member: no connection facts here"
    );
    assert_eq!(
        data(&node, PUBLISHERS, &[("serviceName", "remote"), ("ip", "10.1.0.7"), ("port", "9000")]).await,
        json!([{"clientId": id, "ip": "10.1.0.7", "port": 9000}])
    );
    assert_eq!(data(&node, SUBSCRIBED, &[("clientId", id)]).await, json!([]), "its subscriptions live elsewhere");
    node.shutdown().await;
}

#[tokio::test]
async fn subscriptions_are_listed_by_client_and_by_service() {
    let node = start(test_config()).await;
    let mut c = RawClient::connect_with(&node, true, "Nacos-Rust-Client:0.5", json!({"AppName": "billing"})).await;
    let mut plain = RawClient::connect(&node, true).await;
    let subscribe = |service: &str| json!({"serviceName": service, "subscribe": true, "clusters": ""});
    for service in ["watched", "also-watched"] {
        let (t, v) = c.call("SubscribeServiceRequest", subscribe(service)).await;
        assert_eq!((t.as_str(), v["resultCode"].as_i64()), ("SubscribeServiceResponse", Some(200)));
    }
    let (_, v) = plain.call("SubscribeServiceRequest", subscribe("watched")).await;
    assert_eq!(v["resultCode"], 200);
    let id = c.connection_id.clone();

    let info = json!({"app": "billing", "agent": "Nacos-Rust-Client:0.5", "addr": "127.0.0.1"});
    assert_eq!(
        data(&node, SUBSCRIBED, &[("clientId", &id)]).await,
        json!([
            {"namespace": "public", "group": "DEFAULT_GROUP", "serviceName": "also-watched", "subscriberInfo": info},
            {"namespace": "public", "group": "DEFAULT_GROUP", "serviceName": "watched", "subscriberInfo": info},
        ])
    );
    let unnamed = data(&node, SUBSCRIBED, &[("clientId", &plain.connection_id)]).await;
    assert_eq!(unnamed[0]["subscriberInfo"]["app"], "unknown", "no AppName label: {unnamed}");

    let port = port_of(&id).to_string();
    let ours = json!([{"clientId": id, "ip": "127.0.0.1", "port": port_of(&id)}]);
    let watched = [("serviceName", "watched"), ("ip", "127.0.0.1"), ("port", port.as_str())];
    assert_eq!(data(&node, SUBSCRIBERS, &watched).await, ours);
    assert_eq!(data(&node, SUBSCRIBERS, &[("serviceName", "also-watched")]).await, ours, "no filter");
    let everyone = data(&node, SUBSCRIBERS, &[("serviceName", "watched")]).await;
    let mut both = vec![id.clone(), plain.connection_id.clone()];
    both.sort();
    let found: Vec<&str> = everyone.as_array().expect("list").iter().filter_map(|s| s["clientId"].as_str()).collect();
    assert_eq!(found, both, "both subscribers, by id");
    let plain_port = port_of(&plain.connection_id).to_string();
    let only_plain = data(&node, SUBSCRIBERS, &[("serviceName", "watched"), ("port", plain_port.as_str())]).await;
    assert_eq!(
        only_plain,
        json!([{"clientId": plain.connection_id, "ip": "127.0.0.1", "port": port_of(&plain.connection_id)}])
    );
    let no_one_there = [("serviceName", "watched"), ("ip", "127.0.0.1"), ("port", "1")];
    assert_eq!(data(&node, SUBSCRIBERS, &no_one_there).await, json!([]), "another port");
    let another_ip = [("serviceName", "watched"), ("ip", "10.9.9.9")];
    assert_eq!(data(&node, SUBSCRIBERS, &another_ip).await, json!([]));
    assert_eq!(data(&node, SUBSCRIBERS, &[("serviceName", "nobody-watches")]).await, json!([]));

    let (_, v) =
        c.call("SubscribeServiceRequest", json!({"serviceName": "watched", "subscribe": false, "clusters": ""})).await;
    assert_eq!(v["resultCode"], 200);
    assert_eq!(data(&node, SUBSCRIBED, &[("clientId", &id)]).await.as_array().map(Vec::len), Some(1));
    assert_eq!(data(&node, SUBSCRIBERS, &watched).await, json!([]), "unsubscribed");
    node.shutdown().await;
}

#[tokio::test]
async fn errors_have_the_v2_shape_and_change_nothing() {
    let node = start(test_config()).await;
    let instance = [("serviceName", "web"), ("ip", "10.0.0.5"), ("port", "8080")];
    assert_eq!(http_form(Method::POST, &url(&node, INSTANCE), &instance).await, (200, "ok".to_owned()));
    let before = (node.store().counts(), node.store().client("10.0.0.5:8080#true").map(|c| c.revision()));

    for path in [DETAIL, PUBLISHED, SUBSCRIBED] {
        let message = error(&node, path, &[("clientId", "nope")], 404, 20004, "resource not found").await;
        assert_eq!(message, "clientId [ nope ] not exist", "{path}");
        for missing in [&[][..], &[("clientId", "  ")][..]] {
            let message = error(&node, path, missing, 400, 10000, "parameter missing").await;
            assert!(message.contains("'clientId'"), "{path}: {message}");
        }
    }
    for path in [PUBLISHERS, SUBSCRIBERS] {
        let message = error(&node, path, &[("ip", "10.0.0.5")], 400, 10000, "parameter missing").await;
        assert!(message.contains("'serviceName'"), "{path}: {message}");
        for (name, bad) in [
            ("port", "abc"),
            ("port", "0"),
            ("port", "70000"),
            ("namespaceId", "bad ns!"),
            ("groupName", "a@@b"),
            ("serviceName", "a@@b@@c"),
            ("ephemeral", "maybe"),
            ("ip", "10.0.0.5#1"),
        ] {
            let params =
                if name == "serviceName" { vec![(name, bad)] } else { vec![("serviceName", "web"), (name, bad)] };
            let message = error(&node, path, &params, 400, 20002, "parameter validate error").await;
            assert!(message.contains(&format!("'{name}'")), "{path} {name}={bad}: {message}");
        }
    }
    // A query string that is not valid percent-encoding.
    let (status, body) = http_query(Method::GET, &format!("{}?clientId=%zz", url(&node, DETAIL)), &[]).await;
    let v: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("non-JSON ({e}): {body}"));
    assert_eq!((status, &v["code"]), (400, &json!(20002)), "{body}");

    let after = (node.store().counts(), node.store().client("10.0.0.5:8080#true").map(|c| c.revision()));
    assert_eq!(after, before, "bad requests change nothing");
    node.shutdown().await;
}

fn secured_config() -> Config {
    {
        let mut c = test_config();
        c.auth.enabled = true;
        c.auth.dir = Some(auth_dir());
        c.auth.token_ttl = Duration::from_secs(600);
        c
    }
}

async fn login(node: &RunningNode, user: &str) -> String {
    let password = format!("{user}-pw");
    let params = [("username", user), ("password", password.as_str())];
    let (status, body) = http_form(Method::POST, &url(node, "/nacos/v1/auth/login"), &params).await;
    assert_eq!(status, 200, "login of {user}: {body}");
    let v: Value = serde_json::from_str(&body).expect("login JSON");
    v["accessToken"].as_str().expect("accessToken").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_auth_only_admins_may_look() {
    let node = start(secured_config()).await;
    let admin = login(&node, "admin").await;
    let mut instance = vec![("serviceName", "web"), ("ip", "10.0.0.5"), ("port", "8080")];
    instance.push(("accessToken", admin.as_str()));
    assert_eq!(http_form(Method::POST, &url(&node, INSTANCE), &instance).await, (200, "ok".to_owned()));
    let (viewer, team) = (login(&node, "viewer").await, login(&node, "team").await);

    let id = [("clientId", "10.0.0.5:8080#true")];
    let service = [("serviceName", "web")];
    let routes: [(&str, &[(&str, &str)]); 6] = [
        (LIST, &[]),
        (DETAIL, &id),
        (PUBLISHED, &id),
        (SUBSCRIBED, &id),
        (PUBLISHERS, &service),
        (SUBSCRIBERS, &service),
    ];
    for (path, params) in routes {
        let refused = [
            (None, "caused: user not found!;"),
            (Some("not-a-token"), "caused: token invalid!;"),
            (Some(viewer.as_str()), "caused: authorization failed!;"),
            (Some(team.as_str()), "caused: authorization failed!;"),
        ];
        for (token, message) in refused {
            let (status, body) = get(&node, path, params, token).await;
            assert_eq!((status, body.as_str()), (403, message), "GET {path} with {token:?}");
        }
        let (status, body) = get(&node, path, params, Some(&admin)).await;
        assert_eq!(status, 200, "GET {path} as admin: {body}");
        let v: Value = serde_json::from_str(&body).expect("JSON");
        assert_eq!(v["code"], 0, "GET {path} as admin: {body}");
    }
    let (_, body) = get(&node, LIST, &[], Some(&admin)).await;
    assert!(body.contains("10.0.0.5:8080#true"), "{body}");
    node.shutdown().await;
}
