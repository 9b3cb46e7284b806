//! Taking a compact JWS apart, strictly, before any key is touched.
//!
//! The header is parsed here rather than by `jsonwebtoken` because ward
//! must see fields the library ignores: `crit` (an extension ward does not
//! understand must fail the token, RFC 7515 §4.1.11), `kid` for key
//! choice and `typ` for the verifying key to judge. The header is strict
//! JSON ([`super::json`]): a member named twice, whatever its name, makes
//! the token malformed. Base64url must be canonical and unpadded, so one
//! token has one spelling and one cache key.

use super::JwtError;
use super::json::{self, StrictJsonError};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;
use serde_json::{Map, Value};

/// The parts of a compact JWS, borrowed from the token string.
#[derive(Debug)]
pub(super) struct Parts<'a> {
    /// `header.payload`: the signed message.
    pub message: &'a str,
    pub payload: &'a str,
    pub signature: &'a str,
    pub header: Header,
}

/// The header fields ward acts on.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Header {
    pub alg: Algorithm,
    pub kid: Option<String>,
    /// The media type the token claims to be; the verifying key judges it.
    pub typ: Option<String>,
}

const NOT_A_HEADER: &str = "header is not a JSON object with `alg`";

/// Splits and checks a token of at most `max_bytes`.
pub(super) fn parse(token: &str, max_bytes: usize) -> Result<Parts<'_>, JwtError> {
    if token.len() > max_bytes {
        return Err(JwtError::TooLarge);
    }
    let mut it = token.split('.');
    let (Some(h), Some(p), Some(s), None) = (it.next(), it.next(), it.next(), it.next()) else {
        return Err(JwtError::Malformed("not three dot-separated parts"));
    };
    if h.is_empty() || p.is_empty() || s.is_empty() {
        return Err(JwtError::Malformed("empty part"));
    }
    let header = json::parse_object(&decode_part(h)?).map_err(|e| match e {
        StrictJsonError::DuplicateMember => {
            JwtError::Malformed("header names a member twice (RFC 7519 §4)")
        }
        StrictJsonError::NotAnObject => JwtError::Malformed(NOT_A_HEADER),
    })?;
    Ok(Parts {
        message: &token[..h.len() + 1 + p.len()],
        payload: p,
        signature: s,
        header: read_header(header)?,
    })
}

/// The fields ward acts on, each of the type its RFC gives: `alg`, `kid`
/// and `typ` are strings. Any `crit`, even empty, fails the token.
fn read_header(mut header: Map<String, Value>) -> Result<Header, JwtError> {
    let mut string = |name: &str, malformed: &'static str| match header.remove(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(JwtError::Malformed(malformed)),
    };
    let alg = string("alg", NOT_A_HEADER)?.ok_or(JwtError::Malformed(NOT_A_HEADER))?;
    let kid = string("kid", "header `kid` is not a string")?;
    let typ = string("typ", "header `typ` is not a string")?;
    if header.contains_key("crit") {
        return Err(JwtError::UnsupportedCrit);
    }
    let alg = alg
        .parse::<Algorithm>()
        .map_err(|_| JwtError::UnsupportedAlg)?;
    Ok(Header { alg, kid, typ })
}

