//! The three node processes and the fault schedule: `kill -9` and a
//! restart on the same data directory, a partition through the fault
//! switch and its healing, or a few dropped Distro syncs, one at a time so
//! Raft always keeps its quorum.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use roster_node::peer::FaultSettings;

use super::config::ChaosConfig;
use super::world::World;
use super::NODES;
use crate::cluster::{blocking, node_args, set_faults, write_member_file, Lookup};
use crate::{loopback_ips, NodeProcess};

/// Three node processes sharing a member file, each with its own data
/// directory kept across restarts.
pub(super) struct Nodes {
    dir: tempfile::TempDir,
    conf: PathBuf,
    pub(super) ips: Vec<String>,
    procs: Vec<Option<NodeProcess>>,
    extra: Vec<String>,
}

impl Nodes {
    /// Three nodes on their own loopback addresses (none started yet).
    pub(super) fn new(config: &ChaosConfig) -> Result<Nodes> {
        let dir = tempfile::tempdir().context("tempdir")?;
        let conf = dir.path().join("cluster.conf");
        let ips = loopback_ips(NODES as u8);
        let members: Vec<String> = ips.iter().map(|ip| format!("{ip}:8848")).collect();
        write_member_file(&conf, &members);
        Ok(Nodes { dir, conf, ips, procs: (0..NODES).map(|_| None).collect(), extra: config.node_args.clone() })
    }

    /// The member names (`ip:8848`), by index.
    pub(super) fn members(&self) -> Vec<String> {
        self.ips.iter().map(|ip| format!("{ip}:8848")).collect()
    }

    /// Flags of node `i`: short membership, Distro, beat and Raft timers,
    /// the fault switch, no health checks of persistent instances (their
    /// addresses are made up), then the run's own flags.
    fn args(&self, i: usize) -> Vec<String> {
        let mut args = node_args(&self.ips[i], Lookup::File(&self.conf));
        let data = self.dir.path().join(format!("data-{i}")).to_string_lossy().into_owned();
        let timers = [
            ("--data-dir", data.as_str()),
            ("--distro-sync-delay", "50ms"),
            ("--distro-sync-retry-delay", "200ms"),
            ("--distro-sync-timeout", "1s"),
            ("--distro-verify-interval", "500ms"),
            ("--distro-copy-expiry", "3s"),
            ("--distro-load-retry-delay", "300ms"),
            ("--beat-timeout", "3s"),
            ("--beat-delete-timeout", "6s"),
            ("--beat-check-interval", "200ms"),
            ("--push-delay", "20ms"),
            ("--push-timeout", "2s"),
            ("--push-retry-delay", "200ms"),
            ("--raft-election-timeout-min", "300ms"),
            ("--raft-election-timeout-max", "600ms"),
            ("--raft-heartbeat-interval", "100ms"),
            ("--raft-write-timeout", "3s"),
            ("--health-check-interval", "0"),
        ];
        // A flag may be given once: the run's own flags replace the suite's.
        let timers = timers.iter().filter(|(flag, _)| !self.extra.iter().any(|e| e == flag));
        args.extend(timers.flat_map(|(flag, value)| [flag.to_string(), value.to_string()]));
        args.push("--fault-injection".into());
        args.extend(self.extra.iter().cloned());
        args
    }

    /// Starts node `i` (again) on its data directory and waits until it serves.
    pub(super) async fn start(&mut self, i: usize) -> Result<()> {
        let args = self.args(i);
        let node = tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            NodeProcess::start(&args, &[])
        })
        .await
        .context("starting a node")??;
        self.procs[i] = Some(node);
        Ok(())
    }

    /// Kills node `i` (`kill -9`) and reaps it.
    pub(super) fn kill(&mut self, i: usize) {
        if let Some(mut node) = self.procs[i].take() {
            node.kill();
        }
    }
}

/// The fault schedule: until `deadline`, one fault at a time at random
/// moments, each healed (and the cluster formed again) before the next.
pub(super) async fn fault_schedule(
    world: &Arc<World>,
    nodes: &mut Nodes,
    rng: &mut fastrand::Rng,
    deadline: Instant,
    count: &mut usize,
) -> Result<()> {
    loop {
        let pause = Duration::from_millis(rng.u64(500..2500));
        if Instant::now() + pause >= deadline {
            return Ok(());
        }
        tokio::time::sleep(pause).await;
        let victim = rng.usize(..NODES);
        *count += 1;
        match rng.u32(..100) {
            0..45 => {
                let outage = Duration::from_millis(rng.u64(300..3000));
                world.log(format!("kill -9 node {victim}, restart after {outage:?}"));
                world.up[victim].store(false, Ordering::SeqCst);
                nodes.kill(victim);
                tokio::time::sleep(outage).await;
                nodes.start(victim).await.with_context(|| format!("restarting node {victim}"))?;
                world.up[victim].store(true, Ordering::SeqCst);
                world.set_baseline_faults().await?;
            }
            45..85 => {
                let span = Duration::from_millis(rng.u64(500..4000));
                world.log(format!("partition node {victim} from the others for {span:?}"));
                let members = nodes.members();
                let others: Vec<&str> = (0..NODES).filter(|i| *i != victim).map(|i| members[i].as_str()).collect();
                let cut =
                    FaultSettings { blocked_members: blocking(&others).blocked_members, ..world.baseline(victim) };
                set_faults(world.http(victim), &cut).await?;
                for i in (0..NODES).filter(|i| *i != victim) {
                    let cut = FaultSettings {
                        blocked_members: blocking(&[&members[victim]]).blocked_members,
                        ..world.baseline(i)
                    };
                    set_faults(world.http(i), &cut).await?;
                }
                tokio::time::sleep(span).await;
                world.log(format!("heal node {victim}'s partition"));
                world.set_baseline_faults().await?;
            }
            _ => {
                let drops = rng.u64(1..5);
                world.log(format!("node {victim} drops its next {drops} syncs"));
                set_faults(world.http(victim), &FaultSettings { drop_syncs: drops, ..world.baseline(victim) }).await?;
                continue;
            }
        }
        world.wait_formed().await?;
    }
}
