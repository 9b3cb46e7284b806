//! `formats`: the checks that keep junk from reaching Redis, and the
//! reading of records a login service wrote.
//!
//! The first byte picks a mode (low two bits):
//! - `0`: `PREFIX \n KEY`: [`apikey::well_formed`] with and without
//!   `accept_foreign`; a key it accepts has the shape it promises;
//! - `1`: a session id for [`session::valid_id`];
//! - `2`, `3`: `field=value` lines as a Redis hash, read by
//!   [`Session::parse`] and [`ApiKey::parse`], then checked at a fixed
//!   `now` and rendered into identity headers.

use crate::apikey::{self, ApiKey};
use crate::fields::Fields;
use crate::identity::HeaderRules;
use crate::session::{self, Session};

const NOW: u64 = 1_700_000_000;

pub fn formats(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let text = super::text(rest);
    match mode & 3 {
        0 => {
            let (prefix, key) = text.split_once('\n').unwrap_or(("ward", &text));
            api_key_format(prefix, key);
        }
        1 => session_id(&text),
        _ => records(&text),
    }
}

fn api_key_format(prefix: &str, key: &str) {
    if apikey::well_formed(key, prefix, false) {
        let body = key
            .strip_prefix(prefix)
            .and_then(|b| b.strip_prefix('_'))
            .unwrap_or_default();
        assert!(
            body.len() == 38 && body.bytes().all(|b| b.is_ascii_alphanumeric()),
            "{key:?} accepted for prefix {prefix:?}"
        );
    }
    if apikey::well_formed(key, prefix, true) && !apikey::well_formed(key, prefix, false) {
        assert!(
            (16..=256).contains(&key.len()) && key.bytes().all(|b| b.is_ascii_graphic()),
            "foreign key {key:?} accepted"
        );
    }
    assert_eq!(apikey::hash_hex(key).len(), 64);
}

fn session_id(sid: &str) {
    if session::valid_id(sid) {
        assert!(
            (22..=256).contains(&sid.len())
                && sid
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
            "session id {sid:?} accepted"
        );
    }
}

fn records(text: &str) {
    let fields: Fields = text
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let rules = HeaderRules {
        max_value_bytes: 256,
        ..HeaderRules::new(&crate::config::Config::default().headers)
    };
    if let Ok(s) = Session::parse(&fields) {
        assert!(!s.user_id.is_empty());
        let _ = s.check(NOW);
        let mapped = [("tenant".to_string(), "x-user-tenant".to_string())];
        if let Ok(identity) = s.identity(&rules, &mapped) {
            header_safe(identity.headers());
        }
    }
    if let Ok(k) = ApiKey::parse(&fields) {
        let _ = k.check(NOW);
        if let Ok(identity) = k.identity(&rules, "x-api-key-id") {
            header_safe(identity.headers());
        }
    }
}

/// Identity header values are safe to send: no CR, LF, NUL or other
/// control character but tab, and within the size cap.
fn header_safe<'a>(headers: impl Iterator<Item = (&'a str, &'a str)>) {
    for (name, value) in headers {
        assert!(
            value.len() <= 256 && !value.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f),
            "unsafe identity header {name}: {value:?}"
        );
    }
}
