//! The management operations behind `ward apikey ...`, `ward session
//! ...` and the management API (`server/management.rs`): what an
//! operator, a login service or a demo changes in the store the servers
//! read. Each change goes through [`Records`], so it is written
//! atomically and its invalidation is published: every ward sees it
//! within one message. Raw API keys are returned once and never stored.
//!
//! The results are typed ([`SessionInfo`], [`ApiKeyInfo`]): the CLI prints
//! them as text, the API sends them as messages, and `ward ... --server`
//! prints the API's answer with the same text.

use crate::apikey::{self, NewApiKey};
use crate::config::Config;
use crate::fields;
use crate::fingerprint;
use crate::identity::HeaderRules;
use crate::session::{self, NewSession};
use crate::store::keys::KeyNames;
use crate::store::records::{OidcLogin, Records};
use crate::store::{Hash, Store, StoreError};
use std::time::Duration;

/// Why a management operation failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ManageError {
    #[error(
        "store.redis is not configured: the embedded store lives inside `ward serve` (seed it with store.seed_file)"
    )]
    NoRedis,
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("cannot open the store: {0}")]
    Open(#[from] crate::store::OpenError),
    #[error("{0}")]
    Random(#[from] apikey::RandomError),
    #[error("not found: {0}")]
    NotFound(String),
    /// A request the store must not see (a missing user, a token already
    /// expired); the message names the field.
    #[error("{0}")]
    Invalid(String),
}

/// A session as stored (never its fingerprint, only whether it has one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SessionInfo {
    pub session_id: String,
    pub user_id: String,
    pub email: Option<String>,
    pub roles: Vec<String>,
    pub scopes: Vec<String>,
    pub expires_at: Option<u64>,
    pub revoked: bool,
    /// The record's remaining TTL in the store.
    pub ttl: Option<Duration>,
    pub fingerprint_bound: bool,
}

/// An API key's metadata (never the key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiKeyInfo {
    pub key_id: String,
    pub user_id: String,
    pub name: String,
    pub scopes: Vec<String>,
    pub expires_at: Option<u64>,
    pub revoked: bool,
    pub created_at: Option<u64>,
}

/// A key just created: the only time the key itself is known.
#[derive(Debug, Clone)]
pub(crate) struct CreatedKey {
    pub key_id: String,
    pub key: String,
    pub expires_at: Option<u64>,
}

/// A rotation's result: the new key, and when the old one stops.
#[derive(Debug, Clone)]
pub(crate) struct Rotated {
    pub new: CreatedKey,
    pub old_expires_at: u64,
}

/// An API key to create.
#[derive(Debug, Clone)]
pub(crate) struct KeyRequest {
    pub user_id: String,
    pub name: String,
    pub scopes: Vec<String>,
    pub expires_in: Option<Duration>,
}

/// A store and its key names: from a config that uses Redis (the CLI), or
/// the store a running ward already holds (the management API).
pub(crate) struct Manager {
    store: Store,
    keys: KeyNames,
    /// `jwt.leeway`: a token is accepted until `exp` plus this, so its
    /// revocation must last as long.
    leeway: Duration,
    /// The header rules checks apply to a record's values: a record is
    /// read back through them before it is written, so one no check
    /// would accept is refused instead of stored.
    rules: HeaderRules,
    /// `api_keys.id_header`.
    key_id_header: String,
}

impl Manager {
    pub(crate) async fn open(config: &Config) -> Result<Self, ManageError> {
        if config.store.redis.is_none() {
            return Err(ManageError::NoRedis);
        }
        Ok(Self::over(Store::open(config).await?, config))
    }

    /// Over a store already open (Redis or the embedded one).
    pub(crate) fn over(store: Store, config: &Config) -> Self {
        Self {
            store,
            keys: KeyNames::new(&config.store.key_prefix),
            leeway: config.jwt.leeway,
            rules: HeaderRules::new(&config.headers),
            key_id_header: config.api_keys.id_header.clone(),
        }
    }

