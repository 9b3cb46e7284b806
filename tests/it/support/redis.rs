//! Throwaway Redis deployments for tests, each in its own temporary
//! directory on free ports, killed on drop: a standalone server
//! ([`RedisServer`]), a three-master cluster ([`RedisCluster`]) and a
//! master + replica watched by three Sentinels ([`RedisSentinel`]).
//!
//! Needs `redis-server` and `redis-cli` on `PATH` (Debian: `redis-server`
//! and `redis-tools`). Every wait is bounded.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::process::Process;
use super::{READY_TIMEOUT, free_port};

/// One `redis-server` (also used for cluster nodes and Sentinels).
pub struct RedisServer {
    port: u16,
    dir: TempDir,
    /// A config file, which `redis-server` wants as its first argument.
    conf: Option<PathBuf>,
    args: Vec<String>,
    process: Option<Process>,
    starts: u32,
}

impl RedisServer {
    /// A standalone server without persistence.
    pub async fn start() -> RedisServer {
        RedisServer::start_with(&[]).await
    }

    /// A server with extra `redis-server` arguments (e.g.
    /// `["--requirepass", "s3cret"]`). Retries on another port if the
    /// chosen one was taken in the meantime.
    pub async fn start_with(extra: &[&str]) -> RedisServer {
        let mut last = String::new();
        for _ in 0..5 {
            let mut server = RedisServer {
                port: pick_port(),
                dir: TempDir::new().expect("redis: temp dir"),
                conf: None,
                args: extra.iter().map(|a| a.to_string()).collect(),
                process: None,
                starts: 0,
            };
            match server.spawn().await {
                Ok(()) => return server,
                Err(e) if e.contains("in use") => last = e,
                Err(e) => panic!("{e}"),
            }
        }
        panic!("redis-server: no free port after 5 tries; last:\n{last}")
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Kills the server (SIGKILL): an outage.
    pub fn stop(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.kill();
        }
    }

    /// Starts it again on the same port (data is gone: no persistence).
    pub async fn restart(&mut self) {
        self.stop();
        self.spawn().await.expect("redis-server restart");
    }

    /// Runs `redis-cli -p <port> <args>` and returns its stdout.
    pub fn cli(&self, args: &[&str]) -> String {
        cli(self.port, args)
    }

    /// Sends the server a signal with `kill`: `"STOP"` freezes it (a
    /// stalled node: its connections stay open, nothing is read or sent),
    /// `"CONT"` wakes it.
    pub fn signal(&self, name: &str) {
        let pid = self.process.as_ref().map_or(0, Process::pid);
        assert_ne!(pid, 0, "redis-server on {} is not running", self.port);
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(pid.to_string())
            .status()
            .expect("kill: cannot run");
        assert!(status.success(), "kill -{name} redis-server: {status}");
    }

