//! The verified-credential cache: the reason the hot path never verifies a
//! signature twice.
//!
//! Keyed by the SHA-256 of the token, so the cache holds no credential and
//! a hit needs no constant-time compare (an attacker who can find a
//! SHA-256 preimage has easier targets); the small `hot.rs` table in front
//! of it is the exception, and says why. Only successes are stored, as the
//! rendered identity, and an entry never outlives its token's `exp`: a hit
//! re-checks `exp` against the caller's clock, so a late eviction can never
//! extend a token's life.
//!
//! `cache.max_ttl` bounds how long a verification is trusted, so a key
//! removed from a JWKS stops its tokens within it. Verifying every hot
//! token again when that time is up would be a burst of signature checks
//! every `max_ttl` (the tokens cached together come due together), which
//! the hits queued behind it pay for. So each entry remembers the
//! [fingerprint](crate::jwt::KeySet::fingerprint) of the keys that
//! verified it: a hit past `fresh_until` whose keys are still the same set
//! (a refetch of an unchanged JWKS keeps the fingerprint) is renewed for
//! another `max_ttl` at the cost of one insert, since a verification would
//! decide the same (the claims are fixed, `exp` is checked on every hit,
//! and a reload that changes the rules clears this cache). Changed keys:
//! no renewal, the token is verified again. An entry unused for
//! `max_ttl` and half as long again is dropped.
//!
//! In front of it, `hot.rs` keeps the hottest tokens by their text, so a
//! hit on one of them skips the SHA-256 and the lookup here
//! ([`TokenCache::lookup_token`]).

use crate::config::CacheConfig;
use crate::credentials::CredentialHash;
use crate::identity::Identity;
use moka::Expiry;
use std::sync::Arc;
use std::time::{Duration, Instant};

mod hot;

use hot::HotTokens;

/// Held by value: moka clones it on a hit (an `Arc` count and three
/// numbers), and an `Arc<Entry>` would cost every entry one more heap
/// block (`tests/footprint.rs`).
/// Times are unix seconds in `u32` (good until 2106; a later `exp` is
/// clamped, which only shortens a life), so the entry stays 32 bytes.
#[derive(Debug, Clone)]
struct Entry {
    identity: Arc<Identity>,
    /// The fingerprint of the keys that verified it.
    keys: u64,
    /// The token's `exp`.
    expires_at: u32,
    /// Until when the verification is trusted as is.
    fresh_until: u32,
    /// How long moka keeps it from this insert: to the earlier of `exp`
    /// and `fresh_until` plus a grace (so a hot entry is still there to
    /// renew).
    keep_secs: u32,
}

struct Lifetime;

impl Expiry<CredentialHash, Entry> for Lifetime {
    fn expire_after_create(
        &self,
        _key: &CredentialHash,
        value: &Entry,
        _created_at: Instant,
    ) -> Option<Duration> {
        Some(Duration::from_secs(u64::from(value.keep_secs)))
    }

    fn expire_after_update(
        &self,
        key: &CredentialHash,
        value: &Entry,
        updated_at: Instant,
        _duration_until_expiry: Option<Duration>,
    ) -> Option<Duration> {
        self.expire_after_create(key, value, updated_at)
    }
}

/// Keys are SHA-256 digests: foldhash (seeded per process) is enough, and
/// cheaper than SipHash on every lookup.
type KeyHasher = foldhash::quality::RandomState;

/// What a lookup found.
#[derive(Debug)]
pub enum Lookup {
    /// Verified within `max_ttl`, or renewed now.
    Hit(Arc<Identity>),
    /// Nothing usable: verify the token.
    Miss,
}

/// Verified identities by credential hash. Disabled means every lookup
/// misses and nothing is stored.
#[derive(Clone)]
pub struct TokenCache {
    inner: Option<moka::sync::Cache<CredentialHash, Entry, KeyHasher>>,
    /// The hottest tokens by their text (shared by clones, as `inner`).
    hot: Option<Arc<HotTokens>>,
    max_ttl: Duration,
    /// How long past its freshness an unused entry is kept.
    grace: u64,
}

fn secs(unix: u64) -> u32 {
    u32::try_from(unix).unwrap_or(u32::MAX)
}

impl TokenCache {
    pub fn new(config: &CacheConfig) -> Self {
        let inner = config.enabled.then(|| {
            moka::sync::Cache::builder()
                .max_capacity(config.max_entries)
                .expire_after(Lifetime)
                .build_with_hasher(KeyHasher::default())
        });
        let hot = config
            .enabled
            .then(|| HotTokens::for_cache(config.max_entries).map(Arc::new))
            .flatten();
        Self {
            inner,
            hot,
            max_ttl: config.max_ttl,
            grace: config.max_ttl.as_secs().div_ceil(2).max(1),
        }
    }

    /// The cached identity for `key`, if its token is still unexpired at
    /// `now` (unix seconds) and its verification still fresh. No renewal:
    /// see [`TokenCache::lookup`].
    pub fn get(&self, key: &CredentialHash, now: u64) -> Option<Arc<Identity>> {
        let entry = self.inner.as_ref()?.get(key)?;
        let now = secs(now);
        (now < entry.expires_at && now < entry.fresh_until).then_some(entry.identity)
    }

