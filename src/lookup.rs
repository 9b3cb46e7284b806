//! Store reads behind an in-process moka cache, so the hot path for a
//! known session or API key never leaves the process.
//!
//! - A record is *fresh* for `cache.store_ttl` (invalidation messages
//!   evict it sooner), and never past its key's own TTL.
//! - "Not found" is cached for `cache.negative_ttl`: a flood of random
//!   ids costs one store call per id per window, not one per request.
//! - Concurrent misses for one key make one store call (moka's per-key
//!   compute is single-flight).
//! - When the store fails, a read answered before (a record, or a "not
//!   found") is served for up to `store.stale_if_error` past its
//!   freshness, if the caller allows it ([`Stale`]: the route's
//!   `on_store_error` is `stale` or `open`); then the error surfaces and
//!   the caller denies (503). Errors are never cached.
//! - An invalidation waits for a read of the same key in flight and wins
//!   over it: a revocation is never overwritten by an older copy.

use crate::config::Config;
use crate::memo::Memo;
use crate::metrics::Metrics;
use crate::store::keys::KeyNames;
use crate::store::{Backend, Hash, Store, StoreError};
use moka::Expiry;
use moka::ops::compute::{CompResult, Op};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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
    cache: moka::future::Cache<String, Arc<Cached>, StoreKeyHasher>,
    store_ttl: Duration,
    negative_ttl: Duration,
    stale_if_error: Duration,
    metrics: Arc<Metrics>,
    /// Bumped by every invalidation; see [`Lookups::read`].
    generation: AtomicU64,
}

impl Lookups {
    pub fn new(config: &Config, store: Store, metrics: Arc<Metrics>) -> Self {
        Self {
            store,
            keys: KeyNames::new(&config.store.key_prefix),
            cache: moka::future::Cache::builder()
                .max_capacity(config.cache.store_max_entries)
                .expire_after(KeepFor)
                .build_with_hasher(StoreKeyHasher::default()),
            store_ttl: config.cache.store_ttl,
            negative_ttl: config.cache.negative_ttl,
            stale_if_error: config.store.stale_if_error,
            metrics,
            generation: AtomicU64::new(0),
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

    /// Evicts one key (an invalidation message named it). It goes through
    /// the same per-key compute as a read, so it waits for a fetch in
    /// flight and removes what that fetch stored: a revocation published
    /// while an older copy was on the wire is never lost.
    pub async fn invalidate(&self, key: &str) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.cache
            .entry(key.to_string())
            .and_compute_with(|_| async { Op::Remove })
            .await;
    }

    /// Evicts everything (messages may have been missed). Fetches in
    /// flight when it runs do not store what they read.
    pub fn invalidate_all(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.cache.invalidate_all();
    }

    async fn read(&self, key: String, is_hash: bool, stale: Stale) -> Result<Found, StoreError> {
        if let Some(c) = self.cache.get(&key).await
            && c.fresh()
        {
            self.metrics.store_cache_hits.inc();
            return Ok(c.found.clone());
        }
        if stale == Stale::CacheOnly {
            return Err(StoreError::Unavailable(
                "not cached (cache-only read)".into(),
            ));
        }
        self.metrics.store_cache_misses.inc();
        // A read overtaken by an invalidation answers its own caller but
        // stores nothing: what it read may be older than the invalidation.
        let overtaken: Mutex<Option<Found>> = Mutex::new(None);
        let outcome = self
            .cache
            .entry(key.clone())
            .and_try_compute_with(|existing| async {
                if let Some(e) = &existing
                    && e.value().fresh()
                {
                    return Ok(Op::Nop); // another caller just refreshed it
                }
                let generation = self.generation.load(Ordering::SeqCst);
                match self.fetch(&key, is_hash).await {
                    Ok(c) if self.generation.load(Ordering::SeqCst) != generation => {
                        if let Ok(mut slot) = overtaken.lock() {
                            *slot = Some(c.found);
                        }
                        Ok(Op::Remove)
                    }
                    Ok(c) => Ok(Op::Put(Arc::new(c))),
                    Err(err) => match existing {
                        Some(e) if stale == Stale::Allowed && e.value().usable_stale() => {
                            self.metrics.store_cache_stale.inc();
                            tracing::warn!(error = %err, "store failed: serving a stale entry");
                            Ok(Op::Nop)
                        }
                        _ => Err(err),
                    },
                }
            })
            .await?;
        if let Some(found) = overtaken.lock().ok().and_then(|mut slot| slot.take()) {
            return Ok(found);
        }
        match outcome {
            CompResult::Inserted(e) | CompResult::ReplacedWith(e) | CompResult::Unchanged(e) => {
                Ok(e.into_value().found.clone())
            }
            CompResult::StillNone(_) | CompResult::Removed(_) => {
                Err(StoreError::Unavailable("cache entry vanished".into()))
            }
        }
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
