//! The verified-credential cache: the reason the hot path never verifies a
//! signature twice.
//!
//! Keyed by the SHA-256 of the token, so the cache holds no credential and
//! a hit needs no constant-time compare (an attacker who can find a
//! SHA-256 preimage has easier targets). Only successes are stored, as the
//! rendered identity, and an entry never outlives its token's `exp`: moka
//! evicts it at min(max_ttl, exp - now), and a hit re-checks `exp` against
//! the caller's clock, so a late eviction can never extend a token's life.

use crate::config::CacheConfig;
use crate::credentials::CredentialHash;
use crate::identity::Identity;
use moka::Expiry;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Held by value: moka clones it on a hit (an `Arc` count and two
/// numbers), and an `Arc<Entry>` would cost every entry one more heap
/// block (`tests/footprint.rs`).
#[derive(Debug, Clone)]
struct Entry {
    identity: Arc<Identity>,
    expires_at: u64,
    ttl: Duration,
}

struct PerEntryTtl;

impl Expiry<CredentialHash, Entry> for PerEntryTtl {
    fn expire_after_create(
        &self,
        _key: &CredentialHash,
        value: &Entry,
        _created_at: Instant,
    ) -> Option<Duration> {
        Some(value.ttl)
    }
}

/// Keys are SHA-256 digests: foldhash (seeded per process) is enough, and
/// cheaper than SipHash on every lookup.
type KeyHasher = foldhash::quality::RandomState;

/// Verified identities by credential hash. Disabled means every lookup
/// misses and nothing is stored.
#[derive(Clone)]
pub struct TokenCache {
    inner: Option<moka::sync::Cache<CredentialHash, Entry, KeyHasher>>,
    max_ttl: Duration,
}

impl TokenCache {
    pub fn new(config: &CacheConfig) -> Self {
        let inner = config.enabled.then(|| {
            moka::sync::Cache::builder()
                .max_capacity(config.max_entries)
                .expire_after(PerEntryTtl)
                .build_with_hasher(KeyHasher::default())
        });
        Self {
            inner,
            max_ttl: config.max_ttl,
        }
    }

    /// The cached identity for `key`, if its token is still unexpired at
    /// `now` (unix seconds).
    pub fn get(&self, key: &CredentialHash, now: u64) -> Option<Arc<Identity>> {
        let entry = self.inner.as_ref()?.get(key)?;
        (now < entry.expires_at).then_some(entry.identity)
    }

    /// Stores a verified identity whose credential expires at `expires_at`.
    pub fn insert(&self, key: CredentialHash, identity: Arc<Identity>, expires_at: u64, now: u64) {
        let Some(cache) = &self.inner else { return };
        let remaining = Duration::from_secs(expires_at.saturating_sub(now));
        // Entries cached together must not all expire together (a burst of
        // re-verifications stalls the hits queued behind it): take up to
        // 10% off `max_ttl`, spread by the key (a SHA-256, so uniform).
        let jitter = self.max_ttl.mul_f64(f64::from(key[0]) / 255.0 * 0.1);
        let ttl = remaining.min(self.max_ttl - jitter);
        if ttl.is_zero() {
            return;
        }
        let entry = Entry {
            identity,
            expires_at,
            ttl,
        };
        cache.insert(key, entry);
    }

    pub fn is_enabled(&self) -> bool {
        self.inner.is_some()
    }

    /// Entries currently held (approximate).
    #[cfg(test)]
    fn len(&self) -> u64 {
        self.inner.as_ref().map_or(0, |c| c.entry_count())
    }

    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Runs moka's pending maintenance now (a test or a footprint count
    /// wants the steady state: moka otherwise does it on later calls).
    pub fn sync(&self) {
        if let Some(c) = &self.inner {
            c.run_pending_tasks();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credential_kind::CredentialKind;
    use crate::credentials::hash_credential;

    fn identity(user: &str) -> Arc<Identity> {
        Arc::new(Identity::from(crate::identity::IdentityParts {
            user_id: user.into(),
            method: CredentialKind::Jwt,
            headers: vec![],
            jti: None,
            session_id: None,
            roles: vec![],
            scopes: vec![],
        }))
    }

    fn cache(enabled: bool) -> TokenCache {
        TokenCache::new(&CacheConfig {
            enabled,
            max_entries: 100,
            max_ttl: Duration::from_secs(300),
            ..CacheConfig::default()
        })
    }

    #[test]
    fn hit_until_the_token_expires() {
        let c = cache(true);
        let k = hash_credential("token-a");
        c.insert(k, identity("alice"), 1_000, 900);
        assert_eq!(c.get(&k, 900).unwrap().user_id(), "alice");
        assert_eq!(c.get(&k, 999).unwrap().user_id(), "alice");
        assert!(c.get(&k, 1_000).is_none(), "never past exp");
        assert!(c.get(&hash_credential("token-b"), 900).is_none());
    }

    #[test]
    fn expired_tokens_and_disabled_cache_store_nothing() {
        let c = cache(true);
        let k = hash_credential("t");
        c.insert(k, identity("a"), 100, 100);
        c.sync();
        assert!(c.is_empty());
        let off = cache(false);
        off.insert(k, identity("a"), 1_000, 100);
        assert!(off.get(&k, 100).is_none());
    }

    #[test]
    fn ttls_are_spread_so_entries_cached_together_expire_apart() {
        let c = cache(true);
        let ttl_of = |first: u8| {
            let mut k = [7u8; 32];
            k[0] = first;
            c.insert(k, identity("a"), 1_000_000, 0);
            c.inner.as_ref().unwrap().get(&k).unwrap().ttl
        };
        assert_eq!(ttl_of(0), Duration::from_secs(300));
        assert_eq!(ttl_of(255), Duration::from_secs(270));
        let mid = ttl_of(128);
        assert!(mid > Duration::from_secs(270) && mid < Duration::from_secs(300));
    }
}
