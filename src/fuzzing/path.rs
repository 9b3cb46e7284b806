//! `path`: route-matching canonicalization never panics, is idempotent,
//! and yields a path no second decoder or lenient backend could read
//! differently: absolute, no empty, `.` or `..` segment, no `%` (so no
//! encoded separator or dot), `\`, `;`, `?`, `#` or control character.

use crate::policy::path::canonicalize;

pub fn path(data: &[u8]) {
    let raw = super::text(data);
    let Ok(canonical) = canonicalize(&raw) else {
        return;
    };
    assert_eq!(
        canonicalize(&canonical).as_deref(),
        Ok(canonical.as_str()),
        "not idempotent on {raw:?}"
    );
    assert!(canonical.starts_with('/'), "{canonical:?} is not absolute");
    assert!(
        canonical == "/" || !canonical.ends_with('/'),
        "{canonical:?} ends with `/`"
    );
    for segment in canonical[1..].split('/').filter(|_| canonical != "/") {
        assert!(
            !matches!(segment, "" | "." | ".."),
            "{canonical:?} has segment {segment:?}"
        );
    }
    assert!(
        !canonical.contains(['%', '\\', ';', '?', '#']) && !canonical.contains(char::is_control),
        "{canonical:?} holds a character a backend could decode or split on"
    );
}
