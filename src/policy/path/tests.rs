use super::*;
use PathError::*;

fn check(cases: &[(&str, Result<&str, PathError>)]) {
    for (raw, want) in cases {
        let got = canonicalize(raw);
        assert_eq!(got.as_deref(), want.as_deref(), "canonicalize({raw:?})");
    }
}

#[test]
fn classic_bypasses_resolve_to_the_protected_path() {
    check(&[
        ("/admin", Ok("/admin")),
        ("//admin", Ok("/admin")),
        ("///admin//users//", Ok("/admin/users")),
        ("/public/../admin", Ok("/admin")),
        ("/%61dmin", Ok("/admin")),
        ("/admin%2f", Ok("/admin")),
        ("/admin%2F..", Ok("/")),
        ("/admin%2Fusers", Ok("/admin/users")),
        ("/admin;x", Ok("/admin")),
        ("/admin;jsessionid=1", Ok("/admin")),
        ("/admin;jsessionid=1/users", Ok("/admin/users")),
        ("/admin%3Bx", Ok("/admin")),
        ("/admin/", Ok("/admin")),
        ("/a/./b", Ok("/a/b")),
        ("/a/%2e/b", Ok("/a/b")),
        ("/..", Ok("/")),
        ("/../../etc", Ok("/etc")),
        ("/%2e%2e/admin", Ok("/admin")),
        ("/%2E%2E/admin", Ok("/admin")),
        ("/.%2e/admin", Ok("/admin")),
        ("/public/..;/admin", Ok("/admin")),
        ("/public/.;/admin", Ok("/public/admin")),
        ("/public/%2e%2e/admin", Ok("/admin")),
        ("/public%5c..%5cadmin", Ok("/admin")),
        ("/public\\..\\admin", Ok("/admin")),
        ("/public/%2e%2e%2fadmin", Ok("/admin")),
        ("/public/..%2f..%2f..%2fadmin", Ok("/admin")),
    ]);
}

#[test]
fn case_and_ordinary_characters_are_preserved() {
    check(&[
        ("/ADMIN", Ok("/ADMIN")),
        ("/Admin/Users", Ok("/Admin/Users")),
        ("/", Ok("/")),
        ("/a b", Ok("/a b")),
        ("/a%20b", Ok("/a b")),
        ("/caf%C3%A9", Ok("/café")),
        ("/café", Ok("/café")),
        ("/...", Ok("/...")),
        // Not handled (docs/paths.md): IIS trims these, others do not.
        ("/admin.", Ok("/admin.")),
        ("/admin%20", Ok("/admin ")),
        ("/a..b/.c", Ok("/a..b/.c")),
        ("/~user/@x:y,z+=&$!'()*", Ok("/~user/@x:y,z+=&$!'()*")),
    ]);
}

#[test]
fn query_and_fragment_are_stripped_first() {
    check(&[
        ("/a?b", Ok("/a")),
        ("/a?b/../c", Ok("/a")),
        ("/a#frag", Ok("/a")),
        ("/a#x?y", Ok("/a")),
        ("/a?%zz", Ok("/a")),
        ("/?x", Ok("/")),
        ("/admin/?next=/public", Ok("/admin")),
    ]);
}

#[test]
fn ambiguous_or_malformed_paths_are_refused() {
    check(&[
        ("/%2561dmin", Err(DoubleEncoding)),
        ("/%252e%252e/admin", Err(DoubleEncoding)),
        ("/%25%36%31dmin", Err(DoubleEncoding)),
        ("/100%25", Err(DoubleEncoding)),
        ("/%zz", Err(BadPercentEncoding)),
        ("/%4", Err(BadPercentEncoding)),
        ("/%", Err(BadPercentEncoding)),
        ("/%u002e", Err(BadPercentEncoding)),
        ("/%u002e%u002e/admin", Err(BadPercentEncoding)),
        ("/a%00b", Err(ControlCharacter)),
        ("/a%0d%0ab", Err(ControlCharacter)),
        ("/a\tb", Err(ControlCharacter)),
        ("/a%7f", Err(ControlCharacter)),
        ("/a%C2%85b", Err(ControlCharacter)),
        ("/%ff", Err(NotUtf8)),
        ("/%c0%ae", Err(NotUtf8)),
        ("/%c0%ae%c0%ae/admin", Err(NotUtf8)),
        ("/admin%3F/../public", Err(EncodedDelimiter)),
        ("/admin%23/../public", Err(EncodedDelimiter)),
        ("*", Err(NotAbsolute)),
        ("", Err(NotAbsolute)),
        ("admin", Err(NotAbsolute)),
        ("?/admin", Err(NotAbsolute)),
        ("http://host/admin", Err(NotAbsolute)),
        ("\\admin", Err(NotAbsolute)),
    ]);
}

#[test]
fn the_length_limit_applies_to_the_path_without_its_query() {
    let at_limit = format!("/{}", "a".repeat(MAX_PATH_BYTES - 1));
    assert_eq!(canonicalize(&at_limit).as_deref(), Ok(at_limit.as_str()));
    let over = format!("/{}", "a".repeat(MAX_PATH_BYTES));
    assert_eq!(canonicalize(&over), Err(TooLong));
    let long_query = format!("/a?{}", "q".repeat(2 * MAX_PATH_BYTES));
    assert_eq!(canonicalize(&long_query).as_deref(), Ok("/a"));
}

/// Every path built from up to four pieces of a hostile alphabet.
fn generated_paths() -> Vec<String> {
    const PIECES: [&str; 14] = [
        "a", "B", "..", ".", "%2e", "%2E%2e", "%2f", "%2F", ";x", "//", "\\", "%5c", "/", "c;",
    ];
    let mut paths = vec![String::from("/")];
    let mut frontier = vec![String::from("/")];
    for _ in 0..4 {
        let mut next = Vec::new();
        for prefix in &frontier {
            for piece in PIECES {
                next.push(format!("{prefix}{piece}"));
            }
        }
        paths.extend(next.iter().cloned());
        frontier = next;
    }
    paths
}

#[test]
fn canonical_paths_are_fixed_points() {
    let paths = generated_paths();
    assert!(paths.len() > 40_000);
    for raw in &paths {
        let Ok(once) = canonicalize(raw) else {
            panic!("{raw:?} was refused");
        };
        assert_eq!(canonicalize(&once).as_deref(), Ok(once.as_str()), "{raw:?}");
        assert!(once.starts_with('/'), "{raw:?} -> {once:?}");
        assert!(once == "/" || !once.ends_with('/'), "{raw:?} -> {once:?}");
        assert!(!once.contains("//"), "{raw:?} -> {once:?}");
        assert!(!once.contains(['\\', ';', '%']), "{raw:?} -> {once:?}");
        assert!(
            once.split('/').all(|s| s != "." && s != ".."),
            "{raw:?} -> {once:?}"
        );
    }
}

#[test]
fn a_prefix_of_dot_dots_never_escapes_the_root() {
    for raw in generated_paths() {
        let Ok(canonical) = canonicalize(&format!("/x/../..{raw}")) else {
            panic!("{raw:?} was refused");
        };
        assert_eq!(canonicalize(&raw), Ok(canonical), "{raw:?}");
    }
}
