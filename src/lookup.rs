//! Store reads behind an in-process moka cache, so the hot path for a
//! known session or API key never leaves the process.
//!
//! - A record is *fresh* for `cache.store_ttl` (invalidation messages
//!   evict it sooner), and never past its key's own TTL.
//! - "Not found" is cached for `cache.negative_ttl`: a flood of random
//!   ids costs one store call per id per window, not one per request.
//! - Concurrent misses for one key make one store call (`flights.rs`).
//! - When the store fails (an outage, not a bad record: see
//!   [`StoreError::fault`]), a read answered before (a record, or a "not
//!   found") is served for up to `store.stale_if_error` past its
//!   freshness, if the caller allows it (`Stale`: the route's
//!   `on_store_error` is `stale` or `open`); then the error surfaces and
//!   the caller denies (503). Errors are never cached.
//! - An invalidation wins over a read of the same key in flight: that read
//!   answers its callers but is not cached, so a revocation is never
//!   overwritten by an older copy.
//!
//! Freshness and the stale window are measured on a [`Clock`] (monotonic
//! in production, manual in tests, so a test of a window advances time
//! rather than sleeping through it). moka's own expiry (`KeepFor`) runs
//! on real time and only removes entries the clock already calls unusable
//! (a safety net for memory, not the rule).

use crate::clock::Clock;
use crate::config::Config;
use crate::flights::{Flights, Role};
use crate::metrics::Metrics;
use crate::on_store_error::Fault;
use crate::ports::Stale;
use crate::record::{ApiKeyRecord, Record, SessionRecord};
use crate::store::keys::KeyNames;
use crate::store::{Backend, Invalidation, Store, StoreError};
use moka::Expiry;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::Instrument;

/// What a read found, by kind of key: the one cache holds all three.
#[derive(Debug, Clone)]
enum Found {
    Session(Option<Arc<SessionRecord>>),
    ApiKey(Option<Arc<ApiKeyRecord>>),
    Revoked(bool),
}

/// One kind of answer a read gives, and where it sits in [`Found`]. Key
/// names differ by kind (`store/keys.rs`), so one key only ever holds one
/// kind; should a cached value still be of another kind, [`Answer::of`]
/// gives `None` and the read treats it as not cached.
trait Answer: Clone + Send + Sync + 'static {
    fn of(found: &Found) -> Option<Self>;
    fn into_found(self) -> Found;
    /// "Not found" (or "not revoked"): fresh only for `cache.negative_ttl`.
    fn is_negative(&self) -> bool;
    /// The key's own TTL, which no cached copy outlives.
    fn ttl(&self) -> Option<Duration>;
}

impl Answer for Option<Arc<SessionRecord>> {
    fn of(found: &Found) -> Option<Self> {
        match found {
            Found::Session(r) => Some(r.clone()),
            Found::ApiKey(_) | Found::Revoked(_) => None,
        }
    }
    fn into_found(self) -> Found {
        Found::Session(self)
    }
    fn is_negative(&self) -> bool {
        self.is_none()
    }
    fn ttl(&self) -> Option<Duration> {
        self.as_ref().and_then(|r| r.hash.ttl)
    }
}

impl Answer for Option<Arc<ApiKeyRecord>> {
    fn of(found: &Found) -> Option<Self> {
        match found {
            Found::ApiKey(r) => Some(r.clone()),
            Found::Session(_) | Found::Revoked(_) => None,
        }
    }
    fn into_found(self) -> Found {
        Found::ApiKey(self)
    }
    fn is_negative(&self) -> bool {
        self.is_none()
    }
    fn ttl(&self) -> Option<Duration> {
        self.as_ref().and_then(|r| r.hash.ttl)
    }
}

