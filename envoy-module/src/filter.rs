//! The module's filter, free of FFI: a filter config holds one checker
//! (built from ward's YAML, as `ward serve` builds its own), and each
//! stream's request headers become ward's [`Request`], are checked, and
//! the decision is applied through [`Host`]: an allow sets the identity
//! headers and removes the forged ones (the gRPC mode's managed-header
//! contract, `headers.rs`), a deny is a local reply with ward's status,
//! headers and JSON body (`response.rs`).

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::pin::{Pin, pin};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Instant;
use tokio::runtime::Runtime;
use tokio::sync::watch;
use ward::config::{Config as WardConfig, ConfigError, ProcessEnv};
use ward::decision::Decision;
use ward::headers::ManagedHeaders;
use ward::jwks::KeyStore;
use ward::lookup::Lookups;
use ward::metrics::Metrics;
use ward::request::{Headers, Request};
use ward::response::Responder;
use ward::store::Store;
use ward::wiring::{self, ServerChecker};

use crate::peer::{self, CertField};
use crate::plan::Plan;
use crate::runtime;
use crate::source;
use crate::stats::{Commit, ConfigHost, FLUSH_EVERY, Flush, Stats};
use crate::view::{RawHeader, View};

/// What the filter needs from Envoy for one stream (`abi::Stream`, or a
/// fake in tests).
pub trait Host {
    /// Every request header, names as Envoy holds them (lowercase),
    /// pseudo-headers (`:method`, `:path`, `:authority`) included: Envoy's
    /// own bytes, borrowed until the next call (any change to the headers
    /// invalidates them).
    fn request_headers(&mut self) -> Vec<RawHeader<'_>>;
    /// Sets a request header (replacing every value), or removes it
    /// (`None`).
    fn set_header(&mut self, name: &str, value: Option<&str>);
    /// Adds a request header the request does not have (cheaper than
    /// `set_header`, which first looks for and removes every value).
    fn add_header(&mut self, name: &str, value: &str);
    /// Makes Envoy pick the route again (headers it matches on changed).
    fn clear_route_cache(&mut self);
    /// Answers the request locally.
    fn send_response(&mut self, status: u16, headers: &[(&str, &str)], body: &str, details: &str);
    /// The IP of `source.address` (`ip:port`, [`parse_ip`]) of the
    /// downstream connection.
    fn source_ip(&mut self) -> Option<IpAddr>;
    /// One field of the downstream connection's peer certificate
    /// (`peer.rs`), Envoy's bytes; `None` without TLS, without a client
    /// certificate, or without that field.
    fn peer_certificate(&mut self, field: CertField) -> Option<&[u8]>;
    /// The ward policy the route selects (the per-route config).
    fn route_policy(&mut self) -> Option<Arc<str>>;
    /// A line in Envoy's log.
    fn log(&mut self, level: LogLevel, message: &str);
    /// A handle that, from any thread, makes Envoy call this stream's
    /// `scheduled` hook on its worker (dropped if the stream is gone).
    fn resumer(&mut self) -> Option<Box<dyn Resume>>;
    /// Lets a request that was stopped go on upstream.
    fn continue_decoding(&mut self);
    /// Adds `by` to a counter defined at config time ([`ConfigHost`]), in the
    /// series of these label values.
    fn increment_counter(&mut self, id: usize, labels: &[&str], by: u64);
    /// Records a value in a histogram defined at config time.
    fn record_histogram(&mut self, id: usize, value: u64);
    /// Sets strings in the stream's dynamic metadata, every entry under
    /// one namespace in one call (Envoy merges them into the stream's
    /// metadata once, not once per key).
    fn set_metadata(&mut self, namespace: &str, entries: &[(&str, &str)]);
}

/// The dynamic-metadata namespace ward writes to: the gRPC mode's (Envoy's
/// ext_authz filter stores `CheckResponse.dynamic_metadata` there), so
/// access-log formats and metadata matchers work unchanged in either mode.
pub const METADATA_NAMESPACE: &str = "envoy.filters.http.ext_authz";

/// Wakes a stream's worker (`on_http_filter_scheduled`). Dropping it
/// wakes it too, so a check that panics or is cancelled on the runtime
/// still ends its stream (with a 500), never leaves it hanging.
pub trait Resume: Send {}

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
    /// The check waits (a store read, a key fetch) on the module's
    /// runtime: the whole request stops until the stream is resumed.
    Wait,
}

/// What every check of one filter config shares, across Envoy's workers
/// and the module's runtime.
pub(crate) struct Shared {
    checker: ServerChecker,
    pub(crate) managed: ManagedHeaders,
    pub(crate) responder: Responder,
    /// What the checker's parts count (read by `stats` for Envoy).
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) stats: Stats,
}

