//! The reconciler against a mocked Kubernetes API (every call asserted) and
//! fake members serving their status over real HTTP.

use super::*;
use crate::desired::test_support::cluster;
use crate::desired::{self, Target};
use crate::events::planned_events;
use crate::fixtures::{endpoints_for, test_context, ApiServerVerifier, FakeMember};
use crate::node_status::Endpoints;
use crate::scaling::ScaleStep;
use crate::server_lists::ListSync;
use crate::Result;
use http::{Method, StatusCode};
use roster_crds::{find_condition, RegistryClusterStatus, CONDITION_AVAILABLE, CONDITION_PROGRESSING};
use roster_crds::{CONDITION_DEGRADED, CONDITION_MEMBERSHIP_CONVERGED, CONDITION_RAFT_QUORUM};
use serde_json::{json, Value};

const NS: &str = "ns";
const CM: &str = "/api/v1/namespaces/ns/configmaps/demo-config";
const HEADLESS: &str = "/api/v1/namespaces/ns/services/demo-headless";
const CLIENT: &str = "/api/v1/namespaces/ns/services/demo";
const PDB: &str = "/apis/policy/v1/namespaces/ns/poddisruptionbudgets/demo";
const STS: &str = "/apis/apps/v1/namespaces/ns/statefulsets/demo";
const SECRET: &str = "/api/v1/namespaces/ns/secrets/demo-cluster-secret";
const SECRETS: &str = "/api/v1/namespaces/ns/secrets";
const STATUS: &str = "/apis/roster.dev/v1alpha1/namespaces/ns/registryclusters/demo/status";
const PODS: &str = "/api/v1/namespaces/ns/pods";
const EVENTS: &str = "/apis/events.k8s.io/v1/namespaces/ns/events";

fn addr(i: i32) -> String {
    names::member_address("demo", NS, i)
}

/// A member's status document: ready, Distro loaded, Raft with `voters`, led by 0.
fn member_doc(i: i32, voters: &[i32], listed: i32) -> Value {
    json!({
        "member": addr(i), "version": "0.1.0", "lookup": "address-server", "ready": true,
        "members": (0..listed).map(|j| json!({"address": addr(j), "state": "UP"})).collect::<Vec<_>>(),
        "distro": {"initialized": true, "snapshotSource": addr(0)},
        "raft": {"role": if i == 0 { "Leader" } else { "Follower" }, "term": 2, "leader": addr(0),
                 "voters": voters.iter().map(|&j| addr(j)).collect::<Vec<_>>(), "learners": [],
                 "appliedIndex": 42}
    })
}

/// Members `0..n`, each serving [`member_doc`] with `voters` and 3 listed.
async fn fake_members(n: i32, voters: &[i32]) -> Vec<FakeMember> {
    let mut fakes = Vec::new();
    for i in 0..n {
        fakes.push(FakeMember::start(member_doc(i, voters, 3)).await);
    }
    fakes
}

/// Each fake under its member address.
fn pairs(fakes: &[FakeMember]) -> Vec<(String, &FakeMember)> {
    fakes.iter().enumerate().map(|(i, f)| (addr(i as i32), f)).collect()
}

/// The StatefulSet as the API server would return it, with `replicas` pods all ready.
fn existing_statefulset(rc: &RegistryCluster, ctx: &Context, replicas: i32) -> Value {
    let t = Target::new(rc).expect("target");
    let mut sts = serde_json::to_value(desired::statefulset::statefulset(&t, &ctx.settings, replicas)).expect("json");
    sts["metadata"]["generation"] = json!(1);
    sts["status"] = json!({"replicas": replicas, "readyReplicas": replicas, "updatedReplicas": replicas,
                           "currentRevision": "r1", "updateRevision": "r1", "observedGeneration": 1});
    sts
}

/// Answers the four applies that do not depend on observations.
async fn expect_fixed_objects(api: &mut ApiServerVerifier) -> Vec<Value> {
    let mut bodies = Vec::new();
    for path in [CM, HEADLESS, CLIENT, PDB] {
        bodies.push(api.expect_apply(path).await);
    }
    expect_existing_secret(api).await;
    bodies
}

/// Answers the cluster Secret's read with an existing Secret: nothing else
/// happens to it.
async fn expect_existing_secret(api: &mut ApiServerVerifier) {
    let call = api.expect_get(SECRET).await;
    call.respond(
        StatusCode::OK,
        &json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "demo-cluster-secret", "namespace": NS},
                "data": {"cluster-secret": "c2VjcmV0"}}),
    );
}

