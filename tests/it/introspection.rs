//! Opaque access tokens through a real Envoy, checked at a real OpenID
//! provider (`oidc-provider`, tests/fixtures/oidc/provider.mjs) by RFC 7662
//! introspection: client `app` gets opaque tokens by client credentials,
//! ward introspects as client `ward` (or `ward-jwt`, private_key_jwt).
//! Introspection calls are counted at the provider (one log line each).
//! (`introspect.rs` is the management API's `Introspect`, unrelated.)

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use jsonwebtoken::Algorithm;
use std::time::Duration;
use support::authz::{check, connect, publish_invalidation, reason, status, wait_subscribed};
use support::echo::{Echo, header_values};
use support::envoy::Envoy;
use support::oidc::{Provider, WARD_SECRET};
use support::redis::RedisServer;
use support::tokens::{claims, sign};
use support::ward::Ward;

/// ward with the provider for JWTs (discovery) and opaque tokens
/// (introspection endpoint by discovery), over `redis`, one route per
/// `on_store_error`.
fn config(provider: &Provider, redis: &RedisServer, introspection: &str) -> String {
    let issuer = &provider.issuer;
    format!(
        r#"log: {{format: text, level: info}}
store:
  redis: {{url: "{redis}"}}
  stale_if_error: 60s
jwt:
  issuers: ["{issuer}"]
  audiences: [api]
  jwks:
    - {{issuer: "{issuer}"}}
introspection:
  providers:
    - {{{introspection}}}
routes:
  - {{prefix: /p-closed, on_store_error: closed}}
  - {{prefix: /p-stale, on_store_error: stale}}
  - {{prefix: /p-open, on_store_error: open}}
  - {{prefix: /}}
"#,
        redis = redis.url()
    )
}

/// The provider entry: by issuer, as client `ward`, with `extra` fields.
fn basic(provider: &Provider, extra: &str) -> String {
    format!(
        r#"issuer: "{}", client_id: ward, client_secret: {{value: "{WARD_SECRET}"}}, timeout: 1s{extra}"#,
        provider.issuer
    )
}

/// The provider, a Redis, ward (provider entry [`basic`] plus `extra`)
/// and a real Envoy in front of the echo upstream.
struct Bed {
    provider: Provider,
    redis: RedisServer,
    ward: Ward,
    /// Held for its lifetime: Envoy's upstream.
    _echo: Echo,
    envoy: Envoy,
}

