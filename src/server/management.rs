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

use super::generation::Live;
use crate::config::ManagementConfig;
use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// The management listener's task.
pub(super) type Task = JoinHandle<Result<(), tonic::transport::Error>>;

/// Plain HTTP routes served beside the gRPC service, outside its
/// bearer/mTLS gate (each route authenticates its own callers). None yet:
/// the back-channel logout endpoint is merged here.
pub(crate) fn http_routes() -> axum::Router {
    axum::Router::new()
}

/// Serves the management API on `listener` until `stop` completes.
pub(super) fn spawn(
    listener: TcpListener,
    config: &ManagementConfig,
    live: Arc<Live>,
    stop: impl Future<Output = ()> + Send + 'static,
) -> Task {
    let admin = service::Admin::new(live, auth::Gate::new(&config.auth));
    let routes = tonic::service::Routes::from(http_routes())
        .add_service(proto::admin_service_server::AdminServiceServer::new(admin));
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
    let server = tonic::transport::Server::builder()
        .accept_http1(true)
        .add_routes(routes)
        .serve_with_incoming_shutdown(incoming, stop);
    tokio::spawn(server)
}
