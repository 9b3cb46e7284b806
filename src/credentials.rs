//! Which credential a request carries, and whether the request is well
//! formed enough to say. Pure: a header map in, a credential or a deny
//! reason out, nothing verified yet.
//!
//! A malformed *request* (an unsupported scheme, two different
//! credentials) is a 400; a present but bad *credential* is the
//! verifier's business (401).

use crate::config::Config;
use crate::decision::Reason;
use crate::request::Request;

/// A credential found in a request, borrowed from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential<'a> {
    Bearer(&'a str),
    Session(&'a str),
    ApiKey(&'a str),
}

/// Where to look for credentials.
#[derive(Debug, Clone)]
pub struct Extractor {
    /// The header carrying the JWT (`None`: JWTs off). For
    /// `authorization` the `Bearer` scheme is required; any other header
    /// holds the bare token (a `Bearer ` prefix is tolerated).
    pub jwt_header: Option<String>,
    /// Session cookie name and header (`None`: sessions off).
    pub session: Option<(String, String)>,
    /// API key header and `Authorization` scheme (`None`: API keys off).
    pub api_key: Option<(String, String)>,
}

impl Extractor {
    pub fn from_config(config: &Config) -> Self {
        let jwt_on = !(config.jwt.keys.is_empty() && config.jwt.jwks.is_empty());
        Self {
            jwt_header: jwt_on.then(|| config.jwt.header.clone()),
            session: config.sessions.enabled.then(|| {
                (
                    config.sessions.cookie.clone(),
                    config.sessions.header.clone(),
                )
            }),
            api_key: config.api_keys.enabled.then(|| {
                (
                    config.api_keys.header.clone(),
                    config.api_keys.scheme.clone(),
                )
            }),
        }
    }

    /// The one credential the request carries. Two different ones (even
    /// of the same kind) are ambiguous: which identity would win is
    /// exactly what an attacker would like to choose.
    pub fn extract<'a>(&self, req: &Request<'a>) -> Result<Credential<'a>, Reason> {
        let mut found: Vec<Credential<'a>> = Vec::with_capacity(1);
        if let Some(value) = req.header("authorization") {
            found.push(self.authorization(value)?);
        }
        if let Some(header) = self.jwt_header.as_deref().filter(|h| *h != "authorization")
            && let Some(value) = req.header(header)
        {
            found.push(Credential::Bearer(token(strip_bearer(value.trim()))?));
        }
        if let Some((header, _)) = &self.api_key
            && let Some(value) = req.header(header)
        {
            found.push(Credential::ApiKey(token(value.trim())?));
        }
        if let Some((cookie, header)) = &self.session {
            if let Some(value) = req.header(header) {
                found.push(Credential::Session(token(value.trim())?));
            }
            if let Some(cookies) = req.header("cookie") {
                for value in cookie_values(cookies, cookie) {
                    found.push(Credential::Session(value));
                }
            }
        }
        found.dedup();
        match found.as_slice() {
            [] => Err(Reason::MissingCredential),
            [one] => Ok(*one),
            _ => Err(Reason::MultipleCredentials),
        }
    }

    /// `Authorization: Bearer <jwt>` or `Authorization: <scheme> <key>`.
    fn authorization<'a>(&self, value: &'a str) -> Result<Credential<'a>, Reason> {
        let value = value.trim();
        let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
        let rest = rest.trim_start();
        if self.jwt_header.as_deref() == Some("authorization")
            && scheme.eq_ignore_ascii_case("bearer")
        {
            return Ok(Credential::Bearer(token(rest)?));
        }
        match &self.api_key {
            Some((_, s)) if scheme.eq_ignore_ascii_case(s) => Ok(Credential::ApiKey(token(rest)?)),
            _ => Err(Reason::UnsupportedScheme),
        }
    }
}

/// A credential value: non-empty, no whitespace, and no comma (Envoy
/// joins a repeated header with commas: two credentials).
fn token(value: &str) -> Result<&str, Reason> {
    // One branch-free pass over the bytes for the common, clean case; the
    // exact checks below only run for a value that is not.
    let suspicious = value.bytes().fold(false, |bad, b| {
        bad | (b <= b' ') | (b == b',') | (b >= 0x7f)
    });
    if !suspicious && !value.is_empty() {
        return Ok(value);
    }
    if value.contains(',') {
        return Err(Reason::MultipleCredentials);
    }
    if value.is_empty() || value.contains(char::is_whitespace) {
        return Err(Reason::MalformedAuthorization);
    }
    Ok(value)
}

fn strip_bearer(value: &str) -> &str {
    match value.get(..7) {
        Some(p) if p.eq_ignore_ascii_case("bearer ") => value[7..].trim_start(),
        _ => value,
    }
}

/// Every value of cookie `name` in a `Cookie` header (RFC 6265 §5.4;
/// Envoy joins several `Cookie` headers with `; `). Quotes around a value
/// are removed.
fn cookie_values<'h>(header: &'h str, name: &str) -> Vec<&'h str> {
    header
        .split(';')
        .filter_map(|pair| {
            let (k, v) = pair.trim().split_once('=')?;
            (k.trim() == name).then(|| {
                let v = v.trim();
                v.strip_prefix('"')
                    .and_then(|v| v.strip_suffix('"'))
                    .unwrap_or(v)
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::Headers;

    fn extractor() -> Extractor {
        Extractor {
            jwt_header: Some("authorization".into()),
            session: Some(("session_id".into(), "x-session-id".into())),
            api_key: Some(("x-api-key".into(), "ApiKey".into())),
        }
    }

    fn extract(ex: &Extractor, pairs: &[(&str, &str)]) -> Result<String, Reason> {
        let req = Request {
            method: "GET",
            host: "h",
            path: "/",
            headers: Headers::new(pairs),
            policy: None,
            source_ip: None,
        };
        ex.extract(&req).map(|c| match c {
            Credential::Bearer(t) => format!("jwt:{t}"),
            Credential::Session(s) => format!("session:{s}"),
            Credential::ApiKey(k) => format!("apikey:{k}"),
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
                Ok("session:s1"),
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
            session: None,
            api_key: None,
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
}
