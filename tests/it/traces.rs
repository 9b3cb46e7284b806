//! OpenTelemetry traces through the real binary and a real OTLP/gRPC
//! receiver: a check's span continues the trace its caller sent (gRPC
//! metadata, as Envoy's gRPC client sends it; HTTP headers in HTTP mode;
//! W3C or B3), falls back to the checked request's own trace headers,
//! follows the caller's "not sampled", carries the decision and never the
//! credential, and is exported when ward stops.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use jsonwebtoken::Algorithm;
use std::time::Duration;
use support::authz::status;
use support::inproc::check_request;
use support::otlp::{Receiver, attribute};
use support::tokens::{claims, public_key_file, sign};
use support::ward::Ward;

const TRACE: &str = "0af7651916cd43dd8448eb211c80319c";

fn config(receiver: &Receiver) -> String {
    format!(
        r#"log: {{format: text, level: info}}
tracing:
  otlp: {{endpoint: "http://{addr}"}}
  service_name: ward-test
store: {{seed_file: examples/seed.yaml}}
jwt:
  issuers: ["https://idp.test"]
  audiences: [api]
  keys:
    - {{alg: ES256, pem_file: {key}}}
"#,
        addr = receiver.addr,
        key = public_key_file(Algorithm::ES256)
    )
}

fn traceparent(span: &str, flags: &str) -> String {
    format!("00-{TRACE}-{span}-{flags}")
}

/// One Check with `metadata` on the gRPC call and `headers` in the
/// checked request.
async fn check(ward: &Ward, metadata: &[(&'static str, String)], headers: &[(&str, &str)]) -> u16 {
    let mut client = AuthorizationClient::connect(format!("http://{}", ward.grpc_addr))
        .await
        .unwrap();
    let mut req = tonic::Request::new(check_request("GET", "/api", headers));
    for (k, v) in metadata {
        req.metadata_mut().insert(*k, v.parse().unwrap());
    }
    let resp = client.check(req).await.unwrap().into_inner();
    u16::try_from(status(&resp)).unwrap()
}

/// Stops ward with SIGTERM (which exports what is buffered) and waits.
async fn stop(ward: &mut Ward) {
    ward.signal("TERM");
    assert_eq!(
        ward.wait_exit(Duration::from_secs(15)).await,
        Some(0),
        "{}",
        ward.logs()
    );
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn a_checks_span_continues_its_callers_trace() {
    let receiver = Receiver::start().await;
    let mut ward = Ward::start(&config(&receiver)).await;
    let token = format!("Bearer {}", sign(Algorithm::ES256, None, &claims("alice")));
    let auth = [("authorization", token.as_str())];
    // W3C in the call's metadata (Envoy's gRPC client).
    let w3c = vec![("traceparent", traceparent("b7ad6b7169203331", "01"))];
    assert_eq!(check(&ward, &w3c, &auth).await, 200);
    // B3 single header, and a deny.
    let b3 = vec![("b3", format!("{TRACE}-c7ad6b7169203332-1"))];
    assert_eq!(check(&ward, &b3, &[]).await, 401);
    // No metadata: the checked request's own traceparent.
    let inner = traceparent("d7ad6b7169203333", "01");
    let with_inner = [
        ("authorization", token.as_str()),
        ("traceparent", inner.as_str()),
    ];
    assert_eq!(check(&ward, &[], &with_inner).await, 200);
    // The caller did not sample: neither does ward.
    let unsampled = vec![("traceparent", traceparent("e7ad6b7169203334", "00"))];
    assert_eq!(check(&ward, &unsampled, &auth).await, 200);
    // A session: the store read is a child span of the check.
    let session = vec![("traceparent", traceparent("a7ad6b7169203336", "01"))];
    let sid = [("x-session-id", "112f551c-d6fe-4e67-a818-01deee0e47c9")];
    assert_eq!(check(&ward, &session, &sid).await, 200);
    // HTTP mode: the authorization request's headers.
    let http_parent = traceparent("f7ad6b7169203335", "01");
    let resp = support::http::send(
        ward.http_addr,
        "GET",
        "/api",
        &[("authorization", &token), ("traceparent", &http_parent)],
        b"",
    )
    .await
    .unwrap();
    assert_eq!(resp.status, 200);
    stop(&mut ward).await;

    let spans = receiver.spans("ward.check");
    let parent_of = |parent: &str| {
        spans
            .iter()
            .find(|s| hex(&s.parent_span_id) == parent)
            .unwrap_or_else(|| panic!("no ward.check span under {parent}: {spans:#?}"))
    };
    let allowed = parent_of("b7ad6b7169203331");
    assert_eq!(hex(&allowed.trace_id), TRACE);
    assert_eq!(
        attribute(allowed, "ward.decision").as_deref(),
        Some("allow")
    );
    assert_eq!(
        attribute(allowed, "ward.credential").as_deref(),
        Some("jwt")
    );
    // Its token was new: the signature check is a child span.
    let verifies = receiver.spans("ward.jwt.verify");
    assert!(
        verifies.iter().any(|v| v.parent_span_id == allowed.span_id),
        "no ward.jwt.verify under the first check: {verifies:#?}"
    );
    let denied = parent_of("c7ad6b7169203332");
    assert_eq!(attribute(denied, "ward.decision").as_deref(), Some("deny"));
    assert_eq!(
        attribute(denied, "ward.reason").as_deref(),
        Some("missing_credential")
    );
    parent_of("d7ad6b7169203333");
    let session_check = parent_of("a7ad6b7169203336");
    let reads = receiver.spans("ward.store.read");
    let read = reads
        .iter()
        .find(|r| r.parent_span_id == session_check.span_id)
        .unwrap_or_else(|| panic!("no store read under the session's check: {reads:#?}"));
    assert_eq!(attribute(read, "ward.record").as_deref(), Some("session"));
    assert_eq!(read.trace_id, session_check.trace_id);
    parent_of("f7ad6b7169203335");
    assert!(
        spans
            .iter()
            .all(|s| hex(&s.parent_span_id) != "e7ad6b7169203334"),
        "an unsampled caller's check was exported"
    );
    // Never the credential, in any attribute.
    let jwt = token.trim_start_matches("Bearer ");
    for span in &spans {
        for a in &span.attributes {
            assert!(!format!("{:?}", a.value).contains(jwt), "{a:?}");
        }
    }
    // The deny's log line carries the trace id.
    assert!(
        ward.logs().contains(&format!("trace_id={TRACE}"))
            || ward.logs().contains(&format!("trace_id=\"{TRACE}\"")),
        "{}",
        ward.logs()
    );
}

#[tokio::test]
async fn with_traces_off_no_span_is_made_and_checks_answer() {
    let receiver = Receiver::start().await;
    let on = config(&receiver);
    let block = format!(
        "tracing:\n  otlp: {{endpoint: \"http://{}\"}}\n  service_name: ward-test\n",
        receiver.addr
    );
    let yaml = on.replace(&block, "");
    assert_ne!(yaml, on);
    let mut ward = Ward::start(&yaml).await;
    let token = format!("Bearer {}", sign(Algorithm::ES256, None, &claims("alice")));
    let w3c = vec![("traceparent", traceparent("b7ad6b7169203331", "01"))];
    assert_eq!(check(&ward, &w3c, &[("authorization", &token)]).await, 200);
    stop(&mut ward).await;
    assert!(receiver.spans("ward.check").is_empty());
}
