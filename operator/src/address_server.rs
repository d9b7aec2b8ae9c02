//! The address server: where members learn who the members are.
//!
//! A node started with `--lookup address-server` polls
//! `GET /v1/clusters/{namespace}/{name}/serverlist` and gets the desired
//! members as `host:8848` lines, the format Nacos's address server uses. An
//! unknown cluster is a 404, which a node treats like an unreachable server
//! (it keeps its last list).
//!
//! The lists live in [`ServerLists`], an in-memory map that whoever knows the
//! desired members updates: the controller on Kubernetes, or a local-cluster
//! command without Kubernetes. [`AddressServer`] only serves it, so the two
//! users share every byte of the HTTP behaviour.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;

use crate::{Error, Result};

/// Key of a cluster: `(namespace, name)`.
type ClusterKey = (String, String);

/// The member list of every known cluster, shared between writers (the
/// controller) and the HTTP server. Cloning is cheap and shares the map.
#[derive(Debug, Clone, Default)]
pub struct ServerLists {
    // A std lock, not a Tokio one: it is never held across an await, only
    // for a map lookup or insert.
    inner: Arc<RwLock<BTreeMap<ClusterKey, Vec<String>>>>,
}

impl ServerLists {
    /// An empty set of lists: every cluster is unknown.
    pub fn new() -> Self {
        Self::default()
    }

    /// Publishes `members` (`host:port`) as the list of `namespace/name`.
    /// Returns whether the published list changed.
    pub fn set(&self, namespace: &str, name: &str, members: Vec<String>) -> bool {
        let mut map = self.inner.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        let key = (namespace.to_owned(), name.to_owned());
        if map.get(&key) == Some(&members) {
            return false;
        }
        map.insert(key, members);
        true
    }

    /// Forgets `namespace/name`; its list answers 404 from now on. Returns
    /// whether it was known.
    pub fn remove(&self, namespace: &str, name: &str) -> bool {
        let mut map = self.inner.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        map.remove(&(namespace.to_owned(), name.to_owned())).is_some()
    }

    /// The published list of `namespace/name`, if the cluster is known.
    pub fn get(&self, namespace: &str, name: &str) -> Option<Vec<String>> {
        let map = self.inner.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        map.get(&(namespace.to_owned(), name.to_owned())).cloned()
    }

    /// Number of known clusters.
    pub fn len(&self) -> usize {
        self.inner.read().unwrap_or_else(|poisoned| poisoned.into_inner()).len()
    }

    /// Whether no cluster is known.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The body of a server list: one member per line, each line ending in a
/// newline (what `cluster.conf` and Nacos's address server look like).
pub fn render_server_list(members: &[String]) -> String {
    members.iter().map(|m| format!("{m}\n")).collect()
}

/// The HTTP server of [`ServerLists`].
#[derive(Debug, Clone)]
pub struct AddressServer {
    lists: ServerLists,
}

impl AddressServer {
    /// A server answering from `lists`.
    pub fn new(lists: ServerLists) -> Self {
        AddressServer { lists }
    }

    /// The routes, for embedding in another axum server.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/v1/clusters/{namespace}/{name}/serverlist", get(server_list))
            .with_state(self.lists.clone())
    }

    /// Serves on `listener` until `shutdown` completes.
    pub async fn serve(self, listener: TcpListener, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<()> {
        let addr = listener.local_addr().map(|a| a.to_string()).unwrap_or_default();
        axum::serve(listener, self.router())
            .with_graceful_shutdown(shutdown)
            .await
            .map_err(|source| Error::Serve { addr, source })
    }

    /// Binds `addr` (port 0 picks a free port) and serves in a background
    /// task until `shutdown` completes. Returns the bound address and the
    /// task, so a caller (a test, a local-cluster command) knows the URL.
    pub async fn spawn(
        self,
        addr: SocketAddr,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(SocketAddr, tokio::task::JoinHandle<Result<()>>)> {
        let listener =
            TcpListener::bind(addr).await.map_err(|source| Error::Serve { addr: addr.to_string(), source })?;
        let bound = listener.local_addr().map_err(|source| Error::Serve { addr: addr.to_string(), source })?;
        Ok((bound, tokio::spawn(self.serve(listener, shutdown))))
    }
}

async fn server_list(State(lists): State<ServerLists>, Path((namespace, name)): Path<(String, String)>) -> Response {
    match lists.get(&namespace, &name) {
        Some(members) => {
            ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], render_server_list(&members)).into_response()
        }
        None => (StatusCode::NOT_FOUND, format!("unknown cluster {namespace}/{name}\n")).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_reports_changes_only() {
        let lists = ServerLists::new();
        assert!(lists.is_empty());
        assert!(lists.set("ns", "demo", vec!["a:8848".into()]));
        assert!(!lists.set("ns", "demo", vec!["a:8848".into()]));
        assert!(lists.set("ns", "demo", vec!["a:8848".into(), "b:8848".into()]));
        assert_eq!(lists.get("ns", "demo").map(|l| l.len()), Some(2));
        assert_eq!(lists.get("other", "demo"), None);
        assert!(lists.remove("ns", "demo"));
        assert!(!lists.remove("ns", "demo"));
        assert_eq!(lists.len(), 0);
    }

    #[test]
    fn rendering_is_one_member_per_line() {
        assert_eq!(render_server_list(&["a:8848".into(), "b:8848".into()]), "a:8848\nb:8848\n");
        assert_eq!(render_server_list(&[]), "");
    }
}
