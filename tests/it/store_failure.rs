//! Redis outages, by the route's `on_store_error`: with `stale`, a session
//! validated before is served for `store.stale_if_error`, then denied 503;
//! with `closed` (the default) it is denied 503 at once; with `open` it
//! passes anonymously. Anything not cached is denied 503 at once and fast
//! on a closed or stale route; nothing unknown is ever allowed with an
//! identity; and ward recovers by itself when Redis is back. Every test
//! has its own `redis-server`, which it kills and restarts.
//!
//! The cache windows (`store_ttl`, `negative_ttl`, `stale_if_error`) are
//! crossed by advancing ward's manual clock, not by sleeping; the outage,
//! the breaker and Redis's restart happen in real time.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use envoy_types::ext_authz::v3::pb::CheckResponse;
use std::time::{Duration, Instant};
use support::authz::{self, check, hset, session_id, verdict};
use support::inproc::InProc;
use support::redis::RedisServer;
use support::tokens;
use ward::clock::ManualClock;

const STORE_TTL: Duration = Duration::from_millis(300);
const STALE_IF_ERROR: Duration = Duration::from_secs(3);

/// ward on `redis`, every request under a policy with `on_store_error: stale`.
fn config(redis: &RedisServer) -> String {
    config_with(redis, "stale")
}

