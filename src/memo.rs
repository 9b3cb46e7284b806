//! A once-filled slot for a value derived from immutable data, kept beside
//! that data: the gRPC adapter's pre-encoded answer for a cached identity,
//! or `authn`'s parsed form of a cached store record.
//!
//! Why: a cache hit hands out the same `Arc` thousands of times a second,
//! and whatever is derived from it (parsing a record, rendering headers)
//! gives the same result every time. Keeping the result beside the data
//! makes a hit a lookup, and it dies with the data: an evicted or
//! invalidated entry takes its derived values with it, so nothing derived
//! outlives what it was derived from.
//!
//! The slot is type-erased so that pure types can carry it without knowing
//! what the shell keeps there (the core never imports Envoy's types). It
//! never takes part in equality, and a clone starts empty (the clone may
//! be changed, the derived value would then be wrong).

use std::any::Any;
use std::sync::{Arc, OnceLock};

#[derive(Default)]
pub struct Memo(OnceLock<Arc<dyn Any + Send + Sync>>);

impl Memo {
    /// The value derived by `derive`, computed on first use. `None` only if
    /// the slot already holds a value of another type (one slot, two
    /// users: a bug, but the caller can still derive the value itself).
    pub fn get_or_init<T: Any + Send + Sync>(&self, derive: impl FnOnce() -> T) -> Option<&T> {
        self.0
            .get_or_init(|| Arc::new(derive()))
            .downcast_ref::<T>()
    }
}

impl Clone for Memo {
    fn clone(&self) -> Self {
        Memo::default()
    }
}

impl PartialEq for Memo {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for Memo {}

impl std::fmt::Debug for Memo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.get().is_some() {
            "Memo(filled)"
        } else {
            "Memo(empty)"
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    #[test]
    fn derives_once_and_a_clone_starts_empty() {
        let memo = Memo::default();
        let calls = Cell::new(0);
        let derive = || {
            calls.set(calls.get() + 1);
            42u32
        };
        assert_eq!(memo.get_or_init(derive), Some(&42));
        assert_eq!(memo.get_or_init(derive), Some(&42));
        assert_eq!(calls.get(), 1);
        assert_eq!(memo.get_or_init(|| "other type"), None);
        let copy = memo.clone();
        assert_eq!(copy.get_or_init(|| 7u32), Some(&7));
        assert_eq!(memo, copy, "never part of equality");
    }
}
