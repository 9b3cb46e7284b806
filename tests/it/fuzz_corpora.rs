//! The fuzz targets' checked-in inputs, replayed on stable: every file of
//! `fuzz/seeds/<target>/` and `fuzz/regressions/<target>/` goes through the
//! same harness as `cargo fuzz run <target>` (`ward::fuzzing`), so a
//! crash once found and minimised stays fixed without a nightly toolchain.
//!
//! The seeds are real inputs built by `write_seed_corpora` below (ignored;
//! run it to rebuild them after a format change):
//!
//! ```text
//! cargo test --test it -- --ignored fuzz_corpora::write_seed_corpora
//! ```

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// The files of `fuzz/<kind>/<target>/`, sorted (none if it is missing).
fn inputs(kind: &str, target: &str) -> Vec<PathBuf> {
    let Ok(dir) = std::fs::read_dir(fuzz_dir().join(kind).join(target)) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = dir
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file() && !p.ends_with(".gitkeep"))
        .collect();
    files.sort();
    files
}

fn harness(target: &str) -> ward::fuzzing::Harness {
    ward::fuzzing::TARGETS
        .iter()
        .find(|(name, _)| *name == target)
        .map(|(_, f)| *f)
        .unwrap_or_else(|| panic!("no fuzz target {target}"))
}

/// Runs `files` through the harness; the names of those that panic.
fn failures(target: &str, files: &[PathBuf]) -> Vec<String> {
    let run = harness(target);
    files
        .iter()
        .filter(|file| {
            let data = std::fs::read(file).unwrap();
            catch_unwind(AssertUnwindSafe(|| run(&data))).is_err()
        })
        .map(|file| file.display().to_string())
        .collect()
}

fn replay(target: &str) {
    let seeds = inputs("seeds", target);
    assert!(seeds.len() >= 5, "{target}: only {} seeds", seeds.len());
    let files = [seeds, inputs("regressions", target)].concat();
    let failed = failures(target, &files);
    assert!(failed.is_empty(), "{target}: inputs that fail: {failed:#?}");
}

#[test]
fn every_target_has_seeds_and_a_replay() {
    for (target, _) in ward::fuzzing::TARGETS {
        assert!(
            fuzz_dir()
                .join("fuzz_targets")
                .join(format!("{target}.rs"))
                .is_file(),
            "{target}: no fuzz target"
        );
        assert!(!inputs("seeds", target).is_empty(), "{target}: no seeds");
    }
}

#[test]
fn replay_check_request() {
    replay("check_request");
}

#[test]
fn replay_jws() {
    replay("jws");
}

#[test]
fn replay_path() {
    replay("path");
}

#[test]
fn replay_credentials() {
    replay("credentials");
}

#[test]
fn replay_formats() {
    replay("formats");
}

#[test]
fn replay_config() {
    replay("config");
}

#[test]
fn replay_workload() {
    replay("workload");
}

/// Rebuilds `fuzz/seeds/` from real inputs.
#[test]
#[ignore = "writes fuzz/seeds/; run by hand after a format change"]
fn write_seed_corpora() {
    for (target, files) in [
        ("check_request", seeds::check_requests()),
        ("jws", seeds::tokens()),
        ("path", seeds::paths()),
        ("credentials", seeds::header_lists()),
        ("formats", seeds::formats()),
        ("config", seeds::configs()),
        ("workload", seeds::workload()),
    ] {
        let dir = fuzz_dir().join("seeds").join(target);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for (name, bytes) in files {
            std::fs::write(dir.join(name), bytes).unwrap();
        }
    }
}

/// Real inputs for each target, named after what they are.
mod seeds {
    use super::support::tokens;
    use envoy_types::ext_authz::v3::pb::CheckRequest;
    use envoy_types::pb::envoy::config::core::v3 as core;
    use envoy_types::pb::envoy::service::auth::v3::AttributeContext;
    use envoy_types::pb::envoy::service::auth::v3::attribute_context as ctx;
    use jsonwebtoken::{Algorithm, EncodingKey, Header};
    use prost::Message;
    use serde_json::json;

    type Files = Vec<(String, Vec<u8>)>;

    fn file(name: &str, bytes: impl Into<Vec<u8>>) -> (String, Vec<u8>) {
        (name.to_string(), bytes.into())
    }

