//! An API key record as read once per cached copy (kept beside the record
//! by the store cache: `lookup::Record::view`): the parsed record, checked
//! against `now` on every use, and the identity it renders, which depends
//! on neither the request nor the clock.

use super::ApiKey;
use crate::fields::Fields;
use crate::identity::{HeaderRules, Identity};
use crate::reason::Reason;
use std::sync::Arc;

/// An API key record's view: its parse verdict.
pub type View = Result<Parsed, Reason>;

/// A parsed API key record and its identity.
#[derive(Debug)]
pub struct Parsed {
    pub record: ApiKey,
    /// `Err` when a field cannot go into a header (denied as invalid).
    pub identity: Result<Arc<Identity>, ()>,
}

/// The view of an API key hash under these header rules, with the key id
/// in header `id_header`.
pub fn of(fields: &Fields, rules: &HeaderRules, id_header: &str) -> View {
    let record = ApiKey::parse(fields)?;
    let identity = record
        .identity(rules, id_header)
        .map(|identity| Arc::new(identity.with_expiry(record.expires_at)))
        .map_err(|_| ());
    Ok(Parsed { record, identity })
}
