use super::*;

#[test]
fn short_hash_is_stable_and_short() {
    let h = hash_credential("secret-token");
    assert_eq!(short_hash(&h).len(), 12);
    assert_eq!(short_hash(&h), short_hash(&hash_credential("secret-token")));
    assert!(!short_hash(&h).contains("secret"));
}
use crate::introspection::OpaqueFormats;
use crate::request::Headers;

fn extractor() -> Extractor {
    Extractor {
        jwt_header: Some("authorization".into()),
        jwt_query: None,
        session: Some(("session_id".into(), "x-session-id".into())),
        api_key: Some(("x-api-key".into(), "ApiKey".into())),
        opaque: OpaqueFormats::default(),
    }
}

fn extract(ex: &Extractor, pairs: &[(&str, &str)]) -> Result<String, Reason> {
    extract_at(ex, "/", pairs)
}

fn extract_at(ex: &Extractor, path: &str, pairs: &[(&str, &str)]) -> Result<String, Reason> {
    let req = Request {
        method: "GET",
        host: "h",
        path,
        headers: Headers::new(pairs),
        policy: None,
        source_ip: None,
        principal: None,
    };
    ex.extract(&req, &mut String::new()).map(|c| match c {
        Credential::Bearer(t) => format!("jwt:{t}"),
        Credential::Session(s) => format!("session:{s}"),
        Credential::ApiKey(k) => format!("apikey:{k}"),
        Credential::Opaque(t) => format!("opaque:{t}"),
    })
}

#[test]
fn table() {
    use Reason::*;
    type Case<'a> = (&'a [(&'a str, &'a str)], Result<&'a str, Reason>);
    let cases: &[Case] = &[
        (&[], Err(MissingCredential)),
        (
            &[("authorization", "Bearer abc.def.ghi")],
            Ok("jwt:abc.def.ghi"),
        ),
        (&[("authorization", "bearer   abc")], Ok("jwt:abc")),
        (&[("authorization", "BEARER abc ")], Ok("jwt:abc")),
        (
            &[("authorization", "Basic dXNlcjpwYXNz")],
            Err(UnsupportedScheme),
        ),
        (&[("authorization", "abc.def.ghi")], Err(UnsupportedScheme)),
        (&[("authorization", "Bearer")], Err(MalformedAuthorization)),
        (
            &[("authorization", "Bearer a b")],
            Err(MalformedAuthorization),
        ),
        (
            &[("authorization", "Bearer a,Bearer b")],
            Err(MultipleCredentials),
        ),
        (&[("authorization", "ApiKey ward_x")], Ok("apikey:ward_x")),
        (&[("x-api-key", " ward_x ")], Ok("apikey:ward_x")),
        (&[("x-api-key", "a, b")], Err(MultipleCredentials)),
        (
            &[("cookie", "theme=dark; session_id=s1; lang=en")],
            Ok("session:s1"),
        ),
        (&[("cookie", "session_id=\"s1\"")], Ok("session:s1")),
        (
            &[("cookie", "session_id=s1; session_id=s2")],
            Err(MultipleCredentials),
        ),
        (
            &[("cookie", "session_id=s1; session_id=s1")],
            Ok("session:s1"),
        ),
        (&[("cookie", "xsession_id=s1")], Err(MissingCredential)),
        (
            &[("x-session-id", "s1"), ("cookie", "session_id=s1")],
            Err(MultipleCredentials),
        ),
        (
            &[("x-api-key", "ward_x"), ("authorization", "ApiKey ward_x")],
            Err(MultipleCredentials),
        ),
        (
            &[("authorization", "Bearer t"), ("cookie", "session_id=s1")],
            Err(MultipleCredentials),
        ),
        (
            &[("authorization", "Bearer t"), ("x-api-key", "k")],
            Err(MultipleCredentials),
        ),
    ];
    let ex = extractor();
    for (pairs, want) in cases {
        assert_eq!(extract(&ex, pairs), want.map(str::to_string), "{pairs:?}");
    }
}

#[test]
fn disabled_kinds_are_not_credentials() {
    let only_jwt = Extractor {
        jwt_header: Some("x-jwt".into()),
        ..Extractor::default()
    };
    assert_eq!(
        extract(&only_jwt, &[("x-jwt", "Bearer abc")]),
        Ok("jwt:abc".into())
    );
    assert_eq!(
        extract(&only_jwt, &[("cookie", "session_id=s1")]),
        Err(Reason::MissingCredential)
    );
    assert_eq!(
        extract(&only_jwt, &[("authorization", "ApiKey k")]),
        Err(Reason::UnsupportedScheme)
    );
    assert_eq!(
        extract(&only_jwt, &[("authorization", "Bearer k")]),
        Err(Reason::UnsupportedScheme),
        "the JWT header is x-jwt here"
    );
}

