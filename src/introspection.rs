//! Opaque access tokens, the pure part: which bearer tokens are opaque
//! (and for which provider), and what a provider's RFC 7662 answer means.
//!
//! An opaque token can only be checked by asking the provider that issued
//! it, so each one not seen before costs a call over the network. Two
//! rules keep junk from becoming calls: a token shaped like a JWT (two
//! dots) is always a JWT, and an opaque one must match a provider's
//! format (its `prefix`, its length bounds, RFC 6750 `b64token`
//! characters) before it is sent anywhere. The answer is read strictly
//! (a member named twice is refused, as in a JWT) and becomes claims the
//! JWT claim mapping renders, so an opaque token's identity headers follow
//! the same contract as a JWT's. The I/O (the call, its caches, limits
//! and single flight) is `introspections.rs`'s.

use crate::config::{IntrospectionConfig, is_token_byte};
use crate::jwt::json::parse_object;
use crate::reason::Reason;
use serde_json::{Map, Value};

/// Why an answer does not make an identity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IntrospectionError {
    /// Not one JSON object with `active` (the provider is misbehaving:
    /// an outage for the check, never a verdict on the token).
    #[error("the answer is not a JSON object with a boolean `active`")]
    NotAnAnswer,
    #[error("the token is not active")]
    Inactive,
    #[error("the answer's `exp` has passed")]
    Expired,
    #[error("the answer's `nbf` is in the future")]
    NotYetValid,
    #[error("the answer's `iss` is not the provider's issuer")]
    WrongIssuer,
    #[error("the answer's `aud` names no accepted audience")]
    WrongAudience,
    #[error("the answer's `token_type` is not Bearer")]
    WrongTokenType,
    #[error("the answer's `{0}` is not of its registered type")]
    BadMember(&'static str),
}

impl IntrospectionError {
    /// The deny reason of a refused token; `None` for an answer that is
    /// no answer (an outage, decided by the policy's `on_store_error`).
    pub fn reason(&self) -> Option<Reason> {
        Some(match self {
            IntrospectionError::NotAnAnswer => return None,
            IntrospectionError::Inactive => Reason::InactiveToken,
            IntrospectionError::Expired => Reason::TokenExpired,
            IntrospectionError::NotYetValid => Reason::TokenNotYetValid,
            IntrospectionError::WrongIssuer => Reason::InvalidIssuer,
            IntrospectionError::WrongAudience => Reason::InvalidAudience,
            IntrospectionError::WrongTokenType | IntrospectionError::BadMember(_) => {
                Reason::InvalidClaim
            }
        })
    }
}

/// One provider's token format.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Format {
    prefix: Option<String>,
    min_length: usize,
    max_length: usize,
}

/// The providers' token formats, in config order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OpaqueFormats(Vec<Format>);

impl OpaqueFormats {
    pub fn from_config(config: &IntrospectionConfig) -> Self {
        Self(
            config
                .providers
                .iter()
                .map(|p| Format {
                    prefix: p.prefix.clone(),
                    min_length: p.min_length,
                    max_length: p.max_length,
                })
                .collect(),
        )
    }

    /// The provider (its index in `introspection.providers`) an opaque
    /// `token` goes to; `None` for a JWT-shaped token or one no format
    /// matches (then it is read as a JWT, and refused as one).
    pub fn provider_for(&self, token: &str) -> Option<usize> {
        if self.0.is_empty() || token.bytes().filter(|b| *b == b'.').count() == 2 {
            return None;
        }
        if !is_b64token(token) {
            return None;
        }
        self.0.iter().position(|f| {
            (f.min_length..=f.max_length).contains(&token.len())
                && f.prefix.as_deref().is_none_or(|p| token.starts_with(p))
        })
    }
}

/// RFC 6750 §2.1 `b64token`: token characters, then `=` padding only.
fn is_b64token(token: &str) -> bool {
    let body = token.trim_end_matches('=');
    !body.is_empty() && body.bytes().all(is_token_byte)
}

/// What an answer is checked against.
#[derive(Debug, Clone, Default)]
pub struct AnswerRules {
    /// The provider's issuer, when configured by one: an answer's `iss`,
    /// if present, must be it.
    pub issuer: Option<String>,
    /// Accepted `aud` values (empty: not checked).
    pub audiences: Vec<String>,
    /// Clock skew allowed on `exp` and `nbf`, in seconds.
    pub leeway: u64,
}

/// An active answer: its members as claims (with `sub` set to the
/// `client_id` when the answer has none: a client's own token), and its
/// `exp` if it has one.
#[derive(Debug, Clone, PartialEq)]
pub struct Active {
    pub claims: Map<String, Value>,
    pub exp: Option<u64>,
}

/// Reads an RFC 7662 §2.2 answer at `now` (unix seconds).
pub fn read_answer(
    body: &[u8],
    rules: &AnswerRules,
    now: u64,
) -> Result<Active, IntrospectionError> {
    let mut claims = parse_object(body).map_err(|_| IntrospectionError::NotAnAnswer)?;
    match claims.get("active") {
        Some(Value::Bool(true)) => {}
        Some(Value::Bool(false)) => return Err(IntrospectionError::Inactive),
        _ => return Err(IntrospectionError::NotAnAnswer),
    }
    let exp = time(&claims, "exp")?;
    if exp.is_some_and(|exp| now >= exp.saturating_add(rules.leeway)) {
        return Err(IntrospectionError::Expired);
    }
    if time(&claims, "nbf")?.is_some_and(|nbf| nbf > now.saturating_add(rules.leeway)) {
        return Err(IntrospectionError::NotYetValid);
    }
    time(&claims, "iat")?;
    check_issuer(&claims, rules)?;
    check_audience(&claims, rules)?;
    match claims.get("token_type") {
        None => {}
        Some(Value::String(t)) if t.eq_ignore_ascii_case("bearer") => {}
        Some(_) => return Err(IntrospectionError::WrongTokenType),
    }
    if !claims.contains_key("sub")
        && let Some(client) = claims.get("client_id").cloned()
    {
        claims.insert("sub".into(), client);
    }
    Ok(Active { claims, exp })
}

/// A NumericDate member, if present.
fn time(
    claims: &Map<String, Value>,
    name: &'static str,
) -> Result<Option<u64>, IntrospectionError> {
    match claims.get(name) {
        None => Ok(None),
        Some(v) => v
            .as_u64()
            .map(Some)
            .ok_or(IntrospectionError::BadMember(name)),
    }
}

fn check_issuer(
    claims: &Map<String, Value>,
    rules: &AnswerRules,
) -> Result<(), IntrospectionError> {
    match (claims.get("iss"), &rules.issuer) {
        (None, _) | (Some(_), None) => Ok(()),
        (Some(Value::String(iss)), Some(want)) if iss == want => Ok(()),
        (Some(Value::String(_)), Some(_)) => Err(IntrospectionError::WrongIssuer),
        (Some(_), Some(_)) => Err(IntrospectionError::BadMember("iss")),
    }
}

fn check_audience(
    claims: &Map<String, Value>,
    rules: &AnswerRules,
) -> Result<(), IntrospectionError> {
    if rules.audiences.is_empty() {
        return Ok(());
    }
    let accepted = |v: &Value| {
        v.as_str()
            .is_some_and(|a| rules.audiences.iter().any(|w| w == a))
    };
    match claims.get("aud") {
        Some(Value::Array(list)) if list.iter().any(accepted) => Ok(()),
        Some(v @ Value::String(_)) if accepted(v) => Ok(()),
        _ => Err(IntrospectionError::WrongAudience),
    }
}

#[cfg(test)]
mod tests;
