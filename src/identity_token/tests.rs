use super::*;
use crate::credential_kind::CredentialKind;
use crate::identity::IdentityParts;
use serde_json::Value;

const CONFIG: &str = r#"
identity_token: {issuer: "https://ward.test"}
policies:
  orders: {identity_token: {audience: orders, ttl: 60s}}
  billing: {identity_token: {audience: billing, ttl: 30s, header: x-billing-identity}}
"#;

fn setup() -> (Config, Profile, Profile, KeyRing) {
    let config = Config::from_yaml(CONFIG).unwrap();
    let orders = Profile::new(
        config.policies["orders"].identity_token.as_ref().unwrap(),
        &config,
    );
    let billing = Profile::new(
        config.policies["billing"].identity_token.as_ref().unwrap(),
        &config,
    );
    let ring = KeyRing::new(&config.identity_token, max_ttl(&config), None, 0).unwrap();
    (config, orders, billing, ring)
}

fn identity(expires_at: Option<u64>) -> Identity {
    Identity::from(IdentityParts {
        user_id: "alice".into(),
        method: CredentialKind::Session,
        headers: vec![],
        jti: None,
        session_id: Some("s-1".into()),
        roles: vec!["admin".into(), "dev".into()],
        scopes: vec!["read".into(), "write".into()],
    })
    .with_expiry(expires_at)
}

/// The token's header and claims, after checking its signature with the
/// ring's published key of its `kid`.
fn verified(ring: &KeyRing, token: &str) -> (Value, Value) {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3);
    let json =
        |p: &str| -> Value { serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p).unwrap()).unwrap() };
    let (header, claims) = (json(parts[0]), json(parts[1]));
    let jwks: Value = serde_json::from_str(&ring.jwks(0)).unwrap();
    let jwk = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == header["kid"])
        .unwrap();
    let signature = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
    let signed = format!("{}.{}", parts[0], parts[1]);
    assert!(keys::tests::verifies(jwk, signed.as_bytes(), &signature));
    (header, claims)
}

#[test]
fn a_token_carries_who_how_for_whom_and_never_the_credential() {
    let (_, orders, _, ring) = setup();
    let id = identity(None);
    let credential = crate::credentials::hash_credential("the-session-id");
    let signed = sign(&id, &orders, &ring, &credential, 1_000).unwrap();
    let (header, claims) = verified(&ring, &signed.token);
    assert_eq!(header["alg"], "ES256");
    assert_eq!(header["typ"], "JWT");
    assert_eq!(claims["iss"], "https://ward.test");
    assert_eq!(claims["aud"], "orders");
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["auth_method"], "session");
    assert_eq!(claims["roles"], serde_json::json!(["admin", "dev"]));
    assert_eq!(claims["scope"], "read write");
    assert_eq!(
        (claims["iat"].as_u64(), claims["exp"].as_u64()),
        (Some(1_000), Some(1_060))
    );
    assert_eq!(claims["cid"], hex::encode(&credential[..16]));
    assert!(!signed.token.contains("the-session-id"));
    let other = sign(&id, &orders, &ring, &credential, 1_000).unwrap();
    assert_ne!(verified(&ring, &other.token).1["jti"], claims["jti"]);
}

#[test]
fn a_token_never_outlives_its_credential() {
    let (_, orders, _, ring) = setup();
    let hash = [7u8; 32];
    let signed = sign(&identity(Some(1_020)), &orders, &ring, &hash, 1_000).unwrap();
    assert_eq!(signed.exp, 1_020);
    assert!(matches!(
        sign(&identity(Some(1_000)), &orders, &ring, &hash, 1_000),
        Err(TokenError::Expired)
    ));
}

#[test]
fn a_kept_token_is_reused_until_a_third_of_its_life_is_left_then_refreshed_once() {
    let (_, orders, billing, ring) = setup();
    let id = identity(None);
    let hash = [1u8; 32];
    assert!(matches!(kept(&id, &orders, &ring, 1_000), Kept::Missing));
    let first = sign_and_keep(&id, &orders, &ring, &hash, 1_000).unwrap();
    // Each profile has its own slot.
    assert!(matches!(kept(&id, &billing, &ring, 1_000), Kept::Missing));
    sign_and_keep(&id, &billing, &ring, &hash, 1_000).unwrap();
    for now in [1_000, 1_039] {
        match kept(&id, &orders, &ring, now) {
            Kept::Fresh(t) => assert!(Arc::ptr_eq(&t, &first)),
            other => panic!("{other:?} at {now}"),
        }
    }
    // 20 s of 60 left: one caller queues a re-sign, the others keep sending.
    assert!(matches!(kept(&id, &orders, &ring, 1_041), Kept::Refresh(_)));
    assert!(matches!(kept(&id, &orders, &ring, 1_041), Kept::Fresh(_)));
    let second = sign_and_keep(&id, &orders, &ring, &hash, 1_041).unwrap();
    match kept(&id, &orders, &ring, 1_042) {
        Kept::Fresh(t) => assert!(Arc::ptr_eq(&t, &second)),
        other => panic!("{other:?}"),
    }
    // Past its exp, a kept token is never sent.
    assert!(matches!(kept(&id, &orders, &ring, 1_101), Kept::Missing));
}

#[test]
fn no_refresh_that_would_not_live_longer() {
    let (_, orders, _, ring) = setup();
    // The credential ends at 1 030: the token cannot outlive it, so a
    // re-sign near the end would gain nothing.
    let id = identity(Some(1_030));
    sign_and_keep(&id, &orders, &ring, &[0; 32], 1_000).unwrap();
    assert!(matches!(kept(&id, &orders, &ring, 1_025), Kept::Fresh(_)));
}

#[test]
fn a_token_is_reused_only_under_the_profile_and_issuer_it_was_signed_for() {
    let (_, orders, _, ring) = setup();
    let id = identity(None);
    sign_and_keep(&id, &orders, &ring, &[0; 32], 1_000).unwrap();
    let other_issuer = Config::from_yaml(&CONFIG.replace("ward.test", "ward.other")).unwrap();
    let moved = Profile::new(
        other_issuer.policies["orders"]
            .identity_token
            .as_ref()
            .unwrap(),
        &other_issuer,
    );
    assert_ne!(moved.id, orders.id);
    assert!(matches!(kept(&id, &moved, &ring, 1_001), Kept::Missing));
}

#[test]
fn a_newer_signing_key_refreshes_a_kept_token() {
    let (config, orders, _, ring) = setup();
    let id = identity(None);
    sign_and_keep(&id, &orders, &ring, &[0; 32], 1_000).unwrap();
    // A config change that brings a new (generated) key.
    let mut changed = config.identity_token.clone();
    changed.generate = crate::config::SigningAlgorithm::Ed25519;
    let ring2 = KeyRing::new(&changed, 60, Some(&ring), 1_001).unwrap();
    assert!(matches!(
        kept(&id, &orders, &ring2, 1_001),
        Kept::Refresh(_)
    ));
    let resigned = sign_and_keep(&id, &orders, &ring2, &[0; 32], 1_001).unwrap();
    let (header, _) = verified(&ring2, &resigned.token);
    assert_eq!(header["alg"], "Ed25519");
    // The old key stays published for the tokens it signed.
    assert_eq!(
        serde_json::from_str::<Value>(&ring2.jwks(1_001)).unwrap()["keys"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}
