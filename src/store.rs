//! The store: where login services (in any language) write sessions and
//! API keys, and where ward reads them. Redis in production; an in-process
//! map with the same semantics for the quick start and tests.
//!
//! The contract (key names, field names, TTLs, invalidation channel) is
//! documented in `docs/redis-contract.md` and named in one place,
//! [`keys`]. Backends implement a handful of Redis-shaped primitives
//! ([`Backend`]); the domain operations (read a session, revoke a user's
//! sessions, create an API key) are written once on top, in
//! [`records`], so both backends behave the same by construction, and one
//! contract test suite runs against both.
//!
//! Failure mode: every backend error is a [`StoreError`]; the caller turns
//! it into a decision (stale entry or 503), never into an allow.

pub mod keys;
pub mod memory;
pub mod records;
pub mod redis;

use std::collections::HashMap;
use std::time::Duration;

/// A Redis hash as read, with the key's remaining time to live.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Hash {
    pub fields: HashMap<String, String>,
    /// `None` when the key has no expiry.
    pub ttl: Option<Duration>,
}

/// Why the store could not answer. Always transient from ward's point of
/// view: the same call may succeed later, and until then ward fails closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("store did not answer within {0:?}")]
    Timeout(Duration),
    #[error("store unavailable: {0}")]
    Unavailable(String),
    #[error("circuit open: not calling the store for now")]
    CircuitOpen,
    #[error("store error: {0}")]
    Command(String),
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
    /// `PUBLISH channel message`.
    async fn publish(&self, channel: &str, message: &str) -> Result<(), StoreError>;
}
