//! Route policies, black-box: a real ward with `routes` and `policies`,
//! asked over gRPC (table-driven, raw paths that Envoy would never
//! normalize) and through a real Envoy in front of an echo upstream
//! (gRPC and HTTP ext_authz modes).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use envoy_types::ext_authz::v3::pb::{CheckResponse, HttpResponse};
use jsonwebtoken::Algorithm;
use serde_json::json;
use support::authz::{self, reason, set_header};
use support::echo::{Echo, header_values};
use support::envoy::{AuthzTarget, Envoy, EnvoyOptions};
use support::inproc::check_request;
use support::tokens::{claims, sign};
use support::ward::Ward;

const CONFIG: &str = r#"
log: {format: text, level: info}
jwt:
  keys:
    - {kid: r1, alg: RS256, pem_file: tests/fixtures/keys/rsa.pub}
  # A managed name outside the prefixes, which Envoy's HTTP mode does not
  # forward to ward.
  claims:
    headers:
      - {claim: email, header: x-user-email}
      - {claim: roles, header: x-user-roles, list: true}
      - {claim: scope, header: x-user-scopes, list: true}
      - {claim: scp, header: x-user-scopes, list: true}
      - {claim: tenant, header: x-tenant-id}
policies:
  admins:
    roles: {any_of: [admin]}
  partner:
    accept: [jwt]
    scopes: {all_of: [partner]}
  web:
    login_url: https://login.example.com/login
routes:
  - {name: health, exact: /healthz, policy: public}
  - {name: admin, prefix: /admin, policy: admins}
  - {name: writes, prefix: /api, methods: [POST, PUT, DELETE], scopes: {all_of: [write]}}
  - {name: api, prefix: /api}
  - {name: app, prefix: /app, policy: web}
  - {name: docs, glob: "/docs/**", mode: optional}
  - {name: media, regex: "/media/[0-9]+\\.png", case_sensitive: true, policy: public}
  - {name: internal, prefix: /internal, mode: deny}
  - {name: site, prefix: /, policy: public}
"#;

fn config() -> String {
    CONFIG.to_string()
}

fn token(sub: &str, extra: serde_json::Value) -> String {
    let mut c = claims(sub);
    if let (Some(obj), serde_json::Value::Object(more)) = (c.as_object_mut(), extra) {
        obj.extend(more);
    }
    format!("Bearer {}", sign(Algorithm::RS256, Some("r1"), &c))
}

#[tokio::test]
async fn routes_decide_by_path_method_roles_and_scopes() {
    let ward = Ward::start(&config()).await;
    let client = authz::connect(ward.grpc_addr).await;
    let reader = token("alice", json!({"roles": ["reader"], "scope": "read"}));
    let admin = token("root", json!({"roles": ["admin"]}));
    let writer = token("bob", json!({"scope": "read write"}));
    let partner = token("p", json!({"scp": ["partner"]}));
    // (method, path, authorization, status, reason)
    let table: &[(&str, &str, Option<&str>, u16, &str)] = &[
        ("GET", "/healthz", None, 200, "allowed"),
        ("GET", "/", None, 200, "allowed"),
        ("GET", "/api/orders", None, 401, "missing_credential"),
        ("GET", "/api/orders", Some(&reader), 200, "allowed"),
        (
            "POST",
            "/api/orders",
            Some(&reader),
            403,
            "insufficient_scope",
        ),
        ("POST", "/api/orders", Some(&writer), 200, "allowed"),
        ("GET", "/admin", Some(&reader), 403, "insufficient_role"),
        ("GET", "/admin/users", Some(&admin), 200, "allowed"),
        ("GET", "/docs/a/b", None, 200, "allowed"),
        ("GET", "/docs/a/b", Some("Bearer not.a.jwt"), 200, "allowed"),
        ("GET", "/media/12.png", None, 200, "allowed"),
        ("GET", "/internal/x", Some(&admin), 403, "route_denied"),
        ("GET", "/app/home", None, 401, "missing_credential"),
        (
            "GET",
            "/api/x",
            Some("Basic dTpw"),
            400,
            "unsupported_scheme",
        ),
        (
            "GET",
            "/api/x",
            Some("Bearer x.y.z"),
            401,
            "malformed_token",
        ),
        ("GET", "/api/x", Some(&partner), 200, "allowed"),
    ];
    for (method, path, auth, status, why) in table {
        let mut headers = vec![("x-user-id", "forged")];
        if let Some(a) = auth {
            headers.push(("authorization", a));
        }
        let resp = authz::send(&client, check_request(method, path, &headers)).await;
        let got = authz::verdict(&resp);
        assert_eq!(
            (got.0 as u16, reason(&resp).as_str()),
            (*status, *why),
            "{method} {path} auth={}",
            auth.is_some()
        );
        if *status == 200 {
            assert!(
                authz::removed(&resp).contains(&"x-user-id".to_string())
                    || set_header(&resp, "x-user-id").is_some_and(|v| v != "forged"),
                "{method} {path}: a forged x-user-id must never pass"
            );
        }
    }
}