    fn records(&self) -> Records<'_, Store> {
        Records::new(&self.store, &self.keys)
    }

    /// Creates a session; returns its new id and `expires_at`. With
    /// `login`, the OpenID login it came from is recorded too, for as
    /// long as the session lives (a provider's back-channel logout then
    /// revokes it).
    pub(crate) async fn create_session(
        &self,
        session: &NewSession,
        login: Option<&OidcLogin<'_>>,
    ) -> Result<(String, u64), ManageError> {
        required("user_id", &session.user_id)?;
        check_ttl("ttl", session.ttl)?;
        if let Some(login) = login {
            check_oidc_login(login)?;
        }
        if let Some(fp) = session.fingerprint.as_deref()
            && !fingerprint::well_formed(fp)
        {
            return Err(ManageError::Invalid(
                "fingerprint: must be 64 hex digits, or `fp2:` and 64 hex digits (what `ward fingerprint` prints)".into(),
            ));
        }
        let now = crate::unix_now();
        let record = as_read(session.fields(now));
        let read = session::Session::parse(&record).map_err(|r| invalid_record(r.as_str()))?;
        read.identity(&self.rules, &[])
            .map_err(|e| invalid_record(&e.to_string()))?;
        let sid = session::generate_id()?;
        self.records().create_session(&sid, session, now).await?;
        if let Some(login) = login {
            self.records().link_oidc(&sid, login, session.ttl).await?;
        }
        Ok((sid, now + session.ttl.as_secs()))
    }

    pub(crate) async fn get_session(&self, sid: &str) -> Result<SessionInfo, ManageError> {
        match self.records().session(sid).await? {
            Some(hash) => Ok(session_info(sid, &hash)),
            None => Err(ManageError::NotFound(format!("session {sid}"))),
        }
    }

    pub(crate) async fn list_sessions(
        &self,
        user_id: &str,
    ) -> Result<Vec<SessionInfo>, ManageError> {
        required("user_id", user_id)?;
        let sessions = self.records().list_sessions(user_id).await?;
        Ok(sessions.iter().map(|(s, h)| session_info(s, h)).collect())
    }

    pub(crate) async fn revoke_session(&self, sid: &str) -> Result<(), ManageError> {
        required("session_id", sid)?;
        if self.records().revoke_session(sid).await? {
            Ok(())
        } else {
            Err(ManageError::NotFound(format!("session {sid}")))
        }
    }

    pub(crate) async fn revoke_user(&self, user_id: &str) -> Result<usize, ManageError> {
        required("user_id", user_id)?;
        Ok(self.records().revoke_user(user_id).await?)
    }

    /// Creates an API key; the key is in the result only.
    pub(crate) async fn create_api_key(
        &self,
        prefix: &str,
        req: KeyRequest,
    ) -> Result<CreatedKey, ManageError> {
        required("user_id", &req.user_id)?;
        required("name", &req.name)?;
        if let Some(expires_in) = req.expires_in {
            check_ttl("expires", expires_in)?;
        }
        let now = crate::unix_now();
        let expires_at = req.expires_in.map(|d| now + d.as_secs().max(1));
        self.create_key_until(prefix, req, expires_at, now).await
    }

    async fn create_key_until(
        &self,
        prefix: &str,
        req: KeyRequest,
        expires_at: Option<u64>,
        now: u64,
    ) -> Result<CreatedKey, ManageError> {
        let key = apikey::generate(prefix)?;
        let key_id = apikey::generate_id()?;
        let new = NewApiKey {
            key_id: key_id.clone(),
            user_id: req.user_id,
            name: req.name,
            scopes: req.scopes,
            expires_at,
        };
        let record = as_read(new.fields(now));
        let read = apikey::ApiKey::parse(&record).map_err(|r| invalid_record(r.as_str()))?;
        read.identity(&self.rules, &self.key_id_header)
            .map_err(|e| invalid_record(&e.to_string()))?;
        self.records()
            .create_api_key(&apikey::hash_hex(&key), &new, now)
            .await?;
        Ok(CreatedKey {
            key_id,
            key,
            expires_at,
        })
    }

    pub(crate) async fn list_api_keys(
        &self,
        user_id: &str,
    ) -> Result<Vec<ApiKeyInfo>, ManageError> {
        required("user_id", user_id)?;
        let keys = self.records().list_api_keys(user_id).await?;
        Ok(keys.iter().map(api_key_info).collect())
    }

    pub(crate) async fn revoke_api_key(&self, key_id: &str) -> Result<(), ManageError> {
        required("key_id", key_id)?;
        if self.records().revoke_api_key(key_id).await? {
            Ok(())
        } else {
            Err(ManageError::NotFound(format!("API key {key_id}")))
        }
    }

    /// A new key with the old one's user, name, scopes and expiry; the old
    /// one keeps working for `overlap` at most (never longer than it would
    /// have), then is expired everywhere.
    pub(crate) async fn rotate_api_key(
        &self,
        prefix: &str,
        key_id: &str,
        overlap: Duration,
    ) -> Result<Rotated, ManageError> {
        required("key_id", key_id)?;
        if overlap > MAX_TTL {
            return Err(ManageError::Invalid(
                "overlap: must be at most 3650d".into(),
            ));
        }
        let not_found = || ManageError::NotFound(format!("API key {key_id}"));
        let (hash, record) = self
            .records()
            .api_key_by_id(key_id)
            .await?
            .ok_or_else(not_found)?;
        let old = api_key_info(&record);
        let now = crate::unix_now();
        if old.revoked || fields::expired(old.expires_at, now) {
            return Err(ManageError::Invalid(format!(
                "key_id: API key {key_id} is revoked or expired"
            )));
        }
        let req = KeyRequest {
            user_id: old.user_id,
            name: old.name,
            scopes: old.scopes,
            expires_in: None,
        };
        let new = self
            .create_key_until(prefix, req, old.expires_at, now)
            .await?;
        let old_expires_at = old
            .expires_at
            .unwrap_or(u64::MAX)
            .min(now.saturating_add(overlap.as_secs()));
        let ttl = Duration::from_secs(old_expires_at.saturating_sub(now));
        self.records()
            .expire_api_key(key_id, &hash, old_expires_at, ttl)
            .await?;
        Ok(Rotated {
            new,
            old_expires_at,
        })
    }

    /// Revokes the JWT with this `jti` until ward would refuse it anyway:
    /// its `exp` (`expires_at`) plus `jwt.leeway` (a revocation ending at
    /// `exp` would let the token back in for the leeway).
    pub(crate) async fn revoke_token(&self, jti: &str, expires_at: u64) -> Result<(), ManageError> {
        required("jti", jti)?;
        let now = crate::unix_now();
        let refused_from = expires_at.saturating_add(self.leeway.as_secs());
        if refused_from <= now {
            return Err(ManageError::Invalid(
                "expires_at: the token has already expired (jwt.leeway included)".into(),
            ));
        }
        let remaining = Duration::from_secs(refused_from - now);
        Ok(self.records().revoke_jti(jti, remaining).await?)
    }
}

