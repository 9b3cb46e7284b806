//! Identity tokens as a backend sees them: through a real Envoy (gRPC
//! and HTTP ext_authz, and the dynamic module) to an echo upstream, the
//! token ward signed arrives once, verifies with the JWKS ward serves on
//! its admin port (a generic JWT library, the way a backend would), and
//! names the caller; a client's forged copy never arrives, public routes
//! included; a key rotation keeps tokens signed before it valid until
//! they expire. docs/backends.md's Python snippet runs here too.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::envoy_module;
use crate::support;

use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, Validation, jwk::Jwk};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use support::authz::metric;
use support::echo::{Echo, header_values};
use support::envoy::{AuthzTarget, Envoy, EnvoyOptions};
use support::tokens::{claims, sign};
use support::ward::Ward;

const ISSUER: &str = "http://ward.test:9090";
const HEADER: &str = "x-ward-identity";

/// A new P-256 private key, PKCS#8 PEM, at `dir/name`.
fn key_file(dir: &Path, name: &str) -> PathBuf {
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
    let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
    let der = pair.to_pkcs8v1().unwrap();
    let body = base64::engine::general_purpose::STANDARD.encode(der.as_ref());
    let path = dir.join(name);
    std::fs::write(
        &path,
        format!("-----BEGIN PRIVATE KEY-----\n{body}\n-----END PRIVATE KEY-----\n"),
    )
    .unwrap();
    path
}

/// JWTs from the test issuer; `/api` sends an identity token for
/// `orders`; `/open` is public.
fn config(keys: &str, ttl: &str, extra: &str) -> String {
    format!(
        "log: {{format: text, level: info}}\n\
         {extra}\
         jwt:\n  issuers: [\"https://idp.test\"]\n  keys:\n    - {{kid: e1, alg: ES256, pem_file: {}/tests/fixtures/keys/ec256.pub}}\n\
         identity_token:\n  issuer: \"{ISSUER}\"\n  publish_lead: 1s\n  keys: {keys}\n\
         policies:\n  orders: {{identity_token: {{audience: orders, ttl: {ttl}}}}}\n\
         routes:\n  - {{prefix: /open, policy: public}}\n  - {{prefix: /api, policy: orders}}\n",
        env!("CARGO_MANIFEST_DIR")
    )
}

fn one_key(path: &Path) -> String {
    format!("[{{pem_file: \"{}\"}}]", path.display())
}

/// The JWKS and discovery document ward serves on its admin port.
async fn jwks(ward: &Ward) -> Value {
    let resp = support::http::get(ward.admin_addr, "/.well-known/jwks.json")
        .await
        .unwrap();
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.header("content-type"), Some("application/json"));
    resp.json()
}

/// Verifies `token` as a backend would: the key named by its `kid` in
/// the JWKS, ES256, `iss`, `aud` and `exp` checked. The claims, or why not.
fn verify(token: &str, jwks: &Value) -> Result<Value, String> {
    let header = jsonwebtoken::decode_header(token).map_err(|e| e.to_string())?;
    let jwk = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"].as_str() == header.kid.as_deref())
        .ok_or("kid not in the JWKS")?;
    let jwk: Jwk = serde_json::from_value(jwk.clone()).unwrap();
    let key = DecodingKey::from_jwk(&jwk).map_err(|e| e.to_string())?;
    let mut validation = Validation::new(Algorithm::ES256);
    validation.set_issuer(&[ISSUER]);
    validation.set_audience(&["orders"]);
    validation.leeway = 0;
    jsonwebtoken::decode::<Value>(token, &key, &validation)
        .map(|t| t.claims)
        .map_err(|e| e.to_string())
}

fn bearer(sub: &str) -> String {
    format!(
        "Bearer {}",
        sign(Algorithm::ES256, Some("e1"), &claims(sub))
    )
}

/// What the backend received of the last request.
fn last_seen(echo: &Echo) -> Value {
    echo.requests().pop().expect("reached the backend")
}

/// The one identity token the backend got.
fn token_seen(echo: &Echo) -> String {
    let seen = last_seen(echo);
    let values = header_values(&seen, HEADER);
    assert_eq!(values.len(), 1, "exactly one token: {seen}");
    values[0].clone()
}

