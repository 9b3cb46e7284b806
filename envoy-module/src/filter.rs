//! The module's filter, free of FFI: a filter config holds one checker
//! (built from ward's YAML, as `ward serve` builds its own), and each
//! stream's request headers become ward's [`Request`], are checked, and
//! the decision is applied through [`Host`]: an allow sets the identity
//! headers and removes the forged ones (the gRPC mode's managed-header
//! contract, `headers.rs`), a deny is a local reply with ward's status,
//! headers and JSON body (`response.rs`).

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Instant;
use ward::config::{Config as WardConfig, ConfigError, ProcessEnv};
use ward::decision::{Decision, Deny};
use ward::headers::ManagedHeaders;
use ward::jwks::KeyStore;
use ward::lookup::Lookups;
use ward::metrics::Metrics;
use ward::reason::Reason;
use ward::request::{Headers, Request, fold_headers};
use ward::response::Responder;
use ward::store::Store;
use ward::wiring::{self, ServerChecker};

/// What the filter needs from Envoy for one stream (`abi::Stream`, or a
/// fake in tests).
pub trait Host {
    /// Every request header, names as Envoy holds them (lowercase),
    /// pseudo-headers (`:method`, `:path`, `:authority`) included.
    fn request_headers(&mut self) -> Vec<(String, String)>;
    /// Sets a request header (replacing every value), or removes it
    /// (`None`).
    fn set_header(&mut self, name: &str, value: Option<&str>);
    /// Makes Envoy pick the route again (headers it matches on changed).
    fn clear_route_cache(&mut self);
    /// Answers the request locally.
    fn send_response(&mut self, status: u16, headers: &[(&str, &str)], body: &str, details: &str);
    /// `source.address` (`ip:port`) of the downstream connection.
    fn source_address(&mut self) -> Option<String>;
    /// The ward policy the route selects (the per-route config).
    fn route_policy(&mut self) -> Option<String>;
    /// A line in Envoy's log.
    fn log(&mut self, level: LogLevel, message: &str);
}

/// Envoy's log levels that ward writes at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    Info,
    Warn,
    Error,
}

/// What a hook tells Envoy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The request goes on (allowed, headers edited).
    Continue,
    /// ward answered it locally (a deny).
    Answered,
}

/// One filter config: what `ward serve` would run for this YAML.
pub struct Config {
    checker: ServerChecker,
    managed: ManagedHeaders,
    responder: Responder,
    /// Kept for the embedded store's readers (not exported as Envoy stats
    /// yet).
    _metrics: Arc<Metrics>,
}

impl Config {
    /// Parses and validates ward's YAML (every problem with its field
    /// path, as `ward check-config` reports them) and builds the checker.
    /// `Err` is the message for Envoy's log; Envoy then rejects the
    /// filter config.
    pub fn new(yaml: &[u8]) -> Result<Config, String> {
        let fail = |why: String| format!("ward: invalid filter_config: {why}");
        let text = std::str::from_utf8(yaml).map_err(|_| fail("not UTF-8".into()))?;
        let config = WardConfig::from_yaml(text).map_err(|e| fail(e.to_string()))?;
        let mut problems = ward::setup::problems(&config, &ProcessEnv);
        problems.extend(unsupported(&config));
        if !problems.is_empty() {
            return Err(fail(ConfigError::Invalid(problems).to_string()));
        }
        build(&config).map_err(fail)
    }
}

/// What this version of the module cannot run yet (it decides only what
/// needs no waiting), as config problems with their field paths.
fn unsupported(config: &WardConfig) -> Vec<ward::config::ConfigProblem> {
    let not_yet = |path: &str, what: &str| ward::config::ConfigProblem {
        path: path.into(),
        message: format!(
            "{what} is not supported by the Envoy module yet (docs/envoy-module.md); \
             use the gRPC server for it"
        ),
    };
    let mut p = Vec::new();
    if config.store.redis.is_some() {
        p.push(not_yet("store.redis", "Redis"));
    }
    if !config.jwt.jwks.is_empty() {
        p.push(not_yet("jwt.jwks", "a JWKS source"));
    }
    if config.jwt.from_query.is_some() {
        p.push(not_yet("jwt.from_query", "a token in the query"));
    }
    p
}

fn build(config: &WardConfig) -> Result<Config, String> {
    // The embedded store is seeded once here, on a runtime that lives only
    // for that; reads then never wait.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("runtime: {e}"))?;
    let store = runtime
        .block_on(Store::open(config))
        .map_err(|e| format!("store: {e}"))?;
    drop(runtime);
    let metrics = Arc::new(Metrics::new().map_err(|e| format!("metrics: {e}"))?);
    let keys = KeyStore::new(&config.jwt).map_err(|e| format!("jwt.keys: {e}"))?;
    let lookups = Arc::new(Lookups::new(config, store, metrics.clone()));
    let checker = wiring::checker(config, keys, lookups, metrics.clone())
        .map_err(|e| format!("policies: {e}"))?;
    Ok(Config {
        checker,
        managed: ManagedHeaders::from_config(config),
        responder: Responder::from_config(config),
        _metrics: metrics,
    })
}

