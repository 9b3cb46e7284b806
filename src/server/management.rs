//! The management API's listener (`management.listen`): the gRPC service
//! `ward.admin.v1.AdminService` (`proto/ward/admin/v1/admin.proto`), and
//! plain HTTP/1.1 routes on the same port (`http_routes`).
//!
//! A listener of its own, off by default, so that what can change
//! sessions and keys is never reachable where Envoy sends checks, and a
//! `NetworkPolicy` can open it to the few clients that need it. Every
//! gRPC call authenticates its caller first (`management/auth.rs`) and
//! ends with an audit line; the extra HTTP routes are not behind that
//! gate, because what they will serve (an identity provider's
//! back-channel logout) authenticates itself with a signed token. Calls
//! act on the running generation (`generation.rs`): after a reload, the
//! next call uses the new store and checker, as a check would.

mod auth;
pub(crate) mod convert;
mod introspect;
#[rustfmt::skip]
#[allow(
    unreachable_pub,
    missing_docs,
    clippy::all,
    clippy::pedantic,
    clippy::unwrap_used,
    clippy::expect_used
)]
pub mod proto;
mod service;

use super::ServerError;
use super::generation::Live;
use crate::config::{ManagementConfig, ManagementTls};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};

/// HTTP/2 pings on an idle management connection, and how long one may
/// go unanswered: a client that went away is noticed (the cap counts it).
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);

/// The management listener's task.
pub(super) type Task = JoinHandle<Result<(), tonic::transport::Error>>;

/// The management listener, bound, with its server (TLS loaded): what
/// can fail does so at start, not in a background task.
pub(super) struct Bound {
    listener: TcpListener,
    server: Server,
    tls: bool,
}

impl Bound {
    pub(super) fn local_addr(&self) -> Option<std::net::SocketAddr> {
        self.listener.local_addr().ok()
    }
}

/// Binds `config.listen` (when set) and loads its TLS.
pub(super) fn bind(
    config: &ManagementConfig,
    handshake_timeout: Duration,
) -> Result<Option<Bound>, ServerError> {
    let Some(addr) = config.listen else {
        return Ok(None);
    };
    let listener = super::conn::bind_tcp(addr).map_err(|source| ServerError::Bind {
        what: "management",
        addr: addr.to_string(),
        source,
    })?;
    let mut server = Server::builder()
        .accept_http1(true)
        .http2_keepalive_interval(Some(KEEPALIVE_INTERVAL))
        .http2_keepalive_timeout(Some(KEEPALIVE_TIMEOUT));
    if let Some(tls) = &config.auth.tls {
        // A token as well: a client certificate is one way in, not the only.
        let optional = config.auth.token_file.is_some();
        server = server.tls_config(tls_config(tls, optional, handshake_timeout)?)?;
    }
    Ok(Some(Bound {
        listener,
        server,
        tls: config.auth.tls.is_some(),
    }))
}

/// The listener's certificate, and the CA client certificates chain to.
fn tls_config(
    tls: &ManagementTls,
    client_auth_optional: bool,
    handshake_timeout: Duration,
) -> Result<ServerTlsConfig, ServerError> {
    let read = |path: &std::path::Path| {
        std::fs::read(path).map_err(|e| ServerError::Management(format!("{}: {e}", path.display())))
    };
    Ok(ServerTlsConfig::new()
        .identity(Identity::from_pem(read(&tls.cert)?, read(&tls.key)?))
        .client_ca_root(Certificate::from_pem(read(&tls.client_ca)?))
        .client_auth_optional(client_auth_optional)
        .timeout(handshake_timeout))
}

/// Plain HTTP routes served beside the gRPC service, outside its
/// bearer/mTLS gate (each route authenticates its own callers): the
/// back-channel logout endpoint at `management.backchannel_logout.path`
/// when it is configured at start, over the running generation's keys
/// and store (a reload that turns it off makes it a 404).
fn http_routes(config: &ManagementConfig, live: Arc<Live>) -> axum::Router {
    match &config.backchannel_logout {
        Some(logout) => {
            let current: super::backchannel::Current =
                Arc::new(move || live.current().backchannel.clone());
            super::backchannel::router(&logout.path, current)
        }
        None => axum::Router::new(),
    }
}

/// Serves the management API on `bound` until `stop` completes, behind
/// the connection cap and first-request deadline of `limits`
/// (`listen.max_connections`, `listen.handshake_timeout`): HTTP/2 or
/// HTTP/1 told apart by their first bytes, or with TLS, the TLS layer's
/// own handshake deadline.
pub(super) fn spawn(
    bound: Bound,
    config: &ManagementConfig,
    live: Arc<Live>,
    limits: super::conn::Limits,
    metrics: Arc<crate::metrics::Metrics>,
    stop: impl Future<Output = ()> + Send + 'static,
) -> Task {
    let http = http_routes(config, live.clone());
    let admin = service::Admin::new(live, auth::Gate::new(&config.auth), metrics);
    let routes = tonic::service::Routes::from(http)
        .add_service(proto::admin_service_server::AdminServiceServer::new(admin));
    let protocol = if bound.tls {
        super::conn::Protocol::Opaque
    } else {
        super::conn::Protocol::Sniff
    };
    let limits = super::conn::Limits { protocol, ..limits };
    let incoming = super::conn::Limited::new(bound.listener, limits);
    let mut server = bound.server;
    let serve = server
        .add_routes(routes)
        .serve_with_incoming_shutdown(incoming, stop);
    tokio::spawn(serve)
}