/// Answers the status patch with the object plus the patched status, and returns the status.
async fn expect_status_patch(api: &mut ApiServerVerifier, rc: &RegistryCluster) -> RegistryClusterStatus {
    let call = api.next().await;
    call.assert_apply(STATUS);
    assert_eq!(call.body["apiVersion"], "roster.dev/v1alpha1");
    assert_eq!(call.body["kind"], "RegistryCluster");
    let status: RegistryClusterStatus =
        serde_json::from_value(call.body["status"].clone()).expect("the patch carries a valid status");
    let mut obj = serde_json::to_value(rc).expect("json");
    obj["status"] = call.body["status"].clone();
    call.respond(StatusCode::OK, &obj);
    status
}

/// `n` pods, all Ready on revision `r1` (the one [`existing_statefulset`] names).
fn ready_pods(n: usize) -> Vec<(&'static str, bool)> {
    vec![("r1", true); n]
}

/// Answers the member pod list with `pods` (revision, Ready) for ordinals `0..`.
async fn expect_pods(api: &mut ApiServerVerifier, pods: &[(&str, bool)]) {
    let list = api.expect_get(PODS).await;
    assert!(list.query.contains("labelSelector="), "{}", list.query);
    list.respond(StatusCode::OK, &pod_list(pods));
}

/// Answers the lookup of the StatefulSet's `FailedCreate` Events (made
/// while a member pod is missing) with `items`.
async fn expect_failed_create_lookup(api: &mut ApiServerVerifier, items: Vec<Value>) {
    let call = api.expect_get(EVENTS).await;
    assert!(
        call.query.contains("reason%3DFailedCreate") || call.query.contains("reason=FailedCreate"),
        "{}",
        call.query
    );
    assert!(call.query.contains("regarding.kind%3DStatefulSet") || call.query.contains("regarding.kind=StatefulSet"));
    call.respond(
        StatusCode::OK,
        &json!({"apiVersion": "events.k8s.io/v1", "kind": "EventList", "metadata": {}, "items": items}),
    );
}

fn cond<'a>(s: &'a RegistryClusterStatus, t: &str) -> (&'a str, &'a str, &'a str) {
    let c = find_condition(&s.conditions, t).unwrap_or_else(|| panic!("{t} missing"));
    (c.status.as_str(), c.reason.as_str(), c.message.as_str())
}

#[tokio::test]
async fn a_new_cluster_gets_owned_objects_a_status_and_an_event() {
    let (ctx, mut api, lists) = test_context(Endpoints::Dns);
    let rc = cluster(3);
    let reconciler = tokio::spawn(reconcile(Arc::new(rc.clone()), ctx.clone()));

    let bodies = expect_fixed_objects(&mut api).await;
    for body in &bodies {
        let owner = &body["metadata"]["ownerReferences"][0];
        assert_eq!(owner["kind"], "RegistryCluster", "{body}");
        assert_eq!(owner["name"], "demo");
        assert_eq!(owner["uid"], "uid-1");
        assert_eq!(owner["controller"], true);
        assert_eq!(body["metadata"]["namespace"], NS);
    }
    assert_eq!(bodies[0]["kind"], "ConfigMap");
    assert_eq!(bodies[0]["data"]["ROSTER_DATA_DIR"], "/var/lib/roster");
    assert_eq!(bodies[1]["spec"]["clusterIP"], "None");
    assert_eq!(bodies[1]["spec"]["publishNotReadyAddresses"], true);
    assert_eq!(bodies[2]["spec"]["type"], "ClusterIP");
    assert_eq!(bodies[3]["kind"], "PodDisruptionBudget");
    assert_eq!(bodies[3]["spec"]["maxUnavailable"], 1);

    api.expect_get(STS).await.not_found();
    let sts = api.expect_apply(STS).await;
    assert_eq!(sts["spec"]["replicas"], 3);
    assert_eq!(sts["spec"]["podManagementPolicy"], "Parallel");
    assert_eq!(sts["spec"]["serviceName"], "demo-headless");
    let env = &sts["spec"]["template"]["spec"]["containers"][0]["env"];
    assert!(env.as_array().expect("env").iter().any(|e| e["name"] == "ROSTER_ADDRESS_SERVER_URL"
        && e["value"] == "http://roster-operator.roster-system.svc:8080/v1/clusters/ns/demo/serverlist"));
    assert_eq!(lists.get(NS, "demo"), Some((0..3).map(addr).collect()), "the list is published");
    expect_failed_create_lookup(&mut api, vec![]).await;

    let status = expect_status_patch(&mut api, &rc).await;
    assert_eq!(status.observed_generation, Some(1));
    assert_eq!(cond(&status, CONDITION_PROGRESSING).0, "True");
    assert_eq!(cond(&status, CONDITION_PROGRESSING).1, "ScalingUp");
    assert_eq!(cond(&status, CONDITION_AVAILABLE).0, "False");
    assert_eq!(cond(&status, CONDITION_RAFT_QUORUM).1, "NoMemberReachable");
    assert_eq!(status.conditions.len(), 6);
    assert!(status.conditions.iter().all(|c| c.observed_generation == Some(1)));
    assert_eq!(status.members.len(), 3);

    api.expect_event(NS, "Creating").await;
    let action = finish(reconciler).await;
    assert_eq!(action, Action::requeue(REQUEUE_ACTIVE));
    api.expect_silence(Duration::from_millis(100)).await;
}

