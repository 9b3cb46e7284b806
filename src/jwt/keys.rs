//! Verification keys and how a token picks one.
//!
//! One algorithm per key: the key decides, never the token. A token whose
//! header `alg` differs from its key's is rejected, which closes the
//! classic key-confusion attacks (an RSA public key used as an HMAC
//! secret, `alg: none`). Keys come from config (PEM, inline PEM, HMAC
//! secret) or from JWKS documents (`keys/jwk.rs`); both end up in one
//! immutable [`KeySet`] that the JWKS fetcher swaps atomically.
//!
//! Each key also carries the `typ` values it accepts ([`AllowedTypes`]),
//! and an RSA key must have at least 2048 bits (`MIN_RSA_BITS`): a weaker
//! static key fails the config, a weaker JWKS entry is skipped.

use super::rsa::{self, MIN_RSA_BITS};
use super::typ::AllowedTypes;
use crate::config::{EnvSource, SecretError, StaticKey};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, DecodingKeyKind};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;

mod jwk;

pub use jwk::{SkipReason, Skipped, from_jwks};

/// One key, bound to exactly one algorithm.
pub struct Key {
    pub kid: Option<String>,
    pub alg: Algorithm,
    pub key: DecodingKey,
    /// The header `typ` values a token verified by this key may carry.
    pub types: AllowedTypes,
}

impl Key {
    /// Feeds what a verification with this key depends on to `digest`,
    /// each field length-prefixed so no two keys feed the same bytes.
    fn digest_into(&self, digest: &mut Sha256) {
        let mut field = |bytes: &[u8]| {
            digest.update((bytes.len() as u64).to_le_bytes());
            digest.update(bytes);
        };
        field(self.kid.as_deref().map_or(b"\0none", str::as_bytes));
        field(format!("{:?}", self.alg).as_bytes());
        for typ in self.types.iter() {
            field(typ.as_bytes());
        }
        field(b"\0material");
        match self.key.kind() {
            DecodingKeyKind::SecretOrDer(bytes) => field(bytes),
            DecodingKeyKind::RsaModulusExponent { n, e } => {
                field(n);
                field(e);
            }
        }
    }
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Key")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("types", &self.types)
            .finish_non_exhaustive()
    }
}

/// Why a configured key could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error(
        "unknown alg `{0}` (expected one of HS256/384/512, RS256/384/512, PS256/384/512, ES256/384, EdDSA)"
    )]
    UnknownAlg(String),
    #[error("exactly one of `pem_file`, `pem` or `secret` must be set")]
    NotExactlyOneSource,
    #[error("alg {0:?} is an HMAC algorithm: use `secret`, not a PEM")]
    HmacNeedsSecret(Algorithm),
    #[error("alg {0:?} needs a public key PEM (`pem_file` or `pem`), not a secret")]
    PublicKeyNeedsPem(Algorithm),
    #[error("HMAC secret for {alg:?} must be at least {min} bytes (RFC 7518 §3.2), got {got}")]
    ShortSecret {
        alg: Algorithm,
        min: usize,
        got: usize,
    },
    #[error("cannot read {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("not a valid {alg:?} public key PEM: {reason}")]
    BadPem { alg: Algorithm, reason: String },
    #[error("RSA key has {bits} bits; at least {min} are required (RFC 7518 §3.3)")]
    WeakRsa { bits: usize, min: usize },
    #[error("secret: {0}")]
    Secret(#[from] SecretError),
}

/// Parses an algorithm name as written in config or a JWKS.
pub fn parse_alg(name: &str) -> Option<Algorithm> {
    Algorithm::from_str(name).ok()
}

