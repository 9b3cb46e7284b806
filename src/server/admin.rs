//! The admin HTTP port: liveness, readiness and metrics, kept off the
//! gRPC port so a probe or a scrape never competes with Envoy's checks and
//! never needs to be exposed where Envoy is.

use super::generation::Live;
use crate::metrics::Metrics;
use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
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
        .with_state(State {
            live,
            metrics,
            draining,
        })
}

async fn ready(axum::extract::State(s): axum::extract::State<State>) -> impl IntoResponse {
    if s.draining.load(Ordering::Relaxed) {
        (StatusCode::SERVICE_UNAVAILABLE, "draining\n")
    } else if s.live.current().keys.is_ready() {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "waiting for keys\n")
    }
}

async fn metrics_text(axum::extract::State(s): axum::extract::State<State>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        s.metrics.render(),
    )
}