/// Decodes one base64url part; padding and non-canonical trailing bits are
/// rejected.
pub(super) fn decode_part(part: &str) -> Result<Vec<u8>, JwtError> {
    URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| JwtError::Malformed("invalid base64url"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        URL_SAFE_NO_PAD.encode(s)
    }

    fn token(header: &str) -> String {
        format!("{}.{}.c2ln", b64(header), b64(r#"{"sub":"a"}"#))
    }

    #[test]
    fn parses_a_well_formed_token() {
        let t = token(r#"{"alg":"RS256","kid":"k1","typ":"JWT"}"#);
        let parts = parse(&t, 8192).unwrap();
        assert_eq!(parts.header.alg, Algorithm::RS256);
        assert_eq!(parts.header.kid.as_deref(), Some("k1"));
        assert_eq!(parts.header.typ.as_deref(), Some("JWT"));
        assert_eq!(parts.signature, "c2ln");
        assert!(t.starts_with(parts.message));
        assert_eq!(parts.message.matches('.').count(), 1);
    }

    #[test]
    fn rejects_malformed_tokens() {
        let cases: &[(String, JwtError)] = &[
            (
                "a.b".into(),
                JwtError::Malformed("not three dot-separated parts"),
            ),
            (
                "a.b.c.d".into(),
                JwtError::Malformed("not three dot-separated parts"),
            ),
            ("..".into(), JwtError::Malformed("empty part")),
            (
                format!("{}=.e30.c2ln", b64(r#"{"alg":"RS256"}"#)),
                JwtError::Malformed("invalid base64url"),
            ),
            (token(r#"{"alg":"none"}"#), JwtError::UnsupportedAlg),
            (token(r#"{"alg":"HS999"}"#), JwtError::UnsupportedAlg),
            (
                token(r#"{"kid":"x"}"#),
                JwtError::Malformed("header is not a JSON object with `alg`"),
            ),
            (
                token(r#"{"alg":"RS256","alg":"HS256"}"#),
                JwtError::Malformed("header names a member twice (RFC 7519 §4)"),
            ),
            (token(r#"{"alg":7}"#), JwtError::Malformed(NOT_A_HEADER)),
            (
                token(r#"[{"alg":"RS256"}]"#),
                JwtError::Malformed(NOT_A_HEADER),
            ),
            (
                token(r#"{"alg":"RS256","kid":1}"#),
                JwtError::Malformed("header `kid` is not a string"),
            ),
            (
                token(r#"{"alg":"RS256","typ":["JWT"]}"#),
                JwtError::Malformed("header `typ` is not a string"),
            ),
            (
                token(r#"{"alg":"RS256","typ":null}"#),
                JwtError::Malformed("header `typ` is not a string"),
            ),
            (
                token(r#"{"alg":"none","crit":["exp"]}"#),
                JwtError::UnsupportedCrit,
            ),
            (
                token(r#"{"alg":"RS256","crit":null}"#),
                JwtError::UnsupportedCrit,
            ),
            (
                token(r#"{"alg":"RS256","crit":["exp"],"exp":1}"#),
                JwtError::UnsupportedCrit,
            ),
            (
                token(r#"{"alg":"RS256","crit":[]}"#),
                JwtError::UnsupportedCrit,
            ),
        ];
        for (t, want) in cases {
            assert_eq!(parse(t, 8192).unwrap_err(), *want, "token {t}");
        }
    }

    #[test]
    fn any_member_named_twice_is_malformed() {
        let twice = JwtError::Malformed("header names a member twice (RFC 7519 §4)");
        for header in [
            r#"{"alg":"RS256","typ":"JWT","typ":"JWT"}"#,
            r#"{"alg":"RS256","kid":"a","kid":"b"}"#,
            r#"{"alg":"RS256","x5t":"a","x5t":"b"}"#,
            r#"{"alg":"RS256","jwk":{"kty":"EC","kty":"RSA"}}"#,
            r#"{"alg":"RS256","t\u0079p":"JWT","typ":"JWE"}"#,
        ] {
            assert_eq!(parse(&token(header), 8192).unwrap_err(), twice, "{header}");
        }
    }

    #[test]
    fn rejects_non_canonical_base64() {
        // "e30" is `{}`; "e31" decodes to the same bytes with non-zero
        // trailing bits, a second spelling of one token.
        assert!(decode_part("e30").is_ok());
        assert!(decode_part("e31").is_err());
    }

    #[test]
    fn caps_token_size_before_parsing() {
        let t = token(r#"{"alg":"RS256"}"#);
        assert_eq!(parse(&t, t.len() - 1).unwrap_err(), JwtError::TooLarge);
        assert!(parse(&t, t.len()).is_ok());
    }
}