#[tokio::test]
async fn scale_down_shrinks_the_list_first_and_the_statefulset_only_after_raft_let_go() {
    let all = [0, 1, 2, 3, 4];
    let fakes = fake_members(5, &all).await;
    let (ctx, mut api, lists) = test_context(endpoints_for(&pairs(&fakes)));
    // The user scaled 5 -> 3; the StatefulSet still runs 5.
    let rc = cluster(3);

    // Reconcile 1: Raft still counts members 3 and 4.
    let reconciler = tokio::spawn(reconcile(Arc::new(rc.clone()), ctx.clone()));
    expect_fixed_objects(&mut api).await;
    let get = api.expect_get(STS).await;
    assert_eq!(
        lists.get(NS, "demo"),
        Some((0..3).map(addr).collect()),
        "the departing members left the server list before the StatefulSet was read or changed"
    );
    get.respond(StatusCode::OK, &existing_statefulset(&rc, &ctx, 5));
    expect_pods(&mut api, &ready_pods(5)).await;
    let call = api.next().await;
    call.assert_apply(STS);
    assert_eq!(call.body["spec"]["replicas"], 5, "the StatefulSet keeps all pods while Raft counts them");
    let mut answer = existing_statefulset(&rc, &ctx, 5);
    answer["spec"] = call.body["spec"].clone();
    call.respond(StatusCode::OK, &answer);
    let first = expect_status_patch(&mut api, &rc).await;
    let (status, reason, message) = cond(&first, CONDITION_PROGRESSING);
    assert_eq!((status, reason), ("True", "WaitingForRaftRemoval"));
    assert!(message.contains("demo-4, demo-3"), "{message}");
    assert_eq!(cond(&first, CONDITION_MEMBERSHIP_CONVERGED).1, "PodsPending");
    assert_eq!(cond(&first, CONDITION_AVAILABLE).0, "True");
    assert_eq!(first.leader.as_deref(), Some(addr(0).as_str()));
    assert_eq!(first.replicas, 5, "five members still joined");
    for reason in ["WaitingForRaftRemoval", "LeaderChanged", "SnapshotBootstrapped", "Available"] {
        api.expect_event(NS, reason).await;
    }
    assert_eq!(finish(reconciler).await, Action::requeue(REQUEUE_ACTIVE));

    // Reconcile 2: Raft removed member 4 only; the StatefulSet may drop just that pod.
    for (i, fake) in fakes.iter().enumerate() {
        fake.set(member_doc(i as i32, &[0, 1, 2, 3], 3));
    }
    let mut rc2 = rc.clone();
    rc2.status = Some(first.clone());
    let reconciler = tokio::spawn(reconcile(Arc::new(rc2.clone()), ctx.clone()));
    expect_fixed_objects(&mut api).await;
    api.expect_get(STS).await.respond(StatusCode::OK, &existing_statefulset(&rc, &ctx, 5));
    expect_pods(&mut api, &ready_pods(5)).await;
    let sts = api.expect_apply(STS).await;
    assert_eq!(sts["spec"]["replicas"], 4, "highest member first");
    let second = expect_status_patch(&mut api, &rc2).await;
    assert_eq!(cond(&second, CONDITION_PROGRESSING).1, "ScalingDown");
    api.expect_event(NS, "ScalingDown").await;
    finish(reconciler).await;

    // Reconcile 3: Raft let member 3 go as well.
    for (i, fake) in fakes.iter().enumerate() {
        fake.set(member_doc(i as i32, &[0, 1, 2], 3));
    }
    let mut rc3 = rc.clone();
    rc3.status = Some(second);
    let reconciler = tokio::spawn(reconcile(Arc::new(rc3.clone()), ctx.clone()));
    expect_fixed_objects(&mut api).await;
    api.expect_get(STS).await.respond(StatusCode::OK, &existing_statefulset(&rc, &ctx, 4));
    expect_pods(&mut api, &ready_pods(4)).await;
    let sts = api.expect_apply(STS).await;
    assert_eq!(sts["spec"]["replicas"], 3);
    expect_status_patch(&mut api, &rc3).await;
    api.expect_event(NS, "ScalingDown").await;
    finish(reconciler).await;
    api.expect_silence(Duration::from_millis(100)).await;
}

