//! The decision contract with Envoy, over real gRPC: every algorithm
//! family, every rejection reason, header injection and scrubbing,
//! metadata, and the cache.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use envoy_types::ext_authz::v3::pb::{CheckResponse, HttpResponse};
use envoy_types::pb::google::protobuf::value::Kind;
use jsonwebtoken::Algorithm;
use serde_json::json;
use support::authz::{reason, set_header, status};
use support::inproc::InProc;
use support::tokens::{self, HMAC_SECRET, b64, claims, sign};

/// One key per algorithm, each with its own kid (the algorithm's name).
fn config() -> String {
    let mut keys = String::new();
    for alg in [
        "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA",
    ] {
        let file = tokens::public_key_file(alg.parse().unwrap());
        keys += &format!("    - {{kid: {alg}, alg: {alg}, pem_file: {file}}}\n");
    }
    for alg in ["HS256", "HS384", "HS512"] {
        keys +=
            &format!("    - {{kid: {alg}, alg: {alg}, secret: {{value: \"{HMAC_SECRET}\"}}}}\n");
    }
    format!(
        "log: {{format: text, level: warn}}\njwt:\n  issuers: [\"https://idp.test\"]\n  audiences: [api]\n  keys:\n{keys}"
    )
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

#[tokio::test]
async fn valid_tokens_of_every_algorithm_are_allowed() {
    let ward = InProc::start(&config()).await;
    for alg in [
        Algorithm::HS256,
        Algorithm::HS384,
        Algorithm::HS512,
        Algorithm::RS256,
        Algorithm::RS384,
        Algorithm::RS512,
        Algorithm::PS256,
        Algorithm::PS384,
        Algorithm::PS512,
        Algorithm::ES256,
        Algorithm::ES384,
        Algorithm::EdDSA,
    ] {
        let kid = format!("{alg:?}");
        let token = sign(alg, Some(&kid), &claims("alice"));
        let resp = ward.check(&[("authorization", &bearer(&token))]).await;
        assert_eq!(status(&resp), 200, "{alg:?}: {}", reason(&resp));
        assert_eq!(resp.status.as_ref().unwrap().code, 0);
        assert_eq!(set_header(&resp, "x-user-id").as_deref(), Some("alice"));
        assert_eq!(set_header(&resp, "x-auth-method").as_deref(), Some("jwt"));
        assert_eq!(
            set_header(&resp, "x-user-email").as_deref(),
            Some("alice@example.com")
        );
        assert_eq!(set_header(&resp, "x-user-roles").as_deref(), Some("reader"));
    }
}

#[tokio::test]
async fn rejections_carry_status_reason_and_challenge() {
    let ward = InProc::start(&config()).await;
    let now = tokens::now();
    let with = |extra: serde_json::Value| {
        let mut c = claims("alice");
        for (k, v) in extra.as_object().unwrap() {
            c[k] = v.clone();
        }
        c
    };
    let rs = |c: serde_json::Value| sign(Algorithm::RS256, Some("RS256"), &c);
    let good = rs(claims("alice"));
    let mut parts: Vec<&str> = good.split('.').collect();
    let other = rs(claims("mallory"));
    let other_sig = other.split('.').nth(2).unwrap();
    parts[2] = other_sig;
    let bad_signature = parts.join(".");
    let none_header = b64(br#"{"alg":"none","typ":"JWT"}"#);
    let payload = good.split('.').nth(1).unwrap();
    let alg_none = format!("{none_header}.{payload}.");
    let alg_none_sig = format!("{none_header}.{payload}.c2ln");
    // Key confusion: an HS256 token "signed" with the RSA public key as the
    // secret, presented under the RS256 key's kid.
    let rsa_pub = std::fs::read("tests/fixtures/keys/rsa.pub").unwrap();
    let mut confused = jsonwebtoken::Header::new(Algorithm::HS256);
    confused.kid = Some("RS256".into());
    let confused = jsonwebtoken::encode(
        &confused,
        &claims("alice"),
        &jsonwebtoken::EncodingKey::from_secret(&rsa_pub),
    )
    .unwrap();
    let huge = rs(with(json!({"pad": "x".repeat(9000)})));
    let crit = {
        let h = b64(br#"{"alg":"RS256","kid":"RS256","crit":["http://x/y"],"http://x/y":1}"#);
        let msg = format!("{h}.{payload}");
        let key = tokens::encoding_key(Algorithm::RS256);
        let sig = jsonwebtoken::crypto::sign(msg.as_bytes(), &key, Algorithm::RS256).unwrap();
        format!("{msg}.{sig}")
    };

    let cases: Vec<(&str, String, i32, &str)> = vec![
        (
            "expired",
            rs(with(json!({"exp": now - 3600}))),
            401,
            "token_expired",
        ),
        (
            "not yet valid",
            rs(with(json!({"nbf": now + 3600}))),
            401,
            "token_not_yet_valid",
        ),
        (
            "issued in the future",
            rs(with(json!({"iat": now + 3600}))),
            401,
            "token_not_yet_valid",
        ),
        (
            "no exp",
            rs(json!({"sub": "a", "iss": "https://idp.test", "aud": "api"})),
            401,
            "missing_claim",
        ),
        (
            "wrong issuer",
            rs(with(json!({"iss": "https://evil.test"}))),
            401,
            "invalid_issuer",
        ),
        (
            "wrong audience",
            rs(with(json!({"aud": ["web", "other"]}))),
            401,
            "invalid_audience",
        ),
        ("bad signature", bad_signature, 401, "bad_signature"),
        (
            "alg none, empty signature",
            alg_none,
            401,
            "malformed_token",
        ),
        ("alg none", alg_none_sig, 401, "unsupported_algorithm"),
        ("key confusion", confused, 401, "algorithm_mismatch"),
        (
            "unknown kid",
            sign(Algorithm::RS256, Some("nope"), &claims("a")),
            401,
            "unknown_kid",
        ),
        ("oversized", huge, 401, "token_too_large"),
        ("crit", crit, 401, "unsupported_crit"),
        (
            "CR/LF in a claim",
            rs(with(json!({"email": "a@b.c\r\nx-user-id: root"}))),
            401,
            "invalid_claim",
        ),
        (
            "no sub",
            rs(with(json!({"sub": null}))),
            401,
            "missing_claim",
        ),
        ("garbage", "not-a-jwt".into(), 401, "malformed_token"),
    ];
    for (name, token, want_status, want_reason) in cases {
        let resp = ward.check(&[("authorization", &bearer(&token))]).await;
        assert_eq!(status(&resp), want_status, "{name}");
        assert_eq!(reason(&resp), want_reason, "{name}");
        assert_ne!(
            resp.status.as_ref().unwrap().code,
            0,
            "{name}: grpc status must not be OK"
        );
        let HttpResponse::DeniedResponse(d) = resp.http_response.as_ref().unwrap() else {
            unreachable!()
        };
        let challenge = d
            .headers
            .iter()
            .filter_map(|h| h.header.as_ref())
            .find(|h| h.key == "www-authenticate")
            .map(|h| h.value.clone())
            .unwrap_or_default();
        assert!(
            challenge.contains("error=\"invalid_token\""),
            "{name}: {challenge}"
        );
        assert!(
            !d.body.contains(&token[..token.len().min(40)]),
            "{name}: body leaks the token"
        );
    }
}

#[tokio::test]
async fn malformed_requests_are_400_and_missing_credentials_401() {
    let ward = InProc::start(&config()).await;
    let token = sign(Algorithm::RS256, Some("RS256"), &claims("alice"));
    let two = format!("Bearer {token}, Bearer {token}");
    type Case<'a> = (Vec<(&'a str, &'a str)>, i32, &'a str, &'a str);
    let cases: Vec<Case> = vec![
        (vec![], 401, "missing_credential", "Bearer realm=\"ward\""),
        (
            vec![("authorization", "Basic YTpi")],
            400,
            "unsupported_scheme",
            "invalid_request",
        ),
        (
            vec![("authorization", "Bearer")],
            400,
            "malformed_authorization",
            "invalid_request",
        ),
        (
            vec![("authorization", &two)],
            400,
            "multiple_credentials",
            "invalid_request",
        ),
    ];
    for (headers, want_status, want_reason, want_challenge) in cases {
        let resp = ward.check(&headers).await;
        assert_eq!(status(&resp), want_status, "{want_reason}");
        assert_eq!(reason(&resp), want_reason);
        let HttpResponse::DeniedResponse(d) = resp.http_response.as_ref().unwrap() else {
            unreachable!()
        };
        let challenge = d
            .headers
            .iter()
            .filter_map(|h| h.header.as_ref())
            .find(|h| h.key == "www-authenticate");
        assert!(challenge.unwrap().value.contains(want_challenge));
    }
    // A CheckRequest without HTTP attributes is denied, not an error.
    let resp = ward
        .client
        .clone()
        .check(envoy_types::ext_authz::v3::pb::CheckRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status(&resp), 400);
    assert_eq!(reason(&resp), "malformed_request");
}

/// The few `CheckRequest` fields the next test sends, with strings as
/// bytes so that one can be what a C++ client may put there: not UTF-8.
mod raw {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Check {
        #[prost(message, optional, tag = "1")]
        pub attributes: Option<Attributes>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Attributes {
        #[prost(message, optional, tag = "4")]
        pub request: Option<Request>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Request {
        #[prost(message, optional, tag = "2")]
        pub http: Option<Http>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Http {
        #[prost(bytes = "vec", tag = "2")]
        pub method: Vec<u8>,
        #[prost(message, repeated, tag = "3")]
        pub headers: Vec<Entry>,
        #[prost(bytes = "vec", tag = "4")]
        pub path: Vec<u8>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Entry {
        #[prost(bytes = "vec", tag = "1")]
        pub key: Vec<u8>,
        #[prost(bytes = "vec", tag = "2")]
        pub value: Vec<u8>,
    }
}

#[tokio::test]
async fn a_header_that_is_not_utf8_is_a_malformed_request_not_an_error() {
    let ward = InProc::start(&config()).await;
    let token = sign(Algorithm::RS256, Some("RS256"), &claims("alice"));
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", ward.grpc_addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let check = |latin1: &[u8]| raw::Check {
        attributes: Some(raw::Attributes {
            request: Some(raw::Request {
                http: Some(raw::Http {
                    method: b"GET".to_vec(),
                    path: b"/api".to_vec(),
                    headers: vec![
                        raw::Entry {
                            key: b"authorization".to_vec(),
                            value: format!("Bearer {token}").into_bytes(),
                        },
                        raw::Entry {
                            key: b"x-name".to_vec(),
                            value: latin1.to_vec(),
                        },
                    ],
                }),
            }),
        }),
    };
    let send = |req: raw::Check| {
        let mut grpc = tonic::client::Grpc::new(channel.clone());
        async move {
            grpc.ready().await.unwrap();
            let path =
                http::uri::PathAndQuery::from_static("/envoy.service.auth.v3.Authorization/Check");
            let codec = tonic_prost::ProstCodec::<raw::Check, CheckResponse>::default();
            grpc.unary(tonic::Request::new(req), path, codec)
                .await
                .map(tonic::Response::into_inner)
        }
    };
    // The same request with the value as UTF-8 ("José") is allowed ...
    let ok = send(check("Jos\u{e9}".as_bytes())).await.unwrap();
    assert_eq!(status(&ok), 200, "{}", reason(&ok));
    // ... and as Latin-1 it is denied with 400, not answered with a gRPC
    // error (which Envoy would count as a failure of the authz server).
    let resp = send(check(b"Jos\xe9")).await.unwrap();
    assert_eq!(status(&resp), 400);
    assert_eq!(reason(&resp), "malformed_request");
}

#[tokio::test]
async fn forged_identity_headers_are_removed_but_never_ones_ward_sets() {
    let ward = InProc::start(&config()).await;
    let token = sign(Algorithm::ES256, Some("ES256"), &claims("alice"));
    let auth = bearer(&token);
    let resp = ward
        .check(&[
            ("authorization", &auth),
            ("x-user-id", "root"),
            ("x-user-admin", "true"),
            ("x_user_id", "root"),
            ("x-auth-method", "forged"),
            ("x-user-scopes", "admin"),
            ("accept", "*/*"),
        ])
        .await;
    let HttpResponse::OkResponse(ok) = resp.http_response.as_ref().unwrap() else {
        panic!("expected allow: {}", reason(&resp));
    };
    let mut removed = ok.headers_to_remove.clone();
    removed.sort();
    // x-user-scopes is not set (no scope claim), so the forged one goes.
    assert_eq!(removed, vec!["x-user-admin", "x-user-scopes", "x_user_id"]);
    assert_eq!(set_header(&resp, "x-user-id").as_deref(), Some("alice"));
    assert_eq!(set_header(&resp, "x-auth-method").as_deref(), Some("jwt"));
    for name in ["x-user-id", "x-auth-method"] {
        assert!(
            !ok.headers_to_remove.iter().any(|h| h == name),
            "{name} set and removed"
        );
    }
}

#[tokio::test]
async fn dynamic_metadata_names_the_user_and_method() {
    let ward = InProc::start(&config()).await;
    let token = sign(Algorithm::EdDSA, Some("EdDSA"), &claims("bob"));
    let resp = ward.check(&[("authorization", &bearer(&token))]).await;
    let md = resp.dynamic_metadata.expect("metadata on allow");
    let get = |k: &str| match md.fields.get(k).and_then(|v| v.kind.clone()) {
        Some(Kind::StringValue(s)) => s,
        other => panic!("{k}: {other:?}"),
    };
    assert_eq!(get("user_id"), "bob");
    assert_eq!(get("auth_method"), "jwt");
    let denied = ward.check(&[]).await;
    let md = denied.dynamic_metadata.expect("metadata on deny");
    assert!(matches!(
        md.fields.get("reason").and_then(|v| v.kind.clone()),
        Some(Kind::StringValue(s)) if s == "missing_credential"
    ));
}

async fn metric(ward: &InProc, name: &str) -> f64 {
    let resp = support::http::get(ward.admin_addr, "/metrics")
        .await
        .unwrap();
    resp.text()
        .lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn cache_hits_skip_verification_and_failures_are_not_cached() {
    let ward = InProc::start(&config()).await;
    let token = sign(Algorithm::RS256, Some("RS256"), &claims("carol"));
    for _ in 0..5 {
        let resp = ward.check(&[("authorization", &bearer(&token))]).await;
        assert_eq!(status(&resp), 200);
        assert_eq!(set_header(&resp, "x-user-id").as_deref(), Some("carol"));
    }
    assert_eq!(metric(&ward, "ward_jwt_verifications_total").await, 1.0);
    assert_eq!(
        metric(
            &ward,
            r#"ward_cache_requests_total{cache="token",result="hit"}"#
        )
        .await,
        4.0
    );
    let expired = sign(
        Algorithm::RS256,
        Some("RS256"),
        &json!({"sub": "x", "iss": "https://idp.test", "aud": "api", "exp": tokens::now() - 600}),
    );
    for _ in 0..3 {
        let resp = ward.check(&[("authorization", &bearer(&expired))]).await;
        assert_eq!(reason(&resp), "token_expired");
    }
    assert_eq!(metric(&ward, "ward_jwt_verifications_total").await, 4.0);
    assert_eq!(
        metric(
            &ward,
            r#"ward_check_total{decision="allow",method="jwt",reason="ok"}"#
        )
        .await,
        5.0
    );
    assert_eq!(
        metric(
            &ward,
            r#"ward_check_total{decision="deny",method="jwt",reason="token_expired"}"#
        )
        .await,
        3.0
    );
}

#[tokio::test]
async fn health_service_reports_serving() {
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_client::HealthClient;
    let ward = InProc::start(&config()).await;
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", ward.grpc_addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = HealthClient::new(channel);
    for service in ["", "envoy.service.auth.v3.Authorization"] {
        let resp = client
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(resp.status, 1, "{service:?} should be SERVING");
    }
    let healthz = support::http::get(ward.admin_addr, "/healthz")
        .await
        .unwrap();
    assert_eq!(healthz.status, 200);
    let readyz = support::http::get(ward.admin_addr, "/readyz")
        .await
        .unwrap();
    assert_eq!(readyz.status, 200);
    ward.shutdown().await;
}
