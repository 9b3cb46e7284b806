use super::*;
use crate::config::{ProcessEnv, SecretSource};

fn cfg(alg: &str, pem_file: Option<&str>, secret: Option<&str>) -> StaticKey {
    StaticKey {
        kid: None,
        alg: alg.into(),
        pem_file: pem_file.map(Into::into),
        pem: None,
        secret: secret.map(|s| SecretSource {
            value: Some(s.into()),
            file: None,
            env: None,
        }),
        allowed_types: None,
    }
}

fn load(cfg: &StaticKey) -> Result<Key, KeyError> {
    load_static(cfg, &AllowedTypes::default(), &ProcessEnv)
}

fn jwks(doc: &[u8]) -> (Vec<Key>, Vec<Skipped>) {
    from_jwks(doc, &AllowedTypes::default()).unwrap()
}

#[test]
fn loads_each_key_family_from_pem() {
    for (alg, file) in [
        ("RS256", "rsa.pub"),
        ("PS512", "rsa.pub"),
        ("ES256", "ec256.pub"),
        ("ES384", "ec384.pub"),
        ("EdDSA", "ed25519.pub"),
    ] {
        let path = format!("tests/fixtures/keys/{file}");
        let key = load(&cfg(alg, Some(&path), None));
        assert!(key.is_ok(), "{alg}: {key:?}");
    }
}

#[test]
fn rejects_wrong_key_material() {
    let long = "s".repeat(64);
    let cases = [
        cfg("RS256", Some("tests/fixtures/keys/rsa.key"), None),
        cfg("ES256", Some("tests/fixtures/keys/ec256.key"), None),
        cfg("ES256", Some("tests/fixtures/keys/ec384.pub"), None),
        cfg("ES384", Some("tests/fixtures/keys/ec256.pub"), None),
        cfg("EdDSA", Some("tests/fixtures/keys/ec256.pub"), None),
        cfg("RS256", Some("tests/fixtures/keys/ed25519.pub"), None),
        cfg("none", Some("tests/fixtures/keys/rsa.pub"), None),
        cfg("HS256", Some("tests/fixtures/keys/rsa.pub"), None),
        cfg("RS256", None, Some(&long)),
        cfg("HS512", None, Some(&"s".repeat(63))),
        cfg("ES256", Some("tests/fixtures/keys/rsa.pub"), None),
        cfg("RS256", None, None),
    ];
    for c in cases {
        assert!(load(&c).is_err(), "{c:?} should fail");
    }
    assert!(load(&cfg("HS512", None, Some(&long))).is_ok());
}

#[test]
fn refuses_rsa_keys_under_2048_bits_in_either_pem_form() {
    for (alg, file) in [
        ("RS256", "rsa1024.pub"),
        ("PS384", "rsa1024.pub"),
        ("RS512", "rsa1024.pkcs1.pub"),
    ] {
        let path = format!("tests/fixtures/keys/{file}");
        let err = load(&cfg(alg, Some(&path), None)).unwrap_err();
        assert!(
            matches!(
                err,
                KeyError::WeakRsa {
                    bits: 1024,
                    min: 2048
                }
            ),
            "{alg} {file}: {err:?}"
        );
    }
    let mut inline = cfg("RS256", None, None);
    inline.pem = Some(std::fs::read_to_string("tests/fixtures/keys/rsa1024.pub").unwrap());
    assert!(matches!(load(&inline), Err(KeyError::WeakRsa { .. })));
    let strong = cfg("RS256", Some("tests/fixtures/keys/rsa.pkcs1.pub"), None);
    assert!(load(&strong).is_ok());
}

#[test]
fn a_key_accepts_its_own_types_else_the_default() {
    let global = AllowedTypes::new(&["JWT"]);
    let mut c = cfg("ES256", Some("tests/fixtures/keys/ec256.pub"), None);
    let key = load_static(&c, &global, &ProcessEnv).unwrap();
    assert_eq!(key.types, global);
    c.allowed_types = Some(vec!["at+jwt".into()]);
    let key = load_static(&c, &global, &ProcessEnv).unwrap();
    assert_eq!(key.types, AllowedTypes::new(&["at+jwt"]));
}

fn key(kid: Option<&str>, alg: Algorithm) -> Arc<Key> {
    Arc::new(Key {
        kid: kid.map(Into::into),
        alg,
        key: DecodingKey::from_secret(b"x"),
        types: AllowedTypes::default(),
    })
}

#[test]
fn lookup_by_kid_and_algorithm() {
    let set = KeySet::new([
        key(Some("a"), Algorithm::RS256),
        key(Some("b"), Algorithm::ES256),
    ]);
    assert_eq!(
        set.candidates(Some("a"), Algorithm::RS256).unwrap().len(),
        1
    );
    assert_eq!(
        set.candidates(Some("a"), Algorithm::HS256).unwrap_err(),
        KeyLookup::AlgorithmMismatch
    );
    assert_eq!(
        set.candidates(Some("zz"), Algorithm::RS256).unwrap_err(),
        KeyLookup::Unknown
    );
    assert_eq!(
        set.candidates(None, Algorithm::RS256).unwrap_err(),
        KeyLookup::Unknown
    );

    let single = KeySet::new([key(Some("a"), Algorithm::RS256)]);
    assert_eq!(single.candidates(None, Algorithm::RS256).unwrap().len(), 1);
    let anon = KeySet::new([
        key(None, Algorithm::ES256),
        key(Some("a"), Algorithm::RS256),
    ]);
    assert_eq!(anon.candidates(None, Algorithm::ES256).unwrap().len(), 1);
    assert_eq!(
        anon.candidates(None, Algorithm::RS256).unwrap_err(),
        KeyLookup::AlgorithmMismatch
    );
}

