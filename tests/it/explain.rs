//! `ward explain` as a platform engineer uses it: a config, a request, and
//! the answer with every step, without Envoy.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use jsonwebtoken::Algorithm;
use serde_json::json;
use std::process::Command;
use support::tokens::{claims, sign};

const CONFIG: &str = r#"
jwt:
  keys:
    - {kid: r1, alg: RS256, pem_file: tests/fixtures/keys/rsa.pub}
sessions: {enabled: false}
api_keys: {enabled: false}
policies:
  admins: {roles: {any_of: [admin]}, login_url: https://login.example.com/}
routes:
  - {name: health, exact: /healthz, policy: public}
  - {name: admin, prefix: /admin, policy: admins}
  - {name: api, prefix: /api}
"#;

/// Runs `ward explain ARGS` with CONFIG; (exit code, stdout + stderr).
fn explain(args: &[&str]) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("ward.yaml");
    std::fs::write(&config, CONFIG).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ward"))
        .arg("explain")
        .arg("-c")
        .arg(&config)
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap(), text)
}

fn line<'a>(text: &'a str, key: &str) -> &'a str {
    text.lines()
        .find(|l| l.split_whitespace().next() == Some(key))
        .unwrap_or_else(|| panic!("no `{key}` line in:\n{text}"))
}