    /// [`TokenCache::lookup`] for `token`, whose hash `key` gives (asked
    /// only when the hot table does not have the token), keeping a hit in
    /// the hot table.
    pub fn lookup_token<'k>(
        &self,
        token: &str,
        key: impl FnOnce() -> &'k CredentialHash,
        now: u64,
        keys: impl FnOnce() -> u64,
        renewed: impl FnOnce(),
    ) -> Lookup {
        if let Some(identity) = self.hot.as_ref().and_then(|h| h.get(token, secs(now))) {
            return Lookup::Hit(identity);
        }
        match self.find(key(), now, keys, renewed) {
            Some((identity, until)) => {
                if let Some(hot) = &self.hot {
                    hot.put(token, Arc::clone(&identity), until, secs(now));
                }
                Lookup::Hit(identity)
            }
            None => Lookup::Miss,
        }
    }

    /// As [`TokenCache::get`], renewing an entry past its freshness when
    /// `keys` (asked only then) is still the fingerprint of the keys that
    /// verified it. `renewed` is told when that happens.
    pub fn lookup(
        &self,
        key: &CredentialHash,
        now: u64,
        keys: impl FnOnce() -> u64,
        renewed: impl FnOnce(),
    ) -> Lookup {
        match self.find(key, now, keys, renewed) {
            Some((identity, _)) => Lookup::Hit(identity),
            None => Lookup::Miss,
        }
    }

    /// A hit's identity and how long it is good as is (the earlier of
    /// `exp` and `fresh_until`, unix seconds).
    fn find(
        &self,
        key: &CredentialHash,
        now: u64,
        keys: impl FnOnce() -> u64,
        renewed: impl FnOnce(),
    ) -> Option<(Arc<Identity>, u32)> {
        let cache = self.inner.as_ref()?;
        let entry = cache.get(key)?;
        if secs(now) >= entry.expires_at {
            return None;
        }
        if secs(now) < entry.fresh_until {
            let until = entry.expires_at.min(entry.fresh_until);
            return Some((entry.identity, until));
        }
        if keys() != entry.keys {
            return None;
        }
        let renewal = self.entry(key, entry.identity, entry.keys, entry.expires_at, now);
        let hit = (
            Arc::clone(&renewal.identity),
            renewal.expires_at.min(renewal.fresh_until),
        );
        cache.insert(*key, renewal);
        renewed();
        Some(hit)
    }

    /// Stores a verified identity whose credential expires at `expires_at`,
    /// verified with keys of fingerprint `keys`.
    pub fn insert(
        &self,
        key: CredentialHash,
        identity: Arc<Identity>,
        expires_at: u64,
        keys: u64,
        now: u64,
    ) {
        let Some(cache) = &self.inner else { return };
        if expires_at <= now {
            return;
        }
        let entry = self.entry(&key, identity, keys, secs(expires_at), now);
        cache.insert(key, entry);
    }

    /// An entry verified (or renewed) at `now`.
    fn entry(
        &self,
        key: &CredentialHash,
        identity: Arc<Identity>,
        keys: u64,
        expires_at: u32,
        now: u64,
    ) -> Entry {
        let fresh_until = now + self.fresh_for(key).as_secs();
        let keep = u64::from(expires_at).min(fresh_until + self.grace);
        Entry {
            identity,
            keys,
            expires_at,
            fresh_until: secs(fresh_until),
            keep_secs: secs(keep.saturating_sub(now)),
        }
    }

    /// How long a verification of `key` is trusted: `max_ttl`, less up to
    /// 10 % spread by the key (a SHA-256, so uniform), so that entries
    /// cached together do not all come due together. At least a second.
    fn fresh_for(&self, key: &CredentialHash) -> Duration {
        let jitter = self.max_ttl.mul_f64(f64::from(key[0]) / 255.0 * 0.1);
        (self.max_ttl - jitter).max(Duration::from_secs(1))
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

    /// A JWT identity of `user` (also for `hot`'s tests).
    pub(super) fn identity(user: &str) -> Arc<Identity> {
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

    const KEYS: u64 = 0x5eed;

    #[test]
    fn hit_until_the_token_expires() {
        let c = cache(true);
        let k = hash_credential("token-a");
        c.insert(k, identity("alice"), 1_000, KEYS, 900);
        assert_eq!(c.get(&k, 900).unwrap().user_id(), "alice");
        assert_eq!(c.get(&k, 999).unwrap().user_id(), "alice");
        assert!(c.get(&k, 1_000).is_none(), "never past exp");
        assert!(c.get(&hash_credential("token-b"), 900).is_none());
    }

    #[test]
    fn expired_tokens_and_disabled_cache_store_nothing() {
        let c = cache(true);
        let k = hash_credential("t");
        c.insert(k, identity("a"), 100, KEYS, 100);
        c.sync();
        assert!(c.is_empty());
        let off = cache(false);
        off.insert(k, identity("a"), 1_000, KEYS, 100);
        assert!(off.get(&k, 100).is_none());
        assert!(matches!(off.lookup(&k, 100, || KEYS, || {}), Lookup::Miss));
    }

    #[test]
    fn freshness_is_spread_so_entries_cached_together_come_due_apart() {
        let c = cache(true);
        let fresh_until = |first: u8| {
            let mut k = [7u8; 32];
            k[0] = first;
            c.insert(k, identity("a"), 1_000_000, KEYS, 0);
            c.inner.as_ref().unwrap().get(&k).unwrap().fresh_until
        };
        assert_eq!(fresh_until(0), 300);
        assert_eq!(fresh_until(255), 270);
        let mid = fresh_until(128);
        assert!(mid > 270 && mid < 300);
    }

    #[test]
    fn a_stale_entry_is_renewed_while_its_keys_are_unchanged() {
        let c = cache(true);
        let k = [0u8; 32]; // no jitter: fresh for 300 s
        c.insert(k, identity("alice"), 10_000, KEYS, 0);
        assert!(c.get(&k, 300).is_none(), "past max_ttl, get does not renew");
        let mut renewals = 0;
        let mut asked = 0;
        let mut lookup = |now| {
            c.lookup(
                &k,
                now,
                || {
                    asked += 1;
                    KEYS
                },
                || renewals += 1,
            )
        };
        assert!(matches!(lookup(299), Lookup::Hit(_)));
        assert!(matches!(lookup(300), Lookup::Hit(_)));
        assert!(
            matches!(lookup(599), Lookup::Hit(_)),
            "renewed at 300 until 600"
        );
        assert_eq!((asked, renewals), (1, 1), "keys asked only when due");
        assert_eq!(c.get(&k, 599).unwrap().user_id(), "alice");
    }

    #[test]
    fn a_stale_entry_whose_keys_changed_is_a_miss() {
        let c = cache(true);
        let k = [0u8; 32];
        c.insert(k, identity("alice"), 10_000, KEYS, 0);
        let mut renewed = false;
        assert!(matches!(
            c.lookup(&k, 300, || KEYS + 1, || renewed = true),
            Lookup::Miss
        ));
        assert!(!renewed);
        assert!(
            matches!(c.lookup(&k, 299, || KEYS + 1, || {}), Lookup::Hit(_)),
            "fresh: keys not asked"
        );
    }

    #[test]
    fn renewal_never_passes_the_tokens_exp() {
        let c = cache(true);
        let k = [0u8; 32];
        c.insert(k, identity("alice"), 400, KEYS, 0);
        assert!(matches!(c.lookup(&k, 300, || KEYS, || {}), Lookup::Hit(_)));
        assert!(matches!(c.lookup(&k, 400, || KEYS, || {}), Lookup::Miss));
    }

    /// `lookup_token` at `now`, and whether it needed the token's hash.
    fn by_text(
        c: &TokenCache,
        token: &str,
        k: &CredentialHash,
        now: u64,
    ) -> (Option<String>, bool) {
        let asked = std::cell::Cell::new(false);
        let hash = || {
            asked.set(true);
            k
        };
        let user = match c.lookup_token(token, hash, now, || KEYS, || {}) {
            Lookup::Hit(identity) => Some(identity.user_id().to_string()),
            Lookup::Miss => None,
        };
        (user, asked.get())
    }

    #[test]
    fn a_hit_by_text_skips_the_hash_until_exp_or_freshness_ends() {
        let c = cache(true);
        let k = [0u8; 32]; // no jitter: fresh for 300 s
        c.insert(k, identity("alice"), 10_000, KEYS, 0);
        let alice = Some("alice".to_string());
        assert_eq!(
            by_text(&c, "token-a", &k, 10),
            (alice.clone(), true),
            "first: hashed"
        );
        assert_eq!(
            by_text(&c, "token-a", &k, 11),
            (alice.clone(), false),
            "then by its text"
        );
        assert!(by_text(&c, "token-b", &k, 12).1, "another text is hashed");
        assert_eq!(
            by_text(&c, "token-a", &k, 300),
            (alice.clone(), true),
            "past its freshness: the full path, which renews it"
        );
        assert_eq!(
            by_text(&c, "token-a", &k, 599),
            (alice, false),
            "renewed until 600"
        );
    }

    #[test]
    fn a_hit_by_text_never_outlives_the_tokens_exp() {
        let c = cache(true);
        let k = [0u8; 32];
        c.insert(k, identity("alice"), 100, KEYS, 0);
        assert_eq!(by_text(&c, "token-a", &k, 10).0.as_deref(), Some("alice"));
        assert_eq!(by_text(&c, "token-a", &k, 100), (None, true));
    }

    #[test]
    fn a_disabled_cache_knows_no_token_by_text() {
        let c = cache(false);
        let k = [0u8; 32];
        c.insert(k, identity("alice"), 10_000, KEYS, 0);
        assert_eq!(by_text(&c, "token-a", &k, 10), (None, true));
        assert_eq!(by_text(&c, "token-a", &k, 11), (None, true));
        assert!(c.hot.is_none());
    }
}
