//! Kubernetes Events: one per step, each with its own message.
//!
//! [`planned_events`] decides, without I/O, what a reconcile announces: the
//! scaling step it took, the pod a roll restarted, a new leader, a snapshot
//! loaded by every member, and flips of `Available`, `Progressing` and
//! `Degraded`. Every Event of a different step carries a different note
//! (which members, from what to what), so `kubectl describe` and
//! `kubectl get events` show each step with its own message.
//!
//! [`EventRecorder`] publishes them (`events.k8s.io/v1`). kube-runtime's
//! recorder folds every Event of one reason into one series without
//! comparing the note, so a three-pod roll showed as "restarting demo-2
//! (count 3)"; ours folds only repeats of the very same Event (same
//! reason, action, object and note) into a series, as the Kubernetes Event
//! API intends.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::{Event as KubeEvent, EventSeries};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::events::{Event, EventType};
use kube::{Client, ResourceExt};
use roster_crds::{
    find_condition, RegistryClusterStatus, CONDITION_AVAILABLE, CONDITION_DEGRADED, CONDITION_PROGRESSING,
    CONDITION_SNAPSHOT_BOOTSTRAPPED, STATUS_TRUE,
};

use tracing::debug;

use crate::scaling::{ScaleStep, WaitReason};
use crate::Result;

/// How long a published Event is remembered for folding its repeats (what
/// client-go and kube-runtime use).
const SERIES_WINDOW: Duration = Duration::from_secs(6 * 60);

/// What makes two Events the same one: everything but the time.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    type_: &'static str,
    reason: String,
    action: String,
    note: Option<String>,
    regarding: (Option<String>, Option<String>, Option<String>),
}

#[derive(Debug, Clone)]
struct Published {
    event: KubeEvent,
    count: i32,
    at: Instant,
}

/// Publishes [`Event`]s regarding an object, folding exact repeats into
/// an Event series.
pub struct EventRecorder {
    client: Client,
    controller: String,
    instance: String,
    published: Mutex<HashMap<Key, Published>>,
}

fn type_name(t: EventType) -> &'static str {
    match t {
        EventType::Normal => "Normal",
        EventType::Warning => "Warning",
    }
}

impl EventRecorder {
    /// A recorder reporting as `controller` (the instance is the host name,
    /// or the controller name without one).
    pub fn new(client: Client, controller: &str) -> EventRecorder {
        let instance =
            std::env::var("POD_NAME").or_else(|_| std::env::var("HOSTNAME")).unwrap_or_else(|_| controller.to_owned());
        EventRecorder { client, controller: controller.to_owned(), instance, published: Mutex::default() }
    }

    /// Publishes `event` regarding `regarding`: a new Event, or, when the
    /// same one was published within the last minutes, the next count of
    /// its series.
    pub async fn publish(&self, event: &Event, regarding: &ObjectReference) -> Result<()> {
        let key = Key {
            type_: type_name(event.type_),
            reason: event.reason.clone(),
            action: event.action.clone(),
            note: event.note.clone(),
            regarding: (regarding.namespace.clone(), regarding.name.clone(), regarding.uid.clone()),
        };
        let namespace = regarding.namespace.clone().unwrap_or_else(|| "default".to_owned());
        let api = Api::<KubeEvent>::namespaced(self.client.clone(), &namespace);
        let now = Timestamp::now();
        let repeat = {
            let mut published = self.published.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            published.retain(|_, p| p.at.elapsed() < SERIES_WINDOW);
            published.get(&key).cloned()
        };
        let (event, count) = match repeat {
            Some(previous) => {
                let count = previous.count + 1;
                let mut series = previous.event.clone();
                series.series = Some(EventSeries { count, last_observed_time: MicroTime(now) });
                api.patch(&series.name_any(), &PatchParams::default(), &Patch::Merge(&series)).await?;
                (series, count)
            }
            None => {
                let new = self.event(event, regarding, &namespace, now);
                api.create(&PostParams::default(), &new).await?;
                (new, 1)
            }
        };
        debug!(reason = %key.reason, note = ?key.note, count, "recorded an Event");
        let mut published = self.published.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        published.insert(key, Published { event, count, at: Instant::now() });
        Ok(())
    }

