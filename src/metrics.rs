//! ward's Prometheus metrics, registered into one explicit registry.
//!
//! Only this module names metrics. Labels are bounded: `decision`,
//! `method` and `reason` come from closed enums, never from request data.
//! The check counters are resolved once at startup into a table, so
//! recording a decision on the hot path is one atomic add. The connection
//! metrics are resolved the same way, one set per listener.

use crate::credential_kind::CredentialKind;
use crate::decision::Decision;
use crate::jwt::keys::SkipReason;
use crate::reason::Reason;
mod introspection;
mod logout;

pub use introspection::{CacheOutcome, CallOutcome};
pub use logout::LogoutOutcome;

use introspection::IntrospectionMetrics;
use logout::LogoutMetrics;
use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

/// Auth method label values, in table order: `none`, then
/// [`CredentialKind::ALL`].
const METHODS: [&str; 6] = ["none", "jwt", "session", "apikey", "opaque", "mtls"];

/// A listener ward serves on: the `listener` label of the connection
/// metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    /// `listen.grpc`
    Grpc,
    /// `listen.unix_socket`
    Unix,
    /// `listen.http`
    Http,
    /// `listen.admin`
    Admin,
    /// `management.listen`
    Management,
}

impl Listener {
    pub const ALL: [Listener; 5] = [
        Listener::Grpc,
        Listener::Unix,
        Listener::Http,
        Listener::Admin,
        Listener::Management,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Listener::Grpc => "grpc",
            Listener::Unix => "unix",
            Listener::Http => "http",
            Listener::Admin => "admin",
            Listener::Management => "management",
        }
    }
}

/// The connection metrics of one listener, resolved once.
#[derive(Clone)]
pub struct ConnectionMetrics {
    /// Connections open now (accepted, not yet closed).
    pub open: IntGauge,
    /// Connections closed at once because `listen.max_connections` were open.
    pub refused: IntCounter,
    /// Connections closed because their first request had not arrived
    /// within `listen.handshake_timeout`.
    pub handshake_timeouts: IntCounter,
}

pub struct Metrics {
    registry: Registry,
    /// `[method][0 = allow, 1 = public allow, 2 + reason]`
    checks: Vec<Vec<IntCounter>>,
    check_duration: Histogram,
    pub token_cache_hits: IntCounter,
    pub token_cache_misses: IntCounter,
    /// Hits past `cache.max_ttl` renewed without a signature check.
    pub token_cache_renewed: IntCounter,
    pub store_cache_hits: IntCounter,
    pub store_cache_misses: IntCounter,
    /// Store failures answered from a stale entry.
    pub store_cache_stale: IntCounter,
    pub store_ok: IntCounter,
    pub store_errors: IntCounter,
    /// JWT verifications run: a cache hit runs none.
    pub jwt_verifications: IntCounter,
    /// New tokens waiting for a verification thread.
    pub jwt_verify_queue: IntGauge,
    /// New tokens refused because the verification queue was full.
    pub jwt_verify_overloaded: IntCounter,
    /// Verifications a waiting check ran itself (the threads got no CPU).
    pub jwt_verify_helped: IntCounter,
    pub jwks_refresh_ok: IntCounter,
    pub jwks_refresh_error: IntCounter,
    pub jwks_keys: IntGauge,
    pub jwks_last_success: IntGauge,
    /// JWKS entries left out, per fetch, in [`SkipReason::ALL`] order.
    jwks_keys_skipped: Vec<IntCounter>,
    /// Per listener, indexed by [`Listener`] discriminant.
    connections: [ConnectionMetrics; Listener::ALL.len()],
    reloads: ReloadMetrics,
    management: ManagementMetrics,
    logouts: LogoutMetrics,
    introspection: IntrospectionMetrics,
}

/// The management API's calls (`proto/ward/admin/v1/admin.proto`), the
/// `call` label of `ward_management_calls_total`.
pub const MANAGEMENT_CALLS: [&str; 11] = [
    "CreateSession",
    "GetSession",
    "ListSessions",
    "RevokeSession",
    "RevokeUserSessions",
    "CreateApiKey",
    "ListApiKeys",
    "RevokeApiKey",
    "RotateApiKey",
    "RevokeToken",
    "Introspect",
];

