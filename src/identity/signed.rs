//! Where an identity keeps the identity tokens signed for it
//! (`identity_token.rs` signs them): one slot per token profile, so a
//! cache hit reads a token already signed instead of signing one.
//!
//! The slots live in the identity because the identity lives exactly as
//! long as its credential is trusted (the token cache, a cached store
//! record): a token can never outlive the identity it speaks for, and an
//! invalidated session takes its tokens with it. They cost nothing until
//! a policy with an `identity_token` allows the identity (`OnceLock`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

/// A signed identity token, as kept and sent.
#[derive(Debug)]
pub struct Signed {
    /// The compact JWS.
    pub token: Box<str>,
    /// The profile it was signed for (`identity_token::Profile::id`).
    pub profile: u64,
    /// The signing key's serial number in this process
    /// (`identity_token::keys::SigningKey::serial`).
    pub key: u64,
    pub iat: u64,
    pub exp: u64,
}

/// One profile's slot: the token now, and whether a re-sign is queued.
/// A hit holds the lock for one reference count (the core has no
/// lock-free swap; uncontended, a lock is one atomic operation, as a
/// load from a swap cell would be).
#[derive(Debug, Default)]
pub struct Slot {
    token: Mutex<Option<Arc<Signed>>>,
    refreshing: AtomicBool,
}

impl Slot {
    /// The token kept here, if any.
    pub fn current(&self) -> Option<Arc<Signed>> {
        // A panic while holding it cannot leave a half-written `Option`.
        self.token
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub fn store(&self, signed: Arc<Signed>) {
        *self.token.lock().unwrap_or_else(PoisonError::into_inner) = Some(signed);
    }

    /// Marks a re-sign as queued: `true` for the one caller that should
    /// queue it, `false` while one is queued already.
    pub fn start_refresh(&self) -> bool {
        !self.refreshing.swap(true, Ordering::AcqRel)
    }

    /// The queued re-sign ran (or was dropped): another may be queued.
    pub fn end_refresh(&self) {
        self.refreshing.store(false, Ordering::Release);
    }
}

/// An identity's token slots, allocated on first use.
#[derive(Debug, Default)]
pub struct TokenSlots(OnceLock<Box<[Slot]>>);

impl TokenSlots {
    /// The slot of profile `index` among `count` profiles. A reload that
    /// changes the number of profiles may map two profiles to one slot:
    /// each token says which profile it was signed for, so a mismatch is
    /// only a re-sign, never a wrong token.
    pub fn slot(&self, index: usize, count: usize) -> &Slot {
        let slots = self
            .0
            .get_or_init(|| (0..count.max(1)).map(|_| Slot::default()).collect());
        &slots[index % slots.len()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_refresh_at_a_time_and_slots_wrap() {
        let slots = TokenSlots::default();
        let slot = slots.slot(1, 2);
        assert!(slot.current().is_none());
        assert!(slot.start_refresh());
        assert!(!slot.start_refresh());
        slot.end_refresh();
        assert!(slot.start_refresh());
        let signed = Arc::new(Signed {
            token: "t".into(),
            profile: 7,
            key: 1,
            iat: 1,
            exp: 2,
        });
        slot.store(signed);
        // A later config with more profiles wraps onto the same slots.
        assert_eq!(slots.slot(3, 5).current().map(|s| s.profile), Some(7));
    }
}
