//! The Envoy adapter: the only module that knows Envoy's types.
//!
//! It turns a `CheckRequest` into ward's [`Request`], asks the
//! [`Authenticator`], and renders the [`Decision`] as a normal
//! `CheckResponse`, always: a gRPC error or `error_response` would count as
//! a *failure* in Envoy, and with `failure_mode_allow: true` a failure lets
//! the request through. Every deny carries an explicit HTTP status.

use crate::cache::short_hash;
use crate::check::{Checker, Outcome};
use crate::decision::{Decision, Reason};
use crate::headers::ManagedHeaders;
use crate::identity::Identity;
use crate::metrics::Metrics;
use crate::request::Request;
use crate::response::Responder;
use envoy_types::ext_authz::v3::pb::{
    Authorization, CheckRequest, CheckResponse, DeniedHttpResponse, HeaderAppendAction,
    HeaderValue, HeaderValueOption, HttpResponse, HttpStatus, OkHttpResponse,
};
use envoy_types::pb::google::protobuf::{Struct, Value, value::Kind};
use envoy_types::pb::google::rpc;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

/// The `context_extensions` key an Envoy route sets to select a policy.
pub const POLICY_KEY: &str = "ward_policy";

/// gRPC status codes carried inside a `CheckResponse`.
const OK: i32 = 0;
const PERMISSION_DENIED: i32 = 7;
const UNAVAILABLE: i32 = 14;
const UNAUTHENTICATED: i32 = 16;

pub struct CheckService {
    pub checker: Arc<Checker>,
    pub managed: ManagedHeaders,
    pub metrics: Arc<Metrics>,
    pub responder: Responder,
}

#[tonic::async_trait]
impl Authorization for CheckService {
    async fn check(
        &self,
        request: tonic::Request<CheckRequest>,
    ) -> Result<tonic::Response<CheckResponse>, tonic::Status> {
        let start = Instant::now();
        let check = request.into_inner();
        let response = match http_request(&check) {
            Some((http, raw_headers)) => {
                let headers = raw_headers.as_ref().unwrap_or(&http.headers);
                let policy = check
                    .attributes
                    .as_ref()
                    .and_then(|a| a.context_extensions.get(POLICY_KEY))
                    .map(String::as_str);
                let req = Request {
                    method: &http.method,
                    host: &http.host,
                    path: &http.path,
                    headers,
                    policy,
                    source_ip: source_ip(&check),
                };
                let outcome = self.checker.check(&req, crate::unix_now()).await;
                self.finish(&req, &outcome, start)
            }
            None => {
                let outcome = Outcome::anonymous(Decision::Deny(Reason::MalformedRequest));
                let req = Request {
                    method: "",
                    host: "",
                    path: "",
                    headers: &HashMap::new(),
                    policy: None,
                    source_ip: None,
                };
                self.finish(&req, &outcome, start)
            }
        };
        Ok(tonic::Response::new(response))
    }
}

/// The socket address of the peer Envoy saw.
fn source_ip(check: &CheckRequest) -> Option<std::net::IpAddr> {
    use envoy_types::pb::envoy::config::core::v3::address::Address;
    let address = check
        .attributes
        .as_ref()?
        .source
        .as_ref()?
        .address
        .as_ref()?;
    match address.address.as_ref()? {
        Address::SocketAddress(sa) => sa.address.parse().ok(),
        _ => None,
    }
}

type HttpAttrs = envoy_types::pb::envoy::service::auth::v3::attribute_context::HttpRequest;

/// The HTTP attributes of a check, and the headers as a map when Envoy
/// sent them as `header_map` (`encode_raw_headers: true`) instead.
fn http_request(check: &CheckRequest) -> Option<(&HttpAttrs, Option<HashMap<String, String>>)> {
    let http = check.attributes.as_ref()?.request.as_ref()?.http.as_ref()?;
    let raw = http
        .header_map
        .as_ref()
        .filter(|_| http.headers.is_empty())
        .map(|map| {
            let mut out: HashMap<String, String> = HashMap::new();
            for h in &map.headers {
                let value = String::from_utf8_lossy(&h.raw_value);
                let value = if value.is_empty() {
                    h.value.as_str().into()
                } else {
                    value
                };
                out.entry(h.key.to_ascii_lowercase())
                    .and_modify(|v| {
                        v.push(',');
                        v.push_str(&value);
                    })
                    .or_insert_with(|| value.into_owned());
            }
            out
        });
    Some((http, raw))
}

impl CheckService {
    fn finish(&self, req: &Request<'_>, outcome: &Outcome, start: Instant) -> CheckResponse {
        let response = match &outcome.decision {
            Decision::Allow(identity) => self.allow(req, identity),
            Decision::AllowAnonymous => self.allow_anonymous(req),
            Decision::Deny(reason) => {
                tracing::info!(
                    request_id = req.request_id().unwrap_or(""),
                    reason = reason.as_str(),
                    status = self.responder.status(*reason),
                    policy = outcome.policy.as_ref().map_or("", |p| p.name.as_str()),
                    method = outcome.method.map_or("none", |m| m.as_str()),
                    credential = outcome
                        .credential
                        .as_ref()
                        .map(short_hash)
                        .unwrap_or_default(),
                    path = req.path,
                    "deny"
                );
                self.deny(req, outcome, *reason)
            }
        };
        self.metrics.record(
            outcome.method,
            &outcome.decision,
            start.elapsed().as_secs_f64(),
        );
        response
    }

    fn allow(&self, req: &Request<'_>, identity: &Identity) -> CheckResponse {
        let headers = identity.headers.iter().map(|(k, v)| header(k, v)).collect();
        let headers_to_remove = self
            .managed
            .to_remove(req.header_names(), &identity.headers);
        CheckResponse {
            status: Some(rpc::Status {
                code: OK,
                ..Default::default()
            }),
            http_response: Some(HttpResponse::OkResponse(OkHttpResponse {
                headers,
                headers_to_remove,
                ..Default::default()
            })),
            dynamic_metadata: Some(metadata(&[
                ("user_id", &identity.user_id),
                ("auth_method", identity.method.as_str()),
            ])),
        }
    }

    fn allow_anonymous(&self, req: &Request<'_>) -> CheckResponse {
        CheckResponse {
            status: Some(rpc::Status {
                code: OK,
                ..Default::default()
            }),
            http_response: Some(HttpResponse::OkResponse(OkHttpResponse {
                headers_to_remove: self.managed.to_remove(req.header_names(), &[]),
                ..Default::default()
            })),
            dynamic_metadata: Some(metadata(&[("auth_method", "none")])),
        }
    }

    fn deny(&self, req: &Request<'_>, outcome: &Outcome, reason: Reason) -> CheckResponse {
        let rendered = self.responder.deny(req, outcome, reason);
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
