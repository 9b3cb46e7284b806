//! Credentials as a hostile client sends them: control characters and
//! Unicode spaces around a valid credential, a token in the query beside
//! one in a header, and what of a credential reaches the backend. Through
//! a real Envoy to an echo upstream where Envoy carries the input, direct
//! gRPC where it does not (a line break cannot cross HTTP/1).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use jsonwebtoken::Algorithm;
use support::authz::{self, hset, session_id, verdict};
use support::echo::{Echo, header_values};
use support::envoy::{AuthzTarget, Envoy, EnvoyOptions};
use support::redis::RedisServer;
use support::tokens::{self, claims, sign};
use support::ward::Ward;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// JWT (RS256), sessions and API keys in Redis; `extra` is spliced in.
fn config(redis: &RedisServer, extra: &str) -> String {
    format!(
        "log: {{format: text, level: info}}\n\
         store:\n  redis: {{url: \"{}\"}}\n\
         sessions:\n  fingerprint: {{mode: off}}\n\
         jwt:\n  keys:\n    - {{kid: r1, alg: RS256, pem_file: tests/fixtures/keys/rsa.pub}}\n\
         {extra}",
        redis.url()
    )
}

/// A valid JWT, session id and API key, written where ward reads them.
struct Creds {
    jwt: String,
    sid: String,
    key: String,
}

