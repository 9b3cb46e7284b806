use super::*;

const V1: Version = Version::V1;
const V2: Version = Version::V2;

#[test]
fn v1_vectors() {
    // These vectors are repeated in docs/redis-contract.md.
    assert_eq!(
        V1.compute([]),
        hex::encode(Sha256::digest(b"ward-fp-v1")),
        "no attributes"
    );
    let v1 = V1.compute([
        ("client_ip", "203.0.113.7"),
        ("user-agent", "Mozilla/5.0"),
        ("accept-language", "en-US"),
    ]);
    let manual = hex::encode(Sha256::digest(
        b"ward-fp-v19:client_ip,11:203.0.113.7,10:user-agent,11:Mozilla/5.0,15:accept-language,5:en-US,",
    ));
    assert_eq!(v1, manual);
    assert_eq!(
        v1,
        "90c2178d6f713c800346bd2b37db52b4457a7fa5578683a7d543dd899d5d745f"
    );
    // v1 hashes list headers byte for byte.
    assert_ne!(
        V1.compute([("accept-language", "en-US,en;q=0.9")]),
        V1.compute([("accept-language", "en-US, en;q=0.9")])
    );
}

/// The v2 table of docs/redis-contract.md: attributes as sent, the
/// stored value.
const V2_VECTORS: &[(&[(&str, &str)], &str)] = &[
    (
        &[],
        "fp2:72b67689738ff31def39e983b68ba1083b503f8c331219235fa2dba63daf3ea5",
    ),
    (
        &[
            ("client_ip", "203.0.113.7"),
            ("user-agent", "Mozilla/5.0"),
            ("accept-language", "en-US"),
        ],
        "fp2:4c85ce224a854c29fb50d281814f7b559397e498f0d7304e6ff1ba8a7a69b22f",
    ),
    (
        &[
            ("client_ip", "203.0.113.7"),
            ("user-agent", "Mozilla/5.0"),
            ("accept-language", "en-US,en;q=0.9"),
        ],
        "fp2:9fe6aaee40f156b2b579293c3d1a860bea93d47e60f429fd440449fcce5fda0f",
    ),
    (
        &[
            ("client_ip", "203.0.113.7"),
            ("user-agent", "Mozilla/5.0"),
            ("accept-language", " EN-us , en; q=0.9 ,,"),
        ],
        "fp2:9fe6aaee40f156b2b579293c3d1a860bea93d47e60f429fd440449fcce5fda0f",
    ),
    (
        &[
            ("client_ip", "2001:db8:1:2::"),
            (
                "user-agent",
                "Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/128.0",
            ),
            ("accept-language", "de-CH,de;q=0.9,en;q=0.8"),
        ],
        "fp2:fb84b2cf96d4e51857089af8141d9aec3c78972768dec2a0f82d8146b27e9466",
    ),
    (
        &[("accept-encoding", "gzip, deflate, BR, zstd")],
        "fp2:2c6c0c17dda05f6534a52c1fd116e7258e591b74bd24c52b3d2d857615cb77d6",
    ),
    (
        &[(
            "accept",
            r#"text/html, application/xhtml+xml;q=0.9, text/plain; format="a, b" , */*; q=0.8"#,
        )],
        "fp2:75e3dd4c5834b88011cec3c23004c66a0bf208641a51692bfaeb12e43de9f30c",
    ),
    (
        &[(
            "sec-ch-ua",
            r#""Chromium";v="128", "Not;A=Brand";v="24", "Google Chrome";v="128""#,
        )],
        "fp2:bdfc95e89a128b4b530a20637570dc09d50eb5550231b9bd0f8f8136815d6430",
    ),
    (
        &[
            ("client_ip", ""),
            ("user-agent", ""),
            ("accept-language", ""),
        ],
        "fp2:fb83fa653e98342742869f52ca607c765d9bfc922bec0c9b65eca5c0344fae11",
    ),
    (
        &[("user-agent", "Grüße 🚀")],
        "fp2:48f951e5ff062f77e180034f7533590556fbbb72f4cf74495816dbdc1f40b24c",
    ),
];

#[test]
fn v2_vectors() {
    for (attributes, expected) in V2_VECTORS {
        assert_eq!(
            V2.compute(attributes.iter().copied()),
            *expected,
            "{attributes:?}"
        );
    }
    let manual = Sha256::digest(
        b"ward-fp-v29:client_ip,11:203.0.113.7,10:user-agent,11:Mozilla/5.0,15:accept-language,5:en-us,",
    );
    assert_eq!(V2_VECTORS[1].1, format!("fp2:{}", hex::encode(manual)));
}

