//! Store reads behind an in-process moka cache, so the hot path for a
//! known session or API key never leaves the process.
//!
//! - A record is *fresh* for `cache.store_ttl` (invalidation messages
//!   evict it sooner), and never past its key's own TTL.
//! - "Not found" is cached for `cache.negative_ttl`: a flood of random
//!   ids costs one store call per id per window, not one per request.
//! - Concurrent misses for one key make one store call (`lookup/flights.rs`).
//! - When the store fails (an outage, not a bad record: see
//!   [`StoreError::fault`]), a read answered before (a record, or a "not
//!   found") is served for up to `store.stale_if_error` past its
//!   freshness, if the caller allows it ([`Stale`]: the route's
//!   `on_store_error` is `stale` or `open`); then the error surfaces and
//!   the caller denies (503). Errors are never cached.
//! - An invalidation wins over a read of the same key in flight: that read
//!   answers its callers but is not cached, so a revocation is never
//!   overwritten by an older copy.

use crate::config::Config;
use crate::memo::Memo;
use crate::metrics::Metrics;
use crate::on_store_error::Fault;
use crate::store::keys::KeyNames;
use crate::store::{Backend, Hash, Store, StoreError};
use flights::{Flights, Role};
use moka::Expiry;
use std::sync::Arc;
use std::time::{Duration, Instant};

mod flights;

/// Whether a read may be answered from an older copy when the store
/// fails: the route's `on_store_error` decides (`closed` never). And
/// `CacheOnly`: answer from a fresh cached read or not at all, never
/// asking the store (for a client the brute-force limiter has blocked).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stale {
    Allowed,
    Refused,
    CacheOnly,
}

/// What a read found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    Hash(Option<Arc<Record>>),
    Exists(bool),
}

/// A hash as cached, with a slot for what the caller derives from it (the
/// parsed, validated record and its identity), so that a cache hit does
/// not parse the same record again. A refetch or an invalidation makes a
/// new `Record` with an empty slot: nothing derived outlives its copy.
#[derive(Debug, PartialEq, Eq)]
pub struct Record {
    pub hash: Hash,
    pub derived: Memo,
}

