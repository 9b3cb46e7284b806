//! JWKS documents to keys: each entry becomes a [`Key`] bound to one
//! algorithm (its `alg`, checked against its type and curve, or inferred
//! from them), or is skipped with a reason (an encryption key, an unknown
//! type, an RSA key under 2048 bits) rather than failing the document.

use super::Key;
use crate::jwt::rsa::{self, MIN_RSA_BITS};
use crate::jwt::typ::AllowedTypes;
use jsonwebtoken::jwk::{
    AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, KeyOperations, PublicKeyUse,
};
use jsonwebtoken::{Algorithm, DecodingKey};

/// Why a JWKS entry was skipped: a closed set, a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    /// An RSA key under 2048 bits (`MIN_RSA_BITS`).
    WeakRsa,
    /// Not a signature-verification key ward can use (`use: enc`, an
    /// encryption algorithm, `oct`, an unknown type or curve, bad JSON).
    Unusable,
}

impl SkipReason {
    pub const ALL: [SkipReason; 2] = [SkipReason::WeakRsa, SkipReason::Unusable];

    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::WeakRsa => "weak_rsa",
            SkipReason::Unusable => "unusable",
        }
    }
}

/// A JWKS entry that was not loaded, and why. Never holds key material.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// Position in the document's `keys` array.
    pub index: usize,
    /// The entry's `kid`, when it has a string one.
    pub kid: Option<String>,
    pub reason: SkipReason,
    pub detail: String,
}

impl std::fmt::Display for Skipped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "keys[{}]", self.index)?;
        if let Some(kid) = &self.kid {
            write!(f, " (kid {kid:?})")?;
        }
        write!(f, ": {}", self.detail)
    }
}

/// Reads a JWKS document. Keys that cannot be used for signature
/// verification (`use: enc`, unknown types, encryption algorithms) are
/// skipped, not fatal: an identity provider may publish them alongside.
/// So are RSA keys that are too weak to trust. Returns the usable keys,
/// each accepting the `typ` values `types`, and the skipped entries.
pub fn from_jwks(
    json: &[u8],
    types: &AllowedTypes,
) -> Result<(Vec<Key>, Vec<Skipped>), serde_json::Error> {
    #[derive(serde::Deserialize)]
    struct Doc {
        keys: Vec<serde_json::Value>,
    }
    let doc: Doc = serde_json::from_slice(json)?;
    let mut keys = Vec::new();
    let mut skipped = Vec::new();
    for (index, value) in doc.keys.into_iter().enumerate() {
        let kid = value.get("kid").and_then(|k| k.as_str()).map(String::from);
        match jwk_to_key(value, types) {
            Ok(key) => keys.push(key),
            Err((reason, detail)) => skipped.push(Skipped {
                index,
                kid,
                reason,
                detail,
            }),
        }
    }
    Ok((keys, skipped))
}

fn jwk_to_key(value: serde_json::Value, types: &AllowedTypes) -> Result<Key, (SkipReason, String)> {
    let unusable = |why: String| (SkipReason::Unusable, why);
    let jwk: Jwk = serde_json::from_value(value).map_err(|e| unusable(e.to_string()))?;
    if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
        return Err(unusable("use is enc".into()));
    }
    if let Some(ops) = &jwk.common.key_operations {
        // RFC 7517 §4.3: a key whose `key_ops` leaves out `verify` is not
        // meant for checking signatures.
        if !ops.iter().any(|op| matches!(op, KeyOperations::Verify)) {
            return Err(unusable("key_ops does not include verify".into()));
        }
    }
    if matches!(jwk.algorithm, AlgorithmParameters::OctetKey(_)) {
        // A JWKS is published; a symmetric key in it is a shared secret
        // anyone can read. HMAC keys belong in `jwt.keys` as secrets.
        return Err(unusable(
            "symmetric (`oct`) keys are never taken from a JWKS".into(),
        ));
    }
    let alg = match &jwk.common.key_algorithm {
        Some(a) => signing_alg(a)
            .ok_or_else(|| unusable(format!("alg {a:?} is not a signature algorithm")))?,
        None => infer_alg(&jwk.algorithm).map_err(unusable)?,
    };
    if !alg_fits_key(alg, &jwk.algorithm) {
        // A key that can never verify under its `alg` (an Ed25519 key
        // marked HS256 or RS256, a P-256 key marked ES384) would deny
        // every token naming it as `bad_signature`: not a key at all.
        return Err(unusable(format!("alg {alg:?} does not fit the key type")));
    }
    if let AlgorithmParameters::RSA(params) = &jwk.algorithm {
        let bits = rsa::jwk_modulus_bits(&params.n)
            .ok_or_else(|| unusable("RSA `n` is not base64url".into()))?;
        if bits < MIN_RSA_BITS {
            let why = format!("RSA key has {bits} bits; at least {MIN_RSA_BITS} are required");
            return Err((SkipReason::WeakRsa, why));
        }
    }
    let key = DecodingKey::from_jwk(&jwk).map_err(|e| unusable(e.to_string()))?;
    Ok(Key {
        kid: jwk.common.key_id.clone(),
        alg,
        key,
        types: types.clone(),
    })
}

/// Whether a key of this type can verify signatures of `alg`.
fn alg_fits_key(alg: Algorithm, params: &AlgorithmParameters) -> bool {
    use Algorithm::*;
    match params {
        AlgorithmParameters::RSA(_) => {
            matches!(alg, RS256 | RS384 | RS512 | PS256 | PS384 | PS512)
        }
        AlgorithmParameters::EllipticCurve(ec) => matches!(
            (&ec.curve, alg),
            (EllipticCurve::P256, ES256) | (EllipticCurve::P384, ES384)
        ),
        AlgorithmParameters::OctetKeyPair(okp) => {
            okp.curve == EllipticCurve::Ed25519 && alg == EdDSA
        }
        // `oct` (refused before this), and types the library may add.
        _ => false,
    }
}

fn signing_alg(alg: &KeyAlgorithm) -> Option<Algorithm> {
    Algorithm::try_from(*alg).ok()
}

/// A JWK without `alg`: the key type decides. RSA keys default to RS256,
/// the algorithm OpenID Connect requires every provider to support.
fn infer_alg(params: &AlgorithmParameters) -> Result<Algorithm, String> {
    match params {
        AlgorithmParameters::RSA(_) => Ok(Algorithm::RS256),
        AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
            EllipticCurve::P256 => Ok(Algorithm::ES256),
            EllipticCurve::P384 => Ok(Algorithm::ES384),
            ref c => Err(format!("unsupported curve {c:?}")),
        },
        AlgorithmParameters::OctetKeyPair(okp) if okp.curve == EllipticCurve::Ed25519 => {
            Ok(Algorithm::EdDSA)
        }
        _ => Err("no alg and the key type does not imply one".into()),
    }
}