/// A JWT with forged tokens beside it: ward's token arrives, verifies,
/// and names alice; a second check reuses it; on the public route the
/// forged copies are removed and none is added.
async fn backend_verifies(label: &str, envoy: &Envoy, echo: &Echo, jwks: &Value) {
    let auth = bearer("alice");
    let forged = [
        ("authorization", auth.as_str()),
        (HEADER, "forged.token.value"),
        ("x_ward_identity", "forged"),
    ];
    let resp = envoy.get("/api/orders", &forged).await;
    assert_eq!(resp.status, 200, "{label}: {}", resp.text());
    let token = token_seen(echo);
    assert!(
        header_values(&last_seen(echo), "x_ward_identity").is_empty(),
        "{label}: {}",
        last_seen(echo)
    );
    let claims = verify(&token, jwks).unwrap_or_else(|e| panic!("{label}: {e}: {token}"));
    assert_eq!(claims["sub"], "alice", "{label}");
    assert_eq!(claims["auth_method"], "jwt");
    assert_eq!(claims["roles"], serde_json::json!(["reader"]));
    let life = claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap();
    assert_eq!(life, 60, "{label}: the policy's ttl");
    // A cache hit: the same token, not a new signature.
    let resp = envoy.get("/api/orders", &[("authorization", &auth)]).await;
    assert_eq!(resp.status, 200);
    assert_eq!(token_seen(echo), token, "{label}: reused on a hit");
    // A public route: no token, the forged ones gone.
    let resp = envoy.get("/open/docs", &forged[1..]).await;
    assert_eq!(resp.status, 200, "{label}: {}", resp.text());
    let seen = last_seen(echo);
    for name in [HEADER, "x_ward_identity"] {
        assert!(header_values(&seen, name).is_empty(), "{label}: {seen}");
    }
    // A forged token alone is no credential.
    let resp = envoy.get("/api/orders", &forged[1..2]).await;
    assert_eq!(resp.status, 401, "{label}");
}

#[tokio::test]
async fn the_backend_verifies_the_token_with_wards_jwks_and_never_gets_a_forged_one() {
    let dir = tempfile::tempdir().unwrap();
    let key = key_file(dir.path(), "identity.pem");
    let yaml = config(&one_key(&key), "60s", "");
    let echo = Echo::start().await;
    let ward = Ward::start(&yaml).await;
    let keys = jwks(&ward).await;
    let discovery = support::http::get(ward.admin_addr, "/.well-known/openid-configuration")
        .await
        .unwrap()
        .json();
    assert_eq!(discovery["issuer"], ISSUER);
    assert_eq!(
        discovery["jwks_uri"],
        format!("{ISSUER}/.well-known/jwks.json")
    );
    for target in [
        AuthzTarget::Tcp(ward.grpc_addr),
        AuthzTarget::Http(ward.http_addr),
    ] {
        let label = format!("{target:?}");
        let envoy = Envoy::start_with(EnvoyOptions::new(echo.addr, target)).await;
        backend_verifies(&label, &envoy, &echo, &keys).await;
    }
    // The module inside Envoy signs with the same key file: the JWKS of
    // a `ward serve` reading the same Secret verifies its tokens.
    let envoy = envoy_module::start(&yaml, &echo).await;
    backend_verifies("module", &envoy, &echo, &keys).await;
}

/// The Python that has docs/backends.md's libraries: `WARD_BACKENDS_PYTHON`,
/// else `.venv-backends/` (scripts/test.sh installs it there).
fn backends_python() -> PathBuf {
    let python = std::env::var_os("WARD_BACKENDS_PYTHON").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv-backends/bin/python"),
        PathBuf::from,
    );
    assert!(
        python.exists(),
        "{} is missing: run scripts/test.sh, which installs PyJWT and cryptography there",
        python.display()
    );
    python
}

/// The snippet of docs/backends.md marked `name`, fenced as `lang`, as a
/// reader copies it.
fn snippet(name: &str, lang: &str) -> String {
    let doc =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/backends.md"))
            .unwrap();
    let after = doc
        .split(&format!("<!-- snippet: {name}"))
        .nth(1)
        .expect("the marked snippet");
    let code = after.split(&format!("```{lang}\n")).nth(1).unwrap();
    code.split("\n```").next().unwrap().to_string()
}

fn python_snippet() -> String {
    snippet("python", "python")
}

