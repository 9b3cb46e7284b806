//! Path canonicalization before route matching.
//!
//! A route policy is only as strong as the path it is matched against. If
//! ward matched the raw path, `/public/../admin`, `//admin`, `/%61dmin` or
//! `/admin;x` would miss a rule for `/admin` while a lenient backend still
//! serves `/admin`. So ward matches the path *as the most lenient backend
//! would resolve it*: decoded once, with `\` and encoded slashes as
//! separators, path parameters dropped, and dot segments resolved. Anything
//! that a second decoder or parser could read differently (`%25`, an encoded
//! `?` or `#`, control characters, bytes that are not UTF-8) is refused
//! rather than guessed at: the caller denies the request.
//!
//! Envoy should already normalize paths (`docs/paths.md` lists the settings);
//! this is the second line of defence. The result is for matching only; the
//! request that reaches the backend is unchanged.

/// Paths longer than this (after the query is stripped) are refused.
pub const MAX_PATH_BYTES: usize = 8192;

/// Why a path cannot be canonicalized. Every variant means "deny".
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("path is longer than {MAX_PATH_BYTES} bytes")]
    TooLong,
    #[error("path does not start with `/`")]
    NotAbsolute,
    #[error("path has a `%` not followed by two hex digits")]
    BadPercentEncoding,
    #[error("path has an encoded `%` (%25): a backend that decodes twice would see another path")]
    DoubleEncoding,
    #[error("path has an encoded `?` or `#` (%3F, %23): backends disagree on where the path ends")]
    EncodedDelimiter,
    #[error("path has a control character")]
    ControlCharacter,
    #[error("path does not decode to UTF-8")]
    NotUtf8,
}

/// The path as the most lenient backend would resolve it, for matching only.
///
/// `raw` is the request's `:path` (query and fragment allowed). The result
/// starts with `/`, has no empty, `.` or `..` segment, no trailing `/`
/// (except the root itself), and no `\`, `;`, `%`, `?`, `#` or control
/// character. Case is preserved. `canonicalize` of a result is the result.
pub fn canonicalize(raw: &str) -> Result<String, PathError> {
    let path = match raw.find(['?', '#']) {
        Some(end) => &raw[..end],
        None => raw,
    };
    if !path.starts_with('/') {
        return Err(PathError::NotAbsolute);
    }
    if path.len() > MAX_PATH_BYTES {
        return Err(PathError::TooLong);
    }
    let decoded = percent_decode(path.as_bytes())?;
    refuse_ambiguous_bytes(&decoded)?;
    let text = String::from_utf8(decoded).map_err(|_| PathError::NotUtf8)?;
    // C1 controls (U+0080..U+009F; NEL is a line break to some parsers).
    if text.chars().any(char::is_control) {
        return Err(PathError::ControlCharacter);
    }
    Ok(resolve(&text))
}

/// Decodes every `%XX` exactly once.
fn percent_decode(raw: &[u8]) -> Result<Vec<u8>, PathError> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'%' {
            let hi = raw.get(i + 1).and_then(|b| hex_value(*b));
            let lo = raw.get(i + 2).and_then(|b| hex_value(*b));
            match (hi, lo) {
                (Some(hi), Some(lo)) => out.push(hi << 4 | lo),
                _ => return Err(PathError::BadPercentEncoding),
            }
            i += 3;
        } else {
            out.push(raw[i]);
            i += 1;
        }
    }
    Ok(out)
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// After one decode, a `%` can only have come from `%25`, and a `?` or `#`
/// only from `%3F`/`%23` (the raw ones were cut off as query and fragment).
fn refuse_ambiguous_bytes(decoded: &[u8]) -> Result<(), PathError> {
    for &b in decoded {
        match b {
            0x00..=0x1F | 0x7F => return Err(PathError::ControlCharacter),
            b'%' => return Err(PathError::DoubleEncoding),
            b'?' | b'#' => return Err(PathError::EncodedDelimiter),
            _ => {}
        }
    }
    Ok(())
}

/// Splits on `/` and `\`, drops `;params`, empty and `.` segments, and
/// resolves `..` without ever climbing above the root.
fn resolve(decoded: &str) -> String {
    let mut segments: Vec<&str> = Vec::new();
    for segment in decoded.split(['/', '\\']) {
        let segment = segment.split_once(';').map_or(segment, |(head, _)| head);
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            name => segments.push(name),
        }
    }
    let mut out = String::with_capacity(decoded.len().max(1));
    for name in &segments {
        out.push('/');
        out.push_str(name);
    }
    if out.is_empty() {
        out.push('/');
    }
    out
}

#[cfg(test)]
mod tests {
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
}