/// A per-route config: the ward policy the route selects, by name (the
/// module's equivalent of the gRPC mode's `ward_policy`). An unknown name
/// is a 500 deny at request time, as in gRPC mode.
pub struct RouteConfig {
    pub policy: String,
}

impl RouteConfig {
    pub fn new(bytes: &[u8]) -> Result<RouteConfig, String> {
        let policy = std::str::from_utf8(bytes)
            .map(str::trim)
            .map_err(|_| "ward: per-route config: not UTF-8".to_string())?;
        if policy.is_empty() {
            return Err("ward: per-route config: a policy name is required".into());
        }
        Ok(RouteConfig {
            policy: policy.to_owned(),
        })
    }
}

/// One stream's filter.
pub struct Filter {
    config: &'static Config,
    /// ward answered this stream locally: its body and trailers stop.
    pub answered: bool,
}

impl Filter {
    /// `config` outlives every filter made from it (Envoy destroys the
    /// config after its filters).
    pub fn new(config: &'static Config) -> Self {
        Filter {
            config,
            answered: false,
        }
    }

    pub fn on_request_headers(&mut self, host: &mut impl Host) -> Verdict {
        let verdict = check(self.config, host);
        self.answered = verdict == Verdict::Answered;
        verdict
    }
}

/// One check, start to finish.
pub fn check(config: &Config, host: &mut impl Host) -> Verdict {
    let start = Instant::now();
    let pairs = fold_headers(host.request_headers());
    let headers = Headers::owned(&pairs);
    let policy = host.route_policy();
    let source_ip = host.source_address().as_deref().and_then(parse_ip);
    let req = Request {
        method: headers.get(":method").unwrap_or(""),
        host: headers
            .get(":authority")
            .or_else(|| headers.get("host"))
            .unwrap_or(""),
        path: headers.get(":path").unwrap_or("/"),
        headers,
        policy: policy.as_deref(),
        source_ip,
    };
    let decision = match poll_once(config.checker.check(&req, ward::unix_now())) {
        Some(decision) => decision,
        None => {
            host.log(
                LogLevel::Warn,
                "ward: the check needed to wait (a store read or key fetch), \
                 which this module version does not do: denied 503 store_unavailable",
            );
            Decision::Deny(Deny::new(Reason::StoreUnavailable))
        }
    };
    match &decision {
        Decision::Allow(identity) => allow(config, &req, &identity.headers, host),
        Decision::AllowAnonymous { .. } => allow(config, &req, &[], host),
        Decision::Deny(deny) => {
            let d = config.responder.deny(Some(&req), deny);
            let headers: Vec<(&str, &str)> =
                d.headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let details = format!("ward_{}", deny.reason.as_str());
            host.send_response(d.status, &headers, &d.body, &details);
            log_deny(host, &req, deny, d.status, start);
            Verdict::Answered
        }
    }
}

/// Sets the identity headers, removes forged managed headers and
/// credentials not forwarded; the route is chosen again if anything
/// changed.
fn allow(
    config: &Config,
    req: &Request<'_>,
    set: &[(String, String)],
    host: &mut impl Host,
) -> Verdict {
    let edits = config.managed.edits(req, set);
    for (name, value) in set.iter().chain(&edits.set) {
        host.set_header(name, Some(value));
    }
    for name in &edits.remove {
        host.set_header(name, None);
    }
    if !set.is_empty() || !edits.set.is_empty() || !edits.remove.is_empty() {
        host.clear_route_cache();
    }
    Verdict::Continue
}

/// The deny's log line, as `ward serve` writes it, through Envoy's log.
fn log_deny(host: &mut impl Host, req: &Request<'_>, deny: &Deny, status: u16, start: Instant) {
    host.log(LogLevel::Info, &format!(
        "ward: deny request_id={} reason={} status={} policy={} method={} credential={} path={} transport=module micros={}",
        req.request_id().unwrap_or(""),
        deny.reason.as_str(),
        status,
        deny.policy.as_ref().map_or("", |p| p.name.as_str()),
        deny.method.map_or("none", |m| m.as_str()),
        deny.credential
            .as_ref()
            .map(ward::credentials::short_hash)
            .unwrap_or_default(),
        req.path,
        start.elapsed().as_micros(),
    ));
}

