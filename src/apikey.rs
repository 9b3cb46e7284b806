//! API keys: `PREFIX_` + 32 random base62 characters + a 6-character
//! base62 CRC32 checksum. The checksum lets ward reject a mistyped or
//! made-up key without a Redis call; the 190 random bits make guessing
//! hopeless. Redis holds only the key's SHA-256 (`apikey:{hex}`), never
//! the key; the public `key_id` is what logs and backends see.
//!
//! The record is owned here both ways, so the reader and the writers
//! (`store/records.rs`, the seed file, `ward apikey`) cannot drift apart:
//! read by [`ApiKey::parse`], written by [`NewApiKey::fields`], its field
//! names in [`field`] (`docs/redis-contract.md` documents them).

use crate::fields::{self, Fields};
use crate::identity::{HeaderRules, Identity, IdentityError, list_items, list_value};
use crate::reason::Reason;
use std::borrow::Cow;

use crate::credential_kind::CredentialKind;
use sha2::{Digest, Sha256};

pub mod view;

/// The field names of an `apikey:{sha256}` hash (`docs/redis-contract.md`).
pub mod field {
    /// The key's public id; required, non-empty.
    pub const KEY_ID: &str = "key_id";
    /// The user or service the key acts as; required, non-empty.
    pub const USER_ID: &str = "user_id";
    /// For people and tools; not read on a check.
    pub const NAME: &str = "name";
    /// A list (comma-separated).
    pub const SCOPES: &str = "scopes";
    /// Unix seconds; from then on the key is expired.
    pub const EXPIRES_AT: &str = "expires_at";
    /// `1`/`true`: revoked.
    pub const REVOKED: &str = "revoked";
    /// Unix seconds; written by ward's tools, not read on a check.
    pub const CREATED_AT: &str = "created_at";
}

const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const RANDOM_LEN: usize = 32;
const CHECKSUM_LEN: usize = 6;

/// Why a key could not be generated.
#[derive(Debug, thiserror::Error)]
#[error("no randomness available: {0}")]
pub struct RandomError(String);

/// `n` random base62 characters (rejection sampling: no modulo bias).
pub fn random_base62(n: usize) -> Result<String, RandomError> {
    let mut out = String::with_capacity(n);
    let mut buf = [0u8; 64];
    while out.len() < n {
        getrandom::fill(&mut buf).map_err(|e| RandomError(e.to_string()))?;
        for b in buf {
            if b < 248 && out.len() < n {
                out.push(char::from(BASE62[usize::from(b % 62)]));
            }
        }
    }
    Ok(out)
}

/// The base62 CRC32 checksum digits (ASCII).
fn checksum(prefix_and_random: &str) -> [u8; CHECKSUM_LEN] {
    let mut n = crc32fast::hash(prefix_and_random.as_bytes());
    let mut digits = [b'0'; CHECKSUM_LEN];
    for d in digits.iter_mut().rev() {
        *d = BASE62[(n % 62) as usize];
        n /= 62;
    }
    digits
}

/// A new key: `{prefix}_{random}{checksum}`.
pub fn generate(prefix: &str) -> Result<String, RandomError> {
    let mut key = format!("{prefix}_{}", random_base62(RANDOM_LEN)?);
    let sum = checksum(&key);
    key.extend(sum.iter().map(|&b| char::from(b)));
    Ok(key)
}

/// A new public key id (`key_` + 16 base62), safe to log and send upstream.
pub fn generate_id() -> Result<String, RandomError> {
    Ok(format!("key_{}", random_base62(16)?))
}

/// Whether `key` is worth a lookup: a well-formed ward key with this
/// prefix and a valid checksum, or, when `accept_foreign`, any 16 to 256
/// visible ASCII characters.
pub fn well_formed(key: &str, prefix: &str, accept_foreign: bool) -> bool {
    if accept_foreign
        && (16..=256).contains(&key.len())
        && key.bytes().all(|b| b.is_ascii_graphic())
    {
        return true;
    }
    let Some(body) = key
        .strip_prefix(prefix)
        .and_then(|rest| rest.strip_prefix('_'))
    else {
        return false;
    };
    if body.len() != RANDOM_LEN + CHECKSUM_LEN || !body.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return false;
    }
    let split = key.len() - CHECKSUM_LEN;
    checksum(&key[..split]) == key.as_bytes()[split..]
}

