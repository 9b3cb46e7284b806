//! The keys identity tokens are signed with, and their schedule: which
//! key signs at a given instant, which are published in the JWKS.
//!
//! Rotation is a schedule, not an event, so every replica reading the
//! same Secret agrees: a key signs from its `not_before` (unix seconds)
//! and is published as long as it is configured. A key that appears in
//! a reload signs no sooner than `publish_lead` after this process first
//! saw it (backends' JWKS caches must learn it first); a key that
//! disappears in a reload stays published for the longest token lifetime,
//! so the tokens it signed verify until they expire.

use crate::config::{IdentityTokenConfig, SigningAlgorithm, SigningKeyConfig};
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair,
};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Why a signing key could not be used.
#[derive(Debug, thiserror::Error)]
pub enum SigningKeyError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("not a PEM private key (`PRIVATE KEY` or `EC PRIVATE KEY`)")]
    NotPem,
    #[error("not a {0} private key: {1}")]
    Rejected(&'static str, String),
    #[error("the key could not sign")]
    Sign,
}

/// The two kinds of key pair ward signs with.
enum Pair {
    Ec(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
}

/// One signing key: its `kid`, algorithm, public JWK and the private half.
pub struct SigningKey {
    pub kid: String,
    pub alg: SigningAlgorithm,
    /// Unique in this process: what a kept token names its key by.
    pub serial: u64,
    /// The public key as a JWK, `kid`, `alg` and `use` included.
    pub jwk: Value,
    pair: Pair,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The private half is never printed.
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

static SERIAL: AtomicU64 = AtomicU64::new(1);

impl SigningKey {
    /// The key in `config.pem_file`.
    pub fn load(config: &SigningKeyConfig) -> Result<SigningKey, SigningKeyError> {
        let text =
            std::fs::read_to_string(&config.pem_file).map_err(|source| SigningKeyError::Read {
                path: config.pem_file.display().to_string(),
                source,
            })?;
        let der = pem_der(&text).ok_or(SigningKeyError::NotPem)?;
        let pair = match config.algorithm {
            SigningAlgorithm::Es256 => {
                EcdsaKeyPair::from_private_key_der(&ECDSA_P256_SHA256_FIXED_SIGNING, &der)
                    .map(Pair::Ec)
                    .map_err(|e| SigningKeyError::Rejected("P-256", e.to_string()))?
            }
            SigningAlgorithm::Ed25519 | SigningAlgorithm::EdDsa => {
                Ed25519KeyPair::from_pkcs8_maybe_unchecked(&der)
                    .map(Pair::Ed)
                    .map_err(|e| SigningKeyError::Rejected("Ed25519", e.to_string()))?
            }
        };
        Ok(Self::new(pair, config.algorithm, config.kid.clone()))
    }

    /// A new key, for a single replica that has no Secret.
    pub fn generate(alg: SigningAlgorithm) -> Result<SigningKey, SigningKeyError> {
        let pair = match alg {
            SigningAlgorithm::Es256 => EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
                .map(Pair::Ec)
                .map_err(|_| SigningKeyError::Sign)?,
            SigningAlgorithm::Ed25519 | SigningAlgorithm::EdDsa => Ed25519KeyPair::generate()
                .map(Pair::Ed)
                .map_err(|_| SigningKeyError::Sign)?,
        };
        Ok(Self::new(pair, alg, None))
    }

    fn new(pair: Pair, alg: SigningAlgorithm, kid: Option<String>) -> SigningKey {
        let public = public_jwk(&pair);
        let kid = kid.unwrap_or_else(|| thumbprint(&public));
        let mut jwk = public;
        jwk["kid"] = kid.clone().into();
        jwk["alg"] = alg.as_str().into();
        jwk["use"] = "sig".into();
        SigningKey {
            kid,
            alg,
            serial: SERIAL.fetch_add(1, Ordering::Relaxed),
            jwk,
            pair,
        }
    }

    /// The JWS signature of `message` (ES256: `r || s`, 64 bytes).
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SigningKeyError> {
        match &self.pair {
            Pair::Ec(pair) => pair
                .sign(&aws_lc_rs::rand::SystemRandom::new(), message)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| SigningKeyError::Sign),
            Pair::Ed(pair) => Ok(pair.sign(message).as_ref().to_vec()),
        }
    }
}

/// The DER inside the first PEM block of `text`.
fn pem_der(text: &str) -> Option<Vec<u8>> {
    let start = text.find("-----BEGIN ")?;
    let rest = &text[start..];
    let body_start = rest.find('\n')? + 1;
    let body_end = rest.find("-----END ")?;
    let label = &rest[..body_start];
    if !(label.contains("BEGIN PRIVATE KEY") || label.contains("BEGIN EC PRIVATE KEY")) {
        return None;
    }
    let body: String = rest
        .get(body_start..body_end)?
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    STANDARD.decode(body).ok()
}

/// The public JWK members RFC 7638 hashes, for each key type.
fn public_jwk(pair: &Pair) -> Value {
    match pair {
        Pair::Ec(pair) => {
            // Uncompressed point: 0x04 || x || y, 32 bytes each.
            let xy = pair.public_key().as_ref().get(1..).unwrap_or_default();
            let (x, y) = xy.split_at(xy.len() / 2);
            json!({"crv": "P-256", "kty": "EC", "x": URL_SAFE_NO_PAD.encode(x), "y": URL_SAFE_NO_PAD.encode(y)})
        }
        Pair::Ed(pair) => {
            let x = URL_SAFE_NO_PAD.encode(pair.public_key().as_ref());
            json!({"crv": "Ed25519", "kty": "OKP", "x": x})
        }
    }
}

/// RFC 7638: SHA-256 of the required members in lexicographic order
/// (serde_json's map is ordered), base64url.
fn thumbprint(public: &Value) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(public.to_string().as_bytes()))
}

