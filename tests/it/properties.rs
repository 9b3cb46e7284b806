//! Property tests of the pure core against simple reference models:
//!
//! - route selection (`policy/route.rs`: hash indexes, glob trie, one
//!   `RegexSet`) equals a linear first-match over the same routes;
//! - on an allow, every managed header the client sent is overwritten or
//!   listed in `headers_to_remove`, never both (the header set both
//!   transports send: the identity's headers and `ManagedHeaders::to_remove`);
//! - a deny, as rendered for Envoy (`response.rs`, `decision.rs`), never
//!   carries the credential the request presented.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use proptest::prelude::*;
use proptest::sample::select;
use std::sync::{Arc, OnceLock};
use ward::config::Config;
use ward::decision::Decision;
use ward::headers::ManagedHeaders;
use ward::identity::{ClaimRenderer, HeaderRules};
use ward::wiring::{self, ServerChecker};

use ward::credential_kind::CredentialKind;
use ward::fields::Fields;
use ward::policy::{PathMatch, RouteSpec, RouteTable};
use ward::request::{Headers, Request};
use ward::response::Responder;
use ward::session::Session;

// ---------------------------------------------------------------- routes

/// Path segments few enough to collide often, in two cases.
const SEGMENTS: [&str; 6] = ["a", "b", "api", "v1", "Admin", "admin"];

fn canonical_path() -> impl Strategy<Value = String> {
    prop::collection::vec(select(&SEGMENTS[..]), 0..4).prop_map(|s| format!("/{}", s.join("/")))
}

fn glob() -> impl Strategy<Value = String> {
    let segment = prop_oneof![
        3 => select(&SEGMENTS[..]).prop_map(str::to_string),
        1 => Just("*".to_string()),
        1 => Just("**".to_string()),
        1 => Just("a*".to_string()),
        1 => Just("*i*".to_string()),
    ];
    prop::collection::vec(segment, 0..4).prop_map(|s| format!("/{}", s.join("/")))
}

fn regex() -> impl Strategy<Value = String> {
    (
        select(&SEGMENTS[..]),
        select(&["/.*", "(/[^/]+)?", "", "/v[0-9]+"][..]),
    )
        .prop_map(|(seg, tail)| format!("/{seg}{tail}"))
}

fn route() -> impl Strategy<Value = RouteSpec> {
    let path = prop_oneof![
        canonical_path().prop_map(PathMatch::Exact),
        canonical_path().prop_map(PathMatch::Prefix),
        glob().prop_map(PathMatch::Glob),
        regex().prop_map(PathMatch::Regex),
    ];
    const HOSTS: &[&[&str]] = &[&[], &["api.example.com"], &["*.example.com"]];
    const METHODS: &[&[&str]] = &[&[], &["GET"], &["POST", "DELETE"]];
    let (hosts, methods) = (select(HOSTS), select(METHODS));
    (path, hosts, methods, any::<bool>()).prop_map(|(path, hosts, methods, case_sensitive)| {
        RouteSpec {
            path,
            hosts: hosts.iter().map(|h| h.to_string()).collect(),
            methods: methods.iter().map(|m| m.to_string()).collect(),
            case_sensitive,
        }
    })
}

fn fold(s: &str, case_sensitive: bool) -> String {
    if case_sensitive {
        s.to_string()
    } else {
        s.to_ascii_lowercase()
    }
}

/// `*` within one segment (any run of characters), by recursion.
fn segment_glob(pattern: &[u8], seg: &[u8]) -> bool {
    match pattern.split_first() {
        None => seg.is_empty(),
        Some((b'*', rest)) => (0..=seg.len()).any(|k| segment_glob(rest, &seg[k..])),
        Some((c, rest)) => seg.first() == Some(c) && segment_glob(rest, &seg[1..]),
    }
}

