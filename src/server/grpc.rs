//! The Envoy adapter: the only module that knows Envoy's types.
//!
//! It turns a `CheckRequest` into ward's [`Request`], asks the
//! [`Authenticator`], and renders the [`Decision`] as a normal
//! `CheckResponse`, always: a gRPC error or `error_response` would count as
//! a *failure* in Envoy, and with `failure_mode_allow: true` a failure lets
//! the request through. Every deny carries an explicit HTTP status.
//!
//! The service is served by [`AuthzServer`] rather than envoy-types'
//! generated `AuthorizationServer`, for two reasons. The request: ward
//! reads the call's body itself ([`unary`]), so that a message too large
//! or not decodable gets a deny (413, 400) rather than the gRPC error
//! tonic would answer with. The answer type: an allow for a cached
//! identity is written as bytes encoded once per identity
//! ([`Answer::Allow`], `grpc/answer.rs`; kept in the identity's `encoded`
//! slot) instead of a fresh `CheckResponse` of owned strings per check,
//! which was a third of ward's own cost on a cache hit. On the wire it is
//! the same `CheckResponse` (a test decodes one and compares).

use super::trace;
use super::unary::{self, Incoming};
use super::wire::CheckView;
use crate::decision::{Decision, Deny};
use crate::headers::ManagedHeaders;
use crate::metrics::Metrics;
use crate::reason::Reason;
use crate::request::Request;
use crate::response::Responder;
use crate::wiring::ServerChecker;
use envoy_types::ext_authz::v3::pb::{
    CheckResponse, DeniedHttpResponse, HeaderAppendAction, HeaderValue, HeaderValueOption,
    HttpResponse, HttpStatus, OkHttpResponse,
};
use envoy_types::pb::google::protobuf::{Struct, Value, value::Kind};
use envoy_types::pb::google::rpc;
use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;
use tonic::codegen::{Body, BoxFuture, StdError, http};

mod answer;

use answer::Answer;
pub use answer::pre_encode;

/// The `context_extensions` key an Envoy route sets to select a policy.
pub(super) const POLICY_KEY: &str = "ward_policy";

/// The gRPC service and its one method.
const SERVICE_NAME: &str = "envoy.service.auth.v3.Authorization";
const CHECK_PATH: &str = "/envoy.service.auth.v3.Authorization/Check";

/// gRPC status codes carried inside a `CheckResponse`.
const OK: i32 = 0;
const PERMISSION_DENIED: i32 = 7;
const UNAVAILABLE: i32 = 14;
const UNAUTHENTICATED: i32 = 16;

/// `CheckResponse.status` of every allow.
const OK_STATUS: rpc::Status = rpc::Status {
    code: OK,
    message: String::new(),
    details: Vec::new(),
};

pub(super) struct CheckService {
    pub checker: Arc<ServerChecker>,
    pub managed: ManagedHeaders,
    pub metrics: Arc<Metrics>,
    pub responder: Responder,
    /// `listen.max_request_bytes`.
    pub max_request_bytes: usize,
}

/// `envoy.service.auth.v3.Authorization` as a tower service for tonic's
/// router: what envoy-types' generated server does (route `Check`, answer
/// any other method `UNIMPLEMENTED`), with [`Answer`] as the response.
pub(super) struct AuthzServer<S> {
    live: Arc<S>,
}

/// Where each call's service comes from: the running generation, which a
/// reload swaps (`generation.rs`).
pub(super) trait CurrentService: Send + Sync + 'static {
    fn grpc(&self) -> Arc<CheckService>;
}

impl<S> Clone for AuthzServer<S> {
    fn clone(&self) -> Self {
        Self {
            live: self.live.clone(),
        }
    }
}

impl<S: CurrentService> AuthzServer<S> {
    pub(super) fn new(live: Arc<S>) -> Self {
        Self { live }
    }
}

impl<S> tonic::server::NamedService for AuthzServer<S> {
    const NAME: &'static str = SERVICE_NAME;
}

impl<S, B> tonic::codegen::Service<http::Request<B>> for AuthzServer<S>
where
    S: CurrentService,
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
        if req.uri().path() != CHECK_PATH {
            return Box::pin(async { Ok(tonic::Status::unimplemented("").into_http()) });
        }
        // The generation is chosen once: a reload during this check does
        // not change the config it finishes on.
        let service = self.live.grpc();
        // Envoy's ext_authz span, from the call's metadata (traces on only).
        let parent = trace::parent(|k| req.headers().get(k).and_then(|v| v.to_str().ok()));
        Box::pin(async move {
            let start = Instant::now();
            let incoming = unary::read_message(req.into_body(), service.max_request_bytes).await;
            Ok(unary::respond(
                &service.answer(incoming, start, parent).await,
            ))
        })
    }
}

