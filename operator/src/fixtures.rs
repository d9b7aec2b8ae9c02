//! Test-only helpers: a mocked Kubernetes API at the HTTP level (the
//! tower-test pattern of kube-rs/controller-rs) and fake members that serve
//! a status document over real HTTP on loopback.
//!
//! The verifier answers the controller's requests one by one, asserting the
//! method, the path, the apply parameters and the body of each. A request
//! the scenario does not expect fails the test; a request that never comes
//! fails it through the timeout of [`ApiServerVerifier::finish`].

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::routing::get;
use axum::Router;
use http::{Method, Request, Response, StatusCode};
use kube::client::Body;
use kube::Client;
use serde_json::{json, Value};

use crate::address_server::ServerLists;
use crate::controller::Context;
use crate::desired::OperatorSettings;
use crate::metrics::Metrics;
use crate::node_status::{Endpoints, StatusClient};

type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

/// The mocked API server.
pub struct ApiServerVerifier(Handle);

/// One request the controller made.
pub struct Call {
    /// Method.
    pub method: Method,
    /// Path without query.
    pub path: String,
    /// Query string.
    pub query: String,
    /// JSON body (`Null` when empty).
    pub body: Value,
    send: tower_test::mock::SendResponse<Response<Body>>,
}

impl Call {
    /// Answers with `status` and a JSON body.
    pub fn respond(self, status: StatusCode, body: &Value) {
        let bytes = serde_json::to_vec(body).expect("serializable response");
        let response = Response::builder().status(status).body(Body::from(bytes)).expect("valid response");
        self.send.send_response(response);
    }

    /// Answers 200 with the request body (what an apply of a new object returns).
    pub fn echo(self) {
        let body = self.body.clone();
        self.respond(StatusCode::OK, &body);
    }

    /// Answers 404 as the API server does.
    pub fn not_found(self) {
        let body = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                          "message": "not found", "reason": "NotFound", "code": 404});
        self.respond(StatusCode::NOT_FOUND, &body);
    }

    /// Asserts this is a server-side apply (force, our field manager) of `path`.
    pub fn assert_apply(&self, path: &str) {
        assert_eq!((&self.method, self.path.as_str()), (&Method::PATCH, path), "expected an apply of {path}");
        assert!(self.query.contains("fieldManager=roster-operator"), "{path}: query {}", self.query);
        assert!(self.query.contains("force=true"), "{path}: query {}", self.query);
    }
}

impl ApiServerVerifier {
    /// The next request, failing the test if none comes within 5 s.
    pub async fn next(&mut self) -> Call {
        let (request, send) = tokio::time::timeout(Duration::from_secs(5), self.0.next_request())
            .await
            .expect("the controller made the next expected API call in time")
            .expect("the client is still connected");
        let method = request.method().clone();
        let path = request.uri().path().to_owned();
        let query = request.uri().query().unwrap_or_default().to_owned();
        let bytes = request.into_body().collect_bytes().await.expect("request body");
        let body = if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).expect("JSON body") };
        Call { method, path, query, body, send }
    }

    /// The next request, asserting it is an apply of `path`; answered with
    /// an echo. Returns the applied body.
    pub async fn expect_apply(&mut self, path: &str) -> Value {
        let call = self.next().await;
        call.assert_apply(path);
        let body = call.body.clone();
        call.echo();
        body
    }

    /// The next request, asserting it is a GET of `path`.
    pub async fn expect_get(&mut self, path: &str) -> Call {
        let call = self.next().await;
        assert_eq!((&call.method, call.path.as_str()), (&Method::GET, path));
        call
    }

    /// The next request, asserting it records an Event with `reason`: a
    /// POST of a new Event, or a PATCH of the same Event's series when the
    /// recorder saw it recently (kube's Recorder deduplicates that way).
    pub async fn expect_event(&mut self, namespace: &str, reason: &str) -> Value {
        let call = self.next().await;
        let events = format!("/apis/events.k8s.io/v1/namespaces/{namespace}/events");
        let is_event = (call.method == Method::POST && call.path == events)
            || (call.method == Method::PATCH && call.path.starts_with(&format!("{events}/")));
        assert!(is_event, "expected event {reason}, got {} {} {}", call.method, call.path, call.body);
        assert_eq!(call.body["reason"], reason, "event body {}", call.body);
        let body = call.body.clone();
        call.echo();
        body
    }

    /// Asserts that no further request arrives within `wait`.
    pub async fn expect_silence(&mut self, wait: Duration) {
        if let Ok(Some((request, _))) = tokio::time::timeout(wait, self.0.next_request()).await {
            panic!("unexpected API call {} {}", request.method(), request.uri());
        }
    }
}

/// A test context over the mocked API server; member statuses are read
/// through `endpoints`.
pub fn test_context(endpoints: Endpoints) -> (Arc<Context>, ApiServerVerifier, ServerLists) {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, "default");
    let lists = ServerLists::new();
    let status_client = StatusClient::new(endpoints, Duration::from_secs(2)).expect("http client");
    let ctx = Context::new(
        client,
        OperatorSettings { address_server_base_url: "http://roster-operator.roster-system.svc:8080".into() },
        lists.clone(),
        status_client,
        Arc::new(Metrics::default()),
    );
    (Arc::new(ctx), ApiServerVerifier(handle), lists)
}

/// A fake member: serves a replaceable status document on 127.0.0.1.
pub struct FakeMember {
    /// Bound address.
    pub addr: SocketAddr,
    doc: Arc<RwLock<Value>>,
    task: tokio::task::JoinHandle<()>,
}

impl FakeMember {
    /// Starts serving `doc` at `/roster/v1/status`.
    pub async fn start(doc: Value) -> FakeMember {
        let doc = Arc::new(RwLock::new(doc));
        let shared = doc.clone();
        let app = Router::new().route(
            "/roster/v1/status",
            get(move || {
                let shared = shared.clone();
                async move { axum::Json(shared.read().expect("lock").clone()) }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind loopback");
        let addr = listener.local_addr().expect("addr");
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeMember { addr, doc, task }
    }

    /// Replaces the served document.
    pub fn set(&self, doc: Value) {
        *self.doc.write().expect("lock") = doc;
    }
}

impl Drop for FakeMember {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Endpoints mapping each member address to its fake.
pub fn endpoints_for(members: &[(String, &FakeMember)]) -> Endpoints {
    Endpoints::Static(members.iter().map(|(m, f)| (m.clone(), f.addr.to_string())).collect::<BTreeMap<_, _>>())
}
