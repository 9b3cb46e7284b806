//! Local JWT verification: a token, a key set and `now` in; claims or a
//! typed error out. Pure: no clock, no I/O; the caller brings the keys
//! (static, or the JWKS fetcher's latest snapshot) and the time.
//!
//! Order matters for cost and safety: the size cap and the strict parse
//! come before any key lookup, the signature before the claims are read,
//! and the claims before anything is trusted.

mod claims;
pub mod keys;
mod token;

pub use claims::Rules;
pub use keys::{Key, KeySet};

use keys::KeyLookup;
use serde_json::{Map, Value};

/// Why a token was refused. Each variant maps to one deny reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    #[error("token exceeds the size cap")]
    TooLarge,
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    #[error("header alg is missing, `none`, or not supported")]
    UnsupportedAlg,
    #[error("header carries `crit`, which ward does not support")]
    UnsupportedCrit,
    #[error("no key for this token's kid")]
    UnknownKey,
    #[error("the key for this kid is bound to another algorithm")]
    AlgorithmMismatch,
    #[error("signature does not verify")]
    BadSignature,
    #[error("token has expired")]
    Expired,
    #[error("token is not valid yet (nbf or iat in the future)")]
    NotYetValid,
    #[error("token expires further ahead than the configured maximum lifetime")]
    LifetimeTooLong,
    #[error("required claim `{0}` is missing")]
    MissingClaim(&'static str),
    #[error("claim `{0}` has an invalid value")]
    InvalidClaim(&'static str),
    #[error("issuer not accepted")]
    WrongIssuer,
    #[error("audience not accepted")]
    WrongAudience,
}

/// A token whose signature and registered claims checked out.
#[derive(Debug, Clone)]
pub struct Verified {
    pub claims: Map<String, Value>,
    /// Unix seconds; nothing derived from this token may outlive it.
    pub exp: u64,
}

/// Verifies tokens against a key set under fixed rules.
#[derive(Debug, Clone)]
pub struct Verifier {
    pub max_token_bytes: usize,
    pub rules: Rules,
}

impl Verifier {
    pub fn verify(&self, token: &str, keys: &KeySet, now: u64) -> Result<Verified, JwtError> {
        let payload = self.verify_signature(token, keys)?;
        let claims: Map<String, Value> = serde_json::from_slice(&payload)
            .map_err(|_| JwtError::Malformed("payload is not a JSON object"))?;
        let exp = claims::check(&claims, &self.rules, now)?;
        Ok(Verified { claims, exp })
    }

    /// The JWS layer alone: size cap, strict parse, key choice, signature.
    /// Returns the decoded payload, not yet read as claims.
    pub fn verify_signature(&self, token: &str, keys: &KeySet) -> Result<Vec<u8>, JwtError> {
        let parts = token::parse(token, self.max_token_bytes)?;
        let alg = parts.header.alg;
        let candidates =
            keys.candidates(parts.header.kid.as_deref(), alg)
                .map_err(|e| match e {
                    KeyLookup::Unknown => JwtError::UnknownKey,
                    KeyLookup::AlgorithmMismatch => JwtError::AlgorithmMismatch,
                })?;
        let verified = candidates.iter().any(|key| {
            jsonwebtoken::crypto::verify(parts.signature, parts.message.as_bytes(), &key.key, alg)
                .unwrap_or(false)
        });
        if !verified {
            return Err(JwtError::BadSignature);
        }
        token::decode_part(parts.payload)
    }
}
