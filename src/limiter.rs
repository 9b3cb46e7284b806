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
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    fn limiter(ip: (u32, Duration), credential: (u32, Duration)) -> Limiter {
        limiter_tracking(ip, credential, 1000)
    }

    fn limiter_tracking(
        ip: (u32, Duration),
        credential: (u32, Duration),
        max_tracked: u64,
    ) -> Limiter {
        limiter_on(ip, credential, max_tracked, Clock::Monotonic)
    }

    fn limiter_on(
        ip: (u32, Duration),
        credential: (u32, Duration),
        max_tracked: u64,
        clock: Clock,
    ) -> Limiter {
        let budget = |(failures, per)| FailureBudget { failures, per };
        let config = LimitsConfig {
            enabled: true,
            per_ip: budget(ip),
            per_credential: budget(credential),
            max_tracked,
        };
        Limiter::with_clock(&config, clock)
    }

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    const SECOND: Duration = Duration::from_secs(1);
    const MINUTE: Duration = Duration::from_secs(60);

    #[test]
    fn the_failure_that_empties_the_bucket_blocks() {
        let l = limiter((3, SECOND), (3, SECOND));
        let a = ip("192.0.2.1");
        for _ in 0..2 {
            assert_eq!(l.record_failure(a, None), None);
            assert_eq!(l.blocked(a, None), None);
        }
        assert_eq!(l.record_failure(a, None), Some(SECOND));
        assert_eq!(l.blocked(a, None), Some(SECOND));
        assert_eq!(l.blocked(ip("192.0.2.2"), None), None);
        assert_eq!(l.blocked(None, None), None);
        assert_eq!(l.blocked(None, Some(b"k")), None);
    }

    #[test]
    fn a_block_lasts_until_one_failure_refills_and_the_bucket_refills_in_per() {
        // 3 per second: one failure comes back every 333 ms.
        let time = ManualClock::new();
        let l = limiter_on((3, SECOND), (3, SECOND), 1000, time.clock());
        let a = ip("192.0.2.1");
        for _ in 0..3 {
            l.record_failure(a, None);
        }
        assert!(l.any_blocked());
        time.advance(Duration::from_millis(333));
        assert!(l.blocked(a, None).is_some(), "blocked for a whole interval");
        time.advance(Duration::from_millis(1));
        assert_eq!(l.blocked(a, None), None);
        assert!(!l.any_blocked());
        assert_eq!(l.record_failure(a, None), Some(SECOND), "one came back");
        assert!(l.blocked(a, None).is_some());
        time.advance(SECOND);
        assert_eq!(l.blocked(a, None), None);
        assert_eq!(l.record_failure(a, None), None);
        assert_eq!(l.record_failure(a, None), None);
        assert_eq!(l.record_failure(a, None), Some(SECOND), "full burst again");
    }

    #[test]
    fn retry_after_is_the_refill_time_in_whole_seconds() {
        // 2 per minute: blocked for 30 s after the second failure.
        let l = limiter((2, MINUTE), (1, Duration::from_secs(24 * 3600)));
        let a = ip("192.0.2.1");
        assert_eq!(l.record_failure(a, None), None);
        assert_eq!(l.record_failure(a, None), Some(Duration::from_secs(30)));
        assert_eq!(l.blocked(a, None), Some(Duration::from_secs(30)));
        // A budget of one failure blocks on the first.
        let day = Some(Duration::from_secs(24 * 3600));
        assert_eq!(l.record_failure(None, Some(b"k")), day);
        assert_eq!(l.blocked(None, Some(b"k")), day);
        assert_eq!(l.blocked(a, Some(b"k")), day, "the longer block wins");
    }

    #[test]
    fn ip_and_credential_budgets_are_independent() {
        let l = limiter((5, MINUTE), (2, MINUTE));
        let (a, b) = (ip("192.0.2.1"), ip("198.51.100.7"));
        // One credential tried from two IPs: the credential is blocked, not the IPs.
        assert_eq!(l.record_failure(a, Some(b"cred-x")), None);
        assert!(l.record_failure(b, Some(b"cred-x")).is_some());
        assert!(l.blocked(None, Some(b"cred-x")).is_some());
        assert!(l.blocked(a, Some(b"cred-x")).is_some());
        assert_eq!(l.blocked(a, None), None);
        assert_eq!(l.blocked(a, Some(b"cred-y")), None);
        // One IP trying many credentials: the IP is blocked, not the credentials.
        for i in 0..3 {
            assert_eq!(l.record_failure(b, Some(format!("c{i}").as_bytes())), None);
        }
        assert!(l.record_failure(b, Some(b"c3")).is_some());
        assert!(l.blocked(b, None).is_some(), "five failures from b");
        assert!(l.blocked(b, Some(b"c0")).is_some());
        assert_eq!(l.blocked(None, Some(b"c0")), None);
        assert_eq!(l.blocked(a, Some(b"c0")), None);
    }

    #[test]
    fn ipv6_clients_are_keyed_by_their_64_and_mapped_ipv4_by_the_ipv4() {
        let l = limiter((3, MINUTE), (100, MINUTE));
        for addr in [
            "2001:db8:1:2::1",
            "2001:db8:1:2:ffff::9",
            "2001:db8:1:2:a:b:c:d",
        ] {
            l.record_failure(ip(addr), None);
        }
        assert!(l.blocked(ip("2001:db8:1:2::abcd"), None).is_some());
        assert_eq!(l.blocked(ip("2001:db8:1:3::1"), None), None);

        for _ in 0..3 {
            l.record_failure(ip("::ffff:203.0.113.9"), None);
        }
        assert!(l.blocked(ip("203.0.113.9"), None).is_some());
        assert_eq!(l.blocked(ip("203.0.113.10"), None), None);
        assert_eq!(l.blocked(ip("::"), None), None);
    }

    #[test]
    fn credential_keys_count_up_to_their_first_64_bytes() {
        let l = limiter((100, MINUTE), (2, MINUTE));
        let long = |last: u8| {
            let mut k = vec![b'k'; MAX_CREDENTIAL_KEY_BYTES];
            k.push(last);
            k
        };
        l.record_failure(None, Some(&long(1)));
        assert!(l.record_failure(None, Some(&long(2))).is_some());
        assert!(l.blocked(None, Some(&long(3))).is_some());
        assert_eq!(l.blocked(None, Some(&long(3)[1..])), None);
    }

    #[test]
    fn a_disabled_limiter_never_counts_or_blocks() {
        let l = Limiter::new(&LimitsConfig {
            enabled: false,
            ..LimitsConfig::default()
        });
        for _ in 0..100 {
            assert_eq!(l.record_failure(ip("192.0.2.1"), Some(b"k")), None);
        }
        assert_eq!(l.blocked(ip("192.0.2.1"), Some(b"k")), None);
        assert_eq!(l.tracked(), 0);
    }

    #[test]
    fn a_flood_of_distinct_keys_stays_within_max_tracked() {
        // A budget of one: every key is both counted and blocked.
        let l = limiter_tracking((1, MINUTE), (1, MINUTE), 50);
        for i in 0..5000u32 {
            let addr = IpAddr::from(i.to_be_bytes());
            assert!(
                l.record_failure(Some(addr), Some(&i.to_le_bytes()))
                    .is_some()
            );
        }
        let tracked = l.tracked();
        // Buckets and blocks, for IPs and credentials: 4 caches of 50.
        assert!((100..=200).contains(&tracked), "{tracked} entries");
    }

    #[test]
    fn the_defaults_block_an_ip_for_3s_and_a_credential_for_6s() {
        // docs/configuration.md: per / failures once the budget is spent.
        let l = Limiter::new(&LimitsConfig::default());
        let a = ip("192.0.2.1");
        for _ in 0..19 {
            assert_eq!(l.record_failure(a, None), None);
        }
        assert_eq!(l.record_failure(a, None), Some(Duration::from_secs(3)));
        for _ in 0..9 {
            assert_eq!(l.record_failure(None, Some(b"k")), None);
        }
        assert_eq!(
            l.record_failure(None, Some(b"k")),
            Some(Duration::from_secs(6))
        );
    }

    #[test]
    fn a_flood_of_one_time_keys_does_not_evict_a_blocked_attacker() {
        let l = Limiter::new(&LimitsConfig {
            max_tracked: 50,
            ..LimitsConfig::default()
        });
        let attacker = ip("198.51.100.1");
        for _ in 0..20 {
            l.record_failure(attacker, Some(b"stolen"));
        }
        for i in 0..5000u32 {
            l.record_failure(Some(IpAddr::from(i.to_be_bytes())), Some(&i.to_le_bytes()));
            if i % 100 == 0 {
                assert!(l.blocked(attacker, None).is_some(), "after {i}");
            }
        }
        l.tracked();
        assert!(l.blocked(attacker, None).is_some());
        assert!(l.blocked(None, Some(b"stolen")).is_some());
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        for (wait, want) in [
            (Duration::ZERO, 1),
            (Duration::from_nanos(1), 1),
            (SECOND, 1),
            (Duration::from_millis(1001), 2),
            (Duration::from_millis(29_999), 30),
            (MINUTE, 60),
        ] {
            assert_eq!(retry_after(wait), Duration::from_secs(want), "{wait:?}");
        }
    }
}
