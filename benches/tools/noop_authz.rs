//! A do-nothing `envoy.service.auth.v3.Authorization/Check` server: the
//! baseline the benchmark bed (`scripts/bench.sh`) measures ward against.
//!
//! It runs on the same stack as ward (tokio, tonic, envoy-types), with the
//! same runtime as ward for `--workers` workers (1 by default, like ward's
//! `runtime.worker_threads: 1`; built by `ward::runtime::builder`) and
//! `TCP_NODELAY`, and answers every check with OK and an empty
//! `OkHttpResponse`, through envoy-types' generated service (which decodes
//! the whole `CheckRequest`): the usual way to serve Check.
//!
//! With `--shaped` it answers with a canned response shaped like ward's
//! allow instead (four identity headers with `OVERWRITE_IF_EXISTS_OR_ADD`
//! and two dynamic-metadata fields), to tell what ward *says* (which Envoy
//! must parse and apply) from what ward *computes*.
//!
//! With `--lean` it decodes each request as ward does (`ward::server::wire`:
//! only the fields ward reads, without copying) instead of envoy-types'
//! full `CheckRequest`, and still answers with an empty OK: against it,
//! ward's ratio is the cost of ward's own work alone.
//!
//! ```text
//! cargo run --release --example noop_authz -- --listen 127.0.0.1:9101 [--unix /tmp/noop.sock] [--shaped | --lean]
//! ```

use clap::Parser;
use envoy_types::ext_authz::v3::pb::{
    Authorization, AuthorizationServer, CheckRequest, CheckResponse, HeaderAppendAction,
    HeaderValue, HeaderValueOption, HttpResponse, OkHttpResponse,
};
use envoy_types::pb::google::protobuf::{Struct, Value, value::Kind};
use envoy_types::pb::google::rpc;
use std::net::SocketAddr;
use std::path::PathBuf;
use tonic::transport::server::TcpIncoming;

#[derive(Parser)]
#[command(about = "A do-nothing ext_authz Check server (benchmark baseline).")]
struct Args {
    /// TCP address to serve gRPC on.
    #[arg(long, default_value = "127.0.0.1:9101")]
    listen: SocketAddr,
    /// Also serve on this Unix socket.
    #[arg(long)]
    unix: Option<PathBuf>,
    /// Tokio worker threads (ward's `runtime.worker_threads`).
    #[arg(long, default_value_t = 1)]
    workers: usize,
    /// Answer with a canned allow shaped like ward's (headers + metadata).
    #[arg(long)]
    shaped: bool,
    /// Decode each request as ward does (`ward::server::wire`, only the
    /// fields ward reads, without copying) instead of envoy-types' full
    /// `CheckRequest`; answer with an empty OK as usual.
    #[arg(long, conflicts_with = "shaped")]
    lean: bool,
}

/// The answer, built once; cloned per check (as ward builds one per check).
struct Noop {
    response: CheckResponse,
}

fn response(shaped: bool) -> CheckResponse {
    let header = |key: &str, value: &str| HeaderValueOption {
        header: Some(HeaderValue {
            key: key.into(),
            value: value.into(),
            ..Default::default()
        }),
        append_action: HeaderAppendAction::OverwriteIfExistsOrAdd as i32,
        ..Default::default()
    };
    let string = |v: &str| Value {
        kind: Some(Kind::StringValue(v.into())),
    };
    let (headers, dynamic_metadata) = if shaped {
        (
            vec![
                header("x-user-id", "user-0"),
                header("x-auth-method", "jwt"),
                header("x-user-email", "user-0@example.com"),
                header("x-user-roles", "reader"),
            ],
            Some(Struct {
                fields: [
                    ("user_id".to_string(), string("user-0")),
                    ("auth_method".to_string(), string("jwt")),
                ]
                .into_iter()
                .collect(),
            }),
        )
    } else {
        (Vec::new(), None)
    };
    CheckResponse {
        status: Some(rpc::Status {
            code: 0,
            ..Default::default()
        }),
        http_response: Some(HttpResponse::OkResponse(OkHttpResponse {
            headers,
            ..Default::default()
        })),
        dynamic_metadata,
    }
}

#[tonic::async_trait]
impl Authorization for Noop {
    async fn check(
        &self,
        _request: tonic::Request<CheckRequest>,
    ) -> Result<tonic::Response<CheckResponse>, tonic::Status> {
        Ok(tonic::Response::new(self.response.clone()))
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let runtime = ward::runtime::builder(args.workers.max(1)).build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(args.listen).await?;
        let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
        let service = AuthorizationServer::new(Noop {
            response: response(args.shaped),
        });
        let router = || {
            let builder = tonic::transport::Server::builder();
            if args.lean {
                builder.clone().add_service(lean::Lean)
            } else {
                builder.clone().add_service(service.clone())
            }
        };
        let unix = match args.unix {
            Some(path) => {
                let _ = std::fs::remove_file(&path);
                let listener = tokio::net::UnixListener::bind(&path)?;
                let incoming = tokio_stream::wrappers::UnixListenerStream::new(listener);
                Some(tokio::spawn(router().serve_with_incoming(incoming)))
            }
            None => None,
        };
        println!("noop_authz listening on {}", args.listen);
        let shutdown = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        let terminate = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        let stop = async {
            tokio::select! { _ = shutdown => {}, _ = terminate => {} }
        };
        router()
            .serve_with_incoming_shutdown(incoming, stop)
            .await?;
        if let Some(task) = unix {
            task.abort();
        }
        Ok(())
    })
}

/// `--lean`: the same empty answer, with ward's request reading and
/// decoding (`ward::server::unary` and `wire`) and ward's answer framing.
mod lean {
    use envoy_types::pb::google::rpc;
    use std::convert::Infallible;
    use std::task::{Context, Poll};
    use tonic::codegen::{Body, BoxFuture, StdError, http};
    use ward::server::unary::{self, Incoming};
    use ward::server::wire::CheckView;

    /// ward's default `listen.max_request_bytes`.
    const LIMIT: usize = ward::config::DEFAULT_MAX_REQUEST_BYTES;

    #[derive(Clone)]
    pub struct Lean;

    impl tonic::server::NamedService for Lean {
        const NAME: &'static str = "envoy.service.auth.v3.Authorization";
    }

    impl<B> tonic::codegen::Service<http::Request<B>> for Lean
    where
        B: Body + Send + 'static,
        B::Error: Into<StdError> + Send + 'static,
    {
        type Response = http::Response<tonic::body::Body>;
        type Error = Infallible;
        type Future = BoxFuture<Self::Response, Self::Error>;

        fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, req: http::Request<B>) -> Self::Future {
            Box::pin(async move {
                // Read the attributes as ward does (UTF-8 checks included).
                let ok = match unary::read_message(req.into_body(), LIMIT).await {
                    Incoming::Message(bytes) => {
                        CheckView::parse(bytes).is_ok_and(|v| v.attributes().is_ok())
                    }
                    _ => false,
                };
                let mut answer = super::response(false);
                if !ok {
                    answer.status = Some(rpc::Status {
                        code: 7, // PERMISSION_DENIED
                        ..Default::default()
                    });
                    answer.http_response = None;
                }
                Ok(unary::respond(&answer))
            })
        }
    }
}
