//! A child process that logs to a file, is killed when dropped, and is
//! considered started only once an HTTP readiness probe answers 200.

use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{READY_TIMEOUT, http, read_log};

/// A spawned process whose stdout and stderr go to `log_path`.
pub struct Process {
    name: &'static str,
    child: Option<Child>,
    log_path: PathBuf,
}

impl Process {
    /// Spawns `cmd` with stdin closed and stdout/stderr appended to `log_path`.
    pub fn spawn(name: &'static str, mut cmd: Command, log_path: &Path) -> Result<Process, String> {
        let log = File::create(log_path).map_err(|e| format!("{name}: create log: {e}"))?;
        let log2 = log
            .try_clone()
            .map_err(|e| format!("{name}: clone log: {e}"))?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .map_err(|e| format!("{name}: cannot spawn {cmd:?}: {e}"))?;
        Ok(Process {
            name,
            child: Some(child),
            log_path: log_path.to_owned(),
        })
    }

    /// Everything the process printed so far.
    pub fn logs(&self) -> String {
        read_log(&self.log_path)
    }

    /// Whether the process is still alive.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Polls `GET probe_path` on `addr` until it answers 200. Fails early if
    /// the process exits, and after [`READY_TIMEOUT`].
    pub async fn wait_ready(&mut self, addr: SocketAddr, probe_path: &str) -> Result<(), String> {
        let started = Instant::now();
        let mut last = String::from("no answer yet");
        while started.elapsed() < READY_TIMEOUT {
            if !self.is_running() {
                let status = self
                    .child
                    .as_mut()
                    .and_then(|c| c.try_wait().ok().flatten());
                return Err(format!(
                    "{} exited before it was ready ({status:?}); its output:\n{}",
                    self.name,
                    self.logs()
                ));
            }
            match http::get(addr, probe_path).await {
                Ok(resp) if resp.status == 200 => return Ok(()),
                Ok(resp) => last = format!("status {}: {}", resp.status, resp.text()),
                Err(e) => last = e.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Err(format!(
            "{} not ready on http://{addr}{probe_path} within {READY_TIMEOUT:?} (last: {last}); its output:\n{}",
            self.name,
            self.logs()
        ))
    }

    /// The OS process id (0 once killed).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Waits up to `limit` for the process to exit by itself; its exit code.
    pub async fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        let started = Instant::now();
        while started.elapsed() < limit {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                return status.code();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        None
    }

    /// Kills the process (SIGKILL) and reaps it. Idempotent.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}
