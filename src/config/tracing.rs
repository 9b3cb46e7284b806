//! The `tracing` section: OpenTelemetry traces, off unless an OTLP
//! endpoint is set. ward continues the trace Envoy started for the
//! ext_authz call, so a check shows up under Envoy's span in Jaeger or
//! Tempo; see `docs/operations.md`.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// Where and how traces are sent.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TracingConfig {
    /// The OTLP collector; absent: no traces (and no cost).
    pub otlp: Option<OtlpConfig>,
    /// The share of traces ward starts that are kept (0.0 to 1.0). A check
    /// whose caller (Envoy) sent a trace context follows the caller's
    /// sampling decision instead.
    pub sampling_ratio: f64,
    /// `service.name` of ward's spans.
    pub service_name: String,
    /// More resource attributes (`deployment.environment: prod`, ...).
    pub resource: BTreeMap<String, String>,
}

impl Default for TracingConfig {
    fn default() -> Self {
        Self {
            otlp: None,
            sampling_ratio: 1.0,
            service_name: "ward".to_string(),
            resource: BTreeMap::new(),
        }
    }
}

/// The OTLP exporter.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OtlpConfig {
    /// `http://collector:4317` (gRPC) or `http://collector:4318/v1/traces`
    /// (HTTP).
    pub endpoint: String,
    #[serde(default)]
    pub protocol: OtlpProtocol,
    /// How long one export may take.
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
}

fn default_timeout() -> Duration {
    Duration::from_secs(3)
}

/// OTLP's two transports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OtlpProtocol {
    /// OTLP/gRPC (port 4317 by convention).
    #[default]
    Grpc,
    /// OTLP/HTTP with protobuf bodies (port 4318, path `/v1/traces`).
    Http,
}
