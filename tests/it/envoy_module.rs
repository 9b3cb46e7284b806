//! ward as an Envoy dynamic module (`envoy-module/`, `libward_envoy.so`)
//! inside a real Envoy 1.40: the ABI version matches, allows carry the
//! identity headers with forged ones removed, denies are ward's own
//! responses, a public route still scrubs, and a config ward rejects makes
//! Envoy refuse the listener with ward's field path in its log. Also: the
//! module imports no callback the Envoy binary does not export, and the
//! docs name exactly the ones it imports.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use crate::support;

use std::path::{Path, PathBuf};
use std::process::Command;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use support::echo::{Echo, header_values};
use support::envoy::{Envoy, envoy_bin};

const SECRET: &str = "module-test-secret-0123456789abcdef";
const SESSION: &str = "112f551c-d6fe-4e67-a818-01deee0e47c9";

/// Where the module is built: beside the `ward` binary (support::module).
fn module_dir() -> &'static Path {
    support::module::dir()
}

fn ward_yaml(seed: &Path) -> String {
    format!(
        "jwt:\n  keys:\n    - kid: k1\n      alg: HS256\n      secret:\n        value: \"{SECRET}\"\n\
         store:\n  seed_file: {}\n",
        seed.display()
    )
}

fn seed_file(dir: &Path) -> PathBuf {
    let path = dir.join("seed.yaml");
    std::fs::write(
        &path,
        format!("sessions:\n  - id: {SESSION}\n    user_id: carol\n    roles: [reader]\n"),
    )
    .unwrap();
    path
}

fn string_value(value: &str) -> Value {
    json!({"@type": "type.googleapis.com/google.protobuf.StringValue", "value": value})
}

/// A bootstrap with the module as the only HTTP filter before the router;
/// `/public/` selects ward's `public` policy through the per-route config.
fn bootstrap(ward_config: &str, upstream: u16, http_port: u16, admin_port: u16) -> Value {
    let addr = |port: u16| json!({"socket_address": {"address": "127.0.0.1", "port_value": port}});
    json!({
        "admin": {"address": addr(admin_port)},
        // Histograms reach the admin endpoint when stats are flushed.
        "stats_flush_interval": "0.1s",
        "static_resources": {
            "listeners": [{
                "name": "ingress",
                "address": addr(http_port),
                "filter_chains": [{"filters": [{
                    "name": "envoy.filters.network.http_connection_manager",
                    "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                        "stat_prefix": "ingress_http",
                        "normalize_path": true,
                        "merge_slashes": true,
                        "access_log": [support::envoy::access_log()],
                        "route_config": {"virtual_hosts": [{
                            "name": "backend",
                            "domains": ["*"],
                            "routes": [
                                {
                                    "match": {"prefix": "/public/"},
                                    "route": {"cluster": "backend"},
                                    "typed_per_filter_config": {"ward": {
                                        "@type": "type.googleapis.com/envoy.extensions.filters.http.dynamic_modules.v3.DynamicModuleFilterPerRoute",
                                        "dynamic_module_config": {"name": "ward_envoy"},
                                        "filter_name": "ward",
                                        "filter_config": string_value("public"),
                                    }},
                                },
                                {"match": {"prefix": "/"}, "route": {"cluster": "backend"}},
                            ],
                        }]},
                        "http_filters": [
                            {
                                "name": "ward",
                                "typed_config": {
                                    "@type": "type.googleapis.com/envoy.extensions.filters.http.dynamic_modules.v3.DynamicModuleFilter",
                                    "dynamic_module_config": {"name": "ward_envoy", "metrics_namespace": "ward"},
                                    "filter_name": "ward",
                                    "filter_config": string_value(ward_config),
                                },
                            },
                            {
                                "name": "envoy.filters.http.router",
                                "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"},
                            },
                        ],
                    },
                }]}],
            }],
            "clusters": [{
                "name": "backend",
                "connect_timeout": "1s",
                "type": "STATIC",
                "load_assignment": {"cluster_name": "backend", "endpoints": [{"lb_endpoints": [
                    {"endpoint": {"address": addr(upstream)}}
                ]}]},
            }],
        },
    })
}

