//! Every key and channel name of the Redis contract, in one place.
//! `docs/redis-contract.md` documents them for login-service authors.

/// Channel a writer publishes a changed or deleted key on; every ward
/// evicts that key from its cache.
pub const INVALIDATION_CHANNEL: &str = "ward:invalidate";

/// Key names under an optional namespace prefix (`store.key_prefix`,
/// empty by default, e.g. `myapp:` to share a Redis).
#[derive(Debug, Clone, Default)]
pub struct KeyNames {
    prefix: String,
}

impl KeyNames {
    pub fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_string(),
        }
    }

    /// `session:{sid}`: a hash (`user_id`, `email`, `roles`, ...).
    pub fn session(&self, sid: &str) -> String {
        format!("{}session:{sid}", self.prefix)
    }

    /// `user_sessions:{user_id}`: a set of the user's session ids.
    pub fn user_sessions(&self, user_id: &str) -> String {
        format!("{}user_sessions:{user_id}", self.prefix)
    }

    /// `apikey:{sha256-hex}`: a hash (`key_id`, `user_id`, `name`, ...).
    pub fn api_key(&self, hash_hex: &str) -> String {
        format!("{}apikey:{hash_hex}", self.prefix)
    }

    /// `apikey_id:{key_id}`: a string, the key's SHA-256 hex (for revoke
    /// by the public id).
    pub fn api_key_id(&self, key_id: &str) -> String {
        format!("{}apikey_id:{key_id}", self.prefix)
    }

    /// `user_apikeys:{user_id}`: a set of the user's key ids.
    pub fn user_api_keys(&self, user_id: &str) -> String {
        format!("{}user_apikeys:{user_id}", self.prefix)
    }

    /// `revoked_jti:{jti}`: exists while the token it names is revoked.
    pub fn revoked_jti(&self, jti: &str) -> String {
        format!("{}revoked_jti:{jti}", self.prefix)
    }
}