#[tokio::test]
async fn classic_path_bypasses_do_not_reach_admin_as_public() {
    let ward = Ward::start(&config()).await;
    let client = authz::connect(ward.grpc_addr).await;
    // Raw, as a client could send them to a proxy that does not normalize.
    for path in [
        "/admin",
        "//admin",
        "/public/../admin",
        "/%61dmin",
        "/admin%2f",
        "/admin%2fusers",
        "/admin;x",
        "/ADMIN",
        "/admin/",
        "/./admin",
        "/public/..;/admin",
        "/public%2f..%2fadmin",
        "/public\\..\\admin",
        "/%2e%2e/admin",
    ] {
        let resp = authz::send(&client, check_request("GET", path, &[])).await;
        let (status, _) = authz::verdict(&resp);
        assert_ne!(status, 200, "{path} reached a protected route as public");
        assert!(
            [400, 401].contains(&(status as u16)),
            "{path}: {status} {}",
            reason(&resp)
        );
    }
    // Double encoding is refused, not guessed at.
    let resp = authz::send(&client, check_request("GET", "/%2561dmin", &[])).await;
    assert_eq!(authz::verdict(&resp).0, 400);
    assert_eq!(reason(&resp), "malformed_path");
}

#[tokio::test]
async fn missing_credential_challenge_names_what_the_route_accepts() {
    let ward = Ward::start(&format!(
        "{}\napi_keys: {{enabled: true}}\nsessions: {{enabled: true}}\n",
        config().replace(
            "  partner:\n    accept: [jwt]",
            "  partner:\n    accept: [apikey]"
        )
    ))
    .await;
    let client = authz::connect(ward.grpc_addr).await;
    let resp = authz::send(&client, check_request("GET", "/api/x", &[])).await;
    assert_eq!(
        deny_header(&resp, "www-authenticate").as_deref(),
        Some(
            "Bearer realm=\"ward\", Session realm=\"ward\", cookie=\"session_id\", ApiKey realm=\"ward\", header=\"x-api-key\""
        )
    );
}

fn deny_header(resp: &CheckResponse, name: &str) -> Option<String> {
    match resp.http_response.as_ref()? {
        HttpResponse::DeniedResponse(d) => d
            .headers
            .iter()
            .filter_map(|h| h.header.as_ref())
            .find(|h| h.key == name)
            .map(|h| h.value.clone()),
        _ => None,
    }
}

async fn envoy_and_ward(opts: impl FnOnce(&Ward, &Echo) -> EnvoyOptions) -> (Echo, Ward, Envoy) {
    let echo = Echo::start().await;
    let ward = Ward::start(&config()).await;
    let envoy = Envoy::start_with(opts(&ward, &echo)).await;
    (echo, ward, envoy)
}

