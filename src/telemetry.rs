//! Log output and traces. `serve` logs JSON by default (one object a line,
//! for log pipelines); `text` is for a terminal. `RUST_LOG`, when set,
//! overrides the configured level.
//!
//! Traces (`tracing.otlp`, off by default) go through a second layer that
//! sees only spans of the target [`SPANS`]; the log layer never sees
//! them. With traces off, no layer wants those spans, so `tracing` marks
//! their call sites disabled once and a check pays one relaxed load per
//! span, nothing else: that is how traces cost nothing when off.

mod otel;
pub(crate) mod propagation;

use crate::config::{Log, LogFormat, TracingConfig};
use std::sync::atomic::{AtomicBool, Ordering};
use tracing_subscriber::filter::{EnvFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, Registry};

/// The target of every span meant for traces (`ward.check`,
/// `ward.store.read`, `ward.jwt.verify`, `ward.jwks.fetch`).
pub(crate) const SPANS: &str = crate::TRACE_TARGET;

static TRACES_ON: AtomicBool = AtomicBool::new(false);

/// Whether spans are exported (worth extracting a parent context for).
pub(crate) fn traces_on() -> bool {
    TRACES_ON.load(Ordering::Relaxed)
}

/// What must outlive the server: the span exporter.
pub(crate) struct Telemetry {
    traces: Option<otel::Traces>,
}

impl Telemetry {
    /// Exports the spans still buffered, then stops the exporter. On a
    /// blocking thread: the gRPC exporter's channel runs on this runtime,
    /// which must stay free to drive it (one worker: its only thread).
    pub(crate) async fn finish(self) {
        if let Some(traces) = self.traces {
            let _ = tokio::task::spawn_blocking(move || traces.shutdown()).await;
        }
    }
}

/// Installs the global subscriber: logs, and traces when `tracing.otlp`
/// is set (then inside a Tokio runtime: the gRPC exporter's channel lives
/// on it). Safe to call more than once; later calls are ignored (tests may
/// start several servers in one process).
pub(crate) fn init(log: &Log, tracing: &TracingConfig) -> Telemetry {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&log.level))
        .unwrap_or_else(|_| EnvFilter::new("info"))
        .add_directive(format!("{SPANS}=off").parse().unwrap_or_default());
    let logs = match log.format {
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .with_writer(std::io::stderr)
            .with_filter(filter)
            .boxed(),
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_ansi(false)
            .with_writer(std::io::stderr)
            .with_filter(filter)
            .boxed(),
    };
    let traces = tracing
        .otlp
        .as_ref()
        .and_then(|otlp| match otel::Traces::start(otlp, tracing) {
            Ok(traces) => Some(traces),
            Err(e) => {
                eprintln!("ward: traces off: {e}");
                None
            }
        });
    // Only what the spans table in docs/operations.md lists: no busy and
    // idle times (two clock reads per poll of a check), no thread, source
    // location or target attributes, and no OpenTelemetry context made
    // current on entry (nothing in ward reads it): each costs every
    // check, sampled or not.
    let layer = traces.as_ref().map(|t| {
        tracing_opentelemetry::layer()
            .with_tracked_inactivity(false)
            .with_threads(false)
            .with_location(false)
            .with_target(false)
            .with_context_activation(false)
            .with_tracer(t.tracer())
            .with_filter(Targets::new().with_target(SPANS, tracing::Level::TRACE))
    });
    let installed = Registry::default()
        .with(logs)
        .with(layer)
        .try_init()
        .is_ok();
    TRACES_ON.store(installed && traces.is_some(), Ordering::Relaxed);
    Telemetry {
        traces: traces.filter(|_| installed),
    }
}
