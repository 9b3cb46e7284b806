//! The OpenID provider's sessions, mapped to ward's: a provider's
//! back-channel logout names its own session (`sid`) or user (`sub`),
//! never a ward session id, so a login service records at login which
//! ward sessions belong to (issuer, `sid`) and (issuer, `sub`), and a
//! logout revokes what was recorded. The indexes are sets that live at
//! least as long as the longest session added to them.

use super::Records;
use crate::backchannel::Target;
use crate::store::{Backend, StoreError};
use std::time::Duration;

/// What a login learned from the provider's ID token: its `iss`, and its
/// `sid` and `sub` when present.
#[derive(Debug, Clone, Copy)]
pub struct OidcLogin<'a> {
    pub issuer: &'a str,
    pub sid: Option<&'a str>,
    pub sub: Option<&'a str>,
}

impl<B: Backend> Records<'_, B> {
    /// Records that ward session `session_id` (live for `ttl`) belongs to
    /// the login's provider session and user. Each index is one atomic
    /// `SADD` and TTL raise.
    pub async fn link_oidc(
        &self,
        session_id: &str,
        login: &OidcLogin<'_>,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        if let Some(sid) = login.sid {
            let key = self.keys.oidc_sid(login.issuer, sid);
            self.backend.set_add_for(&key, session_id, ttl).await?;
        }
        if let Some(sub) = login.sub {
            let key = self.keys.oidc_sub(login.issuer, sub);
            self.backend.set_add_for(&key, session_id, ttl).await?;
        }
        Ok(())
    }

    /// Revokes every ward session recorded for `target` at `issuer` (each
    /// revocation publishes its invalidation, so every ward denies it at
    /// once, and with `jwt.revocation.require_session` the tokens bound to
    /// it too); returns how many existed. Each is then taken out of the
    /// index one by one, so a session recorded meanwhile stays in it.
    pub async fn logout_oidc(&self, issuer: &str, target: &Target) -> Result<usize, StoreError> {
        let index = match target {
            Target::Session(sid) => self.keys.oidc_sid(issuer, sid),
            Target::Subject(sub) => self.keys.oidc_sub(issuer, sub),
        };
        let mut revoked = 0;
        for session_id in self.backend.set_members(&index).await? {
            if self.revoke_session(&session_id).await? {
                revoked += 1;
            }
            self.backend.set_remove(&index, &session_id).await?;
        }
        Ok(revoked)
    }

    /// Claims a logout token's `jti` for `ttl` as `claimant` (one request's
    /// own random value); false when another request claimed it first: a
    /// replay, on this ward or another.
    pub async fn claim_logout(
        &self,
        issuer: &str,
        jti: &str,
        claimant: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let key = self.keys.logout_jti(issuer, jti);
        self.backend.claim(&key, claimant, ttl).await
    }

    /// Gives a claim back after a logout that failed half-way (the store
    /// went away), so the provider's retry of the same token is not taken
    /// for a replay.
    pub async fn release_logout(&self, issuer: &str, jti: &str) -> Result<(), StoreError> {
        self.backend
            .delete(&self.keys.logout_jti(issuer, jti))
            .await
            .map(drop)
    }
}
