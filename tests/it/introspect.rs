//! The management API's `Introspect`: the identity and decision the
//! running ward gives a request's credential, over real gRPC against a
//! real `ward serve` and `redis-server`, and without side effects: asking
//! about a bad credential again and again never counts it in the limiter.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::management::{authed, client, config, status_with};
use crate::support;

use jsonwebtoken::Algorithm;
use support::redis::RedisServer;
use support::tokens;
use support::ward::Ward;
use ward::server::management::proto::*;

fn request(headers: &[(&str, &str)]) -> IntrospectRequest {
    IntrospectRequest {
        url: "https://api.example.com/orders".into(),
        headers: headers
            .iter()
            .map(|(name, value)| Header {
                name: name.to_string(),
                value: value.to_string(),
            })
            .collect(),
        ..Default::default()
    }
}

#[tokio::test]
async fn a_valid_credential_is_active_with_its_identity() {
    let redis = RedisServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let ward = Ward::start(&config(&redis, &dir)).await;
    let mut api = client(&ward).await;
    let sid = api
        .create_session(authed(CreateSessionRequest {
            user_id: "alice".into(),
            roles: vec!["admin".into(), "dev".into()],
            scopes: vec!["orders:read".into()],
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner()
        .session_id;
    let seen = api
        .introspect(authed(request(&[("x-session-id", &sid)])))
        .await
        .unwrap()
        .into_inner();
    assert!(seen.active, "{seen:?}");
    assert_eq!(
        (seen.decision.as_str(), seen.status, seen.reason.as_str()),
        ("allow", 200, "")
    );
    assert_eq!(seen.credential_kind, "session");
    assert_eq!(seen.user_id, "alice");
    assert_eq!(seen.roles, ["admin", "dev"]);
    assert_eq!(seen.scopes, ["orders:read"]);
    let user_header = seen
        .identity_headers
        .iter()
        .find(|h| h.name == "x-user-id")
        .map(|h| h.value.as_str());
    assert_eq!(user_header, Some("alice"));
    let steps: Vec<&str> = seen.steps.iter().map(|s| s.name.as_str()).collect();
    assert!(
        steps.contains(&"policy") && steps.contains(&"credential"),
        "{steps:?}"
    );

    let claims = tokens::claims("bob");
    let jwt = format!("Bearer {}", tokens::sign(Algorithm::HS256, None, &claims));
    let seen = api
        .introspect(authed(request(&[("authorization", &jwt)])))
        .await
        .unwrap()
        .into_inner();
    assert!(
        seen.active && seen.user_id == "bob" && seen.credential_kind == "jwt",
        "{seen:?}"
    );
}

#[tokio::test]
async fn a_bad_credential_is_inactive_with_the_deny_envoy_would_get_and_is_not_counted() {
    let redis = RedisServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    // Two failures per credential and the third answer is a 429.
    let yaml = config(&redis, &dir)
        + "limits:\n  per_ip: {failures: 100, per: 1m}\n  per_credential: {failures: 2, per: 1m}\n";
    let ward = Ward::start(&yaml).await;
    let mut api = client(&ward).await;
    let mut claims = tokens::claims("mallory");
    claims["exp"] = (tokens::now() - 600).into();
    claims["iat"] = (tokens::now() - 1200).into();
    let expired = format!("Bearer {}", tokens::sign(Algorithm::HS256, None, &claims));
    for _ in 0..5 {
        let seen = api
            .introspect(authed(request(&[("authorization", &expired)])))
            .await
            .unwrap()
            .into_inner();
        assert!(!seen.active, "{seen:?}");
        assert_eq!(
            (seen.decision.as_str(), seen.status, seen.reason.as_str()),
            ("deny", 401, "token_expired")
        );
        assert_eq!(seen.credential_kind, "jwt");
        assert!(seen.user_id.is_empty() && seen.identity_headers.is_empty());
    }
    // Five introspections counted nothing: a real check still gets its
    // 401, and only its own failures lead to the 429.
    let header = ("authorization", expired.as_str());
    assert_eq!(status_with(ward.grpc_addr, header).await, 401);
    assert_eq!(status_with(ward.grpc_addr, header).await, 401);
    assert_eq!(status_with(ward.grpc_addr, header).await, 429);

    let none = api
        .introspect(authed(request(&[])))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((none.status, none.credential_kind.as_str()), (401, ""));
    let bad_url = api
        .introspect(authed(IntrospectRequest {
            url: "ftp://x/".into(),
            ..Default::default()
        }))
        .await
        .unwrap_err();
    assert_eq!(bad_url.code(), tonic::Code::InvalidArgument);
}
