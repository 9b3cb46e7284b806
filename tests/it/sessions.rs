//! Sessions over a real Redis: records written with `redis-cli`, as a login
//! service in any language would, read by an in-process ward over real
//! gRPC. Every test has its own `redis-server`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use sha2::{Digest, Sha256};
use std::time::{Duration, Instant};
use support::authz::{
    self, assert_no_set_and_remove, check, check_from, hset, removed, session_id, set_header,
    verdict,
};
use support::inproc::InProc;
use support::redis::RedisServer;
use support::tokens::{self, HMAC_SECRET};

/// ward on `redis` (plus an HS256 key, so a Bearer token is a credential
/// too), with `extra` YAML appended.
fn config(redis: &RedisServer, extra: &str) -> String {
    format!(
        "log: {{format: text, level: warn}}\n\
         store:\n  redis: {{url: \"{}\"}}\n\
         jwt:\n  keys:\n    - {{alg: HS256, secret: {{value: \"{HMAC_SECRET}\"}}}}\n\
         {extra}",
        redis.url()
    )
}

fn in_an_hour() -> String {
    (tokens::now() + 3600).to_string()
}

/// Writes `session:{sid}` for alice with email, roles and a name.
fn alice_session(redis: &RedisServer, sid: &str, extra: &[(&str, &str)]) {
    let expires = in_an_hour();
    let mut fields = vec![
        ("user_id", "alice"),
        ("email", "alice@example.com"),
        ("roles", "admin,dev"),
        ("name", "Alice Liddell"),
        ("expires_at", expires.as_str()),
    ];
    fields.extend_from_slice(extra);
    hset(redis, &format!("session:{sid}"), &fields);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_in_a_cookie_or_header_is_allowed_with_identity_headers() {
    let redis = RedisServer::start().await;
    let ward = InProc::start(&config(
        &redis,
        "sessions:\n  fingerprint: {mode: off}\n  fields: [{field: name, header: x-user-name}]\n",
    ))
    .await;
    let sid = session_id();
    alice_session(&redis, &sid, &[]);
    let cookie = format!("theme=dark; session_id={sid}; lang=en");
    // Sent two ways at once, even agreeing, it is a malformed request
    // (RFC 6750 §2: one method per request).
    let both = [("cookie", cookie.as_str()), ("x-session-id", sid.as_str())];
    let resp = check(&ward.client, &both).await;
    assert_eq!(verdict(&resp), (400, "multiple_credentials".into()));
    for headers in [
        vec![("cookie", cookie.as_str())],
        vec![("x-session-id", sid.as_str())],
    ] {
        let mut sent = headers.clone();
        sent.extend([
            ("x-user-id", "root"),
            ("x-user-admin", "true"),
            ("x-user-scopes", "everything"),
            ("x-auth-method", "jwt"),
        ]);
        let resp = check(&ward.client, &sent).await;
        assert_eq!(verdict(&resp), (200, "allowed".into()), "{headers:?}");
        assert_eq!(set_header(&resp, "x-user-id").as_deref(), Some("alice"));
        assert_eq!(
            set_header(&resp, "x-user-email").as_deref(),
            Some("alice@example.com")
        );
        assert_eq!(
            set_header(&resp, "x-user-roles").as_deref(),
            Some("admin,dev")
        );
        assert_eq!(
            set_header(&resp, "x-auth-method").as_deref(),
            Some("session")
        );
        assert_eq!(
            set_header(&resp, "x-user-name").as_deref(),
            Some("Alice Liddell")
        );
        // Forged headers: those ward sets are overwritten, the others go.
        let gone = removed(&resp);
        assert!(gone.contains(&"x-user-admin".to_string()), "{gone:?}");
        assert!(gone.contains(&"x-user-scopes".to_string()), "{gone:?}");
        assert_eq!(set_header(&resp, "x-user-scopes"), None);
        assert_no_set_and_remove(&resp);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_expired_revoked_and_invalid_sessions_are_denied() {
    let redis = RedisServer::start().await;
    let ward = InProc::start(&config(&redis, "sessions: {fingerprint: {mode: off}}\n")).await;
    let (expired, revoked, no_user, bad_expiry) =
        (session_id(), session_id(), session_id(), session_id());
    let past = (tokens::now() - 10).to_string();
    hset(
        &redis,
        &format!("session:{expired}"),
        &[("user_id", "bob"), ("expires_at", &past)],
    );
    alice_session(&redis, &revoked, &[("revoked", "1")]);
    hset(
        &redis,
        &format!("session:{no_user}"),
        &[("email", "nobody@example.com")],
    );
    hset(
        &redis,
        &format!("session:{bad_expiry}"),
        &[("user_id", "carol"), ("expires_at", "tomorrow")],
    );
    let cases = [
        (session_id(), "unknown_session"),
        (expired, "session_expired"),
        (revoked, "session_revoked"),
        (no_user, "invalid_session"),
        (bad_expiry, "invalid_session"),
    ];
    for (sid, want) in &cases {
        let cookie = format!("session_id={sid}");
        let resp = check(&ward.client, &[("cookie", &cookie)]).await;
        assert_eq!(verdict(&resp), (401, want.to_string()), "{want}");
        // And again: a cached failure must read the same.
        let resp = check(&ward.client, &[("x-session-id", sid)]).await;
        assert_eq!(verdict(&resp), (401, want.to_string()), "{want} (again)");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_session_ids_never_reach_the_store() {
    let mut redis = RedisServer::start().await;
    let ward = InProc::start(&config(&redis, "")).await;
    redis.stop();
    let long = "a".repeat(300);
    let cases: Vec<(&str, String)> = vec![
        ("cookie", "session_id=abc".into()),
        ("x-session-id", "abc".into()),
        ("x-session-id", "x;yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy".into()),
        (
            "cookie",
            "session_id=\"x%3Byyyyyyyyyyyyyyyyyyyyyyyyyyyy\"".into(),
        ),
        ("x-session-id", "0123456789abcdef0123456789abcde".into()), // 31 hex digits
        (
            "x-session-id",
            "../../etc/passwd-aaaaaaaaaaaaaaaaaaaa".into(),
        ),
        ("x-session-id", "*".into()),
        ("x-session-id", long),
    ];
    for (name, value) in &cases {
        let resp = check(&ward.client, &[(name, value)]).await;
        assert_eq!(
            verdict(&resp),
            (401, "malformed_session_id".into()),
            "{name}: {value}"
        );
    }
    let store_calls = authz::metric(ward.admin_addr, "ward_store_requests_total", &[]).await;
    assert_eq!(
        store_calls, 0.0,
        "a malformed id must not cost a store call"
    );
    // Control: a well-formed id does go to the store, which is down.
    let resp = check(&ward.client, &[("x-session-id", &session_id())]).await;
    assert_eq!(verdict(&resp), (503, "store_unavailable".into()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_misses_for_one_session_make_one_store_call() {
    let redis = RedisServer::start().await;
    let ward = InProc::start(&config(&redis, "")).await;
    let (sid, other) = (session_id(), session_id());
    alice_session(&redis, &sid, &[]);
    alice_session(&redis, &other, &[]);
    // 64 checks of one uncached session, all in flight together (on 8
    // connections), then 64 of another.
    let mut clients = Vec::new();
    for _ in 0..8 {
        clients.push(authz::connect(ward.grpc_addr).await);
    }
    for id in [&sid, &other] {
        let mut checks = tokio::task::JoinSet::new();
        for i in 0..64 {
            let (client, id) = (clients[i % clients.len()].clone(), id.clone());
            checks.spawn(async move { verdict(&check(&client, &[("x-session-id", &id)]).await) });
        }
        for v in checks.join_all().await {
            assert_eq!(v, (200, "allowed".into()));
        }
    }
    let store_calls = authz::metric(ward.admin_addr, "ward_store_requests_total", &[]).await;
    assert_eq!(store_calls, 2.0, "one store read per session");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_key_ttl_bounds_the_cache() {
    let redis = RedisServer::start().await;
    let ward = InProc::start(&config(
        &redis,
        "cache: {store_ttl: 60s, negative_ttl: 5s}\nsessions: {fingerprint: {mode: off}}\n",
    ))
    .await;
    let sid = session_id();
    alice_session(&redis, &sid, &[]);
    let written = Instant::now();
    assert_eq!(
        redis.cli(&["PEXPIRE", &format!("session:{sid}"), "1000"]),
        "1"
    );
    for _ in 0..3 {
        let resp = check(&ward.client, &[("x-session-id", &sid)]).await;
        assert_eq!(verdict(&resp), (200, "allowed".into()));
    }
    let hits = authz::metric(
        ward.admin_addr,
        "ward_cache_requests_total",
        &[("cache", "store"), ("result", "hit")],
    )
    .await;
    assert!(
        hits >= 2.0,
        "the session was served from the cache ({hits})"
    );
    // No invalidation is published: only the key's TTL can end it.
    // Real time: the TTL runs in redis-server, which no test clock moves.
    tokio::time::sleep_until((written + Duration::from_millis(1150)).into()).await;
    let resp = check(&ward.client, &[("x-session-id", &sid)]).await;
    assert_eq!(
        verdict(&resp),
        (401, "unknown_session".into()),
        "cached past its key's TTL"
    );
}

/// The fingerprint a login service stored before `fp2:` (v1, still
/// verified), computed from the documented encoding (not with ward's
/// code): SHA-256 over `ward-fp-v1` and, per attribute, two netstrings
/// (name, value); lowercase hex. v2 is tested in tests/it/fingerprint.rs.
fn login_fingerprint(attrs: &[(&str, &str)]) -> String {
    let mut buf = b"ward-fp-v1".to_vec();
    for (name, value) in attrs {
        for s in [name, value] {
            buf.extend_from_slice(format!("{}:{s},", s.len()).as_bytes());
        }
    }
    hex::encode(Sha256::digest(&buf))
}

const UA: &str = "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fingerprint_binds_the_session_to_the_device() {
    let redis = RedisServer::start().await;
    // Defaults: enforce; client_ip (the peer, trusted_hops 0, /32),
    // user-agent, accept-language.
    let ward = InProc::start(&config(&redis, "")).await;
    let attrs = [
        ("client_ip", "203.0.113.7"),
        ("user-agent", UA),
        ("accept-language", "en-GB"),
    ];
    let fp = login_fingerprint(&attrs);
    assert_eq!(
        fp,
        ward::fingerprint::Version::V1.compute(attrs),
        "documented encoding"
    );
    assert_eq!(
        fp,
        support::cli::fingerprint(&[
            "--ip",
            "203.0.113.7",
            "--user-agent",
            UA,
            "--accept-language",
            "en-GB",
            "--v1"
        ]),
        "ward fingerprint --v1"
    );
    let sid = session_id();
    // Stored in upper case with a newline: a sloppy writer still matches.
    let stored = format!("{}\n", fp.to_ascii_uppercase());
    alice_session(&redis, &sid, &[("fingerprint", &stored)]);

    let same = [
        ("x-session-id", sid.as_str()),
        ("user-agent", UA),
        ("accept-language", "en-GB"),
    ];
    let resp = check_from(&ward.client, "203.0.113.7", &same).await;
    assert_eq!(verdict(&resp), (200, "allowed".into()));
    assert_eq!(set_header(&resp, "x-user-id").as_deref(), Some("alice"));

    let other_ua = [
        ("x-session-id", sid.as_str()),
        ("user-agent", "curl/8.5.0"),
        ("accept-language", "en-GB"),
    ];
    let no_lang = [("x-session-id", sid.as_str()), ("user-agent", UA)];
    for (ip, headers, what) in [
        ("203.0.113.7", &other_ua[..], "another user agent"),
        ("203.0.113.8", &same[..], "another address"),
        ("203.0.113.7", &no_lang[..], "a missing header"),
    ] {
        let resp = check_from(&ward.client, ip, headers).await;
        assert_eq!(
            verdict(&resp),
            (401, "fingerprint_mismatch".into()),
            "{what}"
        );
    }
    // A spoofed x-forwarded-for does not help: with trusted_hops 0 the
    // client is the peer Envoy saw.
    let mut spoofed = same.to_vec();
    spoofed.push(("x-forwarded-for", "203.0.113.7"));
    let resp = check_from(&ward.client, "198.51.100.1", &spoofed).await;
    assert_eq!(verdict(&resp), (401, "fingerprint_mismatch".into()));
    // And the legitimate device is still fine afterwards.
    let resp = check_from(&ward.client, "203.0.113.7", &same).await;
    assert_eq!(verdict(&resp), (200, "allowed".into()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fingerprint_prefix_and_trusted_hops_follow_the_config() {
    let redis = RedisServer::start().await;
    let sessions = "sessions:\n  fingerprint: {attributes: [client_ip, user-agent], trusted_hops: 1, ipv4_prefix: 24}\n";
    let ward = InProc::start(&config(&redis, sessions)).await;
    let fp = login_fingerprint(&[("client_ip", "203.0.113.0"), ("user-agent", UA)]);
    // `ward fingerprint --config` applies the same attributes and mask.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ward.yaml");
    std::fs::write(&file, config(&redis, sessions)).unwrap();
    let file = file.to_str().unwrap();
    let from_cli = support::cli::fingerprint(&[
        "--config",
        file,
        "--ip",
        "203.0.113.77",
        "--user-agent",
        UA,
        "--v1",
    ]);
    assert_eq!(fp, from_cli, "ward fingerprint --config");
    let sid = session_id();
    alice_session(&redis, &sid, &[("fingerprint", &fp)]);
    // The client is the rightmost x-forwarded-for entry (one trusted hop);
    // anything left of it is the client's own claim and ignored.
    for (xff, want) in [
        ("203.0.113.7", 200),
        ("203.0.113.250", 200), // same /24
        ("198.51.100.9, 203.0.113.7", 200),
        ("203.0.113.7, 198.51.100.9", 401),
        ("203.0.114.7", 401),
    ] {
        let resp = check_from(
            &ward.client,
            "10.0.0.1",
            &[
                ("x-session-id", &sid),
                ("user-agent", UA),
                ("x-forwarded-for", xff),
            ],
        )
        .await;
        assert_eq!(authz::status(&resp), want, "x-forwarded-for: {xff}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fingerprint_log_mode_allows_a_mismatch() {
    let redis = RedisServer::start().await;
    let ward = InProc::start(&config(&redis, "sessions: {fingerprint: {mode: log}}\n")).await;
    let fp = login_fingerprint(&[
        ("client_ip", "203.0.113.7"),
        ("user-agent", UA),
        ("accept-language", "en-GB"),
    ]);
    let sid = session_id();
    alice_session(&redis, &sid, &[("fingerprint", &fp)]);
    let resp = check_from(
        &ward.client,
        "192.0.2.1",
        &[("x-session-id", &sid), ("user-agent", "curl/8.5.0")],
    )
    .await;
    assert_eq!(verdict(&resp), (200, "allowed".into()));
    assert_eq!(set_header(&resp, "x-user-id").as_deref(), Some("alice"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_credentials_are_a_bad_request() {
    let redis = RedisServer::start().await;
    let ward = InProc::start(&config(&redis, "sessions: {fingerprint: {mode: off}}\n")).await;
    let sid = session_id();
    alice_session(&redis, &sid, &[]);
    let token = tokens::sign(
        jsonwebtoken::Algorithm::HS256,
        None,
        &tokens::claims("mallory"),
    );
    let bearer = format!("Bearer {token}");
    let cookie = format!("session_id={sid}");
    let other = format!("session_id={}", session_id());
    let key = ward::apikey::generate("ward").unwrap();
    let cases: [Vec<(&str, &str)>; 4] = [
        vec![("cookie", &cookie), ("authorization", &bearer)],
        vec![("x-session-id", &sid), ("authorization", &bearer)],
        vec![("cookie", &cookie), ("x-api-key", &key)],
        vec![("cookie", &other), ("x-session-id", &sid)],
    ];
    for headers in cases {
        let resp = check(&ward.client, &headers).await;
        assert_eq!(
            verdict(&resp),
            (400, "multiple_credentials".into()),
            "{headers:?}"
        );
    }
    // Each alone is fine.
    assert_eq!(
        authz::status(&check(&ward.client, &[("cookie", &cookie)]).await),
        200
    );
    assert_eq!(
        authz::status(&check(&ward.client, &[("authorization", &bearer)]).await),
        200
    );
}

/// "Not found" is cached for `cache.negative_ttl`: repeated checks of an
/// unknown id cost one store read per window, and a session written
/// meanwhile is seen once the window is over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_session_is_read_once_per_negative_ttl() {
    let redis = RedisServer::start().await;
    let ward = InProc::start(&config(
        &redis,
        "cache: {negative_ttl: 2s}\nsessions: {fingerprint: {mode: off}}\n",
    ))
    .await;
    authz::wait_subscribed(&redis).await;
    let store_reads = || authz::metric(ward.admin_addr, "ward_store_requests_total", &[]);
    let sid = session_id();
    let read = Instant::now();
    for _ in 0..5 {
        let resp = check(&ward.client, &[("x-session-id", &sid)]).await;
        assert_eq!(verdict(&resp), (401, "unknown_session".into()));
    }
    assert_eq!(store_reads().await, 1.0, "one read for five checks");
    // Written now, without an invalidation: the cached "not found" holds
    // until negative_ttl is over, then the session is read.
    alice_session(&redis, &sid, &[]);
    let resp = check(&ward.client, &[("x-session-id", &sid)]).await;
    assert_eq!(verdict(&resp), (401, "unknown_session".into()));
    tokio::time::sleep_until((read + Duration::from_millis(2100)).into()).await;
    let resp = check(&ward.client, &[("x-session-id", &sid)]).await;
    assert_eq!(verdict(&resp), (200, "allowed".into()));
    assert_eq!(store_reads().await, 2.0);
}
