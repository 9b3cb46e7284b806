//! Wiring and lifecycle: bind every listener, start the JWKS fetchers,
//! serve gRPC (TCP and optionally a Unix socket) and the admin port, and
//! drain on shutdown. Every listener accepts through `conn.rs` (a cap on
//! open connections, a deadline for the first request); the gRPC ones also
//! get HTTP/2 keepalive pings and stream and header limits from `listen`.
//!
//! Binding is separate from serving so a caller (a test, a supervisor)
//! learns the real addresses before the first check, and so a port that
//! is taken fails startup instead of a background task.

mod admin;
pub mod backchannel;
pub mod conn;
mod cores;
mod generation;
mod grpc;
mod http;
pub mod management;
mod reload;
mod trace;
pub mod unary;
pub mod wire;

use crate::clock::Clock;
use crate::config::Config;
use crate::metrics::{Listener, Metrics};
use crate::response::Responder;
use generation::{Generation, Live, Shared};
use grpc::AuthzServer;
pub use grpc::pre_encode;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot bind {what} on {addr}: {source}")]
    Bind {
        what: &'static str,
        addr: String,
        source: std::io::Error,
    },
    #[error("cannot load keys: {0}")]
    Keys(#[from] crate::jwt::keys::KeyError),
    #[error("store: {0}")]
    Store(#[from] crate::store::OpenError),
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error("gRPC server: {0}")]
    Grpc(#[from] tonic::transport::Error),
    #[error("admin server: {0}")]
    Admin(std::io::Error),
    #[error("policies: {0}")]
    Policies(#[from] crate::policy::PolicyErrors),
    #[error("management API: {0}")]
    Management(String),
}

/// A ward whose listeners are bound, ready to serve.
pub struct Server {
    grpc: TcpListener,
    unix: Option<(UnixListener, PathBuf)>,
    admin: TcpListener,
    http: Option<TcpListener>,
    /// `management.listen`: the management API, off unless set.
    management: Option<management::Bound>,
    live: Arc<Live>,
    shared: Shared,
    /// The config file to reload from (`ward serve`); `None`: no reload.
    reload_from: Option<PathBuf>,
    drain_delay: Duration,
    shutdown_grace: Duration,
    /// Check workers (`runtime.worker_threads`, 0 resolved): the runtime
    /// `serve` runs on, plus `cores.rs` for the others.
    workers: usize,
}

/// A socket file left by a previous run would make bind fail; anything
/// else at that path (a regular file, a directory) is left alone and the
/// bind error names it.
fn remove_stale_socket(path: &std::path::Path) {
    use std::os::unix::fs::FileTypeExt;
    if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket()) {
        let _ = std::fs::remove_file(path);
    }
}

impl Server {
    /// Loads keys and binds every listener named in `config`.
    pub async fn bind(config: &Config) -> Result<Server, ServerError> {
        Self::bind_with_clock(config, Clock::Monotonic).await
    }

    /// [`Server::bind`], with the cache and limiter windows on `clock`
    /// (tests pass a manual one).
    pub async fn bind_with_clock(config: &Config, clock: Clock) -> Result<Server, ServerError> {
        Self::bind_text(config, "", clock).await
    }

    /// `ward serve`: binds `config`, parsed from `text` (the file at
    /// `path`), and reloads from `path` on SIGHUP and when it or a file it
    /// names changes (`server/reload.rs`).
    pub async fn bind_reloading(
        config: &Config,
        text: &str,
        path: &std::path::Path,
    ) -> Result<Server, ServerError> {
        let mut server = Self::bind_text(config, text, Clock::Monotonic).await?;
        server.reload_from = Some(path.to_path_buf());
        Ok(server)
    }

    async fn bind_text(config: &Config, text: &str, clock: Clock) -> Result<Server, ServerError> {
        let shared = Shared {
            metrics: Arc::new(Metrics::new()?),
            clock,
            listen: config.listen.clone(),
        };
        let digests = reload::digest::Digests::of(text, config);
        let (generation, _) = Generation::build(config.clone(), digests, None, &shared).await?;
        let bind_err = |what, addr: String| move |source| ServerError::Bind { what, addr, source };
        let listen = &config.listen;
        let grpc =
            conn::bind_tcp(listen.grpc).map_err(bind_err("gRPC", listen.grpc.to_string()))?;
        let admin =
            conn::bind_tcp(listen.admin).map_err(bind_err("admin", listen.admin.to_string()))?;
        let http = match listen.http {
            Some(addr) => {
                Some(conn::bind_tcp(addr).map_err(bind_err("HTTP ext_authz", addr.to_string()))?)
            }
            None => None,
        };
        let management = management::bind(&config.management, listen.handshake_timeout)?;
        let unix = match &listen.unix_socket {
            Some(path) => {
                remove_stale_socket(path);
                let listener = UnixListener::bind(path)
                    .map_err(bind_err("unix socket", path.display().to_string()))?;
                Some((listener, path.clone()))
            }
            None => None,
        };
        Ok(Server {
            grpc,
            unix,
            admin,
            http,
            management,
            live: Live::new(generation),
            shared,
            reload_from: None,
            drain_delay: config.runtime.drain_delay,
            shutdown_grace: config.runtime.shutdown_grace,
            workers: crate::runtime::workers(config.runtime.worker_threads),
        })
    }

    pub fn grpc_addr(&self) -> Option<SocketAddr> {
        self.grpc.local_addr().ok()
    }

    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.local_addr().ok()
    }

    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http.as_ref().and_then(|l| l.local_addr().ok())
    }

    pub fn management_addr(&self) -> Option<SocketAddr> {
        self.management
            .as_ref()
            .and_then(management::Bound::local_addr)
    }

    /// Serves until `shutdown` completes, then drains in-flight checks for
    /// up to `runtime.shutdown_grace`.
    pub async fn serve(self, shutdown: impl Future<Output = ()> + Send) -> Result<(), ServerError> {
        let (stop_tx, stop_rx) = watch::channel(false);
        if let Some(path) = self.reload_from.clone() {
            let reloader = reload::Reloader {
                path,
                live: self.live.clone(),
                shared: self.shared.clone(),
            };
            tokio::spawn(reloader.run(stop_rx.clone()));
        }
        let (health, health_service) = tonic_health::server::health_reporter();
        health.set_serving::<AuthzServer<Live>>().await;
        let draining = Arc::new(AtomicBool::new(false));
        let (drain_delay, shutdown_grace) = (self.drain_delay, self.shutdown_grace);
        let authz = AuthzServer::new(self.live.clone());
        let listen = self.shared.listen.clone();
        let keepalive = (!listen.keepalive_interval.is_zero()).then_some(listen.keepalive_interval);
        let router = || {
            tonic::transport::Server::builder()
                .http2_keepalive_interval(keepalive)
                .http2_keepalive_timeout(Some(listen.keepalive_timeout))
                .max_concurrent_streams(listen.max_concurrent_streams)
                // Envoy resets the calls of requests its clients dropped,
                // many at once when a client pool goes. h2's default (20
                // reset before the server took them) would then close the
                // connection and fail every check on it; as many as may be
                // open at once still bounds a rapid-reset flood.
                .http2_max_pending_accept_reset_streams(Some(
                    usize::try_from(listen.max_concurrent_streams).unwrap_or(usize::MAX),
                ))
                .http2_max_header_list_size(listen.max_header_list_size)
                .add_service(health_service.clone())
                .add_service(authz.clone())
        };
        let tasks = self.spawn_listeners(router, draining.clone(), &stop_rx);
        tracing::info!("ward serving");

        shutdown.await;
        draining.store(true, Ordering::SeqCst);
        health.set_not_serving::<AuthzServer<Live>>().await;
        // The whole server (service name "") drains too, for health checks
        // that name no service.
        health
            .set_service_status("", tonic_health::ServingStatus::NotServing)
            .await;
        if !drain_delay.is_zero() {
            tracing::info!(delay = ?drain_delay, "shutting down: not ready, still answering");
            tokio::time::sleep(drain_delay).await;
        }
        tracing::info!(grace = ?shutdown_grace, "shutting down: draining in-flight checks");
        let _ = stop_tx.send(true);
        tasks.drain(shutdown_grace).await
    }

    /// Starts one task per listener, each behind its connection limits
    /// and stopping when `stop` fires.
    fn spawn_listeners(
        self,
        router: impl Fn() -> tonic::transport::server::Router,
        draining: Arc<AtomicBool>,
        stop: &watch::Receiver<bool>,
    ) -> Tasks {
        let listen = &self.shared.listen;
        let metrics = &self.shared.metrics;
        let limits = |listener: Listener, protocol| conn::Limits {
            name: listener.as_str(),
            protocol,
            max_connections: listen.max_connections,
            handshake_timeout: listen.handshake_timeout,
            metrics: metrics.connections(listener),
        };
        let listeners = 2
            + usize::from(self.unix.is_some())
            + usize::from(self.http.is_some())
            + usize::from(self.management.is_some());
        conn::warn_if_few_descriptors(listeners.saturating_mul(listen.max_connections));
        let stopped = |mut rx: watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|stop| *stop).await;
        };
        let grpc = conn::Limited::new(self.grpc, limits(Listener::Grpc, conn::Protocol::Http2));
        let cores = start_cores(self.workers);
        let core_tasks = cores
            .handles()
            .iter()
            .filter_map(|core| {
                let incoming = share_tcp(&grpc, core)?;
                let serve = router().serve_with_incoming_shutdown(incoming, stopped(stop.clone()));
                Some(core.spawn(serve))
            })
            .collect();
        let tcp = tokio::spawn(router().serve_with_incoming_shutdown(grpc, stopped(stop.clone())));
        let unix = self.unix.map(|(listener, path)| {
            let incoming =
                conn::Limited::new(listener, limits(Listener::Unix, conn::Protocol::Http2));
            let serve = router().serve_with_incoming_shutdown(incoming, stopped(stop.clone()));
            (tokio::spawn(serve), path)
        });
        let app = admin::router(self.live.clone(), metrics.clone(), draining);
        let admin_stop = stopped(stop.clone());
        let admin_listener =
            conn::Limited::new(self.admin, limits(Listener::Admin, conn::Protocol::Http1));
        let admin = tokio::spawn(async move {
            axum::serve(admin_listener, app)
                .with_graceful_shutdown(admin_stop)
                .await
        });
        let management = self.management.map(|bound| {
            let config = &self.live.current().config.management;
            let limits = limits(Listener::Management, conn::Protocol::Sniff);
            management::spawn(
                bound,
                config,
                self.live.clone(),
                limits,
                metrics.clone(),
                stopped(stop.clone()),
            )
        });
        let live = self.live.clone();
        let http = self.http.map(|listener| {
            let listener =
                conn::Limited::new(listener, limits(Listener::Http, conn::Protocol::Http1));
            let stop = stopped(stop.clone());
            tokio::spawn(async move {
                axum::serve(listener, http::router(live))
                    .with_graceful_shutdown(stop)
                    .await
            })
        });
        Tasks {
            tcp,
            cores: (cores, core_tasks),
            unix,
            admin,
            http,
            management,
        }
    }
}

