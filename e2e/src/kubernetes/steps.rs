//! The user's story, one function per step, each followed by its checks.
//! A failed check names the step and what was lost or which condition was
//! wrong (see [`Story::check`]).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use roster_crds::{
    CONDITION_AVAILABLE, CONDITION_DEGRADED, CONDITION_MEMBERSHIP_CONVERGED, CONDITION_PROGRESSING,
    CONDITION_RAFT_QUORUM, CONDITION_SNAPSHOT_BOOTSTRAPPED,
};
use serde_json::Value;

use super::checks::{condition_of, condition_trail, data_converges, events_since, show, SeenEvent};
use super::observe::{Observer, PodVersion, RcVersion, GAP_BOUND};
use super::procs::OPERATOR_IP;
use super::story::{Stop, Story, NAME};
use super::workload::{
    health_listeners, start_http_clients, start_persistent_writer, Publisher, SdkClient, GRPC_SERVICE, HTTP_SERVICE,
    HTTP_SERVICE_ALSO, PERSISTENT_SERVICE,
};

type Step = std::result::Result<(), Stop>;

/// The registry every step works on: three members, 64Mi volumes, and the
/// spec's Distro and Raft knobs turned down so the story takes minutes:
/// verify every second, a snapshot retry after a second, copies expire
/// after 10 s unverified, elections within 0.5–1 s.
pub(super) fn manifest(namespace: &str, replicas: i32, roll: &str) -> String {
    format!(
        "apiVersion: roster.dev/v1alpha1
kind: RegistryCluster
metadata:
  name: {NAME}
  namespace: {namespace}
spec:
  replicas: {replicas}
  image: roster-node:0.1.0
  storage:
    size: 64Mi
  annotations:
    roster.dev/e2e-roll: \"{roll}\"
  distro:
    syncDelayMs: 100
    verifyIntervalMs: 1000
    loadRetryDelayMs: 1000
    clientExpiryMs: 10000
  raft:
    electionTimeoutMinMs: 500
    electionTimeoutMaxMs: 1000
    heartbeatIntervalMs: 100
"
    )
}

/// How long the members may take to agree after a step.
const SETTLE: Duration = Duration::from_secs(45);
/// Allowance for the pod watch delivering a change later than the
/// RegistryCluster watch delivers a status written after it.
const WATCH_SKEW: Duration = Duration::from_secs(1);

fn ensure(ok: bool, what: impl FnOnce() -> String) -> std::result::Result<(), String> {
    if ok {
        Ok(())
    } else {
        Err(what())
    }
}

/// The pods as they were at `at` (by the watch), by name, existing only.
fn pods_at(observer: &Observer, at: Instant) -> BTreeMap<String, PodVersion> {
    observer.with(|r| {
        let mut state = BTreeMap::new();
        for v in r.pods.iter().filter(|v| v.at <= at) {
            state.insert(v.name.clone(), v.clone());
        }
        state.retain(|_, v: &mut PodVersion| v.exists);
        state
    })
}

/// How many of the pods `names` were Ready at `at`, or became Ready
/// within [`WATCH_SKEW`] after it (the pod watch may deliver a change the
/// operator saw before it wrote a status later than the status itself).
fn ready_at(observer: &Observer, names: &[String], at: Instant) -> usize {
    let then = pods_at(observer, at);
    let ready = |p: &PodVersion| p.exists && p.ready && !p.terminating;
    observer.with(|r| {
        names
            .iter()
            .filter(|n| {
                then.get(*n).is_some_and(ready)
                    || r.pods.iter().any(|p| &p.name == *n && p.at > at && p.at <= at + WATCH_SKEW && ready(p))
            })
            .count()
    })
}

fn pod_names(n: i32) -> Vec<String> {
    (0..n).map(|i| format!("{NAME}-{i}")).collect()
}

