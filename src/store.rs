//! The store: where login services (in any language) write sessions and
//! API keys, and where ward reads them. Redis in production; an in-process
//! map with the same semantics for the quick start and tests.
//!
//! The contract (key names, field names, TTLs, invalidation channel) is
//! documented in `docs/redis-contract.md`. Key and channel names are named
//! in one place, [`keys`]; each record's field names in the one module
//! that reads and writes it (`crate::session`, `crate::apikey`). Backends implement a handful of Redis-shaped primitives
//! ([`Backend`]); the domain operations (read a session, revoke a user's
//! sessions, create an API key) are written once on top, in
//! [`records`], so both backends behave the same by construction, and one
//! contract test suite runs against both.
//!
//! Failure mode: every backend error is a [`StoreError`], classified once
//! ([`StoreError::fault`]): an outage or a bad record. `on_store_error.rs`
//! turns that into a decision, the same way for every read site.

pub mod breaker;
pub mod keys;
pub mod memory;
pub mod records;
pub mod redis;
pub mod reply;
pub mod seed;

pub use reply::{Hash, StoreError};

use std::sync::Arc;
use std::time::Duration;

/// What a store tells its readers' caches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invalidation {
    /// This key changed or was deleted: evict it.
    Key(String),
    /// Messages may have been missed (a (re)subscription): evict all.
    Reset,
}

/// The store ward runs with.
#[derive(Debug, Clone)]
pub enum Store {
    Memory(Arc<memory::MemoryStore>),
    Redis(Arc<redis::RedisStore>),
}

/// Why the store could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("seed file: {0}")]
    Seed(#[from] seed::SeedError),
    #[error("redis: {0}")]
    Redis(StoreError),
}

impl Store {
    /// Opens the configured store: Redis when `store.redis` is set, else
    /// the embedded store, seeded from `store.seed_file` if given.
    pub async fn open(config: &crate::config::Config) -> Result<Store, OpenError> {
        if let Some(redis) = &config.store.redis {
            let store = redis::RedisStore::connect(redis)
                .await
                .map_err(OpenError::Redis)?;
            return Ok(Store::Redis(Arc::new(store)));
        }
        let memory = Arc::new(memory::MemoryStore::default());
        if let Some(path) = &config.store.seed_file {
            let keys = keys::KeyNames::new(&config.store.key_prefix);
            let (s, k) =
                seed::load(path, &config.api_keys, &memory, &keys, crate::unix_now()).await?;
            tracing::info!(sessions = s, api_keys = k, file = %path.display(), "embedded store seeded");
        }
        Ok(Store::Memory(memory))
    }

    /// A stream of invalidations for this store's readers. The first
    /// message is always [`Invalidation::Reset`].
    pub fn invalidations(&self) -> tokio::sync::mpsc::Receiver<Invalidation> {
        let (tx, rx) = tokio::sync::mpsc::channel(1024);
        match self {
            Store::Redis(r) => return r.subscribe_invalidations(),
            Store::Memory(m) => {
                let mut sub = m.subscribe();
                tokio::spawn(async move {
                    if tx.send(Invalidation::Reset).await.is_err() {
                        return;
                    }
                    loop {
                        let msg = match sub.recv().await {
                            Ok((channel, key)) if channel == keys::INVALIDATION_CHANNEL => {
                                Invalidation::Key(key)
                            }
                            Ok(_) => continue,
                            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                                Invalidation::Reset
                            }
                            Err(_) => return,
                        };
                        if tx.send(msg).await.is_err() {
                            return;
                        }
                    }
                });
            }
        }
        rx
    }
}

macro_rules! delegate {
    ($self:ident, $b:ident => $call:expr) => {
        match $self {
            Store::Memory($b) => $call,
            Store::Redis($b) => $call,
        }
    };
}