/// A login's provider names as a logout token could name them: an issuer
/// without `#` (the index keys' separator; an issuer has no fragment), a
/// `sid` and `sub` as `backchannel::verify` accepts them, at least one of
/// the two. Anything else would be recorded under a key no logout ever
/// reads.
pub(crate) fn check_oidc_login(login: &OidcLogin<'_>) -> Result<(), ManageError> {
    let bad = |what: &str| Err(ManageError::Invalid(what.to_string()));
    if login.issuer.is_empty() || login.issuer.contains('#') {
        return bad("--oidc-issuer must be the provider's issuer URL (no `#`)");
    }
    if login.sid.is_none() && login.sub.is_none() {
        return bad("an OpenID login needs --oidc-sid and/or --oidc-sub");
    }
    let fits = |v: &str| {
        !v.is_empty()
            && v.len() <= crate::backchannel::MAX_ID_BYTES
            && !v.chars().any(char::is_control)
    };
    if !login.sid.is_none_or(fits) || !login.sub.is_none_or(fits) {
        return bad("--oidc-sid and --oidc-sub must be 1-255 bytes without control characters");
    }
    Ok(())
}

/// A required field must not be empty (nor blank).
/// The longest lifetime a session or an API key may be given: ten years.
/// Beyond it, `now + ttl` and Redis's millisecond expiry stop being
/// ordinary numbers (an expiry Redis refuses after the record is
/// written, an `expires_at` wrapped into the past).
pub(crate) const MAX_TTL: Duration = Duration::from_secs(3650 * 24 * 3600);

