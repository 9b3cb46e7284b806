//! `jws`: the compact JWS parser, the header rules and the claim rules.
//!
//! The first byte picks a mode (low two bits) and the claim rules (bit 2):
//! - `0`: the rest is a token, given to [`Verifier::verify`] as is;
//! - `1`: the rest is `KEY HEADER \n PAYLOAD`: the harness base64url-
//!   encodes header and payload and signs them with HMAC key `KEY % 4`,
//!   which the key set holds, so the signature passes whenever the header
//!   names that key and its algorithm, and the JSON and claim rules are
//!   what gets exercised;
//! - `2`: the rest is a JWKS document for [`keys::from_jwks`].
//!
//! A verified token's claims must meet the rules at the `now` used: `exp`
//! ahead (within the leeway), `nbf`/`iat` not ahead, issuer and audience
//! accepted, lifetime within the cap. Each mode-1 token is also checked
//! as a back-channel logout token (`logout.rs`).

use crate::jwt::{AllowedTypes, JwtError, Key, KeySet, Rules, Verified, Verifier, keys};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use serde_json::Value;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// The `now` every token is checked at (2023-11-14).
pub const NOW: u64 = 1_700_000_000;

/// The HMAC keys of the key set: (kid, alg, secret). The last has no
/// `kid`, so a token without one picks it.
const HMAC: [(Option<&str>, Algorithm, &[u8]); 4] = [
    (Some("hs256"), Algorithm::HS256, &[0x25; 32]),
    (Some("hs384"), Algorithm::HS384, &[0x38; 48]),
    (Some("hs512"), Algorithm::HS512, &[0x51; 64]),
    (None, Algorithm::HS256, &[0x00; 32]),
];

/// An ES256 public key (from `tests/fixtures/keys`), so fuzzed tokens also
/// reach ECDSA verification.
const EC256_PUB: &[u8] = include_bytes!("../../tests/fixtures/keys/ec256.pub");

pub fn jws(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let verifier = verifier(mode & 4 != 0);
    match mode & 3 {
        0 => {
            let token = super::text(rest);
            let _ = checked(&verifier, &verifier.verify(&token, key_set(), NOW));
        }
        1 => signed(&verifier, rest),
        _ => jwks(rest),
    }
}

fn verifier(strict: bool) -> Verifier {
    let rules = if strict {
        Rules {
            leeway: Duration::from_secs(60),
            issuers: vec!["https://idp.example".into()],
            audiences: vec!["api".into()],
            max_lifetime: Some(Duration::from_secs(3600)),
        }
    } else {
        Rules::default()
    };
    Verifier {
        max_token_bytes: 8192,
        rules,
    }
}

fn key_set() -> &'static Arc<KeySet> {
    static KEYS: OnceLock<Arc<KeySet>> = OnceLock::new();
    KEYS.get_or_init(|| {
        let mut keys: Vec<Arc<Key>> = HMAC
            .iter()
            .map(|&(kid, alg, secret)| {
                Arc::new(Key {
                    kid: kid.map(str::to_string),
                    alg,
                    key: DecodingKey::from_secret(secret),
                    types: AllowedTypes::default(),
                })
            })
            .collect();
        if let Ok(key) = DecodingKey::from_ec_pem(EC256_PUB) {
            keys.push(Arc::new(Key {
                kid: Some("ec256".into()),
                alg: Algorithm::ES256,
                key,
                types: AllowedTypes::default(),
            }));
        }
        Arc::new(KeySet::new(keys))
    })
}