#[test]
fn jwks_skips_unusable_keys_and_infers_alg() {
    let doc = br#"{"keys":[
        {"kty":"EC","crv":"P-256","kid":"e1","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
        {"kty":"RSA","use":"enc","kid":"x","n":"AQAB","e":"AQAB"},
        {"kty":"RSA","alg":"RSA-OAEP","kid":"y","n":"AQAB","e":"AQAB"},
        {"kty":"weird"},
        {"kty":"oct","alg":"HS256","kid":"o","k":"c2hvcnQ"},
        {"kty":"EC","crv":"P-256","kid":"e2","key_ops":["encrypt"],"x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}
    ]}"#;
    let (keys, skipped) = jwks(doc);
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0].alg, Algorithm::ES256);
    assert_eq!(skipped.len(), 5, "{skipped:?}");
    assert!(skipped[3].detail.contains("oct"), "{skipped:?}");
    assert!(skipped[4].to_string().contains("key_ops"), "{skipped:?}");
    assert_eq!(skipped[4].kid.as_deref(), Some("e2"));
    assert!(
        skipped
            .iter()
            .all(|s| s.reason == SkipReason::Unusable && s.index > 0)
    );
    assert!(from_jwks(b"{}", &AllowedTypes::default()).is_err());
}

/// A JWK for an RSA modulus of `bytes` bytes, top bit set.
fn rsa_jwk(kid: &str, bytes: usize, leading_zero: bool) -> serde_json::Value {
    use base64::Engine;
    let mut n = if leading_zero { vec![0] } else { vec![] };
    n.push(0xc1);
    n.extend(std::iter::repeat_n(0x5a, bytes - 2));
    n.push(0x01);
    let n = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(n);
    serde_json::json!({"kty": "RSA", "kid": kid, "alg": "RS256", "n": n, "e": "AQAB"})
}

#[test]
fn jwks_skips_weak_rsa_keys_by_kid_without_key_material() {
    let doc = serde_json::json!({"keys": [
        rsa_jwk("weak", 128, false),
        rsa_jwk("almost", 255, true),
        rsa_jwk("strong", 256, true),
    ]});
    let (keys, skipped) = jwks(doc.to_string().as_bytes());
    assert_eq!(keys.len(), 1, "{skipped:?}");
    assert_eq!(keys[0].kid.as_deref(), Some("strong"));
    let weak: Vec<_> = skipped
        .iter()
        .map(|s| (s.index, s.kid.as_deref(), s.reason))
        .collect();
    assert_eq!(
        weak,
        [
            (0, Some("weak"), SkipReason::WeakRsa),
            (1, Some("almost"), SkipReason::WeakRsa),
        ]
    );
    assert!(skipped[1].detail.contains("2040 bits"), "{skipped:?}");
    assert!(!skipped[0].to_string().contains("Wl"), "no key material");
}

/// The fingerprint says whether two key sets verify alike: equal for the
/// same keys loaded twice (a refetch), different when anything a
/// verification depends on differs.
#[test]
fn the_fingerprint_changes_with_anything_a_verification_depends_on() {
    let secret_a = "0123456789abcdef0123456789abcdef";
    let secret_b = "0123456789abcdef0123456789abcdeF";
    let key = |kid: Option<&str>, secret: &str, types: Option<&[&str]>| {
        let mut c = cfg("HS256", None, Some(secret));
        c.kid = kid.map(Into::into);
        c.allowed_types = types.map(|t| t.iter().map(|s| s.to_string()).collect());
        Arc::new(load(&c).unwrap())
    };
    let set = |keys: Vec<Arc<Key>>| KeySet::new(keys).fingerprint();
    let base = set(vec![key(Some("a"), secret_a, None)]);
    assert_eq!(
        base,
        set(vec![key(Some("a"), secret_a, None)]),
        "loaded again"
    );
    for (what, other) in [
        ("kid", set(vec![key(Some("b"), secret_a, None)])),
        ("no kid", set(vec![key(None, secret_a, None)])),
        ("material", set(vec![key(Some("a"), secret_b, None)])),
        ("typ", set(vec![key(Some("a"), secret_a, Some(&["JWT"]))])),
        (
            "a key added",
            set(vec![
                key(Some("a"), secret_a, None),
                key(Some("b"), secret_b, None),
            ]),
        ),
        ("no keys", set(vec![])),
    ] {
        assert_ne!(base, other, "{what}");
    }
    let mut alg = cfg("HS384", None, Some(&format!("{secret_a}{secret_a}")));
    alg.kid = Some("a".into());
    let mut same_bytes = cfg("HS256", None, Some(&format!("{secret_a}{secret_a}")));
    same_bytes.kid = Some("a".into());
    assert_ne!(
        set(vec![Arc::new(load(&alg).unwrap())]),
        set(vec![Arc::new(load(&same_bytes).unwrap())]),
        "alg"
    );
}