#[tokio::test]
async fn a_stable_cluster_reports_available_and_requeues_slowly() {
    let voters = [0, 1, 2];
    let fakes = fake_members(3, &voters).await;
    let (ctx, mut api, _lists) = test_context(endpoints_for(&pairs(&fakes)));
    let rc = cluster(3);
    let reconciler = tokio::spawn(reconcile(Arc::new(rc.clone()), ctx.clone()));
    expect_fixed_objects(&mut api).await;
    api.expect_get(STS).await.respond(StatusCode::OK, &existing_statefulset(&rc, &ctx, 3));
    expect_pods(&mut api, &ready_pods(3)).await;
    let call = api.next().await;
    call.assert_apply(STS);
    assert_eq!(call.body["spec"]["replicas"], 3);
    call.respond(StatusCode::OK, &existing_statefulset(&rc, &ctx, 3));
    let status = expect_status_patch(&mut api, &rc).await;
    assert_eq!(cond(&status, CONDITION_AVAILABLE).0, "True");
    assert_eq!(cond(&status, CONDITION_PROGRESSING).1, "Stable");
    assert_eq!(cond(&status, CONDITION_DEGRADED).1, "Healthy");
    assert_eq!(cond(&status, CONDITION_MEMBERSHIP_CONVERGED).0, "True");
    assert_eq!((status.replicas, status.ready_replicas), (3, 3));
    for reason in ["LeaderChanged", "SnapshotBootstrapped", "Available"] {
        api.expect_event(NS, reason).await;
    }
    assert_eq!(finish(reconciler).await, Action::requeue(REQUEUE_STABLE));
}

#[tokio::test]
async fn api_errors_back_off_and_are_counted() {
    let (ctx, mut api, _lists) = test_context(Endpoints::Dns);
    let rc = Arc::new(cluster(3));
    for expected in [5, 10, 20] {
        let reconciler = tokio::spawn(reconcile(rc.clone(), ctx.clone()));
        let call = api.next().await;
        call.assert_apply(CM);
        call.respond(
            StatusCode::INTERNAL_SERVER_ERROR,
            &json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": "etcd is sad",
                    "reason": "InternalError", "code": 500}),
        );
        let err = outcome(reconciler).await.expect_err("the API error surfaces");
        assert!(matches!(err, Error::Kube(_)), "{err}");
        assert_eq!(error_policy(rc.clone(), &err, ctx.clone()), Action::requeue(Duration::from_secs(expected)));
    }
    let text = ctx.metrics.render();
    assert!(text.contains(r#"roster_operator_reconcile_failures_total{cluster="ns/demo",error="kube"} 3"#), "{text}");
}

#[tokio::test]
async fn a_resource_without_uid_is_refused_before_any_call() {
    let (ctx, mut api, lists) = test_context(Endpoints::Dns);
    let mut rc = cluster(3);
    rc.metadata.uid = None;
    let err = reconcile(Arc::new(rc), ctx).await.expect_err("invalid");
    assert!(matches!(err, Error::InvalidResource(_)));
    assert!(lists.is_empty());
    api.expect_silence(Duration::from_millis(50)).await;
}

#[test]
fn backoff_doubles_up_to_five_minutes() {
    assert_eq!(backoff(1), Duration::from_secs(5));
    assert_eq!(backoff(2), Duration::from_secs(10));
    assert_eq!(backoff(7), Duration::from_secs(300));
    assert_eq!(backoff(u32::MAX), Duration::from_secs(300));
}

#[test]
fn list_sync_follows_applies_deletes_and_relists() {
    let lists = ServerLists::new();
    let mut sync = ListSync::default();
    let mut other = cluster(5);
    other.metadata.name = Some("other".into());
    sync.handle(&lists, watcher::Event::Init);
    sync.handle(&lists, watcher::Event::InitApply(cluster(3)));
    sync.handle(&lists, watcher::Event::InitApply(other.clone()));
    sync.handle(&lists, watcher::Event::InitDone);
    assert_eq!(lists.get(NS, "demo").map(|l| l.len()), Some(3));
    assert_eq!(lists.get(NS, "other").map(|l| l.len()), Some(5));
    sync.handle(&lists, watcher::Event::Apply(cluster(1)));
    assert_eq!(lists.get(NS, "demo"), Some(vec![addr(0)]));
    sync.handle(&lists, watcher::Event::Delete(cluster(1)));
    assert_eq!(lists.get(NS, "demo"), None);
    // "other" is deleted while the watch is down: the re-list drops it.
    sync.handle(&lists, watcher::Event::Apply(cluster(3)));
    sync.handle(&lists, watcher::Event::Init);
    sync.handle(&lists, watcher::Event::InitApply(cluster(3)));
    sync.handle(&lists, watcher::Event::InitDone);
    assert_eq!(lists.get(NS, "other"), None);
    assert_eq!(lists.len(), 1);
}

#[test]
fn leader_changes_are_announced_once() {
    let mut before = RegistryClusterStatus { leader: Some(addr(0)), ..RegistryClusterStatus::default() };
    let after = RegistryClusterStatus { leader: Some(addr(1)), ..RegistryClusterStatus::default() };
    let events = planned_events(Some(&before), &after, &ScaleStep::Steady { replicas: 3 }, None);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].reason, "LeaderChanged");
    assert_eq!(events[0].note.as_deref(), Some("Raft leader changed from demo-0 to demo-1"));
    before.leader = Some(addr(1));
    assert!(planned_events(Some(&before), &after, &ScaleStep::Steady { replicas: 3 }, None).is_empty());
}