/// One filter config: what `ward serve` would run for this YAML. Dropped
/// (Envoy's `config_destroy`) when Envoy replaces it; checks still in
/// flight keep its checker until they finish, and its background tasks
/// (JWKS fetchers, store invalidations) stop.
pub struct Config {
    pub(crate) shared: Arc<Shared>,
    runtime: tokio::runtime::Handle,
    /// Dropped with the config: the background tasks end.
    stop: watch::Sender<bool>,
    /// Whether a check may use the peer's principal (`peer::needed`):
    /// else its three attribute reads are skipped.
    reads_principal: bool,
}

impl Config {
    /// Parses and validates ward's YAML (every problem with its field
    /// path, as `ward check-config` reports them) and builds the checker.
    /// `Err` is the message for Envoy's log; Envoy then rejects the
    /// filter config.
    /// `bytes` is ward's YAML, or names its file (`source.rs`). Its stats
    /// are defined through `envoy` (Envoy allows it only now).
    pub fn new(bytes: &[u8], envoy: &mut impl ConfigHost) -> Result<Config, String> {
        let fail = |why: String| format!("ward: invalid filter_config: {why}");
        let text = std::str::from_utf8(bytes).map_err(|_| fail("not UTF-8".into()))?;
        let (text, file) = source::ward_yaml(text).map_err(fail)?;
        let fail = |why: String| match &file {
            Some(file) => format!("ward: invalid filter_config ({}): {why}", file.display()),
            None => format!("ward: invalid filter_config: {why}"),
        };
        let config = WardConfig::from_yaml(&text).map_err(|e| fail(e.to_string()))?;
        let problems = ward::setup::problems(&config, &ProcessEnv);
        if !problems.is_empty() {
            return Err(fail(ConfigError::Invalid(problems).to_string()));
        }
        let stats = Stats::define(envoy).map_err(|e| fail(format!("stats: {e}")))?;
        stats.touch(envoy);
        let flusher = envoy.flusher();
        let threads = runtime::threads(config.runtime.worker_threads);
        let (runtime, warning) = runtime::runtime(threads).map_err(fail)?;
        if let Some(warning) = warning {
            envoy.warn(&warning);
        }
        let config = build(&config, stats, runtime).map_err(fail)?;
        if let Some(flusher) = flusher {
            config.spawn_flushes(flusher);
        }
        Ok(config)
    }

    /// Copies ward's counters into Envoy's stats (`stats.rs`): Envoy calls
    /// it on its main thread when the runtime asked for it.
    pub fn flush(&self, envoy: &mut impl Flush) {
        self.shared.stats.flush(envoy, &self.shared.metrics);
    }

    /// Every [`FLUSH_EVERY`], if a counter moved, asks Envoy for a flush;
    /// ends with the config.
    fn spawn_flushes(&self, flusher: Box<dyn Commit>) {
        let shared = Arc::downgrade(&self.shared);
        let mut stopped = self.stop.subscribe();
        self.runtime.spawn(async move {
            let mut every = tokio::time::interval(FLUSH_EVERY);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = every.tick() => {}
                    _ = stopped.changed() => return,
                }
                let Some(shared) = shared.upgrade() else {
                    return;
                };
                if shared.stats.pending(&shared.metrics) {
                    flusher.commit();
                }
            }
        });
    }
}

fn build(config: &WardConfig, stats: Stats, runtime: &Runtime) -> Result<Config, String> {
    // Opaque tokens need calls to their provider from inside Envoy's
    // workers, with limits and discovery of their own: not built for
    // the module (docs/envoy-module.md). Refused, never ignored.
    if config.introspection_on() {
        return Err(
            "introspection.providers: opaque-token introspection is not supported in the Envoy module; run `ward serve` as the ext_authz service for opaque tokens"
                .into(),
        );
    }
    let store = runtime
        .block_on(Store::open(config))
        .map_err(|e| format!("store: {e}"))?;
    let metrics = Arc::new(Metrics::new().map_err(|e| format!("metrics: {e}"))?);
    let keys = KeyStore::new(&config.jwt).map_err(|e| format!("jwt.keys: {e}"))?;
    let lookups = Arc::new(Lookups::new(config, store.clone(), metrics.clone()));
    let checker = wiring::checker(config, keys.clone(), lookups.clone(), metrics.clone())
        .map_err(|e| format!("policies: {e}"))?;
    let (stop, stopped) = watch::channel(false);
    {
        let _context = runtime.enter();
        keys.spawn(metrics.clone(), stopped.clone());
        lookups.spawn_invalidations(&store, stopped);
    }
    Ok(Config {
        shared: Arc::new(Shared {
            checker,
            managed: ManagedHeaders::from_config(config),
            responder: Responder::from_config(config),
            metrics,
            stats,
        }),
        runtime: runtime.handle().clone(),
        stop,
        reads_principal: peer::needed(config),
    })
}