/// `**` is any number of segments (none included).
fn path_glob(pattern: &[&str], path: &[&str]) -> bool {
    match pattern.split_first() {
        None => path.is_empty(),
        Some((&"**", rest)) => (0..=path.len()).any(|k| path_glob(rest, &path[k..])),
        Some((p, rest)) => path.split_first().is_some_and(|(s, tail)| {
            segment_glob(p.as_bytes(), s.as_bytes()) && path_glob(rest, tail)
        }),
    }
}

fn segments(p: &str) -> Vec<&str> {
    p.split('/').filter(|s| !s.is_empty()).collect()
}

fn path_matches(spec: &RouteSpec, path: &str) -> bool {
    let cs = spec.case_sensitive;
    let path = fold(path, cs);
    match &spec.path {
        PathMatch::Exact(p) => fold(p, cs) == path,
        PathMatch::Prefix(p) => {
            let p = fold(p, cs);
            p == "/" || path == p || path.starts_with(&format!("{p}/"))
        }
        PathMatch::Glob(g) => path_glob(&segments(&fold(g, cs)), &segments(&path)),
        PathMatch::Regex(r) => {
            let flags = if cs { "" } else { "(?i)" };
            let re = regex::Regex::new(&format!("{flags}^(?:{r})$")).unwrap();
            re.is_match(&path)
        }
    }
}

fn host_matches(pattern: &str, host: &str) -> bool {
    let host = match host.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    }
    .to_ascii_lowercase();
    match pattern.strip_prefix("*.") {
        Some(suffix) => host.ends_with(&format!(".{suffix}")),
        None => host == pattern,
    }
}

/// The reference: the first route, in order, that matches everything.
fn linear_first_match(specs: &[RouteSpec], host: &str, method: &str, path: &str) -> Option<usize> {
    specs.iter().position(|s| {
        path_matches(s, path)
            && (s.methods.is_empty() || s.methods.iter().any(|m| m == method))
            && (s.hosts.is_empty() || s.hosts.iter().any(|h| host_matches(h, host)))
    })
}

proptest! {
    #[test]
    fn route_table_is_a_linear_first_match(
        specs in prop::collection::vec(route(), 0..12),
        requests in prop::collection::vec((
            canonical_path(),
            select(&["api.example.com", "API.example.com:8443", "x.example.com", "example.com"][..]),
            select(&["GET", "POST", "DELETE"][..]),
        ), 1..16),
    ) {
        let table = RouteTable::new(specs.clone()).unwrap();
        for (path, host, method) in &requests {
            prop_assert_eq!(
                table.find(host, method, path),
                linear_first_match(&specs, host, method, path),
                "{} {} {}", method, host, path
            );
        }
    }
}

// ------------------------------------------------------- forged headers

/// Header names a client might send, in every spelling that matters.
const CLIENT_HEADERS: &[&str] = &[
    "x-user-id",
    "X-User-Id",
    "x_user_id",
    "x-user_roles",
    "x-auth-method",
    "X_AUTH_METHOD",
    "x-auth-anything",
    "x-tenant",
    "X_Tenant",
    "x-org",
    "x-api-key-id",
    "x_api_key_id",
    "x-user-email",
    "accept",
    "x-userid",
    "authorization",
    "x-plan",
    "X_PLAN",
    "x-user-team",
];

const MAPPED_HEADERS: [&str; 4] = ["x-tenant", "x-org", "x-user-team", "x_plan"];

/// A config mapping claims (or session fields) `c0..` to `headers`.
fn mapping_config(headers: &[&str]) -> Config {
    let claims: Vec<String> = headers
        .iter()
        .enumerate()
        .map(|(i, h)| format!("{{claim: c{i}, header: {h}}}"))
        .collect();
    let fields: Vec<String> = headers
        .iter()
        .enumerate()
        .map(|(i, h)| format!("{{field: c{i}, header: {h}}}"))
        .collect();
    let yaml = format!(
        "jwt:\n  keys: [{{kid: k, alg: HS256, secret: {{value: {SECRET}}}}}]\n  claims:\n    headers: [{}]\nsessions:\n  fields: [{}]\n",
        claims.join(", "),
        fields.join(", ")
    );
    Config::from_yaml(&yaml).unwrap()
}