/// The check cores beside this runtime for `workers` (`server/cores.rs`);
/// none if they cannot start (logged: ward then serves on one).
fn start_cores(workers: usize) -> cores::Cores {
    cores::Cores::start(workers.saturating_sub(1)).unwrap_or_else(|e| {
        tracing::error!(error = %e, "cannot start the check cores: serving on one");
        cores::Cores::none()
    })
}

/// An acceptor of `grpc`'s socket on `core`'s runtime (a duplicate of the
/// socket registered there), under the same connection cap; `None` (and
/// logged) if the socket cannot be duplicated.
fn share_tcp(
    grpc: &conn::Limited<TcpListener>,
    core: &tokio::runtime::Handle,
) -> Option<conn::Limited<TcpListener>> {
    use std::os::fd::AsFd;
    let shared = grpc
        .listener()
        .as_fd()
        .try_clone_to_owned()
        .map(std::net::TcpListener::from)
        .and_then(|listener| {
            let _in_core = core.enter();
            TcpListener::from_std(listener)
        });
    match shared {
        Ok(listener) => Some(conn::Limited::sharing(listener, grpc.counter())),
        Err(e) => {
            tracing::error!(error = %e, "a check core cannot accept on the gRPC socket");
            None
        }
    }
}

/// The listeners' tasks, for the drain.
struct Tasks {
    tcp: JoinHandle<Result<(), tonic::transport::Error>>,
    /// The other check cores, and their gRPC listeners' tasks; the cores
    /// stop once these have drained.
    cores: (
        cores::Cores,
        Vec<JoinHandle<Result<(), tonic::transport::Error>>>,
    ),
    unix: Option<(JoinHandle<Result<(), tonic::transport::Error>>, PathBuf)>,
    admin: JoinHandle<std::io::Result<()>>,
    http: Option<JoinHandle<std::io::Result<()>>>,
    management: Option<management::Task>,
}

