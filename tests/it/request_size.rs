//! Every request ward can receive on the Check method gets a
//! `CheckResponse`: one larger than `listen.max_request_bytes` is denied
//! 413 `request_too_large`, one that cannot be decoded (bad protobuf, a
//! compressed or truncated gRPC frame) 400 `malformed_request`, never a
//! gRPC error (which Envoy's `failure_mode_allow: true` would let through).
//! Over tonic's client, over raw HTTP/2 for frames no client library
//! sends, and through a real Envoy buffering a large body.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use envoy_types::ext_authz::v3::pb::{CheckRequest, CheckResponse};
use jsonwebtoken::Algorithm;
use prost::Message;
use serde_json::json;
use std::net::SocketAddr;
use std::time::Duration;
use support::authz::{metric, reason, send, set_header, status};
use support::echo::{Echo, header_values};
use support::envoy::{AuthzTarget, Envoy, EnvoyOptions, render_config};
use support::inproc::{InProc, check_request};
use support::tokens::{HMAC_SECRET, claims, sign};

const MIB: usize = 1024 * 1024;

fn config(extra: &str) -> String {
    format!(
        "log: {{format: text, level: warn}}\n{extra}jwt:\n  issuers: [\"https://idp.test\"]\n  audiences: [api]\n  keys:\n    - {{kid: h, alg: HS256, secret: {{value: \"{HMAC_SECRET}\"}}}}\n"
    )
}

fn bearer() -> String {
    format!(
        "Bearer {}",
        sign(Algorithm::HS256, Some("h"), &claims("alice"))
    )
}

/// A check of `POST /upload` from alice, carrying a body of `size` bytes
/// (as Envoy's `with_request_body` sends it).
fn with_body(size: usize) -> CheckRequest {
    let auth = bearer();
    let mut req = check_request("POST", "/upload", &[("authorization", &auth)]);
    let attrs = req.attributes.as_mut().unwrap();
    let http = attrs.request.as_mut().unwrap().http.as_mut().unwrap();
    http.body = "x".repeat(size);
    http.size = size as i64;
    req
}

#[tokio::test]
async fn a_request_over_the_default_limit_is_denied_413() {
    let ward = InProc::start(&config("")).await;
    let resp = send(&ward.client, with_body(9 * MIB)).await;
    assert_eq!(
        (status(&resp), reason(&resp)),
        (413, "request_too_large".into())
    );
    let labels = [("decision", "deny"), ("reason", "request_too_large")];
    assert_eq!(
        metric(ward.admin_addr, "ward_check_total", &labels).await,
        1.0
    );
    // The connection still serves checks.
    let resp = send(&ward.client, with_body(10)).await;
    assert_eq!(status(&resp), 200, "{}", reason(&resp));
}

#[tokio::test]
async fn a_large_request_under_the_limit_is_decided_normally() {
    let ward = InProc::start(&config("")).await;
    let resp = send(&ward.client, with_body(6 * MIB)).await;
    assert_eq!(status(&resp), 200, "{}", reason(&resp));
    assert_eq!(set_header(&resp, "x-user-id").as_deref(), Some("alice"));
}

#[tokio::test]
async fn the_limit_is_listen_max_request_bytes() {
    let ward = InProc::start(&config("listen: {max_request_bytes: 1048576}\n")).await;
    let resp = send(&ward.client, with_body(MIB - 4096)).await;
    assert_eq!(status(&resp), 200, "{}", reason(&resp));
    let resp = send(&ward.client, with_body(MIB)).await;
    assert_eq!(
        (status(&resp), reason(&resp)),
        (413, "request_too_large".into())
    );
}

/// What a raw HTTP/2 Check call got back.
#[derive(Debug)]
struct Raw {
    http_status: u16,
    grpc_status: Option<String>,
    message: Option<CheckResponse>,
}

/// A gRPC frame: the compressed flag, the declared length, the bytes.
fn frame(compressed: u8, declared: u32, bytes: &[u8]) -> Vec<u8> {
    let mut f = vec![compressed];
    f.extend_from_slice(&declared.to_be_bytes());
    f.extend_from_slice(bytes);
    f
}

/// The headers of a Check call to `addr`, over raw HTTP/2.
fn check_call(addr: SocketAddr) -> http::Request<()> {
    http::Request::builder()
        .method("POST")
        .uri(format!(
            "http://{addr}/envoy.service.auth.v3.Authorization/Check"
        ))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .unwrap()
}

