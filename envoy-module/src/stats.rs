//! ward's metrics as Envoy stats, so Envoy's `/stats/prometheus` carries
//! them under the gRPC mode's names (`ward_check_total{decision, method,
//! reason}`, `ward_cache_requests_total{cache, result}`, ...).
//!
//! Envoy lets a module define stats only while it builds the filter
//! config ([`ConfigHost`]), and change them from a stream's hook, on the
//! stream's worker ([`Host`]). So every series is defined up front, with
//! labels from ward's closed tables, and changed only on a worker:
//!
//! - each decision adds to its `ward_check_total` series in ward's own
//!   prometheus [`Metrics`] (one atomic add), and records its latency, in
//!   microseconds, into Envoy's histogram (per request: Envoy buffers
//!   histograms per worker; it holds integers);
//! - the counters are copied into Envoy off the request path: a labelled
//!   Envoy counter costs a stat-name lookup per call, which measured
//!   ~2% of Envoy's CPU per request when every decision made two. So the
//!   module's runtime looks once a second ([`FLUSH_EVERY`]) and, if a
//!   counter or gauge moved, schedules a flush on Envoy's main thread
//!   (`http_filter_config_scheduler`), which adds what each series gained
//!   since the last flush ([`Flush`]). Envoy's copy lags ward's by at most
//!   about a second; Envoy itself flushes stats to sinks every 5 s.
//!
//! A check that panicked (the module's 500) is counted at once, on its
//! worker: it is rare, and has no series in ward's table.

use crate::filter::Host;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;
use ward::decision::Decision;
use ward::jwt::keys::SkipReason;
use ward::metrics::Metrics;

/// Envoy's side while it builds a filter config (`abi::ConfigEnvoy`, or
/// a fake in tests): defining stats (each returns the stat's id), and its
/// log.
pub trait ConfigHost: Flush {
    fn counter(&mut self, name: &str, labels: &[&str]) -> Result<usize, String>;
    fn histogram(&mut self, name: &str, labels: &[&str]) -> Result<usize, String>;
    fn gauge(&mut self, name: &str) -> Result<usize, String>;
    /// A warning in Envoy's log.
    fn warn(&mut self, message: &str);
    /// A way to run [`Stats::flush`] on Envoy's main thread later, from
    /// any thread; `None` if Envoy offers none (then the counters are not
    /// copied: the latency histogram still is).
    fn flusher(&mut self) -> Option<Box<dyn Commit>>;
}

/// Asks Envoy to call the config's flush hook on its main thread.
pub trait Commit: Send + Sync {
    fn commit(&self);
}

/// How often the runtime looks for counters to copy into Envoy.
pub const FLUSH_EVERY: Duration = Duration::from_secs(1);

/// Envoy's side on its main thread, in the flush hook (`abi::ConfigEnvoy`,
/// or a fake in tests).
pub trait Flush {
    fn add_counter(&mut self, id: usize, labels: &[&str], by: u64);
    fn set_gauge(&mut self, id: usize, value: u64);
}

/// Where a mirrored value is read in ward's [`Metrics`].
#[derive(Clone, Copy)]
enum Source {
    Field(fn(&Metrics) -> u64),
    Skipped(SkipReason),
    /// Series `i` of [`Metrics::check_labels`].
    Check(usize),
}

impl Source {
    fn read(self, metrics: &Metrics) -> u64 {
        match self {
            Source::Field(read) => read(metrics),
            Source::Skipped(reason) => metrics.jwks_keys_skipped_total(reason),
            Source::Check(index) => metrics.checks_total(index),
        }
    }
}

