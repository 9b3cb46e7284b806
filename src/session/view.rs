//! A session record as read and checked once per cached copy (the store
//! cache keeps it beside the record: `lookup::Record::view`): the parse
//! verdict, and what a check needs that depends neither on the request
//! nor on the clock. A cache hit then costs no parsing and no header
//! rendering.
//!
//! Revocation, expiry (at `now`) and the fingerprint (of this request) are
//! still checked on every use, in the order the view was introduced
//! with: parse, revoked, expired, fingerprint, identity.

use super::Session;
use crate::fields::Fields;
use crate::identity::{HeaderRules, Identity};
use crate::reason::Reason;
use std::sync::Arc;

/// A session record's view: its parse verdict.
pub type View = Result<Parsed, Reason>;

/// A parsed session record.
#[derive(Debug)]
pub struct Parsed {
    pub revoked: bool,
    pub expires_at: Option<u64>,
    /// As stored (`fp2:<hex>` or v1's bare hex).
    pub fingerprint: Option<String>,
    /// `Err` when a field cannot go into a header (denied as invalid).
    pub identity: Result<Arc<Identity>, ()>,
}

/// The view of a session hash under these header rules and
/// `sessions.fields` mappings (`(field, header)`).
pub fn of(fields: &Fields, rules: &HeaderRules, mapped: &[(String, String)]) -> View {
    let session = Session::parse(fields)?;
    Ok(Parsed {
        revoked: session.revoked,
        expires_at: session.expires_at,
        fingerprint: session.fingerprint.map(str::to_string),
        identity: session
            .identity(rules, mapped)
            .map(|identity| Arc::new(identity.with_expiry(session.expires_at)))
            .map_err(|_| ()),
    })
}