#[tokio::test]
async fn through_envoy_routes_context_extensions_and_login_redirects() {
    let (echo, _ward, envoy) = envoy_and_ward(|ward, echo| {
        let mut o = EnvoyOptions::new(echo.addr, ward.grpc_addr);
        // An Envoy route that names ward's `partner` policy.
        o.policy_routes = vec![("/partner".into(), "partner".into())];
        o
    })
    .await;
    let reader = token("alice", json!({}));
    let partner = token("p", json!({"scope": "partner"}));

    // Envoy's route picks the policy: the same token is enough on /api,
    // not on /partner.
    assert_eq!(
        envoy
            .get("/api/x", &[("authorization", &reader)])
            .await
            .status,
        200
    );
    let resp = envoy.get("/partner/x", &[("authorization", &reader)]).await;
    assert_eq!(resp.status, 403);
    assert_eq!(resp.json()["reason"], "insufficient_scope");
    let resp = envoy
        .get(
            "/partner/x",
            &[("authorization", &partner), ("x-user-roles", "admin")],
        )
        .await;
    assert_eq!(resp.status, 200);
    let seen = resp.json();
    assert_eq!(header_values(&seen, "x-user-id"), vec!["p"]);
    assert_eq!(header_values(&seen, "x-user-roles"), vec!["reader"]);

    // A public site page: forged identity scrubbed.
    let resp = envoy.get("/", &[("x-user-id", "root")]).await;
    assert_eq!(resp.status, 200);
    assert!(header_values(&resp.json(), "x-user-id").is_empty());

    // A browser without a session lands on the login page, and comes back
    // (Envoy's listener is plain HTTP, so it sets `x-forwarded-proto: http`).
    let hits = echo.hits();
    let resp = envoy
        .get(
            "/app/orders?id=7",
            &[
                ("accept", "text/html,*/*;q=0.8"),
                ("host", "shop.example.com"),
            ],
        )
        .await;
    assert_eq!(resp.status, 302);
    assert_eq!(
        resp.header("location"),
        Some(
            "https://login.example.com/login?return_to=http%3A%2F%2Fshop.example.com%2Fapp%2Forders%3Fid%3D7"
        )
    );
    // An API call to the same route gets the 401.
    let resp = envoy
        .get("/app/orders", &[("accept", "application/json")])
        .await;
    assert_eq!(resp.status, 401);
    assert!(resp.header("www-authenticate").is_some());
    assert_eq!(echo.hits(), hits, "denied requests never reach the backend");
}

#[tokio::test]
async fn through_envoy_bypass_paths_never_reach_the_backend_unauthenticated() {
    let (echo, _ward, envoy) =
        envoy_and_ward(|ward, echo| EnvoyOptions::new(echo.addr, ward.grpc_addr)).await;
    for path in [
        "//admin",
        "/public/../admin",
        "/%61dmin",
        "/admin%2f",
        "/admin%2Fusers",
        "/admin;x",
        "/ADMIN",
        "/admin/",
        "/public/..;/admin",
        "/%2e%2e/admin",
    ] {
        let resp = envoy.get(path, &[]).await;
        assert!(
            resp.status != 200,
            "{path}: {} reached the backend unauthenticated",
            resp.status
        );
    }
    assert_eq!(echo.hits(), 0);
}

