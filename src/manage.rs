//! The management commands behind `ward apikey ...` and `ward session
//! ...`: what an operator (or a demo) runs against the same Redis the
//! servers read. Each change goes through [`Records`], so it is written
//! atomically and its invalidation is published: every ward sees it
//! within one message. Raw API keys are printed once and never stored.

use crate::apikey::{self, NewApiKey};
use crate::config::Config;
use crate::session::{self, NewSession};
use crate::store::keys::KeyNames;
use crate::store::records::{OidcLogin, Records};
use crate::store::{Hash, Store, StoreError};
use std::time::Duration;

/// Why a management command failed.
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
    #[error("{0}")]
    Invalid(String),
}

/// A store and its key names, opened from a config that uses Redis.
pub(crate) struct Manager {
    store: Store,
    keys: KeyNames,
}

impl Manager {
    pub(crate) async fn open(config: &Config) -> Result<Self, ManageError> {
        if config.store.redis.is_none() {
            return Err(ManageError::NoRedis);
        }
        Ok(Self {
            store: Store::open(config).await?,
            keys: KeyNames::new(&config.store.key_prefix),
        })
    }

    fn records(&self) -> Records<'_, Store> {
        Records::new(&self.store, &self.keys)
    }

    /// Creates a session; returns its new id.
    pub(crate) async fn create_session(&self, session: &NewSession) -> Result<String, ManageError> {
        let sid = session::generate_id()?;
        self.records()
            .create_session(&sid, session, crate::unix_now())
            .await?;
        Ok(sid)
    }

    /// Records the OpenID login session `sid` came from (a provider's
    /// back-channel logout then revokes it), for as long as it lives.
    pub(crate) async fn link_oidc(
        &self,
        sid: &str,
        login: &OidcLogin<'_>,
        ttl: Duration,
    ) -> Result<(), ManageError> {
        Ok(self.records().link_oidc(sid, login, ttl).await?)
    }

    pub(crate) async fn list_sessions(&self, user_id: &str) -> Result<String, ManageError> {
        let sessions = self.records().list_sessions(user_id).await?;
        let mut out = String::from("SESSION_ID                        EXPIRES_AT  REVOKED  TTL\n");
        for (sid, hash) in sessions {
            out += &format!(
                "{sid:<33} {:<11} {:<8} {}\n",
                field(&hash, session::field::EXPIRES_AT),
                field(&hash, session::field::REVOKED),
                ttl(&hash)
            );
        }
        Ok(out)
    }

    pub(crate) async fn revoke_session(&self, sid: &str) -> Result<(), ManageError> {
        if self.records().revoke_session(sid).await? {
            Ok(())
        } else {
            Err(ManageError::NotFound(format!("session {sid}")))
        }
    }

    pub(crate) async fn revoke_user(&self, user_id: &str) -> Result<usize, ManageError> {
        Ok(self.records().revoke_user(user_id).await?)
    }

    /// Creates an API key; returns `(key, key_id)`. The key is shown once.
    pub(crate) async fn create_api_key(
        &self,
        prefix: &str,
        user_id: &str,
        name: &str,
        scopes: Vec<String>,
        expires_in: Option<Duration>,
    ) -> Result<(String, String), ManageError> {
        let key = apikey::generate(prefix)?;
        let key_id = apikey::generate_id()?;
        let now = crate::unix_now();
        let new = NewApiKey {
            key_id: key_id.clone(),
            user_id: user_id.to_string(),
            name: name.to_string(),
            scopes,
            expires_at: expires_in.map(|d| now + d.as_secs()),
        };
        self.records()
            .create_api_key(&apikey::hash_hex(&key), &new, now)
            .await?;
        Ok((key, key_id))
    }

    pub(crate) async fn list_api_keys(&self, user_id: &str) -> Result<String, ManageError> {
        let keys = self.records().list_api_keys(user_id).await?;
        let mut out = String::from(
            "KEY_ID                NAME                  SCOPES            EXPIRES_AT  REVOKED\n",
        );
        for hash in keys {
            out += &format!(
                "{:<21} {:<21} {:<17} {:<11} {}\n",
                field(&hash, apikey::field::KEY_ID),
                field(&hash, apikey::field::NAME),
                field(&hash, apikey::field::SCOPES),
                field(&hash, apikey::field::EXPIRES_AT),
                field(&hash, apikey::field::REVOKED),
            );
        }
        Ok(out)
    }

    pub(crate) async fn revoke_api_key(&self, key_id: &str) -> Result<(), ManageError> {
        if self.records().revoke_api_key(key_id).await? {
            Ok(())
        } else {
            Err(ManageError::NotFound(format!("API key {key_id}")))
        }
    }
}

/// A login's provider names as a logout token could name them: an issuer
/// without `#` (the index keys' separator; an issuer has no fragment), a
/// `sid` and `sub` as `backchannel::verify` accepts them. Anything else
/// would be recorded under a key no logout ever reads.
pub(crate) fn check_oidc_login(login: &OidcLogin<'_>) -> Result<(), ManageError> {
    let bad = |what: &str| Err(ManageError::Invalid(what.to_string()));
    if login.issuer.is_empty() || login.issuer.contains('#') {
        return bad("--oidc-issuer must be the provider's issuer URL (no `#`)");
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

fn field(hash: &Hash, name: &str) -> String {
    hash.fields
        .get(name)
        .filter(|v| !v.is_empty())
        .cloned()
        .unwrap_or_else(|| "-".into())
}

fn ttl(hash: &Hash) -> String {
    hash.ttl
        .map_or_else(|| "-".into(), |t| format!("{}s", t.as_secs()))
}