/// The managed set as ARCHITECTURE.md states it, written independently:
/// names compared lowercase with `_` as `-`; a configured prefix, or any
/// header ward itself may set.
fn managed_by_model(config: &Config, name: &str) -> bool {
    let canon = |s: &str| s.to_ascii_lowercase().replace('_', "-");
    let name = canon(name);
    let mut own = vec![
        config.headers.user_id.clone(),
        config.headers.auth_method.clone(),
        config.api_keys.id_header.clone(),
        "x-user-email".into(),
        "x-user-roles".into(),
        "x-user-scopes".into(),
    ];
    own.extend(config.jwt.claims.headers.iter().map(|m| m.header.clone()));
    own.extend(config.sessions.fields.iter().map(|f| f.header.clone()));
    config
        .headers
        .managed_prefixes
        .iter()
        .any(|p| name.starts_with(&canon(p)))
        || own.iter().any(|h| canon(h) == name)
}

proptest! {
    #[test]
    fn forged_identity_headers_never_reach_the_backend(
        mapped in prop::collection::vec(select(&MAPPED_HEADERS[..]), 0..4),
        values in prop::collection::vec("[a-z]{0,3}", 4),
        sent in prop::collection::vec(select(CLIENT_HEADERS), 0..10),
        session in any::<bool>(),
    ) {
        let config = mapping_config(&mapped);
        prop_assert!(ward::setup::problems(&config, &ward::config::ProcessEnv).is_empty());
        let identity = if session {
            let mut fields = Fields::default();
            fields.insert("user_id".into(), "u1".into());
            for (i, v) in values.iter().enumerate() {
                fields.insert(format!("c{i}"), v.clone());
            }
            let map: Vec<(String, String)> = config.sessions.fields.iter()
                .map(|f| (f.field.clone(), f.header.clone())).collect();
            Session::parse(&fields).unwrap()
                .identity(&HeaderRules::new(&config.headers), &map).unwrap()
        } else {
            let mut claims = serde_json::Map::new();
            claims.insert("sub".into(), "u1".into());
            for (i, v) in values.iter().enumerate() {
                claims.insert(format!("c{i}"), v.clone().into());
            }
            ClaimRenderer::new(&config.jwt.claims, HeaderRules::new(&config.headers)).render(&claims, CredentialKind::Jwt).unwrap()
        };
        let managed = ManagedHeaders::from_config(&config);
        let set: Vec<(&str, &str)> = identity.headers().collect();
        for (anonymous, set) in [(false, &set[..]), (true, &[][..])] {
            let remove = managed.to_remove(sent.iter().copied(), set.iter().copied());
            for name in &sent {
                let overwritten = set.iter().any(|(s, _)| s.eq_ignore_ascii_case(name));
                let removed = remove.contains(&name.to_ascii_lowercase());
                if managed_by_model(&config, name) {
                    prop_assert!(overwritten != removed,
                        "{} (anonymous: {}): overwritten {}, removed {}", name, anonymous, overwritten, removed);
                }
            }
            for r in &remove {
                prop_assert!(sent.iter().any(|n| n.eq_ignore_ascii_case(r)), "{} was not sent", r);
                prop_assert!(!set.iter().any(|(s, _)| s.eq_ignore_ascii_case(r)), "{} set and removed", r);
            }
        }
    }
}

// ------------------------------------------------------------ deny body

const SECRET: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
const NOW: u64 = 1_700_000_000;

