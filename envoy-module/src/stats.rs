//! ward's metrics as Envoy stats, so Envoy's `/stats/prometheus` carries
//! them under the gRPC mode's names (`ward_check_total{decision, method,
//! reason}`, `ward_cache_requests_total{cache, result}`, ...).
//!
//! Envoy lets a module define stats only while it builds the filter
//! config ([`ConfigHost`]), and change them from a stream's hook, on the
//! stream's worker ([`Host`]). So every series is defined up front, with
//! labels from ward's closed tables, and changed only on a worker:
//!
//! - each decision counts when it is applied to its stream (its
//!   `ward_check_total` series and its latency, in microseconds: Envoy's
//!   histograms hold integers);
//! - the counters the checker's own parts bump on any thread (token cache,
//!   store reads, JWT verifications, JWKS fetches: ward's prometheus
//!   [`Metrics`], which this config's checker owns) are mirrored: after
//!   each decision, whatever they gained since the last mirror is added
//!   to Envoy's copy. Each unit is added once ([`AtomicU64::fetch_max`]
//!   claims it), whichever worker sees it first.

use crate::filter::Host;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use ward::credential_kind::CredentialKind;
use ward::decision::Decision;
use ward::jwt::keys::SkipReason;
use ward::metrics::Metrics;

/// Envoy's side while it builds a filter config (`abi::ConfigEnvoy`, or
/// a fake in tests): defining stats (each returns the stat's id), and its
/// log.
pub trait ConfigHost {
    fn counter(&mut self, name: &str, labels: &[&str]) -> Result<usize, String>;
    fn histogram(&mut self, name: &str, labels: &[&str]) -> Result<usize, String>;
    fn gauge(&mut self, name: &str) -> Result<usize, String>;
    /// A warning in Envoy's log.
    fn warn(&mut self, message: &str);
}

/// Where a mirrored value is read in ward's [`Metrics`].
#[derive(Clone, Copy)]
enum Source {
    Field(fn(&Metrics) -> u64),
    Skipped(SkipReason),
}

impl Source {
    fn read(self, metrics: &Metrics) -> u64 {
        match self {
            Source::Field(read) => read(metrics),
            Source::Skipped(reason) => metrics.jwks_keys_skipped_total(reason),
        }
    }
}

/// One counter series mirrored from [`Metrics`] into Envoy.
struct Mirrored {
    id: usize,
    labels: &'static [&'static str],
    source: Source,
    /// The value already added to Envoy's counter.
    sent: AtomicU64,
}

/// One gauge mirrored from [`Metrics`] (set, not added).
struct Gauge {
    id: usize,
    read: fn(&Metrics) -> i64,
    /// The value last sent to Envoy (none yet: `i64::MIN`), so a gauge
    /// that did not change costs no call into Envoy.
    sent: AtomicI64,
}

/// The Envoy stats of one filter config.
pub struct Stats {
    checks: usize,
    duration: usize,
    counters: Vec<Mirrored>,
    gauges: Vec<Gauge>,
}

/// The mirrored counters: name, labels, values, where ward counts them.
type Series = (
    &'static str,
    &'static [&'static str],
    &'static [&'static str],
    Source,
);

const CACHE: &[&str] = &["cache", "result"];
const RESULT: &[&str] = &["result"];

/// Every mirrored series: a table, one line each.
#[rustfmt::skip]
fn series() -> Vec<Series> {
    let f = Source::Field;
    vec![
        ("cache_requests_total", CACHE, &["token", "hit"], f(|m| m.token_cache_hits.get())),
        ("cache_requests_total", CACHE, &["token", "miss"], f(|m| m.token_cache_misses.get())),
        ("cache_requests_total", CACHE, &["store", "hit"], f(|m| m.store_cache_hits.get())),
        ("cache_requests_total", CACHE, &["store", "miss"], f(|m| m.store_cache_misses.get())),
        ("cache_requests_total", CACHE, &["store", "stale"], f(|m| m.store_cache_stale.get())),
        ("store_requests_total", RESULT, &["ok"], f(|m| m.store_ok.get())),
        ("store_requests_total", RESULT, &["error"], f(|m| m.store_errors.get())),
        ("jwt_verifications_total", &[], &[], f(|m| m.jwt_verifications.get())),
        ("jwks_refresh_total", RESULT, &["ok"], f(|m| m.jwks_refresh_ok.get())),
        ("jwks_refresh_total", RESULT, &["error"], f(|m| m.jwks_refresh_error.get())),
        ("jwks_keys_skipped_total", &["reason"], &["weak_rsa"], Source::Skipped(SkipReason::WeakRsa)),
        ("jwks_keys_skipped_total", &["reason"], &["unusable"], Source::Skipped(SkipReason::Unusable)),
    ]
}

