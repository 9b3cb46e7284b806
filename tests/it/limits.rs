//! The brute-force limiter, black-box: a real ward behind a real Envoy,
//! with a real Redis that is stopped to prove a blocked client never
//! reaches it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use jsonwebtoken::Algorithm;
use support::authz::{hset, metric, session_id};
use support::echo::{Echo, header_values};
use support::envoy::Envoy;
use support::redis::RedisServer;
use support::tokens::{claims, now, sign};
use support::ward::Ward;

fn config(redis: &RedisServer, extra: &str) -> String {
    format!(
        "log: {{format: text, level: info}}\n\
         jwt:\n  keys:\n    - {{kid: r1, alg: RS256, pem_file: tests/fixtures/keys/rsa.pub}}\n\
         store:\n  redis: {{url: \"{}\", command_timeout: 50ms, breaker_failures: 1, breaker_open_for: 5s}}\n\
         limits:\n  per_ip: {{failures: 3, per: 1m}}\n  per_credential: {{failures: 100, per: 1m}}\n\
         {extra}",
        redis.url()
    )
}

#[tokio::test]
async fn repeated_failures_get_429_before_the_store_is_asked() {
    let mut redis = RedisServer::start().await;
    let echo = Echo::start().await;
    let ward = Ward::start(&config(&redis, "")).await;
    let envoy = Envoy::start(echo.addr, ward.grpc_addr).await;
    let good = format!(
        "Bearer {}",
        sign(Algorithm::RS256, Some("r1"), &claims("alice"))
    );

    // Unknown sessions: each one a store read and a 401, until the budget
    // of 3 is spent.
    for i in 0..3 {
        let cookie = format!("session_id={}", session_id());
        let resp = envoy.get("/api", &[("cookie", &cookie)]).await;
        assert_eq!(resp.status, 401, "attempt {i}");
        assert_eq!(resp.json()["reason"], "unknown_session");
    }

    // Redis goes away: a blocked client must get 429, not 503, which
    // shows ward answered without asking the store.
    redis.stop();
    let cookie = format!("session_id={}", session_id());
    let resp = envoy.get("/api", &[("cookie", &cookie)]).await;
    assert_eq!(resp.status, 429);
    assert_eq!(resp.json()["reason"], "too_many_failures");
    let wait: u64 = resp.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=20).contains(&wait), "retry-after {wait}");

    // Blocked means blocked, even with a valid token.
    assert_eq!(
        envoy.get("/api", &[("authorization", &good)]).await.status,
        429
    );
    assert_eq!(echo.hits(), 0);
}

#[tokio::test]
async fn a_client_that_stops_failing_is_let_through_after_retry_after() {
    let redis = RedisServer::start().await;
    let echo = Echo::start().await;
    let ward = Ward::start(
        &config(&redis, "").replace("per: 1m}\n  per_credential", "per: 3s}\n  per_credential"),
    )
    .await;
    let envoy = Envoy::start(echo.addr, ward.grpc_addr).await;
    let good = format!(
        "Bearer {}",
        sign(Algorithm::RS256, Some("r1"), &claims("alice"))
    );
    for _ in 0..3 {
        let resp = envoy
            .get("/api", &[("authorization", "Bearer a.b.c")])
            .await;
        assert_eq!(resp.status, 401);
    }
    let resp = envoy.get("/api", &[("authorization", &good)]).await;
    assert_eq!(resp.status, 429);
    let wait: u64 = resp.header("retry-after").unwrap().parse().unwrap();
    // 3 failures per 3 s: one comes back after 1 s.
    assert_eq!(wait, 1);
    // Real time: the ward binary behind Envoy runs on the monotonic clock.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(
        envoy.get("/api", &[("authorization", &good)]).await.status,
        200
    );
    assert_eq!(echo.hits(), 1);
}

#[tokio::test]
async fn missing_credentials_are_not_failures_and_disabled_limits_never_block() {
    let redis = RedisServer::start().await;
    let echo = Echo::start().await;
    let ward = Ward::start(&config(&redis, "")).await;
    let envoy = Envoy::start(echo.addr, ward.grpc_addr).await;
    for _ in 0..6 {
        assert_eq!(envoy.get("/api", &[]).await.status, 401);
    }
    // Six misses spent nothing: a bad token is still a plain 401.
    let resp = envoy
        .get("/api", &[("authorization", "Bearer a.b.c")])
        .await;
    assert_eq!(resp.status, 401);
    drop(envoy);
    drop(ward);

    let ward =
        Ward::start(&config(&redis, "").replace("limits:\n", "limits:\n  enabled: false\n")).await;
    let envoy = Envoy::start(echo.addr, ward.grpc_addr).await;
    for _ in 0..6 {
        let resp = envoy
            .get("/api", &[("authorization", "Bearer a.b.c")])
            .await;
        assert_eq!(resp.status, 401);
    }
}

/// A blocked client is answered from the caches only: a token and a
/// session it used before still pass (a shared address blocked by someone
/// else's failures keeps its signed-in users), anything else gets 429
/// without a signature check or a store read.
#[tokio::test]
async fn a_blocked_client_passes_only_with_a_cached_credential() {
    let mut redis = RedisServer::start().await;
    let echo = Echo::start().await;
    let ward = Ward::start(&config(&redis, "sessions: {fingerprint: {mode: off}}\n")).await;
    let envoy = Envoy::start(echo.addr, ward.grpc_addr).await;
    let bearer = |sub: &str| {
        format!(
            "Bearer {}",
            sign(Algorithm::RS256, Some("r1"), &claims(sub))
        )
    };
    let (alice, carol) = (bearer("alice"), bearer("carol"));
    let sid = session_id();
    let expires = (now() + 3600).to_string();
    hset(
        &redis,
        &format!("session:{sid}"),
        &[("user_id", "bob"), ("expires_at", &expires)],
    );
    let bob = format!("session_id={sid}");
    // Both used once, so both are cached.
    assert_eq!(
        envoy.get("/api", &[("authorization", &alice)]).await.status,
        200
    );
    assert_eq!(envoy.get("/api", &[("cookie", &bob)]).await.status, 200);
    for _ in 0..3 {
        let resp = envoy
            .get("/api", &[("authorization", "Bearer a.b.c")])
            .await;
        assert_eq!(resp.status, 401);
    }
    let verifications = || metric(ward.admin_addr, "ward_jwt_verifications_total", &[]);
    let verified = verifications().await;
    redis.stop();

    let resp = envoy.get("/api", &[("authorization", &alice)]).await;
    assert_eq!(resp.status, 200, "a cached token passes a blocked client");
    assert_eq!(header_values(&resp.json(), "x-user-id"), vec!["alice"]);
    let resp = envoy.get("/api", &[("cookie", &bob)]).await;
    assert_eq!(resp.status, 200, "a cached session passes a blocked client");
    assert_eq!(header_values(&resp.json(), "x-user-id"), vec!["bob"]);
    // A valid token never seen, and a session never read: 429, not a
    // signature check, not a store read (Redis is down: that would be 503).
    let resp = envoy.get("/api", &[("authorization", &carol)]).await;
    assert_eq!(resp.status, 429);
    let other = format!("session_id={}", session_id());
    let resp = envoy.get("/api", &[("cookie", &other)]).await;
    assert_eq!(resp.status, 429);
    assert_eq!(resp.json()["reason"], "too_many_failures");
    assert_eq!(verifications().await, verified, "no signature was checked");
    assert_eq!(echo.hits(), 4);
}