struct Fixture {
    runtime: tokio::runtime::Runtime,
    checker: ServerChecker,
    responder: Responder,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let yaml = format!(
            r#"
jwt:
  keys: [{{kid: k, alg: HS256, secret: {{value: {SECRET}}}}}]
policies:
  admins: {{roles: {{any_of: [admin]}}, login_url: "https://login.example.com/?a=1"}}
routes:
  - {{exact: /health, policy: public}}
  - {{prefix: /admin, policy: admins}}
  - {{prefix: /api, accept: [apikey, jwt]}}
  - {{prefix: /web, mode: optional}}
  - {{prefix: /closed, policy: deny}}
default_policy: required
"#
        );
        let config = Config::from_yaml(&yaml).unwrap();
        assert_eq!(
            ward::setup::problems(&config, &ward::config::ProcessEnv),
            vec![]
        );
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let checker = runtime.block_on(async {
            let metrics = Arc::new(ward::metrics::Metrics::new().unwrap());
            let keys = ward::jwks::KeyStore::new(&config.jwt).unwrap();
            let store = ward::store::Store::open(&config).await.unwrap();
            let lookups = Arc::new(ward::lookup::Lookups::new(&config, store, metrics.clone()));
            wiring::checker(&config, keys, lookups, metrics).unwrap()
        });
        Fixture {
            runtime,
            checker,
            responder: Responder::from_config(&config),
        }
    })
}

/// A token for `sub` that verifies, with `exp` at `now + exp_in`.
fn token(sub: &str, exp_in: i64) -> String {
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.kid = Some("k".into());
    let claims = serde_json::json!({"sub": sub, "exp": NOW as i64 + exp_in, "roles": ["reader"]});
    jsonwebtoken::encode(
        &header,
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

/// Where a request carries its credential.
const PLACES: [&str; 9] = [
    "authorization: Bearer {}",
    "authorization: Bearer {}",
    "authorization: Bearer {}",
    "authorization: ApiKey {}",
    "x-api-key: {}",
    "cookie: theme=dark; session_id={}",
    "x-session-id: {}",
    "authorization: Bearer {},x",
    "cookie: session_id=\"{}\"",
];

fn credential() -> impl Strategy<Value = String> {
    prop_oneof![
        1 => "[A-Za-z0-9_-]{16,48}",
        1 => "ward_[A-Za-z0-9]{38}",
        1 => "[A-Za-z0-9_-]{22}",
        3 => (select(&["alice", "root"][..]), -100i64..100).prop_map(|(s, e)| token(s, e)),
        1 => (-100i64..100).prop_map(|e| format!("{}A", token("eve", e))),
    ]
}

proptest! {
    #[test]
    fn a_deny_never_carries_the_credential(
        credential in credential(),
        place in select(&PLACES[..]),
        path in select(&["/", "/health", "/admin/x", "/api/v1", "/web", "/closed", "/%2e%2e/x"][..]),
        browser in any::<bool>(),
        request_id in "[a-z]{0,12}",
    ) {
        let fx = fixture();
        let mut headers = vec![
            ("x-request-id".to_string(), request_id.clone()),
            ("x-forwarded-proto".to_string(), "https".to_string()),
        ];
        if browser {
            headers.push(("accept".into(), "text/html".into()));
        }
        let (name, value) = place.replace("{}", &credential).split_once(": ").map(|(n, v)| (n.to_string(), v.to_string())).unwrap();
        headers.push((name, value));
        let req = Request {
            method: "GET",
            host: "api.example.com",
            path,
            headers: Headers::owned(&headers),
            policy: None,
            source_ip: None,
            principal: None,
        };
        let decision = fx.runtime.block_on(fx.checker.check(&req, NOW));
        if let Decision::Deny(denied) = decision {
            let reason = denied.reason;
            let deny = fx.responder.deny(Some(&req), &denied);
            prop_assert!(!deny.body.contains(&credential), "{:?}: body {}", reason, deny.body);
            for (h, v) in &deny.headers {
                prop_assert!(!v.contains(&credential), "{:?}: {}: {}", reason, h, v);
            }
        }
    }
}