/// Loads one key from the config. It accepts the `typ` values of its own
/// `allowed_types`, else `default_types` (the global `jwt.allowed_types`).
pub fn load_static(
    cfg: &StaticKey,
    default_types: &AllowedTypes,
    env: &dyn EnvSource,
) -> Result<Key, KeyError> {
    let alg = parse_alg(&cfg.alg).ok_or_else(|| KeyError::UnknownAlg(cfg.alg.clone()))?;
    let hmac = matches!(alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512);
    let key = match (&cfg.pem_file, &cfg.pem, &cfg.secret) {
        (None, None, Some(secret)) if hmac => {
            let secret = secret.resolve(env)?;
            let min = hmac_min_len(alg);
            if secret.expose().len() < min {
                return Err(KeyError::ShortSecret {
                    alg,
                    min,
                    got: secret.expose().len(),
                });
            }
            DecodingKey::from_secret(secret.expose())
        }
        (None, None, Some(_)) => return Err(KeyError::PublicKeyNeedsPem(alg)),
        (Some(_), None, None) | (None, Some(_), None) if hmac => {
            return Err(KeyError::HmacNeedsSecret(alg));
        }
        (Some(path), None, None) => {
            let pem = std::fs::read(path).map_err(|e| KeyError::Read {
                path: path.display().to_string(),
                reason: e.to_string(),
            })?;
            from_pem(alg, &pem)?
        }
        (None, Some(pem), None) => from_pem(alg, pem.as_bytes())?,
        _ => return Err(KeyError::NotExactlyOneSource),
    };
    let types = match &cfg.allowed_types {
        Some(list) => AllowedTypes::new(list),
        None => default_types.clone(),
    };
    Ok(Key {
        kid: cfg.kid.clone(),
        alg,
        key,
        types,
    })
}

fn hmac_min_len(alg: Algorithm) -> usize {
    match alg {
        Algorithm::HS384 => 48,
        Algorithm::HS512 => 64,
        _ => 32,
    }
}

fn from_pem(alg: Algorithm, pem: &[u8]) -> Result<DecodingKey, KeyError> {
    let bad = |reason: &str| KeyError::BadPem {
        alg,
        reason: reason.into(),
    };
    let (label, der) = pem_block(pem).map_err(bad)?;
    check_public_der(alg, label, &der).map_err(bad)?;
    if alg.family() == AlgorithmFamily::Rsa {
        let bits = match label {
            "RSA PUBLIC KEY" => rsa::pkcs1_modulus_bits(&der),
            _ => rsa::spki_modulus_bits(&der),
        };
        let bits = bits.ok_or_else(|| bad("not a well-formed RSA public key"))?;
        if bits < MIN_RSA_BITS {
            return Err(KeyError::WeakRsa {
                bits,
                min: MIN_RSA_BITS,
            });
        }
    }
    let result = match alg {
        Algorithm::ES256 | Algorithm::ES384 => DecodingKey::from_ec_pem(pem),
        Algorithm::EdDSA => DecodingKey::from_ed_pem(pem),
        _ => DecodingKey::from_rsa_pem(pem),
    };
    result.map_err(|e| KeyError::BadPem {
        alg,
        reason: e.to_string(),
    })
}

/// The label and DER body of the first PEM block in `pem`.
fn pem_block(pem: &[u8]) -> Result<(&str, Vec<u8>), &'static str> {
    use base64::Engine;
    let text = std::str::from_utf8(pem).map_err(|_| "not a PEM text file")?;
    let mut lines = text.lines().map(str::trim);
    let label = lines
        .find_map(|l| l.strip_prefix("-----BEGIN "))
        .and_then(|l| l.strip_suffix("-----"))
        .ok_or("no PEM `-----BEGIN ...-----` line")?;
    let body: String = lines.take_while(|l| !l.starts_with("-----END ")).collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(body)
        .map_err(|_| "PEM body is not valid base64")?;
    Ok((label, der))
}

/// Object identifiers, DER-encoded, that name each key type in a
/// SubjectPublicKeyInfo.
const OID_RSA: &[u8] = &[
    0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01,
];
const OID_P256: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const OID_P384: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22];
const OID_ED25519: &[u8] = &[0x06, 0x03, 0x2b, 0x65, 0x70];

