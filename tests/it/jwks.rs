//! JWKS: loading from a file and a URL, readiness, key rotation through an
//! unknown `kid`, a bounded refetch rate, and last-known-good keys when the
//! identity provider fails. The JWKS endpoint is a real HTTP server on
//! loopback whose answer each test controls.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::service::service_fn;
use hyper::{Response, StatusCode};
use hyper_util::rt::TokioIo;
use jsonwebtoken::Algorithm;
use serde_json::json;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::inproc::InProc;
use support::tokens::{claims, jwk, sign};

/// A JWKS endpoint: serves `doc` with `status`, counts fetches.
#[derive(Clone)]
struct Idp {
    addr: SocketAddr,
    doc: Arc<Mutex<(u16, String)>>,
    fetches: Arc<AtomicUsize>,
}

impl Idp {
    async fn start(status: u16, doc: serde_json::Value) -> Idp {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let idp = Idp {
            addr: listener.local_addr().unwrap(),
            doc: Arc::new(Mutex::new((status, doc.to_string()))),
            fetches: Arc::new(AtomicUsize::new(0)),
        };
        let state = idp.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let state = state.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |_req| {
                        let state = state.clone();
                        async move {
                            state.fetches.fetch_add(1, Ordering::SeqCst);
                            let (status, body) = state.doc.lock().unwrap().clone();
                            let mut resp = Response::new(Full::new(Bytes::from(body)));
                            *resp.status_mut() = StatusCode::from_u16(status).unwrap();
                            Ok::<_, std::convert::Infallible>(resp)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        idp
    }

    fn set(&self, status: u16, doc: serde_json::Value) {
        *self.doc.lock().unwrap() = (status, doc.to_string());
    }

    fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }

    fn config(&self, min_refetch: &str) -> String {
        format!(
            "log: {{format: text, level: warn}}\njwt:\n  jwks:\n    - {{url: \"http://{}/jwks.json\", refresh_interval: 1h, min_refetch_interval: {min_refetch}, timeout: 2s}}\n",
            self.addr
        )
    }
}

fn keys(list: &[(Algorithm, &str)]) -> serde_json::Value {
    json!({"keys": list.iter().map(|(alg, kid)| jwk(*alg, kid)).collect::<Vec<_>>()})
}

async fn status_of(ward: &InProc, token: &str) -> (i32, String) {
    use envoy_types::ext_authz::v3::pb::HttpResponse;
    let auth = format!("Bearer {token}");
    let resp = ward.check(&[("authorization", &auth)]).await;
    match resp.http_response.unwrap() {
        HttpResponse::OkResponse(_) => (200, "ok".into()),
        HttpResponse::DeniedResponse(d) => {
            let body: serde_json::Value = serde_json::from_str(&d.body).unwrap();
            (
                d.status.unwrap().code,
                body["reason"].as_str().unwrap().into(),
            )
        }
        HttpResponse::ErrorResponse(_) => panic!("error_response"),
    }
}

async fn readyz(ward: &InProc) -> u16 {
    support::http::get(ward.admin_addr, "/readyz")
        .await
        .unwrap()
        .status
}

/// Polls `cond` every 20 ms for at most 5 s.
async fn eventually(what: &str, mut cond: impl AsyncFnMut() -> bool) {
    for _ in 0..250 {
        if cond().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test]
async fn not_ready_and_503_until_the_first_load_then_allowed() {
    let idp = Idp::start(500, json!({})).await;
    let ward = InProc::start(&idp.config("0s")).await;
    let token = sign(Algorithm::ES256, Some("k1"), &claims("alice"));
    assert_eq!(readyz(&ward).await, 503);
    assert_eq!(
        status_of(&ward, &token).await,
        (503, "keys_unavailable".into())
    );
    idp.set(200, keys(&[(Algorithm::ES256, "k1")]));
    eventually("ready", async || readyz(&ward).await == 200).await;
    assert_eq!(status_of(&ward, &token).await.0, 200);
}

#[tokio::test]
async fn unknown_kid_triggers_a_refetch_for_key_rotation() {
    let idp = Idp::start(200, keys(&[(Algorithm::RS256, "old")])).await;
    let ward = InProc::start(&idp.config("0s")).await;
    eventually("ready", async || readyz(&ward).await == 200).await;
    let rotated = sign(Algorithm::ES256, Some("new"), &claims("alice"));
    idp.set(
        200,
        keys(&[(Algorithm::RS256, "old"), (Algorithm::ES256, "new")]),
    );
    // The first check with the new kid waits (bounded) for the refetch.
    assert_eq!(status_of(&ward, &rotated).await.0, 200);
    assert!(idp.fetches() >= 2);
}

#[tokio::test]
async fn refetches_for_unknown_kids_are_rate_limited() {
    let idp = Idp::start(200, keys(&[(Algorithm::RS256, "k1")])).await;
    let ward = InProc::start(&idp.config("1h")).await;
    eventually("ready", async || readyz(&ward).await == 200).await;
    let before = idp.fetches();
    for i in 0..20 {
        let token = sign(Algorithm::RS256, Some(&format!("random-{i}")), &claims("x"));
        assert_eq!(status_of(&ward, &token).await, (401, "unknown_kid".into()));
    }
    assert!(
        idp.fetches() <= before + 1,
        "{} fetches for 20 unknown kids",
        idp.fetches() - before
    );
}

#[tokio::test]
async fn keeps_last_known_good_keys_when_the_idp_fails() {
    let idp = Idp::start(200, keys(&[(Algorithm::EdDSA, "k1")])).await;
    let ward = InProc::start(&idp.config("0s")).await;
    eventually("ready", async || readyz(&ward).await == 200).await;
    idp.set(503, json!({"error": "down"}));
    // An unknown kid forces a fetch, which fails.
    let stranger = sign(Algorithm::EdDSA, Some("k2"), &claims("x"));
    let before = idp.fetches();
    assert_eq!(status_of(&ward, &stranger).await.0, 401);
    eventually("a failed refetch", async || idp.fetches() > before).await;
    let token = sign(Algorithm::EdDSA, Some("k1"), &claims("alice"));
    assert_eq!(status_of(&ward, &token).await.0, 200);
    assert_eq!(readyz(&ward).await, 200);
}

#[tokio::test]
async fn jwks_from_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jwks.json");
    std::fs::write(&path, keys(&[(Algorithm::PS256, "f1")]).to_string()).unwrap();
    let yaml = format!("jwt:\n  jwks: [{{file: {}}}]\n", path.display());
    let ward = InProc::start(&yaml).await;
    eventually("ready", async || readyz(&ward).await == 200).await;
    let token = sign(Algorithm::PS256, Some("f1"), &claims("alice"));
    assert_eq!(status_of(&ward, &token).await.0, 200);
    // A JWK published as PS256 does not verify an RS256 token.
    let other = sign(Algorithm::RS256, Some("f1"), &claims("alice"));
    assert_eq!(
        status_of(&ward, &other).await,
        (401, "algorithm_mismatch".into())
    );
}

/// Past `cache.max_ttl` a hot token is renewed without a signature check
/// while ward's keys are the very set that verified it (a refetch of the
/// same document included), verified again once the set changed (a key
/// added), and refused once its key is gone.
#[tokio::test]
async fn a_cached_token_is_renewed_while_its_keys_are_unchanged() {
    use support::authz::metric;
    let idp = Idp::start(200, keys(&[(Algorithm::ES256, "k1")])).await;
    // Fresh for 3-4 s (whole seconds, spread), kept 2 s more if unused.
    let ward = InProc::start(&format!("{}cache: {{max_ttl: 4s}}\n", idp.config("0s"))).await;
    eventually("ready", async || readyz(&ward).await == 200).await;
    let verifications = async || metric(ward.admin_addr, "ward_jwt_verifications_total", &[]).await;
    let renewed = async || {
        let labels = [("cache", "token"), ("result", "renewed")];
        metric(ward.admin_addr, "ward_cache_requests_total", &labels).await
    };
    let past_max_ttl = || tokio::time::sleep(Duration::from_millis(4100));
    let token = sign(Algorithm::ES256, Some("k1"), &claims("alice"));
    assert_eq!(status_of(&ward, &token).await.0, 200);
    assert_eq!(verifications().await, 1.0);

    // The same document fetched again (an unknown kid asks for it).
    let fetched = idp.fetches();
    let stranger = sign(Algorithm::ES256, Some("k9"), &claims("x"));
    assert_eq!(status_of(&ward, &stranger).await.0, 401);
    assert!(idp.fetches() > fetched);
    past_max_ttl().await;
    assert_eq!(status_of(&ward, &token).await.0, 200);
    assert_eq!((verifications().await, renewed().await), (1.0, 1.0));

    // A key added: another set, so the token is verified again.
    idp.set(
        200,
        keys(&[(Algorithm::ES256, "k1"), (Algorithm::ES256, "k2")]),
    );
    let k2 = sign(Algorithm::ES256, Some("k2"), &claims("bob"));
    assert_eq!(status_of(&ward, &k2).await.0, 200);
    past_max_ttl().await;
    assert_eq!(status_of(&ward, &token).await.0, 200);
    assert_eq!((verifications().await, renewed().await), (3.0, 1.0));

    // Its key removed: refused once its freshness is over.
    idp.set(200, keys(&[(Algorithm::ES256, "k2")]));
    let fetched = idp.fetches();
    assert_eq!(status_of(&ward, &stranger).await.0, 401);
    eventually("the refetch", async || idp.fetches() > fetched).await;
    assert_eq!(status_of(&ward, &token).await.0, 200, "still fresh");
    past_max_ttl().await;
    assert_eq!(status_of(&ward, &token).await, (401, "unknown_kid".into()));
}
