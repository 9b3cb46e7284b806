//! OIDC discovery against a real OpenID provider (`oidc-provider`, under
//! an issuer with a path, as a Keycloak realm): ward configured with the
//! issuer URL alone finds the JWKS through the provider's metadata and
//! verifies its tokens; metadata naming another issuer is refused, so the
//! source never loads and ward is never ready.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use jsonwebtoken::Algorithm;
use std::time::Duration;
use support::authz::{check, connect, reason, status};
use support::oidc::Provider;
use support::tokens::{claims, sign};
use support::ward::Ward;

fn config(issuer: &str, configured: &str) -> String {
    format!(
        r#"log: {{format: text, level: info}}
jwt:
  issuers: ["{issuer}", "{configured}"]
  audiences: [api]
  jwks:
    - {{issuer: "{configured}"}}
"#
    )
}

#[tokio::test]
async fn an_issuer_url_finds_its_keys_through_discovery() {
    let provider = Provider::start("ec256.key", "realm-key").await;
    let ward = Ward::start(&config(&provider.issuer, &provider.issuer)).await;
    let client = connect(ward.grpc_addr).await;
    let mut c = claims("alice");
    c["iss"] = provider.issuer.clone().into();
    let token = format!("Bearer {}", sign(Algorithm::ES256, Some("realm-key"), &c));
    let resp = check(&client, &[("authorization", &token)]).await;
    assert_eq!(status(&resp), 200, "{}", reason(&resp));
    // A kid the provider does not publish is unknown.
    let other = format!("Bearer {}", sign(Algorithm::ES256, Some("other"), &c));
    let resp = check(&client, &[("authorization", &other)]).await;
    assert_eq!(
        (status(&resp), reason(&resp).as_str()),
        (401, "unknown_kid")
    );
}

#[tokio::test]
async fn metadata_naming_another_issuer_is_refused() {
    let provider = Provider::start("ec256.key", "realm-key").await;
    // Configured with a trailing slash: the provider's metadata says
    // otherwise, and §4.3 wants them identical.
    let configured = format!("{}/", provider.issuer);
    let ward = Ward::start_unready(&config(&provider.issuer, &configured)).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let ready = support::http::get(ward.admin_addr, "/readyz")
        .await
        .unwrap();
    assert_eq!(ready.status, 503, "{}", ward.logs());
    assert!(
        ward.logs().contains("metadata names issuer"),
        "{}",
        ward.logs()
    );
}
