//! Every §2.6 rule, one row each, through [`verify`].

use super::*;
use crate::jwt::Key;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use serde_json::json;

const NOW: u64 = 1_700_000_000;
const IDP: &str = "https://idp.example/realms/shop";
const OTHER_IDP: &str = "https://other.example";
const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
const OTHER_SECRET: &[u8] = b"fedcba9876543210fedcba9876543210";

fn keyset(secret: &[u8]) -> Arc<KeySet> {
    Arc::new(KeySet::new([Arc::new(Key {
        kid: Some("k1".into()),
        alg: Algorithm::HS256,
        key: DecodingKey::from_secret(secret),
        types: AllowedTypes::default(),
    })]))
}

fn rules() -> LogoutRules {
    LogoutRules {
        client_id: "web".into(),
        leeway: Duration::from_secs(60),
        max_age: Duration::from_secs(600),
        max_token_bytes: 8192,
        types: AllowedTypes::new(&["logout+jwt"]),
    }
}

fn sign(header: &Value, claims: &Value, secret: &[u8]) -> String {
    let b64 = |v: &Value| URL_SAFE_NO_PAD.encode(v.to_string());
    let message = format!("{}.{}", b64(header), b64(claims));
    let key = EncodingKey::from_secret(secret);
    let sig = jsonwebtoken::crypto::sign(message.as_bytes(), &key, Algorithm::HS256).unwrap();
    format!("{message}.{sig}")
}

fn header() -> Value {
    json!({"alg": "HS256", "kid": "k1", "typ": "logout+jwt"})
}

fn claims() -> Value {
    json!({
        "iss": IDP, "aud": "web", "iat": NOW - 5, "exp": NOW + 120, "jti": "j-1",
        "sub": "alice", "sid": "idp-sid-1",
        "events": {LOGOUT_EVENT: {}},
    })
}

/// IDP's keys are [`SECRET`]'s; OTHER_IDP's are [`OTHER_SECRET`]'s.
fn keys(iss: &str) -> Option<Arc<KeySet>> {
    match iss {
        IDP => Some(keyset(SECRET)),
        OTHER_IDP => Some(keyset(OTHER_SECRET)),
        _ => None,
    }
}

fn run(header: &Value, claims: &Value, secret: &[u8]) -> Result<Logout, LogoutError> {
    verify(&sign(header, claims, secret), keys, &rules(), NOW)
}

/// The standard token with `edit` applied to its claims (`null` removes).
fn with(edit: Value) -> Result<Logout, LogoutError> {
    let mut c = claims();
    for (k, v) in edit.as_object().unwrap() {
        if v.is_null() {
            c.as_object_mut().unwrap().remove(k);
        } else {
            c[k] = v.clone();
        }
    }
    run(&header(), &c, SECRET)
}

#[test]
fn a_valid_token_names_the_session_and_the_replay_window() {
    let logout = with(json!({})).unwrap();
    assert_eq!(
        logout,
        Logout {
            issuer: IDP.into(),
            target: Target::Session("idp-sid-1".into()),
            jti: "j-1".into(),
            // exp (NOW + 120) comes before iat + max_age; then the leeway.
            replay_until: NOW + 120 + 60,
        }
    );
    let late_exp = with(json!({"exp": NOW + 86_400})).unwrap();
    assert_eq!(late_exp.replay_until, NOW - 5 + 600 + 60);
    assert_eq!(
        with(json!({"sid": null})).unwrap().target,
        Target::Subject("alice".into())
    );
    assert_eq!(
        with(json!({"sub": null})).unwrap().target,
        Target::Session("idp-sid-1".into())
    );
    assert!(with(json!({"aud": ["other", "web"]})).is_ok());
}

#[test]
fn the_signature_must_be_the_issuers() {
    let forged = run(&header(), &claims(), OTHER_SECRET);
    assert_eq!(forged, Err(LogoutError::Jwt(JwtError::BadSignature)));
    // Signed by another accepted provider, but claiming to be IDP.
    let mut c = claims();
    c["iss"] = OTHER_IDP.into();
    assert!(run(&header(), &c, OTHER_SECRET).is_ok());
    c["iss"] = IDP.into();
    assert_eq!(
        run(&header(), &c, OTHER_SECRET),
        Err(LogoutError::Jwt(JwtError::BadSignature))
    );
    let none = json!({"alg": "none", "typ": "logout+jwt"});
    assert_eq!(
        run(&none, &claims(), SECRET),
        Err(LogoutError::Jwt(JwtError::UnsupportedAlg))
    );
    let unknown_kid = json!({"alg": "HS256", "kid": "k2"});
    assert_eq!(
        run(&unknown_kid, &claims(), SECRET),
        Err(LogoutError::Jwt(JwtError::UnknownKey))
    );
}

