//! The caller's trace context, from request headers: W3C `traceparent`
//! (and `tracestate`), or B3 (`b3` single header, or `x-b3-traceid`,
//! `x-b3-spanid`, `x-b3-sampled`), whichever Envoy's tracer sends. Envoy's
//! gRPC client puts its ext_authz span's context in the call's metadata;
//! the HTTP ext_authz client in the authorization request's headers.

use opentelemetry::Context;
use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use opentelemetry_sdk::propagation::TraceContextPropagator;

/// Header lookup, whatever holds the headers.
struct Lookup<'a, F: Fn(&str) -> Option<&'a str>>(F);

impl<'a, F: Fn(&str) -> Option<&'a str>> Extractor for Lookup<'a, F> {
    fn get(&self, key: &str) -> Option<&str> {
        (self.0)(key)
    }

    fn keys(&self) -> Vec<&str> {
        Vec::new()
    }
}

/// The remote parent `header` names (lowercase names), if any.
pub(crate) fn parent<'a>(header: impl Fn(&str) -> Option<&'a str>) -> Option<Context> {
    let w3c = TraceContextPropagator::new().extract(&Lookup(&header));
    if w3c.span().span_context().is_valid() {
        return Some(w3c);
    }
    b3(&header).map(|sc| Context::new().with_remote_span_context(sc))
}

fn b3<'a>(header: &impl Fn(&str) -> Option<&'a str>) -> Option<SpanContext> {
    let (trace, span, sampled) = match header("b3") {
        Some(single) => {
            let mut parts = single.split('-');
            (parts.next()?, parts.next()?, parts.next())
        }
        None => (
            header("x-b3-traceid")?,
            header("x-b3-spanid")?,
            header("x-b3-sampled"),
        ),
    };
    // A 64-bit B3 trace id is the low half of a 128-bit one.
    let trace = TraceId::from_hex(&format!("{trace:0>32}")).ok()?;
    let span = SpanId::from_hex(span).ok()?;
    let flags = match sampled {
        Some("1" | "d") | None => TraceFlags::SAMPLED,
        _ => TraceFlags::default(),
    };
    let sc = SpanContext::new(trace, span, flags, true, TraceState::default());
    sc.is_valid().then_some(sc)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(cx: &Context) -> (String, String, bool) {
        let sc = cx.span().span_context().clone();
        (
            sc.trace_id().to_string(),
            sc.span_id().to_string(),
            sc.is_sampled(),
        )
    }

    #[test]
    fn reads_w3c_then_b3() {
        let w3c = |k: &str| {
            (k == "traceparent")
                .then_some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
        };
        let cx = parent(w3c).unwrap();
        assert_eq!(
            ids(&cx),
            (
                "0af7651916cd43dd8448eb211c80319c".into(),
                "b7ad6b7169203331".into(),
                true
            )
        );
        let single =
            |k: &str| (k == "b3").then_some("80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-0");
        let cx = parent(single).unwrap();
        assert_eq!(
            ids(&cx),
            (
                "80f198ee56343ba864fe8b2a57d3eff7".into(),
                "e457b5a2e4d86bd1".into(),
                false
            )
        );
        let multi = |k: &str| match k {
            "x-b3-traceid" => Some("64fe8b2a57d3eff7"),
            "x-b3-spanid" => Some("e457b5a2e4d86bd1"),
            "x-b3-sampled" => Some("1"),
            _ => None,
        };
        let cx = parent(multi).unwrap();
        assert_eq!(ids(&cx).0, "000000000000000064fe8b2a57d3eff7");
        assert!(parent(|_| None).is_none());
        assert!(parent(|k| (k == "traceparent").then_some("garbage")).is_none());
    }
}
