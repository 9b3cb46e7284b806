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
//! tonic would answer with. The answer type: an
//! allow for a cached identity is written as bytes encoded once per
//! identity ([`Answer::Allow`], kept in the identity's `encoded` slot)
//! instead of a fresh `CheckResponse` of owned strings per check, which
//! was a third of ward's own cost on a cache hit. On the wire it is the
//! same `CheckResponse` (a test decodes one and compares).

use super::unary::{self, Incoming};
use super::wire::CheckView;
use crate::decision::{Decision, Deny};
use crate::forward::Edits;
use crate::headers::ManagedHeaders;
use crate::identity::{EncodedAllow, Identity};
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
use prost::Message;
use prost::bytes::{Buf, BufMut};
use prost::encoding::{self, DecodeContext, WireType};
use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;
use tonic::codegen::{Body, BoxFuture, StdError, http};

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
#[derive(Clone)]
pub(super) struct AuthzServer {
    inner: Arc<CheckService>,
}

impl AuthzServer {
    pub(super) fn new(inner: Arc<CheckService>) -> Self {
        Self { inner }
    }
}

impl tonic::server::NamedService for AuthzServer {
    const NAME: &'static str = SERVICE_NAME;
}

impl<B> tonic::codegen::Service<http::Request<B>> for AuthzServer
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
        if req.uri().path() != CHECK_PATH {
            return Box::pin(async { Ok(tonic::Status::unimplemented("").into_http()) });
        }
        let service = self.inner.clone();
        Box::pin(async move {
            let start = Instant::now();
            let incoming = unary::read_message(req.into_body(), service.max_request_bytes).await;
            Ok(unary::respond(&service.answer(incoming, start).await))
        })
    }
}

/// What ward answers, encoded as a `CheckResponse`.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // boxing the message would cost every deny an allocation
pub(super) enum Answer {
    /// An allow for an identity: its headers and metadata as encoded once
    /// per identity ([`Encoder`]), and what this request must lose
    /// (forged headers, credentials not forwarded) or have rewritten.
    Allow {
        identity: Arc<Identity>,
        edits: Edits,
    },
    /// Any other answer (deny, public route), as Envoy's message.
    Message(CheckResponse),
}

