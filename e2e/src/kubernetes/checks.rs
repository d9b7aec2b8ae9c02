//! What is checked after each step: every acknowledged write and every
//! live client's instance on every member, the members agreeing, the
//! subscriber's pushed views, the Events the step recorded, and how the
//! conditions moved while it ran.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::events::v1::Event as KubeEvent;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams};
use roster_crds::{find_condition, RegistryClusterStatus};
use serde_json::Value;

use super::observe::{says_ready, RcVersion};
use super::workload::{http_client, Shared, GRPC_SERVICE, HTTP_SERVICE, HTTP_SERVICE_ALSO, PERSISTENT_SERVICE};
/// The last views an SDK subscriber was pushed, per service.
pub type Views = Arc<Mutex<BTreeMap<String, Vec<String>>>>;

/// `seq` of every persistent instance a member answers.
async fn persistent_seqs(http: &reqwest::Client, member: &str) -> Option<BTreeMap<String, u64>> {
    let url = format!("http://{member}/nacos/v1/ns/instance/list");
    let list: Value =
        http.get(url).query(&[("serviceName", PERSISTENT_SERVICE)]).send().await.ok()?.json().await.ok()?;
    let hosts = list["hosts"].as_array()?;
    Some(
        hosts
            .iter()
            .map(|h| {
                let address = format!("{}:{}", h["ip"].as_str().unwrap_or(""), h["port"]);
                let seq = h["metadata"]["seq"].as_str().and_then(|s| s.parse().ok()).unwrap_or(0);
                (address, seq)
            })
            .collect(),
    )
}

/// One look at every member: what is wrong, in sentences (empty when all
/// is right).
async fn look(http: &reqwest::Client, shared: &Shared, members: &[String], views: &Views) -> Vec<String> {
    let mut wrong = Vec::new();
    let (grpc, http_expected, persistent) = {
        let model = shared.model();
        (model.expected(GRPC_SERVICE), model.expected(HTTP_SERVICE), model.persistent.clone())
    };
    let mut held_by: Vec<(String, Vec<BTreeSet<String>>)> = Vec::new();
    for member in members {
        let status: Option<Value> =
            async { http.get(format!("http://{member}/roster/v1/status")).send().await?.json().await }.await.ok();
        match &status {
            None => {
                wrong.push(format!("{member} does not answer"));
                continue;
            }
            Some(s) if !says_ready(s) => wrong.push(format!("{member} is not ready")),
            Some(_) => {}
        }
        let mut sets = Vec::new();
        for (service, expected) in
            [(GRPC_SERVICE, &grpc), (HTTP_SERVICE, &http_expected), (HTTP_SERVICE_ALSO, &http_expected)]
        {
            let Some(held) = super::observe::member_instances(http, member, service).await else {
                wrong.push(format!("{member} does not answer the instances of {service}"));
                continue;
            };
            let expected: BTreeSet<String> = expected.iter().cloned().collect();
            let lost: Vec<&String> = expected.difference(&held).collect();
            let extra: Vec<&String> = held.difference(&expected).collect();
            if !lost.is_empty() {
                wrong.push(format!("{member} lacks {} live instance(s) of {service}: {lost:?}", lost.len()));
            }
            if !extra.is_empty() {
                wrong.push(format!("{member} still holds {} gone instance(s) of {service}: {extra:?}", extra.len()));
            }
            sets.push(held);
        }
        match persistent_seqs(http, member).await {
            None => wrong.push(format!("{member} does not answer the instances of {PERSISTENT_SERVICE}")),
            Some(seqs) => {
                for (address, p) in &persistent {
                    match seqs.get(address) {
                        None if p.acked > 0 => wrong
                            .push(format!("{member} lacks the persistent instance {address} (acked seq {})", p.acked)),
                        Some(seq) if *seq < p.acked => wrong.push(format!(
                            "{member} holds seq {seq} of {address}, older than the acknowledged {}",
                            p.acked
                        )),
                        Some(seq) if *seq > p.sent => {
                            wrong.push(format!("{member} holds seq {seq} of {address}, which was never written"))
                        }
                        _ => {}
                    }
                }
            }
        }
        held_by.push((member.clone(), sets));
    }
    if let Some((first, reference)) = held_by.first() {
        for (member, sets) in &held_by[1..] {
            if sets != reference {
                wrong.push(format!("{member} and {first} hold different ephemeral data"));
            }
        }
    }
    let pushed = views.lock().map(|v| v.clone()).unwrap_or_default();
    for (service, expected) in
        [(GRPC_SERVICE, &grpc), (HTTP_SERVICE, &http_expected), (HTTP_SERVICE_ALSO, &http_expected)]
    {
        let seen: BTreeSet<String> = pushed
            .get(service)
            .map(|hosts| hosts.iter().filter_map(|h| h.rsplit_once(':').map(|(a, _)| a.to_owned())).collect())
            .unwrap_or_default();
        let expected: BTreeSet<String> = expected.iter().cloned().collect();
        if seen != expected {
            wrong.push(format!(
                "the subscriber's last push of {service} has {} instance(s), the model {} (missing {:?}, extra {:?})",
                seen.len(),
                expected.len(),
                expected.difference(&seen).collect::<Vec<_>>(),
                seen.difference(&expected).collect::<Vec<_>>()
            ));
        }
    }
    wrong
}