/// The lookup key: lowercase hex SHA-256 of the whole key.
pub fn hash_hex(key: &str) -> String {
    hex_of(&Sha256::digest(key.as_bytes()).into())
}

/// The lookup key of a key whose SHA-256 is already known (a check hashes
/// the credential once: `presented.rs`).
pub fn hex_of(hash: &[u8; 32]) -> String {
    // Through a stack buffer: `hex::encode` builds the string a char at a
    // time, a measurable share of an API-key cache hit.
    let mut hex = [0u8; 64];
    match hex::encode_to_slice(hash, &mut hex) {
        Ok(()) => String::from_utf8_lossy(&hex).into_owned(),
        Err(_) => hex::encode(hash),
    }
}

/// An API key to create (its hash is the record's key; the raw key is
/// never stored).
#[derive(Debug, Clone, Default)]
pub struct NewApiKey {
    pub key_id: String,
    pub user_id: String,
    pub name: String,
    pub scopes: Vec<String>,
    pub expires_at: Option<u64>,
}

impl NewApiKey {
    /// The hash to write at `now`: `key_id`, `user_id`, `name`,
    /// `created_at`, and `scopes` and `expires_at` when set.
    pub fn fields(&self, now: u64) -> Vec<(&'static str, String)> {
        let mut out = vec![
            (field::KEY_ID, self.key_id.clone()),
            (field::USER_ID, self.user_id.clone()),
            (field::NAME, self.name.clone()),
            (field::CREATED_AT, now.to_string()),
        ];
        if !self.scopes.is_empty() {
            out.push((field::SCOPES, fields::list(&self.scopes)));
        }
        if let Some(e) = self.expires_at {
            out.push((field::EXPIRES_AT, e.to_string()));
        }
        out
    }
}

/// An API key record, as read from `apikey:{hash}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    pub key_id: String,
    pub user_id: String,
    pub name: String,
    pub scopes: String,
    pub expires_at: Option<u64>,
    pub revoked: bool,
}

impl ApiKey {
    pub fn parse(fields: &Fields) -> Result<ApiKey, Reason> {
        let get = |k: &str| fields.get(k).cloned().unwrap_or_default();
        let (key_id, user_id) = (get(field::KEY_ID), get(field::USER_ID));
        if key_id.is_empty() || user_id.is_empty() {
            return Err(Reason::InvalidApiKey);
        }
        Ok(ApiKey {
            key_id,
            user_id,
            name: get(field::NAME),
            scopes: get(field::SCOPES),
            expires_at: fields::unix_time(fields.get(field::EXPIRES_AT))
                .map_err(|_| Reason::InvalidApiKey)?,
            revoked: fields::revoked(fields.get(field::REVOKED))
                .map_err(|_| Reason::InvalidApiKey)?,
        })
    }

    pub fn check(&self, now: u64) -> Result<(), Reason> {
        if self.revoked {
            return Err(Reason::ApiKeyRevoked);
        }
        if fields::expired(self.expires_at, now) {
            return Err(Reason::ApiKeyExpired);
        }
        Ok(())
    }