/// A 500 for a check that panicked: fail closed, with a reason.
pub fn internal_error(host: &mut impl Host) {
    host.send_response(
        500,
        &[
            ("content-type", "application/json"),
            ("cache-control", "no-store"),
        ],
        r#"{"error":"server_error","reason":"internal_error","status":500}"#,
        "ward_internal_error",
    );
}

/// `ip:port`, `[v6]:port` or a bare address.
fn parse_ip(addr: &str) -> Option<IpAddr> {
    addr.parse::<SocketAddr>()
        .map(|s| s.ip())
        .or_else(|_| addr.parse::<IpAddr>())
        .ok()
}

/// The future's value if it completes without waiting; `None` if it would
/// wait (it is dropped then, which every read of ward's is safe against).
fn poll_once<F: Future>(future: F) -> Option<F::Output> {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    match future.as_mut().poll(&mut cx) {
        Poll::Ready(value) => Some(value),
        Poll::Pending => None,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    /// A local reply: status, headers, body, details.
    type Sent = (u16, Vec<(String, String)>, String, String);

    /// The callbacks of one stream, recorded.
    #[derive(Default)]
    struct Fake {
        headers: Vec<(String, String)>,
        policy: Option<String>,
        set: Vec<(String, Option<String>)>,
        route_cleared: bool,
        sent: Option<Sent>,
    }

    impl Fake {
        fn new(headers: &[(&str, &str)]) -> Self {
            let mut all = vec![
                (":method".to_string(), "GET".to_string()),
                (":path".to_string(), "/api".to_string()),
                (":authority".to_string(), "example.test".to_string()),
            ];
            all.extend(headers.iter().map(|(k, v)| (k.to_string(), v.to_string())));
            Fake {
                headers: all,
                ..Fake::default()
            }
        }
    }

    impl Host for Fake {
        fn request_headers(&mut self) -> Vec<(String, String)> {
            self.headers.clone()
        }
        fn set_header(&mut self, name: &str, value: Option<&str>) {
            self.set.push((name.into(), value.map(Into::into)));
        }
        fn clear_route_cache(&mut self) {
            self.route_cleared = true;
        }
        fn send_response(
            &mut self,
            status: u16,
            headers: &[(&str, &str)],
            body: &str,
            details: &str,
        ) {
            let headers = headers.iter().map(|(k, v)| (k.to_string(), v.to_string()));
            self.sent = Some((status, headers.collect(), body.into(), details.into()));
        }
        fn source_address(&mut self) -> Option<String> {
            Some("127.0.0.1:5000".into())
        }
        fn route_policy(&mut self) -> Option<String> {
            self.policy.clone()
        }
        fn log(&mut self, _: LogLevel, _: &str) {}
    }

    fn config() -> Config {
        Config::new(b"jwt:\n  keys:\n    - kid: k\n      alg: HS256\n      secret:\n        value: s3cr3t-s3cr3t-s3cr3t-s3cr3t-s3cr3t\n")
            .unwrap()
    }

    #[test]
    fn a_missing_credential_is_wards_401() {
        let config = config();
        let mut host = Fake::new(&[("x-user-id", "mallory")]);
        assert_eq!(check(&config, &mut host), Verdict::Answered);
        let (status, headers, body, details) = host.sent.unwrap();
        assert_eq!(status, 401);
        assert!(headers.iter().any(|(k, _)| k == "www-authenticate"));
        assert!(body.contains("\"reason\":\"missing_credential\""), "{body}");
        assert_eq!(details, "ward_missing_credential");
        assert!(host.set.is_empty());
    }

    #[test]
    fn a_public_route_removes_forged_headers() {
        let config = config();
        let mut host = Fake::new(&[("x-user-id", "mallory"), ("x_auth_method", "jwt")]);
        host.policy = Some("public".into());
        assert_eq!(check(&config, &mut host), Verdict::Continue);
        assert!(host.sent.is_none());
        assert_eq!(
            host.set,
            [
                ("x-user-id".to_string(), None),
                ("x_auth_method".to_string(), None)
            ]
        );
        assert!(host.route_cleared);
    }

    #[test]
    fn an_unknown_route_policy_fails_closed() {
        let config = config();
        let mut host = Fake::new(&[]);
        host.policy = Some("nope".into());
        assert_eq!(check(&config, &mut host), Verdict::Answered);
        assert_eq!(host.sent.unwrap().0, 500);
    }

    #[test]
    fn what_would_wait_is_refused_at_config_time_with_its_path() {
        let e = Config::new(b"store:\n  redis:\n    url: redis://127.0.0.1:1\n")
            .err()
            .unwrap();
        assert!(e.contains("store.redis"), "{e}");
        let e = Config::new(b"jwt:\n  keys: [{kid: k, alg: HS999}]\n")
            .err()
            .unwrap();
        assert!(e.contains("jwt.keys[0]"), "{e}");
    }
}