/// Waits (bounded) until every one of `members` serves, holds every live
/// client's instance and nothing else, holds every acknowledged persistent
/// write, and agrees with the others and with the subscriber's pushes.
/// Returns how long that took, or what was still wrong at the deadline.
pub async fn data_converges(
    shared: &Shared,
    members: &[String],
    views: &Views,
    within: Duration,
) -> Result<Duration, String> {
    let http = http_client();
    let start = Instant::now();
    loop {
        let wrong = look(&http, shared, members, views).await;
        if wrong.is_empty() {
            return Ok(start.elapsed());
        }
        if start.elapsed() > within {
            return Err(format!("after {within:?}: {}", wrong.join("; ")));
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// One Event regarding the RegistryCluster.
#[derive(Debug, Clone)]
pub struct SeenEvent {
    /// Reason.
    pub reason: String,
    /// Note (the message `kubectl describe` shows).
    pub note: String,
    /// Times seen (1, or the series count).
    pub count: i32,
    /// When it was first recorded.
    pub at: Timestamp,
}

/// The Events regarding RegistryCluster `name` first recorded at or after
/// `since`, oldest first.
pub async fn events_since(client: &kube::Client, namespace: &str, name: &str, since: Timestamp) -> Vec<SeenEvent> {
    let api = Api::<KubeEvent>::namespaced(client.clone(), namespace);
    let fields = format!("regarding.kind=RegistryCluster,regarding.name={name}");
    let Ok(list) = api.list(&ListParams::default().fields(&fields)).await else { return Vec::new() };
    let mut seen: Vec<SeenEvent> = list
        .items
        .into_iter()
        .filter_map(|e| {
            let at = e.event_time.as_ref().map(|t| t.0).or(e.metadata.creation_timestamp.as_ref().map(|t| t.0))?;
            (at >= since).then(|| SeenEvent {
                reason: e.reason.clone().unwrap_or_default(),
                note: e.note.clone().unwrap_or_default(),
                count: e.series.as_ref().map_or(1, |s| s.count),
                at,
            })
        })
        .collect();
    seen.sort_by_key(|e| e.at);
    seen
}

/// The status of `type_` in a version (`None` when absent or stale: a
/// condition of an older generation says nothing about this one).
pub fn condition_of(version: &RcVersion, type_: &str) -> Option<(String, String)> {
    let status: &RegistryClusterStatus = version.status.as_ref()?;
    let c = find_condition(&status.conditions, type_)?;
    (c.observed_generation == version.generation).then(|| (c.status.clone(), c.reason.clone()))
}

/// Every `(status, reason)` a condition took in `versions`, in order,
/// repeats folded.
pub fn condition_trail(versions: &[RcVersion], type_: &str) -> Vec<(String, String)> {
    let mut trail: Vec<(String, String)> = Vec::new();
    for v in versions {
        if let Some(c) = condition_of(v, type_) {
            if trail.last() != Some(&c) {
                trail.push(c);
            }
        }
    }
    trail
}

/// A trail as `True(Serving) → False(...)`, for messages.
pub fn show(trail: &[(String, String)]) -> String {
    trail.iter().map(|(s, r)| format!("{s}({r})")).collect::<Vec<_>>().join(" → ")
}
