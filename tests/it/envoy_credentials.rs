//! Sessions and API keys through a real Envoy to a real upstream that
//! echoes what it received: the backend sees ward's identity headers, and
//! none of the client's forged ones.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use support::authz::{hset, session_id};
use support::echo::{Echo, header_values};
use support::envoy::Envoy;
use support::redis::RedisServer;
use support::tokens;
use support::ward::Ward;

fn config(redis: &RedisServer) -> String {
    format!(
        "log: {{format: text, level: info}}\n\
         store:\n  redis: {{url: \"{}\"}}\n\
         sessions:\n  fingerprint: {{mode: off}}\n  fields: [{{field: tenant, header: x-tenant}}]\n",
        redis.url()
    )
}

const FORGED: [(&str, &str); 6] = [
    ("x-user-id", "root"),
    ("x-user-admin", "true"),
    ("x_user_id", "root"),
    ("x-auth-method", "forged"),
    ("x-api-key-id", "key_admin"),
    ("x-tenant", "everyone"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_and_api_keys_reach_the_backend_as_ward_identity_only() {
    let redis = RedisServer::start().await;
    let echo = Echo::start().await;
    let ward = Ward::start(&config(&redis)).await;
    let envoy = Envoy::start(echo.addr, ward.grpc_addr).await;

    let sid = session_id();
    let expires = (tokens::now() + 3600).to_string();
    hset(
        &redis,
        &format!("session:{sid}"),
        &[
            ("user_id", "alice"),
            ("email", "alice@example.com"),
            ("roles", "admin,dev"),
            ("tenant", "acme"),
            ("expires_at", &expires),
        ],
    );
    let key = ward::apikey::generate("ward").unwrap();
    hset(
        &redis,
        &format!("apikey:{}", ward::apikey::hash_hex(&key)),
        &[
            ("key_id", "key_ci"),
            ("user_id", "svc-ci"),
            ("name", "ci"),
            ("scopes", "deploy,read"),
        ],
    );

    let cookie = format!("theme=dark; session_id={sid}");
    let mut headers = vec![("cookie", cookie.as_str())];
    headers.extend(FORGED);
    let resp = envoy.get("/api/orders", &headers).await;
    assert_eq!(resp.status, 200, "session: {}", resp.text());
    let seen = resp.json();
    assert_eq!(header_values(&seen, "x-user-id"), vec!["alice"]);
    assert_eq!(header_values(&seen, "x-auth-method"), vec!["session"]);
    assert_eq!(
        header_values(&seen, "x-user-email"),
        vec!["alice@example.com"]
    );
    assert_eq!(header_values(&seen, "x-user-roles"), vec!["admin,dev"]);
    assert_eq!(header_values(&seen, "x-tenant"), vec!["acme"]);
    for gone in ["x-user-admin", "x_user_id", "x-api-key-id"] {
        assert!(
            header_values(&seen, gone).is_empty(),
            "{gone} reached the backend: {seen}"
        );
    }

    for via in [
        ("x-api-key", key.clone()),
        ("authorization", format!("ApiKey {key}")),
    ] {
        let mut headers = vec![(via.0, via.1.as_str())];
        headers.extend(FORGED);
        let resp = envoy.get("/api/deploy", &headers).await;
        assert_eq!(resp.status, 200, "{}: {}", via.0, resp.text());
        let seen = resp.json();
        assert_eq!(header_values(&seen, "x-user-id"), vec!["svc-ci"]);
        assert_eq!(header_values(&seen, "x-auth-method"), vec!["apikey"]);
        assert_eq!(header_values(&seen, "x-api-key-id"), vec!["key_ci"]);
        assert_eq!(header_values(&seen, "x-user-scopes"), vec!["deploy,read"]);
        for gone in ["x-user-admin", "x_user_id", "x-tenant"] {
            assert!(
                header_values(&seen, gone).is_empty(),
                "{gone} reached the backend: {seen}"
            );
        }
    }
    assert_eq!(echo.hits(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_session_is_a_401_through_envoy() {
    let redis = RedisServer::start().await;
    let echo = Echo::start().await;
    let ward = Ward::start(&config(&redis)).await;
    let envoy = Envoy::start(echo.addr, ward.grpc_addr).await;
    let unknown = ward::apikey::generate("ward").unwrap();
    let cases = [
        (format!("session_id={}", session_id()), "unknown_session"),
        ("session_id=abc".to_string(), "malformed_session_id"),
    ];
    for (cookie, reason) in &cases {
        let resp = envoy
            .get("/api", &[("cookie", cookie), ("x-request-id", "e2e-sess")])
            .await;
        assert_eq!(resp.status, 401, "{reason}: {}", resp.text());
        let body = resp.json();
        assert_eq!(body["reason"], *reason);
        assert_eq!(body["request_id"], "e2e-sess");
        let challenge = resp.header("www-authenticate").unwrap_or_default();
        assert!(challenge.contains("invalid_token"), "{challenge}");
    }
    let resp = envoy.get("/api", &[("x-api-key", &unknown)]).await;
    assert_eq!(resp.status, 401, "{}", resp.text());
    assert_eq!(resp.json()["reason"], "unknown_api_key");
    assert_eq!(echo.hits(), 0, "no deny reaches the backend");
}
