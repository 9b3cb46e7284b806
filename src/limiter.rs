//! Brute-force limiter: failed authentications per client IP and per
//! credential, answered with 429 before any store call.
//!
//! Format checks keep junk away from Redis, and "not found" is cached, but
//! a flood of *well-formed* random session ids or API keys would still make
//! one store call each. So every failed authentication drains a token
//! bucket (governor's GCRA) for the client IP and one for the credential
//! prefix; while either is empty, [`Limiter::blocked`] says so and the
//! caller answers 429 with `Retry-After`, without touching the store.
//!
//! governor cannot peek at a bucket without drawing from it, so the
//! failure that empties a bucket records its key as "blocked until" in a
//! second cache, which [`Limiter::blocked`] reads without drawing. Both
//! caches are moka caches bounded by `max_tracked`; buckets are forgotten
//! after `per` idle (by then a bucket is full again, so nothing is lost),
//! blocks when they end. When no key is blocked at all, `blocked` is one
//! clock read and one atomic load.
//!
//! Time is read from a [`Clock`] (the buckets' and the blocks'): the
//! monotonic clock in production, a manual one in tests, so a test of a
//! refill advances time instead of sleeping. moka's own expiry of idle
//! buckets and ended blocks stays on real time; it only forgets what the
//! clock says is over (or full again) anyway.

use crate::clock::Clock;
use crate::config::{FailureBudget, LimitsConfig};
use governor::middleware::StateInformationMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use moka::sync::Cache;
use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Credential keys longer than this are cut, bounding the memory of a key.
pub const MAX_CREDENTIAL_KEY_BYTES: usize = 64;

/// Counts failed authentications and says who is blocked.
pub struct Limiter {
    /// `None` when `limits.enabled` is false: nothing is counted or blocked.
    inner: Option<Inner>,
}

struct Inner {
    clock: Clock,
    /// The origin of every "nanoseconds" below.
    start: Instant,
    /// No key is blocked at or after this instant (nanoseconds since
    /// `start`): the fast path of [`Limiter::blocked`].
    horizon: AtomicU64,
    ips: Tracker<ClientKey>,
    credentials: Tracker<Vec<u8>>,
}

/// Who a client IP is: an IPv4 address, or an IPv6 /64 (one client, or
/// one customer of a provider, owns a whole /64 and can pick any address
/// in it at will).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum ClientKey {
    V4([u8; 4]),
    V6Net([u8; 8]),
}

impl ClientKey {
    fn of(ip: IpAddr) -> Self {
        match ip.to_canonical() {
            IpAddr::V4(v4) => ClientKey::V4(v4.octets()),
            IpAddr::V6(v6) => {
                let o = v6.octets();
                ClientKey::V6Net([o[0], o[1], o[2], o[3], o[4], o[5], o[6], o[7]])
            }
        }
    }
}

type Gcra = RateLimiter<NotKeyed, InMemoryState, Clock, StateInformationMiddleware>;

/// The buckets of one kind of key, and the keys of that kind now blocked.
///
/// Blocked keys live apart from the buckets so that a flood of keys that
/// each fail once (and never block) cannot push a blocked key out: to
/// evict one, an attacker would have to get `max_tracked` other keys
/// blocked.
struct Tracker<K> {
    quota: Quota,
    buckets: Cache<K, Arc<Gcra>>,
    /// Key -> blocked until (nanoseconds since `Inner::start`).
    blocked: Cache<K, u64>,
}

impl<K: Hash + Eq + Send + Sync + Clone + 'static> Tracker<K> {
    fn new(budget: FailureBudget, max_tracked: u64) -> Self {
        let failures = NonZeroU32::new(budget.failures).unwrap_or(NonZeroU32::MIN);
        let interval = (budget.per / failures.get()).max(Duration::from_nanos(1));
        let quota = Quota::with_period(interval)
            .unwrap_or(Quota::per_second(NonZeroU32::MIN))
            .allow_burst(failures);
        // An idle bucket is full again after `per`: forgetting it loses
        // nothing. A block never lasts longer than one refill interval.
        let buckets = Cache::builder()
            .max_capacity(max_tracked)
            .time_to_idle(budget.per.max(Duration::from_millis(1)))
            .build();
        let blocked = Cache::builder()
            .max_capacity(max_tracked)
            .time_to_live(interval + Duration::from_millis(1))
            .build();
        Self {
            quota,
            buckets,
            blocked,
        }
    }

    fn entries(&self) -> u64 {
        self.buckets.run_pending_tasks();
        self.blocked.run_pending_tasks();
        self.buckets.entry_count() + self.blocked.entry_count()
    }

    /// How long `key` stays blocked after `now` (nanoseconds since start).
    fn remaining<Q>(&self, key: &Q, now: u64) -> Option<Duration>
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let until = self.blocked.get(key)?;
        (until > now).then(|| Duration::from_nanos(until - now))
    }

    /// Draws one failure from `key`'s bucket; when that empties it, blocks
    /// the key until the bucket holds one failure again. `horizon` is
    /// raised to the new "blocked until".
    fn fail<Q>(
        &self,
        key: &Q,
        clock: &Clock,
        start: Instant,
        horizon: &AtomicU64,
    ) -> Option<Duration>
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let bucket = self.buckets.get_with_by_ref(key, || {
            Arc::new(
                RateLimiter::direct_with_clock(self.quota, clock.clone())
                    .with_middleware::<StateInformationMiddleware>(),
            )
        });
        let refused = match bucket.check() {
            Ok(state) if state.remaining_burst_capacity() > 0 => return None,
            // Just emptied. A refused check draws nothing, so this asks
            // "when is the next one allowed?" (if a cell came back in
            // between, it draws one more: conservative).
            Ok(_) => bucket.check().err()?,
            Err(refused) => refused,
        };
        let now = clock.now();
        let wait = refused.wait_time_from(now);
        let until = nanos_since(start, now + wait);
        self.blocked.insert(key.to_owned(), until);
        horizon.fetch_max(until, Ordering::Relaxed);
        Some(wait)
    }
}

