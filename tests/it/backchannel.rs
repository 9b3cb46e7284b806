//! OpenID Connect Back-Channel Logout over real HTTP, a real
//! `redis-server` and a real OpenID provider (`oidc-provider`): the
//! provider's own logout token revokes the ward sessions a login recorded
//! for its session, and the session-bound JWTs with them, on two other
//! wards at once; a replayed and a forged token are refused and revoke
//! nothing. The endpoint runs in this process on a loopback listener of
//! its own (`server::backchannel::serve`), over the same store; the
//! provider test logs in and out through the provider's own pages.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::authz::{check, connect, reason, status};
use support::cli::ward as ward_cli;
use support::oidc::Provider;
use support::redis::RedisServer;
use support::tokens::{self, now};
use support::ward::Ward;
use tokio::net::TcpListener;
use ward::config::Config;
use ward::server::backchannel::{self, Backchannel};

const LOGOUT_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";
const KID: &str = "realm-key";

fn config(redis: &RedisServer, issuer: &str) -> String {
    format!(
        r#"log: {{format: text, level: info}}
store: {{redis: {{url: "{}"}}}}
cache: {{store_ttl: 60s, negative_ttl: 60s, max_ttl: 300s}}
sessions: {{fingerprint: {{mode: off}}}}
jwt:
  issuers: ["{issuer}"]
  audiences: [api]
  jwks: [{{issuer: "{issuer}"}}]
  revocation: {{require_session: true}}
management:
  backchannel_logout: {{client_id: web, issuers: ["{issuer}"]}}
"#,
        redis.url()
    )
}

/// The endpoint, served until dropped.
struct Endpoint {
    addr: SocketAddr,
    metrics: Arc<ward::metrics::Metrics>,
    _stop: tokio::sync::watch::Sender<bool>,
}

impl Endpoint {
    /// Serves `yaml`'s back-channel logout on `listener`, once its
    /// provider's keys have loaded.
    async fn start(yaml: &str, listener: TcpListener) -> Endpoint {
        let config = Config::from_yaml(yaml).unwrap();
        let problems = ward::setup::problems(&config, &ward::config::ProcessEnv);
        assert!(problems.is_empty(), "{problems:?}");
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let keys = ward::jwks::KeyStore::new(&config.jwt).unwrap();
        let metrics = Arc::new(ward::metrics::Metrics::new().unwrap());
        keys.spawn(metrics.clone(), stopped.clone());
        let started = Instant::now();
        while !keys.is_ready() {
            assert!(started.elapsed() < Duration::from_secs(10), "no keys");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let store = ward::store::Store::open(&config).await.unwrap();
        let endpoint = Backchannel::new(&config, keys, store, metrics.clone()).unwrap();
        let path = &config.management.backchannel_logout.as_ref().unwrap().path;
        let router = backchannel::router(path, backchannel::fixed(Arc::new(endpoint)));
        let addr = listener.local_addr().unwrap();
        let mut stopped = stopped;
        tokio::spawn(backchannel::serve(listener, router, async move {
            let _ = stopped.wait_for(|s| *s).await;
        }));
        Endpoint {
            addr,
            metrics,
            _stop: stop,
        }
    }

    /// The endpoint's metric lines that start with `prefix`.
    fn metrics(&self, prefix: &str) -> Vec<String> {
        let text = self.metrics.render();
        text.lines()
            .filter(|l| l.starts_with(prefix))
            .map(String::from)
            .collect()
    }

    async fn post(&self, token: &str) -> support::http::Response {
        let body = format!("logout_token={token}");
        let form = [("content-type", "application/x-www-form-urlencoded")];
        support::http::send(
            self.addr,
            "POST",
            "/backchannel-logout",
            &form,
            body.as_bytes(),
        )
        .await
        .unwrap()
    }
}

/// What a login service does at login: a ward session, recorded under
/// the provider's session and user (`ward session create --oidc-*`).
fn login(ward_config: &str, issuer: &str, sub: &str, sid: Option<&str>) -> String {
    let mut args = vec!["session", "create", "-c", ward_config, "--user", sub];
    args.extend(["--oidc-issuer", issuer, "--oidc-sub", sub]);
    if let Some(sid) = sid {
        args.extend(["--oidc-sid", sid]);
    }
    let (ok, out) = ward_cli(&args);
    assert!(ok, "{out}");
    out.trim().to_string()
}

/// A logout token as the provider would sign it (its key, the fixture
/// `ec256.key`), or as `key` would.
fn logout_token(issuer: &str, claims: Value, key: &EncodingKey) -> String {
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(KID.into());
    header.typ = Some("logout+jwt".into());
    let now = now();
    let mut all = json!({
        "iss": issuer, "aud": "web", "iat": now, "exp": now + 120,
        "jti": format!("jti-{}", support::authz::session_id()),
        "events": {LOGOUT_EVENT: {}},
    });
    for (k, v) in claims.as_object().unwrap() {
        all[k] = v.clone();
    }
    jsonwebtoken::encode(&header, &all, key).unwrap()
}

/// A P-256 key the provider never published.
fn stranger_key(dir: &std::path::Path) -> EncodingKey {
    let path = dir.join("stranger.pem");
    let out = std::process::Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
        ])
        .arg(&path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    EncodingKey::from_ec_pem(&std::fs::read(path).unwrap()).unwrap()
}