/// Runs the Node.js snippet's `verifyIdentity` on `token` with the `jose`
/// that scripts/test.sh installs (oidc-provider's own dependency, under
/// `WARD_OIDC_PROVIDER_DIR`): the claims, or the error's code.
fn node_verify(issuer: &str, audience: &str, token: &str) -> Result<Value, String> {
    let modules = std::env::var_os("WARD_OIDC_PROVIDER_DIR")
        .map_or_else(
            || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".tools/oidc-provider"),
            PathBuf::from,
        )
        .join("node_modules");
    assert!(
        modules.join("jose").exists(),
        "{} is missing: run scripts/test.sh, which installs oidc-provider (npm) and its jose there",
        modules.display()
    );
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(&modules, dir.path().join("node_modules")).unwrap();
    std::fs::write(dir.path().join("snippet.mjs"), snippet("node", "js")).unwrap();
    let runner = "import { verifyIdentity } from './snippet.mjs';\n\
        try { console.log(JSON.stringify(await verifyIdentity(process.argv[2]))); }\n\
        catch (e) { console.error(e.code ?? e.name); process.exit(1); }\n";
    std::fs::write(dir.path().join("run.mjs"), runner).unwrap();
    let mut node = std::process::Command::new("node");
    node.arg(dir.path().join("run.mjs"));
    run_snippet(node, issuer, audience, token)
}

/// Runs a snippet's program with `token` as its argument and the
/// snippet's two settings in its environment: the claims it printed as
/// JSON, or what it wrote to stderr.
fn run_snippet(
    mut command: std::process::Command,
    issuer: &str,
    audience: &str,
    token: &str,
) -> Result<Value, String> {
    let out = command
        .arg(token)
        .env("WARD_ISSUER", issuer)
        .env("AUDIENCE", audience)
        .output()
        .unwrap();
    if out.status.success() {
        Ok(serde_json::from_slice(&out.stdout).unwrap())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// Runs the snippet's `verify_identity` on `token`: the claims, or the
/// exception's text.
fn python_verify(issuer: &str, audience: &str, token: &str) -> Result<Value, String> {
    let program = format!(
        "{}\nimport json, sys\nprint(json.dumps(verify_identity(sys.argv[1])))\n",
        python_snippet()
    );
    let mut python = std::process::Command::new(backends_python());
    python.arg("-c").arg(program);
    run_snippet(python, issuer, audience, token)
}

#[tokio::test]
async fn the_python_and_node_snippets_of_the_backend_docs_verify_a_real_wards_token() {
    let dir = tempfile::tempdir().unwrap();
    let key = key_file(dir.path(), "identity.pem");
    let reload = "reload: {watch_interval: 1h}\n";
    let ward = Ward::start(&config(&one_key(&key), "60s", reload)).await;
    // The issuer is the URL the admin port is reached under: known once
    // ward has its port.
    let issuer = format!("http://{}", ward.admin_addr);
    edit_config(&ward, |doc| {
        doc["identity_token"]["issuer"] = issuer.clone().into();
    });
    reloaded(&ward, 1.0).await;
    let auth = bearer("alice");
    let resp = support::http::send(
        ward.http_addr,
        "GET",
        "/api/orders",
        &[("authorization", &auth)],
        b"",
    )
    .await
    .unwrap();
    assert_eq!(resp.status, 200, "{}", resp.text());
    let token = resp.header(HEADER).unwrap().to_string();
    let claims = python_verify(&issuer, "orders", &token).unwrap();
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["aud"], "orders");
    assert_eq!(claims["iss"], issuer.as_str());
    // Another service's audience, a changed payload: refused.
    let err = python_verify(&issuer, "billing", &token).unwrap_err();
    assert!(err.contains("InvalidAudienceError"), "{err}");
    let mut parts: Vec<String> = token.split('.').map(str::to_string).collect();
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let payload = String::from_utf8(b64.decode(&parts[1]).unwrap()).unwrap();
    parts[1] = b64.encode(payload.replace("alice", "admin"));
    let err = python_verify(&issuer, "orders", &parts.join(".")).unwrap_err();
    assert!(err.contains("InvalidSignatureError"), "{err}");
    // The Node.js snippet, the same way.
    let claims = node_verify(&issuer, "orders", &token).unwrap();
    assert_eq!(
        (&claims["sub"], &claims["aud"]),
        (&"alice".into(), &"orders".into())
    );
    let err = node_verify(&issuer, "billing", &token).unwrap_err();
    assert!(err.contains("ERR_JWT_CLAIM_VALIDATION_FAILED"), "{err}");
    let err = node_verify(&issuer, "orders", &parts.join(".")).unwrap_err();
    assert!(
        err.contains("ERR_JWS_SIGNATURE_VERIFICATION_FAILED"),
        "{err}"
    );
}

/// Replaces `identity_token.keys` in ward's config file (the rest, its
/// listeners included, as written).
fn set_keys(ward: &Ward, keys: &str) {
    edit_config(ward, |doc| {
        doc["identity_token"]["keys"] = serde_yaml_ng::from_str(keys).unwrap();
    });
}

/// Edits ward's config file in place (a new file renamed over it).
fn edit_config(ward: &Ward, edit: impl FnOnce(&mut serde_yaml_ng::Value)) {
    let path = ward.config_path();
    let text = std::fs::read_to_string(path).unwrap();
    let mut doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).unwrap();
    edit(&mut doc);
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, serde_yaml_ng::to_string(&doc).unwrap()).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