/// The StatefulSet after a template change: revision `r2`, `updated` pods on it.
fn rolling_statefulset(rc: &RegistryCluster, ctx: &Context, updated: i32) -> Value {
    let mut sts = existing_statefulset(rc, ctx, 3);
    sts["metadata"]["generation"] = json!(2);
    sts["status"] = json!({"replicas": 3, "readyReplicas": 3, "updatedReplicas": updated,
                           "currentRevision": "r1", "updateRevision": "r2", "observedGeneration": 2});
    sts
}

fn pod_list(pods: &[(&str, bool)]) -> Value {
    let items: Vec<Value> = pods
        .iter()
        .enumerate()
        .map(|(i, (revision, ready))| {
            json!({"apiVersion": "v1", "kind": "Pod",
                   "metadata": {"name": format!("demo-{i}"), "namespace": NS,
                                "labels": {"controller-revision-hash": revision}},
                   "status": {"conditions": [{"type": "Ready", "status": if *ready { "True" } else { "False" }}]}})
        })
        .collect();
    json!({"apiVersion": "v1", "kind": "PodList", "metadata": {"resourceVersion": "7"}, "items": items})
}

/// One reconcile of a rolling cluster up to the StatefulSet apply, with the
/// member pods answered as `pods`.
async fn reconcile_rolling(
    api: &mut ApiServerVerifier,
    rc: &RegistryCluster,
    ctx: &Arc<Context>,
    updated: i32,
    pods: &[(&str, bool)],
) -> tokio::task::JoinHandle<Result<Action>> {
    let reconciler = tokio::spawn(reconcile(Arc::new(rc.clone()), ctx.clone()));
    expect_fixed_objects(api).await;
    api.expect_get(STS).await.respond(StatusCode::OK, &rolling_statefulset(rc, ctx, updated));
    expect_pods(api, pods).await;
    let call = api.next().await;
    call.assert_apply(STS);
    assert_eq!(call.body["spec"]["updateStrategy"]["type"], "OnDelete", "the operator does the rolling");
    call.respond(StatusCode::OK, &rolling_statefulset(rc, ctx, updated));
    reconciler
}

/// The reconcile's outcome, failing the test if it still waits for an API
/// call after 5 s.
async fn outcome(reconciler: tokio::task::JoinHandle<Result<Action>>) -> Result<Action> {
    tokio::time::timeout(Duration::from_secs(5), reconciler)
        .await
        .expect("the reconcile finished without further API calls")
        .expect("task")
}

/// The action of a reconcile that must succeed (see [`outcome`]).
async fn finish(reconciler: tokio::task::JoinHandle<Result<Action>>) -> Action {
    outcome(reconciler).await.expect("reconcile")
}