fn config_with(redis: &RedisServer, on_store_error: &str) -> String {
    format!(
        "log: {{format: text, level: error}}\n\
         policies: {{main: {{on_store_error: {on_store_error}}}}}\n\
         default_policy: main\n\
         store:\n  stale_if_error: 3s\n  redis: {{url: \"{}\", command_timeout: 50ms, breaker_failures: 3, breaker_open_for: 500ms}}\n\
         cache: {{store_ttl: 300ms, negative_ttl: 300ms}}\n\
         sessions: {{fingerprint: {{mode: off}}}}\n",
        redis.url()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_id_read_as_unknown_stays_unknown_through_an_outage() {
    for mode in ["stale", "open"] {
        let mut redis = RedisServer::start().await;
        let time = ManualClock::new();
        let ward = InProc::start_with_clock(&config_with(&redis, mode), time.clock()).await;
        authz::wait_subscribed(&redis).await;
        let unknown = session_id();
        let resp = check(&ward.client, &[("x-session-id", &unknown)]).await;
        assert_eq!(verdict(&resp), (401, "unknown_session".into()), "{mode}");
        redis.stop();
        // Past negative_ttl the "not found" is stale, and Redis is down: it
        // is still used (not a 503, nor with `open` an anonymous pass)...
        time.advance(STORE_TTL + Duration::from_millis(100));
        let resp = check(&ward.client, &[("x-session-id", &unknown)]).await;
        assert_eq!(verdict(&resp), (401, "unknown_session".into()), "{mode}");
        // ...while an id never read before gets the policy's outage answer.
        let never = session_id();
        let resp = check(&ward.client, &[("x-session-id", &never)]).await;
        let want = if mode == "open" { 200 } else { 503 };
        assert_eq!(verdict(&resp).0, want, "{mode}: {:?}", verdict(&resp));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_denies_at_once_and_open_passes_anonymously() {
    for mode in ["closed", "open"] {
        let (mut redis, ward, sid, resp, time) = alice_read_once(mode).await;
        assert_eq!(
            authz::set_header(&resp, "x-user-id").as_deref(),
            Some("alice")
        );
        redis.stop();
        // Past freshness, the record must be read again: the store is down.
        time.advance(STORE_TTL + Duration::from_millis(100));
        let resp = check(
            &ward.client,
            &[("x-session-id", &sid), ("x-user-id", "root")],
        )
        .await;
        match mode {
            "closed" => assert_eq!(verdict(&resp), (503, "store_unavailable".into())),
            _ => {
                // A record read before is used, as with `stale`...
                assert_eq!(verdict(&resp), (200, "allowed".into()), "open");
                assert_eq!(
                    authz::set_header(&resp, "x-user-id").as_deref(),
                    Some("alice")
                );
                // ...and one never read passes, without an identity.
                let other = session_id();
                let resp = check(
                    &ward.client,
                    &[("x-session-id", &other), ("x-user-id", "root")],
                )
                .await;
                assert_eq!(verdict(&resp), (200, "allowed".into()), "open, uncached");
                assert_eq!(authz::set_header(&resp, "x-user-id"), None);
                assert!(authz::removed(&resp).contains(&"x-user-id".to_string()));
            }
        }
    }
}

/// A Redis, a ward on it under `on_store_error: mode`, and a session of
/// alice's that ward has read once (so it is cached), with that answer
/// and ward's clock, which has not moved since the read.
async fn alice_read_once(mode: &str) -> (RedisServer, InProc, String, CheckResponse, ManualClock) {
    let redis = RedisServer::start().await;
    let time = ManualClock::new();
    let ward = InProc::start_with_clock(&config_with(&redis, mode), time.clock()).await;
    authz::wait_subscribed(&redis).await;
    let sid = session_id();
    write_session(&redis, &sid, "alice");
    let resp = check(&ward.client, &[("x-session-id", &sid)]).await;
    assert_eq!(verdict(&resp), (200, "allowed".into()), "{mode}");
    (redis, ward, sid, resp, time)
}

fn write_session(redis: &RedisServer, sid: &str, user: &str) {
    let expires = (tokens::now() + 3600).to_string();
    hset(
        redis,
        &format!("session:{sid}"),
        &[("user_id", user), ("expires_at", &expires)],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cached_session_is_served_stale_then_denied() {
    let (mut redis, ward, sid, _, time) = alice_read_once("stale").await;
    redis.stop();

    // Step ward's clock through the outage from the read: fresh (no store
    // call) before STORE_TTL, allowed stale up to fresh + stale_if_error,
    // then 503, never anything else. Every 100 ms, and 1 ms before each
    // edge.
    let window = STORE_TTL + STALE_IF_ERROR;
    let ms = Duration::from_millis;
    let mut instants: Vec<Duration> = (0..=40).map(|i| ms(100) * i).collect();
    instants.extend([STORE_TTL - ms(1), window - ms(1)]);
    instants.sort();
    let mut now = Duration::ZERO;
    for at in instants {
        time.advance(at - now);
        now = at;
        let resp = check(&ward.client, &[("x-session-id", &sid)]).await;
        let stale = authz::metric(
            ward.admin_addr,
            "ward_cache_requests_total",
            &[("cache", "store"), ("result", "stale")],
        )
        .await;
        if at < STORE_TTL {
            assert_eq!(verdict(&resp), (200, "allowed".into()), "fresh at {at:?}");
            assert_eq!(stale, 0.0, "fresh at {at:?}: not served stale");
        } else if at < window {
            assert_eq!(verdict(&resp), (200, "allowed".into()), "stale at {at:?}");
            assert!(
                stale > 0.0,
                "allowed past freshness at {at:?}, so served stale"
            );
        } else {
            assert_eq!(
                verdict(&resp),
                (503, "store_unavailable".into()),
                "past the window at {at:?}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uncached_credentials_are_denied_fast_and_never_allowed() {
    let mut redis = RedisServer::start().await;
    let ward = InProc::start(&config(&redis)).await;
    authz::wait_subscribed(&redis).await;
    let known = session_id();
    write_session(&redis, &known, "alice"); // in Redis, never read by ward
    redis.stop();
    let mut slowest = Duration::ZERO;
    let key = ward::apikey::generate("ward").unwrap();
    for i in 0..40 {
        let sid = if i % 4 == 0 {
            known.clone()
        } else {
            session_id()
        };
        let started = Instant::now();
        let resp = if i % 5 == 4 {
            check(&ward.client, &[("x-api-key", &key)]).await
        } else {
            check(&ward.client, &[("x-session-id", &sid)]).await
        };
        let took = started.elapsed();
        slowest = slowest.max(took);
        assert_eq!(
            verdict(&resp),
            (503, "store_unavailable".into()),
            "check {i}"
        );
        assert!(
            took < Duration::from_millis(150),
            "check {i} took {took:?} with Redis down"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    println!("slowest deny with Redis down: {slowest:?}");
    let allows = authz::metric(
        ward.admin_addr,
        "ward_check_total",
        &[("decision", "allow")],
    )
    .await;
    assert_eq!(allows, 0.0, "nothing was allowed during the outage");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ward_recovers_when_redis_comes_back() {
    let (mut redis, ward, sid, _, time) = alice_read_once("stale").await;
    redis.stop();
    // Past the stale window; the checks below open the breaker.
    time.advance(STORE_TTL + STALE_IF_ERROR + Duration::from_millis(200));
    for _ in 0..5 {
        let resp = check(&ward.client, &[("x-session-id", &sid)]).await;
        assert_eq!(verdict(&resp), (503, "store_unavailable".into()));
    }
    // Back, empty (no persistence): the login service writes again.
    redis.restart().await;
    write_session(&redis, &sid, "alice");
    let other = session_id();
    write_session(&redis, &other, "bob");
    let back = Instant::now();
    let limit = Duration::from_secs(5);
    loop {
        let resp = check(&ward.client, &[("x-session-id", &sid)]).await;
        match verdict(&resp) {
            (200, _) => break,
            (503, _) => assert!(back.elapsed() < limit, "not recovered after {limit:?}"),
            other => panic!("unexpected {other:?} while recovering"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!("allowed again {:?} after Redis restarted", back.elapsed());
    let resp = check(&ward.client, &[("x-session-id", &other)]).await;
    assert_eq!(verdict(&resp), (200, "allowed".into()));
    let resp = check(&ward.client, &[("x-session-id", &session_id())]).await;
    assert_eq!(verdict(&resp), (401, "unknown_session".into()));
}

/// A ward idle while Redis restarts holds a dead connection; the first
/// check afterwards must be answered from Redis, not find the dead
/// connection for everybody (one retry on a fresh connection, within the
/// same `command_timeout`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_check_after_an_idle_restart_is_answered() {
    for mode in ["closed", "stale"] {
        let (mut redis, ward, sid, _, _) = alice_read_once(mode).await;
        redis.restart().await;
        write_session(&redis, &sid, "alice");
        // Real idle time, no check in between: the connection is the one
        // Redis closed (no cache window here: `fresh` was never read).
        tokio::time::sleep(STORE_TTL + Duration::from_millis(200)).await;
        let fresh = session_id();
        write_session(&redis, &fresh, "bob");
        let resp = check(&ward.client, &[("x-session-id", &fresh)]).await;
        assert_eq!(
            verdict(&resp),
            (200, "allowed".into()),
            "{mode}: first check"
        );
    }
}

/// While the breaker is open, a background probe closes it on Redis's
/// first answer: checks pass again within ~100 ms of Redis returning, not
/// after `breaker_open_for` (500 ms here).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_breaker_closes_soon_after_redis_returns() {
    let mut redis = RedisServer::start().await;
    let ward = InProc::start(&config_with(&redis, "closed")).await;
    authz::wait_subscribed(&redis).await;
    redis.stop();
    // Open the breaker: three failures in a row.
    for _ in 0..5 {
        let resp = check(&ward.client, &[("x-session-id", &session_id())]).await;
        assert_eq!(verdict(&resp).0, 503);
    }
    redis.restart().await;
    let sid = session_id();
    write_session(&redis, &sid, "alice");
    let back = Instant::now();
    loop {
        let resp = check(&ward.client, &[("x-session-id", &sid)]).await;
        if authz::status(&resp) == 200 {
            break;
        }
        assert!(back.elapsed() < Duration::from_secs(2), "not recovered");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let took = back.elapsed();
    println!("allowed again {took:?} after Redis restarted");
    assert!(
        took < Duration::from_millis(250),
        "recovered only after {took:?}"
    );
}
