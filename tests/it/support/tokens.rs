//! Minting test tokens with the fixture keys in `tests/fixtures/keys`.
//!
//! Tokens are signed with `jsonwebtoken` (the test's own signer) and the
//! private keys that match the public keys ward is configured with.

use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

/// The long HMAC secret used in test configs (64 bytes: enough for HS512).
pub const HMAC_SECRET: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// Unix seconds now.
pub fn now() -> u64 {
    ward::unix_now()
}

/// The private key file for an algorithm family.
pub fn private_key_file(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::ES256 => "ec256.key",
        Algorithm::ES384 => "ec384.key",
        Algorithm::EdDSA => "ed25519.key",
        _ => "rsa.key",
    }
}

/// The public key file ward verifies `alg` with.
pub fn public_key_file(alg: Algorithm) -> String {
    let name = private_key_file(alg).replace(".key", ".pub");
    format!("tests/fixtures/keys/{name}")
}

pub fn encoding_key(alg: Algorithm) -> EncodingKey {
    let pem = |f: &str| std::fs::read(format!("tests/fixtures/keys/{f}")).unwrap();
    match alg {
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => {
            EncodingKey::from_secret(HMAC_SECRET.as_bytes())
        }
        Algorithm::ES256 | Algorithm::ES384 => {
            EncodingKey::from_ec_pem(&pem(private_key_file(alg))).unwrap()
        }
        Algorithm::EdDSA => EncodingKey::from_ed_pem(&pem(private_key_file(alg))).unwrap(),
        _ => EncodingKey::from_rsa_pem(&pem(private_key_file(alg))).unwrap(),
    }
}

/// A token for `claims`, signed with the fixture key for `alg`.
pub fn sign(alg: Algorithm, kid: Option<&str>, claims: &Value) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_string);
    jsonwebtoken::encode(&header, claims, &encoding_key(alg)).unwrap()
}

/// Standard valid claims for user `sub`, expiring in an hour.
pub fn claims(sub: &str) -> Value {
    let now = now();
    json!({
        "sub": sub,
        "iss": "https://idp.test",
        "aud": "api",
        "iat": now,
        "exp": now + 3600,
        "email": format!("{sub}@example.com"),
        "roles": ["reader"],
    })
}

/// The public JWK for the fixture key of `alg`, with `kid`.
pub fn jwk(alg: Algorithm, kid: &str) -> Value {
    let mut jwk = Jwk::from_encoding_key(&encoding_key(alg), alg).unwrap();
    jwk.common.key_id = Some(kid.to_string());
    serde_json::to_value(jwk).unwrap()
}

/// Base64url without padding, for hand-built tokens.
pub fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}