#[test]
fn typ_when_present_is_logout_jwt() {
    let typed = |typ: Option<&str>| {
        let mut h = header();
        match typ {
            Some(t) => h["typ"] = t.into(),
            None => drop(h.as_object_mut().unwrap().remove("typ")),
        }
        run(&h, &claims(), SECRET).map(|_| ())
    };
    assert_eq!(typed(None), Ok(()));
    assert_eq!(typed(Some("logout+jwt")), Ok(()));
    assert_eq!(typed(Some("application/logout+JWT")), Ok(()));
    for wrong in ["JWT", "at+jwt", "secevent+jwt"] {
        assert_eq!(
            typed(Some(wrong)),
            Err(LogoutError::Jwt(JwtError::UnsupportedTyp)),
            "{wrong}"
        );
    }
    // A provider typing its logout tokens `JWT`, once configured so.
    let mut h = header();
    h["typ"] = "JWT".into();
    let lenient = LogoutRules {
        types: AllowedTypes::new(&["logout+jwt", "JWT"]),
        ..rules()
    };
    assert!(verify(&sign(&h, &claims(), SECRET), keys, &lenient, NOW).is_ok());
}

#[test]
fn every_claim_rule_of_section_2_6() {
    let jwt = LogoutError::Jwt;
    let too_long = "x".repeat(MAX_ID_BYTES + 1);
    let cases: Vec<(&str, Value, LogoutError)> = vec![
        (
            "no iss",
            json!({"iss": null}),
            jwt(JwtError::MissingClaim("iss")),
        ),
        (
            "unknown iss",
            json!({"iss": "https://evil"}),
            LogoutError::UnknownIssuer,
        ),
        (
            "iss not a string",
            json!({"iss": 7}),
            jwt(JwtError::MissingClaim("iss")),
        ),
        ("no aud", json!({"aud": null}), jwt(JwtError::WrongAudience)),
        (
            "other aud",
            json!({"aud": "api"}),
            jwt(JwtError::WrongAudience),
        ),
        (
            "no exp",
            json!({"exp": null}),
            jwt(JwtError::MissingClaim("exp")),
        ),
        ("expired", json!({"exp": NOW - 61}), jwt(JwtError::Expired)),
        ("no iat", json!({"iat": null}), LogoutError::MissingIat),
        (
            "iat ahead",
            json!({"iat": NOW + 61}),
            jwt(JwtError::NotYetValid),
        ),
        (
            "iat a string",
            json!({"iat": "1"}),
            jwt(JwtError::InvalidClaim("iat")),
        ),
        ("too old", json!({"iat": NOW - 661}), LogoutError::TooOld),
        (
            "no events",
            json!({"events": null}),
            LogoutError::NotALogoutEvent,
        ),
        (
            "events not an object",
            json!({"events": [LOGOUT_EVENT]}),
            LogoutError::NotALogoutEvent,
        ),
        (
            "other event",
            json!({"events": {"urn:other": {}}}),
            LogoutError::NotALogoutEvent,
        ),
        (
            "event not an object",
            json!({"events": {LOGOUT_EVENT: true}}),
            LogoutError::NotALogoutEvent,
        ),
        ("nonce", json!({"nonce": "n-1"}), LogoutError::Nonce),
        ("no jti", json!({"jti": null}), LogoutError::MissingJti),
        (
            "jti a number",
            json!({"jti": 1}),
            LogoutError::InvalidClaim("jti"),
        ),
        (
            "neither sid nor sub",
            json!({"sid": null, "sub": null}),
            LogoutError::NoSubject,
        ),
        (
            "empty sid",
            json!({"sid": ""}),
            LogoutError::InvalidClaim("sid"),
        ),
        (
            "sub too long",
            json!({"sid": null, "sub": too_long}),
            LogoutError::InvalidClaim("sub"),
        ),
        (
            "sid with a newline",
            json!({"sid": "a\nb"}),
            LogoutError::InvalidClaim("sid"),
        ),
    ];
    for (name, edit, want) in cases {
        assert_eq!(with(edit), Err(want), "{name}");
    }
    // Just inside the window and the leeway.
    assert!(with(json!({"iat": NOW - 660})).is_ok());
    assert!(with(json!({"iat": NOW + 60})).is_ok());
}

#[test]
fn a_malformed_or_oversized_token_is_refused_before_any_key() {
    let asked = std::cell::Cell::new(false);
    let counting = |_: &str| {
        asked.set(true);
        None
    };
    let r = verify("not.a.jwt", counting, &rules(), NOW);
    assert!(
        matches!(r, Err(LogoutError::Jwt(JwtError::Malformed(_)))),
        "{r:?}"
    );
    let big = sign(&header(), &claims(), SECRET);
    let small = LogoutRules {
        max_token_bytes: big.len() - 1,
        ..rules()
    };
    let r = verify(&big, keys, &small, NOW);
    assert_eq!(r, Err(LogoutError::Jwt(JwtError::TooLarge)));
    assert!(!asked.get());
}
