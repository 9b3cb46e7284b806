//! JWT revocation through the store: a revoked `jti`, and a token bound to
//! a session (`sid`) that is revoked. Revocation must win over every
//! cache (the verified-token cache and the store-read cache) as soon as the
//! invalidation message arrives. Every test has its own `redis-server`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use jsonwebtoken::Algorithm;
use std::time::{Duration, Instant};
use support::authz::{self, check, hset, publish_invalidation, session_id, set_header, verdict};
use support::inproc::InProc;
use support::redis::RedisServer;
use support::tokens::{self, HMAC_SECRET};
use tonic::transport::Channel;

/// Long cache lifetimes, so only an invalidation explains a quick deny.
fn config(redis: &RedisServer, revocation: &str) -> String {
    format!(
        "log: {{format: text, level: warn}}\n\
         store:\n  redis: {{url: \"{}\"}}\n\
         cache: {{store_ttl: 60s, negative_ttl: 60s, max_ttl: 300s}}\n\
         sessions: {{fingerprint: {{mode: off}}}}\n\
         jwt:\n  keys:\n    - {{alg: HS256, secret: {{value: \"{HMAC_SECRET}\"}}}}\n  revocation: {revocation}\n",
        redis.url()
    )
}

fn token(sub: &str, extra: &[(&str, &str)]) -> String {
    let mut claims = tokens::claims(sub);
    for (k, v) in extra {
        claims[*k] = serde_json::Value::from(*v);
    }
    format!("Bearer {}", tokens::sign(Algorithm::HS256, None, &claims))
}

/// Polls every 5 ms until `auth` is denied; the deny and how long it took.
async fn until_denied(
    client: &AuthorizationClient<Channel>,
    auth: &str,
    limit: Duration,
) -> ((i32, String), Duration) {
    let started = Instant::now();
    loop {
        let resp = check(client, &[("authorization", auth)]).await;
        if authz::status(&resp) != 200 || started.elapsed() > limit {
            return (verdict(&resp), started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_jti_is_denied_even_when_the_token_is_cached() {
    let redis = RedisServer::start().await;
    let ward = InProc::start(&config(&redis, "{check_jti: true}")).await;
    let jti = format!("jti-{}", session_id());
    let revoked = token("alice", &[("jti", &jti)]);
    let other = token("alice", &[("jti", "jti-still-good")]);
    let no_jti = token("bob", &[]);
    for auth in [&revoked, &other, &no_jti, &revoked] {
        let resp = check(&ward.client, &[("authorization", auth)]).await;
        assert_eq!(verdict(&resp), (200, "allowed".into()));
    }
    let token_hits = authz::metric(
        ward.admin_addr,
        "ward_cache_requests_total",
        &[("cache", "token"), ("result", "hit")],
    )
    .await;
    assert!(token_hits >= 1.0, "the token is cached ({token_hits})");

    let key = format!("revoked_jti:{jti}");
    assert_eq!(redis.cli(&["SET", &key, "1", "EX", "60"]), "OK");
    publish_invalidation(&redis, &key);
    let (deny, took) = until_denied(&ward.client, &revoked, Duration::from_secs(2)).await;
    assert_eq!(deny, (401, "token_revoked".into()), "after {took:?}");
    println!("jti revocation took effect after {took:?}");
    // It stays denied, and only that token is.
    let resp = check(&ward.client, &[("authorization", &revoked)]).await;
    assert_eq!(verdict(&resp), (401, "token_revoked".into()));
    for auth in [&other, &no_jti] {
        let resp = check(&ward.client, &[("authorization", auth)]).await;
        assert_eq!(verdict(&resp), (200, "allowed".into()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_dies_with_its_session() {
    let redis = RedisServer::start().await;
    let ward = InProc::start(&config(&redis, "{require_session: true}")).await;
    let sid = session_id();
    let expires = (tokens::now() + 3600).to_string();
    hset(
        &redis,
        &format!("session:{sid}"),
        &[("user_id", "alice"), ("expires_at", &expires)],
    );
    let bound = token("alice", &[("sid", &sid)]);
    let unbound = token("bob", &[]);
    for _ in 0..3 {
        let resp = check(&ward.client, &[("authorization", &bound)]).await;
        assert_eq!(verdict(&resp), (200, "allowed".into()));
        assert_eq!(set_header(&resp, "x-auth-method").as_deref(), Some("jwt"));
    }
    // A sid with no session behind it, or an expired one, is no good.
    let orphan = token("alice", &[("sid", &session_id())]);
    let resp = check(&ward.client, &[("authorization", &orphan)]).await;
    assert_eq!(verdict(&resp), (401, "token_revoked".into()), "no session");
    let old = session_id();
    let past = (tokens::now() - 1).to_string();
    hset(
        &redis,
        &format!("session:{old}"),
        &[("user_id", "alice"), ("expires_at", &past)],
    );
    let stale = token("alice", &[("sid", &old)]);
    let resp = check(&ward.client, &[("authorization", &stale)]).await;
    assert_eq!(verdict(&resp), (401, "token_revoked".into()), "expired");

    // Logout: the login service marks the session revoked and says so.
    let key = format!("session:{sid}");
    assert_eq!(redis.cli(&["HSET", &key, "revoked", "1"]), "1");
    publish_invalidation(&redis, &key);
    let (deny, took) = until_denied(&ward.client, &bound, Duration::from_secs(2)).await;
    assert_eq!(deny, (401, "token_revoked".into()), "after {took:?}");
    println!("session revocation reached the token after {took:?}");
    // A token without a sid is not affected.
    let resp = check(&ward.client, &[("authorization", &unbound)]).await;
    assert_eq!(verdict(&resp), (200, "allowed".into()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_checks_fail_closed_when_the_store_is_down() {
    let mut redis = RedisServer::start().await;
    let ward = InProc::start(&config(&redis, "{check_jti: true}")).await;
    redis.stop();
    // Never seen, so nothing cached: the revocation list cannot be read.
    let auth = token("alice", &[("jti", "jti-unseen")]);
    let resp = check(&ward.client, &[("authorization", &auth)]).await;
    assert_eq!(verdict(&resp), (503, "store_unavailable".into()));
    // A token without a jti needs no store.
    let resp = check(&ward.client, &[("authorization", &token("bob", &[]))]).await;
    assert_eq!(verdict(&resp), (200, "allowed".into()));
}
