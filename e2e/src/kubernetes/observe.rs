//! What the suite watches while the story runs, with the time it saw it:
//! every version of the RegistryCluster (its conditions), every change of
//! its pods, every member's own status (four times a second), and the
//! live clients' instances on every serving member, so that an instance
//! missing for longer than a reconnect is caught even when it is back by
//! the end of a step.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use kube::runtime::{watcher, WatchStreamExt};
use kube::ResourceExt;
use roster_crds::{RegistryCluster, RegistryClusterStatus};
use serde_json::Value;
use tokio::task::JoinHandle;

use super::workload::{http_client, Shared, GRPC_SERVICE, HTTP_SERVICE, HTTP_SERVICE_ALSO};

/// How often the members are asked for their status.
const SAMPLE_EVERY: Duration = Duration::from_millis(250);
/// How long a live client's instance may be missing on a serving member:
/// one reconnect of nacos-sdk 0.8.3 (a retry back-off of 1–2 s, then its
/// redo task, every 3 s, registers again) plus a Distro sync, with margin.
/// An HTTP client re-registers at its next beat, 2 s later.
pub const GAP_BOUND: Duration = Duration::from_secs(8);
/// A registration younger than this is not missed yet (Distro sync).
const SYNC_GRACE: Duration = Duration::from_secs(2);

/// One version of the RegistryCluster.
#[derive(Debug, Clone)]
pub struct RcVersion {
    /// When the watch delivered it.
    pub at: Instant,
    /// `metadata.generation`; `None` once deleted.
    pub generation: Option<i64>,
    /// Its status.
    pub status: Option<RegistryClusterStatus>,
}

/// One change of a member pod.
#[derive(Debug, Clone)]
pub struct PodVersion {
    /// When the watch delivered it.
    pub at: Instant,
    /// Pod name.
    pub name: String,
    /// Pod uid (a recreated pod has a new one).
    pub uid: String,
    /// Whether it exists (false: deleted).
    pub exists: bool,
    /// Its `Ready` condition.
    pub ready: bool,
    /// `controller-revision-hash`.
    pub revision: Option<String>,
    /// It has a deletion timestamp.
    pub terminating: bool,
    /// Restarts of the member container.
    pub restarts: i32,
    /// The member process (`local://<pid>` of the test kubelet).
    pub pid: Option<u32>,
}

/// A member's status at one time (`None`: it did not answer).
#[derive(Debug, Clone)]
pub struct MemberSample {
    /// When.
    pub at: Instant,
    /// Ordinal.
    pub ordinal: i32,
    /// `/roster/v1/status`.
    pub status: Option<Value>,
}

/// A live client's instance missing on a serving member for longer than
/// [`GAP_BOUND`] (reported when it crosses the bound).
#[derive(Debug, Clone)]
pub struct Gap {
    /// The step during which it went missing.
    pub step: String,
    /// The member that did not have it.
    pub member: String,
    /// `service ip:port`.
    pub instance: String,
    /// How long it had been missing when reported.
    pub missing_for: Duration,
}

/// The observation record, shared with the background tasks.
#[derive(Default)]
pub struct Record {
    /// Versions of the RegistryCluster.
    pub rc: Vec<RcVersion>,
    /// Changes of its pods.
    pub pods: Vec<PodVersion>,
    /// Member statuses.
    pub members: Vec<MemberSample>,
    /// Gaps seen.
    pub gaps: Vec<Gap>,
    /// Marks the story set (step starts), for the history.
    pub marks: Vec<(Instant, String)>,
}

/// The background watchers and samplers; stopped when dropped.
pub struct Observer {
    record: Arc<Mutex<Record>>,
    tasks: Vec<JoinHandle<()>>,
}

fn pod_version(pod: &Pod, exists: bool) -> PodVersion {
    let status = pod.status.as_ref();
    let container = status.and_then(|s| s.container_statuses.as_ref()).and_then(|c| c.first());
    PodVersion {
        at: Instant::now(),
        name: pod.name_any(),
        uid: pod.uid().unwrap_or_default(),
        exists,
        ready: status
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True")),
        revision: pod.labels().get("controller-revision-hash").cloned(),
        terminating: pod.metadata.deletion_timestamp.is_some(),
        restarts: container.map_or(0, |c| c.restart_count),
        pid: container
            .and_then(|c| c.container_id.as_deref())
            .and_then(|id| id.strip_prefix("local://"))
            .and_then(|pid| pid.parse().ok()),
    }
}