#[test]
fn an_allowed_request_shows_its_route_identity_and_headers() {
    let mut c = claims("root");
    c["roles"] = json!(["admin"]);
    let auth = format!(
        "authorization: Bearer {}",
        sign(Algorithm::RS256, Some("r1"), &c)
    );
    let (code, out) = explain(&[
        "-H",
        &auth,
        "-H",
        "x-user-admin: yes",
        "https://app.example.com/admin/users?page=2",
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(
        line(&out, "policy").contains("route admin (routes[1])"),
        "{out}"
    );
    assert!(
        line(&out, "credential").starts_with("credential   jwt ("),
        "{out}"
    );
    assert!(line(&out, "authenticate").contains("user root via jwt; roles [admin]"));
    assert!(line(&out, "authorize").ends_with("ok"));
    assert_eq!(line(&out, "decision"), "decision     ALLOW (200)");
    assert!(out.contains("  set     x-user-id: root\n"), "{out}");
    assert!(out.contains("  remove  x-user-admin\n"), "{out}");
}

#[test]
fn a_denied_request_says_why_and_exits_2() {
    let auth = format!(
        "authorization: Bearer {}",
        sign(Algorithm::RS256, Some("r1"), &claims("alice"))
    );
    let (code, out) = explain(&["-H", &auth, "https://app.example.com//ADMIN/./x"]);
    assert_eq!(code, 2, "{out}");
    assert!(
        line(&out, "path").starts_with("path         /ADMIN/x"),
        "{out}"
    );
    assert!(line(&out, "policy").contains("admins"), "{out}");
    assert_eq!(line(&out, "authorize"), "authorize    insufficient_role");
    assert_eq!(
        line(&out, "decision"),
        "decision     DENY 403 insufficient_role"
    );

    // A browser without a credential: the 302 to the login page.
    let (code, out) = explain(&["-H", "accept: text/html", "https://app.example.com/admin"]);
    assert_eq!(code, 2);
    assert_eq!(
        line(&out, "decision"),
        "decision     DENY 302 missing_credential"
    );
    assert!(out.contains(
        "  header  location: https://login.example.com/?return_to=https%3A%2F%2Fapp.example.com%2Fadmin\n"
    ));

    // No route matched: the default once routes exist is deny.
    let (code, out) = explain(&["/other"]);
    assert_eq!(code, 2);
    assert!(line(&out, "policy").contains("no route matched: default_policy"));
    assert_eq!(line(&out, "decision"), "decision     DENY 403 no_route");
}

#[test]
fn a_request_file_and_an_envoy_policy() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("req.json");
    std::fs::write(
        &file,
        json!({"method": "post", "url": "/admin", "headers": {"host": "a"}, "envoy_policy": "public"})
            .to_string(),
    )
    .unwrap();
    let (code, out) = explain(&["--request", file.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    assert!(line(&out, "request").starts_with("request      POST a/admin"));
    assert!(line(&out, "policy").contains("selected by Envoy"), "{out}");
    assert_eq!(
        line(&out, "decision"),
        "decision     ALLOW (200), anonymous"
    );
}

#[test]
fn bad_input_is_an_error_not_a_decision() {
    let (code, out) = explain(&["ftp://x/"]);
    assert_eq!(code, 1);
    assert!(out.contains("is not http(s)://host/path or /path"), "{out}");
    let (code, out) = explain(&["-H", "no-colon", "/api"]);
    assert_eq!(code, 1);
    assert!(out.contains("-H takes `Name: value`"), "{out}");
}

/// Runs `ward explain ARGS` with `config`; (exit code, stdout + stderr).
fn explain_with(config: &str, args: &[&str]) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ward.yaml");
    std::fs::write(&path, config).unwrap();
    let (ok, out) =
        support::cli::ward(&[&["explain", "-c", path.to_str().unwrap()], args].concat());
    let code = if ok {
        0
    } else if line(&out, "decision").contains("DENY") {
        2
    } else {
        1
    };
    (code, out)
}

/// Repeated headers fold the same way in `ward explain` (its `-H` and its
/// request file) as in `ward serve` behind Envoy: two `cookie` headers,
/// the session in the second, are one session credential for both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_folds_repeated_headers_as_serve_does() {
    use support::authz::{hset, session_id};
    use support::echo::{Echo, header_values};
    let redis = support::redis::RedisServer::start().await;
    let sid = session_id();
    let expires = (support::tokens::now() + 3600).to_string();
    hset(
        &redis,
        &format!("session:{sid}"),
        &[("user_id", "alice"), ("expires_at", &expires)],
    );
    let config = format!(
        "store:\n  redis: {{url: \"{}\"}}\nsessions:\n  fingerprint: {{mode: off}}\napi_keys: {{enabled: false}}\n",
        redis.url()
    );
    let session = format!("session_id={sid}");
    let headers = [("cookie", "theme=dark"), ("cookie", session.as_str())];

    let echo = Echo::start().await;
    let ward = support::ward::Ward::start(&config).await;
    use support::envoy::{AuthzTarget, Envoy, EnvoyOptions};
    let grpc = Envoy::start(echo.addr, ward.grpc_addr).await;
    let http = Envoy::start_with(EnvoyOptions::new(
        echo.addr,
        AuthzTarget::Http(ward.http_addr),
    ))
    .await;
    for envoy in [&grpc, &http] {
        let resp = envoy.get("/api", &headers).await;
        assert_eq!(resp.status, 200, "{}", resp.text());
        assert_eq!(header_values(&resp.json(), "x-user-id"), vec!["alice"]);
    }

    let first = format!("cookie: {}", headers[0].1);
    let second = format!("Cookie: {}", headers[1].1);
    let (code, out) = explain_with(&config, &["-H", &first, "-H", &second, "/api"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        line(&out, "authenticate").contains("user alice via session"),
        "{out}"
    );

    // The request file: a list of values per name, or one value.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("req.json");
    for body in [
        json!({"url": "/api", "headers": {"cookie": [headers[0].1, headers[1].1]}}).to_string(),
        format!(
            "{{\"url\": \"/api\", \"headers\": {{\"Cookie\": \"{}\", \"cookie\": \"{}\"}}}}",
            headers[0].1, headers[1].1
        ),
    ] {
        std::fs::write(&file, &body).unwrap();
        let (code, out) = explain_with(&config, &["--request", file.to_str().unwrap()]);
        assert_eq!(code, 0, "{body}: {out}");
        assert!(
            line(&out, "authenticate").contains("user alice via session"),
            "{out}"
        );
    }

    // A Unicode space after the session id: serve denies, and so does explain.
    let padded = format!("cookie: session_id={sid}\u{a0}");
    let (code, out) = explain_with(&config, &["-H", &padded, "/api"]);
    assert_eq!(code, 2, "{out}");
    assert_eq!(
        line(&out, "decision"),
        "decision     DENY 401 malformed_session_id"
    );
}
