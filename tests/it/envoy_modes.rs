//! One table of end-to-end behaviours, run against both ways of putting
//! ward in front of a backend: the gRPC ext_authz server behind a real
//! Envoy, and the dynamic module inside a real Envoy. Same ward config,
//! same requests, same expected answers and same headers at the backend:
//! allows with identity headers and forged ones removed (public routes
//! too), every deny's status, reason, challenge and body, JWTs, sessions
//! and API keys in a real Redis, a JWT in the query cut from the path, (a miss, then a cached hit), revocation
//! through `ward:invalidate`, the store down under `closed` (503), and the
//! dynamic metadata Envoy's access log shows.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::envoy_module;
use crate::support;

use jsonwebtoken::Algorithm;
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use support::authz::{hset, publish_invalidation, session_id, wait_subscribed};
use support::echo::{Echo, header_values};
use support::envoy::Envoy;
use support::redis::RedisServer;
use support::tokens::{self, HMAC_SECRET, claims, sign};
use support::ward::Ward;

#[derive(Debug, Clone, Copy)]
enum Mode {
    /// `ward serve`, Envoy's ext_authz filter calling it over gRPC.
    Grpc,
    /// `libward_envoy.so` inside Envoy.
    Module,
}

/// Envoy in front of the echo backend, and the ward it asks (gRPC mode).
struct Front {
    envoy: Envoy,
    _ward: Option<Ward>,
}

async fn front(mode: Mode, yaml: &str, echo: &Echo) -> Front {
    match mode {
        Mode::Grpc => {
            let ward = Ward::start(yaml).await;
            let envoy = Envoy::start(echo.addr, ward.grpc_addr).await;
            Front {
                envoy,
                _ward: Some(ward),
            }
        }
        Mode::Module => Front {
            envoy: envoy_module::start(yaml, echo).await,
            _ward: None,
        },
    }
}

/// Long cache lifetimes (only an invalidation explains a quick deny);
/// `/open` public and `/admin` for admins, through ward's own routes, so
/// both modes choose the same policies.
fn config(redis: &RedisServer) -> String {
    format!(
        "log: {{format: text, level: info}}\n\
         store:\n  redis: {{url: \"{}\", command_timeout: 1s}}\n\
         cache: {{store_ttl: 60s, negative_ttl: 60s, max_ttl: 300s}}\n\
         sessions: {{fingerprint: {{mode: off}}}}\n\
         listen: {{http: ~}}\n\
         jwt:\n  from_query: access_token\n  keys:\n    - {{kid: h1, alg: HS256, secret: {{value: \"{HMAC_SECRET}\"}}}}\n\
         policies:\n  admins:\n    roles: {{any_of: [admin]}}\n\
         routes:\n  - {{prefix: /open, policy: public}}\n  - {{prefix: /admin, policy: admins}}\n\
         default_policy: required\n",
        redis.url()
    )
}

fn bearer(claims: &Value) -> String {
    format!("Bearer {}", sign(Algorithm::HS256, Some("h1"), claims))
}

/// An API key stored for `user_id`, with `extra` fields.
fn store_key(redis: &RedisServer, key_id: &str, user_id: &str, extra: &[(&str, &str)]) -> String {
    let key = ward::apikey::generate("ward").unwrap();
    let record = format!("apikey:{}", ward::apikey::hash_hex(&key));
    let mut fields = vec![("key_id", key_id), ("user_id", user_id), ("scopes", "read")];
    fields.extend_from_slice(extra);
    hset(redis, &record, &fields);
    key
}

/// `session:{sid}` for `user`, valid for an hour; returns the sid.
fn store_session(redis: &RedisServer, user: &str) -> String {
    let sid = session_id();
    let expires = (tokens::now() + 3600).to_string();
    hset(
        redis,
        &format!("session:{sid}"),
        &[("user_id", user), ("expires_at", &expires)],
    );
    sid
}

