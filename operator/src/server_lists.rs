//! The member lists the address server serves, kept equal to the desired
//! members of every RegistryCluster.
//!
//! The leader's reconcile publishes a cluster's list first of all (so on
//! scale-down the departing members leave it before anything else
//! happens); [`sync_server_lists`] keeps the lists of every replica in step
//! with the API server, since followers serve the address server too and a
//! deleted cluster must turn into a 404.

use std::collections::BTreeSet;

use futures::StreamExt;
use kube::api::Api;
use kube::runtime::{watcher, WatchStreamExt};
use kube::ResourceExt;
use roster_crds::RegistryCluster;
use tracing::{info, warn};

use crate::address_server::ServerLists;
use crate::desired::Target;
use crate::names;

/// Publishes the desired members `0..spec.replicas` of `t` (at least one).
/// Returns whether the published list changed.
pub fn publish(lists: &ServerLists, t: &Target<'_>) -> bool {
    let desired = t.rc.spec.replicas.max(1);
    let changed = lists.set(&t.namespace, &t.name, names::member_addresses(&t.name, &t.namespace, desired));
    if changed {
        info!(members = desired, "published the server list");
    }
    changed
}

/// What [`sync_server_lists`] remembers between watch events.
#[derive(Debug, Default)]
pub struct ListSync {
    /// Clusters whose list is published.
    known: BTreeSet<(String, String)>,
    /// Clusters seen since the last `Init`, while a re-list is under way.
    relisting: Option<BTreeSet<(String, String)>>,
}

impl ListSync {
    /// Applies one watch event to `lists`.
    pub fn handle(&mut self, lists: &ServerLists, event: watcher::Event<RegistryCluster>) {
        let id = |rc: &RegistryCluster| (rc.namespace().unwrap_or_default(), rc.name_any());
        match event {
            watcher::Event::Apply(rc) | watcher::Event::InitApply(rc) => {
                let (ns, name) = id(&rc);
                lists.set(&ns, &name, names::member_addresses(&name, &ns, rc.spec.replicas.max(1)));
                if let Some(seen) = self.relisting.as_mut() {
                    seen.insert((ns.clone(), name.clone()));
                }
                self.known.insert((ns, name));
            }
            watcher::Event::Delete(rc) => {
                let (ns, name) = id(&rc);
                lists.remove(&ns, &name);
                self.known.remove(&(ns, name));
            }
            watcher::Event::Init => self.relisting = Some(BTreeSet::new()),
            watcher::Event::InitDone => {
                // What the re-list did not return was deleted while the watch was down.
                let seen = self.relisting.take().unwrap_or_default();
                for (ns, name) in self.known.difference(&seen) {
                    lists.remove(ns, name);
                }
                self.known = seen;
            }
        }
    }
}

/// Keeps `lists` equal to the desired members of every RegistryCluster the
/// API server has, on every operator replica. A failed watch is retried
/// with kube-runtime's default exponential back-off. Runs until the task is
/// dropped.
pub async fn sync_server_lists(api: Api<RegistryCluster>, lists: ServerLists) {
    let mut sync = ListSync::default();
    let mut stream = watcher::watcher(api, watcher::Config::default()).default_backoff().boxed();
    while let Some(event) = stream.next().await {
        match event {
            Ok(event) => sync.handle(&lists, event),
            Err(e) => warn!(error = %e, "watching RegistryClusters for the server lists failed; retrying"),
        }
    }
}
