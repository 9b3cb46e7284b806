use super::*;
use crate::config::Config;

fn formats(yaml: &str) -> OpaqueFormats {
    let config = Config::from_yaml(yaml).unwrap();
    OpaqueFormats::from_config(&config.introspection)
}

#[test]
fn only_tokens_that_are_no_jwt_and_match_a_format_are_opaque() {
    let f = formats(
        r#"
introspection:
  providers:
    - {endpoint: "https://a.test/i", client_id: w, client_secret: {value: s}, prefix: "at_", min_length: 8}
    - {endpoint: "https://b.test/i", client_id: w, client_secret: {value: s}, min_length: 20, max_length: 64}
"#,
    );
    let long = "x".repeat(30);
    let cases: &[(&str, Option<usize>)] = &[
        ("at_0123456789", Some(0)),
        ("at_0123456789==", Some(0)),
        (&long, Some(1)),
        ("at_short", Some(0)),
        ("shorter_than_twenty", None),
        ("aaaaaaaaaa.bbbbbbbbbbbb.cccccccccccc", None),
        ("aaaaaaaaaa.bbbbbbbbbbbbcccccccccccc", Some(1)),
        ("at_with=inside_012345", None),
        ("at_with\"quote_0123456", None),
        ("==================================", None),
    ];
    for (token, want) in cases {
        assert_eq!(f.provider_for(token), *want, "{token}");
    }
    assert_eq!(OpaqueFormats::default().provider_for("at_0123456789"), None);
}

const NOW: u64 = 1_800_000_000;

fn rules() -> AnswerRules {
    AnswerRules {
        issuer: Some("https://idp.test".into()),
        audiences: vec![],
        leeway: 5,
    }
}

fn read(body: &str) -> Result<Active, IntrospectionError> {
    read_answer(body.as_bytes(), &rules(), NOW)
}

#[test]
fn an_active_answer_becomes_claims_with_its_exp() {
    let a = read(&format!(
        r#"{{"active":true,"sub":"alice","scope":"read write","exp":{},"iss":"https://idp.test","token_type":"Bearer"}}"#,
        NOW + 60
    ))
    .unwrap();
    assert_eq!(a.exp, Some(NOW + 60));
    assert_eq!(a.claims["sub"], "alice");
    assert_eq!(a.claims["scope"], "read write");
    // A client's own token (client credentials) has no `sub`: its client is the caller.
    let a = read(r#"{"active":true,"client_id":"orders"}"#).unwrap();
    assert_eq!(a.claims["sub"], "orders");
    assert_eq!(a.exp, None);
}

#[test]
fn every_refusal_has_its_reason() {
    use IntrospectionError::*;
    let cases: &[(String, IntrospectionError)] = &[
        (r#"{"active":false}"#.into(), Inactive),
        (r#"{"active":"true"}"#.into(), NotAnAnswer),
        (r#"{"sub":"a"}"#.into(), NotAnAnswer),
        ("not json".into(), NotAnAnswer),
        (r#"{"active":true,"active":true}"#.into(), NotAnAnswer),
        (format!(r#"{{"active":true,"exp":{}}}"#, NOW - 10), Expired),
        (
            format!(r#"{{"active":true,"nbf":{}}}"#, NOW + 60),
            NotYetValid,
        ),
        (r#"{"active":true,"exp":"soon"}"#.into(), BadMember("exp")),
        (
            r#"{"active":true,"iss":"https://other.test"}"#.into(),
            WrongIssuer,
        ),
        (
            r#"{"active":true,"token_type":"refresh_token"}"#.into(),
            WrongTokenType,
        ),
    ];
    for (body, want) in cases {
        assert_eq!(read(body).unwrap_err(), *want, "{body}");
    }
    assert_eq!(Inactive.reason(), Some(Reason::InactiveToken));
    assert_eq!(NotAnAnswer.reason(), None);
    // Within the leeway, an answer just past its exp still counts.
    assert!(read(&format!(r#"{{"active":true,"exp":{}}}"#, NOW - 2)).is_ok());
}

#[test]
fn audiences_are_checked_only_when_configured() {
    let body = br#"{"active":true,"aud":["api","other"]}"#;
    let mut r = rules();
    assert!(read_answer(body, &r, NOW).is_ok());
    r.audiences = vec!["api".into()];
    assert!(read_answer(body, &r, NOW).is_ok());
    r.audiences = vec!["billing".into()];
    assert_eq!(
        read_answer(body, &r, NOW).unwrap_err(),
        IntrospectionError::WrongAudience
    );
    assert_eq!(
        read_answer(br#"{"active":true}"#, &r, NOW).unwrap_err(),
        IntrospectionError::WrongAudience
    );
}