#[test]
fn list_headers_are_normalized_and_nothing_else() {
    let cases = [
        ("accept-language", "en-US,en;q=0.9", "en-us,en;q=0.9"),
        ("accept-language", "en-US, en;q=0.9", "en-us,en;q=0.9"),
        (
            "Accept-Language",
            "\ten-US ,\t, en ; q=0.9, ",
            "en-us,en;q=0.9",
        ),
        ("accept-language", " , ,", ""),
        ("accept-language", "en;", "en"),
        ("accept-encoding", "GZIP , br", "gzip,br"),
        (
            "accept",
            r#"a/b; p="X, Y;Z" , c/D"#,
            r#"a/b;p="X, Y;Z",c/D"#,
        ),
        ("accept", r#"a/b; p="q\", r" ,c/d"#, r#"a/b;p="q\", r",c/d"#),
        ("sec-ch-ua", r#""A";v="1" , "B""#, r#""A";v="1","B""#),
        // Not lists: byte for byte.
        (
            "user-agent",
            " Mozilla/5.0 (X11, a; b) ",
            " Mozilla/5.0 (X11, a; b) ",
        ),
        ("x-device", "A, B", "A, B"),
        ("client_ip", " 203.0.113.7", " 203.0.113.7"),
    ];
    for (name, value, expected) in cases {
        assert_eq!(normalize(name, value), expected, "{name}: {value:?}");
    }
    // The order of elements is kept: a reordered list is another list.
    assert_ne!(
        V2.compute([("accept-language", "en,de")]),
        V2.compute([("accept-language", "de,en")])
    );
}

#[test]
fn the_stored_value_names_its_version() {
    let fp = V2.compute([("a", "b")]);
    assert_eq!(Version::of(&fp), V2);
    assert_eq!(Version::of(&format!(" {}\n", fp.to_ascii_uppercase())), V2);
    assert_eq!(Version::of(&V1.compute([("a", "b")])), V1);
    assert_eq!(Version::of("fp3:00"), V1, "unknown: v1, which cannot match");
    assert_eq!(Version::of("fp"), V1);
    assert!(matches(&fp.to_ascii_uppercase(), &fp));
    assert!(!matches(&fp[4..], &fp), "a v2 digest without its prefix");
    assert!(!matches(&V1.compute([("a", "b")]), &fp));
}

#[test]
fn encoding_is_unambiguous() {
    for v in [V1, V2] {
        assert_ne!(v.compute([("a", "bc")]), v.compute([("ab", "c")]));
        assert_ne!(
            v.compute([("a", "1,2:x")]),
            v.compute([("a", "1"), ("2", "x")])
        );
        assert_ne!(v.compute([("a", "")]), v.compute([]));
    }
    assert_ne!(
        V1.compute([("a", "b")]).len(),
        V2.compute([("a", "b")]).len()
    );
}

#[test]
fn client_ip_counts_trusted_hops_from_the_right() {
    let src: IpAddr = "10.0.0.1".parse().unwrap();
    let xff = Some("1.1.1.1, 2.2.2.2, 3.3.3.3");
    assert_eq!(client_ip(xff, Some(src), 0), Some(src));
    assert_eq!(client_ip(xff, Some(src), 1), "3.3.3.3".parse().ok());
    assert_eq!(client_ip(xff, Some(src), 2), "2.2.2.2".parse().ok());
    assert_eq!(client_ip(xff, Some(src), 4), Some(src), "too few entries");
    assert_eq!(client_ip(Some("junk"), Some(src), 1), Some(src));
    assert_eq!(client_ip(None, None, 1), None);
    assert_eq!(
        client_ip(Some(" 2001:db8::1 "), None, 1),
        "2001:db8::1".parse().ok()
    );
}

#[test]
fn masking() {
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    assert_eq!(masked(ip("203.0.113.77"), 24, 64), "203.0.113.0");
    assert_eq!(masked(ip("203.0.113.77"), 32, 64), "203.0.113.77");
    assert_eq!(masked(ip("203.0.113.77"), 0, 64), "0.0.0.0");
    assert_eq!(masked(ip("2001:DB8:1:2:3:4:5:6"), 24, 64), "2001:db8:1:2::");
    assert_eq!(masked(ip("2001:db8::1"), 24, 128), "2001:db8::1");
    assert_eq!(masked(ip("::ffff:203.0.113.77"), 24, 128), "203.0.113.0");
}

#[test]
fn config_picks_attributes_ip_mask_and_hops() {
    let headers = [
        ("user-agent", "Mozilla/5.0"),
        ("accept-language", "en-US"),
        ("x-forwarded-for", "198.51.100.1, 203.0.113.7"),
    ];
    let lookup = |name: &str| headers.iter().find(|(k, _)| *k == name).map(|(_, v)| *v);
    let client: IpAddr = "203.0.113.7".parse().unwrap();
    let default = FingerprintConfig::default();
    // The documented vector: client_ip, user-agent, accept-language.
    assert_eq!(
        of_client(&default, V2, Some(client), lookup),
        V2_VECTORS[1].1
    );
    // One trusted hop: the client is the rightmost x-forwarded-for entry.
    let hop = FingerprintConfig {
        trusted_hops: 1,
        ..FingerprintConfig::default()
    };
    let peer = "10.0.0.1".parse().ok();
    assert_eq!(of_request(&hop, V2, peer, lookup), V2_VECTORS[1].1);
    assert_ne!(of_request(&default, V2, peer, lookup), V2_VECTORS[1].1);
    // Masked, in the configured order; missing values are empty.
    let custom = FingerprintConfig {
        attributes: vec!["x-device".into(), "client_ip".into()],
        ipv4_prefix: 24,
        ..FingerprintConfig::default()
    };
    assert_eq!(
        of_client(&custom, V1, Some(client), lookup),
        V1.compute([("x-device", ""), ("client_ip", "203.0.113.0")])
    );
    assert_eq!(
        of_client(&custom, V1, None, lookup),
        V1.compute([("x-device", ""), ("client_ip", "")])
    );
}

#[test]
fn comparison_ignores_case_and_whitespace_only() {
    let fp = V1.compute([("a", "b")]);
    assert!(matches(&fp.to_ascii_uppercase(), &fp));
    assert!(matches(&format!(" {fp}\n"), &fp));
    assert!(!matches(&fp[1..], &fp));
    assert!(!matches(&V1.compute([("a", "c")]), &fp));
}