impl Answer for bool {
    fn of(found: &Found) -> Option<Self> {
        match found {
            Found::Revoked(revoked) => Some(*revoked),
            Found::Session(_) | Found::ApiKey(_) => None,
        }
    }
    fn into_found(self) -> Found {
        Found::Revoked(self)
    }
    fn is_negative(&self) -> bool {
        !*self
    }
    fn ttl(&self) -> Option<Duration> {
        None
    }
}

#[derive(Debug)]
struct Cached {
    found: Found,
    fetched: Instant,
    fresh_for: Duration,
    /// Fresh plus the stale window, capped by the key's TTL.
    keep_for: Duration,
}

impl Cached {
    fn fresh(&self, clock: &Clock) -> bool {
        clock.since(self.fetched) < self.fresh_for
    }
    fn usable_stale(&self, clock: &Clock) -> bool {
        clock.since(self.fetched) < self.keep_for
    }
}

struct KeepFor;

impl Expiry<String, Arc<Cached>> for KeepFor {
    fn expire_after_create(&self, _: &String, v: &Arc<Cached>, _: Instant) -> Option<Duration> {
        Some(v.keep_for)
    }
    fn expire_after_update(
        &self,
        _: &String,
        v: &Arc<Cached>,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(v.keep_for)
    }
}

/// The cache's hasher: foldhash (quality), seeded per process, rather
/// than the standard SipHash. Each read hashes its key several times
/// (lookup, single-flight, insert, and again whenever the table grows),
/// and SipHash over a `session:{sid}` key was a tenth of a miss's cost.
/// The keys are client-chosen, so the seed stays random.
type StoreKeyHasher = foldhash::quality::RandomState;

/// Something else an invalidation message may name (the opaque tokens'
/// answers, `introspections.rs`): told every key, and every reset.
pub trait Evict: Send + Sync {
    fn evict(&self, key: &str);
    fn evict_all(&self);
}

/// Cached reads of sessions, API keys and revocations.
pub struct Lookups {
    /// Told of every invalidation too; held weakly, so a checker that
    /// goes (a reload) stops being told.
    also: std::sync::Mutex<Vec<std::sync::Weak<dyn Evict>>>,
    store: Store,
    keys: KeyNames,
    cache: moka::sync::Cache<String, Arc<Cached>, StoreKeyHasher>,
    flights: Flights<String, Result<Arc<Cached>, StoreError>>,
    store_ttl: Duration,
    negative_ttl: Duration,
    stale_if_error: Duration,
    metrics: Arc<Metrics>,
    clock: Clock,
}