/// How a management call ended: the `result` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallResult {
    Ok,
    /// The caller did not authenticate (`UNAUTHENTICATED`).
    Refused,
    /// Any other error (a bad argument, not found, the store).
    Failed,
}

impl CallResult {
    const ALL: [CallResult; 3] = [CallResult::Ok, CallResult::Refused, CallResult::Failed];

    fn as_str(self) -> &'static str {
        match self {
            CallResult::Ok => "ok",
            CallResult::Refused => "refused",
            CallResult::Failed => "failed",
        }
    }
}

/// `ward_management_calls_total`, every series made at start:
/// `[call][result]`.
struct ManagementMetrics(Vec<[IntCounter; 3]>);

impl ManagementMetrics {
    fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let total = IntCounterVec::new(
            Opts::new(
                "ward_management_calls_total",
                "Management API calls, by call and result (ok, refused: not authenticated, failed).",
            ),
            &["call", "result"],
        )?;
        registry.register(Box::new(total.clone()))?;
        let counters = MANAGEMENT_CALLS
            .iter()
            .map(|call| CallResult::ALL.map(|r| total.with_label_values(&[call, r.as_str()])))
            .collect();
        Ok(Self(counters))
    }
}

/// `ward serve`'s config reloads (`server/reload.rs`).
struct ReloadMetrics {
    success: IntCounter,
    failure: IntCounter,
    last_success: IntGauge,
}

impl ReloadMetrics {
    fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let total = IntCounterVec::new(
            Opts::new(
                "ward_config_reload_total",
                "Config reloads (SIGHUP or a changed file), by result.",
            ),
            &["result"],
        )?;
        let last_success = IntGauge::new(
            "ward_config_last_reload_success_timestamp_seconds",
            "Unix time the running config was loaded (at start, then at each successful reload).",
        )?;
        last_success.set(crate::unix_now() as i64);
        registry.register(Box::new(total.clone()))?;
        registry.register(Box::new(last_success.clone()))?;
        Ok(Self {
            success: total.with_label_values(&["success"]),
            failure: total.with_label_values(&["failure"]),
            last_success,
        })
    }
}

impl Metrics {
    /// Counts one management call (`call`: one of [`MANAGEMENT_CALLS`];
    /// another name counts nothing).
    pub fn management_call(&self, call: &str, result: CallResult) {
        let index = MANAGEMENT_CALLS.iter().position(|c| *c == call);
        if let Some(counters) = index.and_then(|i| self.management.0.get(i)) {
            counters[result as usize].inc();
        }
    }

