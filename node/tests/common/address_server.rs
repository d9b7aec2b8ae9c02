//! A tiny address server for the tests: serves a list (or an error) that
//! the test changes at will at `/v1/clusters/ns/demo/serverlist`, as the
//! operator does.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use parking_lot::Mutex;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The path the server answers on.
pub const PATH: &str = "/v1/clusters/ns/demo/serverlist";

/// What the test address server answers.
#[derive(Clone)]
pub struct Answer(pub Arc<Mutex<(StatusCode, String)>>);

impl Answer {
    /// An answer of `status` with `body`.
    pub fn new(status: StatusCode, body: &str) -> Answer {
        Answer(Arc::new(Mutex::new((status, body.to_string()))))
    }

    /// Answers `status` with `body` from now on.
    pub fn set(&self, status: StatusCode, body: &str) {
        *self.0.lock() = (status, body.to_string());
    }
}

async fn serverlist(State(answer): State<Answer>) -> (StatusCode, String) {
    answer.0.lock().clone()
}

/// Serves `answer` at [`PATH`] on an ephemeral loopback port; the sender
/// stops it.
pub async fn serve(answer: Answer) -> (SocketAddr, oneshot::Sender<()>, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the address server");
    let addr = listener.local_addr().expect("address");
    let app = Router::new().route(PATH, get(serverlist)).with_state(answer);
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await;
    });
    (addr, stop, task)
}