/// Sends `body` as a Check call's request body over raw HTTP/2; with
/// `end` false the stream stays open (the client would send more).
async fn raw_check(addr: SocketAddr, body: Vec<u8>, end: bool) -> Raw {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (client, conn) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(conn);
    let mut client = client.ready().await.unwrap();
    let (response, mut stream) = client.send_request(check_call(addr), false).unwrap();
    stream.send_data(body.into(), end).unwrap();
    let response = tokio::time::timeout(Duration::from_secs(10), response)
        .await
        .expect("ward must answer without waiting for the rest")
        .unwrap();
    let http_status = response.status().as_u16();
    let mut grpc_status = response
        .headers()
        .get("grpc-status")
        .map(|v| v.to_str().unwrap().to_string());
    let mut body = response.into_body();
    let mut data = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.unwrap();
        let _ = body.flow_control().release_capacity(chunk.len());
        data.extend_from_slice(&chunk);
    }
    if let Some(trailers) = body.trailers().await.unwrap() {
        grpc_status = trailers
            .get("grpc-status")
            .map(|v| v.to_str().unwrap().to_string());
    }
    drop(stream);
    let message = (data.len() >= 5).then(|| {
        assert_eq!(data[0], 0, "an uncompressed answer");
        let len = u32::from_be_bytes(data[1..5].try_into().unwrap()) as usize;
        assert_eq!(data.len(), 5 + len, "one whole message");
        CheckResponse::decode(&data[5..]).unwrap()
    });
    Raw {
        http_status,
        grpc_status,
        message,
    }
}

/// The answer must be a normal `CheckResponse` (gRPC OK) with this deny.
fn assert_denied(raw: &Raw, code: i32, expected: &str, case: &str) {
    assert_eq!(raw.http_status, 200, "{case}: {raw:?}");
    assert_eq!(raw.grpc_status.as_deref(), Some("0"), "{case}: {raw:?}");
    let msg = raw
        .message
        .as_ref()
        .unwrap_or_else(|| panic!("{case}: {raw:?}"));
    assert_eq!(
        (status(msg), reason(msg).as_str()),
        (code, expected),
        "{case}"
    );
}

#[tokio::test]
async fn undecodable_requests_are_denied_400_with_a_check_response() {
    let ward = InProc::start(&config("")).await;
    let valid = with_body(10).encode_to_vec();
    let len = valid.len() as u32;
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("not protobuf", frame(0, 3, &[0xff, 0xff, 0xff])),
        ("truncated field", frame(0, 3, &[0x0a, 0x05, 0x22])),
        ("compressed flag", frame(1, len, &valid)),
        ("unknown flag", frame(2, len, &valid)),
        ("frame shorter than declared", frame(0, len + 10, &valid)),
        ("prefix cut short", vec![0, 0, 0]),
        ("no message", vec![]),
        (
            "two messages",
            [frame(0, len, &valid), frame(0, len, &valid)].concat(),
        ),
    ];
    for (case, body) in cases {
        let raw = raw_check(ward.grpc_addr, body, true).await;
        assert_denied(&raw, 400, "malformed_request", case);
    }
    // The same valid message is allowed: the frames above were the problem.
    let raw = raw_check(ward.grpc_addr, frame(0, len, &valid), true).await;
    let msg = raw.message.expect("an answer");
    assert_eq!(status(&msg), 200, "{}", reason(&msg));
    let labels = [("decision", "deny"), ("reason", "malformed_request")];
    assert_eq!(
        metric(ward.admin_addr, "ward_check_total", &labels).await,
        8.0
    );
}

#[tokio::test]
async fn a_prefix_declaring_100_mib_is_answered_without_reading_on() {
    let ward = InProc::start(&config("")).await;
    // The client claims 100 MiB, sends 64 KiB and keeps the stream open:
    // ward answers from the prefix alone.
    let body = frame(0, 100 * MIB as u32, &vec![0u8; 64 * 1024]);
    let raw = raw_check(ward.grpc_addr, body, false).await;
    assert_denied(&raw, 413, "request_too_large", "100 MiB declared");
}