impl Backend for Store {
    async fn hash(&self, key: &str) -> Result<Option<Hash>, StoreError> {
        delegate!(self, b => b.hash(key).await)
    }
    async fn put_hash(
        &self,
        key: &str,
        fields: &[(&str, &str)],
        ttl: Option<Duration>,
    ) -> Result<(), StoreError> {
        delegate!(self, b => b.put_hash(key, fields, ttl).await)
    }
    async fn set_field_if_exists(
        &self,
        key: &str,
        field: &str,
        value: &str,
    ) -> Result<bool, StoreError> {
        delegate!(self, b => b.set_field_if_exists(key, field, value).await)
    }
    async fn expire_field_if_exists(
        &self,
        key: &str,
        field: &str,
        value: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        delegate!(self, b => b.expire_field_if_exists(key, field, value, ttl).await)
    }
    async fn exists(&self, key: &str) -> Result<bool, StoreError> {
        delegate!(self, b => b.exists(key).await)
    }
    async fn put_string(
        &self,
        key: &str,
        value: &str,
        ttl: Option<Duration>,
    ) -> Result<(), StoreError> {
        delegate!(self, b => b.put_string(key, value, ttl).await)
    }
    async fn string(&self, key: &str) -> Result<Option<String>, StoreError> {
        delegate!(self, b => b.string(key).await)
    }
    async fn delete(&self, key: &str) -> Result<bool, StoreError> {
        delegate!(self, b => b.delete(key).await)
    }
    async fn set_add(&self, key: &str, member: &str) -> Result<(), StoreError> {
        delegate!(self, b => b.set_add(key, member).await)
    }
    async fn set_remove(&self, key: &str, member: &str) -> Result<(), StoreError> {
        delegate!(self, b => b.set_remove(key, member).await)
    }
    async fn set_members(&self, key: &str) -> Result<Vec<String>, StoreError> {
        delegate!(self, b => b.set_members(key).await)
    }
    async fn set_add_for(&self, key: &str, member: &str, ttl: Duration) -> Result<(), StoreError> {
        delegate!(self, b => b.set_add_for(key, member, ttl).await)
    }
    async fn claim(&self, key: &str, claimant: &str, ttl: Duration) -> Result<bool, StoreError> {
        delegate!(self, b => b.claim(key, claimant, ttl).await)
    }
    async fn publish(&self, channel: &str, message: &str) -> Result<(), StoreError> {
        delegate!(self, b => b.publish(channel, message).await)
    }
}

/// The primitives every store offers, with Redis semantics.
#[allow(async_fn_in_trait)]
pub trait Backend {
    /// `HGETALL key` and `PTTL key`; `None` when the key does not exist.
    async fn hash(&self, key: &str) -> Result<Option<Hash>, StoreError>;
    /// Replaces `key` with a hash of `fields` and an optional TTL, in one
    /// atomic step (`MULTI DEL HSET PEXPIRE EXEC`): never half-written.
    async fn put_hash(
        &self,
        key: &str,
        fields: &[(&str, &str)],
        ttl: Option<Duration>,
    ) -> Result<(), StoreError>;
    /// Sets one field only if the key exists; true if it did.
    async fn set_field_if_exists(
        &self,
        key: &str,
        field: &str,
        value: &str,
    ) -> Result<bool, StoreError>;
    /// Sets one field and caps the key's TTL at `ttl` (a longer or no TTL
    /// becomes `ttl`, a shorter one stays), only if the key exists, in one
    /// atomic step; true if it did. What ends a record early (an API key's
    /// rotation) without a window where the field and the TTL disagree.
    async fn expire_field_if_exists(
        &self,
        key: &str,
        field: &str,
        value: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError>;
    /// `EXISTS key`.
    async fn exists(&self, key: &str) -> Result<bool, StoreError>;
    /// `SET key value [PX ttl]`.
    async fn put_string(
        &self,
        key: &str,
        value: &str,
        ttl: Option<Duration>,
    ) -> Result<(), StoreError>;
    /// `GET key`.
    async fn string(&self, key: &str) -> Result<Option<String>, StoreError>;
    /// `DEL key`; true if it existed.
    async fn delete(&self, key: &str) -> Result<bool, StoreError>;
    /// `SADD key member`.
    async fn set_add(&self, key: &str, member: &str) -> Result<(), StoreError>;
    /// `SREM key member`.
    async fn set_remove(&self, key: &str, member: &str) -> Result<(), StoreError>;
    /// `SMEMBERS key`, sorted.
    async fn set_members(&self, key: &str) -> Result<Vec<String>, StoreError>;
    /// `SADD key member`, and the key's TTL raised to at least `ttl`
    /// (never lowered, so an index outlives every member's record), in
    /// one atomic step.
    async fn set_add_for(&self, key: &str, member: &str, ttl: Duration) -> Result<(), StoreError>;
    /// Sets `key` to `claimant` for `ttl` unless it holds another value,
    /// in one atomic step; true when it now holds `claimant`. A first use
    /// (a logout token's `jti`) wins; the same request sent twice (a retry
    /// on a dropped connection) is still its own, a second claimant not.
    async fn claim(&self, key: &str, claimant: &str, ttl: Duration) -> Result<bool, StoreError>;
    /// `PUBLISH channel message`.
    async fn publish(&self, channel: &str, message: &str) -> Result<(), StoreError>;
}