impl Tasks {
    /// Waits for every listener to finish its in-flight checks, for up to
    /// `grace`; the Unix socket's file goes with it.
    async fn drain(self, grace: Duration) -> Result<(), ServerError> {
        let (cores, core_tasks) = self.cores;
        let drain = async {
            let tcp_result = self.tcp.await;
            for task in core_tasks {
                let _ = task.await;
            }
            if let Some((task, path)) = self.unix {
                let _ = task.await;
                let _ = std::fs::remove_file(path);
            }
            let _ = self.admin.await;
            if let Some(task) = self.http {
                let _ = task.await;
            }
            if let Some(task) = self.management {
                let _ = task.await;
            }
            tcp_result
        };
        match tokio::time::timeout(grace, drain).await {
            Ok(Ok(result)) => result?,
            Ok(Err(join)) => tracing::error!(error = %join, "gRPC task failed"),
            Err(_) => tracing::warn!("shutdown grace elapsed with checks still in flight"),
        }
        drop(cores);
        tracing::info!("ward stopped");
        Ok(())
    }
}

/// What both front ends do with every decision, after answering it: count
/// it (`ward_check_total`, the duration histogram) and log a deny, naming
/// the credential by its short hash only, and the path without its query
/// (`transport`: `grpc` or `http`).
/// `req` is `None` for a request ward could not read (its deny is logged
/// with an empty `path` and `request_id`).
pub(crate) fn record(
    metrics: &Metrics,
    responder: &Responder,
    req: Option<&crate::request::Request<'_>>,
    decision: &crate::decision::Decision,
    start: std::time::Instant,
    transport: &'static str,
) {
    metrics.record(decision, start.elapsed().as_secs_f64());
    if let crate::decision::Decision::Deny(deny) = decision {
        tracing::info!(
            request_id = req.and_then(|r| r.request_id()).unwrap_or(""),
            reason = deny.reason.as_str(),
            status = responder.status(deny.reason),
            policy = deny.policy.as_ref().map_or("", |p| p.name.as_str()),
            method = deny.method.map_or("none", |m| m.as_str()),
            credential = deny
                .credential
                .as_ref()
                .map(crate::credentials::short_hash)
                .unwrap_or_default(),
            path = req.map_or("", |r| r.logged_path()),
            transport,
            trace_id = Some(trace::trace_id(&tracing::Span::current())).filter(|id| !id.is_empty()),
            "deny"
        );
    }
}