impl Stats {
    /// Defines every series. A stat name defined twice (the same name
    /// with other values) is one Envoy stat: `define` is asked once per
    /// name.
    pub fn define(define: &mut impl ConfigHost) -> Result<Stats, String> {
        let checks = define.counter("check_total", &["decision", "method", "reason"])?;
        let duration = define.histogram("check_duration_microseconds", &[])?;
        let mut ids: Vec<(&str, usize)> = Vec::new();
        let mut counters = Vec::new();
        for (name, label_names, labels, source) in series() {
            let id = match ids.iter().find(|(n, _)| *n == name) {
                Some((_, id)) => *id,
                None => {
                    let id = define.counter(name, label_names)?;
                    ids.push((name, id));
                    id
                }
            };
            counters.push(Mirrored {
                id,
                labels,
                source,
                sent: AtomicU64::new(0),
            });
        }
        let gauges = vec![
            Gauge {
                id: define.gauge("jwks_keys")?,
                read: |m| m.jwks_keys.get(),
                sent: AtomicI64::new(i64::MIN),
            },
            Gauge {
                id: define.gauge("jwks_last_success_timestamp_seconds")?,
                read: |m| m.jwks_last_success.get(),
                sent: AtomicI64::new(i64::MIN),
            },
        ];
        Ok(Stats {
            checks,
            duration,
            counters,
            gauges,
        })
    }

    /// Counts a decision applied to `host`'s stream, its latency, and what
    /// the checker's parts counted since the last call.
    pub fn record(
        &self,
        host: &mut impl Host,
        decision: &Decision,
        micros: u64,
        metrics: &Metrics,
    ) {
        let method = decision.method().map_or("none", CredentialKind::as_str);
        let (outcome, reason) = match decision {
            Decision::Allow(_) => ("allow", "ok"),
            Decision::AllowAnonymous { .. } => ("allow", "public"),
            Decision::Deny(deny) => ("deny", deny.reason.as_str()),
        };
        host.increment_counter(self.checks, &[outcome, method, reason], 1);
        host.record_histogram(self.duration, micros);
        self.mirror(host, metrics);
    }

    /// A check that panicked or never finished (the module's 500).
    pub fn record_internal_error(&self, host: &mut impl Host, metrics: &Metrics) {
        host.increment_counter(self.checks, &["deny", "none", "internal_error"], 1);
        self.mirror(host, metrics);
    }