pub(crate) async fn start(ward_config: &str, upstream: &Echo) -> Envoy {
    let dir = module_dir().as_os_str();
    let port = upstream.addr.port();
    Envoy::start_bootstrap_env(
        |http, admin| bootstrap(ward_config, port, http, admin),
        &[("ENVOY_DYNAMIC_MODULES_SEARCH_PATH", dir)],
    )
    .await
}

fn token(sub: &str) -> String {
    let now = support::tokens::now();
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("k1".into());
    let claims = json!({"sub": sub, "iat": now, "exp": now + 600});
    jsonwebtoken::encode(
        &header,
        &claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

#[tokio::test]
async fn module_decides_inside_envoy() {
    let dir = tempfile::tempdir().unwrap();
    let seed = seed_file(dir.path());
    let echo = Echo::start().await;
    let envoy = start(&ward_yaml(&seed), &echo).await;
    assert!(
        envoy
            .logs()
            .contains("Dynamic module ABI version v0.2.0 matched"),
        "Envoy's log:\n{}",
        envoy.logs()
    );

    // A valid JWT: allowed, x-user-id from the token, the forged one gone.
    let bearer = format!("Bearer {}", token("alice"));
    let resp = envoy
        .get(
            "/api/orders",
            &[
                ("authorization", &bearer),
                ("x-user-id", "mallory"),
                ("x-user-admin", "1"),
            ],
        )
        .await;
    assert_eq!(resp.status, 200, "{}\n{}", resp.text(), envoy.logs());
    let seen = echo.requests().pop().expect("reached upstream");
    assert_eq!(header_values(&seen, "x-user-id"), ["alice"]);
    assert_eq!(header_values(&seen, "x-auth-method"), ["jwt"]);
    assert!(header_values(&seen, "x-user-admin").is_empty(), "{seen}");

    // A forged header sent twice (Envoy holds two entries: the check
    // reads a folded copy instead of Envoy's buffers): every value is
    // replaced.
    let resp = envoy
        .get(
            "/api/orders",
            &[
                ("authorization", &bearer),
                ("x-user-id", "mallory"),
                ("x-user-id", "eve"),
            ],
        )
        .await;
    assert_eq!(resp.status, 200, "{}\n{}", resp.text(), envoy.logs());
    let seen = echo.requests().pop().expect("reached upstream");
    assert_eq!(header_values(&seen, "x-user-id"), ["alice"]);

    // No credential: ward's 401, its JSON body and challenge; nothing upstream.
    let hits = echo.hits();
    let resp = envoy.get("/api/orders", &[("x-user-id", "mallory")]).await;
    assert_eq!(resp.status, 401, "{}", resp.text());
    assert_eq!(resp.json()["reason"], "missing_credential");
    assert!(
        resp.header("www-authenticate")
            .is_some_and(|c| c.contains("Bearer"))
    );
    assert_eq!(resp.header("content-type"), Some("application/json"));
    assert_eq!(echo.hits(), hits);

    // A session from the seed file.
    let cookie = format!("session_id={SESSION}");
    let resp = envoy.get("/api/orders", &[("cookie", &cookie)]).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    let seen = echo.requests().pop().unwrap();
    assert_eq!(header_values(&seen, "x-user-id"), ["carol"]);
    assert_eq!(header_values(&seen, "x-auth-method"), ["session"]);

    // A bad token: 401 invalid_token-like, nothing upstream.
    let hits = echo.hits();
    let resp = envoy
        .get("/api/orders", &[("authorization", "Bearer a.b.c")])
        .await;
    assert_eq!(resp.status, 401, "{}", resp.text());
    assert_eq!(echo.hits(), hits);

    // The public route (per-route config): no credential needed, forged
    // identity headers still removed.
    let resp = envoy
        .get(
            "/public/page",
            &[("x-user-id", "mallory"), ("x_auth_method", "jwt")],
        )
        .await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    let seen = echo.requests().pop().unwrap();
    assert!(header_values(&seen, "x-user-id").is_empty(), "{seen}");
    assert!(header_values(&seen, "x_auth_method").is_empty(), "{seen}");
}

/// `envoy --mode validate` of the test bootstrap with this filter config:
/// whether Envoy accepted it, and its log.
fn validate(ward_config: &str) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("envoy.yaml");
    let yaml = serde_yaml_ng::to_string(&bootstrap(ward_config, 1, 2, 3)).unwrap();
    std::fs::write(&config, yaml).unwrap();
    let out = Command::new(envoy_bin())
        .args(["--mode", "validate", "-c"])
        .arg(&config)
        .args(["--log-level", "info"])
        .env("ENVOY_DYNAMIC_MODULES_SEARCH_PATH", module_dir())
        .output()
        .unwrap();
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), log)
}

