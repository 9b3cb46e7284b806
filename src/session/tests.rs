use super::*;

fn hash(pairs: &[(&str, &str)]) -> Fields {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn rules() -> HeaderRules {
    HeaderRules::new(&crate::config::Config::default().headers)
}

#[test]
fn id_format() {
    for ok in [
        "550e8400-e29b-41d4-a716-446655440000",
        "0123456789abcdef0123456789abcdef",
        "q2VsbG8td29ybGQtc2Vzc2lvbg",
        "ZZZZZZZZZZZZZZZZZZZZZZ",
        "q2VsbG8td29ybGQtc2Vzc2",
    ] {
        assert!(valid_id(ok), "{ok}");
    }
    for bad in [
        "",
        "short",
        "0123456789abcdef0123456789abcde", // 31 hex digits: 124 bits
        "AAAAAAAAAAAAAAAAAAAAAA",          // 22 hex digits: 88 bits
        "ZZZZZZZZZZZZZZZZZZZZZ",           // 21 base64url characters
        "has space in it and is long enough",
        "semi;colon-aaaaaaaaaaaaaaaaaaaaaa",
        "percent%41aaaaaaaaaaaaaaaaaaaaaaaa",
        &"a".repeat(257),
    ] {
        assert!(!valid_id(bad), "{bad}");
    }
}

#[test]
fn parse_and_check() {
    let h1 = hash(&[("user_id", "u1"), ("expires_at", "100")]);
    let s = Session::parse(&h1).unwrap();
    assert_eq!(s.check(99), Ok(()));
    assert_eq!(s.check(100), Err(Reason::SessionExpired));
    let h2 = hash(&[("user_id", "u1"), ("revoked", "true")]);
    let r = Session::parse(&h2).unwrap();
    assert_eq!(r.check(0), Err(Reason::SessionRevoked));
    for bad in [
        hash(&[]),
        hash(&[("user_id", "")]),
        hash(&[("user_id", "u"), ("expires_at", "soon")]),
        hash(&[("user_id", "u"), ("revoked", "maybe")]),
    ] {
        assert_eq!(Session::parse(&bad), Err(Reason::InvalidSession), "{bad:?}");
    }
}

#[test]
fn written_records_read_back_under_the_documented_names() {
    let new = NewSession {
        user_id: "u1".into(),
        email: Some("u1@example.com".into()),
        roles: vec!["admin".into(), "dev".into()],
        scopes: vec![],
        fingerprint: Some("fp2:ab".into()),
        ttl: Duration::from_secs(60),
    };
    let written: Fields = new
        .fields(1000)
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    // The wire contract (docs/redis-contract.md), spelled out.
    let want = [
        ("user_id", "u1"),
        ("expires_at", "1060"),
        ("email", "u1@example.com"),
        ("roles", "admin,dev"),
        ("fingerprint", "fp2:ab"),
    ];
    assert_eq!(written, hash(&want));
    let s = Session::parse(&written).unwrap();
    assert_eq!(
        (s.user_id, s.expires_at, s.fingerprint, s.revoked),
        ("u1", Some(1060), Some("fp2:ab"), false)
    );
    let mut revoked = written.clone();
    revoked.insert(field::REVOKED.into(), fields::REVOKED.into());
    assert_eq!(
        Session::parse(&revoked).unwrap().check(0),
        Err(Reason::SessionRevoked)
    );
    assert!(valid_id(&generate_id().unwrap()));
}

#[test]
fn identity_headers_follow_the_headers_section() {
    let mut config = crate::config::Config::default();
    config.headers.email = "x-mail".into();
    config.headers.roles = "x-groups".into();
    config.headers.scopes = "x-perms".into();
    let h = hash(&[
        ("user_id", "u1"),
        ("email", "e"),
        ("roles", "a b"),
        ("scopes", "s"),
    ]);
    let id = Session::parse(&h)
        .unwrap()
        .identity(&HeaderRules::new(&config.headers), &[])
        .unwrap();
    let names: Vec<&str> = id.headers().map(|(k, _)| k).collect();
    assert_eq!(
        names,
        [
            "x-user-id",
            "x-auth-method",
            "x-mail",
            "x-groups",
            "x-perms"
        ]
    );
}

#[test]
fn identity_headers() {
    let h = hash(&[
        ("user_id", "u1"),
        ("email", "u1@example.com"),
        ("roles", "admin, dev"),
        ("name", "Ada"),
    ]);
    let s = Session::parse(&h).unwrap();
    let id = s
        .identity(&rules(), &[("name".into(), "x-user-name".into())])
        .unwrap();
    let get = |n: &str| id.headers().find(|(k, _)| *k == n).map(|(_, v)| v);
    assert_eq!(get("x-user-id"), Some("u1"));
    assert_eq!(get("x-auth-method"), Some("session"));
    assert_eq!(get("x-user-email"), Some("u1@example.com"));
    assert_eq!(get("x-user-roles"), Some("admin,dev"));
    assert_eq!(get("x-user-scopes"), None);
    assert_eq!(get("x-user-name"), Some("Ada"));
    let e = hash(&[("user_id", "u1"), ("name", "a\r\nb")]);
    let evil = Session::parse(&e).unwrap();
    assert!(
        evil.identity(&rules(), &[("name".into(), "x-user-name".into())])
            .is_err()
    );
}
