//! The `typ` header: which media types a key accepts.
//!
//! A JWS signed by a trusted key is not necessarily a JWT meant for ward:
//! the same key may sign other JOSE objects (a `typ: JWE` wrapper, a
//! logout token, a `secevent+jwt`). RFC 8725 §3.11 asks verifiers to tell
//! them apart by `typ`; RFC 9068 names access tokens `at+jwt`. So the key
//! that verifies a token decides which `typ` values it accepts (each key
//! may override the global list), and any other is refused.
//!
//! Comparison follows RFC 7515 §4.1.9: case-insensitive, and
//! `application/` may be left out (`JWT` is `application/jwt`). A token
//! without `typ` is accepted: the member is optional (RFC 7519 §5.1).

use crate::config::DEFAULT_TYPES;
use std::sync::Arc;

const APPLICATION: &str = "application/";

/// Accepted `typ` values, normalized (lowercase, no `application/`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedTypes(Arc<[String]>);

impl AllowedTypes {
    /// The accepted set for configured media types.
    pub fn new<S: AsRef<str>>(types: &[S]) -> Self {
        let mut list: Vec<String> = types
            .iter()
            .map(|t| short_form(t.as_ref()).to_ascii_lowercase())
            .collect();
        list.sort();
        list.dedup();
        Self(list.into())
    }

    /// The accepted values, normalized and sorted.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }

    /// Whether a token with header `typ` (`None`: absent) is accepted.
    pub fn accepts(&self, typ: Option<&str>) -> bool {
        let Some(typ) = typ else { return true };
        let typ = short_form(typ);
        self.0.iter().any(|t| t.eq_ignore_ascii_case(typ))
    }
}

impl Default for AllowedTypes {
    fn default() -> Self {
        Self::new(&DEFAULT_TYPES)
    }
}

/// Why a configured media type is refused, if it is.
pub fn check_type(typ: &str) -> Result<(), &'static str> {
    if !typ.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("must be printable ASCII without spaces");
    }
    if short_form(typ).is_empty() {
        return Err("must name a media type, such as `JWT` or `at+jwt`");
    }
    Ok(())
}

/// `typ` without a leading `application/` (any case), when what follows
/// has no `/` of its own (RFC 7515 §4.1.9).
fn short_form(typ: &str) -> &str {
    match (typ.get(..APPLICATION.len()), typ.get(APPLICATION.len()..)) {
        (Some(prefix), Some(rest))
            if prefix.eq_ignore_ascii_case(APPLICATION) && !rest.contains('/') =>
        {
            rest
        }
        _ => typ,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_accepts_jwts_and_access_tokens_in_any_spelling() {
        let types = AllowedTypes::default();
        for typ in [
            None,
            Some("JWT"),
            Some("jwt"),
            Some("application/jwt"),
            Some("Application/JWT"),
            Some("at+jwt"),
            Some("AT+JWT"),
            Some("application/at+jwt"),
        ] {
            assert!(types.accepts(typ), "{typ:?}");
        }
        for typ in [
            "JWE",
            "",
            "application/",
            "text/jwt",
            "application/jwt/x",
            "jwt ",
            "secevent+jwt",
            "logout+jwt",
            "application/jose",
            "JOSE+JSON",
        ] {
            assert!(!types.accepts(Some(typ)), "{typ:?}");
        }
    }

    #[test]
    fn a_configured_list_is_normalized() {
        let types = AllowedTypes::new(&["application/AT+JWT"]);
        assert!(types.accepts(Some("at+jwt")));
        assert!(types.accepts(None));
        assert!(!types.accepts(Some("JWT")));
        assert_eq!(types, AllowedTypes::new(&["at+jwt", "AT+jwt"]));
        let none: [&str; 0] = [];
        assert!(!AllowedTypes::new(&none).accepts(Some("JWT")));
        assert!(AllowedTypes::new(&none).accepts(None));
    }

    #[test]
    fn config_values_are_checked() {
        for ok in ["JWT", "at+jwt", "application/secevent+jwt", "a/b"] {
            assert_eq!(check_type(ok), Ok(()), "{ok}");
        }
        for bad in ["", "at jwt", "application/", "JWT\n", "é"] {
            assert!(check_type(bad).is_err(), "{bad:?}");
        }
    }
}
