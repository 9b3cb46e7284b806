//! Runs the real ward binary (`ward serve --config FILE`) for black-box tests.
//!
//! The test gives the config as YAML without caring about ports: `listen.grpc`,
//! `listen.admin` and `listen.http` are overwritten with free 127.0.0.1 ports, and the
//! placeholder `{{tmp}}` is replaced by this ward's private temporary directory
//! (for a unix socket path, say). A config whose `management:` section has
//! `auth` gets a free port for `management.listen` too
//! (`Ward::management_addr`). ward runs with the crate root as its working
//! directory, so `tests/fixtures/...` paths work as written.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_yaml_ng::{Mapping, Value};
use tempfile::TempDir;

use super::free_addrs;
use super::process::Process;

/// A running ward; killed when dropped.
pub struct Ward {
    /// ext_authz gRPC (Check + grpc.health.v1).
    pub grpc_addr: SocketAddr,
    /// HTTP admin: /healthz, /readyz, /metrics.
    pub admin_addr: SocketAddr,
    /// HTTP ext_authz mode (on in tests unless the config says
    /// `listen: {http: ~}`).
    pub http_addr: SocketAddr,
    /// The management API (`management.listen`), when the config has
    /// `management.auth`.
    pub management_addr: Option<SocketAddr>,
    process: Process,
    config_path: PathBuf,
    dir: TempDir,
}

impl Ward {
    /// Starts ward with `yaml` and waits until `/readyz` answers 200.
    /// Panics with ward's output if it does not become ready.
    pub async fn start(yaml: &str) -> Ward {
        Self::try_start(yaml)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Like [`Ward::start`], but returns ward's failure (with its output) for
    /// tests that expect a bad config to be refused.
    pub async fn try_start(yaml: &str) -> Result<Ward, String> {
        let mut last_err = String::new();
        // A free port can be taken by someone else before ward binds it: retry.
        for _ in 0..3 {
            match Self::start_once(yaml, "/readyz").await {
                Ok(ward) => return Ok(ward),
                Err(e) if e.contains("in use") => last_err = e,
                Err(e) => return Err(e),
            }
        }
        Err(last_err)
    }

    /// Starts ward and waits only until its admin port answers (any
    /// status): for a ward that is not meant to become ready.
    pub async fn start_unready(yaml: &str) -> Ward {
        Self::start_once(yaml, "/healthz")
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    async fn start_once(yaml: &str, probe: &str) -> Result<Ward, String> {
        let dir = tempfile::tempdir().map_err(|e| format!("ward: tempdir: {e}"))?;
        let [grpc_addr, admin_addr, http_addr, management] = free_addrs::<4>();
        let (config, management_addr) = with_listen(
            yaml,
            dir.path(),
            [grpc_addr, admin_addr, http_addr, management],
        )?;
        let config_path = dir.path().join("ward.yaml");
        std::fs::write(&config_path, config).map_err(|e| format!("ward: write config: {e}"))?;

        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ward"));
        cmd.arg("serve")
            .arg("--config")
            .arg(&config_path)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env("NO_COLOR", "1");
        let mut process = Process::spawn("ward", cmd, &dir.path().join("ward.log"))?;
        process.wait_ready(admin_addr, probe).await?;
        Ok(Ward {
            grpc_addr,
            admin_addr,
            http_addr,
            management_addr,
            process,
            config_path,
            dir,
        })
    }

    /// ward's process id (to send it a signal).
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// Sends ward a signal with `kill`: `"TERM"`, `"HUP"`, ...
    pub fn signal(&self, name: &str) {
        let sent = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid().to_string())
            .status()
            .map_err(|e| e.to_string())
            .and_then(|s| s.success().then_some(()).ok_or(s.to_string()));
        if let Err(e) = sent {
            panic!("kill -{name} ward: {e}");
        }
    }

    /// Waits up to `limit` for ward to exit by itself; its exit code.
    pub async fn wait_exit(&mut self, limit: std::time::Duration) -> Option<i32> {
        self.process.wait_exit(limit).await
    }

    /// Kills ward now (e.g. to check that Envoy then fails closed).
    pub fn stop(&mut self) {
        self.process.kill();
    }

    /// Whether the ward process is still alive.
    pub fn is_running(&mut self) -> bool {
        self.process.is_running()
    }

    /// Everything ward printed so far (stdout and stderr).
    pub fn logs(&self) -> String {
        self.process.logs()
    }

    /// The config file ward was started with (ports filled in).
    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// This ward's private temporary directory (`{{tmp}}` in the config).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

/// `yaml` with `{{tmp}}` replaced and `listen.grpc` / `listen.admin` set
/// (and `management.listen`, returned, when there is `management.auth`).
fn with_listen(
    yaml: &str,
    tmp: &Path,
    [grpc, admin, http, management]: [SocketAddr; 4],
) -> Result<(String, Option<SocketAddr>), String> {
    let yaml = yaml.replace("{{tmp}}", &tmp.display().to_string());
    let mut doc: Value = serde_yaml_ng::from_str(&yaml)
        .map_err(|e| format!("ward: test config is not YAML: {e}"))?;
    if doc.is_null() {
        doc = Value::Mapping(Mapping::new());
    }
    let root = doc
        .as_mapping_mut()
        .ok_or("ward: test config must be a YAML mapping")?;
    let listen = root
        .entry(Value::from("listen"))
        .or_insert_with(|| Value::Mapping(Mapping::new()));
    let listen = listen
        .as_mapping_mut()
        .ok_or("ward: `listen` must be a mapping")?;
    listen.insert(Value::from("grpc"), Value::from(grpc.to_string()));
    listen.insert(Value::from("admin"), Value::from(admin.to_string()));
    // `listen: {http: ~}` in a test config keeps the HTTP mode off.
    if !listen.get("http").is_some_and(Value::is_null) {
        listen.insert(Value::from("http"), Value::from(http.to_string()));
    }
    // The listener needs `auth`: a section without it (back-channel
    // logout's settings alone) keeps the management listener off.
    let section = root.get_mut("management").and_then(Value::as_mapping_mut);
    let management = match section.filter(|s| s.contains_key("auth")) {
        Some(section) => {
            section.insert(Value::from("listen"), Value::from(management.to_string()));
            Some(management)
        }
        None => None,
    };
    let text =
        serde_yaml_ng::to_string(&doc).map_err(|e| format!("ward: serialize config: {e}"))?;
    Ok((text, management))
}
