//! The introspection calls' metrics (`introspections.rs`): what an
//! operator watches when opaque tokens slow down or fail (calls by
//! result, their latency, how often the cache spares a call, discovery).

use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, Opts, Registry};

/// How one call to a provider ended, or why none was made: a label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallOutcome {
    /// `active: true`, and the answer made an identity.
    Active,
    /// The token does not pass (`active: false`, or a claim refused).
    Inactive,
    /// No usable answer: timeout, connection, status, not RFC 7662,
    /// endpoint unknown, breaker open.
    Error,
    /// Not made: the global limits were reached.
    Overloaded,
}

impl CallOutcome {
    pub const ALL: [CallOutcome; 4] = [
        CallOutcome::Active,
        CallOutcome::Inactive,
        CallOutcome::Error,
        CallOutcome::Overloaded,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CallOutcome::Active => "active",
            CallOutcome::Inactive => "inactive",
            CallOutcome::Error => "error",
            CallOutcome::Overloaded => "overloaded",
        }
    }
}

/// A look in the introspection cache: a label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    Hit,
    NegativeHit,
    Miss,
    /// An outage answered with an earlier active answer (`stale`).
    Stale,
}

impl CacheOutcome {
    pub const ALL: [CacheOutcome; 4] = [
        CacheOutcome::Hit,
        CacheOutcome::NegativeHit,
        CacheOutcome::Miss,
        CacheOutcome::Stale,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CacheOutcome::Hit => "hit",
            CacheOutcome::NegativeHit => "negative_hit",
            CacheOutcome::Miss => "miss",
            CacheOutcome::Stale => "stale",
        }
    }
}

/// `ward_introspection_calls_total{result}`,
/// `ward_introspection_duration_seconds`,
/// `ward_introspection_cache_total{result}`,
/// `ward_introspection_discovery_total{result}`.
pub(super) struct IntrospectionMetrics {
    calls: [IntCounter; 4],
    cache: [IntCounter; 4],
    duration: Histogram,
    discovery: [IntCounter; 2],
}

impl IntrospectionMetrics {
    pub(super) fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let calls = IntCounterVec::new(
            Opts::new(
                "ward_introspection_calls_total",
                "Opaque-token introspection calls to providers, by result.",
            ),
            &["result"],
        )?;
        let cache = IntCounterVec::new(
            Opts::new(
                "ward_introspection_cache_total",
                "Opaque-token lookups in the introspection cache, by result.",
            ),
            &["result"],
        )?;
        let duration = Histogram::with_opts(
            HistogramOpts::new(
                "ward_introspection_duration_seconds",
                "Time of one introspection call, answered or failed.",
            )
            .buckets(vec![
                0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.25, 0.5, 1.0,
            ]),
        )?;
        let discovery = IntCounterVec::new(
            Opts::new(
                "ward_introspection_discovery_total",
                "OpenID discovery reads for introspection endpoints, by result.",
            ),
            &["result"],
        )?;
        registry.register(Box::new(calls.clone()))?;
        registry.register(Box::new(cache.clone()))?;
        registry.register(Box::new(duration.clone()))?;
        registry.register(Box::new(discovery.clone()))?;
        Ok(Self {
            calls: CallOutcome::ALL.map(|o| calls.with_label_values(&[o.as_str()])),
            cache: CacheOutcome::ALL.map(|o| cache.with_label_values(&[o.as_str()])),
            duration,
            discovery: ["ok", "error"].map(|r| discovery.with_label_values(&[r])),
        })
    }

    pub(super) fn call(&self, outcome: CallOutcome) {
        // In bounds: one counter per variant, in declaration order.
        if let Some(c) = self.calls.get(outcome as usize) {
            c.inc();
        }
    }

    pub(super) fn cache(&self, outcome: CacheOutcome) {
        if let Some(c) = self.cache.get(outcome as usize) {
            c.inc();
        }
    }

    pub(super) fn duration(&self, seconds: f64) {
        self.duration.observe(seconds);
    }

    pub(super) fn discovery(&self, ok: bool) {
        self.discovery[usize::from(!ok)].inc();
    }
}
