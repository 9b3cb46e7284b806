//! Taking a compact JWS apart, strictly, before any key is touched.
//!
//! The header is parsed here rather than by `jsonwebtoken` because ward
//! must see fields the library ignores: `crit` (an extension ward does not
//! understand must fail the token, RFC 7515 §4.1.11) and `kid` for key
//! choice. Base64url must be canonical and unpadded, so one token has one
//! spelling and one cache key.

use super::JwtError;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;
use serde::Deserialize;

/// The parts of a compact JWS, borrowed from the token string.
#[derive(Debug)]
pub struct Parts<'a> {
    /// `header.payload`: the signed message.
    pub message: &'a str,
    pub payload: &'a str,
    pub signature: &'a str,
    pub header: Header,
}

/// The header fields ward acts on.
#[derive(Debug, PartialEq, Eq)]
pub struct Header {
    pub alg: Algorithm,
    pub kid: Option<String>,
}

#[derive(Deserialize)]
struct RawHeader {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    crit: Option<serde_json::Value>,
}

/// Splits and checks a token of at most `max_bytes`.
pub fn parse(token: &str, max_bytes: usize) -> Result<Parts<'_>, JwtError> {
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
    let raw: RawHeader = serde_json::from_slice(&decode_part(h)?)
        .map_err(|_| JwtError::Malformed("header is not a JSON object with `alg`"))?;
    if raw.crit.is_some() {
        return Err(JwtError::UnsupportedCrit);
    }
    let alg = raw
        .alg
        .parse::<Algorithm>()
        .map_err(|_| JwtError::UnsupportedAlg)?;
    Ok(Parts {
        message: &token[..h.len() + 1 + p.len()],
        payload: p,
        signature: s,
        header: Header { alg, kid: raw.kid },
    })
}

/// Decodes one base64url part; padding and non-canonical trailing bits are
/// rejected.
pub fn decode_part(part: &str) -> Result<Vec<u8>, JwtError> {
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
                JwtError::Malformed("header is not a JSON object with `alg`"),
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
