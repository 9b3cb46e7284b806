//! The domain operations of the Redis contract, written once over any
//! [`Backend`]: what ward reads on a check, and what the management CLI
//! (or a login service following `docs/redis-contract.md`) writes. Every
//! write publishes the keys it changed on the invalidation channel, so
//! every ward evicts them at once.
//!
//! What a record holds is not decided here: `session.rs` and `apikey.rs`
//! own their records (field names, the hash to write); this module only
//! puts them under their keys, with their TTLs and indexes.

use super::keys::{INVALIDATION_CHANNEL, KeyNames};
use super::{Backend, Hash, StoreError};
use crate::apikey::{self, NewApiKey};
use crate::fields;
use crate::session::{self, NewSession};
use std::time::Duration;

mod oidc;

pub use oidc::OidcLogin;

/// `put_hash`'s view of a record's owned fields.
fn pairs<'a>(fields: &'a [(&'static str, String)]) -> Vec<(&'a str, &'a str)> {
    fields.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

/// Reads and writes the contract's records through a backend.
pub struct Records<'a, B> {
    backend: &'a B,
    keys: &'a KeyNames,
}

impl<'a, B: Backend> Records<'a, B> {
    pub fn new(backend: &'a B, keys: &'a KeyNames) -> Self {
        Self { backend, keys }
    }

    async fn invalidate(&self, key: &str) -> Result<(), StoreError> {
        self.backend.publish(INVALIDATION_CHANNEL, key).await
    }

    /// Writes `session:{sid}` (with TTL and `expires_at`) and adds it to
    /// `user_sessions:{user_id}`.
    pub async fn create_session(
        &self,
        sid: &str,
        s: &NewSession,
        now: u64,
    ) -> Result<(), StoreError> {
        let fields = s.fields(now);
        let key = self.keys.session(sid);
        // The index first (docs/redis-contract.md, "Order of writes"): a
        // write cut off between the two leaves an id pointing at nothing,
        // never a live session "log out everywhere" cannot find.
        self.backend
            .set_add(&self.keys.user_sessions(&s.user_id), sid)
            .await?;
        self.backend
            .put_hash(&key, &pairs(&fields), Some(s.ttl))
            .await?;
        self.invalidate(&key).await
    }

    /// The session ids listed for a user that still exist.
    pub async fn list_sessions(&self, user_id: &str) -> Result<Vec<(String, Hash)>, StoreError> {
        let mut out = Vec::new();
        for sid in self
            .backend
            .set_members(&self.keys.user_sessions(user_id))
            .await?
        {
            if let Some(hash) = self.backend.hash(&self.keys.session(&sid)).await? {
                out.push((sid, hash));
            }
        }
        Ok(out)
    }

    /// Marks one session revoked (keeping it, so a cached copy elsewhere
    /// reads as revoked, not unknown); false if it did not exist.
    pub async fn revoke_session(&self, sid: &str) -> Result<bool, StoreError> {
        let key = self.keys.session(sid);
        let existed = self
            .backend
            .set_field_if_exists(&key, session::field::REVOKED, fields::REVOKED)
            .await?;
        self.invalidate(&key).await?;
        Ok(existed)
    }

    /// Revokes every session of a user; returns how many.
    pub async fn revoke_user(&self, user_id: &str) -> Result<usize, StoreError> {
        let mut n = 0;
        for sid in self
            .backend
            .set_members(&self.keys.user_sessions(user_id))
            .await?
        {
            if self.revoke_session(&sid).await? {
                n += 1;
            }
        }
        Ok(n)
    }

    /// Stores `apikey:{sha256(key)}`, its id index and the user's list.
    pub async fn create_api_key(
        &self,
        key_hash: &str,
        k: &NewApiKey,
        now: u64,
    ) -> Result<(), StoreError> {
        let fields = k.fields(now);
        let ttl = k
            .expires_at
            .map(|t| Duration::from_secs(t.saturating_sub(now).max(1)));
        let key = self.keys.api_key(key_hash);
        // The indexes first, as for a session: a key that works is always
        // listed and revocable by its id.
        self.backend
            .set_add(&self.keys.user_api_keys(&k.user_id), &k.key_id)
            .await?;
        self.backend
            .put_string(&self.keys.api_key_id(&k.key_id), key_hash, ttl)
            .await?;
        self.backend.put_hash(&key, &pairs(&fields), ttl).await?;
        self.invalidate(&key).await
    }

    /// A user's API keys (by id) that still exist.
    pub async fn list_api_keys(&self, user_id: &str) -> Result<Vec<Hash>, StoreError> {
        let mut out = Vec::new();
        for id in self
            .backend
            .set_members(&self.keys.user_api_keys(user_id))
            .await?
        {
            if let Some(hash) = self.backend.string(&self.keys.api_key_id(&id)).await?
                && let Some(record) = self.backend.hash(&self.keys.api_key(&hash)).await?
            {
                out.push(record);
            }
        }
        Ok(out)
    }

    /// Marks the key with this public id revoked; false if unknown.
    pub async fn revoke_api_key(&self, key_id: &str) -> Result<bool, StoreError> {
        let Some(hash) = self.backend.string(&self.keys.api_key_id(key_id)).await? else {
            return Ok(false);
        };
        let key = self.keys.api_key(&hash);
        let existed = self
            .backend
            .set_field_if_exists(&key, apikey::field::REVOKED, fields::REVOKED)
            .await?;
        self.invalidate(&key).await?;
        Ok(existed)
    }

    /// One session's record, if it exists.
    pub async fn session(&self, sid: &str) -> Result<Option<Hash>, StoreError> {
        self.backend.hash(&self.keys.session(sid)).await
    }

    /// The record of the API key with this public id, with its hash (the
    /// record's key); `None` if unknown.
    pub async fn api_key_by_id(&self, key_id: &str) -> Result<Option<(String, Hash)>, StoreError> {
        let Some(hash) = self.backend.string(&self.keys.api_key_id(key_id)).await? else {
            return Ok(None);
        };
        let record = self.backend.hash(&self.keys.api_key(&hash)).await?;
        Ok(record.map(|r| (hash, r)))
    }

    /// Ends an API key early (a rotation's overlap): `expires_at` (unix
    /// seconds, what every check reads) and the record's TTL (`ttl`, at
    /// most) in one step, then its id index; false if the key is gone.
    pub async fn expire_api_key(
        &self,
        key_id: &str,
        key_hash: &str,
        expires_at: u64,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let key = self.keys.api_key(key_hash);
        let ttl = ttl.max(Duration::from_secs(1));
        let existed = self
            .backend
            .expire_field_if_exists(
                &key,
                apikey::field::EXPIRES_AT,
                &expires_at.to_string(),
                ttl,
            )
            .await?;
        if existed {
            self.backend
                .put_string(&self.keys.api_key_id(key_id), key_hash, Some(ttl))
                .await?;
        }
        self.invalidate(&key).await?;
        Ok(existed)
    }

    /// Lists `jti` as revoked until the token would have expired anyway.
    pub async fn revoke_jti(&self, jti: &str, remaining: Duration) -> Result<(), StoreError> {
        let key = self.keys.revoked_jti(jti);
        self.backend
            .put_string(&key, "1", Some(remaining.max(Duration::from_secs(1))))
            .await?;
        self.invalidate(&key).await
    }
}