impl Observer {
    /// Starts watching RegistryCluster `name` in `namespace`, its pods and
    /// its members `0..max_members`.
    pub fn start(client: kube::Client, namespace: &str, name: &str, shared: Shared, max_members: i32) -> Observer {
        let record = Arc::new(Mutex::new(Record::default()));
        let mut tasks = Vec::new();

        let rcs = Api::<RegistryCluster>::namespaced(client.clone(), namespace);
        let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
        tasks.push(watch_into(rcs, config, record.clone(), |r, rc, exists| {
            let (generation, status) = if exists { (rc.metadata.generation, rc.status) } else { (None, None) };
            r.rc.push(RcVersion { at: Instant::now(), generation, status });
        }));
        let pods = Api::<Pod>::namespaced(client, namespace);
        let config = watcher::Config::default().labels(&format!("app.kubernetes.io/instance={name}"));
        tasks.push(watch_into(pods, config, record.clone(), |r, pod, exists| r.pods.push(pod_version(&pod, exists))));

        let members: Vec<String> =
            (0..max_members).map(|i| format!("{name}-{i}.{name}-headless.{namespace}.svc:8848")).collect();
        tasks.push(tokio::spawn(sample_members(record.clone(), shared, members)));
        Observer { record, tasks }
    }

    /// Reads the record.
    pub fn with<T>(&self, f: impl FnOnce(&Record) -> T) -> T {
        let record = self.record.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&record)
    }

    /// The RegistryCluster versions seen since `since`.
    pub fn rc_since(&self, since: Instant) -> Vec<RcVersion> {
        self.with(|r| r.rc.iter().filter(|v| v.at >= since).cloned().collect())
    }

    /// The latest version of every pod that exists now (by the watch).
    pub fn pods_now(&self) -> BTreeMap<String, PodVersion> {
        self.with(|r| {
            let mut latest = BTreeMap::new();
            for v in &r.pods {
                latest.insert(v.name.clone(), v.clone());
            }
            latest.retain(|_, v| v.exists);
            latest
        })
    }

    /// The latest answer of member `ordinal`, if it answered last time.
    pub fn member_now(&self, ordinal: i32) -> Option<Value> {
        self.with(|r| r.members.iter().rev().find(|s| s.ordinal == ordinal).and_then(|s| s.status.clone()))
    }

    /// Adds a mark to the history.
    pub fn mark(&self, what: String) {
        if let Ok(mut r) = self.record.lock() {
            r.marks.push((Instant::now(), what));
        }
    }

    /// The gaps recorded so far.
    pub fn gaps(&self) -> Vec<Gap> {
        self.with(|r| r.gaps.clone())
    }

    /// The record as text, one line per RegistryCluster version and pod
    /// change, with seconds since `start`: what a reader of a failure needs.
    pub fn history(&self, start: Instant) -> String {
        self.with(|r| {
            let at = |t: Instant| t.saturating_duration_since(start).as_secs_f64();
            let mut lines: Vec<(f64, String)> = Vec::new();
            for v in &r.rc {
                let conditions: Vec<String> = v
                    .status
                    .iter()
                    .flat_map(|s| &s.conditions)
                    .map(|c| {
                        format!("{}={}({}) g{:?}: {}", c.type_, c.status, c.reason, c.observed_generation, c.message)
                    })
                    .collect();
                lines.push((at(v.at), format!("rc generation {:?}\n    {}", v.generation, conditions.join("\n    "))));
            }
            for p in &r.pods {
                lines.push((
                    at(p.at),
                    format!(
                        "pod {} uid {} exists {} ready {} terminating {} revision {:?} restarts {}",
                        p.name,
                        &p.uid[..p.uid.len().min(8)],
                        p.exists,
                        p.ready,
                        p.terminating,
                        p.revision,
                        p.restarts
                    ),
                ));
            }
            for (t, m) in &r.marks {
                lines.push((at(*t), format!("== {m}")));
            }
            lines.sort_by(|a, b| a.0.total_cmp(&b.0));
            lines.into_iter().map(|(t, l)| format!("{t:8.2} {l}\n")).collect()
        })
    }
}

/// Watches `api` and hands every object it delivers to `keep` with the
/// record (`exists` false for a deletion), until the task is aborted.
fn watch_into<K>(
    api: Api<K>,
    config: watcher::Config,
    record: Arc<Mutex<Record>>,
    keep: fn(&mut Record, K, bool),
) -> JoinHandle<()>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    tokio::spawn(async move {
        let mut stream = watcher::watcher(api, config).default_backoff().boxed();
        while let Some(event) = stream.next().await {
            let (object, exists) = match event {
                Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o)) => (o, true),
                Ok(watcher::Event::Delete(o)) => (o, false),
                _ => continue,
            };
            if let Ok(mut r) = record.lock() {
                keep(&mut r, object, exists);
            }
        }
    })
}

