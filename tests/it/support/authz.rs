//! Reading ward's `CheckResponse`s, sending checks to any ward (in-process
//! or the binary), and writing store records the way a login service in
//! another language would: with `redis-cli`.

use std::collections::HashMap;
use std::net::SocketAddr;

use envoy_types::ext_authz::v3::pb::{
    CheckRequest, CheckResponse, HeaderAppendAction, HttpResponse,
};
use envoy_types::pb::envoy::config::core::v3::{Address, SocketAddress, address, socket_address};
use envoy_types::pb::envoy::service::auth::v3::attribute_context::Peer;
use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use tonic::transport::Channel;

use super::http;
use super::inproc::check_request;
use super::redis::RedisServer;

/// A gRPC client for `Authorization/Check` on `addr`.
pub async fn connect(addr: SocketAddr) -> AuthorizationClient<Channel> {
    AuthorizationClient::connect(format!("http://{addr}"))
        .await
        .unwrap_or_else(|e| panic!("cannot connect to ward at {addr}: {e}"))
}

/// One Check with these headers (no peer address).
pub async fn check(
    client: &AuthorizationClient<Channel>,
    headers: &[(&str, &str)],
) -> CheckResponse {
    send(client, check_request("GET", "/api", headers)).await
}

/// One Check as Envoy would send it for a client connecting from `peer_ip`.
pub async fn check_from(
    client: &AuthorizationClient<Channel>,
    peer_ip: &str,
    headers: &[(&str, &str)],
) -> CheckResponse {
    send(
        client,
        with_peer(check_request("GET", "/api", headers), peer_ip),
    )
    .await
}

/// Sends a prepared request; a gRPC error is a test failure (ward must
/// always answer with a `CheckResponse`).
pub async fn send(client: &AuthorizationClient<Channel>, req: CheckRequest) -> CheckResponse {
    client
        .clone()
        .check(req)
        .await
        .expect("Check must always answer with a CheckResponse")
        .into_inner()
}

/// `req` with `attributes.source` set to `peer_ip:40000`.
pub fn with_peer(mut req: CheckRequest, peer_ip: &str) -> CheckRequest {
    let attrs = req.attributes.as_mut().expect("attributes");
    attrs.source = Some(Peer {
        address: Some(Address {
            address: Some(address::Address::SocketAddress(SocketAddress {
                address: peer_ip.to_string(),
                port_specifier: Some(socket_address::PortSpecifier::PortValue(40000)),
                ..Default::default()
            })),
        }),
        ..Default::default()
    });
    req
}

/// The HTTP status ward decided: 200 for an allow.
pub fn status(resp: &CheckResponse) -> i32 {
    match resp
        .http_response
        .as_ref()
        .expect("http_response is always set")
    {
        HttpResponse::OkResponse(_) => 200,
        HttpResponse::DeniedResponse(d) => d.status.as_ref().expect("deny has a status").code,
        HttpResponse::ErrorResponse(_) => panic!("ward must never answer with error_response"),
    }
}

/// The deny body's `reason`, or `"allowed"`.
pub fn reason(resp: &CheckResponse) -> String {
    match resp.http_response.as_ref().expect("http_response") {
        HttpResponse::DeniedResponse(d) => {
            let body: serde_json::Value = serde_json::from_str(&d.body).expect("deny body is JSON");
            body["reason"].as_str().expect("reason").to_string()
        }
        _ => "allowed".into(),
    }
}

/// `(status, reason)`, for compact assertions.
pub fn verdict(resp: &CheckResponse) -> (i32, String) {
    (status(resp), reason(resp))
}

/// The value ward sets for header `name` on an allow (asserting it is set
/// with `OVERWRITE_IF_EXISTS_OR_ADD`, and only once).
pub fn set_header(resp: &CheckResponse, name: &str) -> Option<String> {
    let HttpResponse::OkResponse(ok) = resp.http_response.as_ref()? else {
        return None;
    };
    let found: Vec<(String, i32)> = ok
        .headers
        .iter()
        .filter_map(|h| h.header.as_ref().map(|hv| (hv, h.append_action)))
        .filter(|(hv, _)| hv.key.eq_ignore_ascii_case(name))
        .map(|(hv, action)| (hv.value.clone(), action))
        .collect();
    assert!(found.len() <= 1, "{name} set {} times", found.len());
    found.into_iter().next().map(|(value, action)| {
        assert_eq!(
            action,
            HeaderAppendAction::OverwriteIfExistsOrAdd as i32,
            "{name} must overwrite a client value"
        );
        value
    })
}