async fn expect_eviction(api: &mut ApiServerVerifier, pod: &str) {
    let call = api.next().await;
    assert_eq!((&call.method, call.path.as_str()), (&Method::POST, format!("{PODS}/{pod}/eviction").as_str()));
    assert_eq!(call.body["metadata"]["name"], pod);
    call.respond(
        StatusCode::CREATED,
        &json!({"kind": "Status", "apiVersion": "v1", "metadata": {},
                                               "status": "Success", "code": 201}),
    );
}

#[tokio::test]
async fn a_template_change_rolls_one_member_at_a_time_and_the_leader_last() {
    let voters = [0, 1, 2];
    let fakes = fake_members(3, &voters).await;
    let (ctx, mut api, _lists) = test_context(endpoints_for(&pairs(&fakes)));
    let mut rc = cluster(3);

    // Reconcile 1: demo-2 already runs r2; demo-0 leads Raft, so demo-1 goes next.
    let reconciler = reconcile_rolling(&mut api, &rc, &ctx, 1, &[("r1", true), ("r1", true), ("r2", true)]).await;
    expect_eviction(&mut api, "demo-1").await;
    let status = expect_status_patch(&mut api, &rc).await;
    let (state, reason, message) = cond(&status, CONDITION_PROGRESSING);
    assert_eq!((state, reason), ("True", "RollingUpdate"));
    assert_eq!(message, "rolling update: restarting demo-1 (2 of the members still on the old template)");
    let event = api.expect_event(NS, "RollingUpdate").await;
    assert_eq!(event["note"], format!("{message} to revision r2"), "the Event names the revision it rolls to");
    for reason in ["LeaderChanged", "SnapshotBootstrapped", "Available"] {
        api.expect_event(NS, reason).await;
    }
    assert_eq!(finish(reconciler).await, Action::requeue(REQUEUE_ACTIVE));
    rc.status = Some(status);

    // Reconcile 2: the restarted demo-1 is not ready yet; nothing else is touched.
    let mut restarting = member_doc(1, &voters, 3);
    restarting["ready"] = json!(false);
    restarting["distro"]["initialized"] = json!(false);
    fakes[1].set(restarting);
    let reconciler = reconcile_rolling(&mut api, &rc, &ctx, 2, &[("r1", true), ("r2", false), ("r2", true)]).await;
    let status = expect_status_patch(&mut api, &rc).await;
    assert_eq!(
        cond(&status, CONDITION_PROGRESSING).2,
        "rolling update: waiting before the next restart, the restarted demo-1 is not ready yet"
    );
    finish(reconciler).await;
    api.expect_silence(Duration::from_millis(100)).await;
    rc.status = Some(status);

    // Reconcile 3: demo-1 is back; only the leader is left on r1.
    fakes[1].set(member_doc(1, &voters, 3));
    let reconciler = reconcile_rolling(&mut api, &rc, &ctx, 2, &[("r1", true), ("r2", true), ("r2", true)]).await;
    expect_eviction(&mut api, "demo-0").await;
    let status = expect_status_patch(&mut api, &rc).await;
    assert_eq!(
        cond(&status, CONDITION_PROGRESSING).2,
        "rolling update: restarting demo-0, the Raft leader, last (1 of the members still on the old template)"
    );
    api.expect_event(NS, "RollingUpdate").await;
    api.expect_event(NS, "SnapshotBootstrapped").await;
    finish(reconciler).await;
    api.expect_silence(Duration::from_millis(100)).await;
}

#[tokio::test]
async fn an_eviction_the_disruption_budget_refuses_is_a_wait() {
    let voters = [0, 1, 2];
    let fakes = fake_members(3, &voters).await;
    let (ctx, mut api, _lists) = test_context(endpoints_for(&pairs(&fakes)));
    let rc = cluster(3);
    let reconciler = reconcile_rolling(&mut api, &rc, &ctx, 0, &[("r1", true), ("r1", true), ("r1", true)]).await;
    let call = api.next().await;
    assert_eq!(call.path, format!("{PODS}/demo-2/eviction"), "the highest follower first");
    call.respond(
        StatusCode::TOO_MANY_REQUESTS,
        &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "code": 429,
                "reason": "TooManyRequests", "message": "Cannot evict pod as it would violate the pod's disruption budget."}),
    );
    let status = expect_status_patch(&mut api, &rc).await;
    assert_eq!(
        cond(&status, CONDITION_PROGRESSING).2,
        "rolling update: waiting before the next restart, the PodDisruptionBudget refused to evict demo-2 for now"
    );
    for reason in ["LeaderChanged", "SnapshotBootstrapped", "Available"] {
        api.expect_event(NS, reason).await;
    }
    assert_eq!(finish(reconciler).await, Action::requeue(REQUEUE_ACTIVE));
}