/// Envoy (gRPC ext_authz) buffering the request body for ward, with
/// `failure_mode_allow: true`: a gRPC error from ward would let the
/// request through to the upstream.
fn with_request_body(echo: SocketAddr, ward: SocketAddr) -> impl Fn(u16, u16) -> serde_json::Value {
    move |http_port, admin_port| {
        let mut opts = EnvoyOptions::new(echo, AuthzTarget::Tcp(ward));
        opts.failure_mode_allow = true;
        opts.timeout = Duration::from_secs(10);
        let mut config = render_config(&opts, http_port, admin_port);
        buffer_bodies_for_ward(&mut config);
        config
    }
}

/// Envoy sends ward the whole body (up to 12 MiB, never a partial one).
fn buffer_bodies_for_ward(config: &mut serde_json::Value) {
    let listener = &mut config["static_resources"]["listeners"][0];
    let hcm = &mut listener["filter_chains"][0]["filters"][0]["typed_config"];
    let authz = &mut hcm["http_filters"][0]["typed_config"];
    authz["with_request_body"] = json!({
        "max_request_bytes": 12 * MIB,
        "allow_partial_message": false,
    });
    listener["per_connection_buffer_limit_bytes"] = json!(16 * MIB);
}

#[tokio::test]
async fn through_envoy_a_body_over_the_limit_is_denied_not_let_through() {
    let echo = Echo::start().await;
    let ward = InProc::start(&config("")).await;
    let envoy = Envoy::start_bootstrap(with_request_body(echo.addr, ward.grpc_addr)).await;
    let auth = bearer();
    let headers = [("authorization", auth.as_str())];
    // Only the start of a response: the upstream echoes the whole body.
    let head = |r: &support::http::Response| r.text().chars().take(300).collect::<String>();
    let resp = envoy
        .request("POST", "/upload", &headers, &vec![b'x'; 6 * MIB])
        .await;
    assert_eq!(resp.status, 200, "6 MiB is decided: {}", head(&resp));
    let seen = resp.json();
    assert_eq!(
        header_values(&seen, "x-user-id"),
        vec!["alice"],
        "ward allowed it"
    );
    let resp = envoy
        .request("POST", "/upload", &headers, &vec![b'x'; 9 * MIB])
        .await;
    assert_eq!(resp.status, 413, "{}\n{}", head(&resp), envoy.logs());
    assert_eq!(resp.json()["reason"], "request_too_large");
    assert_eq!(
        echo.hits(),
        1,
        "only the 6 MiB request reached the upstream"
    );
}

/// Envoy in HTTP ext_authz mode (`http_service`, forwarding `cookie`),
/// with header limits raised so a client can send ward more than its
/// HTTP server reads, and the body buffered for ward as well.
fn http_mode(echo: SocketAddr, ward: SocketAddr) -> impl Fn(u16, u16) -> serde_json::Value {
    move |http_port, admin_port| {
        let mut opts = EnvoyOptions::new(echo, AuthzTarget::Http(ward));
        opts.failure_mode_allow = true;
        opts.status_on_error = None;
        opts.timeout = Duration::from_secs(10);
        let mut config = render_config(&opts, http_port, admin_port);
        let listener = &mut config["static_resources"]["listeners"][0];
        let hcm = &mut listener["filter_chains"][0]["filters"][0]["typed_config"];
        hcm["max_request_headers_kb"] = json!(8192);
        hcm["common_http_protocol_options"] = json!({ "max_headers_count": 1000 });
        buffer_bodies_for_ward(&mut config);
        config
    }
}

