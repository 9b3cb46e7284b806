//! A record the store holds in the wrong shape (a string where the
//! contract says hash, or a hash missing its fields) is a 401 for that one
//! credential under every `on_store_error`: never a 503, and never an allow
//! (before `on_store_error.rs`, a corrupt session reached through a JWT's
//! `sid` was allowed as the user under `open`). Through a real Envoy to a
//! real upstream, with a real `redis-server`; each policy on its own route.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use jsonwebtoken::Algorithm;
use support::authz::{hset, session_id};
use support::echo::Echo;
use support::envoy::Envoy;
use support::redis::RedisServer;
use support::tokens::{self, HMAC_SECRET};
use support::ward::Ward;

const POLICIES: [&str; 3] = ["closed", "stale", "open"];

/// What is sent, the headers, and the deny reason expected.
type Case<'a> = (&'a str, Vec<(&'a str, String)>, &'a str);

fn config(redis: &RedisServer) -> String {
    format!(
        "log: {{format: text, level: warn}}\n\
         store:\n  redis: {{url: \"{}\"}}\n\
         sessions: {{fingerprint: {{mode: off}}}}\n\
         jwt:\n  keys:\n    - {{alg: HS256, secret: {{value: \"{HMAC_SECRET}\"}}}}\n  \
         revocation: {{check_jti: true, require_session: true}}\n\
         policies:\n  closed: {{on_store_error: closed}}\n  stale: {{on_store_error: stale}}\n  open: {{on_store_error: open}}\n\
         routes:\n  - {{prefix: /on-closed, policy: closed}}\n  - {{prefix: /on-stale, policy: stale}}\n  - {{prefix: /on-open, policy: open}}\n",
        redis.url()
    )
}

fn bearer(claims: &serde_json::Value) -> String {
    format!("Bearer {}", tokens::sign(Algorithm::HS256, None, claims))
}

/// The status and deny reason Envoy answered (`allowed` for a 200).
async fn answer(envoy: &Envoy, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let resp = envoy.get(path, headers).await;
    if resp.status == 200 {
        return (200, "allowed".into());
    }
    let body: serde_json::Value = serde_json::from_slice(&resp.body).unwrap_or_default();
    (
        resp.status,
        body["reason"].as_str().unwrap_or("").to_string(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_record_is_a_401_under_every_policy() {
    let redis = RedisServer::start().await;
    let echo = Echo::start().await;
    let ward = Ward::start(&config(&redis)).await;
    let envoy = Envoy::start(echo.addr, ward.grpc_addr).await;

    // A session key holding a string.
    let string_sid = session_id();
    redis.cli(&["SET", &format!("session:{string_sid}"), "alice"]);
    // A session hash without the fields the contract requires.
    let partial_sid = session_id();
    hset(
        &redis,
        &format!("session:{partial_sid}"),
        &[("roles", "admin")],
    );
    // An API key record holding a list.
    let key = ward::apikey::generate("ward").unwrap();
    let key_record = format!("apikey:{}", ward::apikey::hash_hex(&key));
    redis.cli(&["RPUSH", &key_record, "svc"]);
    // A revocation marker in a shape of its own: still a revocation.
    let jti = format!("jti-{}", session_id());
    redis.cli(&["HSET", &format!("revoked_jti:{jti}"), "by", "admin"]);

    let token_on = |sid: &str| {
        let mut claims = tokens::claims("alice");
        claims["sid"] = sid.into();
        bearer(&claims)
    };
    let cases: Vec<Case> = vec![
        (
            "session cookie, string record",
            vec![("cookie", format!("session_id={string_sid}"))],
            "invalid_session",
        ),
        (
            "session header, incomplete hash",
            vec![("x-session-id", partial_sid.clone())],
            "invalid_session",
        ),
        (
            "JWT whose sid holds a string",
            vec![("authorization", token_on(&string_sid))],
            "invalid_session",
        ),
        (
            "JWT whose sid holds an incomplete hash",
            vec![("authorization", token_on(&partial_sid))],
            "invalid_session",
        ),
        (
            "API key whose record is a list",
            vec![("x-api-key", key.clone())],
            "invalid_api_key",
        ),
        (
            "JWT whose revoked_jti marker is a hash",
            vec![("authorization", {
                let mut claims = tokens::claims("alice");
                claims["jti"] = jti.clone().into();
                bearer(&claims)
            })],
            "token_revoked",
        ),
    ];
    for policy in POLICIES {
        for (what, headers, reason) in &cases {
            let headers: Vec<(&str, &str)> =
                headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let got = answer(&envoy, &format!("/on-{policy}/x"), &headers).await;
            assert_eq!(got, (401, reason.to_string()), "{what} on /on-{policy}");
        }
    }
    // The same routes pass a sound credential, so the 401s above are the
    // records' doing.
    let sid = session_id();
    let expires = (tokens::now() + 600).to_string();
    hset(
        &redis,
        &format!("session:{sid}"),
        &[("user_id", "alice"), ("expires_at", &expires)],
    );
    for policy in POLICIES {
        let auth = token_on(&sid);
        let got = answer(
            &envoy,
            &format!("/on-{policy}/x"),
            &[("authorization", &auth)],
        )
        .await;
        assert_eq!(got, (200, "allowed".into()), "sound token on /on-{policy}");
    }
    assert_eq!(
        envoy.stat("http.ingress_http.ext_authz.error").await,
        0,
        "every answer was a CheckResponse"
    );
}