#[tokio::test]
async fn the_cluster_secret_is_created_once_when_absent() {
    let (ctx, mut api, _lists) = test_context(Endpoints::Dns);
    let rc = Arc::new(cluster(3));
    let reconciler = tokio::spawn(reconcile(rc.clone(), ctx.clone()));
    for path in [CM, HEADLESS, CLIENT, PDB] {
        api.expect_apply(path).await;
    }
    api.expect_get(SECRET).await.not_found();
    let call = api.next().await;
    assert_eq!((&call.method, call.path.as_str()), (&http::Method::POST, SECRETS), "a create, never an apply");
    assert_eq!(call.body["metadata"]["name"], "demo-cluster-secret");
    assert_eq!(call.body["metadata"]["ownerReferences"][0]["kind"], "RegistryCluster");
    let value = call.body["stringData"]["cluster-secret"].as_str().expect("value").to_owned();
    assert_eq!(value.len(), 64);
    let created = call.body.clone();
    call.respond(StatusCode::CREATED, &created);
    api.expect_get(STS).await.not_found();
    let sts = api.expect_apply(STS).await;
    expect_failed_create_lookup(&mut api, vec![]).await;
    let pod = &sts["spec"]["template"]["spec"];
    let env = pod["containers"][0]["env"].as_array().expect("env");
    assert!(
        env.iter()
            .any(|e| e["name"] == "ROSTER_CLUSTER_SECRET_FILE"
                && e["value"] == "/etc/roster/cluster-secret/cluster-secret"),
        "{env:?}"
    );
    assert!(pod["volumes"]
        .as_array()
        .expect("volumes")
        .iter()
        .any(|v| v["secret"]["secretName"] == "demo-cluster-secret"));
    expect_status_patch(&mut api, &rc).await;
    api.expect_event(NS, "Creating").await;
    finish(reconciler).await;

    // The next round finds it and leaves it alone (no create, no apply):
    // after the read comes the StatefulSet.
    let reconciler = tokio::spawn(reconcile(rc.clone(), ctx.clone()));
    expect_fixed_objects(&mut api).await;
    let call = api.next().await;
    assert_eq!((&call.method, call.path.as_str()), (&http::Method::GET, STS));
    reconciler.abort();
}

#[tokio::test]
async fn with_tls_the_statuses_are_read_over_https_with_the_secret_ca() {
    let fake = FakeMember::start(member_doc(0, &[0], 1)).await;
    let pairs = vec![(addr(0), &fake)];
    let (ctx, mut api, _lists) = test_context(endpoints_for(&pairs));
    let mut rc = cluster(1);
    rc.spec.tls = Some(serde_json::from_value(json!({"secretName": "demo-tls"})).expect("tls"));
    let reconciler = tokio::spawn(reconcile(Arc::new(rc.clone()), ctx.clone()));
    expect_fixed_objects(&mut api).await;
    api.expect_get(STS).await.respond(StatusCode::OK, &existing_statefulset(&rc, &ctx, 1));
    let ca = rcgen::CertificateParams::new(Vec::<String>::new())
        .and_then(|p| p.self_signed(&rcgen::KeyPair::generate()?))
        .expect("a CA certificate")
        .pem();
    let encoded = serde_json::to_value(k8s_openapi::ByteString(ca.into_bytes())).expect("base64");
    api.expect_get("/api/v1/namespaces/ns/secrets/demo-tls").await.respond(
        StatusCode::OK,
        &json!({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
                "metadata": {"name": "demo-tls", "namespace": NS}, "data": {"ca.crt": encoded}}),
    );
    expect_pods(&mut api, &ready_pods(1)).await;
    api.expect_apply(STS).await;
    let status = expect_status_patch(&mut api, &rc).await;
    // The fake member speaks plain HTTP: asked over HTTPS, it cannot answer.
    let state = status.members[0].state.clone().unwrap_or_default();
    assert_eq!(state, crate::status::STATE_UNREACHABLE, "{:?}", status.members[0]);
    assert_eq!(cond(&status, CONDITION_AVAILABLE).0, "False");
    reconciler.abort();
}

