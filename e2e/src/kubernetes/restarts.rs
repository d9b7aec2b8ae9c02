//! The steps that restart members: a rolling update of the pod template,
//! `kill -9` of the Raft leader's process, the operator stopped and
//! restarted in the middle of a roll, and deleting the RegistryCluster and
//! creating it again over its kept volumes.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use roster_crds::{CONDITION_DEGRADED, CONDITION_PROGRESSING};

use super::checks::{condition_trail, show};
use super::observe::PodVersion;
use super::procs::{signal, OPERATOR_IP};
use super::story::{Stop, Story, NAME};

type Step = std::result::Result<(), Stop>;

fn ensure(ok: bool, what: impl FnOnce() -> String) -> std::result::Result<(), String> {
    if ok {
        Ok(())
    } else {
        Err(what())
    }
}

/// What a roll looked like from the pod watch.
#[derive(Debug, Default)]
struct Roll {
    /// Pods in the order they were stopped.
    order: Vec<String>,
    /// New pods (uids) per name.
    recreated: BTreeMap<String, usize>,
    /// The most listed pods being restarted at one time: from their
    /// termination until their new pod is Ready.
    most_down: usize,
    /// Pods that were not restarted but went not Ready during the roll
    /// (a member that knows no Raft leader answers not ready, so an
    /// election makes every member unready for a moment).
    flapped: BTreeSet<String>,
}

impl Story {
    fn roll_seen(&self, since: Instant, n: i32) -> Roll {
        let names: Vec<String> = (0..n).map(|i| format!("{NAME}-{i}")).collect();
        self.observer().with(|r| {
            let mut state: BTreeMap<String, PodVersion> = BTreeMap::new();
            let mut initial: BTreeMap<String, String> = BTreeMap::new();
            let mut roll = Roll::default();
            let mut uids: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
            let mut back: BTreeSet<String> = BTreeSet::new();
            for v in r.pods.iter().filter(|v| names.contains(&v.name)) {
                if v.at < since {
                    state.insert(v.name.clone(), v.clone());
                    initial.insert(v.name.clone(), v.uid.clone());
                    continue;
                }
                if (v.terminating || !v.exists) && !roll.order.contains(&v.name) {
                    roll.order.push(v.name.clone());
                    back.remove(&v.name);
                }
                if v.exists && initial.get(&v.name) != Some(&v.uid) {
                    uids.entry(v.name.clone()).or_default().insert(v.uid.clone());
                }
                if v.exists && v.ready && !v.terminating && roll.order.contains(&v.name) {
                    back.insert(v.name.clone());
                }
                state.insert(v.name.clone(), v.clone());
                // A pod is being restarted from its stop until its new pod
                // is first Ready; readiness it loses later is no restart.
                let restarting = |n: &String| {
                    let pending = roll.order.contains(n) && !back.contains(n);
                    state.get(n).is_none_or(|p| !p.exists || p.terminating || (pending && !p.ready))
                };
                roll.most_down = roll.most_down.max(names.iter().filter(|n| restarting(n)).count());
                if v.exists && !v.ready && !v.terminating && !roll.order.contains(&v.name) {
                    roll.flapped.insert(v.name.clone());
                }
            }
            roll.recreated = uids.into_iter().map(|(n, u)| (n, u.len())).collect();
            roll
        })
    }

    /// The Raft leader's pod as the members said just before `at`.
    fn leader_before(&self, at: Instant) -> Option<String> {
        self.observer().with(|r| {
            r.members
                .iter()
                .rev()
                .filter(|s| s.at < at)
                .find_map(|s| s.status.as_ref()?["raft"]["leader"].as_str().map(str::to_owned))
                .map(|l| l.split('.').next().unwrap_or_default().to_owned())
        })
    }

