//! ward in this test process (library API, port 0), with a tonic client
//! for `Authorization/Check`: faster than a child process when a test only
//! speaks gRPC.

use envoy_types::ext_authz::v3::pb::{CheckRequest, CheckResponse};
use envoy_types::pb::envoy::service::auth::v3::AttributeContext;
use envoy_types::pb::envoy::service::auth::v3::attribute_context::{HttpRequest, Request};
use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use std::collections::HashMap;
use std::net::SocketAddr;
use tokio::sync::oneshot;
use tonic::transport::Channel;
use ward::clock::Clock;
use ward::config::Config;

/// A running in-process ward; shut down when dropped.
pub struct InProc {
    pub grpc_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    pub client: AuthorizationClient<Channel>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl InProc {
    /// Starts ward from YAML; `listen` is forced to loopback port 0.
    pub async fn start(yaml: &str) -> InProc {
        Self::start_with_clock(yaml, Clock::Monotonic).await
    }

    /// [`InProc::start`], with the store cache's and the limiter's windows
    /// on `clock`: a test passes a `ManualClock` and advances it rather
    /// than sleeping through `store_ttl` or `stale_if_error`.
    pub async fn start_with_clock(yaml: &str, clock: Clock) -> InProc {
        let mut config = Config::from_yaml(yaml).unwrap();
        config.listen.grpc = "127.0.0.1:0".parse().unwrap();
        config.listen.admin = "127.0.0.1:0".parse().unwrap();
        let problems = ward::setup::problems(&config, &ward::config::ProcessEnv);
        assert!(problems.is_empty(), "invalid test config: {problems:?}");
        let server = ward::server::Server::bind_with_clock(&config, clock)
            .await
            .unwrap();
        let grpc_addr = server.grpc_addr().unwrap();
        let admin_addr = server.admin_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            server
                .serve(async {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
        });
        let client = AuthorizationClient::connect(format!("http://{grpc_addr}"))
            .await
            .unwrap();
        InProc {
            grpc_addr,
            admin_addr,
            client,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Sends one Check with these request headers.
    pub async fn check(&self, headers: &[(&str, &str)]) -> CheckResponse {
        self.client
            .clone()
            .check(check_request("GET", "/api", headers))
            .await
            .expect("Check must always answer with a CheckResponse")
            .into_inner()
    }

    /// Stops ward and waits for it to finish draining.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap();
        }
    }
}

impl Drop for InProc {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A CheckRequest as Envoy sends it: lowercase header names.
pub fn check_request(method: &str, path: &str, headers: &[(&str, &str)]) -> CheckRequest {
    let headers: HashMap<String, String> = headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.to_string()))
        .collect();
    CheckRequest {
        attributes: Some(AttributeContext {
            request: Some(Request {
                http: Some(HttpRequest {
                    id: "1".into(),
                    method: method.into(),
                    path: path.into(),
                    host: "api.test".into(),
                    scheme: "http".into(),
                    protocol: "HTTP/1.1".into(),
                    headers,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
    }
}

/// ward's own view of `GET api.test/` with these headers, from 10.0.0.1:
/// for tests that call a checker directly, without gRPC.
pub fn ward_request(headers: &[(String, String)]) -> ward::request::Request<'_> {
    ward::request::Request {
        method: "GET",
        host: "api.test",
        path: "/",
        headers: ward::request::Headers::owned(headers),
        policy: None,
        source_ip: Some(std::net::IpAddr::from([10, 0, 0, 1])),
        principal: None,
    }
}