#[test]
fn invalid_ward_config_rejects_the_listener_with_its_field_path() {
    let (accepted, log) = validate("jwt:\n  keys:\n    - kid: k1\n      alg: HS999\n");
    assert!(!accepted, "Envoy accepted it:\n{log}");
    assert!(log.contains("ward: invalid filter_config"), "{log}");
    assert!(log.contains("jwt.keys[0]: unknown alg `HS999`"), "{log}");
}

/// Opaque tokens are not built for the module: a config with
/// introspection providers is refused, never run treating them as JWTs.
#[test]
fn an_introspection_config_is_refused_with_why() {
    let (accepted, log) = validate(
        "introspection:\n  providers:\n    - {endpoint: \"https://idp.test/i\", client_id: ward, client_secret: {value: s}}\n",
    );
    assert!(!accepted, "Envoy accepted it:\n{log}");
    assert!(
        log.contains("opaque-token introspection is not supported in the Envoy module"),
        "{log}"
    );
}

/// `config_file: PATH` as the filter config: a missing file, or a file
/// ward rejects, makes Envoy refuse the listener, naming the file.
#[test]
fn a_config_file_that_is_missing_or_invalid_rejects_the_listener_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.yaml");
    let (accepted, log) = validate(&format!("config_file: {}", missing.display()));
    assert!(!accepted, "Envoy accepted it:\n{log}");
    let expected = format!(
        "ward: invalid filter_config: config_file: cannot read {}: No such file",
        missing.display()
    );
    assert!(log.contains(&expected), "{log}");

    let bad = dir.path().join("ward.yaml");
    std::fs::write(&bad, "jwt:\n  keys:\n    - kid: k1\n      alg: HS999\n").unwrap();
    let (accepted, log) = validate(&format!("config_file: {}", bad.display()));
    assert!(!accepted, "Envoy accepted it:\n{log}");
    let expected = format!("ward: invalid filter_config ({}):", bad.display());
    assert!(log.contains(&expected), "{log}");
    assert!(log.contains("jwt.keys[0]: unknown alg `HS999`"), "{log}");
}

/// The filter config names ward's file; its `runtime.worker_threads`
/// sizes the module's runtime (threads named `ward-module` in Envoy).
#[tokio::test]
async fn the_filter_config_may_name_wards_file_whose_runtime_threads_apply() {
    let dir = tempfile::tempdir().unwrap();
    let seed = seed_file(dir.path());
    let file = dir.path().join("ward.yaml");
    let yaml = format!("{}runtime:\n  worker_threads: 2\n", ward_yaml(&seed));
    std::fs::write(&file, yaml).unwrap();
    let echo = Echo::start().await;
    let envoy = start(&format!("config_file: {}", file.display()), &echo).await;
    let bearer = format!("Bearer {}", token("erin"));
    let resp = envoy.get("/api", &[("authorization", &bearer)]).await;
    assert_eq!(resp.status, 200, "{}\n{}", resp.text(), envoy.logs());
    let seen = echo.requests().pop().expect("reached upstream");
    assert_eq!(header_values(&seen, "x-user-id"), ["erin"]);
    let tasks = std::fs::read_dir(format!("/proc/{}/task", envoy.pid())).unwrap();
    let named = tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("comm")).ok())
        .filter(|comm| comm.trim() == "ward-module")
        .count();
    assert_eq!(named, 2, "{}", envoy.logs());
}

