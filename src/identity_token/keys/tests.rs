use super::*;
use crate::config::Config;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED, ED25519, UnparsedPublicKey};
use std::path::Path;

/// A PEM file holding a new PKCS#8 key of `alg`.
pub(crate) fn pem_file(dir: &Path, name: &str, alg: SigningAlgorithm) -> std::path::PathBuf {
    let der = match alg {
        SigningAlgorithm::Es256 => EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
            .unwrap()
            .to_pkcs8v1()
            .unwrap(),
        _ => Ed25519KeyPair::generate().unwrap().to_pkcs8v1().unwrap(),
    };
    let body = STANDARD.encode(der.as_ref());
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    let pem = format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        lines.join("\n")
    );
    let path = dir.join(name);
    std::fs::write(&path, pem).unwrap();
    path
}

fn key_config(path: &Path, alg: SigningAlgorithm, not_before: Option<u64>) -> SigningKeyConfig {
    SigningKeyConfig {
        pem_file: path.to_path_buf(),
        algorithm: alg,
        kid: None,
        not_before,
    }
}

/// Whether `signature` over `message` verifies with the public JWK.
pub(crate) fn verifies(jwk: &Value, message: &[u8], signature: &[u8]) -> bool {
    let b64 = |m: &str| URL_SAFE_NO_PAD.decode(jwk[m].as_str().unwrap()).unwrap();
    match jwk["kty"].as_str() {
        Some("EC") => {
            let mut point = vec![4u8];
            point.extend(b64("x"));
            point.extend(b64("y"));
            UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point)
                .verify(message, signature)
                .is_ok()
        }
        _ => UnparsedPublicKey::new(&ED25519, b64("x"))
            .verify(message, signature)
            .is_ok(),
    }
}

#[test]
fn pem_and_generated_keys_sign_what_their_jwk_verifies() {
    let dir = tempfile::tempdir().unwrap();
    for alg in [
        SigningAlgorithm::Es256,
        SigningAlgorithm::Ed25519,
        SigningAlgorithm::EdDsa,
    ] {
        let path = pem_file(dir.path(), "k.pem", alg);
        for key in [
            SigningKey::load(&key_config(&path, alg, None)).unwrap(),
            SigningKey::generate(alg).unwrap(),
        ] {
            let sig = key.sign(b"message").unwrap();
            assert!(verifies(&key.jwk, b"message", &sig), "{alg:?}");
            assert!(!verifies(&key.jwk, b"other", &sig), "{alg:?}");
            assert_eq!(key.jwk["alg"], alg.as_str());
            assert_eq!(key.jwk["kid"], key.kid.as_str());
            // The kid is the RFC 7638 thumbprint: 32 bytes, base64url.
            assert_eq!(key.kid.len(), 43);
            assert!(key.jwk.get("d").is_none(), "never the private part");
            assert!(!format!("{key:?}").contains("pair"));
        }
    }
}

#[test]
fn keys_of_the_wrong_kind_or_not_pem_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ed = pem_file(dir.path(), "ed.pem", SigningAlgorithm::Ed25519);
    let es = key_config(&ed, SigningAlgorithm::Es256, None);
    assert!(matches!(
        SigningKey::load(&es),
        Err(SigningKeyError::Rejected(..))
    ));
    let junk = dir.path().join("junk.pem");
    std::fs::write(
        &junk,
        "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
    )
    .unwrap();
    let cfg = key_config(&junk, SigningAlgorithm::Es256, None);
    assert!(matches!(
        SigningKey::load(&cfg),
        Err(SigningKeyError::NotPem)
    ));
    let missing = key_config(&dir.path().join("nope"), SigningAlgorithm::Es256, None);
    assert!(matches!(
        SigningKey::load(&missing),
        Err(SigningKeyError::Read { .. })
    ));
}

fn section(keys: Vec<SigningKeyConfig>) -> IdentityTokenConfig {
    IdentityTokenConfig {
        issuer: Some("https://ward.test".into()),
        keys,
        ..Config::default().identity_token
    }
}

