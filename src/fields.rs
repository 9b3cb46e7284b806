//! The string fields of the records login services write into Redis
//! hashes: unix times, revocation flags, lists, read here (and written
//! here, the way ward's own tools write them). Strict, because a field
//! ward misreads is a credential it misjudges: anything unexpected is an
//! error and the credential is denied. Which fields a record has is its
//! own module's business (`session.rs`, `apikey.rs`); [`Fields`] lives
//! here, below both and below the store, so that the records and the
//! store need not import each other.

use std::collections::HashMap;

/// A record's fields, as a store hash holds them. Hashed with foldhash
/// rather than SipHash: the names come from the store's writers, and a
/// cache miss builds one of these.
pub type Fields = HashMap<String, String, foldhash::fast::RandomState>;

/// A field whose value ward cannot read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("unreadable field value")]
pub struct BadField;

/// `expires_at`: unix seconds, a non-negative integer. Absent or empty
/// means no expiry beyond the key's TTL.
pub fn unix_time(value: Option<&String>) -> Result<Option<u64>, BadField> {
    match value.map(|v| v.trim()) {
        None | Some("") => Ok(None),
        Some(v) => v.parse::<u64>().map(Some).map_err(|_| BadField),
    }
}

/// `revoked`: `1` or `true` (any case) revokes; absent, empty, `0` or
/// `false` does not; any other value is an error (fail closed).
pub fn revoked(value: Option<&String>) -> Result<bool, BadField> {
    match value.map(|v| v.trim().to_ascii_lowercase()).as_deref() {
        None | Some("") | Some("0") | Some("false") => Ok(false),
        Some("1") | Some("true") => Ok(true),
        Some(_) => Err(BadField),
    }
}

/// What ward writes into a `revoked` flag to revoke; [`revoked`] reads it
/// as true.
pub const REVOKED: &str = "1";

/// A list field as ward writes it: comma-separated (`admin,dev`).
pub fn list(items: &[String]) -> String {
    items.join(",")
}

/// Whether a credential that `expires_at` is already expired at `now`.
pub fn expired(expires_at: Option<u64>, now: u64) -> bool {
    expires_at.is_some_and(|t| now >= t)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> Option<String> {
        Some(v.to_string())
    }

    #[test]
    fn unix_times() {
        assert_eq!(unix_time(None), Ok(None));
        assert_eq!(unix_time(s("").as_ref()), Ok(None));
        assert_eq!(
            unix_time(s(" 1700000000 ").as_ref()),
            Ok(Some(1_700_000_000))
        );
        assert_eq!(unix_time(s("-5").as_ref()), Err(BadField));
        assert_eq!(unix_time(s("1.5").as_ref()), Err(BadField));
        assert_eq!(unix_time(s("tomorrow").as_ref()), Err(BadField));
    }

    #[test]
    fn revocation_flags() {
        for (v, want) in [
            ("1", Ok(true)),
            ("TRUE", Ok(true)),
            ("0", Ok(false)),
            ("false", Ok(false)),
            ("", Ok(false)),
            ("yes", Err(BadField)),
            ("2", Err(BadField)),
        ] {
            assert_eq!(revoked(s(v).as_ref()), want, "{v:?}");
        }
        assert_eq!(revoked(None), Ok(false));
    }

    #[test]
    fn expiry() {
        assert!(!expired(None, 10));
        assert!(!expired(Some(11), 10));
        assert!(expired(Some(10), 10));
    }
}