#[test]
fn only_optional_whitespace_is_trimmed_from_any_credential() {
    use Reason::*;
    let x_jwt = Extractor {
        jwt_header: Some("x-jwt".into()),
        ..extractor()
    };
    let ex = extractor();
    for junk in [
        "\n", "\r", "\r\n", "\x0b", "\x0c", "\x00", "\x7f", "\u{85}", "\u{a0}", "\u{2028}",
        "\u{3000}", "é",
    ] {
        let cases = [
            ("authorization", format!("Bearer t{junk}"), MalformedToken),
            ("authorization", format!("Bearer {junk}t"), MalformedToken),
            ("authorization", format!("ApiKey k{junk}"), MalformedApiKey),
            ("x-jwt", format!("t{junk}"), MalformedToken),
            ("x-jwt", format!("Bearer t{junk}"), MalformedToken),
            ("x-api-key", format!("{junk}k"), MalformedApiKey),
            ("x-session-id", format!("s{junk}"), MalformedSessionId),
            ("cookie", format!("session_id=s{junk}"), MalformedSessionId),
            (
                "cookie",
                format!("a=b; session_id={junk}s"),
                MalformedSessionId,
            ),
        ];
        for (name, value, want) in cases {
            let ex = if name == "x-jwt" { &x_jwt } else { &ex };
            assert_eq!(
                extract(ex, &[(name, &value)]),
                Err(want),
                "{name}: {value:?}"
            );
        }
    }
    for (name, value, want) in [
        ("authorization", "\tBearer \t t \t", "jwt:t"),
        ("x-jwt", " t\t", "jwt:t"),
        ("x-api-key", "\tk ", "apikey:k"),
        ("x-session-id", " s ", "session:s"),
        ("cookie", "a=b;\tsession_id= s\t", "session:s"),
    ] {
        let ex = if name == "x-jwt" { &x_jwt } else { &ex };
        assert_eq!(extract(ex, &[(name, value)]), Ok(want.into()), "{value:?}");
    }
    // The request, not the token, is malformed: 400.
    assert_eq!(
        extract(&ex, &[("x-api-key", "a\tb")]),
        Err(MalformedAuthorization)
    );
    assert_eq!(
        extract(&ex, &[("x-api-key", " \t")]),
        Err(MalformedAuthorization)
    );
    assert_eq!(
        extract(&ex, &[("cookie", "session_id=")]),
        Err(MalformedSessionId)
    );
}

#[test]
fn cookies_folded_by_envoy_with_commas_are_still_cookies() {
    let ex = extractor();
    assert_eq!(
        extract(&ex, &[("cookie", "theme=dark,session_id=s1")]),
        Ok("session:s1".into())
    );
    assert_eq!(
        extract(&ex, &[("cookie", "session_id=s1,session_id=s2")]),
        Err(Reason::MultipleCredentials)
    );
}

#[test]
fn a_query_token_is_one_method_too_many_and_a_credential_only_when_configured() {
    use Reason::*;
    let ex = extractor();
    let bearer = [("authorization", "Bearer t")];
    let cookie = [("cookie", "session_id=s")];
    assert_eq!(
        extract_at(&ex, "/a?access_token=t", &bearer),
        Err(MultipleCredentials)
    );
    assert_eq!(
        extract_at(&ex, "/a?x=1&access%5ftoken=u", &cookie),
        Err(MultipleCredentials)
    );
    assert_eq!(
        extract_at(&ex, "/a?access_token", &bearer),
        Err(MultipleCredentials)
    );
    assert_eq!(
        extract_at(&ex, "/a?access_token=t", &[]),
        Err(MissingCredential)
    );
    assert_eq!(extract_at(&ex, "/a?token=t", &bearer), Ok("jwt:t".into()));
    let no_jwt = Extractor {
        jwt_header: None,
        ..extractor()
    };
    assert_eq!(
        extract_at(&no_jwt, "/a?access_token=t", &cookie),
        Ok("session:s".into())
    );

    let q = Extractor {
        jwt_query: Some("access_token".into()),
        ..extractor()
    };
    let cases: &[(&str, Result<&str, Reason>)] = &[
        ("/a?access_token=t.u.v", Ok("jwt:t.u.v")),
        ("/a?x=1&access_token=t%2Eu+&y", Ok("jwt:t.u")),
        ("/a?access+token=t&access_token=u", Ok("jwt:u")),
        ("/a?access_token=t%0A", Err(MalformedToken)),
        ("/a?access_token=t%C2%A0", Err(MalformedToken)),
        ("/a?access_token=t%FF", Err(MalformedToken)),
        ("/a?access_token=t%2", Ok("jwt:t%2")),
        ("/a?access_token=t%2Cu", Err(MultipleCredentials)),
        ("/a?access_token=t+u", Err(MalformedAuthorization)),
        ("/a?access_token=", Err(MalformedAuthorization)),
        ("/a?access_token=t&access_token=t", Err(MultipleCredentials)),
    ];
    for (path, want) in cases {
        assert_eq!(
            extract_at(&q, path, &[]),
            want.map(str::to_string),
            "{path}"
        );
    }
    assert_eq!(
        extract_at(&q, "/a?access_token=t", &bearer),
        Err(MultipleCredentials)
    );
    let named = Extractor {
        jwt_query: Some("tok".into()),
        ..extractor()
    };
    assert_eq!(extract_at(&named, "/a?tok=t", &[]), Ok("jwt:t".into()));
    assert_eq!(
        extract_at(&named, "/a?tok=t&access_token=t", &[]),
        Err(MultipleCredentials)
    );
    assert_eq!(
        extract_at(&named, "/a?access_token=t", &[]),
        Err(MissingCredential)
    );
}