/// A lifetime between one second and [`MAX_TTL`], checked before anything
/// is written.
pub(crate) fn check_ttl(name: &str, ttl: Duration) -> Result<(), ManageError> {
    if ttl < Duration::from_secs(1) || ttl > MAX_TTL {
        return Err(ManageError::Invalid(format!(
            "{name}: must be between 1s and 3650d"
        )));
    }
    Ok(())
}

/// A record about to be written, as a check would read it back.
fn as_read(fields: Vec<(&'static str, String)>) -> fields::Fields {
    fields
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
}

/// A record no check would accept (a value that cannot be a header, too
/// long for `headers.max_value_bytes`, ...): refused before writing.
fn invalid_record(why: &str) -> ManageError {
    ManageError::Invalid(format!("a check would refuse this record: {why}"))
}

fn required(name: &str, value: &str) -> Result<(), ManageError> {
    if value.trim().is_empty() {
        return Err(ManageError::Invalid(format!("{name} is required")));
    }
    Ok(())
}

fn session_info(sid: &str, hash: &Hash) -> SessionInfo {
    SessionInfo {
        session_id: sid.to_string(),
        user_id: text(hash, session::field::USER_ID).unwrap_or_default(),
        email: text(hash, session::field::EMAIL),
        roles: list(hash, session::field::ROLES),
        scopes: list(hash, session::field::SCOPES),
        expires_at: time(hash, session::field::EXPIRES_AT),
        revoked: revoked(hash, session::field::REVOKED),
        ttl: hash.ttl,
        fingerprint_bound: text(hash, session::field::FINGERPRINT).is_some(),
    }
}

fn api_key_info(hash: &Hash) -> ApiKeyInfo {
    ApiKeyInfo {
        key_id: text(hash, apikey::field::KEY_ID).unwrap_or_default(),
        user_id: text(hash, apikey::field::USER_ID).unwrap_or_default(),
        name: text(hash, apikey::field::NAME).unwrap_or_default(),
        scopes: list(hash, apikey::field::SCOPES),
        expires_at: time(hash, apikey::field::EXPIRES_AT),
        revoked: revoked(hash, apikey::field::REVOKED),
        created_at: time(hash, apikey::field::CREATED_AT),
    }
}

fn text(hash: &Hash, name: &str) -> Option<String> {
    hash.fields.get(name).filter(|v| !v.is_empty()).cloned()
}

/// A comma-separated list field (`fields::list` writes them).
fn list(hash: &Hash, name: &str) -> Vec<String> {
    text(hash, name)
        .map(|v| {
            v.split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default()
}

/// An unreadable time reads as "now" would be wrong either way; shown as
/// absent, while every check denies such a record (`fields.rs`).
fn time(hash: &Hash, name: &str) -> Option<u64> {
    fields::unix_time(hash.fields.get(name)).ok().flatten()
}

/// An unreadable flag reads as revoked: that is how every check takes it.
fn revoked(hash: &Hash, name: &str) -> bool {
    fields::revoked(hash.fields.get(name)).unwrap_or(true)
}