    /// One roll's checks: every member restarted once, never two at a
    /// time, the Raft leader last, and one Event per restart with its own
    /// message.
    async fn rolled_properly(&mut self, since: Instant, n: i32) -> Step {
        let roll = self.roll_seen(since, n);
        let all: BTreeSet<String> = (0..n).map(|i| format!("{NAME}-{i}")).collect();
        let once = all.iter().all(|p| roll.recreated.get(p) == Some(&1));
        self.check(ensure(once && roll.order.len() == all.len(), || {
            format!("every member must be restarted once: stopped {:?}, recreated {:?}", roll.order, roll.recreated)
        }))?;
        self.check(ensure(roll.most_down <= 1, || {
            format!("{} members were restarting at one time during the roll (one at a time)", roll.most_down)
        }))?;
        if !roll.flapped.is_empty() {
            self.note(format!(
                "members not restarted yet went not Ready during the roll: {:?} (readiness needs a known Raft leader)",
                roll.flapped
            ));
        }
        let last = roll.order.last().cloned().unwrap_or_default();
        let stopped_at = self.observer().with(|r| {
            r.pods.iter().find(|p| p.at >= since && p.name == last && (p.terminating || !p.exists)).map(|p| p.at)
        });
        let leader = stopped_at.and_then(|at| self.leader_before(at));
        self.check(ensure(leader.as_deref() == Some(last.as_str()), || {
            format!("the last restarted pod {last} was not the Raft leader ({leader:?}); order {:?}", roll.order)
        }))?;
        let events = self.step_events().await;
        let restarts: Vec<&str> =
            events.iter().filter(|e| e.reason == "RollingUpdate").map(|e| e.note.as_str()).collect();
        let named: BTreeSet<&String> =
            all.iter().filter(|p| restarts.iter().any(|n| n.contains(&format!("restarting {p}")))).collect();
        // The leader's restart says why it was restarted: last, or at once
        // because it was not ready (it served nothing then).
        let leader_note = restarts.iter().any(|n| {
            n.contains(&format!("restarting {last}, the Raft leader, last"))
                || n.contains(&format!("restarting {last}, which was not ready"))
        });
        self.check(ensure(named.len() == all.len() && leader_note, || {
            format!("the RollingUpdate Events do not name each restart: {restarts:?}")
        }))
    }

    /// While no member joins or leaves, the Raft voters stay the `n`
    /// members: a member that restarts (same volume, same Raft id) is no
    /// membership change. Judged from the leaders' own statuses.
    fn voters_kept(&mut self, since: Instant, n: usize) -> Step {
        let shrunk = self.observer().with(|r| {
            r.members.iter().filter(|s| s.at >= since).find_map(|s| {
                let raft = &s.status.as_ref()?["raft"];
                let voters = raft["voters"].as_array()?;
                (raft["role"] == "Leader" && voters.len() < n).then(|| {
                    let names: Vec<&str> = voters.iter().filter_map(|v| v.as_str()?.split('.').next()).collect();
                    format!("leader {NAME}-{} had the voters {names:?}", s.ordinal)
                })
            })
        });
        self.check_node(shrunk.map_or(Ok(()), |what| {
            Err(format!("a member that only restarted was removed from the Raft voters: {what}"))
        }))
    }

    fn patch_template(&mut self, value: &str) -> Step {
        let ns = self.namespace.clone();
        let patch = format!("{{\"spec\":{{\"annotations\":{{\"roster.dev/e2e-roll\":\"{value}\"}}}}}}");
        let out =
            self.kubectl.run(&["-n", &ns, "patch", &format!("registrycluster/{NAME}"), "--type=merge", "-p", &patch]);
        self.harness(out).map(|_| ())
    }

    /// A change of the pod template: one member at a time, the leader last.
    pub async fn rolling_update(&mut self) -> Step {
        self.begin("rolling update");
        let patched = Instant::now();
        self.patch_template("1")?;
        self.wait_for("Progressing=False", "180s").await?;
        self.rolled_properly(patched, 3).await?;
        self.carried_out_means_ready(patched, 3)?;
        self.planned_throughout(patched, false)?;
        self.voters_kept(patched, 3)?;
        self.settle(3).await?;
        self.expect_events(&["RollingUpdate", "ChangeCarriedOut"]).await?;
        self.end();
        Ok(())
    }