#[tokio::test]
async fn a_statefulset_the_api_server_refuses_is_reported_not_hidden() {
    let voters = [0, 1, 2];
    let fakes = fake_members(3, &voters).await;
    let (ctx, mut api, _lists) = test_context(endpoints_for(&pairs(&fakes)));
    let rc = cluster(3);
    let reconciler = tokio::spawn(reconcile(Arc::new(rc.clone()), ctx.clone()));
    expect_fixed_objects(&mut api).await;
    api.expect_get(STS).await.respond(StatusCode::OK, &existing_statefulset(&rc, &ctx, 3));
    expect_pods(&mut api, &ready_pods(3)).await;
    let call = api.next().await;
    call.assert_apply(STS);
    let message = "StatefulSet.apps \"demo\" is invalid: spec.template.spec.containers[0].resources.requests: \
                   Invalid value: \"2Gi\": must be less than or equal to memory limit of 1Gi";
    call.respond(
        StatusCode::UNPROCESSABLE_ENTITY,
        &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "code": 422,
                "reason": "Invalid", "message": message}),
    );
    let status = expect_status_patch(&mut api, &rc).await;
    let (state, reason, text) = cond(&status, CONDITION_DEGRADED);
    assert_eq!((state, reason), ("True", "StatefulSetRefused"));
    assert!(text.contains("must be less than or equal to memory limit"), "{text}");
    assert_eq!(cond(&status, CONDITION_PROGRESSING).1, "StatefulSetRefused", "not Stable");
    for reason in ["LeaderChanged", "SnapshotBootstrapped", "Available", "Degraded"] {
        api.expect_event(NS, reason).await;
    }
    let err = outcome(reconciler).await.expect_err("the refusal is retried with back-off");
    assert!(matches!(err, Error::Kube(_)), "{err}");
}

#[tokio::test]
async fn a_pod_the_statefulset_cannot_create_is_reported() {
    let (ctx, mut api, _lists) = test_context(Endpoints::Dns);
    let rc = cluster(3);
    let reconciler = tokio::spawn(reconcile(Arc::new(rc.clone()), ctx.clone()));
    expect_fixed_objects(&mut api).await;
    api.expect_get(STS).await.not_found();
    api.expect_apply(STS).await;
    let note = "create Pod demo-0 in StatefulSet demo failed error: pods \"demo-0\" is forbidden: exceeded quota";
    let seen = k8s_openapi::jiff::Timestamp::now().to_string();
    expect_failed_create_lookup(
        &mut api,
        vec![
            json!({"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "demo.1", "namespace": NS},
                    "reason": "FailedCreate", "note": note, "eventTime": seen, "type": "Warning",
                    "reportingController": "statefulset-controller", "reportingInstance": "kcm",
                    "action": "Create", "regarding": {"kind": "StatefulSet", "name": "demo", "namespace": NS}}),
        ],
    )
    .await;
    let status = expect_status_patch(&mut api, &rc).await;
    let (state, reason, text) = cond(&status, CONDITION_DEGRADED);
    assert_eq!((state, reason), ("True", "PodCreationFailed"));
    assert!(text.contains("exceeded quota"), "{text}");
    api.expect_event(NS, "Creating").await;
    api.expect_event(NS, "Degraded").await;
    finish(reconciler).await;
}

#[tokio::test]
async fn a_cluster_deleted_while_it_is_reconciled_is_no_error() {
    let (ctx, mut api, _lists) = test_context(Endpoints::Dns);
    let rc = cluster(3);
    let reconciler = tokio::spawn(reconcile(Arc::new(rc.clone()), ctx.clone()));
    expect_fixed_objects(&mut api).await;
    api.expect_get(STS).await.not_found();
    api.expect_apply(STS).await;
    expect_failed_create_lookup(&mut api, vec![]).await;
    let call = api.next().await;
    call.assert_apply(STATUS);
    call.not_found();
    assert_eq!(finish(reconciler).await, Action::await_change(), "no error, no retry, no Event");
    api.expect_silence(Duration::from_millis(100)).await;
}

#[tokio::test]
async fn a_cluster_being_deleted_is_left_to_garbage_collection() {
    let (ctx, mut api, lists) = test_context(Endpoints::Dns);
    let mut rc = cluster(3);
    rc.metadata.deletion_timestamp =
        Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(k8s_openapi::jiff::Timestamp::now()));
    let reconciler = tokio::spawn(reconcile(Arc::new(rc), ctx.clone()));
    let event = api.expect_event(NS, "Deleting").await;
    assert!(event["note"].as_str().is_some_and(|n| n.contains("PVCs are kept")), "{event}");
    assert_eq!(finish(reconciler).await, Action::await_change());
    assert!(lists.is_empty(), "nothing is published or applied for a cluster on its way out");
    api.expect_silence(Duration::from_millis(100)).await;
}
