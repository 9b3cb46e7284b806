//! HTTP ext_authz mode: the same decisions over plain HTTP, for Envoy's
//! `http_service`. The checked request is the request line and `Host` as
//! Envoy forwards them; nginx `auth_request` and Traefik `forwardAuth`
//! send a `GET` to their own auth path instead, so they are not
//! supported (docs/configuration.md, `listen.http`).
//!
//! The proxy forwards the original request's method, path and (allowed)
//! headers; ward answers **200 with the identity headers** to allow, the
//! deny's status otherwise (Envoy treats any 5xx as an authorization
//! *failure*, so a 503 from ward fails closed only with
//! `failure_mode_allow: false`, which every shipped config sets).
//!
//! Forged identity headers: on an allow, `x-envoy-auth-headers-to-remove`
//! lists every managed header the client sent that ward does not set, and
//! every credential of a kind not forwarded (`forward.rs`); Envoy removes
//! them before the request goes upstream. A session cookie not forwarded
//! is cut out of a `cookie` header in the answer, which the proxy must copy
//! upstream (Envoy: `allowed_upstream_headers`). ward can only see
//! headers Envoy forwards, so Envoy's `allowed_headers` must include the
//! managed prefixes (`x-user-`, `x-auth-`); `envoy/http-mode.yaml` does.
//! The exact managed names outside them are listed on every allow that
//! does not set them, seen or not (`ManagedHeaders::unseen_to_remove`).

use super::trace;
use crate::decision::{Decision, Deny};
use crate::headers::ManagedHeaders;
use crate::metrics::Metrics;
use crate::reason::Reason;
use crate::request::{Headers, Request, fold_headers};
use crate::response::Responder;
use crate::wiring::ServerChecker;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, Response, StatusCode, Uri};
use std::sync::Arc;
use std::time::Instant;

/// The header Envoy reads for headers to remove from the upstream request.
pub(super) const HEADERS_TO_REMOVE: &str = "x-envoy-auth-headers-to-remove";

#[derive(Clone)]
pub(super) struct HttpService {
    pub checker: Arc<ServerChecker>,
    pub managed: Arc<ManagedHeaders>,
    pub metrics: Arc<Metrics>,
    pub responder: Arc<Responder>,
    /// `listen.max_request_bytes`: how much of a body is read and dropped
    /// before answering.
    pub max_body_bytes: usize,
    /// How long a request's body may take to arrive (`listen.
    /// handshake_timeout`): a body announced and never sent must not hold
    /// the answer, and the connection, forever.
    pub body_timeout: std::time::Duration,
}

/// Where each request's service comes from: the running generation,
/// which a reload swaps (`generation.rs`).
pub(super) trait CurrentService: Send + Sync + 'static {
    fn http(&self) -> Arc<HttpService>;
}

/// Every method and path is a check, on the generation current when it
/// arrives.
pub(super) fn router<S: CurrentService>(live: Arc<S>) -> axum::Router {
    axum::Router::new().fallback(check::<S>).with_state(live)
}