#[test]
fn form_decoding() {
    assert_eq!(form_decode("a+b%20c%2e%zz%").as_deref(), Some("a b c.%zz%"));
    assert_eq!(form_decode("%E2%80%A8").as_deref(), Some("\u{2028}"));
    assert_eq!(form_decode("%FF"), None);
}

#[test]
fn a_bearer_token_is_opaque_only_when_no_jwt_and_a_provider_format_matches() {
    let config = crate::config::Config::from_yaml(
        r#"
introspection:
  providers:
    - {endpoint: "https://idp.test/i", client_id: w, client_secret: {value: s}, prefix: "at_"}
"#,
    )
    .unwrap();
    let ex = Extractor::from_config(&config);
    let cases: &[(&str, Result<&str, Reason>)] = &[
        (
            "Bearer at_0123456789abcdef",
            Ok("opaque:at_0123456789abcdef"),
        ),
        (
            "Bearer at_a.b.0123456789abcdef",
            Ok("jwt:at_a.b.0123456789abcdef"),
        ),
        ("Bearer xx_0123456789abcdef", Ok("jwt:xx_0123456789abcdef")),
        (
            "Bearer at_0123456789abcdef\u{7f}",
            Err(Reason::MalformedToken),
        ),
    ];
    for (value, want) in cases {
        let want = want.map(str::to_string);
        assert_eq!(extract(&ex, &[("authorization", value)]), want, "{value}");
    }
}

/// Two carriers are a malformed request (400) whatever either holds: one
/// malformed value beside another credential does not turn the answer
/// into that value's 401, and which carrier is read first does not
/// matter. A 400 of one value (empty, a space inside) is still that 400.
#[test]
fn two_carriers_are_a_400_even_when_one_value_is_malformed() {
    use Reason::*;
    let ex = extractor();
    let cases: [(&[(&str, &str)], Reason); 6] = [
        (
            &[("authorization", "Bearer t"), ("cookie", "session_id=")],
            MultipleCredentials,
        ),
        (
            &[("authorization", "Bearer t"), ("x-api-key", "k\u{b}")],
            MultipleCredentials,
        ),
        (
            &[
                ("authorization", "Bearer t\u{b}"),
                ("cookie", "session_id=s"),
            ],
            MultipleCredentials,
        ),
        (
            &[("cookie", "session_id=\u{a0}"), ("x-api-key", "k")],
            MultipleCredentials,
        ),
        (
            &[("authorization", "Bearer t"), ("x-api-key", "a b")],
            MalformedAuthorization,
        ),
        (
            &[("authorization", "Basic dTpw"), ("cookie", "session_id=s")],
            UnsupportedScheme,
        ),
    ];
    for (pairs, want) in cases {
        assert_eq!(extract(&ex, pairs), Err(want), "{pairs:?}");
        let reversed: Vec<_> = pairs.iter().rev().copied().collect();
        assert_eq!(extract(&ex, &reversed), Err(want), "{reversed:?}");
    }
    assert_eq!(
        extract_at(&ex, "/a?access_token=%ff", &[("cookie", "session_id=s")]),
        Err(MultipleCredentials)
    );
    // Alone, a malformed value is its kind's 401.
    assert_eq!(
        extract(&ex, &[("cookie", "session_id=")]),
        Err(MalformedSessionId)
    );
    assert_eq!(
        extract(&ex, &[("x-api-key", "k\u{b}")]),
        Err(MalformedApiKey)
    );
}