#[test]
fn a_scheduled_key_is_published_before_it_signs() {
    let dir = tempfile::tempdir().unwrap();
    let old = pem_file(dir.path(), "old.pem", SigningAlgorithm::Es256);
    let new = pem_file(dir.path(), "new.pem", SigningAlgorithm::Es256);
    let config = section(vec![
        key_config(&old, SigningAlgorithm::Es256, None),
        key_config(&new, SigningAlgorithm::Es256, Some(2_000)),
    ]);
    let ring = KeyRing::new(&config, 60, None, 1_000).unwrap();
    let (old_kid, new_kid) = (&ring.keys[0].key.kid, &ring.keys[1].key.kid);
    assert_eq!(&ring.signing(1_999).unwrap().kid, old_kid);
    assert_eq!(&ring.signing(2_000).unwrap().kid, new_kid);
    let jwks: Value = serde_json::from_str(&ring.jwks(1_000)).unwrap();
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert_eq!(kids, [old_kid.as_str(), new_kid.as_str()]);
    // Nothing may sign before every key's not_before: no key, no token.
    let future = section(vec![key_config(&new, SigningAlgorithm::Es256, Some(5_000))]);
    assert!(
        KeyRing::new(&future, 60, None, 1_000)
            .unwrap()
            .signing(4_999)
            .is_none()
    );
}

#[test]
fn a_reload_delays_new_keys_keeps_known_ones_and_retires_dropped_ones() {
    let dir = tempfile::tempdir().unwrap();
    let a = pem_file(dir.path(), "a.pem", SigningAlgorithm::Es256);
    let b = pem_file(dir.path(), "b.pem", SigningAlgorithm::Ed25519);
    let first = section(vec![key_config(&a, SigningAlgorithm::Es256, None)]);
    let ring = KeyRing::new(&first, 60, None, 1_000).unwrap();
    let a_serial = ring.signing(1_000).unwrap().serial;
    // b appears at 2000 with no schedule: it signs after publish_lead.
    let second = section(vec![
        key_config(&a, SigningAlgorithm::Es256, None),
        key_config(&b, SigningAlgorithm::Ed25519, None),
    ]);
    let lead = second.publish_lead.as_secs();
    let ring2 = KeyRing::new(&second, 60, Some(&ring), 2_000).unwrap();
    assert_eq!(
        ring2.signing(2_000).unwrap().serial,
        a_serial,
        "same key, same serial"
    );
    assert_eq!(ring2.signing(2_000 + lead - 1).unwrap().serial, a_serial);
    assert_eq!(
        ring2.signing(2_000 + lead).unwrap().alg,
        SigningAlgorithm::Ed25519
    );
    // a is dropped at 3000: published until every token it signed expired.
    let third = section(vec![key_config(&b, SigningAlgorithm::Ed25519, None)]);
    let ring3 = KeyRing::new(&third, 60, Some(&ring2), 3_000).unwrap();
    let count = |r: &KeyRing, now| {
        serde_json::from_str::<Value>(&r.jwks(now)).unwrap()["keys"]
            .as_array()
            .unwrap()
            .len()
    };
    assert_eq!(count(&ring3, 3_060), 2);
    assert_eq!(count(&ring3, 3_061), 1);
}

#[test]
fn a_generated_key_survives_a_reload_and_discovery_names_the_issuer() {
    let config = section(vec![]);
    let ring = KeyRing::new(&config, 60, None, 1_000).unwrap();
    let again = KeyRing::new(&config, 60, Some(&ring), 1_500).unwrap();
    assert_eq!(
        ring.signing(1_000).unwrap().serial,
        again.signing(1_500).unwrap().serial
    );
    let doc: Value = serde_json::from_str(&again.discovery()).unwrap();
    assert_eq!(doc["issuer"], "https://ward.test");
    assert_eq!(doc["jwks_uri"], "https://ward.test/.well-known/jwks.json");
    assert_eq!(doc["id_token_signing_alg_values_supported"][0], "ES256");
}