    async fn spawn(&mut self) -> Result<(), String> {
        self.starts += 1;
        let mut cmd = Command::new("redis-server");
        if let Some(conf) = &self.conf {
            cmd.arg(conf);
        }
        let port = self.port.to_string();
        cmd.args([
            "--port",
            &port,
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .arg("--dir")
        .arg(self.dir.path())
        .args(&self.args);
        let log = self.dir.path().join(format!("redis-{}.log", self.starts));
        let mut process = Process::spawn("redis-server", cmd, &log)?;
        wait_ping(self.port, &mut process).await?;
        self.process = Some(process);
        Ok(())
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A free port whose cluster-bus twin (`port + 10000`) is free too.
fn pick_port() -> u16 {
    for _ in 0..50 {
        let port = free_port();
        if port < 55_535 && TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return port;
        }
    }
    panic!("no free port pair for redis-server")
}

/// Waits until the server answers `PING` (or asks for a password).
async fn wait_ping(port: u16, process: &mut Process) -> Result<(), String> {
    let started = Instant::now();
    while started.elapsed() < READY_TIMEOUT {
        if !process.is_running() {
            return Err(format!(
                "redis-server on {port} exited:\n{}",
                process.logs()
            ));
        }
        if ping(port).is_some_and(|r| r.starts_with("+PONG") || r.starts_with("-NOAUTH")) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Err(format!(
        "redis-server on {port} not ready in {READY_TIMEOUT:?}:\n{}",
        process.logs()
    ))
}

fn ping(port: u16) -> Option<String> {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .ok()?;
    stream.write_all(b"PING\r\n").ok()?;
    let mut buf = [0u8; 64];
    let n = stream.read(&mut buf).ok()?;
    Some(String::from_utf8_lossy(&buf[..n]).into_owned())
}

/// `redis-cli -p <port> <args>`, stdout trimmed.
pub fn cli(port: u16, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .arg("-p")
        .arg(port.to_string())
        .args(args)
        .output()
        .expect("redis-cli: cannot run");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Polls `check` every 50 ms until it is true, for at most `limit`.
async fn wait_until(what: &str, limit: Duration, mut check: impl FnMut() -> bool) {
    let started = Instant::now();
    while !check() {
        assert!(
            started.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A Redis Cluster of three masters, no replicas.
pub struct RedisCluster {
    pub nodes: Vec<RedisServer>,
}

impl RedisCluster {
    pub async fn start() -> RedisCluster {
        RedisCluster::start_with(&[]).await
    }

    /// A cluster whose nodes get extra `redis-server` arguments (e.g.
    /// `["--cluster-require-full-coverage", "no"]`: the live masters keep
    /// serving their slots when one is gone).
    pub async fn start_with(extra: &[&str]) -> RedisCluster {
        let mut nodes = Vec::new();
        for _ in 0..3 {
            let mut args = vec![
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
                "--cluster-node-timeout",
                "2000",
            ];
            args.extend_from_slice(extra);
            nodes.push(RedisServer::start_with(&args).await);
        }
        let addrs: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let out = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addrs)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .expect("redis-cli --cluster create");
        assert!(
            out.status.success(),
            "cluster create failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        for node in &nodes {
            wait_until("cluster_state:ok", Duration::from_secs(15), || {
                node.cli(&["CLUSTER", "INFO"]).contains("cluster_state:ok")
            })
            .await;
        }
        RedisCluster { nodes }
    }

    /// The nodes' URLs (seeds for the cluster client).
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }
}

/// A master, one replica, and three Sentinels (quorum 2) watching them.
pub struct RedisSentinel {
    pub master: RedisServer,
    pub replica: RedisServer,
    pub sentinels: Vec<RedisServer>,
}

/// The monitored master's name.
pub const MASTER_NAME: &str = "wardmaster";

impl RedisSentinel {
    pub async fn start() -> RedisSentinel {
        // No 5 s wait before the replica's first full sync.
        let master = RedisServer::start_with(&["--repl-diskless-sync-delay", "0"]).await;
        let master_port = master.port.to_string();
        let replica = RedisServer::start_with(&["--replicaof", "127.0.0.1", &master_port]).await;
        wait_until("the replica to sync", Duration::from_secs(10), || {
            replica
                .cli(&["INFO", "replication"])
                .contains("master_link_status:up")
        })
        .await;
        let ports: Vec<u16> = (0..3).map(|_| pick_port()).collect();
        let mut sentinels = Vec::new();
        for (i, port) in ports.iter().enumerate() {
            let conf = sentinel_conf(i, &ports, master.port, replica.port);
            let dir = TempDir::new().expect("sentinel: temp dir");
            let path = dir.path().join("sentinel.conf");
            std::fs::write(&path, conf).expect("sentinel: write conf");
            let mut sentinel = RedisServer {
                port: *port,
                dir,
                conf: Some(path),
                args: vec!["--sentinel".into()],
                process: None,
                starts: 0,
            };
            sentinel.spawn().await.expect("sentinel start");
            sentinels.push(sentinel);
        }
        let sentinel = RedisSentinel {
            master,
            replica,
            sentinels,
        };
        for s in &sentinel.sentinels {
            wait_until(
                "the sentinels to see the master",
                Duration::from_secs(10),
                || {
                    s.cli(&["SENTINEL", "master", MASTER_NAME])
                        .contains("num-other-sentinels\n2")
                },
            )
            .await;
        }
        sentinel
    }

    /// The Sentinels' URLs.
    pub fn urls(&self) -> Vec<String> {
        self.sentinels.iter().map(RedisServer::url).collect()
    }

    /// Kills the master: the Sentinels promote the replica (~2–3 s).
    pub fn kill_master(&mut self) {
        self.master.stop();
    }

    /// The master port the first reachable Sentinel names.
    pub fn master_port(&self) -> Option<u16> {
        self.sentinels.iter().find_map(|s| {
            let out = s.cli(&["SENTINEL", "get-master-addr-by-name", MASTER_NAME]);
            out.lines().nth(1)?.trim().parse().ok()
        })
    }
}

fn sentinel_conf(me: usize, ports: &[u16], master: u16, replica: u16) -> String {
    let id = |i: usize| format!("{:040x}", i + 1);
    let mut conf = format!(
        "sentinel myid {}\n\
         sentinel monitor {MASTER_NAME} 127.0.0.1 {master} 2\n\
         sentinel down-after-milliseconds {MASTER_NAME} 1000\n\
         sentinel failover-timeout {MASTER_NAME} 5000\n\
         sentinel known-replica {MASTER_NAME} 127.0.0.1 {replica}\n",
        id(me)
    );
    for (i, port) in ports.iter().enumerate().filter(|(i, _)| *i != me) {
        conf.push_str(&format!(
            "sentinel known-sentinel {MASTER_NAME} 127.0.0.1 {port} {}\n",
            id(i)
        ));
    }
    conf
}
