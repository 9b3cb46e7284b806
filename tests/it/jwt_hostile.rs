//! JWTs built by a hostile client, through a real Envoy to a real echo
//! upstream: duplicate JSON members, `typ` values that are not a JWT, and
//! RSA keys too weak to trust (static keys refused by `check-config`,
//! JWKS entries skipped and counted).
//!
//! The tokens are assembled by hand (header and payload bytes exactly as
//! written) and signed with the fixture keys, so the signature is always
//! good: whatever ward refuses, it refuses for the JSON, the `typ` or the
//! key, never for a bad signature.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{Value, json};
use support::cli::ward as ward_cli;
use support::echo::{Echo, header_values};
use support::envoy::Envoy;
use support::tokens::{self, b64, encoding_key};
use support::ward::Ward;

const POLICIES: &str = "policies:\n  admins:\n    roles: {any_of: [admin]}\nroutes:\n  - {name: admin, prefix: /admin, policy: admins}\n  - {name: api, prefix: /}\n";

/// `header.payload.signature` from raw JSON text, signed with `key`.
fn raw_token(alg: Algorithm, key: &EncodingKey, header: &str, payload: &str) -> String {
    let message = format!("{}.{}", b64(header.as_bytes()), b64(payload.as_bytes()));
    let signature = jsonwebtoken::crypto::sign(message.as_bytes(), key, alg).unwrap();
    format!("{message}.{signature}")
}

/// An RS256 token for kid `r1` from raw header and payload text.
fn rs256(header: &str, payload: &str) -> String {
    raw_token(
        Algorithm::RS256,
        &encoding_key(Algorithm::RS256),
        header,
        payload,
    )
}

fn exp() -> u64 {
    tokens::now() + 3600
}

/// `(status, reason, x-user-id seen by the backend)` for `path`.
async fn ask(envoy: &Envoy, path: &str, token: &str) -> (u16, String, Vec<String>) {
    let auth = format!("Bearer {token}");
    let resp = envoy.get(path, &[("authorization", &auth)]).await;
    if resp.status == 200 {
        let seen = resp.json();
        return (200, "ok".into(), header_values(&seen, "x-user-id"));
    }
    let reason = resp.json()["reason"].as_str().unwrap_or("?").to_owned();
    (resp.status, reason, Vec::new())
}