#[tokio::test]
async fn http_mode_through_envoy() {
    let (echo, ward, envoy) = envoy_and_ward(|ward, echo| {
        EnvoyOptions::new(echo.addr, AuthzTarget::Http(ward.http_addr))
    })
    .await;
    let _ = &ward;
    let reader = token("alice", json!({"scope": "read"}));

    let resp = envoy
        .get(
            "/api/orders",
            &[
                ("authorization", &reader),
                ("x-user-id", "root"),
                ("x-user-admin", "true"),
                ("x_user_id", "root"),
                // Never shown to ward (not in Envoy's allowed_headers),
                // removed all the same.
                ("x-tenant-id", "victim"),
                ("x_tenant_id", "victim"),
            ],
        )
        .await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    let seen = resp.json();
    assert!(header_values(&seen, "x-tenant-id").is_empty(), "{seen}");
    assert!(header_values(&seen, "x_tenant_id").is_empty(), "{seen}");
    assert_eq!(header_values(&seen, "x-user-id"), vec!["alice"]);
    assert_eq!(header_values(&seen, "x-auth-method"), vec!["jwt"]);
    assert_eq!(header_values(&seen, "x-user-scopes"), vec!["read"]);
    assert!(header_values(&seen, "x-user-admin").is_empty());
    assert!(header_values(&seen, "x_user_id").is_empty());
    assert!(header_values(&seen, "x-envoy-auth-headers-to-remove").is_empty());

    let resp = envoy.get("/api/orders", &[]).await;
    assert_eq!(resp.status, 401);
    assert_eq!(resp.json()["reason"], "missing_credential");
    assert!(resp.header("www-authenticate").is_some());

    let resp = envoy
        .get("/api/orders", &[("authorization", "Bearer x.y.z")])
        .await;
    assert_eq!(resp.status, 401);
    assert_eq!(resp.json()["reason"], "malformed_token");

    // Public route in HTTP mode: forged headers removed all the same.
    let resp = envoy.get("/", &[("x-user-id", "root")]).await;
    assert_eq!(resp.status, 200);
    assert!(header_values(&resp.json(), "x-user-id").is_empty());

    let resp = envoy.get("/app/x", &[("accept", "text/html")]).await;
    assert_eq!(resp.status, 302);
    assert!(
        resp.header("location")
            .is_some_and(|l| l.starts_with("https://login.example.com/login?return_to="))
    );
    assert_eq!(echo.hits(), 2);
}

#[tokio::test]
async fn a_reason_can_be_answered_with_another_status() {
    let ward = Ward::start(&format!(
        "{}responses: {{status: {{malformed_token: 403, missing_credential: 404}}}}\n",
        config()
    ))
    .await;
    let client = authz::connect(ward.grpc_addr).await;
    let headers = [("authorization", "Bearer x.y.z")];
    let resp = authz::send(&client, check_request("GET", "/api/x", &headers)).await;
    assert_eq!(authz::verdict(&resp), (403, "malformed_token".to_string()));
    assert_eq!(deny_header(&resp, "www-authenticate"), None);
    let resp = authz::send(&client, check_request("GET", "/api/x", &[])).await;
    assert_eq!(
        authz::verdict(&resp),
        (404, "missing_credential".to_string())
    );
    // An override is a deny status: 2xx and 3xx are refused.
    let bad = Ward::try_start(&format!(
        "{}responses: {{status: {{malformed_token: 200}}}}\n",
        config()
    ))
    .await;
    let err = bad.err().expect("a 200 override must be refused");
    assert!(
        err.contains("responses.status.malformed_token: a deny status must be 400-599"),
        "{err}"
    );
}

/// An Envoy route naming a `ward_policy` ward does not know is a 500
/// deny, on a path a public route would pass and on a ward without routes
/// whose default is public: never a fallback to the routes or the default.
#[tokio::test]
async fn an_unknown_envoy_policy_is_a_500_never_a_route_or_the_default() {
    let admin = token("root", json!({"roles": ["admin"]}));
    let with_policy = |name: &str, path: &str| {
        let mut req = check_request("GET", path, &[("authorization", &admin)]);
        let attrs = req.attributes.as_mut().unwrap();
        attrs.context_extensions = [("ward_policy".to_string(), name.to_string())].into();
        req
    };
    let no_routes = "log: {format: text, level: warn}\n\
                     jwt:\n  keys:\n    - {kid: r1, alg: RS256, pem_file: tests/fixtures/keys/rsa.pub}\n\
                     default_policy: public\n";
    for (yaml, what) in [(CONFIG, "routes"), (no_routes, "default public")] {
        let ward = Ward::start(yaml).await;
        let client = authz::connect(ward.grpc_addr).await;
        for path in ["/", "/healthz", "/admin/x"] {
            // Control: a known policy named the same way is applied.
            let resp = authz::send(&client, with_policy("public", path)).await;
            assert_eq!(authz::verdict(&resp).0, 200, "{what} {path}: public");
            let resp = authz::send(&client, with_policy("ghost", path)).await;
            assert_eq!(
                authz::verdict(&resp),
                (500, "unknown_policy".to_string()),
                "{what} {path}"
            );
            assert_ne!(resp.status.as_ref().unwrap().code, 0, "a deny, not an OK");
        }
    }
}
