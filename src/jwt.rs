//! Local JWT verification: a token, a key set and `now` in; claims or a
//! typed error out. Pure: no clock, no I/O; the caller brings the keys
//! (static, or the JWKS fetcher's latest snapshot) and the time.
//!
//! Order matters for cost and safety: the size cap and the strict parse
//! come before any key lookup, the signature before the claims are read,
//! and the claims before anything is trusted. The key that verified the
//! signature then judges the header `typ`. Header and payload are strict
//! JSON: a member named twice at any depth is a malformed token.

mod claims;
pub(crate) mod json;
pub mod keys;
mod rsa;
mod token;
pub mod typ;

pub use claims::Rules;
pub use keys::{Key, KeySet};
pub use typ::AllowedTypes;

use json::StrictJsonError;
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
    #[error("header `typ` is not a media type the verifying key accepts")]
    UnsupportedTyp,
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
        self.verify_claims(&payload, now)
    }

    /// [`Verifier::verify`] for a token of another kind than the keys'
    /// own (a logout token, `backchannel.rs`): `types` judges the header
    /// `typ` instead of the verifying key's list.
    pub fn verify_as(
        &self,
        token: &str,
        keys: &KeySet,
        types: &AllowedTypes,
        now: u64,
    ) -> Result<Verified, JwtError> {
        let payload = self.verify_signature_typed(token, keys, Some(types))?;
        self.verify_claims(&payload, now)
    }

    fn verify_claims(&self, payload: &[u8], now: u64) -> Result<Verified, JwtError> {
        let claims = json::parse_object(payload).map_err(|e| match e {
            StrictJsonError::DuplicateMember => {
                JwtError::Malformed("payload names a member twice (RFC 7519 §4)")
            }
            StrictJsonError::NotAnObject => JwtError::Malformed("payload is not a JSON object"),
        })?;
        let exp = claims::check(&claims, &self.rules, now)?;
        Ok(Verified { claims, exp })
    }

    /// What costs no signature check: the size cap, the strict parse of
    /// the header and the choice of keys. A token refused here would be
    /// refused by [`Verifier::verify`] the same way, so a check refuses it
    /// without waiting for a verification thread (`verifications.rs`).
    pub fn precheck(&self, token: &str, keys: &KeySet) -> Result<(), JwtError> {
        let parts = token::parse(token, self.max_token_bytes)?;
        candidates(&parts, keys).map(|_| ())
    }

    /// The JWS layer alone: size cap, strict parse, key choice, signature,
    /// and the verifying key's judgement of `typ`. Returns the decoded
    /// payload, not yet read as claims.
    pub fn verify_signature(&self, token: &str, keys: &KeySet) -> Result<Vec<u8>, JwtError> {
        self.verify_signature_typed(token, keys, None)
    }

    /// The JWS layer, with `typ` judged by `types` when given, else by
    /// the verifying key.
    fn verify_signature_typed(
        &self,
        token: &str,
        keys: &KeySet,
        types: Option<&AllowedTypes>,
    ) -> Result<Vec<u8>, JwtError> {
        let parts = token::parse(token, self.max_token_bytes)?;
        let alg = parts.header.alg;
        let candidates = candidates(&parts, keys)?;
        let key = candidates
            .into_iter()
            .find(|key| {
                jsonwebtoken::crypto::verify(
                    parts.signature,
                    parts.message.as_bytes(),
                    &key.key,
                    alg,
                )
                .unwrap_or(false)
            })
            .ok_or(JwtError::BadSignature)?;
        if !types
            .unwrap_or(&key.types)
            .accepts(parts.header.typ.as_deref())
        {
            return Err(JwtError::UnsupportedTyp);
        }
        token::decode_part(parts.payload)
    }
}

/// The `iss` a token claims, read before anything is verified: only to
/// choose whose keys verify it (a logout token, `backchannel.rs`), never
/// to trust. The same strict parse as a verification (size cap, header,
/// strict JSON payload); `None` when `iss` is absent or not a string.
pub fn claimed_issuer(token: &str, max_bytes: usize) -> Result<Option<String>, JwtError> {
    let parts = token::parse(token, max_bytes)?;
    let payload = token::decode_part(parts.payload)?;
    let mut claims = json::parse_object(&payload)
        .map_err(|_| JwtError::Malformed("payload is not a strict JSON object"))?;
    Ok(match claims.remove("iss") {
        Some(Value::String(iss)) => Some(iss),
        _ => None,
    })
}