#[tokio::test]
async fn duplicate_members_anywhere_are_malformed_tokens() {
    let echo = Echo::start().await;
    let config = format!(
        "log: {{format: text, level: info}}\njwt:\n  keys:\n    - {{kid: r1, alg: RS256, pem_file: tests/fixtures/keys/rsa.pub}}\n{POLICIES}"
    );
    let ward = Ward::start(&config).await;
    let envoy = Envoy::start(echo.addr, ward.grpc_addr).await;
    let h = r#"{"alg":"RS256","kid":"r1"}"#;
    let e = exp();

    // The hand-built signer is right: a clean token passes.
    let clean = rs256(
        h,
        &format!(r#"{{"sub":"alice","roles":"admin","exp":{e}}}"#),
    );
    assert_eq!(
        ask(&envoy, "/admin", &clean).await,
        (200, "ok".into(), vec!["alice".into()])
    );

    let hostile: Vec<(&str, &str, String, String)> = vec![
        (
            "payload: second sub",
            "/api",
            h.into(),
            format!(r#"{{"sub":"alice","sub":"admin","exp":{e}}}"#),
        ),
        (
            "payload: second roles",
            "/admin",
            h.into(),
            format!(r#"{{"sub":"alice","roles":"user","roles":"admin","exp":{e}}}"#),
        ),
        (
            "payload: expired first exp",
            "/api",
            h.into(),
            format!(r#"{{"sub":"alice","exp":1,"exp":{e}}}"#),
        ),
        (
            "payload: nested",
            "/api",
            h.into(),
            format!(r#"{{"sub":"alice","exp":{e},"ext":{{"a":[{{"b":1,"b":2}}]}}}}"#),
        ),
        (
            "header: second typ",
            "/api",
            r#"{"alg":"RS256","kid":"r1","typ":"JWT","typ":"JWT"}"#.into(),
            format!(r#"{{"sub":"alice","exp":{e}}}"#),
        ),
        (
            "header: unknown member twice",
            "/api",
            r#"{"alg":"RS256","kid":"r1","x5t":"a","x5t":"b"}"#.into(),
            format!(r#"{{"sub":"alice","exp":{e}}}"#),
        ),
    ];
    for (name, path, header, payload) in hostile {
        let token = rs256(&header, &payload);
        assert_eq!(
            ask(&envoy, path, &token).await,
            (401, "malformed_token".into(), vec![]),
            "{name}"
        );
    }
    assert_eq!(echo.hits(), 1, "only the clean token reached the backend");
}

#[tokio::test]
async fn typ_must_be_a_jwt_media_type_accepted_by_the_verifying_key() {
    let echo = Echo::start().await;
    // Global list: JWT only. e1 overrides it with access tokens only.
    let config = "log: {format: text, level: info}\njwt:\n  allowed_types: [JWT]\n  keys:\n    - {kid: r1, alg: RS256, pem_file: tests/fixtures/keys/rsa.pub}\n    - {kid: e1, alg: ES256, pem_file: tests/fixtures/keys/ec256.pub, allowed_types: [application/at+jwt]}\n";
    let ward = Ward::start(config).await;
    let envoy = Envoy::start(echo.addr, ward.grpc_addr).await;
    let payload = format!(r#"{{"sub":"alice","exp":{}}}"#, exp());
    let es256 = |header: &str| {
        raw_token(
            Algorithm::ES256,
            &encoding_key(Algorithm::ES256),
            header,
            &payload,
        )
    };
    let ok = (200, "ok".to_owned(), vec!["alice".to_owned()]);
    let refused = (401, "unsupported_typ".to_owned(), vec![]);
    let malformed = (401, "malformed_token".to_owned(), vec![]);
    let cases = [
        (r#"{"alg":"RS256","kid":"r1"}"#, "r1", &ok),
        (r#"{"alg":"RS256","kid":"r1","typ":"JWT"}"#, "r1", &ok),
        (r#"{"alg":"RS256","kid":"r1","typ":"jwt"}"#, "r1", &ok),
        (
            r#"{"alg":"RS256","kid":"r1","typ":"application/JWT"}"#,
            "r1",
            &ok,
        ),
        (r#"{"alg":"RS256","kid":"r1","typ":"JWE"}"#, "r1", &refused),
        (
            r#"{"alg":"RS256","kid":"r1","typ":"at+jwt"}"#,
            "r1",
            &refused,
        ),
        (
            r#"{"alg":"RS256","kid":"r1","typ":"text/jwt"}"#,
            "r1",
            &refused,
        ),
        (r#"{"alg":"RS256","kid":"r1","typ":""}"#, "r1", &refused),
        (r#"{"alg":"RS256","kid":"r1","typ":7}"#, "r1", &malformed),
        (r#"{"alg":"RS256","kid":"r1","typ":null}"#, "r1", &malformed),
        (r#"{"alg":"ES256","kid":"e1"}"#, "e1", &ok),
        (r#"{"alg":"ES256","kid":"e1","typ":"at+JWT"}"#, "e1", &ok),
        (
            r#"{"alg":"ES256","kid":"e1","typ":"application/at+jwt"}"#,
            "e1",
            &ok,
        ),
        (r#"{"alg":"ES256","kid":"e1","typ":"JWT"}"#, "e1", &refused),
    ];
    for (header, kid, want) in cases {
        let token = if kid == "r1" {
            rs256(header, &payload)
        } else {
            es256(header)
        };
        assert_eq!(&ask(&envoy, "/api", &token).await, want, "{header}");
    }
}

/// The JWKS entry for the fixture RSA public key `file`, with `kid`: its
/// modulus read by `openssl`, which (unlike the test's own signer) still
/// handles a 1024-bit key.
fn rsa_jwk(file: &str, kid: &str) -> Value {
    let out = openssl(&["rsa", "-pubin", "-in", file, "-noout", "-modulus"], b"");
    let text = String::from_utf8(out).unwrap();
    let modulus = hex::decode(text.trim().trim_start_matches("Modulus=")).unwrap();
    json!({"kty": "RSA", "kid": kid, "alg": "RS256", "n": b64(&modulus), "e": "AQAB"})
}

/// Runs `openssl ARGS` with `input` on stdin; its stdout.
fn openssl(args: &[&str], input: &[u8]) -> Vec<u8> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new("openssl")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("openssl is needed for 1024-bit RSA test keys");
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "openssl {args:?} failed");
    out.stdout
}

/// An RS256 token signed by `openssl` with the private key `file`.
fn openssl_rs256(file: &str, header: &str, payload: &str) -> String {
    let message = format!("{}.{}", b64(header.as_bytes()), b64(payload.as_bytes()));
    let signature = openssl(&["dgst", "-sha256", "-sign", file], message.as_bytes());
    format!("{message}.{}", b64(&signature))
}

/// The value of a Prometheus sample line starting with `name` (labels
/// included), or 0.
fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

const WEAK_PUB: &str = "tests/fixtures/keys/rsa1024.pub";
const WEAK_KEY: &str = "tests/fixtures/keys/rsa1024.key";
const STRONG_PUB: &str = "tests/fixtures/keys/rsa.pub";

#[tokio::test]
async fn a_weak_rsa_jwks_key_is_skipped_counted_and_never_used() {
    let weak = rsa_jwk(WEAK_PUB, "weak");
    let weak_n = weak["n"].as_str().unwrap().to_owned();
    let jwks = json!({"keys": [weak, rsa_jwk(STRONG_PUB, "strong")]});
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jwks.json");
    std::fs::write(&path, jwks.to_string()).unwrap();

    let echo = Echo::start().await;
    let config = format!(
        "log: {{format: text, level: info}}\njwt:\n  jwks:\n    - {{file: \"{}\"}}\n",
        path.display()
    );
    let ward = Ward::start(&config).await;
    let envoy = Envoy::start(echo.addr, ward.grpc_addr).await;
    let payload = format!(r#"{{"sub":"alice","exp":{}}}"#, exp());
    let strong = rs256(r#"{"alg":"RS256","kid":"strong"}"#, &payload);
    let weak = openssl_rs256(WEAK_KEY, r#"{"alg":"RS256","kid":"weak"}"#, &payload);
    // Control: the same bytes signed with the strong key pass.
    let strong_by_openssl = openssl_rs256(
        "tests/fixtures/keys/rsa.key",
        r#"{"alg":"RS256","kid":"strong"}"#,
        &payload,
    );
    assert_eq!(ask(&envoy, "/api", &strong_by_openssl).await.0, 200);
    assert_eq!(
        ask(&envoy, "/api", &strong).await,
        (200, "ok".into(), vec!["alice".into()])
    );
    assert_eq!(
        ask(&envoy, "/api", &weak).await,
        (401, "unknown_kid".into(), vec![])
    );

    let metrics = support::http::get(ward.admin_addr, "/metrics")
        .await
        .unwrap()
        .text();
    let skipped = metric(
        &metrics,
        "ward_jwks_keys_skipped_total{reason=\"weak_rsa\"}",
    );
    assert!(skipped >= 1.0, "weak key not counted:\n{metrics}");
    assert_eq!(metric(&metrics, "ward_jwks_keys "), 1.0, "{metrics}");
    let logs = ward.logs();
    assert!(
        logs.lines()
            .any(|l| l.contains("WARN") && l.contains("weak") && l.contains("1024")),
        "no warning naming the weak kid:\n{logs}"
    );
    assert!(!logs.contains(&weak_n[..40]), "key material was logged");
}

#[test]
fn check_config_refuses_weak_rsa_keys_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let weak_pem = std::fs::read_to_string("tests/fixtures/keys/rsa1024.pub").unwrap();
    let inline = weak_pem.replace('\n', "\n        ");
    let yaml = format!(
        "jwt:\n  keys:\n    - {{kid: ok, alg: RS256, pem_file: tests/fixtures/keys/rsa.pub}}\n    - {{kid: spki, alg: RS256, pem_file: tests/fixtures/keys/rsa1024.pub}}\n    - {{kid: pkcs1, alg: PS256, pem_file: tests/fixtures/keys/rsa1024.pkcs1.pub}}\n    - kid: inline\n      alg: RS512\n      pem: |\n        {inline}\n"
    );
    let path = dir.path().join("ward.yaml");
    std::fs::write(&path, yaml).unwrap();
    let (ok, text) = ward_cli(&["check-config", path.to_str().unwrap()]);
    assert!(!ok, "{text}");
    for field in [
        "jwt.keys[1].pem_file",
        "jwt.keys[2].pem_file",
        "jwt.keys[3].pem",
    ] {
        let line = text.lines().find(|l| l.contains(field));
        let line = line.unwrap_or_else(|| panic!("no problem for {field}: {text}"));
        assert!(line.contains("1024") && line.contains("2048"), "{line}");
    }
    assert!(
        !text.contains("jwt.keys[0]"),
        "the 2048-bit key is fine: {text}"
    );

    let strong = dir.path().join("strong.yaml");
    std::fs::write(
        &strong,
        "jwt: {keys: [{alg: RS256, pem_file: tests/fixtures/keys/rsa.pkcs1.pub}]}\n",
    )
    .unwrap();
    let (ok, text) = ward_cli(&["check-config", strong.to_str().unwrap()]);
    assert!(ok, "a 2048-bit PKCS#1 key is fine: {text}");
}

#[test]
fn check_config_names_bad_allowed_types() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ward.yaml");
    std::fs::write(
        &path,
        "jwt:\n  allowed_types: [JWT, \"\"]\n  keys:\n    - {alg: RS256, pem_file: tests/fixtures/keys/rsa.pub, allowed_types: [\"at jwt\"]}\n  jwks:\n    - {url: \"https://idp.test/jwks\", allowed_types: [\"\"]}\n",
    )
    .unwrap();
    let (ok, text) = ward_cli(&["check-config", path.to_str().unwrap()]);
    assert!(!ok, "{text}");
    for field in [
        "jwt.allowed_types[1]",
        "jwt.keys[0].allowed_types[0]",
        "jwt.jwks[0].allowed_types[0]",
    ] {
        assert!(text.contains(field), "missing {field}: {text}");
    }
}
