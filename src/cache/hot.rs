//! The hottest tokens by their text, in front of the token cache: a JWT
//! cache hit without the SHA-256.
//!
//! Why: on a JWT cache hit, the SHA-256 of the token (the token cache's
//! key, over about 600 bytes for an RS256 token) and moka's lookup were
//! the largest parts of ward's own work, about 4 % and 2 % of a check's
//! CPU in a `perf` profile; a session hit pays neither. This table keeps,
//! per slot, one token that hit the token cache, with that entry's
//! identity and deadline, so that the next check of the same text is
//! answered after a seeded fast hash (which slot) and one comparison.
//!
//! What keeps it as safe as the cache behind it:
//! - It only repeats what the token cache answered, and only until the
//!   earlier of the token's `exp` and the verification's freshness at the
//!   time it was copied (`cache.max_ttl`); after that the check takes the
//!   full path (hash, token cache, renewal or verification), which fills
//!   the slot again.
//! - A slot is chosen by a hash seeded per process, but answers only for
//!   the exact text it holds, compared in constant time
//!   (`constant_time_eq`): a collision, chosen or not, costs a miss,
//!   never another token's identity.
//! - Unlike the token cache, it holds credentials (the token text, in
//!   process memory only: never logged, written or sent), a bounded number
//!   of them ([`MAX_SLOTS`]), each for at most `cache.max_ttl`.
//! - It belongs to its token cache: a reload that clears the cache drops
//!   it too.
//!
//! A slot's token is replaced only if it was not answered since it came
//! in or last held its place (a second chance, as in CLOCK): tokens seen
//! once, a flood of distinct ones, cannot push out the ones in use, and
//! cost no copy while they fail to.

use crate::identity::Identity;
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// Slots at most: enough for the tokens of a busy minute, small enough
/// (a pointer-sized lock and an option per slot, the text only once
/// filled) to cost an idle ward nothing it would notice.
pub(super) const MAX_SLOTS: usize = 4096;

/// One token, as the token cache answered for it.
struct Hot {
    token: Box<str>,
    identity: Arc<Identity>,
    /// Unix seconds: the earlier of the token's `exp` and the end of its
    /// verification's freshness.
    until: u32,
    /// Answered since it came in or last held its place.
    used: bool,
}

impl Hot {
    /// Is this `token`? In constant time (only the length can show).
    fn is(&self, token: &str) -> bool {
        constant_time_eq::constant_time_eq(self.token.as_bytes(), token.as_bytes())
    }
}

/// A direct-mapped table of [`Hot`] tokens.
pub(super) struct HotTokens {
    slots: Box<[Mutex<Option<Hot>>]>,
    seed: foldhash::quality::RandomState,
}

impl HotTokens {
    /// A table for a token cache of `max_entries`: never more slots than
    /// the cache has entries, a power of two. `None` for an empty cache.
    pub(super) fn for_cache(max_entries: u64) -> Option<Self> {
        let n = usize::try_from(max_entries)
            .unwrap_or(usize::MAX)
            .min(MAX_SLOTS);
        let n = 1usize.checked_shl(n.checked_ilog2()?)?;
        Some(Self {
            slots: (0..n).map(|_| Mutex::new(None)).collect(),
            seed: foldhash::quality::RandomState::default(),
        })
    }

    fn slot(&self, token: &str) -> &Mutex<Option<Hot>> {
        // The mask keeps the low bits: the slot count is a power of two.
        let h = self.seed.hash_one(token.as_bytes()) as usize;
        &self.slots[h & (self.slots.len() - 1)]
    }

    /// The identity held for exactly `token`, if still good at `now`.
    pub(super) fn get(&self, token: &str, now: u32) -> Option<Arc<Identity>> {
        let mut slot = self.lock(token);
        let hot = slot.as_mut()?;
        if !(hot.is(token) && now < hot.until) {
            return None;
        }
        hot.used = true;
        Some(Arc::clone(&hot.identity))
    }

    /// Holds `token`'s identity until `until` (also a refresh of the same
    /// token), unless its slot holds another one, still good at `now`,
    /// that was answered since its last chance: that one stays, and loses
    /// its mark.
    pub(super) fn put(&self, token: &str, identity: Arc<Identity>, until: u32, now: u32) {
        let mut slot = self.lock(token);
        if let Some(held) = slot.as_mut()
            && held.used
            && now < held.until
            && !held.is(token)
        {
            held.used = false;
            return;
        }
        let old = slot.replace(Hot {
            token: token.into(),
            identity,
            until,
            used: false,
        });
        drop(slot);
        // Freed after the lock is released.
        drop(old);
    }

    fn lock(&self, token: &str) -> MutexGuard<'_, Option<Hot>> {
        self.slot(token)
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.slots.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::tests::identity;

    #[test]
    fn sized_by_the_cache_a_power_of_two_and_bounded() {
        let len = |n| HotTokens::for_cache(n).map(|h| h.len());
        assert_eq!(len(0), None);
        assert_eq!(len(1), Some(1));
        assert_eq!(len(100), Some(64), "never more than the cache holds");
        assert_eq!(len(100_000), Some(MAX_SLOTS));
        assert_eq!(len(u64::MAX), Some(MAX_SLOTS));
    }

    #[test]
    fn answers_only_for_the_exact_text_and_only_until_its_deadline() {
        let hot = HotTokens::for_cache(1).unwrap(); // one slot: all collide
        hot.put("token-a", identity("alice"), 100, 0);
        assert_eq!(hot.get("token-a", 99).unwrap().user_id(), "alice");
        assert!(hot.get("token-a", 100).is_none(), "not at its deadline");
        assert!(hot.get("token-b", 50).is_none(), "same slot, other text");
        assert!(hot.get("token-", 50).is_none(), "a prefix is another text");
        assert!(hot.get("token-aa", 50).is_none());
    }

    #[test]
    fn a_token_in_use_gets_a_second_chance_before_it_is_replaced() {
        let hot = HotTokens::for_cache(1).unwrap();
        let user = |t, now| hot.get(t, now).map(|i| i.user_id().to_string());
        hot.put("token-a", identity("alice"), 100, 0);
        hot.put("token-b", identity("bob"), 100, 1);
        assert_eq!(user("token-a", 2), None, "never answered: replaced");
        assert_eq!(user("token-b", 2).as_deref(), Some("bob"));
        hot.put("token-c", identity("carol"), 100, 3);
        assert_eq!(user("token-c", 3), None, "bob was answered: kept");
        hot.put("token-c", identity("carol"), 100, 4);
        assert_eq!(
            user("token-c", 4).as_deref(),
            Some("carol"),
            "bob's chance is spent"
        );
        hot.put("token-c", identity("carol"), 300, 5);
        assert_eq!(user("token-c", 200).as_deref(), Some("carol"), "refreshed");
        hot.put("token-d", identity("dave"), 400, 300);
        assert_eq!(
            user("token-d", 300).as_deref(),
            Some("dave"),
            "an answered token past its deadline holds no place"
        );
    }
}