impl Record {
    pub fn new(hash: Hash) -> Self {
        Record {
            hash,
            derived: Memo::default(),
        }
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
    fn fresh(&self) -> bool {
        self.fetched.elapsed() < self.fresh_for
    }
    fn usable_stale(&self) -> bool {
        self.fetched.elapsed() < self.keep_for
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

/// Cached reads of sessions, API keys and revocations.
pub struct Lookups {
    store: Store,
    keys: KeyNames,
    cache: moka::sync::Cache<String, Arc<Cached>, StoreKeyHasher>,
    flights: Flights<Result<Arc<Cached>, StoreError>>,
    store_ttl: Duration,
    negative_ttl: Duration,
    stale_if_error: Duration,
    metrics: Arc<Metrics>,
}

impl Lookups {
    pub fn new(config: &Config, store: Store, metrics: Arc<Metrics>) -> Self {
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
        }
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
    ) -> Result<Option<Arc<Record>>, StoreError> {
        self.hash(self.keys.session(sid), stale).await
    }

    /// The hash at `apikey:{hash}`.
    pub async fn api_key(
        &self,
        key_hash: &str,
        stale: Stale,
    ) -> Result<Option<Arc<Record>>, StoreError> {
        self.hash(self.keys.api_key(key_hash), stale).await
    }

    /// Whether `revoked_jti:{jti}` exists.
    pub async fn jti_revoked(&self, jti: &str, stale: Stale) -> Result<bool, StoreError> {
        match self.read(self.keys.revoked_jti(jti), false, stale).await? {
            Found::Exists(e) => Ok(e),
            Found::Hash(_) => Ok(false),
        }
    }

    async fn hash(&self, key: String, stale: Stale) -> Result<Option<Arc<Record>>, StoreError> {
        match self.read(key, true, stale).await? {
            Found::Hash(h) => Ok(h),
            Found::Exists(_) => Ok(None),
        }
    }

    /// Evicts one key (an invalidation message named it). A read of the
    /// key in flight is marked first, so it stores nothing: a revocation
    /// published while an older copy was on the wire is never lost.
    pub async fn invalidate(&self, key: &str) {
        self.flights.invalidate(key);
        self.cache.invalidate(key);
    }

    /// Evicts everything (messages may have been missed). Reads in flight
    /// when it runs do not store what they read.
    pub fn invalidate_all(&self) {
        self.flights.invalidate_all();
        self.cache.invalidate_all();
    }

    async fn read(&self, key: String, is_hash: bool, stale: Stale) -> Result<Found, StoreError> {
        let mut epoch = Some(self.flights.epoch());
        if let Some(found) = self.fresh(&key) {
            self.metrics.store_cache_hits.inc();
            return Ok(found);
        }
        if stale == Stale::CacheOnly {
            return Err(StoreError::NotCached);
        }
        self.metrics.store_cache_misses.inc();
        let fetched = loop {
            match self.flights.join(&key, epoch) {
                Role::Leader(lead) => {
                    let fetched = self.fetch(&key, is_hash).await.map(Arc::new);
                    lead.land(fetched.clone(), |f| {
                        if let Ok(c) = f {
                            self.cache.insert(key.clone(), c.clone());
                        }
                    });
                    break fetched;
                }
                Role::Follower(flight) => {
                    if let Some(fetched) = flight.wait().await {
                        break fetched;
                    }
                    // Its lead was cancelled: read again.
                }
                Role::Landed => {
                    // A read of this key may have just been stored: look
                    // once more, then read.
                    epoch = None;
                    if let Some(found) = self.fresh(&key) {
                        return Ok(found);
                    }
                }
            }
        };
        match fetched {
            Ok(c) => Ok(c.found.clone()),
            // A copy read before, kept for this (`keep_for`): looked up
            // now, not the one seen before the miss, which an invalidation
            // may have evicted since. Only through an outage: a bad record
            // is what the store holds now, and an older copy must not
            // hide it.
            Err(err) => match self.cache.get(&key) {
                Some(c)
                    if stale == Stale::Allowed
                        && err.fault() == Fault::Outage
                        && c.usable_stale() =>
                {
                    self.metrics.store_cache_stale.inc();
                    tracing::warn!(error = %err, "store failed: serving a stale entry");
                    Ok(c.found.clone())
                }
                _ => Err(err),
            },
        }
    }

    /// What the cache holds for `key`, if fresh.
    fn fresh(&self, key: &str) -> Option<Found> {
        self.cache
            .get(key)
            .filter(|c| c.fresh())
            .map(|c| c.found.clone())
    }

    async fn fetch(&self, key: &str, is_hash: bool) -> Result<Cached, StoreError> {
        let result = if is_hash {
            self.store
                .hash(key)
                .await
                .map(|h| Found::Hash(h.map(|h| Arc::new(Record::new(h)))))
        } else {
            self.store.exists(key).await.map(Found::Exists)
        };
        match &result {
            Ok(_) => self.metrics.store_ok.inc(),
            Err(_) => self.metrics.store_errors.inc(),
        }
        let found = result?;
        let (fresh_for, keep_for) = match &found {
            // A "not found" (or "not revoked") is fresh only briefly, but
            // usable through an outage like any other read.
            Found::Hash(None) | Found::Exists(false) => {
                (self.negative_ttl, self.negative_ttl + self.stale_if_error)
            }
            Found::Hash(Some(r)) => {
                let keep = self.store_ttl + self.stale_if_error;
                match r.hash.ttl {
                    Some(ttl) => (self.store_ttl.min(ttl), keep.min(ttl)),
                    None => (self.store_ttl, keep),
                }
            }
            Found::Exists(true) => (self.store_ttl, self.store_ttl + self.stale_if_error),
        };
        Ok(Cached {
            found,
            fetched: Instant::now(),
            fresh_for,
            keep_for: keep_for.max(Duration::from_millis(1)),
        })
    }
}