fn nanos_since(start: Instant, t: Instant) -> u64 {
    u64::try_from(t.saturating_duration_since(start).as_nanos()).unwrap_or(u64::MAX)
}

/// `Retry-After` is whole seconds: round up, and never say 0.
fn retry_after(wait: Duration) -> Duration {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    Duration::from_secs(secs.max(1))
}

fn credential_key(credential: &[u8]) -> &[u8] {
    &credential[..credential.len().min(MAX_CREDENTIAL_KEY_BYTES)]
}

impl Limiter {
    pub fn new(config: &LimitsConfig) -> Self {
        Self::with_clock(config, Clock::Monotonic)
    }

    /// A limiter whose buckets and blocks read `clock` (tests pass a
    /// manual one).
    pub fn with_clock(config: &LimitsConfig, clock: Clock) -> Self {
        let inner = config.enabled.then(|| Inner {
            start: clock.now(),
            clock,
            horizon: AtomicU64::new(0),
            ips: Tracker::new(config.per_ip, config.max_tracked),
            credentials: Tracker::new(config.per_credential, config.max_tracked),
        });
        Self { inner }
    }

    /// Whether any key may be blocked right now: when false, [`Limiter::blocked`]
    /// is `None` for every key, so a caller can skip deriving its keys.
    pub fn any_blocked(&self) -> bool {
        self.inner.as_ref().is_some_and(|inner| {
            // Zero until the first block: no clock read on the common path.
            let horizon = inner.horizon.load(Ordering::Relaxed);
            horizon != 0 && nanos_since(inner.start, inner.clock.now()) < horizon
        })
    }

    /// Before any store call. Some(retry_after) when this client IP or this credential is
    /// currently blocked (its failure bucket is empty).
    ///
    /// `credential` is an opaque key chosen by the caller (a prefix of the
    /// credential's hash, or an API key's public part); only its first
    /// [`MAX_CREDENTIAL_KEY_BYTES`] bytes count. The duration is whole
    /// seconds, at least 1.
    pub fn blocked(&self, ip: Option<IpAddr>, credential: Option<&[u8]>) -> Option<Duration> {
        let inner = self.inner.as_ref()?;
        let now = nanos_since(inner.start, inner.clock.now());
        if now >= inner.horizon.load(Ordering::Relaxed) {
            return None;
        }
        let by_ip = ip.and_then(|ip| inner.ips.remaining(&ClientKey::of(ip), now));
        let by_credential =
            credential.and_then(|c| inner.credentials.remaining(credential_key(c), now));
        by_ip.max(by_credential).map(retry_after)
    }

    /// After an authentication failed (bad/unknown/expired/revoked credential; NOT for 503s
    /// or 400s — the caller decides). Returns Some(retry_after) if this failure exhausted a bucket.
    ///
    /// The failure that empties a bucket blocks its key until the bucket
    /// refills by one (`per / failures`); the result is whole seconds, at
    /// least 1.
    pub fn record_failure(
        &self,
        ip: Option<IpAddr>,
        credential: Option<&[u8]>,
    ) -> Option<Duration> {
        let inner = self.inner.as_ref()?;
        let (clock, start, horizon) = (&inner.clock, inner.start, &inner.horizon);
        let by_ip = ip.and_then(|ip| inner.ips.fail(&ClientKey::of(ip), clock, start, horizon));
        let by_credential = credential.and_then(|c| {
            inner
                .credentials
                .fail(credential_key(c), clock, start, horizon)
        });
        by_ip.max(by_credential).map(retry_after)
    }

    /// Entries held (buckets and blocks, client IPs and credentials),
    /// after pending evictions ran: for tests and a gauge.
    pub fn tracked(&self) -> u64 {
        self.inner
            .as_ref()
            .map_or(0, |inner| inner.ips.entries() + inner.credentials.entries())
    }
}

#[cfg(test)]
mod tests;
