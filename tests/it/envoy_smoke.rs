//! Proves the real-Envoy harness on its own, with a stub authorization
//! server instead of ward: an allowed request reaches the upstream with the
//! headers the authorizer set, a denied one never does, `/public` skips
//! ext_authz, paths are normalized before the check, and Envoy fails closed
//! when the authorizer is gone.

#![allow(clippy::expect_used)]

use crate::support;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use envoy_types::ext_authz::v3::pb::{
    Authorization, AuthorizationServer, CheckRequest, CheckResponse, HeaderAppendAction,
    HttpStatusCode,
};
use envoy_types::ext_authz::v3::{
    CheckRequestExt, CheckResponseExt, DeniedHttpResponseBuilder, OkHttpResponseBuilder,
};
use support::echo::{self, Echo};
use support::envoy::Envoy;
use tokio::sync::oneshot;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::{Request, Response, Status};

/// Allows requests carrying `x-allow: 1` (setting `x-stub-user: alice`),
/// denies everything else with 403. Records the paths it was asked about.
#[derive(Clone, Default)]
struct Stub {
    paths: Arc<Mutex<Vec<String>>>,
}

#[tonic::async_trait]
impl Authorization for Stub {
    async fn check(&self, req: Request<CheckRequest>) -> Result<Response<CheckResponse>, Status> {
        let req = req.into_inner();
        let path = req
            .attributes
            .as_ref()
            .and_then(|a| a.request.as_ref())
            .and_then(|r| r.http.as_ref())
            .map(|h| h.path.clone())
            .unwrap_or_default();
        self.paths.lock().expect("stub paths").push(path);

        let allowed = req
            .get_client_headers()
            .and_then(|h| h.get("x-allow"))
            .is_some_and(|v| v == "1");
        let mut resp = CheckResponse::default();
        if allowed {
            let mut ok = OkHttpResponseBuilder::new();
            ok.add_header(
                "x-stub-user",
                "alice",
                Some(HeaderAppendAction::OverwriteIfExistsOrAdd),
                false,
            );
            resp.set_status(Status::ok("allowed")).set_http_response(ok);
        } else {
            let mut denied = DeniedHttpResponseBuilder::new();
            denied
                .set_http_status(HttpStatusCode::Forbidden)
                .add_header("content-type", "application/json", None, false)
                .set_body(r#"{"error":"denied_by_stub"}"#);
            resp.set_status(Status::permission_denied("denied"))
                .set_http_response(denied);
        }
        Ok(Response::new(resp))
    }
}

/// The stub, served over gRPC on 127.0.0.1:0; shut down on drop.
struct StubServer {
    addr: SocketAddr,
    stub: Stub,
    // Dropping the sender stops the server and closes its open connections,
    // as a killed process would (aborting the accept task would leave the
    // per-connection tasks serving Envoy's HTTP/2 connection).
    _shutdown: oneshot::Sender<()>,
}

impl StubServer {
    async fn start() -> StubServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("stub: bind");
        let addr = listener.local_addr().expect("stub: local_addr");
        let stub = Stub::default();
        let service = AuthorizationServer::new(stub.clone());
        let (shutdown, stopped) = oneshot::channel::<()>();
        tokio::spawn(async move {
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async {
                    let _ = stopped.await;
                })
                .await
                .expect("stub: serve");
        });
        StubServer {
            addr,
            stub,
            _shutdown: shutdown,
        }
    }

    fn paths(&self) -> Vec<String> {
        self.stub.paths.lock().expect("stub paths").clone()
    }
}

async fn setup() -> (Echo, StubServer, Envoy) {
    let echo = Echo::start().await;
    let stub = StubServer::start().await;
    let envoy = Envoy::start(echo.addr, stub.addr).await;
    (echo, stub, envoy)
}

#[tokio::test]
async fn allowed_request_reaches_upstream_with_authorizer_headers() {
    let (echo, _stub, envoy) = setup().await;

    let resp = envoy
        .get(
            "/hello?q=1",
            &[
                ("x-allow", "1"),
                ("x-stub-user", "mallory"), // forged: the stub overwrites it
                ("x-multi", "a"),
                ("x-multi", "b"),
            ],
        )
        .await;

    assert_eq!(resp.status, 200, "body: {}", resp.text());
    let seen = resp.json();
    assert_eq!(seen["path"], "/hello");
    assert_eq!(seen["query"], "q=1");
    assert_eq!(echo::header_values(&seen, "x-stub-user"), ["alice"]);
    assert_eq!(echo::header_values(&seen, "x-multi"), ["a", "b"]);
    assert_eq!(echo.hits(), 1);
}

#[tokio::test]
async fn denied_request_never_reaches_upstream() {
    let (echo, stub, envoy) = setup().await;

    let resp = envoy.get("/secret", &[("x-allow", "0")]).await;

    assert_eq!(resp.status, 403);
    assert_eq!(resp.json()["error"], "denied_by_stub");
    assert_eq!(resp.header("content-type"), Some("application/json"));
    assert_eq!(stub.paths(), ["/secret"]);
    assert_eq!(echo.hits(), 0);
    assert_eq!(envoy.stat("http.ingress_http.ext_authz.denied").await, 1);
}

#[tokio::test]
async fn public_prefix_skips_ext_authz() {
    let (echo, stub, envoy) = setup().await;

    let resp = envoy.get("/public/logo.png", &[]).await;

    assert_eq!(resp.status, 200);
    assert!(stub.paths().is_empty(), "the authorizer was asked");
    assert_eq!(echo.hits(), 1);
}

#[tokio::test]
async fn paths_are_normalized_before_the_check() {
    let (echo, stub, envoy) = setup().await;

    let resp = envoy
        .get("/public/..//admin/./x", &[("x-allow", "0")])
        .await;
    assert_eq!(resp.status, 403, "a dot-segment must not reach /public");
    assert_eq!(stub.paths(), ["/admin/x"]);

    let resp = envoy.get("/admin%2Fx", &[("x-allow", "1")]).await;
    assert!(
        (300..400).contains(&resp.status),
        "escaped slash must redirect, got {}",
        resp.status
    );
    assert_eq!(resp.header("location"), Some("/admin/x"));
    assert_eq!(echo.hits(), 0);
}

#[tokio::test]
async fn authorizer_down_fails_closed() {
    let (echo, stub, envoy) = setup().await;
    assert_eq!(envoy.get("/", &[("x-allow", "1")]).await.status, 200);

    drop(stub);
    // The old HTTP/2 connection may take a moment to be seen as gone.
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let resp = envoy.get("/", &[("x-allow", "1")]).await;

    assert_eq!(resp.status, 503, "body: {}", resp.text());
    assert_eq!(echo.hits(), 1);
}