/// ward's HTTP server (hyper) answers a request whose headers it will not
/// read with 431 before any check: a 4xx, which Envoy's HTTP ext_authz
/// takes as a deny (a 5xx would be a failure, let through here). In HTTP
/// mode a large body is decided on the headers; ward reads and drops it
/// before answering, so Envoy never sees the call reset (which it would
/// count as a failure, let through here without identity headers).
#[tokio::test]
async fn http_mode_answers_oversized_requests_with_a_4xx_deny() {
    let echo = Echo::start().await;
    let ward = support::ward::Ward::start(&config("")).await;
    let envoy = Envoy::start_bootstrap(http_mode(echo.addr, ward.http_addr)).await;
    let auth = bearer();
    let names: Vec<String> = (0..200).map(|i| format!("x-user-pad-{i}")).collect();
    let cookie = format!("a={}", "x".repeat(MIB));
    // (case, extra headers, body size, status)
    type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, usize, u16);
    let cases: Vec<Case> = vec![
        ("1 MiB cookie", vec![("cookie", &cookie)], 0, 431),
        (
            "200 forwarded headers",
            names.iter().map(|n| (n.as_str(), "1")).collect(),
            0,
            431,
        ),
        ("6 MiB body", vec![], 6 * MIB, 200),
    ];
    for (case, extra, body, expected) in cases {
        let mut headers = vec![("authorization", auth.as_str())];
        headers.extend(extra);
        let resp = envoy
            .request("POST", "/upload", &headers, &vec![b'x'; body])
            .await;
        let head: String = resp.text().chars().take(300).collect();
        assert_eq!(resp.status, expected, "{case}: {head}\n{}", envoy.logs());
        if expected == 200 {
            assert_eq!(header_values(&resp.json(), "x-user-id"), vec!["alice"]);
        }
    }
    assert_eq!(
        echo.hits(),
        1,
        "the oversized headers never reached the upstream"
    );
}

/// A call the client resets before its message is whole (Envoy does, for
/// the checks of requests its clients dropped) is no request: ward counts
/// and logs no deny for it. The same cut-short body ended normally is a
/// 400, counted: the control, sent after the reset on the same
/// connection.
#[tokio::test]
async fn a_call_reset_before_its_message_is_not_counted_as_a_deny() {
    let ward = InProc::start(&config("")).await;
    let valid = with_body(10).encode_to_vec();
    let partial = frame(0, valid.len() as u32 + 10, &valid);
    let tcp = tokio::net::TcpStream::connect(ward.grpc_addr)
        .await
        .unwrap();
    let (client, conn) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(conn);
    let mut client = client.ready().await.unwrap();
    let call = || check_call(ward.grpc_addr);
    let (_reset, mut stream) = client.send_request(call(), false).unwrap();
    stream.send_data(partial.clone().into(), false).unwrap();
    stream.send_reset(h2::Reason::CANCEL);
    let mut client = client.ready().await.unwrap();
    let (control, mut stream) = client.send_request(call(), false).unwrap();
    stream.send_data(partial.into(), true).unwrap();
    let control = tokio::time::timeout(Duration::from_secs(10), control)
        .await
        .expect("ward answers the control")
        .unwrap();
    assert_eq!(control.status(), 200);
    let labels = [("decision", "deny"), ("reason", "malformed_request")];
    let started = std::time::Instant::now();
    while metric(ward.admin_addr, "ward_check_total", &labels).await < 1.0 {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the control is counted"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        metric(ward.admin_addr, "ward_check_total", &labels).await,
        1.0,
        "the reset call is not a deny"
    );
}

/// Envoy resets the Check calls of every request its clients dropped: a
/// burst of them (a client pool gone at once) must not cost the
/// connection, which carries other requests' checks. h2's guard against
/// rapid-reset floods closes a connection after 20 streams reset before
/// the server took them; ward allows as many as the streams it allows
/// open at once (`listen.max_concurrent_streams`).
#[tokio::test]
async fn a_burst_of_reset_calls_keeps_the_connection() {
    let ward = InProc::start(&config("")).await;
    let valid = with_body(10).encode_to_vec();
    let tcp = tokio::net::TcpStream::connect(ward.grpc_addr)
        .await
        .unwrap();
    let (client, conn) = h2::client::handshake(tcp).await.unwrap();
    let connection = tokio::spawn(conn);
    let call = || check_call(ward.grpc_addr);
    let mut client = client.ready().await.unwrap();
    for _ in 0..200 {
        let (_gone, mut stream) = client.send_request(call(), false).unwrap();
        stream.send_reset(h2::Reason::CANCEL);
        client = client.ready().await.unwrap();
    }
    let (answer, mut stream) = client.send_request(call(), false).unwrap();
    let len = valid.len() as u32;
    stream
        .send_data(frame(0, len, &valid).into(), true)
        .unwrap();
    let answer = tokio::time::timeout(Duration::from_secs(10), answer)
        .await
        .expect("ward answers after the burst");
    assert_eq!(answer.map(|r| r.status().as_u16()).ok(), Some(200));
    assert!(!connection.is_finished(), "the connection stays up");
}