async fn reloaded(ward: &Ward, n: f64) {
    ward.signal("HUP");
    let started = Instant::now();
    let labels = [("result", "success")];
    while metric(ward.admin_addr, "ward_config_reload_total", &labels).await < n {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{}",
            ward.logs()
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn kid(token: &str) -> String {
    jsonwebtoken::decode_header(token).unwrap().kid.unwrap()
}

/// Polls (bounded) until the backend gets a token signed by `want`.
async fn signed_by(envoy: &Envoy, echo: &Echo, auth: &str, want: &str) -> String {
    let started = Instant::now();
    loop {
        let resp = envoy.get("/api/orders", &[("authorization", auth)]).await;
        assert_eq!(resp.status, 200, "{}", resp.text());
        let token = token_seen(echo);
        if kid(&token) == want {
            return token;
        }
        assert!(started.elapsed() < Duration::from_secs(8), "never {want}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_rotation_keeps_tokens_signed_before_it_valid_until_they_expire() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (key_file(dir.path(), "a.pem"), key_file(dir.path(), "b.pem"));
    let reload = "reload: {watch_interval: 1h}\n";
    let echo = Echo::start().await;
    let ward = Ward::start(&config(&one_key(&a), "8s", reload)).await;
    let envoy = Envoy::start(echo.addr, ward.grpc_addr).await;
    let auth = bearer("alice");
    assert_eq!(
        envoy
            .get("/api/x", &[("authorization", &auth)])
            .await
            .status,
        200
    );
    let old = token_seen(&echo);
    let kid_a = kid(&old);

    // b joins: published at once, signing only after publish_lead (1 s).
    let both = format!(
        "[{{pem_file: \"{}\"}}, {{pem_file: \"{}\"}}]",
        a.display(),
        b.display()
    );
    set_keys(&ward, &both);
    reloaded(&ward, 1.0).await;
    let published = jwks(&ward).await;
    verify(&old, &published).unwrap();
    assert_eq!(published["keys"].as_array().unwrap().len(), 2);
    let kid_b = published["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_string())
        .find(|k| *k != kid_a)
        .unwrap();
    assert_eq!(
        envoy
            .get("/api/x", &[("authorization", &auth)])
            .await
            .status,
        200
    );
    assert_eq!(
        kid(&token_seen(&echo)),
        kid_a,
        "b does not sign before its lead"
    );
    let new = signed_by(&envoy, &echo, &auth, &kid_b).await;

    // a leaves the Secret: still published while its tokens may live.
    set_keys(&ward, &one_key(&b));
    reloaded(&ward, 2.0).await;
    let left = Instant::now();
    let after = jwks(&ward).await;
    verify(&new, &after).unwrap();
    verify(&old, &after).expect("signed by a before it left, and not expired yet");
    // Past the longest token lifetime (8 s), a is gone.
    tokio::time::sleep(Duration::from_secs(9).saturating_sub(left.elapsed())).await;
    assert!(verify(&old, &jwks(&ward).await).is_err());
    let later = jwks(&ward).await;
    let kids: Vec<&str> = later["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert_eq!(kids, [kid_b.as_str()]);
}