fn seed(redis: &RedisServer) -> Creds {
    let sid = session_id();
    let expires = (tokens::now() + 3600).to_string();
    hset(
        redis,
        &format!("session:{sid}"),
        &[("user_id", "alice"), ("expires_at", &expires)],
    );
    let key = ward::apikey::generate("ward").unwrap();
    hset(
        redis,
        &format!("apikey:{}", ward::apikey::hash_hex(&key)),
        &[("key_id", "key_ci"), ("user_id", "svc-ci")],
    );
    Creds {
        jwt: sign(Algorithm::RS256, Some("r1"), &claims("alice")),
        sid,
        key,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_characters_and_unicode_spaces_are_never_trimmed_away_grpc() {
    let redis = RedisServer::start().await;
    let c = seed(&redis);
    let ward = Ward::start(&config(&redis, "")).await;
    let client = authz::connect(ward.grpc_addr).await;
    let (jwt, sid, key) = (&c.jwt, &c.sid, &c.key);
    let mut cases: Vec<(&str, String, &str)> = Vec::new();
    for junk in [
        "\n", "\r", "\r\n", "\x0b", "\x0c", "\u{85}", "\u{a0}", "\u{2003}", "\u{3000}", "\x00",
    ] {
        cases.extend([
            (
                "authorization",
                format!("Bearer {jwt}{junk}"),
                "malformed_token",
            ),
            (
                "authorization",
                format!("Bearer {junk}{jwt}"),
                "malformed_token",
            ),
            (
                "authorization",
                format!("{junk}Bearer {jwt}"),
                "unsupported_scheme",
            ),
            ("x-api-key", format!("{key}{junk}"), "malformed_api_key"),
            ("x-api-key", format!("{junk}{key}"), "malformed_api_key"),
            (
                "authorization",
                format!("ApiKey {key}{junk}"),
                "malformed_api_key",
            ),
            (
                "x-session-id",
                format!("{sid}{junk}"),
                "malformed_session_id",
            ),
            (
                "cookie",
                format!("session_id={sid}{junk}"),
                "malformed_session_id",
            ),
            (
                "cookie",
                format!("theme=dark; session_id={junk}{sid}"),
                "malformed_session_id",
            ),
        ]);
    }
    for (name, value, want) in &cases {
        let resp = authz::check(&client, &[(name, value)]).await;
        let status = if *want == "unsupported_scheme" {
            400
        } else {
            401
        };
        assert_eq!(
            verdict(&resp),
            (status, want.to_string()),
            "{name}: {value:?}"
        );
    }
    // HTTP optional whitespace (SP, HTAB) around a credential is not part of it.
    for (name, value) in [
        ("authorization", format!("Bearer {jwt} \t")),
        ("authorization", format!("\tBearer  {jwt}")),
        ("x-api-key", format!(" {key}\t")),
        ("x-session-id", format!("\t{sid} ")),
        ("cookie", format!("theme=dark;\tsession_id={sid} ")),
    ] {
        let resp = authz::check(&client, &[(name, &value)]).await;
        assert_eq!(verdict(&resp), (200, "allowed".into()), "{name}: {value:?}");
    }
}

/// One HTTP/1.1 request with raw header bytes (obs-text included, which
/// the support client refuses to send); the status and the raw response.
async fn raw_get(envoy: &Envoy, path: &str, headers: &[(&str, Vec<u8>)]) -> (u16, String) {
    let mut req =
        format!("GET {path} HTTP/1.1\r\nhost: test\r\nconnection: close\r\n").into_bytes();
    for (name, value) in headers {
        req.extend_from_slice(name.as_bytes());
        req.extend_from_slice(b": ");
        req.extend_from_slice(value);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"\r\n");
    let mut stream = tokio::net::TcpStream::connect(envoy.http_addr)
        .await
        .unwrap();
    stream.write_all(&req).await.unwrap();
    let mut out = Vec::new();
    stream.read_to_end(&mut out).await.unwrap();
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {text:?}"));
    (status, text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unicode_spaces_after_a_credential_are_denied_through_envoy() {
    let redis = RedisServer::start().await;
    let c = seed(&redis);
    let echo = Echo::start().await;
    let ward = Ward::start(&config(&redis, "")).await;
    let envoy = Envoy::start(echo.addr, ward.grpc_addr).await;
    let with =
        |prefix: &str, value: &str, junk: &str| format!("{prefix}{value}{junk}").into_bytes();
    for junk in ["\u{a0}", "\u{3000}", "\u{2028}"] {
        let cases = [
            (
                "authorization",
                with("Bearer ", &c.jwt, junk),
                "malformed_token",
            ),
            (
                "authorization",
                with("ApiKey ", &c.key, junk),
                "malformed_api_key",
            ),
            ("x-api-key", with("", &c.key, junk), "malformed_api_key"),
            (
                "x-session-id",
                with("", &c.sid, junk),
                "malformed_session_id",
            ),
            (
                "cookie",
                with("session_id=", &c.sid, junk),
                "malformed_session_id",
            ),
        ];
        for (name, value, reason) in cases {
            let (status, text) = raw_get(&envoy, "/api", &[(name, value)]).await;
            assert_eq!(status, 401, "{name} + {junk:?}: {text}");
            assert!(text.contains(&format!("\"reason\":\"{reason}\"")), "{text}");
        }
    }
    assert_eq!(echo.hits(), 0, "no padded credential reaches the backend");
    // The same credentials, clean, pass.
    let (status, text) =
        raw_get(&envoy, "/api", &[("x-api-key", c.key.clone().into_bytes())]).await;
    assert_eq!(status, 200, "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_token_beside_a_header_credential_is_a_400_through_envoy() {
    let redis = RedisServer::start().await;
    let c = seed(&redis);
    let echo = Echo::start().await;
    let ward = Ward::start(&config(&redis, "")).await;
    let envoy = Envoy::start(echo.addr, ward.grpc_addr).await;
    let bearer = format!("Bearer {}", c.jwt);
    let cookie = format!("session_id={}", c.sid);
    let query = format!("/api?x=1&access_token={}", c.jwt);
    let encoded_name = format!("/api?access%5Ftoken={}", c.jwt);
    for (path, headers) in [
        (&query, vec![("authorization", bearer.as_str())]),
        (&encoded_name, vec![("authorization", bearer.as_str())]),
        (&query, vec![("cookie", cookie.as_str())]),
        (&query, vec![("x-api-key", c.key.as_str())]),
    ] {
        let resp = envoy.get(path, &headers).await;
        assert_eq!(resp.status, 400, "{path} {headers:?}: {}", resp.text());
        assert_eq!(resp.json()["reason"], "multiple_credentials");
        let challenge = resp.header("www-authenticate").unwrap_or_default();
        assert!(challenge.contains("invalid_request"), "{challenge}");
    }
    // One credential sent two ways is two methods too, equal or not.
    let api_key_scheme = format!("ApiKey {}", c.key);
    for headers in [
        vec![
            ("x-session-id", c.sid.as_str()),
            ("cookie", cookie.as_str()),
        ],
        vec![
            ("x-api-key", c.key.as_str()),
            ("authorization", &api_key_scheme),
        ],
    ] {
        let resp = envoy.get("/api", &headers).await;
        assert_eq!(resp.status, 400, "{headers:?}: {}", resp.text());
        assert_eq!(resp.json()["reason"], "multiple_credentials");
    }
    // The same cookie twice in one header (a browser holding it for two
    // paths) is one credential.
    let twice = format!("{cookie}; theme=dark; {cookie}");
    let resp = envoy.get("/api", &[("cookie", &twice)]).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    // Without `jwt.from_query`, a query token alone is no credential.
    let resp = envoy.get(&query, &[]).await;
    assert_eq!(resp.status, 401, "{}", resp.text());
    assert_eq!(resp.json()["reason"], "missing_credential");
    assert_eq!(echo.hits(), 1, "only the request with one cookie passed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn from_query_accepts_a_query_token_and_envoy_drops_it_from_the_path() {
    let redis = RedisServer::start().await;
    let c = seed(&redis);
    let echo = Echo::start().await;
    let extra = "  from_query: access_token\nlisten: {http: ~}\n";
    let ward = Ward::start(&config(&redis, extra)).await;
    let envoy = Envoy::start(echo.addr, ward.grpc_addr).await;

    // Form-encoded the way a client might: `.` as %2E.
    let encoded = c.jwt.replace('.', "%2E");
    for token in [&c.jwt, &encoded] {
        let resp = envoy
            .get(&format!("/api/orders?a=1&access_token={token}&b=2"), &[])
            .await;
        assert_eq!(resp.status, 200, "{}", resp.text());
        let seen = resp.json();
        assert_eq!(header_values(&seen, "x-user-id"), vec!["alice"]);
        let query = seen["query"].as_str().unwrap_or_default();
        assert!(!query.contains("access_token"), "{seen}");
        assert!(query.contains("a=1") && query.contains("b=2"), "{seen}");
    }
    // Rule 3 applies to the decoded value.
    for junk in ["%0A", "%0D", "%C2%A0", "%00"] {
        let resp = envoy
            .get(&format!("/api?access_token={}{junk}", c.jwt), &[])
            .await;
        assert_eq!(resp.status, 401, "{junk}: {}", resp.text());
        assert_eq!(resp.json()["reason"], "malformed_token");
    }
    let resp = envoy
        .get(
            &format!("/api?access_token={0}&access_token={0}", c.jwt),
            &[],
        )
        .await;
    assert_eq!(resp.status, 400);
    assert_eq!(resp.json()["reason"], "multiple_credentials");
    let bearer = format!("Bearer {}", c.jwt);
    let resp = envoy
        .get(
            &format!("/api?access_token={}", c.jwt),
            &[("authorization", &bearer)],
        )
        .await;
    assert_eq!(resp.status, 400);
    assert_eq!(resp.json()["reason"], "multiple_credentials");
    assert_eq!(echo.hits(), 2);
}

#[test]
fn from_query_is_refused_with_the_http_mode() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ward.yaml");
    std::fs::write(
        &path,
        "listen: {http: \"127.0.0.1:9002\"}\n\
         jwt:\n  from_query: access_token\n  keys:\n    - {kid: r1, alg: RS256, pem_file: tests/fixtures/keys/rsa.pub}\n",
    )
    .unwrap();
    let (ok, out) = support::cli::ward(&["check-config", path.to_str().unwrap()]);
    assert!(!ok, "{out}");
    assert!(out.contains("jwt.from_query"), "{out}");
    assert!(out.contains("listen.http"), "{out}");
}

const FORGED_KEY_ID: (&str, &str) = ("x-api-key-id", "key_admin");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_key_never_reaches_the_backend_grpc_and_http_modes() {
    let redis = RedisServer::start().await;
    let c = seed(&redis);
    let echo = Echo::start().await;
    let extra = "policies:\n  maybe: {mode: optional}\nroutes:\n\
                 \x20 - {name: maybe, prefix: /maybe, policy: maybe}\n\
                 \x20 - {name: open, prefix: /open, policy: public}\n\
                 \x20 - {name: api, prefix: /}\n";
    let ward = Ward::start(&config(&redis, extra)).await;
    let grpc = Envoy::start(echo.addr, ward.grpc_addr).await;
    let http = Envoy::start_with(EnvoyOptions::new(
        echo.addr,
        AuthzTarget::Http(ward.http_addr),
    ))
    .await;
    let bad_key = ward::apikey::generate("ward").unwrap();
    let scheme = format!("ApiKey {}", c.key);
    let bad_scheme = format!("ApiKey {bad_key}");
    for (mode, envoy) in [("grpc", &grpc), ("http", &http)] {
        for (path, header, value, user) in [
            ("/api", "x-api-key", &c.key, Some("svc-ci")),
            ("/api", "authorization", &scheme, Some("svc-ci")),
            // An optional policy's anonymous allow loses the key too.
            ("/maybe", "x-api-key", &bad_key, None),
            ("/maybe", "authorization", &bad_scheme, None),
            // So does a public route's.
            ("/open", "x-api-key", &c.key, None),
        ] {
            let resp = envoy.get(path, &[(header, value), FORGED_KEY_ID]).await;
            assert_eq!(resp.status, 200, "{mode} {path} {header}: {}", resp.text());
            let seen = resp.json();
            let who: Vec<String> = user.map(String::from).into_iter().collect();
            assert_eq!(header_values(&seen, "x-user-id"), who, "{mode} {path}");
            for gone in ["x-api-key", "authorization"] {
                assert!(
                    header_values(&seen, gone).is_empty(),
                    "{mode} {path}: the key reached the backend in {gone}: {seen}"
                );
            }
            let key_id: Vec<String> = user.map(|_| "key_ci".to_string()).into_iter().collect();
            assert_eq!(
                header_values(&seen, "x-api-key-id"),
                key_id,
                "{mode} {path}"
            );
        }
    }
    // JWTs and session cookies are forwarded by default.
    let bearer = format!("Bearer {}", c.jwt);
    let cookie = format!("theme=dark; session_id={}", c.sid);
    for (header, value) in [("authorization", &bearer), ("cookie", &cookie)] {
        let resp = grpc.get("/api", &[(header, value)]).await;
        assert_eq!(resp.status, 200, "{header}: {}", resp.text());
        assert_eq!(header_values(&resp.json(), header), vec![value.clone()]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forward_credential_false_strips_jwts_and_session_cookies() {
    let redis = RedisServer::start().await;
    let c = seed(&redis);
    let echo = Echo::start().await;
    let extra = "  forward_credential: false\n\
                 api_keys: {forward_credential: true}\n";
    let yaml = config(&redis, extra).replace(
        "sessions:\n  fingerprint: {mode: off}\n",
        "sessions:\n  fingerprint: {mode: off}\n  forward_credential: false\n",
    );
    let ward = Ward::start(&yaml).await;
    let envoy = Envoy::start(echo.addr, ward.grpc_addr).await;
    let bearer = format!("Bearer {}", c.jwt);
    let resp = envoy.get("/api", &[("authorization", &bearer)]).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert!(header_values(&resp.json(), "authorization").is_empty());

    let resp = envoy.get("/api", &[("x-session-id", &c.sid)]).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert!(header_values(&resp.json(), "x-session-id").is_empty());

    // The session cookie is cut out of `cookie`; the others stay, in order.
    let both = format!("theme=dark; session_id={}; lang=en", c.sid);
    let resp = envoy.get("/api", &[("cookie", &both)]).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    let seen = resp.json();
    assert_eq!(header_values(&seen, "x-user-id"), vec!["alice"]);
    assert_eq!(header_values(&seen, "cookie"), vec!["theme=dark; lang=en"]);
    // Two cookie headers, one of them the session: folded, then cut.
    let only = format!("session_id={}", c.sid);
    let resp = envoy
        .get("/api", &[("cookie", "theme=dark"), ("cookie", &only)])
        .await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(header_values(&resp.json(), "cookie"), vec!["theme=dark"]);
    // The session cookie alone: no cookie header at all upstream.
    let resp = envoy.get("/api", &[("cookie", &only)]).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert!(
        header_values(&resp.json(), "cookie").is_empty(),
        "{}",
        resp.text()
    );

    // forward_credential: true forwards the API key.
    let resp = envoy.get("/api", &[("x-api-key", &c.key)]).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(
        header_values(&resp.json(), "x-api-key"),
        vec![c.key.clone()]
    );
}