    /// Headers: user id, method, scopes (`headers.scopes`), and the key
    /// id (`id_header`).
    pub fn identity(
        &self,
        rules: &HeaderRules,
        id_header: &str,
    ) -> Result<Identity, IdentityError> {
        let extra = [
            (
                field::SCOPES,
                rules.scopes_header.as_str(),
                Cow::Owned(list_value(&self.scopes)),
            ),
            (
                field::KEY_ID,
                id_header,
                Cow::Borrowed(self.key_id.as_str()),
            ),
        ];
        let mut identity = rules.build(&self.user_id, CredentialKind::ApiKey, extra)?;
        identity.scopes = list_items(&self.scopes);
        Ok(identity.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_are_well_formed_and_distinct() {
        let a = generate("ward").unwrap();
        let b = generate("ward").unwrap();
        assert_ne!(a, b);
        assert!(a.starts_with("ward_"));
        assert_eq!(a.len(), 5 + 38);
        assert!(well_formed(&a, "ward", false));
        assert!(!well_formed(&a, "acme", false), "wrong prefix");
    }

    #[test]
    fn typos_fail_the_checksum() {
        let key = generate("ward").unwrap();
        let mut typo: Vec<char> = key.chars().collect();
        let i = 10;
        typo[i] = if typo[i] == 'a' { 'b' } else { 'a' };
        let typo: String = typo.into_iter().collect();
        assert!(!well_formed(&typo, "ward", false));
        assert!(!well_formed(&key[..key.len() - 1], "ward", false));
        assert!(!well_formed(&format!("{key}x"), "ward", false));
        assert!(!well_formed("ward_", "ward", false));
        assert!(!well_formed("", "ward", false));
    }

    #[test]
    fn foreign_keys_only_when_accepted() {
        let foreign = "sk-live-0123456789abcdef";
        assert!(!well_formed(foreign, "ward", false));
        assert!(well_formed(foreign, "ward", true));
        assert!(!well_formed("short", "ward", true));
        assert!(!well_formed("has space 0123456789", "ward", true));
    }

    #[test]
    fn hash_is_sha256_hex() {
        assert_eq!(
            hash_hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn written_records_read_back_under_the_documented_names() {
        let new = NewApiKey {
            key_id: "key_1".into(),
            user_id: "bot".into(),
            name: "nightly".into(),
            scopes: vec!["read".into(), "write".into()],
            expires_at: Some(2000),
        };
        let written: Fields = new
            .fields(1000)
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        // The wire contract (docs/redis-contract.md), spelled out.
        let want: Fields = [
            ("key_id", "key_1"),
            ("user_id", "bot"),
            ("name", "nightly"),
            ("created_at", "1000"),
            ("scopes", "read,write"),
            ("expires_at", "2000"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(written, want);
        let k = ApiKey::parse(&written).unwrap();
        assert_eq!(
            (k.key_id.as_str(), k.user_id.as_str(), k.expires_at),
            ("key_1", "bot", Some(2000))
        );
        assert_eq!(k.check(1999), Ok(()));
        let mut revoked = written.clone();
        revoked.insert(field::REVOKED.into(), fields::REVOKED.into());
        assert_eq!(
            ApiKey::parse(&revoked).unwrap().check(0),
            Err(Reason::ApiKeyRevoked)
        );
    }

    #[test]
    fn record_rules() {
        let f = |pairs: &[(&str, &str)]| -> Fields {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let k = ApiKey::parse(&f(&[
            ("key_id", "key_1"),
            ("user_id", "u"),
            ("scopes", "read write"),
        ]))
        .unwrap();
        assert_eq!(k.check(0), Ok(()));
        let rules = HeaderRules::new(&crate::config::Config::default().headers);
        let id = k.identity(&rules, "x-api-key-id").unwrap();
        assert!(id.headers().any(|h| h == ("x-user-scopes", "read,write")));
        assert!(id.headers().any(|h| h == ("x-api-key-id", "key_1")));
        assert!(id.headers().any(|h| h == ("x-auth-method", "apikey")));
        let expired = ApiKey::parse(&f(&[
            ("key_id", "k"),
            ("user_id", "u"),
            ("expires_at", "5"),
        ]))
        .unwrap();
        assert_eq!(expired.check(5), Err(Reason::ApiKeyExpired));
        let revoked =
            ApiKey::parse(&f(&[("key_id", "k"), ("user_id", "u"), ("revoked", "1")])).unwrap();
        assert_eq!(revoked.check(0), Err(Reason::ApiKeyRevoked));
        assert_eq!(
            ApiKey::parse(&f(&[("user_id", "u")])),
            Err(Reason::InvalidApiKey)
        );
    }
}