impl Lookups {
    /// Evicts what `store` says changed, and everything on each
    /// (re)subscribe, on the current Tokio runtime until `stop` changes or
    /// its sender goes (`ward serve`, and the Envoy module per filter
    /// config).
    pub fn spawn_invalidations(
        self: &Arc<Self>,
        store: &Store,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) {
        let mut rx = store.invalidations();
        let lookups = Arc::clone(self);
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    msg = rx.recv() => match msg {
                        Some(Invalidation::Key(key)) => lookups.invalidate(&key).await,
                        Some(Invalidation::Reset) => lookups.invalidate_all(),
                        None => return,
                    },
                    _ = stop.changed() => return,
                }
            }
        });
    }

    pub fn new(config: &Config, store: Store, metrics: Arc<Metrics>) -> Self {
        Self::with_clock(config, store, metrics, Clock::Monotonic)
    }

    /// Reads whose freshness and stale window are measured on `clock`
    /// (tests pass a manual one).
    pub fn with_clock(config: &Config, store: Store, metrics: Arc<Metrics>, clock: Clock) -> Self {
        Self {
            store,
            keys: KeyNames::new(&config.store.key_prefix),
            cache: moka::sync::Cache::builder()
                .max_capacity(config.cache.store_max_entries)
                .initial_capacity(usize::try_from(config.cache.store_max_entries).unwrap_or(0))
                .expire_after(KeepFor)
                .build_with_hasher(StoreKeyHasher::default()),
            store_ttl: config.cache.store_ttl,
            negative_ttl: config.cache.negative_ttl,
            stale_if_error: config.store.stale_if_error,
            flights: Flights::new(),
            metrics,
            clock,
            also: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// Tells `other` of every invalidation from now on, while it lives.
    pub fn also_evict(&self, other: std::sync::Weak<dyn Evict>) {
        if let Ok(mut also) = self.also.lock() {
            also.retain(|o| o.strong_count() > 0);
            also.push(other);
        }
    }

    /// Runs `f` on each live [`Evict`] registered.
    fn tell(&self, f: impl Fn(&dyn Evict)) {
        let live: Vec<_> = match self.also.lock() {
            Ok(also) => also.iter().filter_map(std::sync::Weak::upgrade).collect(),
            Err(_) => return,
        };
        for other in live {
            f(other.as_ref());
        }
    }

    /// The clock these reads are measured on (the checker's limiter reads
    /// it too).
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    pub fn keys(&self) -> &KeyNames {
        &self.keys
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The hash at `session:{sid}`. With `stale`, a store failure may be
    /// answered from a read made before (see the module docs).
    pub async fn session(
        &self,
        sid: &str,
        stale: Stale,
    ) -> Result<Option<Arc<SessionRecord>>, StoreError> {
        let key = self.keys.session(sid);
        self.read("session", &key, stale, || hash_read(&self.store, &key))
            .await
    }

    /// The hash at `apikey:{hash}`.
    pub async fn api_key(
        &self,
        key_hash: &str,
        stale: Stale,
    ) -> Result<Option<Arc<ApiKeyRecord>>, StoreError> {
        let key = self.keys.api_key(key_hash);
        self.read("api_key", &key, stale, || hash_read(&self.store, &key))
            .await
    }

    /// Whether `revoked_jti:{jti}` exists.
    pub async fn jti_revoked(&self, jti: &str, stale: Stale) -> Result<bool, StoreError> {
        let key = self.keys.revoked_jti(jti);
        self.read("revoked_jti", &key, stale, || self.store.exists(&key))
            .await
    }

    /// Evicts one key (an invalidation message named it). A read of the
    /// key in flight is marked first, so it stores nothing: a revocation
    /// published while an older copy was on the wire is never lost.
    pub async fn invalidate(&self, key: &str) {
        self.flights.invalidate(key);
        self.cache.invalidate(key);
        self.tell(|other| other.evict(key));
    }

    /// Evicts everything (messages may have been missed). Reads in flight
    /// when it runs do not store what they read.
    pub fn invalidate_all(&self) {
        self.flights.invalidate_all();
        self.cache.invalidate_all();
        self.tell(|other| other.evict_all());
    }

    /// `fetch` makes the store call, only if this read leads a miss: a
    /// closure, so a cache hit never builds (or moves) the call's future.
    /// For traces, a hit is an event of the check's span and a miss a
    /// `ward.store.read` span; both name the record's kind, never its key
    /// (which holds a session id).
    async fn read<T: Answer, F: Future<Output = Result<T, StoreError>>>(
        &self,
        kind: &'static str,
        key: &str,
        stale: Stale,
        fetch: impl FnOnce() -> F,
    ) -> Result<T, StoreError> {
        let epoch = self.flights.epoch();
        if let Some(found) = self.fresh(key) {
            self.metrics.store_cache_hits.inc();
            tracing::info!(target: crate::TRACE_TARGET, record = kind, "ward.store.cache_hit");
            return Ok(found);
        }
        if stale == Stale::CacheOnly {
            return Err(StoreError::NotCached);
        }
        self.metrics.store_cache_misses.inc();
        let span =
            tracing::info_span!(target: crate::TRACE_TARGET, "ward.store.read", ward.record = kind);
        match self.read_once(key, epoch, fetch).instrument(span).await {
            Ok(answer) => Ok(answer),
            Err(err) if stale == Stale::Allowed && err.fault() == Fault::Outage => {
                self.stale(key, &err).ok_or(err)
            }
            Err(err) => Err(err),
        }
    }

    /// The store's answer for `key`, read by one caller for all who ask at
    /// once (`flights.rs`), and cached unless invalidated meanwhile.
    async fn read_once<T: Answer, F: Future<Output = Result<T, StoreError>>>(
        &self,
        key: &str,
        epoch: u64,
        fetch: impl FnOnce() -> F,
    ) -> Result<T, StoreError> {
        let mut epoch = Some(epoch);
        loop {
            match self.flights.join(key, epoch) {
                Role::Leader(lead) => {
                    let fetched = self.fetch(fetch()).await;
                    let cached = fetched.as_ref().map(|(_, c)| c.clone());
                    lead.land(cached.map_err(Clone::clone), |f| {
                        if let Ok(c) = f {
                            self.cache.insert(key.to_string(), c.clone());
                        }
                    });
                    return fetched.map(|(answer, _)| answer);
                }
                Role::Follower(flight) => match flight.wait().await {
                    Some(Ok(c)) => match T::of(&c.found) {
                        Some(answer) => return Ok(answer),
                        // Not an answer of this kind: read it ourselves.
                        None => epoch = None,
                    },
                    Some(Err(e)) => return Err(e),
                    // Its lead was cancelled: read again.
                    None => {}
                },
                Role::Landed => {
                    // A read of this key may have just been stored: look
                    // once more, then read.
                    epoch = None;
                    if let Some(found) = self.fresh(key) {
                        return Ok(found);
                    }
                }
            }
        }
    }

    /// Through an outage, a copy read before and kept for this
    /// (`keep_for`): looked up now, not the one seen before the miss,
    /// which an invalidation may have evicted since. (Never through a bad
    /// record: that is what the store holds now, and an older copy must
    /// not hide it.)
    fn stale<T: Answer>(&self, key: &str, err: &StoreError) -> Option<T> {
        let cached = self.cache.get(key)?;
        if !cached.usable_stale(&self.clock) {
            return None;
        }
        let answer = T::of(&cached.found)?;
        self.metrics.store_cache_stale.inc();
        tracing::warn!(error = %err, "store failed: serving a stale entry");
        Some(answer)
    }

    /// What the cache holds for `key`, if fresh and of this kind.
    fn fresh<T: Answer>(&self, key: &str) -> Option<T> {
        self.cache
            .get(key)
            .filter(|c| c.fresh(&self.clock))
            .and_then(|c| T::of(&c.found))
    }

    /// One store read, counted, with how long its answer may be kept.
    async fn fetch<T: Answer>(
        &self,
        read: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<(T, Arc<Cached>), StoreError> {
        let result = read.await;
        match &result {
            Ok(_) => self.metrics.store_ok.inc(),
            Err(_) => self.metrics.store_errors.inc(),
        }
        let answer = result?;
        let (fresh_for, keep_for) = if answer.is_negative() {
            // A "not found" (or "not revoked") is fresh only briefly, but
            // usable through an outage like any other read.
            (self.negative_ttl, self.negative_ttl + self.stale_if_error)
        } else {
            let keep = self.store_ttl + self.stale_if_error;
            match answer.ttl() {
                Some(ttl) => (self.store_ttl.min(ttl), keep.min(ttl)),
                None => (self.store_ttl, keep),
            }
        };
        let cached = Cached {
            found: answer.clone().into_found(),
            fetched: self.clock.now(),
            fresh_for,
            keep_for: keep_for.max(Duration::from_millis(1)),
        };
        Ok((answer, Arc::new(cached)))
    }
}

/// A hash read as a typed record with an empty view slot.
async fn hash_read<V>(store: &Store, key: &str) -> Result<Option<Arc<Record<V>>>, StoreError> {
    Ok(store.hash(key).await?.map(|h| Arc::new(Record::new(h))))
}
