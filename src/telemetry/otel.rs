//! The OTLP span exporter and its tracer: batched export on the SDK's own
//! thread, parent-based sampling (a caller's sampled flag wins; traces
//! ward starts are kept at `tracing.sampling_ratio`).

use crate::config::{OtlpConfig, OtlpProtocol, TracingConfig};
use opentelemetry::KeyValue;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, SpanExporter, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider, Tracer};

/// Why traces could not start.
#[derive(Debug, thiserror::Error)]
pub(crate) enum OtelError {
    #[error("tracing.otlp: {0}")]
    Exporter(#[from] opentelemetry_otlp::ExporterBuildError),
}

/// The running exporter.
pub(crate) struct Traces {
    provider: SdkTracerProvider,
}

impl Traces {
    pub(crate) fn start(otlp: &OtlpConfig, config: &TracingConfig) -> Result<Traces, OtelError> {
        let exporter = match otlp.protocol {
            OtlpProtocol::Grpc => SpanExporter::builder()
                .with_tonic()
                .with_endpoint(&otlp.endpoint)
                .with_timeout(otlp.timeout)
                .build()?,
            OtlpProtocol::Http => SpanExporter::builder()
                .with_http()
                .with_protocol(Protocol::HttpBinary)
                .with_endpoint(&otlp.endpoint)
                .with_timeout(otlp.timeout)
                .build()?,
        };
        let attributes = config
            .resource
            .iter()
            .map(|(k, v)| KeyValue::new(k.clone(), v.clone()));
        let resource = Resource::builder()
            .with_service_name(config.service_name.clone())
            .with_attributes(attributes)
            .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
            .build();
        let sampler =
            Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(config.sampling_ratio)));
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_sampler(sampler)
            .with_resource(resource)
            .build();
        Ok(Traces { provider })
    }

    pub(crate) fn tracer(&self) -> Tracer {
        self.provider.tracer("ward")
    }

    /// Exports what is buffered, then stops.
    pub(crate) fn shutdown(self) {
        if let Err(e) = self.provider.shutdown() {
            tracing::warn!(error = %e, "traces: shutdown");
        }
    }
}
