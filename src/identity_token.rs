//! Identity tokens: a short-lived JWS signed by ward, sent to the backend
//! beside the identity headers, so a backend can verify who the caller
//! is instead of trusting that every path to it went through Envoy.
//!
//! Cost is the design constraint. A token is signed for an identity and a
//! profile (a policy's `audience` and `ttl`) once, kept in the identity
//! ([`crate::identity::TokenSlots`]), and reused by every cache hit until
//! less than a third of its life is left; then one hit queues a re-sign
//! on the ports' background thread and keeps sending the current token,
//! which is still valid. Only a check that finds no usable token (the
//! first for an identity, or one idle past the token's expiry) signs
//! inline. Pure: the identity, the keys and `now` in, a token out.

pub mod keys;

use crate::config::{Config, TokenProfileConfig};
use crate::credentials::CredentialHash;
use crate::identity::{Identity, Signed, Slot};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use keys::{KeyRing, SigningKeyError};
use serde_json::json;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// A policy's identity token settings, compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    /// The header the token goes in.
    pub header: Arc<str>,
    pub audience: String,
    /// Seconds.
    pub ttl: u64,
    /// Names the profile in a kept token: a token is reused only for the
    /// profile it was signed for.
    pub id: u64,
    /// This profile's slot among `count` in an identity's token slots.
    index: usize,
    count: usize,
}

impl Profile {
    /// The profile `profile` describes in `config` (whose other profiles
    /// decide its slot).
    pub fn new(profile: &TokenProfileConfig, config: &Config) -> Profile {
        let mut all: Vec<(&str, u64)> = config
            .token_profiles()
            .map(|p| (p.audience.as_str(), p.ttl.as_secs()))
            .collect();
        all.sort_unstable();
        all.dedup();
        let ttl = profile.ttl.as_secs();
        let me = (profile.audience.as_str(), ttl);
        // The issuer too: a reload that changes it makes kept tokens unusable.
        let issuer = config.identity_token.issuer.as_deref().unwrap_or_default();
        let digest = Sha256::digest(format!("{issuer}\n{}\n{ttl}", profile.audience));
        let mut id = [0u8; 8];
        id.copy_from_slice(&digest[..8]);
        Profile {
            header: profile.header.as_str().into(),
            audience: profile.audience.clone(),
            ttl,
            id: u64::from_le_bytes(id),
            index: all.iter().position(|p| *p == me).unwrap_or(0),
            count: all.len(),
        }
    }

    fn slot<'i>(&self, identity: &'i Identity) -> &'i Slot {
        identity.tokens.slot(self.index, self.count)
    }
}

/// The longest `ttl` of `config`'s profiles (seconds; 60 with none).
pub fn max_ttl(config: &Config) -> u64 {
    config
        .token_profiles()
        .map(|p| p.ttl.as_secs())
        .max()
        .unwrap_or(60)
}

/// What a check found in the identity's slot.
#[derive(Debug)]
pub enum Kept {
    /// A token to send as is.
    Fresh(Arc<Signed>),
    /// A token to send, and a re-sign to queue (this caller won the
    /// slot's refresh flag): less than a third of its life is left, or a
    /// newer key signs now.
    Refresh(Arc<Signed>),
    /// Nothing usable: sign inline.
    Missing,
}

/// The token kept for `identity` under `profile` at `now`, and whether
/// it wants re-signing. Never signs: a cache hit's whole cost.
pub fn kept(identity: &Identity, profile: &Profile, ring: &KeyRing, now: u64) -> Kept {
    let slot = profile.slot(identity);
    let Some(token) = slot
        .current()
        .filter(|t| t.profile == profile.id && now < t.exp)
    else {
        return Kept::Missing;
    };
    let late = (token.exp - now) * 3 < token.exp.saturating_sub(token.iat);
    // Re-signing helps only if the new token would live longer (not at
    // the credential's own expiry) or a newer key signs now.
    let longer = expiry(identity, profile, now) > token.exp;
    let rotated = ring.signing(now).is_some_and(|k| k.serial != token.key);
    if ((late && longer) || rotated) && slot.start_refresh() {
        Kept::Refresh(token)
    } else {
        Kept::Fresh(token)
    }
}

/// Signs a token for `identity` under `profile` at `now` and keeps it in
/// the identity's slot (a re-sign ends the slot's refresh).
pub fn sign_and_keep(
    identity: &Identity,
    profile: &Profile,
    ring: &KeyRing,
    credential: &CredentialHash,
    now: u64,
) -> Result<Arc<Signed>, TokenError> {
    let slot = profile.slot(identity);
    let signed = sign(identity, profile, ring, credential, now).map(Arc::new);
    if let Ok(signed) = &signed {
        slot.store(signed.clone());
    }
    slot.end_refresh();
    signed
}

/// Why no token could be signed.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("no identity-token key may sign yet (every not_before is in the future)")]
    NoKey,
    #[error("the credential has expired")]
    Expired,
    #[error(transparent)]
    Key(#[from] SigningKeyError),
}

/// When a token signed at `now` expires: its `ttl` later, never after
/// the credential.
fn expiry(identity: &Identity, profile: &Profile, now: u64) -> u64 {
    let exp = now + profile.ttl;
    identity.expires_at().map_or(exp, |e| exp.min(e))
}

/// A compact JWS for `identity` under `profile`, signed with the key of
/// `now`.
pub fn sign(
    identity: &Identity,
    profile: &Profile,
    ring: &KeyRing,
    credential: &CredentialHash,
    now: u64,
) -> Result<Signed, TokenError> {
    let key = ring.signing(now).ok_or(TokenError::NoKey)?;
    let exp = expiry(identity, profile, now);
    if exp <= now {
        return Err(TokenError::Expired);
    }
    let header = json!({"alg": key.alg.as_str(), "typ": "JWT", "kid": key.kid});
    let claims = claims(identity, profile, &ring.issuer, credential, now, exp);
    let mut token = URL_SAFE_NO_PAD.encode(header.to_string());
    token.push('.');
    token.push_str(&URL_SAFE_NO_PAD.encode(claims.to_string()));
    let signature = key.sign(token.as_bytes())?;
    token.push('.');
    token.push_str(&URL_SAFE_NO_PAD.encode(signature));
    Ok(Signed {
        token: token.into_boxed_str(),
        profile: profile.id,
        key: key.serial,
        iat: now,
        exp,
    })
}

/// The claims (docs/backends.md): who, how they signed in, which
/// credential (a hash: the first 32 hex digits of its SHA-256, whose
/// first 12 name it in ward's logs), for whom, and how long.
fn claims(
    identity: &Identity,
    profile: &Profile,
    issuer: &str,
    credential: &CredentialHash,
    now: u64,
    exp: u64,
) -> serde_json::Value {
    let roles: Vec<&str> = identity.roles().collect();
    let scope = identity.scopes().collect::<Vec<_>>().join(" ");
    json!({
        "iss": issuer,
        "aud": profile.audience,
        "sub": identity.user_id(),
        "iat": now,
        "exp": exp,
        "jti": jti(),
        "auth_method": identity.method.as_str(),
        "roles": roles,
        "scope": scope,
        "cid": hex::encode(&credential[..16]),
    })
}

/// 128 random bits, base64url: unique per token.
fn jti() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut bytes = [0u8; 16];
    // The OS generator does not fail on Linux once booted; were it to, a
    // process-wide counter still keeps every jti of this process apart.
    if getrandom::fill(&mut bytes).is_err() {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        bytes[..8].copy_from_slice(&n.to_le_bytes());
    }
    URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests;