    /// `kill -9` of the Raft leader's process: a new leader, writes go on,
    /// the pod restarts, and the status calls it what it is (Degraded, not
    /// Progressing).
    pub async fn kill_leader(&mut self) -> Step {
        self.begin("kill -9 of the leader");
        let leader = self.leader_before(Instant::now()).unwrap_or_default();
        let pod = self.observer().pods_now().get(&leader).cloned();
        let Some((pid, restarts)) = pod.and_then(|p| Some((p.pid?, p.restarts))) else {
            return self.check(Err(format!("no process of the leader {leader:?} to kill")));
        };
        let term = |v: &serde_json::Value| v["raft"]["term"].as_u64().unwrap_or(0);
        let term_before = (0..3).filter_map(|i| self.observer().member_now(i)).map(|v| term(&v)).max().unwrap_or(0);
        let killed_at = Instant::now();
        let killed = signal(pid, "KILL");
        self.harness(killed)?;
        eprintln!("   killed {leader} (pid {pid}), Raft term {term_before}");
        let deadline = Instant::now() + Duration::from_secs(30);
        let (mut agreed, mut restarted, mut written) = (None, false, false);
        while Instant::now() < deadline && !(agreed.is_some() && restarted && written) {
            tokio::time::sleep(Duration::from_millis(250)).await;
            restarted = self.observer().pods_now().get(&leader).is_some_and(|p| p.restarts > restarts && p.ready);
            written = self.shared.model().last_persistent_ack.is_some_and(|t| t > killed_at + Duration::from_secs(1));
            // Every member (the restarted one too) names the same leader.
            let views: Vec<serde_json::Value> = (0..3).filter_map(|i| self.observer().member_now(i)).collect();
            let leaders: BTreeSet<&str> = views.iter().filter_map(|v| v["raft"]["leader"].as_str()).collect();
            agreed = (restarted && views.len() == 3 && leaders.len() == 1)
                .then(|| (leaders.iter().next().map(|l| l.to_string()), views.iter().map(term).max()));
        }
        let Some((new_leader, new_term)) = agreed else {
            return self
                .check_node(Err(format!("the members did not agree on a leader within 30 s of killing {leader}")));
        };
        // Either outcome is Raft: another member wins an election, or the
        // restarted leader (up to date, from its disk) leads on.
        self.note(format!("after the kill the leader is {new_leader:?}, Raft term {new_term:?} (was {term_before})"));
        self.check_node(ensure(written, || "no persistent write was acknowledged after the kill".into()))?;
        self.check_node(ensure(restarted, || format!("{leader} did not restart and turn Ready within 30 s")))?;
        let recovered = self.wait_for("Degraded=False", "60s").await;
        self.check(recovered.map_err(|_| "Degraded did not return to False".to_owned()))?;
        let versions = self.versions_since(killed_at);
        let degraded = condition_trail(&versions, CONDITION_DEGRADED);
        self.check(ensure(degraded.iter().any(|(s, _)| s == "True"), || {
            format!("a killed member is unplanned, Degraded should say so: {}", show(&degraded))
        }))?;
        let progressing = condition_trail(&versions, CONDITION_PROGRESSING);
        self.check(ensure(progressing.iter().all(|(s, _)| s == "False"), || {
            format!("no change of the spec is in progress, Progressing should stay False: {}", show(&progressing))
        }))?;
        self.voters_kept(killed_at, 3)?;
        self.settle(3).await?;
        self.expect_events(&["Degraded", "Recovered"]).await?;
        self.end();
        Ok(())
    }