/// A per-route config: the ward policy the route selects, by name (the
/// module's equivalent of the gRPC mode's `ward_policy`). An unknown name
/// is a 500 deny at request time, as in gRPC mode.
pub struct RouteConfig {
    /// Shared with every check on the route (no copy per request).
    pub policy: Arc<str>,
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
            policy: Arc::from(policy),
        })
    }
}

/// A request as the check reads it, owned, so a check that waits can take
/// it to the runtime.
struct Owned {
    pairs: Vec<(String, String)>,
    policy: Option<Arc<str>>,
    source_ip: Option<IpAddr>,
    principal: Option<Box<str>>,
    /// Where the runtime leaves the decision for the stream's worker.
    decision: Mutex<Option<Decision>>,
}

impl Owned {
    fn request(&self) -> Request<'_> {
        request(
            Headers::owned(&self.pairs),
            self.policy.as_deref(),
            self.source_ip,
            self.principal.as_deref(),
        )
    }
}

/// ward's view of the request: its headers, the route's policy, the peer
/// (address and principal).
fn request<'a>(
    headers: Headers<'a>,
    policy: Option<&'a str>,
    source_ip: Option<IpAddr>,
    principal: Option<&'a str>,
) -> Request<'a> {
    Request {
        method: headers.get(":method").unwrap_or(""),
        host: headers
            .get(":authority")
            .or_else(|| headers.get("host"))
            .unwrap_or(""),
        path: headers.get(":path").unwrap_or("/"),
        headers,
        policy,
        source_ip,
        principal,
    }
}

/// Where the first poll of a check left it.
enum First<'d> {
    /// Decided on Envoy's worker: its changes, ready to make.
    Decided(Plan<'d>),
    /// It waits: the request, owned, for the runtime.
    Waits(Owned),
}

/// Where one stream stands.
enum State {
    /// Headers not seen yet.
    New,
    /// A check runs on the runtime: the request is held.
    Waiting(Arc<Owned>, Instant),
    /// Allowed: the request flows.
    Allowed,
    /// ward answered locally: nothing more goes upstream.
    Answered,
}

/// One stream's filter.
pub struct Filter {
    config: &'static Config,
    state: State,
}

impl Filter {
    /// `config` outlives every filter made from it (Envoy destroys the
    /// config after its filters).
    pub fn new(config: &'static Config) -> Self {
        Filter {
            config,
            state: State::New,
        }
    }

    /// The request's headers: the check, decided now if nothing needs
    /// waiting, else started on the runtime ([`Verdict::Wait`]).
    ///
    /// The check reads the headers in Envoy's buffers (`view.rs`); what
    /// its decision changes is planned while they are borrowed and made
    /// after (`plan.rs`).
    pub fn on_request_headers(&mut self, host: &mut impl Host) -> Verdict {
        let start = Instant::now();
        let policy = host.route_policy();
        let source_ip = host.source_ip();
        let principal = match self.config.reads_principal {
            true => peer::principal(host),
            false => None,
        };
        let shared = &self.config.shared;
        let decision;
        let first = {
            let raw = host.request_headers();
            let view = View::new(&raw);
            let req = request(
                view.headers(),
                policy.as_deref(),
                source_ip,
                principal.as_deref(),
            );
            let decided = {
                let _context = self.config.runtime.enter();
                // Pinned where it is made: the future (kilobytes, sized
                // for the slow paths) is never copied on a hit.
                poll_once(pin!(shared.checker.check(&req, ward::unix_now())))
            };
            match decided {
                Some(decided) => {
                    decision = decided;
                    First::Decided(Plan::new(shared, &req, &decision, start))
                }
                None => First::Waits(Owned {
                    pairs: view.into_owned(),
                    policy,
                    source_ip,
                    principal,
                    decision: Mutex::new(None),
                }),
            }
        };
        let verdict = match first {
            First::Decided(plan) => plan.apply(shared, host, start),
            First::Waits(owned) => self.wait(owned, host, start),
        };
        self.settle(verdict)
    }

    /// Runs the check on the runtime; the stream resumes in
    /// [`Filter::on_scheduled`].
    fn wait(&mut self, owned: Owned, host: &mut impl Host, start: Instant) -> Verdict {
        let Some(resumer) = host.resumer() else {
            return self.fail(host);
        };
        let owned = Arc::new(owned);
        let shared = Arc::clone(&self.config.shared);
        let task = Arc::clone(&owned);
        self.config.runtime.spawn(async move {
            let decision = shared
                .checker
                .check(&task.request(), ward::unix_now())
                .await;
            if let Ok(mut slot) = task.decision.lock() {
                *slot = Some(decision);
            }
            drop(resumer); // wakes the stream's worker
        });
        self.state = State::Waiting(owned, start);
        Verdict::Wait
    }