/// The headers an allow tells Envoy to remove.
pub fn removed(resp: &CheckResponse) -> Vec<String> {
    match resp.http_response.as_ref() {
        Some(HttpResponse::OkResponse(ok)) => ok.headers_to_remove.clone(),
        _ => Vec::new(),
    }
}

/// Asserts the invariant on every allow: no header is both set and removed.
pub fn assert_no_set_and_remove(resp: &CheckResponse) {
    if let Some(HttpResponse::OkResponse(ok)) = resp.http_response.as_ref() {
        for h in ok.headers.iter().filter_map(|h| h.header.as_ref()) {
            assert!(
                !ok.headers_to_remove
                    .iter()
                    .any(|r| r.eq_ignore_ascii_case(&h.key)),
                "{} is both set and removed (Envoy removes after setting)",
                h.key
            );
        }
    }
}

/// A fresh, well-formed session id (32 base62 characters: ~190 bits).
pub fn session_id() -> String {
    ward::session::generate_id().expect("randomness")
}

/// `redis-cli HSET key f1 v1 f2 v2 ...`, asserting Redis took it.
pub fn hset(redis: &RedisServer, key: &str, fields: &[(&str, &str)]) {
    let mut args = vec!["HSET", key];
    for (f, v) in fields {
        args.push(f);
        args.push(v);
    }
    let out = redis.cli(&args);
    assert!(
        out.parse::<u64>().is_ok(),
        "redis-cli HSET {key}: unexpected reply {out:?}"
    );
}

/// `redis-cli PUBLISH ward:invalidate key`.
pub fn publish_invalidation(redis: &RedisServer, key: &str) {
    let out = redis.cli(&["PUBLISH", ward::store::keys::INVALIDATION_CHANNEL, key]);
    assert!(
        out.parse::<u64>().is_ok(),
        "redis-cli PUBLISH: unexpected reply {out:?}"
    );
}

/// Waits until a ward subscribes to invalidations on `redis` (PUBLISH
/// counts a receiver), then a little longer for the `Reset` every
/// subscribe sends first to be applied: a test that reads a record before
/// that could see its cache cleared under it.
pub async fn wait_subscribed(redis: &RedisServer) {
    let started = std::time::Instant::now();
    loop {
        let out = redis.cli(&["PUBLISH", ward::store::keys::INVALIDATION_CHANNEL, "warmup"]);
        if out.trim().parse::<u64>().is_ok_and(|n| n > 0) {
            break;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "ward did not subscribe to invalidations within 10 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
}

/// ward's `/metrics` text.
pub async fn metrics(admin: SocketAddr) -> String {
    let resp = http::get(admin, "/metrics")
        .await
        .unwrap_or_else(|e| panic!("GET /metrics on {admin}: {e}"));
    assert_eq!(resp.status, 200, "/metrics: {}", resp.text());
    resp.text()
}

/// The sum of every sample of metric `name` whose labels include `labels`.
pub fn metric_value(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    let mut total = 0.0;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        let (label_part, value) = if let Some(rest) = rest.strip_prefix('{') {
            match rest.split_once('}') {
                Some((l, v)) => (l, v),
                None => continue,
            }
        } else if rest.starts_with(' ') {
            ("", rest)
        } else {
            continue; // another metric sharing the prefix
        };
        let have: HashMap<&str, &str> = label_part
            .split(',')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.trim(), v.trim().trim_matches('"')))
            .collect();
        if labels.iter().all(|(k, v)| have.get(k) == Some(v)) {
            total += value.trim().parse::<f64>().unwrap_or(0.0);
        }
    }
    total
}

/// `metric_value` over a fresh scrape.
pub async fn metric(admin: SocketAddr, name: &str, labels: &[(&str, &str)]) -> f64 {
    metric_value(&metrics(admin).await, name, labels)
}

/// Nearest-rank percentile of `samples` (sorted in place), `p` in 0..=100.
pub fn percentile(samples: &mut [f64], p: f64) -> f64 {
    assert!(!samples.is_empty(), "no samples");
    samples.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * samples.len() as f64).ceil() as usize;
    samples[rank.clamp(1, samples.len()) - 1]
}
