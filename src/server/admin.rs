//! The admin HTTP port: liveness, readiness and metrics, kept off the
//! gRPC port so a probe or a scrape never competes with Envoy's checks and
//! never needs to be exposed where Envoy is; and the public keys of the
//! identity tokens ward signs (JWKS, OpenID discovery), which backends
//! fetch from here: public by nature, so unauthenticated.

use super::generation::Live;
use crate::metrics::Metrics;
use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

#[derive(Clone)]
struct State {
    live: Arc<Live>,
    metrics: Arc<Metrics>,
    draining: Arc<AtomicBool>,
}

/// `/healthz`: the process answers. `/readyz`: config and keys are loaded
/// (503 until every JWKS source has loaded once, and again while draining
/// on shutdown; a reload swaps keys only once its sources have loaded). `/metrics`: Prometheus.
pub(super) fn router(live: Arc<Live>, metrics: Arc<Metrics>, draining: Arc<AtomicBool>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics_text))
        .route("/.well-known/jwks.json", get(jwks))
        .route("/.well-known/openid-configuration", get(discovery))
        .with_state(State {
            live,
            metrics,
            draining,
        })
}

async fn ready(axum::extract::State(s): axum::extract::State<State>) -> impl IntoResponse {
    if s.draining.load(Ordering::Relaxed) {
        (StatusCode::SERVICE_UNAVAILABLE, "draining\n")
    } else if !s.live.current().keys.is_ready() {
        (StatusCode::SERVICE_UNAVAILABLE, "waiting for keys\n")
    } else if !s.live.current().grpc.checker.ports().introspection_ready() {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "waiting for introspection discovery\n",
        )
    } else {
        (StatusCode::OK, "ready\n")
    }
}

/// How long a backend may cache the key documents: well under the
/// default `identity_token.publish_lead` (15 min), so a new key is in
/// every backend's cache before it signs.
const KEYS_MAX_AGE: &str = "public, max-age=300";

/// The identity-token keys: every configured key (those scheduled to
/// sign later too) and those a reload dropped whose tokens may still be
/// live. 404 when no policy sends identity tokens.
async fn jwks(axum::extract::State(s): axum::extract::State<State>) -> Response {
    let generation = s.live.current();
    match generation.signing() {
        Some(ring) => keys_document(ring.jwks(crate::unix_now())),
        None => (StatusCode::NOT_FOUND, "no identity tokens configured\n").into_response(),
    }
}

/// The OpenID discovery document of the identity tokens' issuer.
async fn discovery(axum::extract::State(s): axum::extract::State<State>) -> Response {
    let generation = s.live.current();
    match generation.signing() {
        Some(ring) => keys_document(ring.discovery()),
        None => (StatusCode::NOT_FOUND, "no identity tokens configured\n").into_response(),
    }
}

fn keys_document(body: String) -> Response {
    let headers = [
        (header::CONTENT_TYPE, "application/json"),
        (header::CACHE_CONTROL, KEYS_MAX_AGE),
    ];
    (headers, body).into_response()
}

async fn metrics_text(axum::extract::State(s): axum::extract::State<State>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        s.metrics.render(),
    )
}