/// Polls one check until its status is `want` (within 2 s); the last status.
async fn until_status(ward: &Ward, headers: &[(&str, &str)], want: i32) -> (i32, String) {
    let client = connect(ward.grpc_addr).await;
    let started = Instant::now();
    loop {
        let resp = check(&client, headers).await;
        let code = status(&resp);
        let got = (
            code,
            if code == 200 {
                String::new()
            } else {
                reason(&resp)
            },
        );
        if got.0 == want || started.elapsed() > Duration::from_secs(2) {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn cookie(sid: &str) -> String {
    format!("session_id={sid}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_providers_logout_revokes_its_sessions_and_their_tokens_on_every_ward() {
    let redis = RedisServer::start().await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let uri = format!(
        "http://{}/backchannel-logout",
        listener.local_addr().unwrap()
    );
    let provider = Provider::with_backchannel_logout("ec256.key", KID, &uri).await;
    let yaml = config(&redis, &provider.issuer);
    let _endpoint = Endpoint::start(&yaml, listener).await;
    let wards = [Ward::start(&yaml).await, Ward::start(&yaml).await];
    let cfg = wards[0].config_path().display().to_string();
    // alice logs in twice (two browsers: two provider sessions); the login
    // service records each ward session under the ID token's sid and sub.
    let first = provider.login("alice").await;
    let second = provider.login("alice").await;
    let sid_of = |l: &support::oidc::Login| l.claims["sid"].as_str().unwrap().to_string();
    let (first_sid, second_sid) = (sid_of(&first), sid_of(&second));
    assert_ne!(first_sid, second_sid);
    assert_eq!(first.claims["sub"], "alice");
    let ended = login(&cfg, &provider.issuer, "alice", Some(&first_sid));
    let kept = login(&cfg, &provider.issuer, "alice", Some(&second_sid));
    let mut claims = tokens::claims("alice");
    claims["iss"] = provider.issuer.clone().into();
    claims["sid"] = ended.clone().into();
    let bound = format!(
        "Bearer {}",
        tokens::sign(Algorithm::ES256, Some(KID), &claims)
    );
    let ended_cookie = cookie(&ended);
    let kept_cookie = cookie(&kept);
    let checks = [
        ("cookie", ended_cookie.as_str(), 401),
        ("authorization", bound.as_str(), 401),
        ("cookie", kept_cookie.as_str(), 200),
    ];
    for ward in &wards {
        // Allowed (and now cached) on both wards.
        for (name, value, _) in checks {
            assert_eq!(until_status(ward, &[(name, value)], 200).await.0, 200);
        }
    }
    // alice logs out of her first session at the provider, which tells
    // ward (its back-channel logout) before it answers the browser.
    provider.end_session(first).await;
    for ward in &wards {
        for (name, value, want) in checks {
            let got = until_status(ward, &[(name, value)], want).await;
            assert_eq!(got.0, want, "{name}: {got:?}\n{}", ward.logs());
        }
    }
    assert_eq!(
        redis.cli(&["HGET", &format!("session:{kept}"), "revoked"]),
        ""
    );
    let index = format!("oidc_sid:{}#{first_sid}", provider.issuer);
    assert_eq!(
        redis.cli(&["EXISTS", &index]),
        "0",
        "revoked ones leave the index"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_or_forged_logout_token_is_refused_and_revokes_nothing() {
    let redis = RedisServer::start().await;
    let provider = Provider::start("ec256.key", KID).await;
    let yaml = config(&redis, &provider.issuer);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = Endpoint::start(&yaml, listener).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("ward.yaml");
    std::fs::write(&cfg, &yaml).unwrap();
    let cfg = cfg.display().to_string();
    let issuer = provider.issuer.as_str();
    let bob = login(&cfg, issuer, "bob", None);
    let carol = login(&cfg, issuer, "carol", None);
    let revoked = |sid: &str| redis.cli(&["HGET", &format!("session:{sid}"), "revoked"]);
    let providers = tokens::encoding_key(Algorithm::ES256);

    // Forged: bob's logout signed by a key the provider never published.
    let forged = logout_token(issuer, json!({"sub": "bob"}), &stranger_key(dir.path()));
    let resp = endpoint.post(&forged).await;
    assert_eq!(resp.status, 400, "{}", resp.text());
    assert_eq!(resp.json()["error"], "invalid_request");
    assert_eq!(resp.header("cache-control"), Some("no-store"));
    assert_eq!(revoked(&bob), "");

    // Valid, by `sub` alone: every session of bob's at the provider.
    let valid = logout_token(issuer, json!({"sub": "bob"}), &providers);
    let resp = endpoint.post(&valid).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.header("cache-control"), Some("no-store"));
    assert_eq!(revoked(&bob), "1");

    // Replayed: the same token again, however it is sent.
    let resp = endpoint.post(&valid).await;
    assert_eq!(resp.status, 400, "{}", resp.text());
    assert_eq!(resp.json()["error"], "invalid_request");
    assert!(resp.text().contains("already used"), "{}", resp.text());

    // Other refusals: a token for another client, an ID token (a nonce),
    // an unknown issuer, no token at all, a body that is not a form.
    let refusals = [
        logout_token(issuer, json!({"sub": "carol", "aud": "other"}), &providers),
        logout_token(issuer, json!({"sub": "carol", "nonce": "n"}), &providers),
        logout_token("https://idp.evil", json!({"sub": "carol"}), &providers),
        String::new(),
    ];
    for token in &refusals {
        let resp = endpoint.post(token).await;
        assert_eq!(resp.status, 400, "{token}: {}", resp.text());
    }
    let json = [("content-type", "application/json")];
    let resp = support::http::send(endpoint.addr, "POST", "/backchannel-logout", &json, b"{}")
        .await
        .unwrap();
    assert_eq!(resp.status, 400, "{}", resp.text());
    assert_eq!(revoked(&carol), "", "carol was never logged out");
    assert_eq!(
        endpoint.metrics("ward_backchannel_"),
        [
            r#"ward_backchannel_logouts_total{result="failed"} 0"#,
            r#"ward_backchannel_logouts_total{result="logged_out"} 1"#,
            r#"ward_backchannel_logouts_total{result="refused"} 6"#,
            r#"ward_backchannel_logouts_total{result="replayed"} 1"#,
            "ward_backchannel_sessions_revoked_total 1",
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logout_the_store_cannot_record_is_a_400_the_provider_may_retry() {
    let mut redis = RedisServer::start().await;
    let provider = Provider::start("ec256.key", KID).await;
    let yaml = config(&redis, &provider.issuer);
    let endpoint = Endpoint::start(&yaml, TcpListener::bind("127.0.0.1:0").await.unwrap()).await;
    let token = logout_token(
        &provider.issuer,
        json!({"sub": "bob"}),
        &tokens::encoding_key(Algorithm::ES256),
    );
    redis.stop();
    let resp = endpoint.post(&token).await;
    assert_eq!(resp.status, 400, "{}", resp.text());
    assert_eq!(resp.json()["error"], "temporarily_unavailable");
    assert_eq!(resp.header("cache-control"), Some("no-store"));
    redis.restart().await;
    // The same token, once the store is back: not a replay.
    let started = Instant::now();
    let resp = loop {
        let resp = endpoint.post(&token).await;
        if resp.status == 200 || started.elapsed() > Duration::from_secs(5) {
            break resp;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(resp.status, 200, "{}", resp.text());
    let failed = endpoint.metrics(r#"ward_backchannel_logouts_total{result="failed"}"#);
    let failed: u64 = failed[0].rsplit(' ').next().unwrap().parse().unwrap();
    assert!(failed >= 1, "{failed}");

    // The claim on the jti made, then the revocation failing (an index of
    // the wrong type): the claim is given back, so a retry is no replay.
    let index = format!("oidc_sub:{}#carol", provider.issuer);
    redis.cli(&["SET", &index, "not-a-set"]);
    let token = logout_token(
        &provider.issuer,
        json!({"sub": "carol"}),
        &tokens::encoding_key(Algorithm::ES256),
    );
    let resp = endpoint.post(&token).await;
    assert_eq!(resp.json()["error"], "temporarily_unavailable");
    redis.cli(&["DEL", &index]);
    let resp = endpoint.post(&token).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
}

/// A provider that serves discovery and a JWKS this test can change.
struct RotatingIdp {
    issuer: String,
    jwks: Arc<std::sync::Mutex<String>>,
}

impl RotatingIdp {
    async fn start(kid: &str) -> RotatingIdp {
        use http_body_util::Full;
        use hyper::body::Bytes;
        use hyper_util::rt::TokioIo;
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let issuer = format!("http://{}", listener.local_addr().unwrap());
        let jwks = Arc::new(std::sync::Mutex::new(String::new()));
        let idp = RotatingIdp { issuer, jwks };
        idp.publish(kid);
        let (issuer, jwks) = (idp.issuer.clone(), idp.jwks.clone());
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (issuer, jwks) = (issuer.clone(), jwks.clone());
                let svc = hyper::service::service_fn(move |req: hyper::Request<_>| {
                    let body = match req.uri().path() {
                        "/.well-known/openid-configuration" => {
                            json!({"issuer": issuer, "jwks_uri": format!("{issuer}/jwks")})
                                .to_string()
                        }
                        _ => jwks.lock().unwrap().clone(),
                    };
                    async move {
                        Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(
                            Bytes::from(body),
                        )))
                    }
                });
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc),
                );
            }
        });
        idp
    }

    /// Publishes the fixture P-256 key under `kid` alone.
    fn publish(&self, kid: &str) {
        let doc = json!({"keys": [tokens::jwk(Algorithm::ES256, kid)]});
        *self.jwks.lock().unwrap() = doc.to_string();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logout_signed_with_a_rotated_key_is_verified_after_one_refetch() {
    let redis = RedisServer::start().await;
    let idp = RotatingIdp::start(KID).await;
    let issuer = idp.issuer.as_str();
    let yaml = config(&redis, issuer).replace(
        &format!("jwks: [{{issuer: \"{issuer}\"}}]"),
        &format!("jwks: [{{issuer: \"{issuer}\", min_refetch_interval: 0s}}]"),
    );
    let endpoint = Endpoint::start(&yaml, TcpListener::bind("127.0.0.1:0").await.unwrap()).await;
    let rotated = |sub: &str| {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some("rotated".into());
        header.typ = Some("logout+jwt".into());
        let now = now();
        let claims = json!({
            "iss": issuer, "aud": "web", "iat": now, "exp": now + 60, "sub": sub,
            "jti": format!("jti-{sub}"), "events": {LOGOUT_EVENT: {}},
        });
        jsonwebtoken::encode(&header, &claims, &tokens::encoding_key(Algorithm::ES256)).unwrap()
    };
    // Not published yet: refetched once, still unknown, refused.
    let resp = endpoint.post(&rotated("dave")).await;
    assert_eq!(resp.status, 400, "{}", resp.text());
    assert!(resp.text().contains("kid"), "{}", resp.text());
    idp.publish("rotated");
    let resp = endpoint.post(&rotated("erin")).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
}

/// `ward serve` mounts the endpoint on the management listener
/// (`management.listen`), outside the management API's bearer gate: a
/// login recorded through the API (`CreateSession` with the OpenID
/// fields) is revoked by the provider's logout token, POSTed with no
/// other credential; a forged one is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ward_serve_answers_logouts_on_the_management_listener() {
    use crate::management::{TOKEN, authed, client};
    use ward::server::management::proto::CreateSessionRequest;
    let redis = RedisServer::start().await;
    let idp = RotatingIdp::start(KID).await;
    let issuer = idp.issuer.as_str();
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, TOKEN).unwrap();
    let yaml = config(&redis, issuer).replace(
        "management:\n",
        &format!(
            "management:\n  auth: {{token_file: \"{}\"}}\n",
            token_file.display()
        ),
    );
    let ward = Ward::start(&yaml).await;
    let mut api = client(&ward).await;
    let sid = api
        .create_session(authed(CreateSessionRequest {
            user_id: "bob".into(),
            oidc_issuer: issuer.into(),
            oidc_sub: "bob".into(),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner()
        .session_id;
    assert_eq!(
        until_status(&ward, &[("cookie", &cookie(&sid))], 200)
            .await
            .0,
        200
    );
    let post = |token: String| {
        let addr = ward.management_addr.unwrap();
        async move {
            let body = format!("logout_token={token}");
            let form = [("content-type", "application/x-www-form-urlencoded")];
            support::http::send(addr, "POST", "/backchannel-logout", &form, body.as_bytes())
                .await
                .unwrap()
        }
    };
    let forged = logout_token(issuer, json!({"sub": "bob"}), &stranger_key(dir.path()));
    assert_eq!(post(forged).await.status, 400);
    let providers = tokens::encoding_key(Algorithm::ES256);
    let resp = post(logout_token(issuer, json!({"sub": "bob"}), &providers)).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    let (code, why) = until_status(&ward, &[("cookie", &cookie(&sid))], 401).await;
    assert_eq!((code, why.as_str()), (401, "session_revoked"));
    // An OpenID login needs its provider's issuer.
    let half = api
        .create_session(authed(CreateSessionRequest {
            user_id: "bob".into(),
            oidc_sid: "s1".into(),
            ..Default::default()
        }))
        .await
        .unwrap_err();
    assert_eq!(half.code(), tonic::Code::InvalidArgument);
}