impl CheckService {
    /// Answers what a Check call's body held: a decision for a message
    /// that decodes, a deny for anything else (413 for one over
    /// `listen.max_request_bytes`, 400 for one that is not a single
    /// uncompressed `CheckRequest`), rendered, counted and logged as every
    /// deny is. `start` is when the call began.
    pub(super) async fn answer(&self, incoming: Incoming, start: Instant) -> Answer {
        let refused = match incoming {
            Incoming::Message(bytes) => match CheckView::parse(bytes) {
                Ok(view) => return self.check(view, start).await,
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
        };
        self.refuse(refused, start)
    }

    /// Decides one `CheckRequest`.
    pub(super) async fn check(&self, check: CheckView, start: Instant) -> Answer {
        match check.attributes() {
            Ok(attrs) => {
                let req = Request {
                    method: attrs.method,
                    host: attrs.host,
                    path: attrs.path,
                    headers: attrs.headers(),
                    policy: attrs.extension(POLICY_KEY),
                    source_ip: attrs.source_ip,
                };
                let decision = self.checker.check(&req, crate::unix_now()).await;
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
            Decision::Allow(identity) => Answer::Allow {
                edits: self.managed.edits(req, &identity.headers),
                identity,
            },
            Decision::AllowAnonymous { .. } => Answer::Message(self.allow_anonymous(req)),
            Decision::Deny(deny) => Answer::Message(self.deny(Some(req), &deny)),
        }
    }

    fn allow_anonymous(&self, req: &Request<'_>) -> CheckResponse {
        let edits = self.managed.edits(req, &[]);
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

/// `CheckResponse` fields and `OkHttpResponse` fields ward writes by hand.
const STATUS_FIELD: u32 = 1;
const OK_RESPONSE_FIELD: u32 = 3;
const METADATA_FIELD: u32 = 4;
const HEADERS_FIELD: u32 = 2;
const HEADERS_TO_REMOVE_FIELD: u32 = 5;
const QUERY_TO_REMOVE_FIELD: u32 = 8;

/// An identity's allow, encoded once and kept in the identity
/// ([`Identity::encoded`]): `OkHttpResponse.headers` (each with
/// `OVERWRITE_IF_EXISTS_OR_ADD`; the body of an `OkHttpResponse` that has
/// only headers) and `CheckResponse.dynamic_metadata` (field 4, key and
/// length included). Only the request's [`Edits`] (`headers_to_remove`,
/// most often alone; a rewritten `cookie`; `query_parameters_to_remove`)
/// are encoded per check, between the two.
struct Encoder<'e>(&'e EncodedAllow);

impl Encoder<'_> {
    /// Writes the bytes directly, as prost would from the messages
    /// (`HeaderValueOption`, `Struct`), without building those messages
    /// of owned strings first: a credential seen once (a cache miss) pays
    /// for this encoding and uses it once.
    fn encode_allow(identity: &Identity) -> EncodedAllow {
        let overwrite = HeaderAppendAction::OverwriteIfExistsOrAdd as u64;
        let mut headers = Vec::with_capacity(
            identity
                .headers
                .iter()
                .map(|(k, v)| k.len() + v.len() + 12)
                .sum(),
        );
        for (key, value) in &identity.headers {
            // HeaderValue { key = 1, value = 2 }
            let header_value = str_field_len(1, key) + str_field_len(2, value);
            // HeaderValueOption { header = 1, append_action = 3 }
            let option = encoding::key_len(1)
                + encoding::encoded_len_varint(header_value as u64)
                + header_value
                + encoding::key_len(3)
                + encoding::encoded_len_varint(overwrite);
            put_len_prefix(2, option, &mut headers); // OkHttpResponse.headers
            put_len_prefix(1, header_value, &mut headers);
            put_str_field(1, key, &mut headers);
            put_str_field(2, value, &mut headers);
            encoding::encode_key(3, WireType::Varint, &mut headers);
            encoding::encode_varint(overwrite, &mut headers);
        }
        // Struct { fields = 1: map<string, Value { string_value = 3 }> }
        let fields = [
            ("user_id", identity.user_id.as_str()),
            ("auth_method", identity.method.as_str()),
        ];
        let entry_len = |(name, value): (&str, &str)| {
            let v = encoding::key_len(3) + encoding::encoded_len_varint(value.len() as u64);
            let v = v + value.len();
            str_field_len(1, name)
                + encoding::key_len(2)
                + encoding::encoded_len_varint(v as u64)
                + v
        };
        let body: usize = fields
            .iter()
            .map(|&f| {
                let e = entry_len(f);
                encoding::key_len(1) + encoding::encoded_len_varint(e as u64) + e
            })
            .sum();
        let mut metadata = Vec::with_capacity(body + 4);
        put_len_prefix(METADATA_FIELD, body, &mut metadata);
        for (name, value) in fields {
            put_len_prefix(1, entry_len((name, value)), &mut metadata);
            put_str_field(1, name, &mut metadata);
            let v = encoding::key_len(3) + encoding::encoded_len_varint(value.len() as u64);
            put_len_prefix(2, v + value.len(), &mut metadata);
            // A oneof member is written even when empty.
            put_len_prefix(3, value.len(), &mut metadata);
            metadata.put_slice(value.as_bytes());
        }
        EncodedAllow { headers, metadata }
    }

    fn ok_response_len(&self, edits: &Edits) -> usize {
        self.0.headers.len()
            + encoding::message::encoded_len_repeated(HEADERS_FIELD, &per_check_headers(edits))
            + encoding::string::encoded_len_repeated(HEADERS_TO_REMOVE_FIELD, &edits.remove)
            + encoding::string::encoded_len_repeated(QUERY_TO_REMOVE_FIELD, &edits.remove_query)
    }

    fn encoded_len(&self, edits: &Edits) -> usize {
        let ok = self.ok_response_len(edits);
        encoding::message::encoded_len(STATUS_FIELD, &OK_STATUS)
            + encoding::key_len(OK_RESPONSE_FIELD)
            + encoding::encoded_len_varint(ok as u64)
            + ok
            + self.0.metadata.len()
    }

    /// Fields in the order prost writes them: status, ok_response
    /// (headers: the identity's, then this request's; headers_to_remove;
    /// query_parameters_to_remove), dynamic_metadata.
    fn encode(&self, edits: &Edits, buf: &mut impl BufMut) {
        encoding::message::encode(STATUS_FIELD, &OK_STATUS, buf);
        encoding::encode_key(OK_RESPONSE_FIELD, WireType::LengthDelimited, buf);
        encoding::encode_varint(self.ok_response_len(edits) as u64, buf);
        buf.put_slice(&self.0.headers);
        encoding::message::encode_repeated(HEADERS_FIELD, &per_check_headers(edits), buf);
        encoding::string::encode_repeated(HEADERS_TO_REMOVE_FIELD, &edits.remove, buf);
        encoding::string::encode_repeated(QUERY_TO_REMOVE_FIELD, &edits.remove_query, buf);
        buf.put_slice(&self.0.metadata);
    }
}

/// The headers an allow sets for this request only (empty but for a
/// session cookie cut out of `cookie`: no allocation then).
fn per_check_headers(edits: &Edits) -> Vec<HeaderValueOption> {
    edits.set.iter().map(|(k, v)| header(k, v)).collect()
}

/// A proto3 string field's encoded size: nothing when empty (the default).
fn str_field_len(tag: u32, value: &str) -> usize {
    if value.is_empty() {
        return 0;
    }
    encoding::key_len(tag) + encoding::encoded_len_varint(value.len() as u64) + value.len()
}

fn put_str_field(tag: u32, value: &str, buf: &mut impl BufMut) {
    if !value.is_empty() {
        put_len_prefix(tag, value.len(), buf);
        buf.put_slice(value.as_bytes());
    }
}

/// The key and length of a length-delimited field.
fn put_len_prefix(tag: u32, len: usize, buf: &mut impl BufMut) {
    encoding::encode_key(tag, WireType::LengthDelimited, buf);
    encoding::encode_varint(len as u64, buf);
}

#[cfg(test)]
fn allow_metadata(identity: &Identity) -> Struct {
    metadata(&[
        ("user_id", &identity.user_id),
        ("auth_method", identity.method.as_str()),
    ])
}

impl Answer {
    /// The identity's encoded allow, made on first use and kept in the
    /// identity (a cached identity is shared by every check it allows).
    fn encoder(identity: &Identity) -> Encoder<'_> {
        Encoder(
            identity
                .encoded
                .get_or_init(|| Encoder::encode_allow(identity)),
        )
    }
}

impl Message for Answer {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        match self {
            Answer::Allow { identity, edits } => Answer::encoder(identity).encode(edits, buf),
            Answer::Message(m) => m.encode_raw(buf),
        }
    }