/// Mode 1: header and payload from the input, a valid HMAC signature.
fn signed(verifier: &Verifier, data: &[u8]) {
    let Some((&key, rest)) = data.split_first() else {
        return;
    };
    let (kid, alg, secret) = HMAC[usize::from(key % 4)];
    let (header, payload) = match rest.iter().position(|&b| b == b'\n') {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, &[][..]),
    };
    let message = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(payload)
    );
    let Ok(signature) =
        jsonwebtoken::crypto::sign(message.as_bytes(), &EncodingKey::from_secret(secret), alg)
    else {
        return;
    };
    let token = format!("{message}.{signature}");
    let result = verifier.verify(&token, key_set(), NOW);
    if names_key(header, kid, alg) && token.len() <= verifier.max_token_bytes {
        assert!(
            !matches!(
                result,
                Err(JwtError::BadSignature | JwtError::UnknownKey | JwtError::AlgorithmMismatch)
            ),
            "a token signed with the key its header names was refused: {result:?}"
        );
    }
    let _ = checked(verifier, &result);
    super::logout::logout(&token, key_set(), NOW);
}

/// Whether a header is a plain JSON object naming exactly this key: its
/// `alg`, its `kid` (or none, for the key without one), no `crit`.
fn names_key(header: &[u8], kid: Option<&str>, alg: Algorithm) -> bool {
    let Ok(Value::Object(h)) = serde_json::from_slice::<Value>(header) else {
        return false;
    };
    let alg_ok = h.get("alg").and_then(Value::as_str) == Some(alg_name(alg));
    let kid_ok = match (h.get("kid"), kid) {
        (Some(Value::String(k)), Some(want)) => k == want,
        (None | Some(Value::Null), None) => true,
        _ => false,
    };
    alg_ok && kid_ok && !h.contains_key("crit")
}

fn alg_name(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::HS384 => "HS384",
        Algorithm::HS512 => "HS512",
        _ => "HS256",
    }
}

/// The claim rules hold for a verified token.
fn checked<'a>(
    verifier: &Verifier,
    result: &'a Result<Verified, JwtError>,
) -> Option<&'a Verified> {
    let verified = result.as_ref().ok()?;
    let rules = &verifier.rules;
    let leeway = rules.leeway.as_secs();
    assert!(
        verified.exp.saturating_add(leeway) > NOW,
        "expired: {verified:?}"
    );
    let exp = verified.claims.get("exp").and_then(numeric);
    assert_eq!(exp, Some(verified.exp), "exp is not the token's own");
    if let Some(max) = rules.max_lifetime {
        assert!(verified.exp <= NOW + max.as_secs(), "lifetime past the cap");
    }
    for name in ["nbf", "iat"] {
        if let Some(t) = verified.claims.get(name) {
            let t = numeric(t);
            assert!(t.is_some_and(|t| t <= NOW + leeway), "{name} ahead: {t:?}");
        }
    }
    if !rules.issuers.is_empty() {
        let iss = verified.claims.get("iss").and_then(Value::as_str);
        assert!(iss.is_some_and(|i| rules.issuers.iter().any(|a| a == i)));
    }
    if !rules.audiences.is_empty() {
        assert!(verified.claims.contains_key("aud"), "no audience");
    }
    Some(verified)
}

/// A NumericDate as whole seconds.
fn numeric(v: &Value) -> Option<u64> {
    v.as_u64()
        .or_else(|| v.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64))
}

/// Mode 2: a JWKS document; every key it yields is bound to an algorithm
/// of its own type (one that can verify with it), never an HMAC one.
fn jwks(data: &[u8]) {
    let Ok((found, _skipped)) = keys::from_jwks(data, &AllowedTypes::default()) else {
        return;
    };
    for key in &found {
        assert!(
            !matches!(
                key.alg,
                Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512
            ),
            "a JWKS yielded an HMAC key"
        );
        assert_eq!(
            key.key.family(),
            key.alg.family(),
            "a JWKS key is bound to an algorithm of another type"
        );
    }
    let set = KeySet::new(found.into_iter().map(Arc::new));
    let token = "eyJhbGciOiJSUzI1NiJ9.eyJleHAiOjE3MDAwMDAxMDB9.c2ln";
    let _ = verifier(false).verify(token, &set, NOW);
}