    /// The runtime finished this stream's check: apply it, then let the
    /// request go on (an allow) or not (a deny).
    pub fn on_scheduled(&mut self, host: &mut impl Host) {
        let State::Waiting(owned, start) = std::mem::replace(&mut self.state, State::New) else {
            return;
        };
        let decision = owned.decision.lock().ok().and_then(|mut d| d.take());
        let shared = &self.config.shared;
        let verdict = match decision {
            Some(decision) => {
                Plan::new(shared, &owned.request(), &decision, start).apply(shared, host, start)
            }
            // The check panicked or was cancelled: fail closed.
            None => self.fail(host),
        };
        if self.settle(verdict) == Verdict::Continue {
            host.continue_decoding();
        }
    }

    /// A check that cannot end (it panicked, was cancelled, or Envoy gave
    /// no scheduler to resume it): counted as an `internal_error` deny,
    /// answered with a 500, and nothing more goes upstream.
    pub fn fail(&mut self, host: &mut impl Host) -> Verdict {
        self.state = State::Answered;
        self.config.shared.stats.record_internal_error(host);
        internal_error(host)
    }

    fn settle(&mut self, verdict: Verdict) -> Verdict {
        match verdict {
            Verdict::Continue => self.state = State::Allowed,
            Verdict::Answered => self.state = State::Answered,
            Verdict::Wait => {}
        }
        verdict
    }

    /// Whether body and trailers must stop: a check is pending (they are
    /// held until it ends) or ward answered (they go nowhere).
    pub fn holds(&self) -> Hold {
        match self.state {
            State::Waiting(..) => Hold::Pending,
            State::Answered => Hold::Answered,
            State::New | State::Allowed => Hold::No,
        }
    }
}

/// What the body and trailer hooks answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hold {
    No,
    Pending,
    Answered,
}

/// A 500 for a check that panicked or never finished: fail closed, with
/// a reason.
fn internal_error(host: &mut impl Host) -> Verdict {
    host.send_response(
        500,
        &[
            ("content-type", "application/json"),
            ("cache-control", "no-store"),
        ],
        r#"{"error":"server_error","reason":"internal_error","status":500}"#,
        "ward_internal_error",
    );
    Verdict::Answered
}

/// `ip:port`, `[v6]:port` or a bare address.
pub fn parse_ip(addr: &str) -> Option<IpAddr> {
    match ipv4_and_port(addr) {
        Some(ip) => Some(IpAddr::V4(ip)),
        None => general_ip(addr),
    }
}

/// Any other form, through the standard parsers: out of line, so the
/// code a check runs stays small (an IPv6 peer pays a call).
#[cold]
#[inline(never)]
fn general_ip(addr: &str) -> Option<IpAddr> {
    addr.parse::<SocketAddr>()
        .map(|s| s.ip())
        .or_else(|_| addr.parse::<IpAddr>())
        .ok()
}

/// `a.b.c.d:port`, the form Envoy gives an IPv4 peer, read a byte at a
/// time without the general parser (on every check; a tenth of its
/// instructions). Accepts only what that parser accepts (no leading
/// zeros, octets to 255, a port to 65535); `None` sends anything else to
/// it.
fn ipv4_and_port(addr: &str) -> Option<Ipv4Addr> {
    let mut octets = [0u8; 4];
    let mut bytes = addr.bytes();
    for (i, octet) in octets.iter_mut().enumerate() {
        let end = if i == 3 { b':' } else { b'.' };
        *octet = u8::try_from(number(&mut bytes, end, 3)?).ok()?;
    }
    let port = number(&mut bytes, 0, 5)?;
    (port <= 65535).then(|| Ipv4Addr::from(octets))
}

/// Decimal digits up to `end` (0: the end of input), at most `max` of
/// them, at least one, no leading zero.
fn number(bytes: &mut std::str::Bytes<'_>, end: u8, max: usize) -> Option<u32> {
    let (mut value, mut digits) = (0u32, 0usize);
    loop {
        match bytes.next() {
            Some(b) if b.is_ascii_digit() => {
                if digits == max || (digits == 1 && value == 0) {
                    return None;
                }
                value = value * 10 + u32::from(b - b'0');
                digits += 1;
            }
            Some(b) if b == end && end != 0 => break,
            None if end == 0 => break,
            _ => return None,
        }
    }
    (digits > 0).then_some(value)
}

