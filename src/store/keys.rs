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

    /// `{prefix}{kind}{id}`, without `format!`'s machinery: the three keys
    /// read on every check (session, API key, revoked jti) are built here.
    fn key(&self, kind: &str, id: &str) -> String {
        let mut key = String::with_capacity(self.prefix.len() + kind.len() + id.len());
        key.push_str(&self.prefix);
        key.push_str(kind);
        key.push_str(id);
        key
    }

    /// `session:{sid}`: a hash (`user_id`, `email`, `roles`, ...).
    pub fn session(&self, sid: &str) -> String {
        self.key("session:", sid)
    }

    /// `introspect:{sha256-hex}`: no record, only a name to publish on
    /// `ward:invalidate` when an opaque token is revoked at its provider
    /// (every ward then forgets the provider's answer for it).
    pub fn introspected(&self, hash_hex: &str) -> String {
        self.key("introspect:", hash_hex)
    }

    /// `user_sessions:{user_id}`: a set of the user's session ids.
    pub fn user_sessions(&self, user_id: &str) -> String {
        format!("{}user_sessions:{user_id}", self.prefix)
    }

    /// `apikey:{sha256-hex}`: a hash (`key_id`, `user_id`, `name`, ...).
    pub fn api_key(&self, hash_hex: &str) -> String {
        self.key("apikey:", hash_hex)
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

    /// `oidc_sid:{issuer}#{sid}`: a set of the ward session ids a login
    /// service recorded for an OpenID provider's session `sid`. An issuer
    /// has no `#` (it has no fragment, OpenID Discovery §4.3), so the first
    /// `#` ends it, whatever the `sid`.
    pub fn oidc_sid(&self, issuer: &str, sid: &str) -> String {
        format!("{}oidc_sid:{issuer}#{sid}", self.prefix)
    }

    /// `oidc_sub:{issuer}#{sub}`: a set of the ward session ids recorded
    /// for the provider's user `sub`.
    pub fn oidc_sub(&self, issuer: &str, sub: &str) -> String {
        format!("{}oidc_sub:{issuer}#{sub}", self.prefix)
    }

    /// `logout_jti:{issuer}#{jti}`: a string, held while a back-channel
    /// logout token with this `jti` would be a replay.
    pub fn logout_jti(&self, issuer: &str, jti: &str) -> String {
        format!("{}logout_jti:{issuer}#{jti}", self.prefix)
    }

    /// `revoked_jti:{jti}`: exists while the token it names is revoked.
    pub fn revoked_jti(&self, jti: &str) -> String {
        self.key("revoked_jti:", jti)
    }
}