#[test]
fn module_imports_only_callbacks_envoy_exports() {
    let nm = |args: &[&str], file: &Path| -> Vec<String> {
        let out = Command::new("nm")
            .args(args)
            .arg(file)
            .output()
            .expect("nm");
        assert!(out.status.success(), "nm {}", file.display());
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_whitespace().last())
            .filter(|s| s.starts_with("envoy_dynamic_module_callback_"))
            .map(str::to_owned)
            .collect()
    };
    let exported = nm(&["-D", "--defined-only"], &envoy_bin());
    let imported = nm(
        &["-D", "--undefined-only"],
        &module_dir().join("libward_envoy.so"),
    );
    assert!(
        !imported.is_empty(),
        "the module imports no callback at all?"
    );
    let missing: Vec<&String> = imported.iter().filter(|s| !exported.contains(s)).collect();
    assert!(missing.is_empty(), "not exported by Envoy: {missing:?}");

    // docs/envoy-module.md lists exactly the callbacks the module imports.
    let doc = std::fs::read_to_string("docs/envoy-module.md").unwrap();
    let subset = doc
        .split_once("The ABI subset")
        .expect("the ABI subset paragraph")
        .1;
    let subset = subset.split("\n\n").next().unwrap_or_default();
    let mut documented: Vec<String> = subset
        .split('`')
        .skip(1)
        .step_by(2)
        .map(|name| format!("envoy_dynamic_module_callback_{name}"))
        .filter(|symbol| exported.contains(symbol))
        .collect();
    let mut imported = imported;
    documented.sort();
    imported.sort();
    imported.dedup();
    assert_eq!(documented, imported, "docs/envoy-module.md's ABI subset");
}

/// Neither a panic in the module nor a crash of Envoy (its crash handler
/// prints the signal and a backtrace).
fn assert_no_crash(log: &str) {
    for crash in [
        "panic",
        "Caught Segmentation",
        "Caught Aborted",
        "Backtrace",
    ] {
        assert!(!log.contains(crash), "{crash}:\n{log}");
    }
}

/// Writes `session:{sid}` for `user` in `redis`, valid for an hour.
fn redis_session(redis: &support::redis::RedisServer, sid: &str, user: &str) {
    let expires = (support::tokens::now() + 3600).to_string();
    support::authz::hset(
        redis,
        &format!("session:{sid}"),
        &[("user_id", user), ("expires_at", &expires)],
    );
}

#[tokio::test]
async fn a_store_read_waits_on_the_runtime_with_the_whole_request_held() {
    let mut redis = support::redis::RedisServer::start().await;
    let echo = Echo::start().await;
    let config = format!(
        "store:\n  redis: {{url: \"{}\", command_timeout: 1s}}\n",
        redis.url()
    );
    let envoy = start(&config, &echo).await;
    let (good, unknown) = (support::authz::session_id(), support::authz::session_id());
    redis_session(&redis, &good, "dana");

    // A miss: the check reads Redis on the module's runtime, then the
    // request goes on with its body, identity set.
    let resp = upload(&envoy, &good).await;
    assert_eq!(resp.status, 200, "{}\n{}", resp.text(), envoy.logs());
    let seen = echo.requests().pop().expect("reached upstream");
    assert_eq!(header_values(&seen, "x-user-id"), ["dana"]);
    assert_eq!(seen["body"], "payload-bytes");

    // An unknown session with a body: denied after the read, and nothing
    // at all reached the upstream.
    let hits = echo.hits();
    let resp = upload(&envoy, &unknown).await;
    assert_eq!(resp.status, 401, "{}", resp.text());
    assert_eq!(resp.json()["reason"], "unknown_session");
    assert_eq!(echo.hits(), hits);

    // A client that goes away while its read is in flight (Redis paused): Envoy drops the stream's event; nothing leaks or panics, and
    // the next check works.
    assert_eq!(redis.cli(&["CLIENT", "PAUSE", "600", "ALL"]), "OK");
    let other = support::authz::session_id();
    let cookie = format!("session_id={other}");
    let gone = tokio::time::timeout(
        std::time::Duration::from_millis(200),
        envoy.request("GET", "/api/x", &[("cookie", &cookie)], b""),
    )
    .await;
    if let Ok(resp) = &gone {
        panic!(
            "answered while Redis slept: {} {}",
            resp.status,
            resp.text()
        );
    }
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let cookie = format!("session_id={good}");
    let resp = envoy.get("/api/again", &[("cookie", &cookie)]).await;
    assert_eq!(
        resp.status,
        200,
        "{}\nredis: {:?}\n{}",
        resp.text(),
        redis.cli(&["HGETALL", &format!("session:{good}")]),
        envoy.logs()
    );
    assert_no_crash(&envoy.logs());

    // Redis down under `on_store_error: closed`: 503, nothing upstream.
    redis.stop();
    let hits = echo.hits();
    // A session never read before (a "not found" is remembered a while).
    let cookie = format!("session_id={}", support::authz::session_id());
    let resp = envoy.get("/api/orders", &[("cookie", &cookie)]).await;
    assert_eq!(resp.status, 503, "{}", resp.text());
    assert_eq!(resp.json()["reason"], "store_unavailable");
    assert_eq!(echo.hits(), hits);
}

