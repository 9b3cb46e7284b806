//! A record read from the store, as the in-process cache keeps it: the
//! hash, and a slot for the view a check derives from it (the parsed,
//! validated record and its identity: `session::view`, `apikey::view`),
//! so that a cache hit does not parse the same record again.
//!
//! The slot is typed by the kind of record: a session's copy can only
//! ever hold a session's view. A refetch or an invalidation makes a new
//! `Record` with an empty slot: nothing derived outlives its copy.

use crate::apikey;
use crate::session;
use crate::store::reply::Hash;
use std::sync::OnceLock;

#[derive(Debug)]
pub struct Record<V> {
    pub hash: Hash,
    view: OnceLock<V>,
}

impl<V> Record<V> {
    pub fn new(hash: Hash) -> Self {
        Record {
            hash,
            view: OnceLock::new(),
        }
    }

    /// What `derive` makes of this copy's fields, derived on first use.
    pub fn view(&self, derive: impl FnOnce(&Hash) -> V) -> &V {
        self.view.get_or_init(|| derive(&self.hash))
    }
}

/// A cached session (`session:{sid}`).
pub(crate) type SessionRecord = Record<session::view::View>;
/// A cached API key record (`apikey:{hash}`).
pub(crate) type ApiKeyRecord = Record<apikey::view::View>;