/// The keys that may have signed `parts`: by `kid` and `alg`.
fn candidates<'k>(parts: &token::Parts<'_>, keys: &'k KeySet) -> Result<Vec<&'k Key>, JwtError> {
    keys.candidates(parts.header.kid.as_deref(), parts.header.alg)
        .map_err(|e| match e {
            KeyLookup::Unknown => JwtError::UnknownKey,
            KeyLookup::AlgorithmMismatch => JwtError::AlgorithmMismatch,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
    use std::sync::Arc;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
    const NOW: u64 = 1_700_000_000;

    fn key(kid: &str, types: &[&str]) -> Arc<Key> {
        Arc::new(Key {
            kid: Some(kid.into()),
            alg: Algorithm::HS256,
            key: DecodingKey::from_secret(SECRET),
            types: AllowedTypes::new(types),
        })
    }

    /// An HS256 token from raw header and payload text.
    fn token(header: &str, payload: &str) -> String {
        let b64 = |s: &str| URL_SAFE_NO_PAD.encode(s);
        let message = format!("{}.{}", b64(header), b64(payload));
        let key = EncodingKey::from_secret(SECRET);
        let sig = jsonwebtoken::crypto::sign(message.as_bytes(), &key, Algorithm::HS256).unwrap();
        format!("{message}.{sig}")
    }

    fn verify(header: &str, payload: &str) -> Result<Verified, JwtError> {
        let keys = KeySet::new([key("jwt", &["JWT"]), key("at", &["application/at+jwt"])]);
        let verifier = Verifier {
            max_token_bytes: 8192,
            rules: Rules::default(),
        };
        verifier.verify(&token(header, payload), &keys, NOW)
    }

    const CLAIMS: &str = r#"{"sub":"alice","exp":1700000600}"#;

    #[test]
    fn the_verifying_key_judges_typ() {
        let cases = [
            (r#"{"alg":"HS256","kid":"jwt"}"#, Ok(())),
            (r#"{"alg":"HS256","kid":"jwt","typ":"jwt"}"#, Ok(())),
            (
                r#"{"alg":"HS256","kid":"jwt","typ":"at+jwt"}"#,
                Err(JwtError::UnsupportedTyp),
            ),
            (
                r#"{"alg":"HS256","kid":"jwt","typ":"JWE"}"#,
                Err(JwtError::UnsupportedTyp),
            ),
            (r#"{"alg":"HS256","kid":"at","typ":"AT+JWT"}"#, Ok(())),
            (
                r#"{"alg":"HS256","kid":"at","typ":"JWT"}"#,
                Err(JwtError::UnsupportedTyp),
            ),
            (
                r#"{"alg":"HS256","kid":"at","typ":true}"#,
                Err(JwtError::Malformed("header `typ` is not a string")),
            ),
        ];
        for (header, want) in cases {
            assert_eq!(verify(header, CLAIMS).map(|_| ()), want, "{header}");
        }
    }

    #[test]
    fn a_forged_token_is_a_bad_signature_whatever_its_typ() {
        let keys = KeySet::new([key("jwt", &["JWT"])]);
        let verifier = Verifier {
            max_token_bytes: 8192,
            rules: Rules::default(),
        };
        let good = token(r#"{"alg":"HS256","kid":"jwt","typ":"JWE"}"#, CLAIMS);
        let (message, sig) = good.rsplit_once('.').unwrap();
        let flipped = if sig.starts_with('A') { "B" } else { "A" };
        let forged = format!("{message}.{flipped}{}", &sig[1..]);
        assert_eq!(
            verifier.verify(&forged, &keys, NOW).unwrap_err(),
            JwtError::BadSignature
        );
    }

    #[test]
    fn a_payload_member_named_twice_is_malformed() {
        let header = r#"{"alg":"HS256","kid":"jwt"}"#;
        let twice = Err(JwtError::Malformed(
            "payload names a member twice (RFC 7519 §4)",
        ));
        for payload in [
            r#"{"sub":"alice","sub":"admin","exp":1700000600}"#,
            r#"{"sub":"alice","exp":1,"exp":1700000600}"#,
            r#"{"sub":"alice","exp":1700000600,"roles":"user","roles":"admin"}"#,
            r#"{"sub":"alice","exp":1700000600,"ext":{"a":{"b":[{"c":1,"c":1}]}}}"#,
        ] {
            assert_eq!(verify(header, payload).map(|_| ()), twice, "{payload}");
        }
        let ok = verify(header, CLAIMS).unwrap();
        assert_eq!(ok.claims["sub"], "alice");
        assert_eq!(
            verify(header, "[1]").map(|_| ()),
            Err(JwtError::Malformed("payload is not a JSON object"))
        );
    }

    #[test]
    fn precheck_refuses_what_verify_would_before_any_signature() {
        let keys = KeySet::new([key("jwt", &["JWT"])]);
        let verifier = Verifier {
            max_token_bytes: 8192,
            rules: Rules::default(),
        };
        let good = token(r#"{"alg":"HS256","kid":"jwt"}"#, CLAIMS);
        let (message, _) = good.rsplit_once('.').unwrap();
        let unsigned = format!("{message}.AAAA");
        let other_kid = token(r#"{"alg":"HS256","kid":"other"}"#, CLAIMS);
        let too_large = "a".repeat(8193);
        // Passes the precheck: only the signature can tell.
        assert_eq!(verifier.precheck(&good, &keys), Ok(()));
        assert_eq!(verifier.precheck(&unsigned, &keys), Ok(()));
        // Refused alike by the precheck and by the full verification.
        for bad in [other_kid.as_str(), "a.b.c", too_large.as_str()] {
            let refused = verifier.precheck(bad, &keys).unwrap_err();
            assert_eq!(verifier.verify(bad, &keys, NOW).unwrap_err(), refused);
        }
    }
}