/// Waits until a line of Envoy's log (its access log, flushed every
/// 0.1 s) holds every one of `parts`.
async fn logged(mode: Mode, envoy: &Envoy, parts: &[&str]) {
    let started = Instant::now();
    let found = |log: String| log.lines().any(|l| parts.iter().all(|p| l.contains(p)));
    while !found(envoy.logs()) {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{mode:?}: no line with {parts:?} in Envoy's log:\n{}",
            envoy.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// What the backend saw of the last request.
fn last_seen(echo: &Echo) -> Value {
    echo.requests().pop().expect("reached the backend")
}

async fn allows(mode: Mode, front: &Front, echo: &Echo, redis: &RedisServer) {
    let envoy = &front.envoy;
    // A JWT: ward's identity; forged identity headers gone.
    let auth = bearer(&claims("alice"));
    let resp = envoy
        .get(
            "/api/orders",
            &[
                ("authorization", &auth),
                ("x-user-id", "root"),
                ("x-user-admin", "true"),
                ("x_user_id", "root"),
                ("x-auth-method", "forged"),
            ],
        )
        .await;
    assert_eq!(resp.status, 200, "{mode:?}: {}", resp.text());
    let seen = last_seen(echo);
    assert_eq!(header_values(&seen, "x-user-id"), ["alice"], "{mode:?}");
    assert_eq!(header_values(&seen, "x-auth-method"), ["jwt"], "{mode:?}");
    assert_eq!(header_values(&seen, "x-user-email"), ["alice@example.com"]);
    for forged in ["x-user-admin", "x_user_id"] {
        assert!(
            header_values(&seen, forged).is_empty(),
            "{mode:?}: {forged}"
        );
    }
    // The decision in the stream's dynamic metadata, both keys.
    let allow = [
        "/api/orders 200 ",
        " user_id=alice auth_method=jwt reason=-",
    ];
    logged(mode, envoy, &allow).await;

    // A token in the query (`jwt.from_query`), form-encoded or not: read,
    // then cut from the path the backend sees, the rest of it kept.
    let token = sign(Algorithm::HS256, Some("h1"), &claims("carol"));
    for token in [token.clone(), token.replace('.', "%2E")] {
        let path = format!("/api/q?a=1&access_token={token}&b=2");
        let resp = envoy.get(&path, &[]).await;
        assert_eq!(resp.status, 200, "{mode:?}: {}", resp.text());
        let seen = last_seen(echo);
        assert_eq!(header_values(&seen, "x-user-id"), ["carol"], "{mode:?}");
        let query = seen["query"].as_str().unwrap_or_default();
        assert!(!query.contains("access_token"), "{mode:?}: {seen}");
        assert!(
            query.contains("a=1") && query.contains("b=2"),
            "{mode:?}: {seen}"
        );
    }

    // A public route: no credential, forged headers still removed.
    let resp = envoy
        .get(
            "/open/docs",
            &[("x-user-id", "root"), ("x-user-roles", "admin")],
        )
        .await;
    assert_eq!(resp.status, 200, "{mode:?}: {}", resp.text());
    let seen = last_seen(echo);
    for forged in ["x-user-id", "x-user-roles"] {
        assert!(
            header_values(&seen, forged).is_empty(),
            "{mode:?}: {forged}"
        );
    }

    // An API key from Redis: its identity; the key itself never forwarded.
    let key = store_key(redis, "key_7f3a", "svc-billing", &[]);
    let resp = envoy
        .get(
            "/api",
            &[("x-api-key", &key), ("x-api-key-id", "key_forged")],
        )
        .await;
    assert_eq!(resp.status, 200, "{mode:?}: {}", resp.text());
    let seen = last_seen(echo);
    assert_eq!(header_values(&seen, "x-user-id"), ["svc-billing"]);
    assert_eq!(header_values(&seen, "x-api-key-id"), ["key_7f3a"]);
    assert_eq!(header_values(&seen, "x-auth-method"), ["apikey"]);
    assert!(header_values(&seen, "x-api-key").is_empty(), "{mode:?}");
    let allow = [
        "/api 200 ",
        " user_id=svc-billing auth_method=apikey reason=-",
    ];
    logged(mode, envoy, &allow).await;
}

/// A path, its request headers, the status and reason expected.
type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, u16, &'a str);

/// Every deny: its status, reason, JSON body and challenge; nothing
/// reaches the backend.
async fn denies(mode: Mode, front: &Front, echo: &Echo, redis: &RedisServer) {
    let expired = bearer(&json!({"sub": "a", "exp": tokens::now() - 3600}));
    let reader = bearer(&claims("bob"));
    let revoked_key = store_key(redis, "key_gone", "svc", &[("revoked", "1")]);
    let unknown_key = ward::apikey::generate("ward").unwrap();
    let unknown_session = format!("session_id={}", session_id());
    let cases: [Case; 7] = [
        ("/api", vec![], 401, "missing_credential"),
        (
            "/api",
            vec![("authorization", &expired)],
            401,
            "token_expired",
        ),
        (
            "/api",
            vec![("authorization", "Basic YTpi")],
            400,
            "unsupported_scheme",
        ),
        (
            "/admin/users",
            vec![("authorization", &reader)],
            403,
            "insufficient_role",
        ),
        (
            "/api",
            vec![("cookie", &unknown_session)],
            401,
            "unknown_session",
        ),
        (
            "/api",
            vec![("x-api-key", &unknown_key)],
            401,
            "unknown_api_key",
        ),
        (
            "/api",
            vec![("x-api-key", &revoked_key)],
            401,
            "api_key_revoked",
        ),
    ];
    let hits = echo.hits();
    for (path, headers, status, reason) in cases {
        let resp = front.envoy.get(path, &headers).await;
        assert_eq!(resp.status, status, "{mode:?} {reason}: {}", resp.text());
        assert_eq!(resp.json()["reason"], reason, "{mode:?}");
        assert_eq!(resp.json()["status"], status, "{mode:?}");
        assert_eq!(resp.header("content-type"), Some("application/json"));
        let challenge = resp.header("www-authenticate").unwrap_or_default();
        if status == 401 {
            assert!(
                challenge.contains("realm=\"ward\""),
                "{mode:?} {reason}: {challenge}"
            );
        }
    }
    assert_eq!(echo.hits(), hits, "{mode:?}: a deny reached the backend");
    // (The gRPC mode's line also has Envoy's `UAEX` flag: ext_authz denied.)
    let deny = [
        "/admin/users 403 ",
        " user_id=- auth_method=- reason=insufficient_role",
    ];
    logged(mode, &front.envoy, &deny).await;
}

/// A session: read from Redis once, then from ward's cache (the record
/// deleted without an invalidation still passes); an invalidation on
/// `ward:invalidate` ends it at once.
async fn sessions_and_revocation(mode: Mode, front: &Front, echo: &Echo, redis: &RedisServer) {
    wait_subscribed(redis).await;
    let sid = store_session(redis, "dana");
    let cookie = format!("session_id={sid}");
    let resp = front.envoy.get("/api", &[("cookie", &cookie)]).await;
    assert_eq!(resp.status, 200, "{mode:?}: {}", resp.text());
    assert_eq!(header_values(&last_seen(echo), "x-user-id"), ["dana"]);
    let key = format!("session:{sid}");
    assert_eq!(redis.cli(&["DEL", &key]), "1");
    let resp = front.envoy.get("/api", &[("cookie", &cookie)]).await;
    assert_eq!(resp.status, 200, "{mode:?}: a cache hit ({})", resp.text());

    publish_invalidation(redis, &key);
    let started = Instant::now();
    let status = loop {
        let resp = front.envoy.get("/api", &[("cookie", &cookie)]).await;
        if resp.status != 200 || started.elapsed() > Duration::from_secs(2) {
            break (resp.status, resp.json()["reason"].clone());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(status, (401, json!("unknown_session")), "{mode:?}");
}

/// Redis gone, `on_store_error: closed` (the default): 503, never a pass.
async fn store_down(mode: Mode, front: &Front, echo: &Echo, redis: &mut RedisServer) {
    redis.stop();
    let hits = echo.hits();
    let cookie = format!("session_id={}", session_id());
    let resp = front.envoy.get("/api", &[("cookie", &cookie)]).await;
    assert_eq!(resp.status, 503, "{mode:?}: {}", resp.text());
    assert_eq!(resp.json()["reason"], "store_unavailable");
    assert_eq!(echo.hits(), hits);
}

async fn run(mode: Mode) {
    let mut redis = RedisServer::start().await;
    let echo = Echo::start().await;
    let front = front(mode, &config(&redis), &echo).await;
    allows(mode, &front, &echo, &redis).await;
    denies(mode, &front, &echo, &redis).await;
    sessions_and_revocation(mode, &front, &echo, &redis).await;
    store_down(mode, &front, &echo, &mut redis).await;
}

#[tokio::test]
async fn grpc_mode_behind_envoy() {
    run(Mode::Grpc).await;
}

#[tokio::test]
async fn module_mode_inside_envoy() {
    run(Mode::Module).await;
}