impl CheckService {
    /// Answers what a Check call's body held: a decision for a message
    /// that decodes, a deny for anything else (413 for one over
    /// `listen.max_request_bytes`, 400 for one that is not a single
    /// uncompressed `CheckRequest`), rendered, counted and logged as every
    /// deny is. `start` is when the call began.
    pub(super) async fn answer(
        &self,
        incoming: Incoming,
        start: Instant,
        parent: Option<opentelemetry::Context>,
    ) -> Answer {
        let refused = match incoming {
            Incoming::Message(bytes) => match CheckView::parse(bytes) {
                Ok(view) => return self.check(view, start, parent).await,
                Err(e) => {
                    tracing::debug!(error = %e, "CheckRequest is not protobuf");
                    Reason::MalformedRequest
                }
            },
            Incoming::TooLarge { declared, limit } => {
                tracing::debug!(
                    declared,
                    limit,
                    "CheckRequest over listen.max_request_bytes"
                );
                Reason::RequestTooLarge
            }
            Incoming::Malformed(e) => {
                tracing::debug!(error = %e, "Check call body is not one gRPC message");
                Reason::MalformedRequest
            }
            // Envoy resets the calls of requests its clients dropped: not
            // a request ward decided, so neither counted nor logged as a
            // deny. The stream is gone; the answer is framed for form.
            Incoming::Gone => {
                tracing::debug!("Check call reset before its message arrived");
                let deny = Deny::new(Reason::MalformedRequest);
                return Answer::Message(self.deny(None, &deny));
            }
        };
        self.refuse(refused, start)
    }

    /// Decides one `CheckRequest`, in a span continuing `parent` (else the
    /// checked request's own trace headers).
    pub(super) async fn check(
        &self,
        check: CheckView,
        start: Instant,
        parent: Option<opentelemetry::Context>,
    ) -> Answer {
        match check.attributes() {
            Ok(attrs) => {
                let req = Request {
                    method: attrs.method,
                    host: attrs.host,
                    path: attrs.path,
                    headers: attrs.headers(),
                    policy: attrs.extension(POLICY_KEY),
                    source_ip: attrs.source_ip,
                    principal: attrs.principal,
                };
                let span = trace::check_span(parent, |k| req.headers.get(k));
                let decided = self.checker.check(&req, crate::unix_now());
                let decision = trace::decide(&span, decided).await;
                let _in_span = span.enter();
                self.finish(&req, decision, start)
            }
            Err(_) => self.refuse(Reason::MalformedRequest, start),
        }
    }

    /// A deny for a request ward could not read: there is no request to
    /// render it with (no path, no headers, so no login redirect).
    fn refuse(&self, reason: Reason, start: Instant) -> Answer {
        let deny = Deny::new(reason);
        let answer = Answer::Message(self.deny(None, &deny));
        let decision = Decision::Deny(deny);
        super::record(
            &self.metrics,
            &self.responder,
            None,
            &decision,
            start,
            "grpc",
        );
        answer
    }
}

impl CheckService {
    fn finish(&self, req: &Request<'_>, decision: Decision, start: Instant) -> Answer {
        super::record(
            &self.metrics,
            &self.responder,
            Some(req),
            &decision,
            start,
            "grpc",
        );
        match decision {
            Decision::Allow(allowed) => {
                let mut edits = self.managed.edits(req, allowed.headers());
                // Per check, like the edits: never in the encoded identity.
                if let Some(p) = allowed.principal {
                    edits.set.push((p.name.to_string(), p.value));
                }
                Answer::Allow {
                    edits,
                    identity: allowed.identity,
                    token: allowed.token,
                }
            }
            Decision::AllowAnonymous { .. } => Answer::Message(self.allow_anonymous(req)),
            Decision::Deny(deny) => Answer::Message(self.deny(Some(req), &deny)),
        }
    }

    fn allow_anonymous(&self, req: &Request<'_>) -> CheckResponse {
        let edits = self.managed.edits(req, std::iter::empty());
        CheckResponse {
            status: Some(rpc::Status {
                code: OK,
                ..Default::default()
            }),
            http_response: Some(HttpResponse::OkResponse(OkHttpResponse {
                headers: edits.set.iter().map(|(k, v)| header(k, v)).collect(),
                headers_to_remove: edits.remove,
                query_parameters_to_remove: edits.remove_query,
                ..Default::default()
            })),
            dynamic_metadata: Some(metadata(&[("auth_method", "none")])),
        }
    }

    /// `req`: `None` for a request ward could not read.
    fn deny(&self, req: Option<&Request<'_>>, deny: &Deny) -> CheckResponse {
        let rendered = self.responder.deny(req, deny);
        let reason = deny.reason;
        let code = match rendered.status {
            401 => UNAUTHENTICATED,
            503 => UNAVAILABLE,
            _ => PERMISSION_DENIED,
        };
        CheckResponse {
            status: Some(rpc::Status {
                code,
                ..Default::default()
            }),
            http_response: Some(HttpResponse::DeniedResponse(DeniedHttpResponse {
                status: Some(HttpStatus {
                    code: i32::from(rendered.status),
                }),
                headers: rendered.headers.iter().map(|(k, v)| header(k, v)).collect(),
                body: rendered.body,
            })),
            dynamic_metadata: Some(metadata(&[("reason", reason.as_str())])),
        }
    }
}

fn header(key: &str, value: &str) -> HeaderValueOption {
    HeaderValueOption {
        header: Some(HeaderValue {
            key: key.to_string(),
            value: value.to_string(),
            ..Default::default()
        }),
        // Without an explicit action, Envoy may append a second value
        // beside a forged one; overwrite is the only safe choice.
        append_action: HeaderAppendAction::OverwriteIfExistsOrAdd as i32,
        ..Default::default()
    }
}

fn metadata(fields: &[(&str, &str)]) -> Struct {
    let fields = fields
        .iter()
        .map(|(k, v)| {
            let value = Value {
                kind: Some(Kind::StringValue(v.to_string())),
            };
            (k.to_string(), value)
        })
        .collect();
    Struct { fields }
}
