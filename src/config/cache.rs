//! The `cache` section: the two in-process caches, of verified tokens and
//! of store reads (sessions, API keys, revocations), and how long each
//! answer, found or not found, is kept.

use serde::Deserialize;
use std::time::Duration;

/// The in-process caches: verified tokens, and store reads.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheConfig {
    pub enabled: bool,
    pub max_entries: u64,
    /// A verified token lives at most this long, and never past its `exp`.
    #[serde(with = "humantime_serde")]
    pub max_ttl: Duration,
    /// A store read (session, API key, revocation) is fresh this long;
    /// invalidation messages evict sooner. Never past the key's TTL.
    #[serde(with = "humantime_serde")]
    pub store_ttl: Duration,
    /// A "not found" is remembered this long, so a flood of random ids
    /// does not become a flood of store calls.
    #[serde(with = "humantime_serde")]
    pub negative_ttl: Duration,
    /// Store reads held at most.
    pub store_max_entries: u64,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            max_entries: 100_000,
            max_ttl: Duration::from_secs(300),
            store_ttl: Duration::from_secs(30),
            negative_ttl: Duration::from_secs(5),
            store_max_entries: 100_000,
        }
    }
}