    fn event(&self, event: &Event, regarding: &ObjectReference, namespace: &str, now: Timestamp) -> KubeEvent {
        let object = regarding.name.clone().unwrap_or_else(|| self.controller.clone());
        KubeEvent {
            metadata: ObjectMeta {
                name: Some(format!("{object}.{:x}", now.as_nanosecond())),
                namespace: Some(namespace.to_owned()),
                ..ObjectMeta::default()
            },
            action: Some(event.action.clone()),
            reason: Some(event.reason.clone()),
            note: event.note.clone(),
            type_: Some(type_name(event.type_).to_owned()),
            event_time: Some(MicroTime(now)),
            regarding: Some(regarding.clone()),
            related: event.secondary.clone(),
            reporting_controller: Some(self.controller.clone()),
            reporting_instance: Some(self.instance.clone()),
            ..KubeEvent::default()
        }
    }
}

/// A Normal Event.
pub fn normal(reason: &str, action: &str, note: String) -> Event {
    Event { type_: EventType::Normal, reason: reason.into(), note: Some(note), action: action.into(), secondary: None }
}

fn warning(reason: &str, action: &str, note: String) -> Event {
    Event { type_: EventType::Warning, reason: reason.into(), note: Some(note), action: action.into(), secondary: None }
}

fn condition_status<'a>(s: Option<&'a RegistryClusterStatus>, type_: &str) -> Option<&'a str> {
    s.and_then(|s| find_condition(&s.conditions, type_)).map(|c| c.status.as_str())
}

fn message(s: &RegistryClusterStatus, type_: &str) -> String {
    find_condition(&s.conditions, type_).map(|c| c.message.clone()).unwrap_or_default()
}

fn short(member: &str) -> &str {
    member.split('.').next().unwrap_or(member)
}

