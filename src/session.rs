//! Sessions: an opaque id the browser carries (cookie or header), and a
//! Redis hash a login service wrote. This module is the pure part: the id
//! format check (so junk never reaches Redis), reading the hash, and the
//! rules a session must pass. Fetching is `authn`'s job.

use crate::fields::{self, Fields};
use crate::identity::{HeaderRules, Identity, IdentityError, list_items, list_value};
use crate::reason::Reason;

use crate::credential_kind::CredentialKind;

/// Longest session id ward looks up.
const MAX_ID_LEN: usize = 256;

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
            .get("user_id")
            .filter(|u| !u.is_empty())
            .ok_or(Reason::InvalidSession)?;
        Ok(Session {
            user_id,
            fingerprint: fields
                .get("fingerprint")
                .map(String::as_str)
                .filter(|f| !f.trim().is_empty()),
            expires_at: fields::unix_time(fields.get("expires_at"))
                .map_err(|_| Reason::InvalidSession)?,
            revoked: fields::revoked(fields.get("revoked")).map_err(|_| Reason::InvalidSession)?,
            fields,
        })
    }

    /// Revoked, then expired.
    pub fn check(&self, now: u64) -> Result<(), Reason> {
        check_state(self.revoked, self.expires_at, now)
    }

    /// The identity headers: `email`, `roles`, `scopes`, then the fields
    /// mapped by `sessions.fields`.
    pub fn identity(
        &self,
        rules: &HeaderRules,
        mapped: &[(String, String)],
    ) -> Result<Identity, IdentityError> {
        let field = |name: &str| self.fields.get(name).cloned().unwrap_or_default();
        let mut extra = vec![
            ("email".into(), "x-user-email".into(), field("email")),
            (
                "roles".into(),
                "x-user-roles".into(),
                list_value(&field("roles")),
            ),
            (
                "scopes".into(),
                "x-user-scopes".into(),
                list_value(&field("scopes")),
            ),
        ];
        for (name, header) in mapped {
            extra.push((name.clone(), header.clone(), field(name)));
        }
        let mut identity = rules.build(self.user_id, CredentialKind::Session, extra)?;
        identity.roles = list_items(&field("roles"));
        identity.scopes = list_items(&field("scopes"));
        Ok(identity)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(pairs: &[(&str, &str)]) -> Fields {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn rules() -> HeaderRules {
        HeaderRules {
            user_id_header: "x-user-id".into(),
            method_header: "x-auth-method".into(),
            max_value_bytes: 1024,
        }
    }

    #[test]
    fn id_format() {
        for ok in [
            "550e8400-e29b-41d4-a716-446655440000",
            "0123456789abcdef0123456789abcdef",
            "q2VsbG8td29ybGQtc2Vzc2lvbg",
            "ZZZZZZZZZZZZZZZZZZZZZZ",
            "q2VsbG8td29ybGQtc2Vzc2",
        ] {
            assert!(valid_id(ok), "{ok}");
        }
        for bad in [
            "",
            "short",
            "0123456789abcdef0123456789abcde", // 31 hex digits: 124 bits
            "AAAAAAAAAAAAAAAAAAAAAA",          // 22 hex digits: 88 bits
            "ZZZZZZZZZZZZZZZZZZZZZ",           // 21 base64url characters
            "has space in it and is long enough",
            "semi;colon-aaaaaaaaaaaaaaaaaaaaaa",
            "percent%41aaaaaaaaaaaaaaaaaaaaaaaa",
            &"a".repeat(257),
        ] {
            assert!(!valid_id(bad), "{bad}");
        }
    }

    #[test]
    fn parse_and_check() {
        let h1 = hash(&[("user_id", "u1"), ("expires_at", "100")]);
        let s = Session::parse(&h1).unwrap();
        assert_eq!(s.check(99), Ok(()));
        assert_eq!(s.check(100), Err(Reason::SessionExpired));
        let h2 = hash(&[("user_id", "u1"), ("revoked", "true")]);
        let r = Session::parse(&h2).unwrap();
        assert_eq!(r.check(0), Err(Reason::SessionRevoked));
        for bad in [
            hash(&[]),
            hash(&[("user_id", "")]),
            hash(&[("user_id", "u"), ("expires_at", "soon")]),
            hash(&[("user_id", "u"), ("revoked", "maybe")]),
        ] {
            assert_eq!(Session::parse(&bad), Err(Reason::InvalidSession), "{bad:?}");
        }
    }

    #[test]
    fn identity_headers() {
        let h = hash(&[
            ("user_id", "u1"),
            ("email", "u1@example.com"),
            ("roles", "admin, dev"),
            ("name", "Ada"),
        ]);
        let s = Session::parse(&h).unwrap();
        let id = s
            .identity(&rules(), &[("name".into(), "x-user-name".into())])
            .unwrap();
        let get = |n: &str| {
            id.headers
                .iter()
                .find(|(k, _)| k == n)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("x-user-id"), Some("u1"));
        assert_eq!(get("x-auth-method"), Some("session"));
        assert_eq!(get("x-user-email"), Some("u1@example.com"));
        assert_eq!(get("x-user-roles"), Some("admin,dev"));
        assert_eq!(get("x-user-scopes"), None);
        assert_eq!(get("x-user-name"), Some("Ada"));
        let e = hash(&[("user_id", "u1"), ("name", "a\r\nb")]);
        let evil = Session::parse(&e).unwrap();
        assert!(
            evil.identity(&rules(), &[("name".into(), "x-user-name".into())])
                .is_err()
        );
    }
}