/// The first version in which `type_` has `status`.
fn first_with<'a>(versions: &'a [RcVersion], type_: &str, status: &str) -> Option<&'a RcVersion> {
    versions.iter().find(|v| condition_of(v, type_).is_some_and(|(s, _)| s == status))
}

impl Story {
    pub(super) fn kubectl_step(&mut self, args: &[&str]) -> Step {
        let out = self.kubectl.run(args);
        self.harness(out).map(|_| ())
    }

    /// `kubectl wait --for=condition=<cond> rgc/demo`, failing the step
    /// with the RegistryCluster's conditions when it times out.
    pub(super) async fn wait_for(&mut self, condition: &str, timeout: &str) -> Step {
        let ns = self.namespace.clone();
        let out = self.kubectl.run(&[
            "-n",
            &ns,
            "wait",
            &format!("--for=condition={condition}"),
            &format!("registrycluster/{NAME}"),
            &format!("--timeout={timeout}"),
        ]);
        if let Err(e) = out {
            let conditions = self
                .kubectl
                .run(&["-n", &ns, "get", "rgc", NAME, "-o", "jsonpath={.status.conditions}"])
                .unwrap_or_default();
            return self
                .check(Err(format!("kubectl wait --for=condition={condition}: {e:#}; conditions: {conditions}")));
        }
        // The watch behind the checks may deliver that version a moment
        // after kubectl saw it.
        let (type_, status) = condition.split_once('=').unwrap_or((condition, "True"));
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            let seen = self.observer.as_ref().is_none_or(|o| {
                o.with(|r| r.rc.last().and_then(|v| condition_of(v, type_)).is_some_and(|(s, _)| s == status))
            });
            if seen {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.check(Err(format!("the watch never delivered the version in which {type_} is {status}")))
    }

    /// The versions of the RegistryCluster's current generation seen since
    /// `since`: a status written for the previous generation may still
    /// arrive after a change, and says nothing about the change.
    pub(super) fn versions_since(&self, since: Instant) -> Vec<RcVersion> {
        let mut versions = self.observer().rc_since(since);
        let current = versions.last().and_then(|v| v.generation);
        versions.retain(|v| v.generation == current);
        versions
    }

    /// The Events of the current step.
    pub(super) async fn step_events(&self) -> Vec<SeenEvent> {
        events_since(&self.client, &self.namespace, NAME, self.current.2).await
    }

    /// Checks that the current step recorded an Event of every reason in
    /// `reasons`.
    pub(super) async fn expect_events(&mut self, reasons: &[&str]) -> Step {
        let events = self.step_events().await;
        let seen: BTreeSet<&str> = events.iter().map(|e| e.reason.as_str()).collect();
        let missing: Vec<&&str> = reasons.iter().filter(|r| !seen.contains(**r)).collect();
        let shown: Vec<String> = events.iter().map(|e| format!("{}: {} (x{})", e.reason, e.note, e.count)).collect();
        self.check(ensure(missing.is_empty(), || format!("no Event {missing:?} for this step; it recorded {shown:?}")))
    }

    /// The data checks every step ends with, on members `0..n`, plus the
    /// gaps and lost HTTP instances the step caused.
    pub(super) async fn settle(&mut self, n: i32) -> Step {
        self.converge(n, SETTLE).await?;
        self.gaps_of_this_step()
    }

    /// The data checks after every member restarted at once (no gap is a
    /// fault then: the clients must come back, within a longer bound).
    pub(super) async fn settle_after_full_restart(&mut self, n: i32) -> Step {
        self.converge(n, SETTLE * 2).await
    }

    async fn converge(&mut self, n: i32, within: Duration) -> Step {
        let members = self.members(n);
        let views = self.subscriber.as_ref().map(|s| s.views.clone()).unwrap_or_default();
        match data_converges(&self.shared, &members, &views, within).await {
            Ok(took) => {
                eprintln!("   data on {n} members agree ({:.1} s)", took.as_secs_f64());
                Ok(())
            }
            Err(e) => self.check_node(Err(format!("the members' data did not converge: {e}"))),
        }
    }

    fn gaps_of_this_step(&mut self) -> Step {
        let step = self.current.0.clone();
        let gaps: Vec<String> = self
            .observer()
            .gaps()
            .into_iter()
            .filter(|g| g.step == step)
            .map(|g| format!("{} missing on {} for {:.1} s", g.instance, g.member, g.missing_for.as_secs_f64()))
            .collect();
        self.check_node(ensure(gaps.is_empty(), || {
            format!("live clients' instances missing longer than a reconnect ({GAP_BOUND:?}): {}", gaps.join("; "))
        }))?;
        let lost: Vec<String> =
            self.shared.model().http_lost.iter().filter(|(s, _)| *s == step).map(|(_, a)| a.clone()).collect();
        self.check_node(ensure(lost.is_empty(), || {
            format!("acknowledged HTTP registrations were lost (a beat answered 20404): {}", lost.join(", "))
        }))
    }

    /// What must hold throughout a planned step. The operator: `Degraded`
    /// never `True` for what the plan explains (only a real failure: a lost
    /// quorum, a failing pod, a refused object). The members: the quorum
    /// never lost, and (when `quorum_kept`, i.e. no leader restarts)
    /// `RaftQuorum` and `Available` never `False` at all.
    pub(super) fn planned_throughout(&mut self, since: Instant, quorum_kept: bool) -> Step {
        const UNPLANNED: [&str; 4] = ["QuorumLost", "PodFailing", "PodCreationFailed", "StatefulSetRefused"];
        let versions = self.versions_since(since);
        let degraded = condition_trail(&versions, CONDITION_DEGRADED);
        self.check(ensure(!degraded.iter().any(|(s, r)| s == "True" && !UNPLANNED.contains(&r.as_str())), || {
            format!("Degraded for planned work: {}", show(&degraded))
        }))?;
        let quorum = condition_trail(&versions, CONDITION_RAFT_QUORUM);
        self.check_node(ensure(!quorum.iter().any(|(_, r)| r == "QuorumLost"), || {
            format!("the Raft quorum was lost during planned work: {}", show(&quorum))
        }))?;
        if quorum_kept {
            for type_ in [CONDITION_RAFT_QUORUM, CONDITION_AVAILABLE] {
                let trail = condition_trail(&versions, type_);
                self.check_node(ensure(!trail.iter().any(|(s, _)| s == "False"), || {
                    format!("{type_} went False although quorum is kept on purpose: {}", show(&trail))
                }))?;
            }
        }
        Ok(())
    }

    /// When `Progressing` turned `False` after `since`, every listed pod
    /// was Ready and on the StatefulSet's current revision.
    pub(super) fn carried_out_means_ready(&mut self, since: Instant, n: i32) -> Step {
        let versions = self.versions_since(since);
        let Some(done) = first_with(&versions, CONDITION_PROGRESSING, "False") else {
            return self.check(Err("Progressing never turned False".into()));
        };
        let pods = pods_at(self.observer(), done.at + WATCH_SKEW);
        let names = pod_names(n);
        let ready = ready_at(self.observer(), &names, done.at);
        let revisions: BTreeSet<Option<String>> =
            names.iter().map(|n| pods.get(n).and_then(|p| p.revision.clone())).collect();
        self.check(ensure(ready == names.len() && revisions.len() == 1, || {
            format!("Progressing turned False with {ready} of {} pods Ready on revisions {revisions:?}", names.len())
        }))
    }

    /// Starts the observer, applies the 3-member RegistryCluster, waits
    /// for `Available`, writes at once, and waits until the creation is
    /// carried out.
    pub async fn create(&mut self) -> Step {
        self.begin("create");
        self.observer = Some(Observer::start(self.client.clone(), &self.namespace, NAME, self.shared.clone(), 5));
        let applied = Instant::now();
        let manifest = manifest(&self.namespace, 3, "0");
        let out = self.kubectl.apply(&manifest);
        self.harness(out)?;
        self.wait_for("Available", "120s").await?;

        // Available means a majority serves: at the moment it turned True.
        let versions = self.versions_since(applied);
        if let Some(first) = first_with(&versions, CONDITION_AVAILABLE, "True") {
            let ready = ready_at(self.observer(), &pod_names(3), first.at);
            let loaded = first
                .status
                .as_ref()
                .map_or(0, |s| s.members.iter().filter(|m| m.ready && m.distro_initialized).count());
            self.check(ensure(ready >= 2 && loaded >= 2, || {
                format!(
                    "Available turned True with {ready} of 3 pods Ready and {loaded} of 3 members loaded and ready \
                     (a majority must serve)"
                )
            }))?;
        }

        // Write at once: HTTP registrations, persistent writes, SDK clients.
        let (persistent, listeners) = self.harness(health_listeners("127.0.2.10", 12).await)?;
        self.tasks.push(listeners);
        let http: Vec<String> = (1..=12).map(|i| format!("10.77.2.{i}:8080")).collect();
        let beaters = start_http_clients(self.shared.clone(), http, Duration::from_secs(10)).await;
        let beaters = self.check_write_after_available(beaters)?;
        self.tasks.push(beaters);
        self.tasks.push(start_persistent_writer(self.shared.clone(), persistent[..6].to_vec(), 0));
        self.tasks.push(start_persistent_writer(self.shared.clone(), persistent[6..].to_vec(), 1_000_000_000));
        let servers = self.members(3);
        self.start_subscriber(&servers)?;
        for i in 0..2 {
            self.start_publisher(&format!("publisher-{i}"), &servers, &format!("10.77.0.{}:9000", i + 1))?;
        }

        self.wait_for("Progressing=False", "120s").await?;
        self.carried_out_means_ready(applied, 3)?;
        self.planned_throughout(applied, false)?;
        let progressing = condition_trail(&self.versions_since(applied), CONDITION_PROGRESSING);
        self.check(ensure(progressing.first().is_some_and(|(s, _)| s == "True"), || {
            format!("Progressing did not start True: {}", show(&progressing))
        }))?;
        self.settle(3).await?;
        self.expect_events(&["Creating", "LeaderChanged", "SnapshotBootstrapped", "Available", "ChangeCarriedOut"])
            .await?;
        self.end();
        Ok(())
    }

    fn check_write_after_available<T>(&mut self, outcome: anyhow::Result<T>) -> std::result::Result<T, Stop> {
        outcome.map_err(|e| {
            let what = format!("an HTTP registration right after Available was not acknowledged: {e:#}");
            let _ = self.check(Err(what));
            Stop
        })
    }

    fn start_subscriber(&mut self, servers: &[String]) -> Step {
        let started = SdkClient::start(servers);
        let mut subscriber = self.harness(started)?;
        for service in [GRPC_SERVICE, HTTP_SERVICE, HTTP_SERVICE_ALSO, PERSISTENT_SERVICE] {
            let done = subscriber.command(&format!("subscribe {service}"));
            self.harness(done)?;
        }
        self.subscriber = Some(subscriber);
        Ok(())
    }

    /// Starts an SDK publisher of `address` and records it once
    /// acknowledged; returns its index in `self.publishers`.
    fn start_publisher(&mut self, name: &str, servers: &[String], address: &str) -> std::result::Result<usize, Stop> {
        let started = SdkClient::start(servers);
        let mut client = self.harness(started)?;
        let (ip, port) = address.split_once(':').unwrap_or((address, "9000"));
        let registered = client.command(&format!("register {GRPC_SERVICE} {ip} {port}"));
        self.harness(registered)?;
        let publisher =
            Publisher { address: address.to_owned(), alive: true, servers: servers.to_vec(), since: Instant::now() };
        self.shared.model().publishers.insert(name.to_owned(), publisher);
        self.publishers.push((name.to_owned(), client));
        Ok(self.publishers.len() - 1)
    }

    /// Kills publisher `index` (SIGKILL, like a crash): its instance must go.
    fn kill_publisher(&mut self, index: usize) {
        let (name, mut client) = self.publishers.remove(index);
        client.kill();
        if let Some(p) = self.shared.model().publishers.get_mut(&name) {
            p.alive = false;
        }
    }

    /// Scales to 5: new members bootstrap from a snapshot before they are
    /// ready, join Raft as learners and become voters.
    pub async fn scale_up(&mut self) -> Step {
        self.begin("scale-up to 5");
        let patched = Instant::now();
        let ns = self.namespace.clone();
        self.kubectl_step(&["-n", &ns, "scale", &format!("registrycluster/{NAME}"), "--replicas=5"])?;
        self.wait_for("Progressing=False", "120s").await?;
        let versions = self.versions_since(patched);
        for (type_, must_dip) in [
            (CONDITION_SNAPSHOT_BOOTSTRAPPED, true),
            (CONDITION_MEMBERSHIP_CONVERGED, true),
            (CONDITION_PROGRESSING, true),
        ] {
            let trail = condition_trail(&versions, type_);
            let (dips, back) = if type_ == CONDITION_PROGRESSING { ("True", "False") } else { ("False", "True") };
            self.check(ensure(
                !must_dip || (trail.iter().any(|(s, _)| s == dips) && trail.last().is_some_and(|(s, _)| s == back)),
                || format!("{type_} should go {dips} and back to {back} during the scale-up: {}", show(&trail)),
            ))?;
        }
        self.carried_out_means_ready(patched, 5)?;
        self.planned_throughout(patched, true)?;
        for ordinal in [3, 4] {
            let joined = self.joined_properly(ordinal, patched);
            self.check_node(joined)?;
        }
        self.settle(5).await?;
        self.expect_events(&["ScalingUp", "SnapshotBootstrapped", "ChangeCarriedOut"]).await?;
        self.attach_leaving_publisher().await?;
        self.end();
        Ok(())
    }

    /// A new member loaded its snapshot from a peer before it said ready,
    /// and was a Raft learner before it was a voter.
    fn joined_properly(&self, ordinal: i32, since: Instant) -> std::result::Result<(), String> {
        let member = format!("{NAME}-{ordinal}.{NAME}-headless.{}.svc:8848", self.namespace);
        let (first_ready, learner_at, voter_at) = self.observer().with(|r| {
            let samples: Vec<_> = r.members.iter().filter(|s| s.at >= since).collect();
            let first_ready = samples
                .iter()
                .find(|s| s.ordinal == ordinal && s.status.as_ref().is_some_and(|v| v["ready"] == true))
                .and_then(|s| s.status.clone());
            let listed = |field: &str| {
                samples
                    .iter()
                    .find(|s| {
                        s.status.as_ref().is_some_and(|v| {
                            v["raft"][field].as_array().is_some_and(|l| l.iter().any(|m| m.as_str() == Some(&member)))
                        })
                    })
                    .map(|s| s.at)
            };
            (first_ready, listed("learners"), listed("voters"))
        });
        let Some(ready) = first_ready else { return Err(format!("{member} never answered ready")) };
        let source = ready["distro"]["snapshotSource"].as_str().unwrap_or_default().to_owned();
        ensure(ready["distro"]["initialized"] == true && !source.is_empty() && source != member, || {
            format!("{member} said ready with Distro {} (a snapshot from a peer must come first)", ready["distro"])
        })?;
        match (learner_at, voter_at) {
            (Some(l), Some(v)) if l <= v => Ok(()),
            // A learner that catches up at once is promoted within a few
            // hundred milliseconds, between two samples: the leader's own
            // record of its changes (its log) then tells the order.
            (None, Some(_)) if self.learner_before_voter_in_logs(&member) => Ok(()),
            (None, Some(_)) => Err(format!(
                "{member} became a Raft voter without ever being seen as a learner (nor logged as one first)"
            )),
            (_, None) => Err(format!("{member} never became a Raft voter")),
            _ => Err(format!("{member} was a Raft voter before it was a learner")),
        }
    }

    /// Whether a member's log shows, as the first committed Raft change
    /// naming `member`, its `AddLearner`, followed by the `Promote` of the
    /// same id: it joined as a learner, then became a voter.
    fn learner_before_voter_in_logs(&self, member: &str) -> bool {
        let Some(kubelet) = self.kubelet.as_ref() else { return false };
        let quoted = format!("\"{member}\"");
        (0..5).any(|ordinal| {
            let log = kubelet.pod_log(&self.namespace, &format!("{NAME}-{ordinal}"));
            let Ok(text) = std::fs::read_to_string(log) else { return false };
            let committed: Vec<String> = text
                .lines()
                .filter_map(|line| serde_json::from_str::<Value>(line).ok())
                .filter(|v| v["fields"]["message"] == "Raft membership change committed")
                .filter_map(|v| v["fields"]["action"].as_str().map(str::to_owned))
                .collect();
            let Some(first) = committed.iter().position(|a| a.contains(&quoted)) else { return false };
            let Some(id) = committed[first].strip_prefix("AddLearner(").and_then(|rest| rest.split(',').next()) else {
                return false;
            };
            committed[first + 1..].iter().any(|a| *a == format!("Promote({id})"))
        })
    }

    /// An SDK publisher whose list names every member, connected to one of
    /// the members the scale-down removes (the SDK picks a random member
    /// of its list, so publishers attached elsewhere are killed and the
    /// start is tried again).
    async fn attach_leaving_publisher(&mut self) -> Step {
        // Leaving and staying members alternate in its list, so that the
        // SDK's next server after a leaving one is a staying one.
        let all = self.members(5);
        let servers = [3, 0, 4, 1, 2].map(|i: usize| all[i].clone()).to_vec();
        let leaving = [all[3].clone(), all[4].clone()];
        for attempt in 0..15 {
            let address = format!("10.77.1.{}:9000", attempt + 1);
            let index = self.start_publisher(&format!("leaving-{attempt}"), &servers, &address)?;
            tokio::time::sleep(Duration::from_millis(300)).await;
            if connected_at(&leaving, &address).await {
                eprintln!("   publisher {address} is attached to a leaving member");
                return Ok(());
            }
            self.kill_publisher(index);
        }
        self.check(Err("no SDK publisher attached to demo-3 or demo-4 in 15 starts".into()))
    }

    /// Scales back to 3: the server list first, Raft removal, then the
    /// StatefulSet, with the quorum kept all along.
    pub async fn scale_down(&mut self) -> Step {
        self.begin("scale-down to 3");
        let patched = Instant::now();
        let ns = self.namespace.clone();
        self.kubectl_step(&["-n", &ns, "scale", &format!("registrycluster/{NAME}"), "--replicas=3"])?;
        let list_first = self.server_list_shrinks_first(&ns).await;
        self.check(list_first)?;
        self.wait_for("Progressing=False", "120s").await?;
        for ordinal in [3, 4] {
            let order = self.removed_before_stopped(ordinal, patched);
            self.check(order)?;
        }
        self.planned_throughout(patched, true)?;
        self.carried_out_means_ready(patched, 3)?;
        self.settle(3).await?;
        self.expect_events(&["ScalingDown", "ChangeCarriedOut"]).await?;
        let events = self.step_events().await;
        let downs: Vec<&SeenEvent> = events.iter().filter(|e| e.reason == "ScalingDown").collect();
        let covered = downs.iter().any(|e| e.note.contains("to 3")) && downs.iter().any(|e| e.note.contains("from 5"));
        let notes: BTreeSet<&str> = downs.iter().map(|e| e.note.as_str()).collect();
        self.check(ensure(covered && notes.len() == downs.len(), || {
            format!("the ScalingDown Events do not show 5 to 3 step by step: {notes:?}")
        }))?;
        // The publisher that had to move is done: its list still names two
        // members that are gone, so its later reconnects would measure the
        // SDK's back-off over dead names, not the cluster.
        while let Some(i) = self.publishers.iter().position(|(n, _)| n.starts_with("leaving-")) {
            self.kill_publisher(i);
        }
        self.end();
        Ok(())
    }

    /// Right after the patch the address server lists 3 members while the
    /// StatefulSet still has 5.
    async fn server_list_shrinks_first(&self, ns: &str) -> std::result::Result<(), String> {
        let url = format!("http://{OPERATOR_IP}:8080/v1/clusters/{ns}/{NAME}/serverlist");
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let list = async { http.get(&url).send().await?.text().await }.await.unwrap_or_default();
            if list.lines().count() == 3 {
                let replicas = self
                    .kubectl
                    .run(&["-n", ns, "get", "sts", NAME, "-o", "jsonpath={.spec.replicas}"])
                    .unwrap_or_default();
                return ensure(replicas.trim() == "5", || {
                    format!("the StatefulSet had {replicas} replicas when the list shrank (it must still have 5)")
                });
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "the address server still lists {:?} 10 s after the scale-down",
                    list.lines().count()
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The pod of a departing member was stopped only after no staying
    /// member's Raft membership counted it.
    fn removed_before_stopped(&self, ordinal: i32, since: Instant) -> std::result::Result<(), String> {
        let pod = format!("{NAME}-{ordinal}");
        let member = format!("{pod}.{NAME}-headless.{}.svc:8848", self.namespace);
        let (stopped, last_counted) = self.observer().with(|r| {
            let stopped =
                r.pods.iter().find(|p| p.at >= since && p.name == pod && (p.terminating || !p.exists)).map(|p| p.at);
            let counts = |v: &Value| {
                ["voters", "learners"]
                    .iter()
                    .any(|f| v["raft"][*f].as_array().is_some_and(|l| l.iter().any(|m| m.as_str() == Some(&member))))
            };
            let last = r
                .members
                .iter()
                .filter(|s| s.at >= since && s.ordinal < 3 && s.status.as_ref().is_some_and(counts))
                .map(|s| s.at)
                .max();
            (stopped, last)
        });
        let Some(stopped) = stopped else { return Err(format!("{pod} was never stopped")) };
        ensure(last_counted.is_none_or(|c| c < stopped), || {
            format!("{pod} was stopped while a staying member's Raft membership still counted it")
        })
    }
}

/// Whether a member in `members` holds the live gRPC connection that
/// publishes `address` (the client introspection API's `connected`).
async fn connected_at(members: &[String], address: &str) -> bool {
    let http = reqwest::Client::builder().timeout(Duration::from_secs(2)).build().unwrap_or_default();
    let (ip, port) = address.split_once(':').unwrap_or((address, ""));
    for member in members {
        let url = format!("http://{member}/nacos/v2/ns/client/service/publisher/list");
        let query = [("serviceName", GRPC_SERVICE), ("ip", ip), ("port", port)];
        let Ok(resp) = http.get(&url).query(&query).send().await else { continue };
        let Ok(list) = resp.json::<Value>().await else { continue };
        for client in list["data"].as_array().into_iter().flatten() {
            let Some(id) = client["clientId"].as_str() else { continue };
            let url = format!("http://{member}/nacos/v2/ns/client");
            let Ok(resp) = http.get(&url).query(&[("clientId", id)]).send().await else { continue };
            if resp.json::<Value>().await.is_ok_and(|d| d["data"]["connected"] == true) {
                return true;
            }
        }
    }
    false
}