    fn mirror(&self, host: &mut impl Host, metrics: &Metrics) {
        for series in &self.counters {
            let now = series.source.read(metrics);
            if now <= series.sent.load(Ordering::Relaxed) {
                continue;
            }
            let before = series.sent.fetch_max(now, Ordering::Relaxed);
            if now > before {
                host.increment_counter(series.id, series.labels, now - before);
            }
        }
        for gauge in &self.gauges {
            let now = (gauge.read)(metrics);
            // Two workers racing on a change may set the older value last:
            // `sent` then differs from the gauge, and the next decision
            // sets it again.
            if gauge.sent.swap(now, Ordering::Relaxed) != now {
                host.set_gauge(gauge.id, u64::try_from(now).unwrap_or(0));
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::filter::Host;

    /// Definitions, in order, and warnings.
    #[derive(Default)]
    pub struct Defined(pub Vec<(String, Vec<String>)>, pub Vec<String>);

    impl Defined {
        fn add(&mut self, name: &str, labels: &[&str]) -> Result<usize, String> {
            self.0
                .push((name.into(), labels.iter().map(|l| l.to_string()).collect()));
            Ok(self.0.len() - 1)
        }
    }

    impl ConfigHost for Defined {
        fn counter(&mut self, name: &str, labels: &[&str]) -> Result<usize, String> {
            self.add(name, labels)
        }
        fn histogram(&mut self, name: &str, labels: &[&str]) -> Result<usize, String> {
            self.add(name, labels)
        }
        fn gauge(&mut self, name: &str) -> Result<usize, String> {
            self.add(name, &[])
        }
        fn warn(&mut self, message: &str) {
            self.1.push(message.into());
        }
    }

    /// Counter increments and gauge sets, as Envoy would receive them.
    #[derive(Default)]
    struct Sink {
        counted: Vec<(usize, Vec<String>, u64)>,
        gauges: Vec<(usize, u64)>,
    }

    impl Host for Sink {
        fn request_headers(&mut self) -> Vec<(String, String)> {
            Vec::new()
        }
        fn set_header(&mut self, _: &str, _: Option<&str>) {}
        fn clear_route_cache(&mut self) {}
        fn send_response(&mut self, _: u16, _: &[(&str, &str)], _: &str, _: &str) {}
        fn source_address(&mut self) -> Option<String> {
            None
        }
        fn route_policy(&mut self) -> Option<String> {
            None
        }
        fn log(&mut self, _: crate::filter::LogLevel, _: &str) {}
        fn resumer(&mut self) -> Option<Box<dyn crate::filter::Resume>> {
            None
        }
        fn continue_decoding(&mut self) {}
        fn increment_counter(&mut self, id: usize, labels: &[&str], by: u64) {
            let labels = labels.iter().map(|l| l.to_string()).collect();
            self.counted.push((id, labels, by));
        }
        fn record_histogram(&mut self, _: usize, _: u64) {}
        fn set_gauge(&mut self, id: usize, value: u64) {
            self.gauges.push((id, value));
        }
        fn set_metadata(&mut self, _: &str, _: &str, _: &str) {}
    }

    /// What ward's parts counted reaches Envoy once, as the difference
    /// since the last copy; a gauge is set only when it changed.
    #[test]
    fn mirrored_counters_send_each_unit_once_and_gauges_only_changes() {
        let stats = Stats::define(&mut Defined::default()).unwrap();
        let metrics = Metrics::new().unwrap();
        let public = Decision::AllowAnonymous { method: None };
        let hits = |sink: &Sink| -> u64 {
            let labels = ["token", "hit"].map(String::from).to_vec();
            sink.counted
                .iter()
                .filter(|(_, l, _)| *l == labels)
                .map(|(_, _, by)| by)
                .sum()
        };
        let mut sink = Sink::default();
        metrics.token_cache_hits.inc_by(3);
        stats.record(&mut sink, &public, 1, &metrics);
        stats.record(&mut sink, &public, 1, &metrics);
        metrics.token_cache_hits.inc();
        metrics.jwks_keys.set(4);
        stats.record(&mut sink, &public, 1, &metrics);
        stats.record(&mut sink, &public, 1, &metrics);
        assert_eq!(hits(&sink), 4);
        // Two gauges set at the first decision, one on its change.
        assert_eq!(sink.gauges.len(), 3, "{:?}", sink.gauges);
        assert_eq!(sink.gauges.last().map(|g| g.1), Some(4));
    }

    #[test]
    fn every_skip_reason_is_mirrored_under_its_label() {
        for reason in SkipReason::ALL {
            let mirrored = series().iter().any(|(name, _, values, source)| {
                *name == "jwks_keys_skipped_total"
                    && *values == [reason.as_str()]
                    && matches!(source, Source::Skipped(r) if *r == reason)
            });
            assert!(mirrored, "{reason:?}");
        }
    }

    #[test]
    fn each_name_is_defined_once_with_the_grpc_modes_labels() {
        let mut defined = Defined::default();
        Stats::define(&mut defined).unwrap();
        let names: Vec<&str> = defined.0.iter().map(|(n, _)| n.as_str()).collect();
        let mut unique = names.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), names.len(), "{names:?}");
        let labels = |name: &str| defined.0.iter().find(|(n, _)| n == name).unwrap().1.clone();
        assert_eq!(labels("check_total"), ["decision", "method", "reason"]);
        assert_eq!(labels("cache_requests_total"), ["cache", "result"]);
        assert_eq!(labels("store_requests_total"), ["result"]);
    }
}