async fn check<S: CurrentService>(
    State(live): State<Arc<S>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response<Body> {
    let start = Instant::now();
    let s = live.http();
    let answer = decide(&s, &method, &uri, &headers, start).await;
    // Past the deadline the answer goes out anyway; hyper then closes the
    // connection, whose body was never read to its end.
    let _ = tokio::time::timeout(s.body_timeout, drain(body, s.max_body_bytes)).await;
    answer
}

/// Reads and drops the request body (a proxy may send one: Envoy's
/// `with_request_body`), up to `limit` bytes, before the answer goes out.
/// The decision never depends on it; but a connection closed with bytes
/// still unread is reset by the kernel, and a proxy that sees the reset
/// before the answer takes the call for a failure (under
/// `failure_mode_allow`, a pass without identity headers).
async fn drain(mut body: Body, limit: usize) {
    use http_body_util::BodyExt;
    let mut read = 0usize;
    while read <= limit {
        match body.frame().await {
            Some(Ok(frame)) => read += frame.data_ref().map_or(0, |d| d.len()),
            Some(Err(_)) | None => return,
        }
    }
}

async fn decide(
    s: &HttpService,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    start: Instant,
) -> Response<Body> {
    let Some(map) = header_map(headers) else {
        return s.refuse(Reason::MalformedRequest, start);
    };
    let headers = Headers::owned(&map);
    let host = headers.get("host").or_else(|| uri.host()).unwrap_or("");
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let req = Request {
        method: method.as_str(),
        host,
        path,
        headers,
        // context_extensions exist only in gRPC mode.
        policy: None,
        // The peer is the proxy, not the client: the client IP comes from
        // `x-forwarded-for` (trusted hops), which the proxy must forward.
        source_ip: None,
        // Envoy's HTTP ext_authz sends no peer principal: only a trusted
        // hop's forwarded certificate can name a workload here.
        principal: None,
    };
    // Envoy's HTTP ext_authz client puts its span's context in these
    // headers, beside the checked request's own.
    let span = trace::check_span(trace::parent(|k| headers.get(k)), |_| None);
    let outcome = trace::decide(&span, s.checker.check(&req, crate::unix_now())).await;
    let _in_span = span.enter();
    s.finish(&req, &outcome, start)
}

impl HttpService {
    /// 200 with the identity headers `set`, this request's edits (a
    /// rewritten `cookie`, which the proxy must copy upstream), and the
    /// headers it must lose in `x-envoy-auth-headers-to-remove`. Query
    /// edits cannot be expressed here; config validation refuses
    /// `jwt.from_query` with this mode.
    fn allow<'s>(
        &self,
        req: &Request<'_>,
        set: impl Iterator<Item = (&'s str, &'s str)> + Clone,
    ) -> Response<Body> {
        let mut r = Response::new(Body::empty());
        let edits = self.managed.edits(req, set.clone());
        let set_names = set.clone();
        for (name, value) in set {
            insert(r.headers_mut(), name, value);
        }
        for (name, value) in &edits.set {
            insert(r.headers_mut(), name, value);
        }
        let mut remove = edits.remove;
        for name in self.managed.unseen_to_remove(set_names) {
            if !remove.iter().any(|r| r.eq_ignore_ascii_case(&name)) {
                remove.push(name);
            }
        }
        if !remove.is_empty() {
            insert(r.headers_mut(), HEADERS_TO_REMOVE, &remove.join(","));
        }
        r
    }

    fn finish(&self, req: &Request<'_>, decision: &Decision, start: Instant) -> Response<Body> {
        let response = match decision {
            Decision::Allow(allowed) => self.allow(req, allowed.headers()),
            Decision::AllowAnonymous { .. } => self.allow(req, std::iter::empty()),
            Decision::Deny(deny) => self.deny(Some(req), deny),
        };
        super::record(
            &self.metrics,
            &self.responder,
            Some(req),
            decision,
            start,
            "http",
        );
        response
    }

    /// A deny for a request ward could not read (a header value that is
    /// not text): there is no request to render it with.
    fn refuse(&self, reason: Reason, start: Instant) -> Response<Body> {
        let deny = Deny::new(reason);
        let response = self.deny(None, &deny);
        let decision = Decision::Deny(deny);
        super::record(
            &self.metrics,
            &self.responder,
            None,
            &decision,
            start,
            "http",
        );
        response
    }

    /// The deny's status, headers and JSON body (`req`: `None` for a
    /// request ward could not read).
    fn deny(&self, req: Option<&Request<'_>>, deny: &Deny) -> Response<Body> {
        let d = self.responder.deny(req, deny);
        let mut r = Response::new(Body::from(d.body));
        *r.status_mut() = StatusCode::from_u16(d.status).unwrap_or(StatusCode::FORBIDDEN);
        for (name, value) in &d.headers {
            insert(r.headers_mut(), name, value);
        }
        r
    }
}

fn insert(headers: &mut HeaderMap, name: &str, value: &str) {
    // Identity values are checked for control characters when rendered;
    // a value that still cannot be a header is left out, never mangled.
    if let (Ok(n), Ok(v)) = (
        HeaderName::from_bytes(name.as_bytes()),
        HeaderValue::from_str(value),
    ) {
        headers.insert(n, v);
    }
}

/// The request headers as ward's pairs: lowercase names, repeated headers
/// folded into one value (`,`, or `; ` for cookies). `None` if a value is
/// not text.
fn header_map(headers: &HeaderMap) -> Option<Vec<(String, String)>> {
    let mut pairs = Vec::with_capacity(headers.len());
    for (name, value) in headers {
        pairs.push((name.as_str().to_string(), value.to_str().ok()?.to_string()));
    }
    Some(fold_headers(pairs))
}