impl Drop for Observer {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Whether a status document says the member serves.
pub fn says_ready(status: &Value) -> bool {
    status["ready"] == true
}

/// The `ip:port`s of `service` a member answers.
pub async fn member_instances(http: &reqwest::Client, member: &str, service: &str) -> Option<BTreeSet<String>> {
    let url = format!("http://{member}/nacos/v1/ns/instance/list");
    let list: Value = http.get(url).query(&[("serviceName", service)]).send().await.ok()?.json().await.ok()?;
    let hosts = list["hosts"].as_array()?;
    Some(hosts.iter().map(|h| format!("{}:{}", h["ip"].as_str().unwrap_or(""), h["port"])).collect())
}

/// Asks every member for its status every [`SAMPLE_EVERY`], publishes the
/// serving ones to the workload, and every second sample looks for live
/// clients' instances missing on a serving member.
async fn sample_members(record: Arc<Mutex<Record>>, shared: Shared, members: Vec<String>) {
    let http = reqwest::Client::builder().timeout(Duration::from_secs(1)).build().unwrap_or_default();
    let lists = http_client();
    let mut missing: HashMap<(String, String), (Instant, String, bool)> = HashMap::new();
    let mut round = 0u64;
    loop {
        tokio::time::sleep(SAMPLE_EVERY).await;
        round += 1;
        let exists: BTreeSet<String> = {
            let r = record.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            let mut latest: BTreeMap<&str, bool> = BTreeMap::new();
            for v in &r.pods {
                latest.insert(v.name.as_str(), v.exists);
            }
            latest.into_iter().filter(|(_, e)| *e).map(|(n, _)| n.to_owned()).collect()
        };
        let asked = members.iter().enumerate().filter(|(_, m)| {
            let pod = m.split('.').next().unwrap_or_default();
            exists.contains(pod)
        });
        let answers = futures::future::join_all(asked.map(|(i, m)| {
            let http = http.clone();
            async move {
                let status =
                    async { http.get(format!("http://{m}/roster/v1/status")).send().await?.json().await }.await.ok();
                (i as i32, m.clone(), status)
            }
        }))
        .await;
        let now = Instant::now();
        let serving: Vec<String> =
            answers.iter().filter(|(_, _, s)| s.as_ref().is_some_and(says_ready)).map(|(_, m, _)| m.clone()).collect();
        if let Ok(mut s) = shared.serving.lock() {
            s.clone_from(&serving);
        }
        if let Ok(mut r) = record.lock() {
            for (ordinal, _, status) in &answers {
                r.members.push(MemberSample { at: now, ordinal: *ordinal, status: status.clone() });
            }
        }
        if !round.is_multiple_of(2) {
            continue;
        }
        let expected: Vec<(String, String)> = {
            let model = shared.model();
            let before = Instant::now().checked_sub(SYNC_GRACE);
            [GRPC_SERVICE, HTTP_SERVICE, HTTP_SERVICE_ALSO]
                .iter()
                .flat_map(|s| model.expected_since(s, before).into_iter().map(|a| ((*s).to_owned(), a)))
                .collect()
        };
        let mut seen_now: BTreeSet<(String, String)> = BTreeSet::new();
        for member in &serving {
            for service in [GRPC_SERVICE, HTTP_SERVICE, HTTP_SERVICE_ALSO] {
                let Some(held) = member_instances(&lists, member, service).await else { continue };
                for (s, address) in &expected {
                    let key = (member.clone(), format!("{s} {address}"));
                    if s == service && !held.contains(address) {
                        missing.entry(key.clone()).or_insert_with(|| (Instant::now(), shared.step(), false));
                        seen_now.insert(key);
                    }
                }
            }
        }
        // Forget what is no longer missing (present again, the client gone,
        // or the member no longer serving); report, once, what has been
        // missing for longer than the bound.
        missing.retain(|key, _| seen_now.contains(key));
        let mut gaps = Vec::new();
        for ((member, instance), (since, step, reported)) in &mut missing {
            let missing_for = since.elapsed();
            if missing_for > GAP_BOUND && !*reported {
                *reported = true;
                gaps.push(Gap { step: step.clone(), member: member.clone(), instance: instance.clone(), missing_for });
            }
        }
        if !gaps.is_empty() {
            if let Ok(mut r) = record.lock() {
                r.gaps.extend(gaps);
            }
        }
    }
}