    /// Counts a reload; a success also dates the running config.
    pub fn config_reloaded(&self, success: bool) {
        if success {
            self.reloads.success.inc();
            self.reloads.last_success.set(crate::unix_now() as i64);
        } else {
            self.reloads.failure.inc();
        }
    }

    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let checks_vec = IntCounterVec::new(
            Opts::new("ward_check_total", "Authorization decisions."),
            &["decision", "method", "reason"],
        )?;
        let checks = Self::check_labels()
            .chunks(2 + Reason::ALL.len())
            .map(|row| {
                row.iter()
                    .map(|labels| checks_vec.with_label_values(labels))
                    .collect()
            })
            .collect();
        let check_duration = Histogram::with_opts(
            HistogramOpts::new(
                "ward_check_duration_seconds",
                "Time to answer one Check, from request decoded to response built.",
            )
            .buckets(vec![
                0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01,
                0.025, 0.05, 0.1, 0.25,
            ]),
        )?;
        let cache = IntCounterVec::new(
            Opts::new("ward_cache_requests_total", "Cache lookups by result."),
            &["cache", "result"],
        )?;
        let jwks = IntCounterVec::new(
            Opts::new("ward_jwks_refresh_total", "JWKS fetches by result."),
            &["result"],
        )?;
        let store = IntCounterVec::new(
            Opts::new("ward_store_requests_total", "Store reads by result."),
            &["result"],
        )?;
        let jwt_verifications = IntCounter::new(
            "ward_jwt_verifications_total",
            "JWT verifications run (a cache hit runs none).",
        )?;
        let jwt_verify_queue = IntGauge::new(
            "ward_jwt_verify_queue",
            "New tokens waiting for a verification thread.",
        )?;
        let jwt_verify_overloaded = IntCounter::new(
            "ward_jwt_verify_overloaded_total",
            "New tokens refused because the verification queue was full.",
        )?;
        let jwt_verify_helped = IntCounter::new(
            "ward_jwt_verify_helped_total",
            "Verifications run by a waiting check because the verification threads got no CPU for 20 ms.",
        )?;
        let jwks_keys = IntGauge::new("ward_jwks_keys", "Keys currently loaded from JWKS.")?;
        let jwks_last_success = IntGauge::new(
            "ward_jwks_last_success_timestamp_seconds",
            "Unix time of the last successful JWKS fetch (0 = never).",
        )?;
        let skipped = IntCounterVec::new(
            Opts::new(
                "ward_jwks_keys_skipped_total",
                "JWKS entries left out of the key set, counted at each fetch, by reason.",
            ),
            &["reason"],
        )?;
        let open = IntGaugeVec::new(
            Opts::new(
                "ward_connections_open",
                "Connections open now, by listener.",
            ),
            &["listener"],
        )?;
        let refused = IntCounterVec::new(
            Opts::new(
                "ward_connections_refused_total",
                "Connections closed at once because listen.max_connections were open, by listener.",
            ),
            &["listener"],
        )?;
        let handshake_timeouts = IntCounterVec::new(
            Opts::new(
                "ward_connections_handshake_timeouts_total",
                "Connections closed because their first request had not arrived within listen.handshake_timeout, by listener.",
            ),
            &["listener"],
        )?;
        let connections = Listener::ALL.map(|l| ConnectionMetrics {
            open: open.with_label_values(&[l.as_str()]),
            refused: refused.with_label_values(&[l.as_str()]),
            handshake_timeouts: handshake_timeouts.with_label_values(&[l.as_str()]),
        });
        registry.register(Box::new(open))?;
        registry.register(Box::new(refused))?;
        registry.register(Box::new(handshake_timeouts))?;
        registry.register(Box::new(skipped.clone()))?;
        registry.register(Box::new(checks_vec))?;
        registry.register(Box::new(check_duration.clone()))?;
        registry.register(Box::new(cache.clone()))?;
        registry.register(Box::new(jwks.clone()))?;
        registry.register(Box::new(jwt_verifications.clone()))?;
        registry.register(Box::new(jwt_verify_queue.clone()))?;
        registry.register(Box::new(jwt_verify_overloaded.clone()))?;
        registry.register(Box::new(jwt_verify_helped.clone()))?;
        registry.register(Box::new(store.clone()))?;
        registry.register(Box::new(jwks_keys.clone()))?;
        registry.register(Box::new(jwks_last_success.clone()))?;
        let reloads = ReloadMetrics::register(&registry)?;
        let management = ManagementMetrics::register(&registry)?;
        let logouts = LogoutMetrics::register(&registry)?;
        let introspection = IntrospectionMetrics::register(&registry)?;
        Ok(Self {
            reloads,
            management,
            logouts,
            introspection,
            registry,
            checks,
            check_duration,
            token_cache_hits: cache.with_label_values(&["token", "hit"]),
            token_cache_misses: cache.with_label_values(&["token", "miss"]),
            token_cache_renewed: cache.with_label_values(&["token", "renewed"]),
            store_cache_hits: cache.with_label_values(&["store", "hit"]),
            store_cache_misses: cache.with_label_values(&["store", "miss"]),
            store_cache_stale: cache.with_label_values(&["store", "stale"]),
            store_ok: store.with_label_values(&["ok"]),
            store_errors: store.with_label_values(&["error"]),
            jwt_verifications,
            jwt_verify_queue,
            jwt_verify_overloaded,
            jwt_verify_helped,
            jwks_refresh_ok: jwks.with_label_values(&["ok"]),
            jwks_refresh_error: jwks.with_label_values(&["error"]),
            jwks_keys,
            jwks_last_success,
            jwks_keys_skipped: SkipReason::ALL
                .iter()
                .map(|r| skipped.with_label_values(&[r.as_str()]))
                .collect(),
            connections,
        })
    }

    /// Counts one introspection call (or its refusal by the limits).
    pub fn introspection_call(&self, outcome: CallOutcome) {
        self.introspection.call(outcome);
    }

    /// Counts one look in the introspection cache.
    pub fn introspection_cache(&self, outcome: CacheOutcome) {
        self.introspection.cache(outcome);
    }

    /// Observes one introspection call's time.
    pub fn introspection_duration(&self, seconds: f64) {
        self.introspection.duration(seconds);
    }

    /// Counts one discovery read of an introspection endpoint.
    pub fn introspection_discovery(&self, ok: bool) {
        self.introspection.discovery(ok);
    }

    /// Counts one back-channel logout request and the sessions it revoked.
    pub fn backchannel_logout(&self, outcome: LogoutOutcome, revoked: usize) {
        self.logouts.record(outcome, revoked);
    }

    /// The connection metrics of `listener`.
    pub fn connections(&self, listener: Listener) -> ConnectionMetrics {
        // In bounds: one entry per variant, in declaration order (tested).
        self.connections[listener as usize].clone()
    }

    /// Counts one JWKS entry skipped at a fetch.
    pub fn jwks_key_skipped(&self, reason: SkipReason) {
        let index = SkipReason::ALL.iter().position(|r| *r == reason);
        if let Some(counter) = index.and_then(|i| self.jwks_keys_skipped.get(i)) {
            counter.inc();
        }
    }

    /// How many JWKS entries were skipped for `reason` so far (the Envoy
    /// module mirrors it into Envoy's stats).
    pub fn jwks_keys_skipped_total(&self, reason: SkipReason) -> u64 {
        let index = SkipReason::ALL.iter().position(|r| *r == reason);
        index
            .and_then(|i| self.jwks_keys_skipped.get(i))
            .map_or(0, IntCounter::get)
    }

    /// Counts one decision and its latency.
    pub fn record(&self, decision: &Decision, seconds: f64) {
        self.count(decision);
        self.check_duration.observe(seconds);
    }

    /// Counts one decision (`ward_check_total`): one atomic add.
    pub fn count(&self, decision: &Decision) {
        let row = match decision.method() {
            None => 0,
            Some(CredentialKind::Jwt) => 1,
            Some(CredentialKind::Session) => 2,
            Some(CredentialKind::ApiKey) => 3,
            Some(CredentialKind::Opaque) => 4,
            Some(CredentialKind::Mtls) => 5,
        };
        let col = match decision {
            Decision::Allow(_) => 0,
            Decision::AllowAnonymous { .. } => 1,
            Decision::Deny(deny) => 2 + deny.reason as usize,
        };
        if let Some(counter) = self.checks.get(row).and_then(|r| r.get(col)) {
            counter.inc();
        }
    }

    /// Every `ward_check_total` series, as its label values (`decision`,
    /// `method`, `reason`), in a fixed order: the index
    /// [`Metrics::checks_total`] reads.
    pub fn check_labels() -> Vec<[&'static str; 3]> {
        let mut labels = Vec::new();
        for method in METHODS {
            labels.push(["allow", method, "ok"]);
            labels.push(["allow", method, "public"]);
            for reason in Reason::ALL {
                labels.push(["deny", method, reason.as_str()]);
            }
        }
        labels
    }

    /// The value of `ward_check_total` series `index` of
    /// [`Metrics::check_labels`] (the Envoy module mirrors them).
    pub fn checks_total(&self, index: usize) -> u64 {
        let width = 2 + Reason::ALL.len();
        self.checks
            .get(index / width)
            .and_then(|row| row.get(index % width))
            .map_or(0, IntCounter::get)
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        // Encoding into a Vec cannot fail for the text format.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decision::Deny;

    #[test]
    fn method_labels_follow_auth_method() {
        for (i, m) in CredentialKind::ALL.iter().enumerate() {
            assert_eq!(METHODS[i + 1], m.as_str());
        }
    }

    #[test]
    fn reason_discriminants_index_the_table() {
        for (i, r) in Reason::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i);
        }
    }

    #[test]
    fn listener_discriminants_index_the_table() {
        let m = Metrics::new().unwrap();
        for (i, l) in Listener::ALL.iter().enumerate() {
            assert_eq!(*l as usize, i);
            m.connections(*l).refused.inc_by(i as u64 + 1);
        }
        let text = m.render();
        for (i, l) in Listener::ALL.iter().enumerate() {
            let line = format!(
                "ward_connections_refused_total{{listener=\"{}\"}} {}",
                l.as_str(),
                i + 1
            );
            assert!(text.contains(&line), "missing {line}");
            let open = format!("ward_connections_open{{listener=\"{}\"}} 0", l.as_str());
            assert!(text.contains(&open), "missing {open}");
        }
    }

    /// The series, without their values: `name{label="value",...}`.
    fn series(m: &Metrics) -> std::collections::BTreeSet<String> {
        let lines = m.render();
        let samples = lines.lines().filter(|l| !l.starts_with('#'));
        samples
            .filter_map(|l| l.rsplit_once(' '))
            .map(|(series, _)| series.to_string())
            .collect()
    }

    /// Every series exists from the start, with label values from the
    /// closed tables: recording every decision (each method, each reason),
    /// on every listener, and every skipped JWKS entry adds none.
    #[test]
    fn every_series_exists_from_the_start_and_recording_adds_none() {
        let m = Metrics::new().unwrap();
        let before = series(&m);
        let identity = |method| {
            crate::identity::Identity::from(crate::identity::IdentityParts {
                user_id: "u\"} 1\nward_forged 1".into(),
                method,
                headers: vec![("x-user-id".into(), "u".into())],
                jti: Some("j".into()),
                session_id: None,
                roles: vec!["admin".into()],
                scopes: vec![],
            })
        };
        for method in [None].into_iter().chain(CredentialKind::ALL.map(Some)) {
            if let Some(kind) = method {
                m.record(
                    &Decision::Allow(std::sync::Arc::new(identity(kind)).into()),
                    0.001,
                );
            }
            m.record(&Decision::AllowAnonymous { method }, 0.001);
            for reason in Reason::ALL {
                let deny = Deny {
                    method,
                    ..Deny::new(reason)
                };
                m.record(&Decision::Deny(deny), 10.0);
            }
        }
        for call in MANAGEMENT_CALLS {
            for result in CallResult::ALL {
                m.management_call(call, result);
            }
        }
        for outcome in CallOutcome::ALL {
            m.introspection_call(outcome);
        }
        for outcome in CacheOutcome::ALL {
            m.introspection_cache(outcome);
        }
        m.introspection_duration(0.01);
        m.introspection_discovery(true);
        m.introspection_discovery(false);
        for listener in Listener::ALL {
            let c = m.connections(listener);
            c.open.inc();
            c.refused.inc();
            c.handshake_timeouts.inc();
        }
        for reason in SkipReason::ALL {
            m.jwks_key_skipped(reason);
        }
        let after = series(&m);
        assert_eq!(after, before);
        let checks: Vec<&String> = after
            .iter()
            .filter(|s| s.starts_with("ward_check_total"))
            .collect();
        let outcomes = 2 + Reason::ALL.len();
        assert_eq!(checks.len(), METHODS.len() * outcomes, "{checks:?}");
        assert!(!after.iter().any(|s| s.contains("forged")));
    }

    #[test]
    fn records_into_the_right_series() {
        let m = Metrics::new().unwrap();
        let expired = Deny {
            method: Some(CredentialKind::Jwt),
            ..Deny::new(Reason::TokenExpired)
        };
        m.record(&Decision::Deny(expired), 0.0001);
        m.record(&Decision::deny(Reason::MissingCredential), 0.0001);
        m.record(&Decision::AllowAnonymous { method: None }, 0.0001);
        let text = m.render();
        for line in [
            r#"ward_check_total{decision="allow",method="none",reason="public"} 1"#,
            r#"ward_check_total{decision="deny",method="jwt",reason="token_expired"} 1"#,
            r#"ward_check_total{decision="deny",method="none",reason="missing_credential"} 1"#,
            "ward_check_duration_seconds_count 3",
            r#"ward_jwks_keys_skipped_total{reason="weak_rsa"} 0"#,
            r#"ward_jwks_keys_skipped_total{reason="unusable"} 0"#,
        ] {
            assert!(text.contains(line), "missing {line}");
        }
    }
}
