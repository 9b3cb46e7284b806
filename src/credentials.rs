//! Which credential a request carries, and whether the request is well
//! formed enough to say. Pure: a header map in, a credential or a deny
//! reason out, nothing verified yet.
//!
//! A malformed *request* (an unsupported scheme, two credentials) is a 400;
//! a present but bad *credential* is the verifier's business (401).

use crate::decision::Reason;
use crate::request::Request;

/// A credential found in a request, borrowed from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential<'a> {
    Bearer(&'a str),
}

/// Where to look for credentials.
#[derive(Debug, Clone)]
pub struct Extractor {
    /// The header carrying the JWT. For `authorization` the `Bearer`
    /// scheme is required; any other header holds the bare token (a
    /// `Bearer ` prefix is tolerated).
    pub jwt_header: String,
}

impl Extractor {
    pub fn extract<'a>(&self, req: &Request<'a>) -> Result<Credential<'a>, Reason> {
        let Some(value) = req.header(&self.jwt_header) else {
            return Err(Reason::MissingCredential);
        };
        let token = if self.jwt_header == "authorization" {
            bearer(value)?
        } else {
            strip_bearer(value.trim())
        };
        if token.contains(',') {
            // Envoy joins a repeated header with commas: two credentials.
            return Err(Reason::MultipleCredentials);
        }
        if token.is_empty() || token.contains(char::is_whitespace) {
            return Err(Reason::MalformedAuthorization);
        }
        Ok(Credential::Bearer(token))
    }
}

/// `Bearer <token>` with a case-insensitive scheme (RFC 7235 §2.1).
fn bearer(value: &str) -> Result<&str, Reason> {
    let value = value.trim();
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(Reason::UnsupportedScheme);
    }
    Ok(rest.trim_start())
}

fn strip_bearer(value: &str) -> &str {
    match value.get(..7) {
        Some(p) if p.eq_ignore_ascii_case("bearer ") => value[7..].trim_start(),
        _ => value,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn extract(header: &str, pairs: &[(&str, &str)]) -> Result<String, Reason> {
        let headers: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let req = Request {
            method: "GET",
            host: "h",
            path: "/",
            headers: &headers,
            policy: None,
        };
        let ex = Extractor {
            jwt_header: header.into(),
        };
        ex.extract(&req).map(|Credential::Bearer(t)| t.to_string())
    }

    #[test]
    fn table() {
        use Reason::*;
        let a = "authorization";
        type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], Result<&'a str, Reason>);
        let cases: &[Case] = &[
            (a, &[], Err(MissingCredential)),
            (
                a,
                &[("authorization", "Bearer abc.def.ghi")],
                Ok("abc.def.ghi"),
            ),
            (a, &[("authorization", "bearer   abc")], Ok("abc")),
            (a, &[("authorization", "BEARER abc ")], Ok("abc")),
            (
                a,
                &[("authorization", "Basic dXNlcjpwYXNz")],
                Err(UnsupportedScheme),
            ),
            (
                a,
                &[("authorization", "abc.def.ghi")],
                Err(UnsupportedScheme),
            ),
            (
                a,
                &[("authorization", "Bearer")],
                Err(MalformedAuthorization),
            ),
            (
                a,
                &[("authorization", "Bearer a b")],
                Err(MalformedAuthorization),
            ),
            (
                a,
                &[("authorization", "Bearer a,Bearer b")],
                Err(MultipleCredentials),
            ),
            ("x-jwt", &[("x-jwt", "abc")], Ok("abc")),
            ("x-jwt", &[("x-jwt", "Bearer abc")], Ok("abc")),
            (
                "x-jwt",
                &[("authorization", "Bearer abc")],
                Err(MissingCredential),
            ),
        ];
        for (header, pairs, want) in cases {
            assert_eq!(
                extract(header, pairs),
                want.map(str::to_string),
                "{header} {pairs:?}"
            );
        }
    }
}
