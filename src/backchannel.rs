//! OpenID Connect Back-Channel Logout 1.0: a logout token in, what to log
//! out (or why not) out. An identity provider POSTs this token to ward when
//! a user logs out there; the token is the request's only credential, so
//! every rule of the specification's §2.6 is applied here, in one pure
//! function, before the shell (`server/backchannel.rs`) touches the store.
//!
//! The rules, in order: the token is a strict JWS (`jwt.rs`) signed by a
//! key of its issuer, and only of its issuer (the `iss` read before the
//! signature only chooses the keys); `typ`, when present, is `logout+jwt`
//! (or another configured type);
//! `iss` is that issuer, `aud` the configured client id, `exp` not passed;
//! `iat` present, not in the future and not older than the replay window;
//! `jti` present; `events` names the back-channel logout event with an
//! object; `sid`, `sub` or both; no `nonce` (which tells an ID token apart).
//! What is left, remembering `jti` until the window closes, is the shell's.

use crate::jwt::{self, AllowedTypes, JwtError, KeySet, Rules, Verifier};
use serde_json::{Map, Value};
use std::sync::Arc;
use std::time::Duration;

/// The member of `events` that makes a JWT a logout token (§2.4).
pub const LOGOUT_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";
/// The longest `sid`, `sub` or `jti` ward accepts: they become Redis keys.
pub const MAX_ID_BYTES: usize = 255;

/// What a logout token must satisfy, besides its issuer's keys.
#[derive(Debug, Clone)]
pub struct LogoutRules {
    /// The `aud` the token must name: ward's client id at the provider.
    pub client_id: String,
    /// Clock skew tolerated on `exp` and `iat` (`jwt.leeway`).
    pub leeway: Duration,
    /// The replay window: a token issued longer ago is refused, so its
    /// `jti` need not be remembered longer.
    pub max_age: Duration,
    /// Tokens longer than this are refused before parsing.
    pub max_token_bytes: usize,
    /// The header `typ` values accepted (a token without `typ` passes):
    /// `logout+jwt` unless configured otherwise (§2.4, RFC 8725 §3.11).
    pub types: AllowedTypes,
}

/// A verified logout: whose sessions end, and the `jti` to remember.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Logout {
    /// The provider, as configured (and as the token's `iss` said).
    pub issuer: String,
    pub target: Target,
    pub jti: String,
    /// Unix seconds: until then a second token with this `jti` is a replay;
    /// after it, the token is refused by age or expiry anyway.
    pub replay_until: u64,
}

/// Which sessions a logout ends (§2.7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The provider's session `sid`: the ward sessions recorded for it.
    Session(String),
    /// No `sid`: every ward session recorded for this `sub` at the provider.
    Subject(String),
}

/// Why a logout token was refused; each is a 400 `invalid_request`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogoutError {
    #[error("the token's issuer is not accepted for back-channel logout")]
    UnknownIssuer,
    #[error("{0}")]
    Jwt(#[from] JwtError),
    #[error("required claim `iat` is missing")]
    MissingIat,
    #[error("issued longer ago than the replay window")]
    TooOld,
    #[error("`events` does not carry the back-channel logout event as an object")]
    NotALogoutEvent,
    #[error("neither `sid` nor `sub` is present")]
    NoSubject,
    #[error("a logout token must not carry `nonce`")]
    Nonce,
    #[error("required claim `jti` is missing")]
    MissingJti,
    #[error("claim `{0}` must be a non-empty string of at most 255 bytes")]
    InvalidClaim(&'static str),
}

/// Verifies `token` at `now`. `keys` gives an accepted issuer's keys (and
/// `None` for any other issuer); it is asked once, for the `iss` the token
/// claims.
pub fn verify(
    token: &str,
    keys: impl FnOnce(&str) -> Option<Arc<KeySet>>,
    rules: &LogoutRules,
    now: u64,
) -> Result<Logout, LogoutError> {
    let issuer =
        jwt::claimed_issuer(token, rules.max_token_bytes)?.ok_or(JwtError::MissingClaim("iss"))?;
    let keys = keys(&issuer).ok_or(LogoutError::UnknownIssuer)?;
    let verifier = Verifier {
        max_token_bytes: rules.max_token_bytes,
        rules: Rules {
            leeway: rules.leeway,
            issuers: vec![issuer.clone()],
            audiences: vec![rules.client_id.clone()],
            max_lifetime: None,
        },
    };
    let verified = verifier.verify_as(token, &keys, &rules.types, now)?;
    let claims = &verified.claims;
    let iat = issued_at(claims)?;
    let max_age = rules.max_age.as_secs();
    if iat
        .saturating_add(max_age)
        .saturating_add(rules.leeway.as_secs())
        < now
    {
        return Err(LogoutError::TooOld);
    }
    check_event(claims)?;
    if claims.contains_key("nonce") {
        return Err(LogoutError::Nonce);
    }
    let jti = id_claim(claims, "jti")?.ok_or(LogoutError::MissingJti)?;
    let target = match (id_claim(claims, "sid")?, id_claim(claims, "sub")?) {
        (Some(sid), _) => Target::Session(sid),
        (None, Some(sub)) => Target::Subject(sub),
        (None, None) => return Err(LogoutError::NoSubject),
    };
    let replay_until = verified.exp.min(iat.saturating_add(max_age));
    Ok(Logout {
        issuer,
        target,
        jti,
        replay_until: replay_until.saturating_add(rules.leeway.as_secs()),
    })
}

/// `iat`, required here; its type and future dates were judged with the
/// registered claims.
fn issued_at(claims: &Map<String, Value>) -> Result<u64, LogoutError> {
    match claims.get("iat") {
        None => Err(LogoutError::MissingIat),
        Some(Value::Number(n)) => n
            .as_u64()
            .or_else(|| n.as_f64().map(|f| f as u64))
            .ok_or(LogoutError::Jwt(JwtError::InvalidClaim("iat"))),
        Some(_) => Err(LogoutError::Jwt(JwtError::InvalidClaim("iat"))),
    }
}

/// `events` is an object with the logout event's member, itself an
/// object (§2.4: "the value MUST be a JSON object", usually `{}`).
fn check_event(claims: &Map<String, Value>) -> Result<(), LogoutError> {
    match claims.get("events") {
        Some(Value::Object(events)) if events.get(LOGOUT_EVENT).is_some_and(Value::is_object) => {
            Ok(())
        }
        _ => Err(LogoutError::NotALogoutEvent),
    }
}

/// A string claim that names something (`sid`, `sub`, `jti`): absent, or
/// a non-empty string of printable characters within [`MAX_ID_BYTES`].
fn id_claim(
    claims: &Map<String, Value>,
    name: &'static str,
) -> Result<Option<String>, LogoutError> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::String(s))
            if !s.is_empty() && s.len() <= MAX_ID_BYTES && !s.chars().any(char::is_control) =>
        {
            Ok(Some(s.clone()))
        }
        Some(_) => Err(LogoutError::InvalidClaim(name)),
    }
}

#[cfg(test)]
mod tests;