    /// A roll during which the operator is stopped after its first restart
    /// and started again: the roll stands still, then finishes as a roll
    /// should.
    pub async fn operator_restart_mid_roll(&mut self) -> Step {
        self.begin("operator restart mid-roll");
        let patched = Instant::now();
        self.patch_template("2")?;
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.roll_seen(patched, 3).order.is_empty() {
            if Instant::now() > deadline {
                return self.check(Err("the roll did not start within 60 s".into()));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.operator.stop();
        eprintln!("   operator stopped after {:?} restarted", self.roll_seen(patched, 3).order);
        tokio::time::sleep(Duration::from_secs(8)).await;
        let while_down = self.roll_seen(patched, 3).order;
        self.check(ensure(while_down.len() == 1, || {
            format!("pods were restarted while the operator was down: {while_down:?}")
        }))?;
        let started = self.operator.start();
        self.harness(started)?;
        self.wait_for("Progressing=False", "180s").await?;
        self.rolled_properly(patched, 3).await?;
        self.carried_out_means_ready(patched, 3)?;
        self.planned_throughout(patched, false)?;
        self.voters_kept(patched, 3)?;
        let leading = self.operator.log().matches("became leader").count();
        self.check(ensure(leading >= 2, || format!("the restarted operator did not take the Lease ({leading})")))?;
        self.settle(3).await?;
        self.expect_events(&["RollingUpdate", "ChangeCarriedOut"]).await?;
        self.end();
        Ok(())
    }

    /// `kubectl delete` of the RegistryCluster: owned objects go, PVCs stay,
    /// the server list goes, the operator says nothing alarming; then the
    /// same RegistryCluster again, over the kept volumes: every
    /// acknowledged persistent write is back, the clients come back.
    pub async fn delete_and_recreate(&mut self) -> Step {
        self.begin("delete and re-create");
        let ns = self.namespace.clone();
        let log_before = self.operator.log().len();
        self.kubectl_step(&["-n", &ns, "delete", &format!("registrycluster/{NAME}"), "--wait=true"])?;
        let deadline = Instant::now() + Duration::from_secs(60);
        let owned = [
            format!("statefulset/{NAME}"),
            format!("service/{NAME}"),
            format!("service/{NAME}-headless"),
            format!("configmap/{NAME}-config"),
            format!("poddisruptionbudget/{NAME}"),
            format!("secret/{NAME}-cluster-secret"),
        ];
        loop {
            let pods = self.observer().pods_now().len();
            let left: Vec<&String> = owned
                .iter()
                .filter(|o| {
                    self.kubectl.run(&["-n", &ns, "get", o, "-o", "name"]).is_ok_and(|out| !out.trim().is_empty())
                })
                .collect();
            if pods == 0 && left.is_empty() {
                break;
            }
            if Instant::now() > deadline {
                return self.check(Err(format!("60 s after the delete: {pods} pods and {left:?} remain")));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        let pvcs = self.kubectl.run(&[
            "-n",
            &ns,
            "get",
            "pvc",
            "-o",
            "jsonpath={range .items[*]}{.metadata.name}={.status.phase} {end}",
        ]);
        let pvcs = self.harness(pvcs)?;
        let kept = (0..3).all(|i| pvcs.contains(&format!("data-{NAME}-{i}=Bound")));
        self.check(ensure(kept, || format!("the data volumes must be kept: {pvcs}")))?;
        let url = format!("http://{OPERATOR_IP}:8080/v1/clusters/{ns}/{NAME}/serverlist");
        let status = reqwest::get(&url).await.map(|r| r.status().as_u16()).unwrap_or(0);
        self.check(ensure(status == 404, || format!("the deleted cluster's server list answers {status}, not 404")))?;
        let log = self.operator.log();
        let noisy: Vec<&str> = log[log_before.min(log.len())..]
            .lines()
            .filter(|l| l.contains("\"WARN\"") || l.contains(" WARN "))
            .collect();
        self.check(ensure(noisy.is_empty(), || format!("the deletion logged warnings: {noisy:?}")))?;

        let recreated = Instant::now();
        let manifest = super::steps::manifest(&ns, 3, "2");
        let out = self.kubectl.apply(&manifest);
        self.harness(out)?;
        self.wait_for("Available", "120s").await?;
        self.wait_for("Progressing=False", "120s").await?;
        self.carried_out_means_ready(recreated, 3)?;
        // Every member restarted: the ephemeral data is gone with them and
        // the clients register again (the SDK after its reconnect back-off,
        // up to 32 s by then; the HTTP clients at their next beat). What
        // was acknowledged as persistent must all be back.
        self.settle_after_full_restart(3).await?;
        self.expect_events(&["Creating", "Available", "ChangeCarriedOut"]).await?;
        self.end();
        Ok(())
    }
}