/// The Events a reconcile records, from the step it took, the pod a roll
/// restarted (its description) and how the status changed. Pure, so what
/// gets announced is tested without a cluster.
pub fn planned_events(
    previous: Option<&RegistryClusterStatus>,
    new: &RegistryClusterStatus,
    step: &ScaleStep,
    restarted: Option<&str>,
) -> Vec<Event> {
    let mut events = Vec::new();
    if let Some(restart) = restarted {
        events.push(normal("RollingUpdate", "RestartMember", restart.to_owned()));
    }
    match step {
        ScaleStep::Create { replicas } => events.push(normal(
            "Creating",
            "CreateStatefulSet",
            format!("Created the StatefulSet with {replicas} members"),
        )),
        ScaleStep::ScaleUp { from, to } => events.push(normal(
            "ScalingUp",
            "ScaleStatefulSet",
            format!("Scaling up from {from} to {to} members: published the new members and raised the StatefulSet"),
        )),
        ScaleStep::ScaleDown { from, to } => events.push(normal(
            "ScalingDown",
            "ScaleStatefulSet",
            format!(
                "Raft no longer counts the members from ordinal {to} up; lowered the StatefulSet from {from} to {to}"
            ),
        )),
        ScaleStep::WaitForRaftRemoval { replicas, desired, reason } => {
            let already_waiting = previous
                .and_then(|s| find_condition(&s.conditions, CONDITION_PROGRESSING))
                .is_some_and(|c| c.reason == "WaitingForRaftRemoval");
            if !already_waiting {
                let why = match reason {
                    WaitReason::StillCounted(m) => {
                        format!("Raft still counts {}", m.iter().map(|m| short(m)).collect::<Vec<_>>().join(", "))
                    }
                    WaitReason::NoStayingMemberAnswered => "no staying member answered".to_owned(),
                };
                events.push(normal(
                    "WaitingForRaftRemoval",
                    "ScaleDown",
                    format!(
                        "Scaling down from {replicas} to {desired}: removed the highest members from the server list; \
                         the StatefulSet stays at {replicas} until Raft lets them go ({why})"
                    ),
                ));
            }
        }
        ScaleStep::Steady { .. } => {}
    }
    let prev_leader = previous.and_then(|s| s.leader.as_deref());
    if let Some(leader) = new.leader.as_deref() {
        if prev_leader != Some(leader) {
            let note = match prev_leader {
                Some(old) => format!("Raft leader changed from {} to {}", short(old), short(leader)),
                None => format!("Raft leader is {}", short(leader)),
            };
            events.push(normal("LeaderChanged", "ObserveLeader", note));
        }
    }
    let is_true = |s: Option<&RegistryClusterStatus>, t: &str| condition_status(s, t) == Some(STATUS_TRUE);
    let became_true = |t: &str| is_true(Some(new), t) && !is_true(previous, t);
    let became_false = |t: &str| !is_true(Some(new), t) && is_true(previous, t);
    if became_true(CONDITION_SNAPSHOT_BOOTSTRAPPED) {
        let sources: Vec<String> = new
            .members
            .iter()
            .map(|m| format!("{} from {}", m.name, m.snapshot_source.as_deref().map_or("nobody", short)))
            .collect();
        events.push(normal(
            "SnapshotBootstrapped",
            "ObserveDistro",
            format!("Every member loaded its Distro snapshot: {}", sources.join(", ")),
        ));
    }
    if became_true(CONDITION_AVAILABLE) {
        events.push(normal(
            "Available",
            "ObserveAvailability",
            format!("The cluster is available: {}", message(new, CONDITION_AVAILABLE)),
        ));
    }
    if became_false(CONDITION_AVAILABLE) {
        events.push(warning(
            "Unavailable",
            "ObserveAvailability",
            format!("The cluster is no longer available: {}", message(new, CONDITION_AVAILABLE)),
        ));
    }
    let stable = find_condition(&new.conditions, CONDITION_PROGRESSING).is_some_and(|c| c.reason == "Stable");
    if is_true(previous, CONDITION_PROGRESSING) && stable {
        let generation = new.observed_generation.map_or_else(String::new, |g| format!(" (generation {g})"));
        events.push(normal(
            "ChangeCarriedOut",
            "ObserveProgress",
            format!(
                "Every member runs the current template and serves{generation}: {}",
                message(new, CONDITION_PROGRESSING)
            ),
        ));
    }
    if became_true(CONDITION_DEGRADED) {
        events.push(warning("Degraded", "ObserveHealth", format!("Degraded: {}", message(new, CONDITION_DEGRADED))));
    }
    if became_false(CONDITION_DEGRADED) {
        events.push(normal(
            "Recovered",
            "ObserveHealth",
            format!("No longer degraded: {}", message(new, CONDITION_DEGRADED)),
        ));
    }
    events
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{test_context, ApiServerVerifier};
    use crate::node_status::Endpoints;
    use http::Method;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
    use roster_crds::{MemberStatus, STATUS_FALSE};

    fn regarding() -> ObjectReference {
        ObjectReference {
            kind: Some("RegistryCluster".into()),
            name: Some("demo".into()),
            namespace: Some("ns".into()),
            uid: Some("uid-1".into()),
            ..ObjectReference::default()
        }
    }

    /// The next call, asserting it creates (POST) or continues the series
    /// of (PATCH) an Event; returns (method, body).
    async fn next_event(api: &mut ApiServerVerifier) -> (Method, serde_json::Value) {
        let call = api.next().await;
        assert!(call.path.starts_with("/apis/events.k8s.io/v1/namespaces/ns/events"), "{}", call.path);
        let seen = (call.method.clone(), call.body.clone());
        call.echo();
        seen
    }

    #[tokio::test]
    async fn each_step_gets_its_own_event_and_only_exact_repeats_fold() {
        let (ctx, mut api, _lists) = test_context(Endpoints::Dns);
        let recorder = tokio::spawn(async move {
            let r = &ctx.recorder;
            for note in ["restarting demo-2", "restarting demo-1", "restarting demo-0", "restarting demo-0"] {
                r.publish(&normal("RollingUpdate", "RestartMember", note.into()), &regarding()).await?;
            }
            Ok::<_, crate::Error>(())
        });
        for expected in ["restarting demo-2", "restarting demo-1", "restarting demo-0"] {
            let (method, body) = next_event(&mut api).await;
            assert_eq!(method, Method::POST, "a step with a new message is a new Event");
            assert_eq!(body["note"], expected);
            assert_eq!(body["reason"], "RollingUpdate");
            assert_eq!(body["regarding"]["name"], "demo");
            assert_eq!(body["reportingController"], "roster-operator");
        }
        let (method, body) = next_event(&mut api).await;
        assert_eq!(method, Method::PATCH, "the very same Event again continues its series");
        assert_eq!(body["note"], "restarting demo-0");
        assert_eq!(body["series"]["count"], 2);
        recorder.await.expect("task").expect("published");
    }

    fn status(conditions: &[(&str, &str, &str)], leader: Option<&str>) -> RegistryClusterStatus {
        let at = Time(Timestamp::UNIX_EPOCH);
        RegistryClusterStatus {
            leader: leader.map(str::to_owned),
            observed_generation: Some(3),
            members: vec![MemberStatus {
                name: "demo-0".into(),
                snapshot_source: Some("demo-1.demo-headless.ns.svc:8848".into()),
                ..MemberStatus::default()
            }],
            conditions: conditions
                .iter()
                .map(|(t, s, r)| Condition {
                    type_: (*t).into(),
                    status: (*s).into(),
                    reason: (*r).into(),
                    message: format!("{t} is {s}"),
                    observed_generation: Some(3),
                    last_transition_time: at.clone(),
                })
                .collect(),
            ..RegistryClusterStatus::default()
        }
    }

    fn reasons(events: &[Event]) -> Vec<&str> {
        events.iter().map(|e| e.reason.as_str()).collect()
    }

    #[test]
    fn scale_down_steps_carry_their_own_numbers() {
        let s = status(&[], None);
        let a = planned_events(Some(&s), &s, &ScaleStep::ScaleDown { from: 5, to: 4 }, None);
        let b = planned_events(Some(&s), &s, &ScaleStep::ScaleDown { from: 4, to: 3 }, None);
        assert_eq!((reasons(&a), reasons(&b)), (vec!["ScalingDown"], vec!["ScalingDown"]));
        assert_ne!(a[0].note, b[0].note, "5 to 4 and 4 to 3 are two Events");
        assert!(b[0].note.as_deref().is_some_and(|n| n.contains("from 4 to 3")));
    }

    #[test]
    fn condition_flips_are_announced() {
        let before = status(
            &[
                (CONDITION_AVAILABLE, STATUS_FALSE, "NotEnoughServingMembers"),
                (CONDITION_PROGRESSING, STATUS_TRUE, "WaitingForMembers"),
                (CONDITION_DEGRADED, STATUS_FALSE, "AsPlanned"),
                (CONDITION_SNAPSHOT_BOOTSTRAPPED, STATUS_FALSE, "SnapshotLoading"),
            ],
            None,
        );
        let after = status(
            &[
                (CONDITION_AVAILABLE, STATUS_TRUE, "Serving"),
                (CONDITION_PROGRESSING, STATUS_FALSE, "Stable"),
                (CONDITION_DEGRADED, STATUS_FALSE, "Healthy"),
                (CONDITION_SNAPSHOT_BOOTSTRAPPED, STATUS_TRUE, "AllMembersLoaded"),
            ],
            Some("demo-0.demo-headless.ns.svc:8848"),
        );
        let events = planned_events(Some(&before), &after, &ScaleStep::Steady { replicas: 1 }, None);
        assert_eq!(reasons(&events), ["LeaderChanged", "SnapshotBootstrapped", "Available", "ChangeCarriedOut"]);
        assert_eq!(
            events[1].note.as_deref(),
            Some("Every member loaded its Distro snapshot: demo-0 from demo-1"),
            "the note names who loaded from whom"
        );
        assert!(events[3].note.as_deref().is_some_and(|n| n.contains("(generation 3)")));

        let degraded = status(
            &[
                (CONDITION_AVAILABLE, STATUS_TRUE, "Serving"),
                (CONDITION_PROGRESSING, STATUS_FALSE, "Stable"),
                (CONDITION_DEGRADED, STATUS_TRUE, "MembersNotReady"),
                (CONDITION_SNAPSHOT_BOOTSTRAPPED, STATUS_TRUE, "AllMembersLoaded"),
            ],
            Some("demo-0.demo-headless.ns.svc:8848"),
        );
        let events = planned_events(Some(&after), &degraded, &ScaleStep::Steady { replicas: 1 }, None);
        assert_eq!(reasons(&events), ["Degraded"]);
        assert_eq!(events[0].type_, EventType::Warning);
        let events = planned_events(Some(&degraded), &after, &ScaleStep::Steady { replicas: 1 }, None);
        assert_eq!(reasons(&events), ["Recovered"]);
        let restarted =
            planned_events(Some(&after), &after, &ScaleStep::Steady { replicas: 1 }, Some("restarting demo-0"));
        assert_eq!(reasons(&restarted), ["RollingUpdate"]);
    }
}