/// One counter series mirrored from [`Metrics`] into Envoy.
struct Mirrored {
    id: usize,
    labels: Vec<&'static str>,
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
        ("cache_requests_total", CACHE, &["token", "renewed"], f(|m| m.token_cache_renewed.get())),
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
            counters.push(Mirrored::new(id, labels.to_vec(), source));
        }
        for (index, labels) in Metrics::check_labels().into_iter().enumerate() {
            counters.push(Mirrored::new(checks, labels.to_vec(), Source::Check(index)));
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

    /// Counts a decision applied to `host`'s stream, and its latency.
    pub fn record(
        &self,
        host: &mut impl Host,
        decision: &Decision,
        micros: u64,
        metrics: &Metrics,
    ) {
        metrics.count(decision);
        host.record_histogram(self.duration, micros);
    }

    /// A check that panicked or never finished (the module's 500).
    pub fn record_internal_error(&self, host: &mut impl Host) {
        host.increment_counter(self.checks, &["deny", "none", "internal_error"], 1);
    }

    /// Creates every labelled series in this config's Envoy scope (adding
    /// 0), as ward pre-registers its own. Envoy creates a labelled counter
    /// on its first change and drops it with the last scope that holds
    /// it: without this, after a listener update, a series the new config
    /// had not touched yet would vanish with the old config's scope, and
    /// its count with it.
    pub fn touch(&self, envoy: &mut impl Flush) {
        for series in &self.counters {
            envoy.add_counter(series.id, &series.labels, 0);
        }
    }

    /// Whether a counter or gauge moved since the last [`Stats::flush`].
    pub fn pending(&self, metrics: &Metrics) -> bool {
        self.counters
            .iter()
            .any(|series| series.source.read(metrics) > series.sent.load(Ordering::Relaxed))
            || self
                .gauges
                .iter()
                .any(|gauge| (gauge.read)(metrics) != gauge.sent.load(Ordering::Relaxed))
    }

    /// Adds to Envoy's counters what ward's gained since the last flush,
    /// and sets the gauges that changed. Envoy runs it on its main thread;
    /// each unit is still claimed once ([`AtomicU64::fetch_max`]).
    pub fn flush(&self, envoy: &mut impl Flush, metrics: &Metrics) {
        for series in &self.counters {
            let now = series.source.read(metrics);
            if now <= series.sent.load(Ordering::Relaxed) {
                continue;
            }
            let before = series.sent.fetch_max(now, Ordering::Relaxed);
            if now > before {
                envoy.add_counter(series.id, &series.labels, now - before);
            }
        }
        for gauge in &self.gauges {
            let now = (gauge.read)(metrics);
            if gauge.sent.swap(now, Ordering::Relaxed) != now {
                envoy.set_gauge(gauge.id, u64::try_from(now).unwrap_or(0));
            }
        }
    }
}

impl Mirrored {
    fn new(id: usize, labels: Vec<&'static str>, source: Source) -> Self {
        Mirrored {
            id,
            labels,
            source,
            sent: AtomicU64::new(0),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

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

    impl Flush for Defined {
        fn add_counter(&mut self, _: usize, _: &[&str], _: u64) {}
        fn set_gauge(&mut self, _: usize, _: u64) {}
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
        fn flusher(&mut self) -> Option<Box<dyn Commit>> {
            None
        }
    }

    /// Counter additions and gauge sets, as Envoy would receive them.
    #[derive(Default)]
    struct Sink {
        counted: Vec<(usize, Vec<String>, u64)>,
        gauges: Vec<(usize, u64)>,
    }

    impl Flush for Sink {
        fn add_counter(&mut self, id: usize, labels: &[&str], by: u64) {
            let labels = labels.iter().map(|l| l.to_string()).collect();
            self.counted.push((id, labels, by));
        }
        fn set_gauge(&mut self, id: usize, value: u64) {
            self.gauges.push((id, value));
        }
    }

    /// The total added to the series with these label values.
    fn added(sink: &Sink, labels: &[&str]) -> u64 {
        sink.counted
            .iter()
            .filter(|(_, l, _)| l.iter().map(String::as_str).eq(labels.iter().copied()))
            .map(|(_, _, by)| by)
            .sum()
    }

    /// What ward's parts counted reaches Envoy once, as the difference
    /// since the last flush; a gauge is set only when it changed; nothing
    /// is pending after a flush until something moves.
    #[test]
    fn flushes_send_each_unit_once_and_gauges_only_changes() {
        let stats = Stats::define(&mut Defined::default()).unwrap();
        let metrics = Metrics::new().unwrap();
        let mut sink = Sink::default();
        metrics.token_cache_hits.inc_by(3);
        assert!(stats.pending(&metrics));
        stats.flush(&mut sink, &metrics);
        assert!(!stats.pending(&metrics), "{:?}", sink.gauges);
        stats.flush(&mut sink, &metrics);
        metrics.token_cache_hits.inc();
        metrics.jwks_keys.set(4);
        assert!(stats.pending(&metrics));
        stats.flush(&mut sink, &metrics);
        stats.flush(&mut sink, &metrics);
        assert_eq!(added(&sink, &["token", "hit"]), 4);
        // Two gauges set at the first flush, one on its change.
        assert_eq!(sink.gauges.len(), 3, "{:?}", sink.gauges);
        assert_eq!(sink.gauges.last().map(|g| g.1), Some(4));
    }

    /// Decisions reach Envoy's `check_total` under their labels at the
    /// next flush, not before.
    #[test]
    fn decisions_are_counted_by_ward_and_flushed_under_their_labels() {
        let stats = Stats::define(&mut Defined::default()).unwrap();
        let metrics = Metrics::new().unwrap();
        let public = Decision::AllowAnonymous { method: None };
        metrics.count(&public);
        metrics.count(&public);
        let mut sink = Sink::default();
        stats.flush(&mut sink, &metrics);
        assert_eq!(added(&sink, &["allow", "none", "public"]), 2);
        assert_eq!(added(&sink, &["allow", "none", "ok"]), 0);
        let checks = sink
            .counted
            .iter()
            .find(|(_, l, _)| l[2] == "public")
            .unwrap()
            .0;
        assert_eq!(checks, stats.checks);
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