/// Envoy's `/stats/prometheus` (admin port), as text.
async fn prometheus(envoy: &Envoy) -> String {
    let admin = envoy.admin_addr;
    support::http::get(admin, "/stats/prometheus")
        .await
        .expect("GET /stats/prometheus")
        .text()
        .to_string()
}

/// Envoy's Prometheus text once `ready` holds for it (ward's counters
/// reach Envoy at the module's next stats flush, about a second), or the
/// last text after 5 s.
async fn prometheus_once(envoy: &Envoy, ready: impl Fn(&str) -> bool) -> String {
    let started = std::time::Instant::now();
    loop {
        let text = prometheus(envoy).await;
        if ready(&text) || started.elapsed() > std::time::Duration::from_secs(5) {
            return text;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// The value of one sample line (`name{labels}`), 0 if absent.
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

/// ward's counters in Envoy's Prometheus output move with allows and
/// denies, under the gRPC mode's names and labels (`metrics_namespace:
/// ward` gives `envoy_ward_*`), and the latency histogram fills.
#[tokio::test]
async fn wards_counters_are_envoy_stats_under_the_grpc_modes_names() {
    let dir = tempfile::tempdir().unwrap();
    let seed = seed_file(dir.path());
    let echo = Echo::start().await;
    let envoy = start(&ward_yaml(&seed), &echo).await;
    let check = |labels: &str| format!("envoy_ward_check_total{{{labels}}}");
    let jwt_ok = check(r#"decision="allow",method="jwt",reason="ok""#);
    let missing = check(r#"decision="deny",method="none",reason="missing_credential""#);
    let public = check(r#"decision="allow",method="none",reason="public""#);
    let bearer = format!("Bearer {}", token("alice"));
    for _ in 0..3 {
        let resp = envoy.get("/api", &[("authorization", &bearer)]).await;
        assert_eq!(resp.status, 200, "{}", resp.text());
    }
    for _ in 0..2 {
        assert_eq!(envoy.get("/api", &[]).await.status, 401);
    }
    assert_eq!(envoy.get("/public/x", &[]).await.status, 200);
    let token_cache =
        |r: &str| format!(r#"envoy_ward_cache_requests_total{{cache="token",result="{r}"}}"#);
    let text = prometheus_once(&envoy, |t| {
        sample(t, &public) == 1.0 && sample(t, &token_cache("hit")) >= 2.0
    })
    .await;
    assert_eq!(sample(&text, &jwt_ok), 3.0, "{text}");
    assert_eq!(sample(&text, &missing), 2.0, "{text}");
    assert_eq!(sample(&text, &public), 1.0, "{text}");
    // The token was verified once. Its first check usually waited for the
    // verification threads, so it ran twice (on Envoy's worker, then on
    // the module's runtime), each looking in the token cache: a miss, then
    // a miss (it joins the verification) or a hit (it had landed). If the
    // thread verified before that first poll looked again, the check was
    // decided at once: one miss. The two later requests hit.
    assert_eq!(sample(&text, "envoy_ward_jwt_verifications_total{}"), 1.0);
    let (hits, misses) = (
        sample(&text, &token_cache("hit")),
        sample(&text, &token_cache("miss")),
    );
    assert!((1.0..=2.0).contains(&misses), "misses {misses}: {text}");
    assert!((2.0..=3.0).contains(&hits), "hits {hits}: {text}");
    assert!((3.0..=4.0).contains(&(hits + misses)), "{text}");
    // Histograms reach the admin endpoint at the next stats flush (0.1 s).
    let mut count = 0.0;
    for _ in 0..50 {
        let text = prometheus(&envoy).await;
        count = sample(&text, "envoy_ward_check_duration_microseconds_count{}");
        if count >= 6.0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(count, 6.0);
}

/// With no traffic at all, what ward's background parts count reaches
/// Envoy: a JWKS file loaded on the module's runtime shows as the keys
/// gauge and a successful refresh, copied on Envoy's main thread.
#[tokio::test]
async fn background_counters_and_gauges_reach_envoy_without_requests() {
    let dir = tempfile::tempdir().unwrap();
    let jwks = dir.path().join("jwks.json");
    let keys = json!({"keys": [
        support::tokens::jwk(Algorithm::RS256, "r1"),
        support::tokens::jwk(Algorithm::ES256, "e1"),
    ]});
    std::fs::write(&jwks, keys.to_string()).unwrap();
    let echo = Echo::start().await;
    let envoy = start(
        &format!("jwt:\n  jwks: [{{file: {}}}]\n", jwks.display()),
        &echo,
    )
    .await;
    let gauge = "envoy_ward_jwks_keys{}";
    let refreshed = r#"envoy_ward_jwks_refresh_total{result="ok"}"#;
    let text = prometheus_once(&envoy, |t| sample(t, gauge) == 2.0).await;
    assert_eq!(sample(&text, gauge), 2.0, "{text}");
    assert_eq!(sample(&text, refreshed), 1.0, "{text}");
    assert!(
        sample(&text, "envoy_ward_jwks_last_success_timestamp_seconds{}") > 1.7e9,
        "{text}"
    );
}

/// SIGTERM while checks wait on Redis (paused): Envoy exits cleanly
/// (status 0, no crash or panic in its log), though the module's runtime
/// still holds those checks and their streams' schedulers.
#[tokio::test]
async fn envoy_exits_cleanly_on_sigterm_with_checks_in_flight() {
    let redis = support::redis::RedisServer::start().await;
    let echo = Echo::start().await;
    let config = format!(
        "store:\n  redis: {{url: \"{}\", command_timeout: 1s}}\n",
        redis.url()
    );
    let mut envoy = start(&config, &echo).await;
    assert_eq!(redis.cli(&["CLIENT", "PAUSE", "1500", "ALL"]), "OK");
    let addr = envoy.http_addr;
    let pending: Vec<_> = (0..4)
        .map(|_| {
            let cookie = format!("session_id={}", support::authz::session_id());
            tokio::spawn(async move {
                support::http::send(addr, "GET", "/api", &[("cookie", &cookie)], b"").await
            })
        })
        .collect();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert!(
        pending.iter().all(|p| !p.is_finished()),
        "answered while Redis slept"
    );
    let status = Command::new("kill")
        .args(["-TERM", &envoy.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = envoy.wait_exit(std::time::Duration::from_secs(10)).await;
    let log = envoy.logs();
    assert_eq!(exit, Some(0), "{log}");
    assert_no_crash(&log);
    // The checks' Redis replies arrive after Envoy is gone: nothing else
    // to see, but the runtime must not have taken Envoy down with it.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    for p in pending {
        let _ = p.await;
    }
}

/// A listener update (LDS from a file Envoy watches) builds a new filter
/// config: the changed YAML takes effect (a new key), the process-wide
/// runtime keeps its size and Envoy's log says so, and once the old
/// listener has drained its checker is dropped: its invalidation
/// subscriber leaves Redis.
#[tokio::test]
async fn a_listener_update_takes_the_new_config_and_drops_the_old_checker() {
    let redis = support::redis::RedisServer::start().await;
    let echo = Echo::start().await;
    let lds = tempfile::tempdir().unwrap();
    let lds_file = lds.path().join("lds.yaml");
    let ward = |secret: &str, threads: u32| {
        format!(
            "jwt:\n  keys:\n    - kid: k1\n      alg: HS256\n      secret:\n        value: \"{secret}\"\n\
             store:\n  redis: {{url: \"{}\"}}\nruntime:\n  worker_threads: {threads}\n",
            redis.url()
        )
    };
    // The test bootstrap's listener, served over LDS from `lds_file`.
    let write_lds = |config: &str, http_port: u16| {
        let mut listener =
            bootstrap(config, echo.addr.port(), http_port, 0)["static_resources"]["listeners"][0]
                .clone();
        listener["@type"] = json!("type.googleapis.com/envoy.config.listener.v3.Listener");
        let yaml = serde_yaml_ng::to_string(&json!({"resources": [listener]})).unwrap();
        // Written aside, then moved in: Envoy reloads on the move.
        let next = lds_file.with_extension("next");
        std::fs::write(&next, yaml).unwrap();
        std::fs::rename(&next, &lds_file).unwrap();
    };
    let first = ward(SECRET, 1);
    let module = module_dir().as_os_str();
    let envoy = Envoy::start_bootstrap_env(
        |http, admin| {
            write_lds(&first, http);
            let mut config = bootstrap(&first, echo.addr.port(), http, admin);
            config["static_resources"]["listeners"] = json!([]);
            config["node"] = json!({"id": "ward-test", "cluster": "ward-test"});
            config["dynamic_resources"] = json!({"lds_config": {
                "path_config_source": {"path": lds_file.display().to_string()},
                "resource_api_version": "V3",
            }});
            config
        },
        &[("ENVOY_DYNAMIC_MODULES_SEARCH_PATH", module)],
    )
    .await;
    let old = format!("Bearer {}", token("alice"));
    assert_eq!(
        envoy.get("/api", &[("authorization", &old)]).await.status,
        200
    );
    let subscribers = || {
        let out = redis.cli(&["PUBSUB", "NUMSUB", ward::store::keys::INVALIDATION_CHANNEL]);
        out.lines().last().unwrap_or_default().trim().to_string()
    };
    assert_eq!(subscribers(), "1");

    let secret = "rotated-module-secret-0123456789abcdef";
    write_lds(&ward(secret, 2), envoy.http_addr.port());
    let new = {
        let now = support::tokens::now();
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some("k1".into());
        let claims = json!({"sub": "bob", "iat": now, "exp": now + 600});
        let key = EncodingKey::from_secret(secret.as_bytes());
        format!(
            "Bearer {}",
            jsonwebtoken::encode(&header, &claims, &key).unwrap()
        )
    };
    let started = std::time::Instant::now();
    while envoy.get("/api", &[("authorization", &new)]).await.status != 200 {
        assert!(
            started.elapsed().as_secs() < 10,
            "no update:\n{}",
            envoy.logs()
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(
        envoy.get("/api", &[("authorization", &old)]).await.status,
        401
    );
    let log = envoy.logs();
    assert!(
        log.contains(
            "runtime.worker_threads asks for 2 thread(s), but the module's runtime already runs 1"
        ),
        "{log}"
    );
    // Both configs' subscribers while the old listener drains (1 s); then
    // its filter config is destroyed, and only the new one's is left.
    let mut seen: Vec<String> = Vec::new();
    let started = std::time::Instant::now();
    while seen.last().is_none_or(|n| n != "1") || !seen.iter().any(|n| n == "2") {
        assert!(
            started.elapsed().as_secs() < 10,
            "subscribers over time: {seen:?}"
        );
        let now = subscribers();
        if seen.last() != Some(&now) {
            seen.push(now);
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // ward's counters go on across the update, once the old config is
    // gone too: the allow before it counts (the old config flushed it; the
    // new one holds the series in Envoy from its start).
    let jwt_ok = r#"envoy_ward_check_total{decision="allow",method="jwt",reason="ok"}"#;
    let text = prometheus_once(&envoy, |t| sample(t, jwt_ok) >= 2.0).await;
    assert_eq!(sample(&text, jwt_ok), 2.0, "{text}");
    assert_no_crash(&envoy.logs());
}

/// `envoy --mode validate` builds the filter config for real, but a Redis
/// it cannot reach does not fail it: the store keeps trying, as in
/// `ward serve` (validation waits `store.redis.connect_timeout` at most).
#[test]
fn validation_accepts_a_redis_store_it_cannot_reach() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config =
        format!("store:\n  redis: {{url: \"redis://127.0.0.1:{port}\", connect_timeout: 200ms}}\n");
    let started = std::time::Instant::now();
    let (accepted, log) = validate(&config);
    assert!(accepted, "{log}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "{log}"
    );
}

/// `POST /api/upload` with a body, as the session `sid`'s browser.
async fn upload(envoy: &Envoy, sid: &str) -> support::http::Response {
    let cookie = format!("session_id={sid}");
    envoy
        .request(
            "POST",
            "/api/upload",
            &[("cookie", &cookie)],
            b"payload-bytes",
        )
        .await
}
