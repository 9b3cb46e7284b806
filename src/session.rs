//! Sessions: an opaque id the browser carries (cookie or header), and a
//! Redis hash a login service wrote. This module is the pure part: the id
//! format check (so junk never reaches Redis) and its generation, the
//! record both ways (read by [`Session::parse`], written by
//! [`NewSession::fields`], its field names in [`field`]), and the rules a
//! session must pass. One module owns the record so that the reader and
//! the writers (`store/records.rs`, the seed file, `ward session`) cannot
//! drift apart; `docs/redis-contract.md` documents it. Fetching is
//! `authn`'s job, storing `store::records`'.

use crate::fields::{self, Fields};
use crate::identity::{HeaderRules, Identity, IdentityError, list_items, list_value};
use crate::reason::Reason;
use std::borrow::Cow;

use crate::apikey::{RandomError, random_base62};
use crate::credential_kind::CredentialKind;
use std::time::Duration;

/// The field names of a `session:{sid}` hash (`docs/redis-contract.md`).
pub mod field {
    /// Who this is; required, non-empty.
    pub const USER_ID: &str = "user_id";
    /// Unix seconds; from then on the session is expired.
    pub const EXPIRES_AT: &str = "expires_at";
    /// `1`/`true`: revoked.
    pub const REVOKED: &str = "revoked";
    pub const EMAIL: &str = "email";
    /// A list (comma-separated).
    pub const ROLES: &str = "roles";
    /// A list (comma-separated).
    pub const SCOPES: &str = "scopes";
    /// The device fingerprint computed at login (`fp2:<hex>` or v1 hex).
    pub const FINGERPRINT: &str = "fingerprint";
}

pub mod view;

/// Longest session id ward looks up.
const MAX_ID_LEN: usize = 256;

/// A new session id: 32 random base62 characters (190 bits), which
/// [`valid_id`] accepts.
pub fn generate_id() -> Result<String, RandomError> {
    random_base62(32)
}

/// A session id worth a lookup: URL-safe characters only (letters,
/// digits, `-` and `_`) and long enough for 128 bits of entropy: 22
/// characters of base64url, or 32 hex digits when the id is hex (a UUID,
/// with its hyphens, passes).
pub fn valid_id(sid: &str) -> bool {
    if sid.len() > MAX_ID_LEN
        || !sid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return false;
    }
    let hex_digits = sid.bytes().filter(u8::is_ascii_hexdigit).count();
    let hex_only = sid.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-');
    if hex_only {
        hex_digits >= 32
    } else {
        sid.len() >= 22
    }
}

/// The clock-dependent rules of a session at `now`: revoked, then expired.
pub fn check_state(revoked: bool, expires_at: Option<u64>, now: u64) -> Result<(), Reason> {
    if revoked {
        return Err(Reason::SessionRevoked);
    }
    if fields::expired(expires_at, now) {
        return Err(Reason::SessionExpired);
    }
    Ok(())
}

/// A session to create: what `ward session create`, the seed file and the
/// tests write.
#[derive(Debug, Clone, Default)]
pub struct NewSession {
    pub user_id: String,
    pub email: Option<String>,
    pub roles: Vec<String>,
    pub scopes: Vec<String>,
    pub fingerprint: Option<String>,
    /// Lifetime: the key's TTL, and `expires_at`.
    pub ttl: Duration,
}

impl NewSession {
    /// The hash to write at `now`: `user_id`, `expires_at` (`now` + TTL),
    /// and the optional fields that have a value.
    pub fn fields(&self, now: u64) -> Vec<(&'static str, String)> {
        let mut out = vec![
            (field::USER_ID, self.user_id.clone()),
            (field::EXPIRES_AT, (now + self.ttl.as_secs()).to_string()),
        ];
        if let Some(email) = &self.email {
            out.push((field::EMAIL, email.clone()));
        }
        if !self.roles.is_empty() {
            out.push((field::ROLES, fields::list(&self.roles)));
        }
        if !self.scopes.is_empty() {
            out.push((field::SCOPES, fields::list(&self.scopes)));
        }
        if let Some(fp) = &self.fingerprint {
            out.push((field::FINGERPRINT, fp.clone()));
        }
        out
    }
}

/// A session record, as read from its hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session<'a> {
    pub user_id: &'a str,
    pub fields: &'a Fields,
    /// The device fingerprint as stored (blank: none): `fp2:<hex>` for
    /// v2, bare hex for v1; `fingerprint::Version::of` tells which.
    pub fingerprint: Option<&'a str>,
    pub expires_at: Option<u64>,
    pub revoked: bool,
}

impl<'a> Session<'a> {
    /// Reads a session hash; a hash without `user_id`, or with an
    /// unreadable `expires_at` or `revoked`, is invalid (denied).
    pub fn parse(fields: &'a Fields) -> Result<Session<'a>, Reason> {
        let user_id = fields
            .get(field::USER_ID)
            .filter(|u| !u.is_empty())
            .ok_or(Reason::InvalidSession)?;
        Ok(Session {
            user_id,
            fingerprint: fields
                .get(field::FINGERPRINT)
                .map(String::as_str)
                .filter(|f| !f.trim().is_empty()),
            expires_at: fields::unix_time(fields.get(field::EXPIRES_AT))
                .map_err(|_| Reason::InvalidSession)?,
            revoked: fields::revoked(fields.get(field::REVOKED))
                .map_err(|_| Reason::InvalidSession)?,
            fields,
        })
    }

    /// Revoked, then expired.
    pub fn check(&self, now: u64) -> Result<(), Reason> {
        check_state(self.revoked, self.expires_at, now)
    }

    /// The identity headers: `email`, `roles`, `scopes` (under
    /// `headers.email`, `.roles`, `.scopes`), then the fields mapped by
    /// `sessions.fields`.
    pub fn identity(
        &self,
        rules: &HeaderRules,
        mapped: &[(String, String)],
    ) -> Result<Identity, IdentityError> {
        let value = |name: &str| self.fields.get(name).map_or("", String::as_str);
        let (roles, scopes) = (value(field::ROLES), value(field::SCOPES));
        let fixed = [
            (
                field::EMAIL,
                rules.email_header.as_str(),
                Cow::Borrowed(value(field::EMAIL)),
            ),
            (
                field::ROLES,
                rules.roles_header.as_str(),
                Cow::Owned(list_value(roles)),
            ),
            (
                field::SCOPES,
                rules.scopes_header.as_str(),
                Cow::Owned(list_value(scopes)),
            ),
        ];
        let mapped = mapped
            .iter()
            .map(|(name, header)| (name.as_str(), header.as_str(), Cow::Borrowed(value(name))));
        let extra = fixed.into_iter().chain(mapped);
        let mut identity = rules.build(self.user_id, CredentialKind::Session, extra)?;
        identity.roles = list_items(roles);
        identity.scopes = list_items(scopes);
        Ok(identity.into())
    }
}

#[cfg(test)]
mod tests;