/// A key and the instant it may start signing.
#[derive(Debug, Clone)]
struct Scheduled {
    key: Arc<SigningKey>,
    sign_from: u64,
}

/// Every key of one config: the signing schedule and what is published.
#[derive(Debug)]
pub struct KeyRing {
    pub issuer: String,
    /// By `sign_from`, then config order.
    keys: Vec<Scheduled>,
    /// Keys a reload removed, published until the instant given.
    retired: Vec<(Arc<SigningKey>, u64)>,
    /// The longest token lifetime of this config (seconds).
    max_ttl: u64,
    /// Whether a key was generated rather than configured.
    generated: bool,
}

impl KeyRing {
    /// The keys `config` names (or one generated), at `now`. `previous`
    /// is the ring of the config before a reload: keys it had keep their
    /// schedule (and serial, so tokens signed with them stay in use); new
    /// keys wait `publish_lead`; dropped ones stay published for its
    /// longest token lifetime.
    pub fn new(
        config: &IdentityTokenConfig,
        max_ttl: u64,
        previous: Option<&KeyRing>,
        now: u64,
    ) -> Result<KeyRing, SigningKeyError> {
        let lead = config.publish_lead.as_secs();
        let mut keys = Vec::new();
        for key in &config.keys {
            let loaded = SigningKey::load(key)?;
            let known = previous.and_then(|p| p.find(&loaded));
            keys.push(match (known, previous) {
                (Some(known), _) => known,
                (None, Some(_)) => Scheduled {
                    key: Arc::new(loaded),
                    sign_from: key.not_before.unwrap_or(0).max(now + lead),
                },
                (None, None) => Scheduled {
                    key: Arc::new(loaded),
                    sign_from: key.not_before.unwrap_or(0),
                },
            });
        }
        let generated = keys.is_empty();
        if generated {
            let kept = previous
                .filter(|p| p.generated)
                .and_then(|p| p.keys.first())
                .filter(|k| k.key.alg == config.generate);
            keys.push(match kept {
                Some(k) => k.clone(),
                None => Scheduled {
                    key: Arc::new(SigningKey::generate(config.generate)?),
                    sign_from: 0,
                },
            });
        }
        keys.sort_by_key(|k| k.sign_from);
        let retired = previous.map_or_else(Vec::new, |p| p.retire(&keys, now));
        Ok(KeyRing {
            issuer: config.issuer.clone().unwrap_or_default(),
            keys,
            retired,
            max_ttl,
            generated,
        })
    }

    /// `loaded`'s entry in this ring, if it has the same kid and key.
    fn find(&self, loaded: &SigningKey) -> Option<Scheduled> {
        self.keys
            .iter()
            .find(|k| k.key.kid == loaded.kid && k.key.jwk == loaded.jwk)
            .cloned()
    }

    /// What a ring replacing this one must keep publishing: this ring's
    /// keys it lacks, until every token they may have signed expired.
    fn retire(&self, kept: &[Scheduled], now: u64) -> Vec<(Arc<SigningKey>, u64)> {
        let gone = self
            .keys
            .iter()
            .filter(|k| !kept.iter().any(|n| Arc::ptr_eq(&n.key, &k.key)))
            .map(|k| (k.key.clone(), now + self.max_ttl + 1));
        let still = self
            .retired
            .iter()
            .filter(|(_, until)| *until > now)
            .cloned();
        gone.chain(still).collect()
    }

    /// The key that signs at `now`: the last whose `sign_from` has come.
    pub fn signing(&self, now: u64) -> Option<&Arc<SigningKey>> {
        self.keys
            .iter()
            .rev()
            .find(|k| k.sign_from <= now)
            .map(|k| &k.key)
    }

    /// The JWKS document at `now`: every configured key (those not yet
    /// signing included) and the retired ones still needed.
    pub fn jwks(&self, now: u64) -> String {
        let keys: Vec<&Value> = self
            .keys
            .iter()
            .map(|k| &k.key.jwk)
            .chain(
                self.retired
                    .iter()
                    .filter(|(_, u)| *u > now)
                    .map(|(k, _)| &k.jwk),
            )
            .collect();
        json!({ "keys": keys }).to_string()
    }

    /// The OpenID discovery document: its `issuer` is the configured one,
    /// its `jwks_uri` under it.
    pub fn discovery(&self) -> String {
        let mut algs: Vec<&str> = self.keys.iter().map(|k| k.key.alg.as_str()).collect();
        algs.sort_unstable();
        algs.dedup();
        json!({
            "issuer": self.issuer,
            "jwks_uri": format!("{}/.well-known/jwks.json", self.issuer),
            "id_token_signing_alg_values_supported": algs,
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
        })
        .to_string()
    }
}

#[cfg(test)]
pub(crate) mod tests;
