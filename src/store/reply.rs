//! What a store read returns, in the store's own terms: a hash with its
//! remaining TTL, or a [`StoreError`] classified once ([`StoreError::fault`])
//! as an outage or a bad record. Pure vocabulary, apart from the backends
//! (`redis.rs`, `memory.rs`), so the checker's core can name a read's
//! result without depending on how it was made.

use crate::fields::Fields;
use crate::on_store_error::Fault;
use std::time::Duration;

/// A Redis hash as read, with the key's remaining time to live.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Hash {
    pub fields: Fields,
    /// `None` when the key has no expiry.
    pub ttl: Option<Duration>,
}

/// Why the store could not answer. [`StoreError::fault`] sorts each error
/// once into what it means for a check (`on_store_error.rs` decides what
/// to do about it): an outage may pass under `on_store_error: open`, a bad
/// record never does.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("store did not answer within {0:?}")]
    Timeout(Duration),
    #[error("store unavailable: {0}")]
    Unavailable(String),
    #[error("circuit open: not calling the store for now")]
    CircuitOpen,
    /// The store answered with an error that is not about the record
    /// (`NOPERM`, `OOM`, an unknown command): a deployment problem, the
    /// same for every key, so an outage for the check.
    #[error("store error: {0}")]
    Command(String),
    /// The record is not what the contract says: `WRONGTYPE` (a string
    /// where a hash belongs), a reply of the wrong shape, bytes that are
    /// not UTF-8. A permanent problem with this one key.
    #[error("bad record: {0}")]
    BadRecord(String),
    /// A cache-only read (for a client the limiter blocked) found nothing
    /// cached, and the store was not asked.
    #[error("not cached (cache-only read)")]
    NotCached,
}

impl StoreError {
    /// What this error means for a check.
    pub fn fault(&self) -> Fault {
        match self {
            StoreError::Timeout(_)
            | StoreError::Unavailable(_)
            | StoreError::CircuitOpen
            | StoreError::Command(_) => Fault::Outage,
            StoreError::BadRecord(_) => Fault::BadRecord,
            StoreError::NotCached => Fault::NotCached,
        }
    }
}