    fn peer(address: core::address::Address) -> ctx::Peer {
        ctx::Peer {
            address: Some(core::Address {
                address: Some(address),
            }),
            principal: "spiffe://cluster.local/ns/a/sa/b".into(),
            ..Default::default()
        }
    }

    fn socket(ip: &str) -> core::address::Address {
        core::address::Address::SocketAddress(core::SocketAddress {
            address: ip.into(),
            port_specifier: Some(core::socket_address::PortSpecifier::PortValue(443)),
            ..Default::default()
        })
    }

    /// A request as Envoy sends it, with `headers` (or none).
    fn request(headers: &[(&str, &str)], source: Option<&str>) -> CheckRequest {
        CheckRequest {
            attributes: Some(AttributeContext {
                source: source.map(|ip| peer(socket(ip))),
                destination: Some(peer(socket("10.0.0.1"))),
                request: Some(ctx::Request {
                    time: Some(Default::default()),
                    http: Some(ctx::HttpRequest {
                        id: "1234".into(),
                        method: "GET".into(),
                        headers: headers
                            .iter()
                            .map(|(k, v)| (k.to_string(), v.to_string()))
                            .collect(),
                        path: "/v1/orders?x=1".into(),
                        host: "api.example.com".into(),
                        scheme: "https".into(),
                        protocol: "HTTP/2".into(),
                        ..Default::default()
                    }),
                }),
                ..Default::default()
            }),
        }
    }

    fn http(req: &mut CheckRequest) -> &mut ctx::HttpRequest {
        let r = req.attributes.as_mut().unwrap().request.as_mut().unwrap();
        r.http.as_mut().unwrap()
    }