    fn encoded_len(&self) -> usize {
        match self {
            Answer::Allow { identity, edits } => Answer::encoder(identity).encoded_len(edits),
            Answer::Message(m) => m.encoded_len(),
        }
    }

    /// ward only sends answers; it never decodes one.
    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), prost::DecodeError> {
        encoding::skip_field(wire_type, tag, buf, ctx)
    }

    fn clear(&mut self) {
        *self = Answer::Message(CheckResponse::default());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credential_kind::CredentialKind;

    fn identity(headers: &[(&str, &str)]) -> Arc<Identity> {
        Arc::new(Identity {
            user_id: "alice".into(),
            method: CredentialKind::Session,
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            jti: None,
            session_id: None,
            roles: vec![],
            scopes: vec![],
            encoded: Default::default(),
        })
    }

    /// The allow as a plain `CheckResponse`: what the bytes must decode to.
    fn expected(identity: &Identity, edits: &Edits) -> CheckResponse {
        CheckResponse {
            status: Some(OK_STATUS),
            http_response: Some(HttpResponse::OkResponse(OkHttpResponse {
                headers: identity
                    .headers
                    .iter()
                    .chain(&edits.set)
                    .map(|(k, v)| header(k, v))
                    .collect(),
                headers_to_remove: edits.remove.clone(),
                query_parameters_to_remove: edits.remove_query.clone(),
                ..Default::default()
            })),
            dynamic_metadata: Some(allow_metadata(identity)),
        }
    }

    #[test]
    fn pre_encoded_allow_is_the_same_check_response() {
        let long = "v".repeat(300); // a length that needs a two-byte varint
        let cases = [
            (
                vec![("x-user-id", "alice"), ("x-auth-method", "session")],
                vec![],
            ),
            (
                vec![("x-user-id", "alice"), ("x-user-email", long.as_str())],
                vec!["x-user-admin".to_string(), "x_user_id".to_string()],
            ),
            (vec![], vec!["x-auth-forged".to_string()]),
            // Never produced by identity.rs, but encoded as prost would.
            (vec![("x-empty", ""), ("", "v")], vec![]),
        ];
        let with_edits = |remove: Vec<String>| {
            [
                Edits {
                    remove: remove.clone(),
                    ..Edits::default()
                },
                Edits {
                    remove,
                    set: vec![("cookie".into(), "theme=dark".into())],
                    remove_query: vec!["access_token".into()],
                },
            ]
        };
        for (headers, remove) in cases {
            let id = identity(&headers);
            for edits in with_edits(remove) {
                for _ in 0..2 {
                    // The second round encodes from the identity's kept rendering.
                    let answer = Answer::Allow {
                        identity: id.clone(),
                        edits: edits.clone(),
                    };
                    let bytes = answer.encode_to_vec();
                    assert_eq!(bytes.len(), answer.encoded_len());
                    let decoded = CheckResponse::decode(bytes.as_slice()).unwrap();
                    assert_eq!(decoded, expected(&id, &edits));
                    // Same size as prost's own encoding (map order may differ).
                    assert_eq!(bytes.len(), expected(&id, &edits).encoded_len());
                }
            }
        }
    }

    #[test]
    fn other_answers_encode_as_their_message() {
        let message = CheckResponse {
            status: Some(rpc::Status {
                code: UNAUTHENTICATED,
                ..Default::default()
            }),
            ..Default::default()
        };
        let answer = Answer::Message(message.clone());
        assert_eq!(answer.encode_to_vec(), message.encode_to_vec());
    }
}