impl Bed {
    async fn start(extra: &str) -> Bed {
        let provider = Provider::with_introspection("ec256.key", "realm-key").await;
        let redis = RedisServer::start().await;
        let ward = Ward::start(&config(&provider, &redis, &basic(&provider, extra))).await;
        let echo = Echo::start().await;
        let envoy = Envoy::start(echo.addr, ward.grpc_addr).await;
        Bed {
            provider,
            redis,
            ward,
            _echo: echo,
            envoy,
        }
    }
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

fn deny_reason(resp: &support::http::Response) -> String {
    resp.json()["reason"].as_str().unwrap_or("").to_string()
}

#[tokio::test]
async fn an_opaque_token_is_allowed_with_its_identity_and_a_jwt_still_goes_to_jwt() {
    let bed = Bed::start("").await;
    let (provider, ward, envoy) = (&bed.provider, &bed.ward, &bed.envoy);

    let token = provider.client_token().await;
    let auth = bearer(&token);
    for _ in 0..3 {
        let headers = [("authorization", auth.as_str()), ("x-user-id", "root")];
        let resp = envoy.get("/api/orders", &headers).await;
        assert_eq!(resp.status, 200, "{}\n{}", resp.text(), ward.logs());
        let seen = resp.json();
        // A client's own token: its client is the caller.
        assert_eq!(header_values(&seen, "x-user-id"), vec!["app"]);
        assert_eq!(header_values(&seen, "x-auth-method"), vec!["opaque"]);
        assert_eq!(header_values(&seen, "x-user-scopes"), vec!["api:read"]);
    }
    // Answered once, then from the cache.
    assert_eq!(provider.introspection_calls(), 1);

    // A JWT of the same provider is verified with its keys, never sent.
    let mut c = claims("alice");
    c["iss"] = provider.issuer.clone().into();
    let jwt = bearer(&sign(Algorithm::ES256, Some("realm-key"), &c));
    let resp = envoy.get("/api/orders", &[("authorization", &jwt)]).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    let seen = resp.json();
    assert_eq!(header_values(&seen, "x-auth-method"), vec!["jwt"]);
    assert_eq!(header_values(&seen, "x-user-id"), vec!["alice"]);
    // An opaque-looking token the provider never issued: inactive.
    let unknown = bearer("Zm9yZ2VkLXRva2VuLW5vYm9keS1pc3N1ZWQtaXQtMDEyMzQ1Njc4OQ");
    let resp = envoy
        .get("/api/orders", &[("authorization", &unknown)])
        .await;
    assert_eq!(
        (resp.status, deny_reason(&resp).as_str()),
        (401, "inactive_token")
    );
    assert_eq!(provider.introspection_calls(), 2);
    // Kept for negative_ttl: asked again, not called again.
    let resp = envoy
        .get("/api/orders", &[("authorization", &unknown)])
        .await;
    assert_eq!(resp.status, 401);
    assert_eq!(provider.introspection_calls(), 2);
}

#[tokio::test]
async fn a_revoked_token_is_denied_after_the_cache_ttl() {
    let bed = Bed::start(", max_ttl: 1s").await;
    let (provider, envoy) = (&bed.provider, &bed.envoy);
    let token = provider.client_token().await;
    let auth = bearer(&token);
    let resp = envoy.get("/api", &[("authorization", &auth)]).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    provider.revoke(&token).await;
    // Still cached: the provider is not asked within max_ttl.
    let resp = envoy.get("/api", &[("authorization", &auth)]).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let resp = envoy.get("/api", &[("authorization", &auth)]).await;
    assert_eq!(
        (resp.status, deny_reason(&resp).as_str()),
        (401, "inactive_token")
    );
    assert_eq!(provider.introspection_calls(), 2);
}

#[tokio::test]
async fn a_revoked_token_is_denied_at_once_when_its_invalidation_key_is_published() {
    let bed = Bed::start(", max_ttl: 300s").await;
    let (provider, redis, ward, envoy) = (&bed.provider, &bed.redis, &bed.ward, &bed.envoy);
    wait_subscribed(redis).await;
    let token = provider.client_token().await;
    let auth = bearer(&token);
    let resp = envoy.get("/api", &[("authorization", &auth)]).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    provider.revoke(&token).await;
    let key = format!(
        "introspect:{}",
        hex::encode(ward::credentials::hash_credential(&token))
    );
    publish_invalidation(redis, &key);
    let started = std::time::Instant::now();
    loop {
        let resp = envoy.get("/api", &[("authorization", &auth)]).await;
        if resp.status == 401 {
            assert_eq!(deny_reason(&resp), "inactive_token");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "still allowed after the invalidation: {}",
            ward.logs()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_provider_down_gets_each_policys_answer() {
    let mut bed = Bed::start(", max_ttl: 1s").await;
    let seen = bed.provider.client_token().await;
    let unseen = bed.provider.client_token().await;
    let (seen, unseen) = (bearer(&seen), bearer(&unseen));
    let resp = bed
        .envoy
        .get("/p-stale/x", &[("authorization", &seen)])
        .await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    bed.provider.stop();
    // Past max_ttl: the answer is no longer fresh.
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let cases: [(&str, &str, u16, &str); 5] = [
        ("/p-closed/x", &seen, 503, "introspection_unavailable"),
        ("/p-closed/x", &unseen, 503, "introspection_unavailable"),
        // stale: the earlier active answer, within store.stale_if_error.
        ("/p-stale/x", &seen, 200, "app"),
        ("/p-stale/x", &unseen, 503, "introspection_unavailable"),
        // open: passes without an identity.
        ("/p-open/x", &unseen, 200, ""),
    ];
    for (path, auth, want_status, want) in cases {
        let resp = bed.envoy.get(path, &[("authorization", auth)]).await;
        assert_eq!(resp.status, want_status, "{path}: {}", resp.text());
        if want_status == 200 {
            let user: Vec<String> = header_values(&resp.json(), "x-user-id");
            let want: Vec<String> = [want]
                .into_iter()
                .filter(|w| !w.is_empty())
                .map(str::to_string)
                .collect();
            assert_eq!(user, want, "{path}");
        } else {
            assert_eq!(deny_reason(&resp), want, "{path}");
        }
    }
}

#[tokio::test]
async fn discovery_naming_another_issuer_is_refused() {
    let provider = Provider::with_introspection("ec256.key", "realm-key").await;
    let redis = RedisServer::start().await;
    // A trailing slash: the metadata's issuer differs (§4.3).
    let entry = format!(
        r#"issuer: "{}/", client_id: ward, client_secret: {{value: "{WARD_SECRET}"}}"#,
        provider.issuer
    );
    let text = config(&provider, &redis, &entry);
    let ward = Ward::start_unready(&text).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let ready = support::http::get(ward.admin_addr, "/readyz")
        .await
        .unwrap();
    assert_eq!(ready.status, 503, "{}", ward.logs());
    assert!(ready.text().contains("introspection"), "{}", ready.text());
    assert!(
        ward.logs().contains("metadata names issuer"),
        "{}",
        ward.logs()
    );
    let client = connect(ward.grpc_addr).await;
    let auth = bearer(&provider.client_token().await);
    let resp = check(&client, &[("authorization", &auth)]).await;
    assert_eq!(
        (status(&resp), reason(&resp).as_str()),
        (503, "introspection_unavailable")
    );
    assert_eq!(provider.introspection_calls(), 0);
}

#[tokio::test]
async fn concurrent_first_checks_of_one_token_make_one_call() {
    let provider = Provider::with_introspection("ec256.key", "realm-key").await;
    let redis = RedisServer::start().await;
    let ward = Ward::start(&config(&provider, &redis, &basic(&provider, ""))).await;
    let client = connect(ward.grpc_addr).await;
    let auth = bearer(&provider.client_token().await);
    let checks = (0..16).map(|_| {
        let (client, auth) = (client.clone(), auth.clone());
        tokio::spawn(async move { check(&client, &[("authorization", &auth)]).await })
    });
    for done in futures_join(checks.collect()).await {
        assert_eq!(status(&done), 200, "{}", reason(&done));
    }
    assert_eq!(provider.introspection_calls(), 1, "{}", ward.logs());
}

async fn futures_join(
    handles: Vec<tokio::task::JoinHandle<envoy_types::ext_authz::v3::pb::CheckResponse>>,
) -> Vec<envoy_types::ext_authz::v3::pb::CheckResponse> {
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

#[tokio::test]
async fn private_key_jwt_and_the_global_rate_cap() {
    let provider = Provider::with_introspection("ec256.key", "realm-key").await;
    let redis = RedisServer::start().await;
    let entry = format!(
        r#"issuer: "{}", client_id: ward-jwt, client_auth: private_key_jwt, private_key: {{file: tests/fixtures/keys/ec256.key}}"#,
        provider.issuer
    );
    let text = config(&provider, &redis, &entry)
        .replace("introspection:\n", "introspection:\n  max_rate: 1\n");
    let ward = Ward::start(&text).await;
    let client = connect(ward.grpc_addr).await;
    let first = bearer(&provider.client_token().await);
    let second = bearer(&provider.client_token().await);
    let resp = check(&client, &[("authorization", &first)]).await;
    assert_eq!(status(&resp), 200, "{}\n{}", reason(&resp), ward.logs());
    // One call per second: the next new token is refused at once...
    let resp = check(&client, &[("authorization", &second)]).await;
    assert_eq!(
        (status(&resp), reason(&resp).as_str()),
        (503, "introspection_overloaded")
    );
    // ...while a cached one still passes.
    let resp = check(&client, &[("authorization", &first)]).await;
    assert_eq!(status(&resp), 200);
    assert_eq!(provider.introspection_calls(), 1);
    let metrics = support::authz::metrics(ward.admin_addr).await;
    let overloaded = support::authz::metric_value(
        &metrics,
        "ward_introspection_calls_total",
        &[("result", "overloaded")],
    );
    assert_eq!(overloaded, 1.0);
}