/// The future's value if it completes without waiting; `None` if it would
/// wait (it is dropped then, and the check starts over on the runtime).
fn poll_once<F: Future>(mut future: Pin<&mut F>) -> Option<F::Output> {
    let mut cx = Context::from_waker(Waker::noop());
    match future.as_mut().poll(&mut cx) {
        Poll::Ready(value) => Some(value),
        Poll::Pending => None,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    /// The IPv4 shortcut reads an address exactly as the general parser
    /// does, or leaves it to it.
    #[test]
    fn the_ipv4_shortcut_agrees_with_the_general_parser() {
        let general = |a: &str| {
            a.parse::<SocketAddr>()
                .map(|s| s.ip())
                .or_else(|_| a.parse::<IpAddr>())
                .ok()
        };
        let cases = [
            "127.0.0.1:5000",
            "10.1.2.3:0",
            "255.255.255.255:65535",
            "1.2.3.4:65536",
            "256.1.1.1:80",
            "01.2.3.4:80",
            "0.0.0.0:1",
            "1.2.3:80",
            "1.2.3.4.5:80",
            "1.2.3.4:",
            ":80",
            "1.2.3.4:+80",
            "1.2.3.4: 80",
            "1..3.4:80",
            "a.b.c.d:80",
            "[::1]:80",
            "2001:db8::7",
            "::ffff:1.2.3.4",
            "1.2.3.4",
            "1.2.3.4:00080",
            "1.2.3.4:080",
            "1.2.3.-4:80",
            "1.2.3.4:99999",
            "1.2.3.4:0",
            "1.2.3.4:1:2",
            "1.2.3.4.:80",
            "1.2.3.4:8a",
            "1234.2.3.4:80",
            "10.0.0.255:65535",
            "10.0.0.256:1",
            "",
        ];
        for case in cases {
            if let Some(fast) = ipv4_and_port(case) {
                assert_eq!(general(case), Some(IpAddr::V4(fast)), "{case}");
            }
            assert_eq!(parse_ip(case), general(case), "{case}");
        }
        for fast in ["127.0.0.1:5000", "10.0.0.255:65535", "0.0.0.0:0"] {
            assert!(ipv4_and_port(fast).is_some(), "{fast}");
        }
    }

    use super::*;
    use crate::stats::tests::Defined;

    /// A local reply: status, headers, body, details.
    type Sent = (u16, Vec<(String, String)>, String, String);

    /// The callbacks of one stream, recorded.
    #[derive(Default)]
    struct Fake {
        headers: Vec<(String, String)>,
        policy: Option<String>,
        /// The peer certificate's fields Envoy would give.
        peer: Vec<(CertField, String)>,
        peer_reads: usize,
        set: Vec<(String, Option<String>)>,
        /// The names of `set` that were added (not sent by the client).
        added: Vec<String>,
        route_cleared: bool,
        sent: Option<Sent>,
        /// Counter increments: id, label values, amount.
        counted: Vec<(usize, Vec<String>, u64)>,
        recorded: Vec<(usize, u64)>,
        metadata: Vec<(String, String)>,
        /// Calls into Envoy's metadata (one per decision).
        metadata_calls: usize,
        logged: Vec<String>,
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
        fn request_headers(&mut self) -> Vec<RawHeader<'_>> {
            let raw = self.headers.iter();
            raw.map(|(k, v)| (k.as_bytes(), v.as_bytes())).collect()
        }
        fn set_header(&mut self, name: &str, value: Option<&str>) {
            self.set.push((name.into(), value.map(Into::into)));
        }
        fn add_header(&mut self, name: &str, value: &str) {
            self.added.push(name.into());
            self.set.push((name.into(), Some(value.into())));
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
        fn source_ip(&mut self) -> Option<IpAddr> {
            parse_ip("127.0.0.1:5000")
        }
        fn peer_certificate(&mut self, field: CertField) -> Option<&[u8]> {
            self.peer_reads += 1;
            let found = self.peer.iter().find(|(f, _)| *f == field);
            found.map(|(_, value)| value.as_bytes())
        }
        fn route_policy(&mut self) -> Option<Arc<str>> {
            self.policy.as_deref().map(Arc::from)
        }
        fn log(&mut self, _: LogLevel, message: &str) {
            // After the reply, as in Envoy.
            assert!(self.sent.is_some());
            self.logged.push(message.into());
        }
        fn resumer(&mut self) -> Option<Box<dyn Resume>> {
            None
        }
        fn continue_decoding(&mut self) {}
        fn increment_counter(&mut self, id: usize, labels: &[&str], by: u64) {
            let labels = labels.iter().map(|l| l.to_string()).collect();
            self.counted.push((id, labels, by));
        }
        fn record_histogram(&mut self, id: usize, value: u64) {
            self.recorded.push((id, value));
        }
        fn set_metadata(&mut self, namespace: &str, entries: &[(&str, &str)]) {
            assert_eq!(namespace, METADATA_NAMESPACE);
            self.metadata_calls += 1;
            let entries = entries.iter().map(|(k, v)| (k.to_string(), v.to_string()));
            self.metadata.extend(entries);
        }
    }

    fn check(config: &'static Config, host: &mut Fake) -> Verdict {
        Filter::new(config).on_request_headers(host)
    }

    fn config() -> &'static Config {
        let config = Config::new(b"jwt:\n  keys:\n    - kid: k\n      alg: HS256\n      secret:\n        value: s3cr3t-s3cr3t-s3cr3t-s3cr3t-s3cr3t\n", &mut Defined::default())
            .unwrap();
        Box::leak(Box::new(config))
    }

    #[test]
    fn a_missing_credential_is_wards_401() {
        let config = config();
        let mut host = Fake::new(&[("x-user-id", "mallory")]);
        assert_eq!(check(config, &mut host), Verdict::Answered);
        let (status, headers, body, details) = host.sent.unwrap();
        assert_eq!(status, 401);
        assert!(headers.iter().any(|(k, _)| k == "www-authenticate"));
        assert!(body.contains("\"reason\":\"missing_credential\""), "{body}");
        assert_eq!(details, "ward_missing_credential");
        assert!(host.set.is_empty());
        // Counted by ward under the gRPC mode's labels (flushed to Envoy
        // later, `stats.rs`), its latency recorded into Envoy's histogram.
        let text = config.shared.metrics.render();
        let series =
            r#"ward_check_total{decision="deny",method="none",reason="missing_credential"} 1"#;
        assert!(text.contains(series), "{text}");
        assert_eq!(host.recorded.len(), 1);
        let reason = ("reason".to_string(), "missing_credential".to_string());
        assert_eq!(host.metadata, [reason]);
        assert_eq!(host.metadata_calls, 1);
    }

    /// A check that has to wait (a new token, verified off the worker)
    /// on a stream Envoy gives no scheduler: a counted 500, nothing sent
    /// upstream, and the stream's body held back.
    #[test]
    fn a_check_that_cannot_resume_is_a_counted_500() {
        let secret = "s3cr3t-s3cr3t-s3cr3t-s3cr3t-s3cr3t";
        let yaml = format!(
            "jwt:\n  verify: {{threads: 1}}\n  keys:\n    - kid: k\n      alg: HS256\n      secret:\n        value: {secret}\n"
        );
        let config = Config::new(yaml.as_bytes(), &mut Defined::default()).unwrap();
        let config: &'static Config = Box::leak(Box::new(config));
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
        header.kid = Some("k".into());
        let key = jsonwebtoken::EncodingKey::from_secret(secret.as_bytes());
        // The verification thread may, rarely, finish before the first
        // poll looks for its answer (the check is then decided at once):
        // a new token each try, until one waits.
        for attempt in 0..50 {
            let claims = serde_json::json!({"sub": format!("alice-{attempt}"), "exp": ward::unix_now() + 600});
            let token = jsonwebtoken::encode(&header, &claims, &key).unwrap();
            let mut host = Fake::new(&[("authorization", &format!("Bearer {token}"))]);
            let mut filter = Filter::new(config);
            if filter.on_request_headers(&mut host) == Verdict::Continue {
                continue;
            }
            let (status, _, body, details) = host.sent.clone().unwrap();
            assert_eq!(status, 500);
            assert!(body.contains("\"reason\":\"internal_error\""), "{body}");
            assert_eq!(details, "ward_internal_error");
            assert!(host.set.is_empty());
            assert_eq!(filter.holds(), Hold::Answered);
            let labels = ["deny", "none", "internal_error"]
                .map(String::from)
                .to_vec();
            let counted: Vec<_> = host
                .counted
                .iter()
                .filter(|(_, l, _)| *l == labels)
                .collect();
            assert_eq!(counted.len(), 1, "{:?}", host.counted);
            assert_eq!(counted[0].2, 1);
            return;
        }
        panic!("no check waited in 50 tries");
    }

    #[test]
    fn a_public_route_removes_forged_headers() {
        let config = config();
        let mut host = Fake::new(&[("x-user-id", "mallory"), ("x_auth_method", "jwt")]);
        host.policy = Some("public".into());
        assert_eq!(check(config, &mut host), Verdict::Continue);
        assert!(host.sent.is_none());
        assert_eq!(
            host.set,
            [
                ("x-user-id".to_string(), None),
                ("x_auth_method".to_string(), None)
            ]
        );
        assert!(host.route_cleared);
        assert_eq!(host.metadata, [("auth_method".into(), "none".into())]);
    }

    /// A request Envoy holds in another form than ward's (a repeated
    /// name, an uppercase one) is folded before the check, as the gRPC
    /// mode folds it: the forged copies are all found and removed.
    #[test]
    fn repeated_and_uppercase_forged_headers_are_removed() {
        let config = config();
        let mut host = Fake::new(&[
            ("x-user-id", "mallory"),
            ("X-Auth-Method", "jwt"),
            ("x-user-id", "eve"),
        ]);
        host.policy = Some("public".into());
        assert_eq!(check(config, &mut host), Verdict::Continue);
        assert_eq!(
            host.set,
            [
                ("x-user-id".to_string(), None),
                ("x-auth-method".to_string(), None)
            ]
        );
        assert!(host.route_cleared);
    }

    /// A deny's log line is written after its reply, from what was read
    /// before it (the reply ends the borrow of Envoy's header buffers).
    #[test]
    fn a_deny_is_answered_then_logged_with_the_request_id() {
        let config = config();
        let mut host = Fake::new(&[("x-request-id", "req-7")]);
        assert_eq!(check(config, &mut host), Verdict::Answered);
        let line = host.logged.first().cloned().unwrap_or_default();
        assert!(line.contains("request_id=req-7"), "{line}");
        assert!(line.contains("reason=missing_credential"), "{line}");
    }

    #[test]
    fn an_unknown_route_policy_fails_closed() {
        let config = config();
        let mut host = Fake::new(&[]);
        host.policy = Some("nope".into());
        assert_eq!(check(config, &mut host), Verdict::Answered);
        assert_eq!(host.sent.unwrap().0, 500);
    }

    #[test]
    fn config_problems_are_refused_with_their_path() {
        let e = Config::new(
            b"jwt:\n  keys: [{kid: k, alg: HS999}]\n",
            &mut Defined::default(),
        )
        .err()
        .unwrap();
        assert!(e.contains("jwt.keys[0]"), "{e}");
    }

    /// The peer's principal as Envoy's ext_authz derives `source.principal`
    /// (the first of URI SAN, DNS SAN, subject that Envoy has), decided as
    /// `ward serve` decides it; and never asked for under a config that
    /// cannot use it.
    #[test]
    fn the_peer_principal_is_read_as_envoys_ext_authz_reads_it() {
        let yaml =
            "policies:\n  svc: {accept: [mtls], principals: [\"spiffe://td/a\", b.td, \"CN=c\"]}\n";
        let svc = Config::new(yaml.as_bytes(), &mut Defined::default()).unwrap();
        let svc: &'static Config = Box::leak(Box::new(svc));
        use CertField::{DnsSan, Subject, UriSan};
        // The fields Envoy has, the status, the principal header on an allow.
        type Case = (
            &'static [(CertField, &'static str)],
            u16,
            Option<&'static str>,
        );
        let cases: [Case; 7] = [
            (
                &[(UriSan, "spiffe://td/a"), (DnsSan, "b.td")],
                200,
                Some("spiffe://td/a"),
            ),
            (&[(DnsSan, "b.td"), (Subject, "CN=x")], 200, Some("b.td")),
            (&[(Subject, "CN=c")], 200, Some("CN=c")),
            // The URI SAN names the peer even when its DNS SAN would pass.
            (&[(UriSan, "spiffe://td/z"), (DnsSan, "b.td")], 403, None),
            // TLS without a client certificate: an empty subject.
            (&[(Subject, "")], 401, None),
            (&[], 401, None),
            (&[(UriSan, "")], 401, None),
        ];
        for (peer, status, principal) in cases {
            let mut host = Fake::new(&[("x-ward-principal", "spiffe://td/forged")]);
            host.policy = Some("svc".into());
            host.peer = peer.iter().map(|(f, v)| (*f, v.to_string())).collect();
            check(svc, &mut host);
            let sent = host.sent.as_ref().map_or(200, |s| s.0);
            assert_eq!(sent, status, "{peer:?}: {:?}", host.sent);
            let mut set = host.set.iter().filter(|(n, _)| n == "x-ward-principal");
            let last = set.next_back().and_then(|(_, v)| v.as_deref());
            if status == 200 {
                assert_eq!(last, principal, "{peer:?}");
            }
        }

        let mut host = Fake::new(&[]);
        host.peer = vec![(UriSan, "spiffe://td/a".into())];
        check(config(), &mut host);
        assert_eq!(host.peer_reads, 0, "no policy uses a principal");
    }

    #[test]
    fn workload_configs_are_accepted_and_need_the_principal() {
        for (yaml, needed) in [
            (
                "policies:\n  svc: {accept: [mtls], principals: [\"spiffe://td/a\"]}\n",
                true,
            ),
            (
                "jwt:\n  keys: [{kid: k, alg: HS256, secret: {value: s3cr3t-s3cr3t-s3cr3t-s3cr3t-s3cr3t}}]\nroutes:\n  - {prefix: /, accept: [jwt], workload: {principals: [\"spiffe://td/a\"]}}\n",
                true,
            ),
            (
                "workload: {forwarded_cert: {header: xfcc, trusted_peers: [\"spiffe://td/gw\"]}}\n",
                true,
            ),
            (
                "workload: {forwarded_cert: {header: xfcc, any_peer: true}}\n",
                false,
            ),
            (
                "jwt:\n  keys: [{kid: k, alg: HS256, secret: {value: s3cr3t-s3cr3t-s3cr3t-s3cr3t-s3cr3t}}]\n",
                false,
            ),
        ] {
            let config = Config::new(yaml.as_bytes(), &mut Defined::default());
            let config = config.unwrap_or_else(|e| panic!("{yaml}: {e}"));
            assert_eq!(config.reads_principal, needed, "{yaml}");
        }
    }

    #[test]
    fn a_query_token_is_read_and_cut_from_the_path_on_every_allow() {
        let config = Config::new(b"jwt:\n  keys: [{kid: k, alg: HS256, secret: {value: s3cr3t-s3cr3t-s3cr3t-s3cr3t-s3cr3t}}]\n  from_query: access_token\n", &mut Defined::default())
            .unwrap();
        let config: &'static Config = Box::leak(Box::new(config));
        let with_path = |path: &str| {
            let mut host = Fake::new(&[]);
            host.headers[1].1 = path.into();
            host
        };
        // Read: a bad token in the query is a 401, logged without the
        // query (a token is never logged).
        let mut host = with_path("/api?access_token=a.b.c");
        assert_eq!(check(config, &mut host), Verdict::Answered);
        assert_eq!(host.sent.unwrap().0, 401);
        let line = host.logged.concat();
        assert!(
            line.contains(" path=/api ") && !line.contains("a.b.c"),
            "{line}"
        );
        // Cut on an anonymous allow too, the rest of the query kept.
        let mut host = with_path("/api?a=1&access_token=a.b.c&b=2");
        host.policy = Some("public".into());
        assert_eq!(check(config, &mut host), Verdict::Continue);
        assert_eq!(
            host.set,
            [(":path".to_string(), Some("/api?a=1&b=2".to_string()))]
        );
        assert!(host.route_cleared);
    }

    /// An allow adds the identity headers the client did not send and
    /// replaces (every value of) one it forged; the route is chosen again.
    #[test]
    fn an_allow_adds_new_identity_headers_and_replaces_forged_ones() {
        let dir = std::env::temp_dir().join(format!("ward-module-allow-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let seed = dir.join("seed.yaml");
        let sid = "112f551c-d6fe-4e67-a818-01deee0e47c9";
        std::fs::write(
            &seed,
            format!("sessions:\n  - id: {sid}\n    user_id: carol\n    roles: [reader]\n"),
        )
        .unwrap();
        let yaml = format!("store:\n  seed_file: {}\n", seed.display());
        let config = Config::new(yaml.as_bytes(), &mut Defined::default()).unwrap();
        let config: &'static Config = Box::leak(Box::new(config));
        let mut host = Fake::new(&[("x-session-id", sid), ("x-user-id", "mallory")]);
        assert_eq!(check(config, &mut host), Verdict::Continue);
        let value = |name: &str| {
            host.set
                .iter()
                .find(|(n, _)| n == name)
                .and_then(|(_, v)| v.clone())
        };
        assert_eq!(
            value("x-user-id").as_deref(),
            Some("carol"),
            "{:?}",
            host.set
        );
        assert!(
            !host.added.iter().any(|n| n == "x-user-id"),
            "{:?}",
            host.added
        );
        assert!(
            host.added.iter().any(|n| n == "x-auth-method"),
            "{:?}",
            host.added
        );
        assert_eq!(value("x-auth-method").as_deref(), Some("session"));
        assert!(host.route_cleared);
        // Both keys in one call into Envoy.
        let entry = |k: &str, v: &str| (k.to_string(), v.to_string());
        let metadata = [entry("user_id", "carol"), entry("auth_method", "session")];
        assert_eq!(host.metadata, metadata);
        assert_eq!(host.metadata_calls, 1);
        std::fs::remove_dir_all(&dir).ok();
    }
}