    pub fn check_requests() -> Files {
        let browser = [
            (":authority", "api.example.com"),
            (":method", "GET"),
            (":path", "/v1/orders?x=1"),
            ("cookie", "theme=dark; session_id=Zm9vYmFyYmF6cXV4cXV1eA"),
            ("accept", "text/html"),
            ("x-request-id", "7f1c0b1e-3c1d-4a8e-9a51-2f7d3c6b9e10"),
        ];
        let api = [
            ("authorization", "Bearer eyJhbGciOiJIUzI1NiJ9.e30.c2ln"),
            ("x-user-id", "forged"),
            ("x_user_roles", "admin"),
        ];
        let mut with_policy = request(&api, Some("203.0.113.7"));
        let attrs = with_policy.attributes.as_mut().unwrap();
        attrs.context_extensions = [("ward_policy", "admin"), ("team", "orders")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut raw = request(&[], Some("2001:db8::7"));
        http(&mut raw).header_map = Some(core::HeaderMap {
            headers: vec![
                core::HeaderValue {
                    key: "Cookie".into(),
                    raw_value: b"a=1".to_vec(),
                    ..Default::default()
                },
                core::HeaderValue {
                    key: "cookie".into(),
                    value: "session_id=Zm9vYmFyYmF6cXV4cXV1eA".into(),
                    ..Default::default()
                },
                core::HeaderValue {
                    key: "x-bin".into(),
                    raw_value: vec![b'o', 0xff, b'k'],
                    ..Default::default()
                },
            ],
        });
        let mut pipe = request(&api, None);
        pipe.attributes.as_mut().unwrap().source =
            Some(peer(core::address::Address::Pipe(core::Pipe {
                path: "/run/envoy.sock".into(),
                mode: 0,
            })));
        let mut no_http = request(&[], None);
        no_http.attributes.as_mut().unwrap().request = None;
        let browser_req = request(&browser, Some("192.0.2.1")).encode_to_vec();
        let api_req = request(&api, Some("198.51.100.2")).encode_to_vec();
        vec![
            file("browser.pb", browser_req.clone()),
            file("api.pb", api_req.clone()),
            file("ward-policy-extension.pb", with_policy.encode_to_vec()),
            file("raw-header-map.pb", raw.encode_to_vec()),
            file("pipe-source.pb", pipe.encode_to_vec()),
            file("no-http-attributes.pb", no_http.encode_to_vec()),
            file("two-messages-merged.pb", [browser_req, api_req].concat()),
            file("empty.pb", Vec::new()),
        ]
    }

    fn hmac(
        alg: Algorithm,
        kid: Option<&str>,
        secret: &[u8],
        claims: &serde_json::Value,
    ) -> String {
        let mut header = Header::new(alg);
        header.kid = kid.map(str::to_string);
        jsonwebtoken::encode(&header, claims, &EncodingKey::from_secret(secret)).unwrap()
    }

    fn raw(mode: u8, text: &str) -> Vec<u8> {
        [&[mode][..], text.as_bytes()].concat()
    }

    pub fn tokens() -> Files {
        const NOW: u64 = ward::fuzzing::JWS_NOW;
        let good = json!({"sub": "alice", "exp": NOW + 600, "iat": NOW - 10,
            "iss": "https://idp.example", "aud": ["api"], "roles": ["admin"]});
        let expired = json!({"sub": "alice", "exp": NOW - 1});
        let hs256 = hmac(Algorithm::HS256, Some("hs256"), &[0x25; 32], &good);
        let no_kid = hmac(Algorithm::HS256, None, &[0x00; 32], &good);
        let es256 = tokens::sign(Algorithm::ES256, Some("ec256"), &good);
        let structured = |mode: u8, key: u8, header: &str, payload: &str| {
            [
                &[mode, key][..],
                header.as_bytes(),
                b"\n",
                payload.as_bytes(),
            ]
            .concat()
        };
        let claims = format!(
            r#"{{"sub":"alice","exp":{},"nbf":{},"iss":"https://idp.example","aud":"api"}}"#,
            NOW + 600,
            NOW - 60
        );
        let jwks = json!({"keys": [
            tokens::jwk(Algorithm::RS256, "r1"),
            tokens::jwk(Algorithm::ES256, "e1"),
            tokens::jwk(Algorithm::EdDSA, "d1"),
            {"kty": "oct", "k": "c2VjcmV0", "alg": "HS256"},
            {"kty": "RSA", "use": "enc", "n": "AQAB", "e": "AQAB"},
        ]});
        vec![
            file("raw-hs256.txt", raw(0, &hs256)),
            file("raw-hs256-strict.txt", raw(4, &hs256)),
            file("raw-no-kid.txt", raw(0, &no_kid)),
            file("raw-es256.txt", raw(4, &es256)),
            file(
                "raw-expired.txt",
                raw(
                    0,
                    &hmac(Algorithm::HS256, Some("hs256"), &[0x25; 32], &expired),
                ),
            ),
            file(
                "raw-alg-none.txt",
                raw(0, "eyJhbGciOiJub25lIn0.eyJzdWIiOiJhIn0."),
            ),
            file("raw-four-parts.txt", raw(0, "a.b.c.d")),
            file(
                "signed-hs256.json",
                structured(
                    1,
                    0,
                    r#"{"alg":"HS256","kid":"hs256","typ":"JWT"}"#,
                    &claims,
                ),
            ),
            file(
                "signed-hs384-strict.json",
                structured(5, 1, r#"{"alg":"HS384","kid":"hs384"}"#, &claims),
            ),
            file(
                "signed-hs512.json",
                structured(1, 2, r#"{"alg":"HS512","kid":"hs512"}"#, &claims),
            ),
            file(
                "signed-no-kid.json",
                structured(
                    1,
                    3,
                    r#"{"alg":"HS256"}"#,
                    r#"{"sub":"a","exp":1700000600.5}"#,
                ),
            ),
            file(
                "signed-crit.json",
                structured(
                    1,
                    0,
                    r#"{"alg":"HS256","kid":"hs256","crit":["exp"]}"#,
                    &claims,
                ),
            ),
            file(
                "signed-duplicate-alg.json",
                structured(
                    1,
                    0,
                    r#"{"alg":"HS256","alg":"none","kid":"hs256"}"#,
                    &claims,
                ),
            ),
            file(
                "signed-not-an-object.json",
                structured(1, 0, r#"{"alg":"HS256","kid":"hs256"}"#, "[1,2]"),
            ),
            file("jwks.json", raw(2, &jwks.to_string())),
        ]
    }

    pub fn paths() -> Files {
        [
            "/",
            "/admin",
            "/public/../admin",
            "//admin//",
            "/%61dmin",
            "/admin;jsessionid=1/x",
            "/a/./b/.",
            "/a%2Fb%5Cc",
            "/%2e%2e/admin",
            "/api\\v1\\orders",
            "/v1/orders?x=1#frag",
            "/%25252e",
            "/a%3Fb",
            "/caf%C3%A9/%E2%82%AC",
            "/a%C2%85b",
            "relative/path",
        ]
        .iter()
        .enumerate()
        .map(|(i, p)| file(&format!("path-{i:02}.txt"), *p))
        .collect()
    }

    pub fn header_lists() -> Files {
        let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln";
        let key = "ward_0123456789abcdefABCDEFGHIJKLMNOP012345";
        let sid = "Zm9vYmFyYmF6cXV4cXV1eA";
        let lists: [(&str, u8, String); 10] = [
            (
                "bearer",
                0,
                format!("authorization: Bearer {jwt}\nx-request-id: 1"),
            ),
            (
                "bearer-lowercase",
                0,
                format!("Authorization: bearer   {jwt}"),
            ),
            ("apikey-scheme", 0, format!("authorization: ApiKey {key}")),
            ("apikey-header", 0, format!("x-api-key: {key}\naccept: */*")),
            (
                "session-cookie",
                0,
                format!("cookie: theme=dark; session_id={sid}"),
            ),
            (
                "session-cookie-quoted",
                0,
                format!("cookie: session_id=\"{sid}\"\ncookie: a=b"),
            ),
            ("session-header", 0, format!("x-session-id: {sid}")),
            (
                "two-authorization",
                0,
                format!("authorization: Bearer {jwt}\nauthorization: Bearer x"),
            ),
            ("jwt-custom-header", 1, format!("x-jwt: Bearer {jwt}")),
            (
                "two-kinds",
                0,
                format!("x-api-key: {key}\ncookie: session_id={sid}"),
            ),
        ];
        lists
            .into_iter()
            .map(|(name, choice, text)| file(&format!("{name}.txt"), raw(choice, &text)))
            .collect()
    }

    /// XFCC values (mode 0) and a certificate's DER (mode 1).
    pub fn workload() -> Files {
        let orders = "spiffe://cluster.local/ns/shop/sa/orders";
        let gateway = "spiffe://cluster.local/ns/edge/sa/gateway";
        let pem = std::fs::read_to_string("tests/fixtures/management/login.pem").unwrap();
        let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        let der = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, b64).unwrap();
        let mut cert = vec![1];
        cert.extend(der);
        vec![
            file(
                "xfcc-one.txt",
                raw(0, &format!("By=spiffe://td/api;Hash=ab12;URI={orders}")),
            ),
            file(
                "xfcc-appended.txt",
                raw(
                    0,
                    &format!("Hash=ab12;URI={orders},By=spiffe://td/api;Hash=cd34;URI={gateway}"),
                ),
            ),
            file(
                "xfcc-quoted.txt",
                raw(
                    0,
                    r#"Hash=ab;Subject="CN=orders,O=shop \"x\"";DNS=orders.shop"#,
                ),
            ),
            file("xfcc-unterminated.txt", raw(0, r#"URI="spiffe://td/open"#)),
            file("xfcc-control.txt", raw(0, "URI=\"spiffe://td/a\nb\"")),
            file("client-cert.der", cert),
        ]
    }

    pub fn formats() -> Files {
        let key = ward::apikey::generate("ward").unwrap();
        vec![
            file("apikey.txt", raw(0, &format!("ward\n{key}"))),
            file(
                "apikey-bad-checksum.txt",
                raw(
                    0,
                    &format!("ward\n{}", key.replace(&key[key.len() - 1..], "!")),
                ),
            ),
            file(
                "apikey-foreign.txt",
                raw(0, "acme\nsk_live_0123456789abcdef"),
            ),
            file(
                "session-uuid.txt",
                raw(1, "7f1c0b1e-3c1d-4a8e-9a51-2f7d3c6b9e10"),
            ),
            file("session-base64url.txt", raw(1, "Zm9vYmFyYmF6cXV4cXV1eA")),
            file("session-short.txt", raw(1, "abc")),
            file(
                "session-record.txt",
                raw(
                    2,
                    "user_id=u1\nexpires_at=1800000000\nrevoked=0\nroles=admin editor\nemail=a@example.com\ntenant=t1\nfingerprint=abc",
                ),
            ),
            file(
                "session-revoked.txt",
                raw(2, "user_id=u1\nrevoked=TRUE\nexpires_at= 1600000000 "),
            ),
            file(
                "apikey-record.txt",
                raw(
                    3,
                    "key_id=key_abc\nuser_id=svc\nname=ci\nscopes=read,write\nexpires_at=\nrevoked=false",
                ),
            ),
            file(
                "record-bad-fields.txt",
                raw(3, "key_id=k\nuser_id=u\nexpires_at=-1\nrevoked=maybe"),
            ),
        ]
    }

    pub fn configs() -> Files {
        let root = env!("CARGO_MANIFEST_DIR");
        let mut files: Files = ["quickstart.yaml", "full.yaml", "policies.yaml", "seed.yaml"]
            .iter()
            .map(|name| {
                let text = std::fs::read(format!("{root}/examples/{name}")).unwrap();
                file(&format!("example-{name}"), text)
            })
            .collect();
        let small = [
            ("empty.yaml", ""),
            (
                "sessions-only.yaml",
                "jwt: {keys: []}\nsessions: {enabled: true}\napi_keys: {enabled: false}\n",
            ),
            (
                "routes.yaml",
                "api_keys: {enabled: true}\nroutes:\n  - {name: health, exact: /healthz, policy: public}\n  - {name: admin, glob: /admin/**, methods: [GET], hosts: ['*.example.com'], policy: deny}\n  - {name: re, regex: '/v[0-9]+/.*', policy: required}\n",
            ),
            ("bad-field.yaml", "jwt:\n  leeway: soon\n"),
            (
                "unknown-field.yaml",
                "listen: {grpc: 127.0.0.1:1, nope: 1}\n",
            ),
            (
                "hmac-key.yaml",
                "jwt:\n  keys:\n    - {kid: k, alg: HS256, secret: {value: short}}\nheaders: {user_id: Authorization}\nresponses: {status: {token_expired: 200}}\n",
            ),
        ];
        files.extend(small.iter().map(|(name, text)| file(name, *text)));
        files
    }
}

// ---------------------------------------------------------- regressions

fn regression(kind: &str, target: &str, name: &str) -> Vec<u8> {
    std::fs::read(fuzz_dir().join(kind).join(target).join(name)).unwrap()
}

/// Found by the `config` target: a YAML key that is empty (`&a:`, an
/// anchored empty key) made the parse error's field path empty, so
/// `ward check-config` named no field.
#[test]
fn regression_config_unknown_empty_key_names_the_root() {
    let yaml = regression("regressions", "config", "empty-anchored-key.yaml");
    ward::fuzzing::config(&yaml);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ward.yaml");
    std::fs::write(&file, &yaml).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ward"))
        .arg("check-config")
        .arg(&file)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains(": (root): unknown field"),
        "no field named: {stderr}"
    );
}

/// Found by the `jws` target (JWKS mode): `{"kty":"OKP","crv":"Ed25519",
/// "alg":"HS256",...}` (or `"alg":"RS256"`) was loaded as a key bound to
/// that algorithm: a key that could never verify a token (every token
/// naming it failed as `bad_signature`), and an HMAC-bound key out of a
/// JWKS, which ward means never to hold. A JWK whose `alg` does not fit
/// its key type is now skipped as unusable (`src/jwt/keys/jwk.rs`).
#[test]
fn regression_jwks_key_whose_alg_does_not_fit_its_type() {
    let files = inputs("regressions", "jws");
    assert_eq!(files.len(), 2);
    assert_eq!(failures("jws", &files), Vec::<String>::new());
    for file in &files {
        let json = std::fs::read(file).unwrap();
        let (keys, skipped) =
            ward::jwt::keys::from_jwks(&json, &ward::jwt::AllowedTypes::default())
                .map_or((Vec::new(), 1), |(k, s)| (k, s.len()));
        assert!(keys.is_empty(), "{}: a key was loaded", file.display());
        assert_eq!(skipped, 1, "{}", file.display());
    }
}

/// Found by the `credentials` target: control characters other than
/// whitespace (NUL, U+0001, DEL, C1 controls) passed `token()`, and cookie
/// values skipped it (`session_id="a b,c"` was one session id). Now every
/// carrier reads a credential by one rule (`src/credentials.rs`).
#[test]
fn regression_credentials_with_control_characters_spaces_or_commas() {
    let files = inputs("regressions", "credentials");
    assert_eq!(files.len(), 3);
    assert_eq!(failures("credentials", &files), Vec::<String>::new());
}
