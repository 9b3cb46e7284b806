//! A check's span (`ward.check`), continued from the caller's trace: the
//! parent is the context Envoy sent (gRPC metadata, or the HTTP
//! authorization request's headers), else the trace headers of the
//! request being checked. It carries the decision, reason, credential
//! kind and policy, never the credential. With traces off the span is
//! disabled and every call here returns at once.

use crate::decision::Decision;
use crate::telemetry::{self, propagation};
use opentelemetry::trace::TraceContextExt;
use std::future::Future;
use tracing::field::Empty;
use tracing::{Instrument, Span};
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The caller's context from `header` (lowercase names), only worth
/// reading when traces are on.
pub(super) fn parent<'a>(
    header: impl Fn(&str) -> Option<&'a str>,
) -> Option<opentelemetry::Context> {
    if telemetry::traces_on() {
        propagation::parent(header)
    } else {
        None
    }
}

/// The span of one check, child of `parent` (else of `fallback`, read only
/// when there is no `parent`).
pub(super) fn check_span<'a>(
    parent: Option<opentelemetry::Context>,
    fallback: impl Fn(&str) -> Option<&'a str>,
) -> Span {
    let span = tracing::info_span!(
        target: telemetry::SPANS,
        "ward.check",
        otel.kind = "server",
        ward.decision = Empty,
        ward.reason = Empty,
        ward.credential = Empty,
        ward.policy = Empty,
    );
    if !span.is_disabled()
        && let Some(cx) = parent.or_else(|| propagation::parent(fallback))
    {
        let _ = span.set_parent(cx);
    }
    span
}

/// Runs `decide` in `span` and records its decision there; the caller
/// then renders it inside the span (`span.enter()`), so the deny's log
/// line finds the trace id.
pub(super) async fn decide(span: &Span, decide: impl Future<Output = Decision>) -> Decision {
    let decision = decide.instrument(span.clone()).await;
    record(span, &decision);
    decision
}

/// The decision's attributes on `span`.
fn record(span: &Span, decision: &Decision) {
    if span.is_disabled() {
        return;
    }
    let (kind, reason) = match decision {
        Decision::Allow(_) => ("allow", "ok"),
        Decision::AllowAnonymous { .. } => ("allow", "public"),
        Decision::Deny(deny) => ("deny", deny.reason.as_str()),
    };
    span.record("ward.decision", kind);
    span.record("ward.reason", reason);
    span.record(
        "ward.credential",
        decision.method().map_or("none", |m| m.as_str()),
    );
    if let Decision::Deny(deny) = decision
        && let Some(policy) = &deny.policy
    {
        span.record("ward.policy", policy.name.as_str());
    }
}

/// The trace id of `span`, for the deny's log line (empty with traces off).
pub(super) fn trace_id(span: &Span) -> String {
    if span.is_disabled() {
        return String::new();
    }
    let cx = span.context();
    let sc = cx.span().span_context().clone();
    if sc.is_valid() {
        sc.trace_id().to_string()
    } else {
        String::new()
    }
}
