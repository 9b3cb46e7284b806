//! The monotonic clock that ward's time windows read: the store cache's
//! freshness, "not found" and stale windows (`lookup.rs`) and the
//! limiter's buckets and blocks (`limiter.rs`).
//!
//! It is injectable so that tests of those windows move time instead of
//! sleeping through it: a [`ManualClock`] stands still until a test
//! advances it, so a test of a 3 s window takes no 3 s and cannot flake on
//! a loaded machine. An enum rather than a trait object: in production a
//! read is `Instant::now()` behind one predictable branch, with no dynamic
//! call per cache lookup. Wall-clock time (`unix_now()`, for `exp` and
//! `expires_at`) is another matter: the core takes it as `now`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Where ward reads monotonic time.
#[derive(Debug, Clone, Default)]
pub enum Clock {
    /// `Instant::now()`: the clock `ward serve` runs on.
    #[default]
    Monotonic,
    /// Time that moves only when a test advances it.
    Manual(ManualClock),
}

impl Clock {
    #[inline]
    pub fn now(&self) -> Instant {
        match self {
            Clock::Monotonic => Instant::now(),
            Clock::Manual(manual) => manual.now(),
        }
    }

    /// Time passed since `earlier`, zero if `earlier` is later.
    #[inline]
    pub fn since(&self, earlier: Instant) -> Duration {
        self.now().saturating_duration_since(earlier)
    }
}

/// The limiter's governor buckets read the same clock.
impl governor::clock::Clock for Clock {
    type Instant = Instant;

    #[inline]
    fn now(&self) -> Instant {
        Clock::now(self)
    }
}

/// A clock for tests: it starts at the instant it was made and moves only
/// by [`ManualClock::advance`]. Clones share one time.
#[derive(Debug, Clone)]
pub struct ManualClock {
    start: Instant,
    /// Nanoseconds advanced since `start`.
    advanced: Arc<AtomicU64>,
}

impl ManualClock {
    pub fn new() -> Self {
        Self {
            start: Instant::now(),
            advanced: Arc::default(),
        }
    }

    /// Moves this clock (and every clone of it) forward by `by`.
    pub fn advance(&self, by: Duration) {
        let by = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        let _ = self
            .advanced
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |t| {
                Some(t.saturating_add(by))
            });
    }

    pub fn now(&self) -> Instant {
        self.start + Duration::from_nanos(self.advanced.load(Ordering::Acquire))
    }

    /// The [`Clock`] reading this time.
    pub fn clock(&self) -> Clock {
        Clock::Manual(self.clone())
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_advanced_and_clones_share_it() {
        let manual = ManualClock::new();
        let clock = manual.clock();
        let t0 = clock.now();
        assert_eq!(clock.now(), t0, "real time does not move it");
        manual.advance(Duration::from_millis(1500));
        assert_eq!(clock.since(t0), Duration::from_millis(1500));
        assert_eq!(clock.since(t0 + Duration::from_secs(9)), Duration::ZERO);
    }
}