/// Refuses a PEM that could never verify a token of `alg`: a private key
/// (ward needs only the public half, and must not hold the signing key),
/// or a public key of another type or curve. The library would accept
/// both at load time and fail every token later as `bad_signature`.
fn check_public_der(alg: Algorithm, label: &str, der: &[u8]) -> Result<(), &'static str> {
    if label.contains("PRIVATE") {
        return Err("this is a private key: configure the public key (`openssl pkey -pubout`)");
    }
    if label == "RSA PUBLIC KEY" {
        return match alg.family() {
            AlgorithmFamily::Rsa => Ok(()),
            _ => Err("an RSA key cannot verify this algorithm"),
        };
    }
    if label != "PUBLIC KEY" {
        return Err("expected a `PUBLIC KEY` PEM block");
    }
    let want = match alg {
        Algorithm::ES256 => OID_P256,
        Algorithm::ES384 => OID_P384,
        Algorithm::EdDSA => OID_ED25519,
        _ => OID_RSA,
    };
    if der.windows(want.len()).any(|w| w == want) {
        Ok(())
    } else {
        Err("the key's type or curve does not match the algorithm")
    }
}

/// Why no key could be chosen for a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyLookup {
    /// No key has the token's `kid` (or, without a `kid`, no key fits).
    Unknown,
    /// A key matched, but it is bound to another algorithm.
    AlgorithmMismatch,
}

/// An immutable set of keys, indexed for lookup by `kid`.
#[derive(Debug, Default)]
pub struct KeySet {
    by_kid: HashMap<String, Vec<Arc<Key>>>,
    without_kid: Vec<Arc<Key>>,
    total: usize,
    fingerprint: u64,
}

impl KeySet {
    pub fn new(keys: impl IntoIterator<Item = Arc<Key>>) -> Self {
        let mut set = KeySet::default();
        let mut digest = Sha256::new();
        for key in keys {
            key.digest_into(&mut digest);
            set.total += 1;
            match &key.kid {
                Some(kid) => set.by_kid.entry(kid.clone()).or_default().push(key),
                None => set.without_kid.push(key),
            }
        }
        let digest = digest.finalize();
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        set.fingerprint = u64::from_le_bytes(first);
        set
    }

    /// What every verification against this set depends on (each key's
    /// `kid`, algorithm, accepted `typ`s and material, in order), hashed:
    /// two sets with the same fingerprint verify every token alike. A JWKS
    /// refetch of an unchanged document builds a new set with the same
    /// fingerprint, so the token cache can tell "the keys changed" from
    /// "the keys were fetched again" (`cache.rs`).
    pub fn fingerprint(&self) -> u64 {
        self.fingerprint
    }

    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    pub fn len(&self) -> usize {
        self.total
    }

    /// The keys a token may be verified with. With a `kid`, only keys with
    /// that `kid`; without, the keys configured without one (or the only
    /// key, when there is exactly one). Only keys bound to `alg` qualify.
    pub fn candidates(&self, kid: Option<&str>, alg: Algorithm) -> Result<Vec<&Key>, KeyLookup> {
        let pool: Vec<&Arc<Key>> = match kid {
            Some(kid) => self
                .by_kid
                .get(kid)
                .map(|v| v.iter().collect())
                .unwrap_or_default(),
            None if !self.without_kid.is_empty() => self.without_kid.iter().collect(),
            None if self.total == 1 => self.by_kid.values().flatten().collect(),
            None => Vec::new(),
        };
        if pool.is_empty() {
            return Err(KeyLookup::Unknown);
        }
        let fit: Vec<&Key> = pool
            .into_iter()
            .filter(|k| k.alg == alg)
            .map(|k| &**k)
            .collect();
        if fit.is_empty() {
            Err(KeyLookup::AlgorithmMismatch)
        } else {
            Ok(fit)
        }
    }
}

#[cfg(test)]
mod tests;
