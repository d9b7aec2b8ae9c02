//! A peer's server process (r-nacos, etcd) started by the benchmark: its
//! output goes to a log file beside its data, and it is killed and reaped
//! when dropped, so an error, a panic or Ctrl-C stops it too.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::{Context, Result};

/// One running server process.
#[derive(Debug)]
pub struct PeerProcess {
    child: Child,
    /// What it is, for messages (`r-nacos 127.1.2.3`).
    pub name: String,
    log: PathBuf,
}

impl PeerProcess {
    /// Starts `program` with `args` and `envs` in `cwd`, its stdout and
    /// stderr appended to `log`.
    pub fn spawn(
        name: String,
        program: &Path,
        args: &[String],
        envs: &[(String, String)],
        cwd: &Path,
        log: PathBuf,
    ) -> Result<Self> {
        let out = File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let err = out.try_clone().context("log file handle")?;
        let child = Command::new(program)
            .args(args)
            .envs(envs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .current_dir(cwd)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .with_context(|| format!("starting {name} ({})", program.display()))?;
        Ok(PeerProcess { child, name, log })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The last `lines` lines of its log, to explain a failure.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// The lines of its log that contain `needle` (e.g. a panic's message,
    /// which a backtrace pushes out of the tail).
    pub fn log_lines_with(&self, needle: &str) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        text.lines().filter(|l| l.contains(needle)).collect::<Vec<_>>().join("\n")
    }

    /// Fails, with the end of its log, if the process has exited.
    pub fn check_running(&mut self) -> Result<()> {
        match self.child.try_wait() {
            Ok(Some(status)) => anyhow::bail!("{} exited ({status}): {}", self.name, self.log_tail(5)),
            _ => Ok(()),
        }
    }
}

impl Drop for PeerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
