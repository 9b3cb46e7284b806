//! Which credential a request carries, and whether the request is well
//! formed enough to say. Pure: a header map (and the request path, for a
//! query token) in, a credential or a deny reason out, nothing verified yet.
//!
//! A malformed *request* (an unsupported scheme, two credentials, one sent
//! two ways) is a 400; a present but bad *credential* is a 401.
//!
//! Every credential value is read by one rule, wherever it comes from
//! (`Authorization`, the JWT header, the API key header, the session header
//! or cookie, the query): only HTTP optional whitespace (SP, HTAB) around it
//! is dropped. Anything else that is not visible ASCII (a line break, a
//! control character, a Unicode space) makes the credential malformed, so
//! `Bearer <T>\n` is never `<T>` (`str::trim` would have made it so).

use crate::config::Config;
use crate::credential_kind::CredentialKind;
use crate::introspection::OpaqueFormats;
use crate::reason::Reason;
use crate::request::Request;

/// The query parameter RFC 6750 §2.3 names for a bearer token.
pub const ACCESS_TOKEN: &str = "access_token";

/// A credential found in a request, borrowed from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential<'a> {
    /// A bearer token read as a JWT.
    Bearer(&'a str),
    Session(&'a str),
    ApiKey(&'a str),
    /// A bearer token that is not a JWT and matches an introspection
    /// provider's format (`introspection.providers`).
    Opaque(&'a str),
}

/// SHA-256 of a credential: the token cache's key, the limiter's key, and
/// (shortened) its name in logs. Nothing keeps the credential itself.
pub type CredentialHash = [u8; 32];

/// Hashes a credential.
pub fn hash_credential(credential: &str) -> CredentialHash {
    use sha2::{Digest, Sha256};
    Sha256::digest(credential.as_bytes()).into()
}

/// The first 12 hex digits of a credential's hash: enough to correlate log
/// lines, too little to help anyone guess the credential.
pub fn short_hash(hash: &CredentialHash) -> String {
    hex::encode(&hash[..6])
}

/// The 401 a malformed value of a credential kind gets.
fn malformed(kind: CredentialKind) -> Reason {
    match kind {
        CredentialKind::Jwt => Reason::MalformedToken,
        CredentialKind::Session => Reason::MalformedSessionId,
        CredentialKind::ApiKey => Reason::MalformedApiKey,
        // Never read from headers: the principal is `workload.rs`'s.
        CredentialKind::Mtls => Reason::MalformedPrincipal,
        CredentialKind::Opaque => Reason::MalformedToken,
    }
}

/// Where to look for credentials.
#[derive(Debug, Clone, Default)]
pub struct Extractor {
    /// The header carrying the JWT (`None`: JWTs off). For
    /// `authorization` the `Bearer` scheme is required; any other header
    /// holds the bare token (a `Bearer ` prefix is tolerated).
    pub jwt_header: Option<String>,
    /// The query parameter a JWT may come in (`jwt.from_query`; `None`:
    /// a query token is never a credential, but still one too many beside
    /// a credential in a header).
    pub jwt_query: Option<String>,
    /// Session cookie name and header (`None`: sessions off).
    pub session: Option<(String, String)>,
    /// API key header and `Authorization` scheme (`None`: API keys off).
    pub api_key: Option<(String, String)>,
    /// Which bearer tokens are opaque, for introspection (empty: none).
    pub opaque: OpaqueFormats,
}

impl Extractor {
    pub fn from_config(config: &Config) -> Self {
        let jwt_on = !(config.jwt.keys.is_empty() && config.jwt.jwks.is_empty());
        Self {
            jwt_header: config.bearer_on().then(|| config.jwt.header.clone()),
            jwt_query: config.jwt.from_query.clone().filter(|_| jwt_on),
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
            opaque: OpaqueFormats::from_config(&config.introspection),
        }
    }

    /// A bearer token: opaque when it is no JWT and an introspection
    /// provider's format matches it, else a JWT to verify.
    fn bearer<'a>(&self, token: &'a str) -> Credential<'a> {
        match self.opaque.provider_for(token) {
            Some(_) => Credential::Opaque(token),
            None => Credential::Bearer(token),
        }
    }

    /// The one credential the request carries. Two different ones (even
    /// of the same kind) are ambiguous: which identity would win is
    /// exactly what an attacker would like to choose. One credential sent
    /// two ways (a session id in cookie and header, a key in `x-api-key`
    /// and `Authorization`, a token in a header and the query) is two
    /// methods (RFC 6750 §2), equal or not: a malformed request.
    ///
    /// `decoded` holds a query token that had to be percent-decoded.
    pub fn extract<'a>(
        &self,
        req: &Request<'a>,
        decoded: &'a mut String,
    ) -> Result<Credential<'a>, Reason> {
        // Every carrier is read before any is judged: two carriers are a
        // malformed request (400) whatever either holds, and a 400 comes
        // before a credential's own 401 (docs/decisions.md, the order).
        let mut found: Vec<Result<Credential<'a>, Reason>> = Vec::with_capacity(1);
        if let Some(value) = req.header("authorization") {
            found.push(self.authorization(value));
        }
        if let Some(header) = self.jwt_header.as_deref().filter(|h| *h != "authorization")
            && let Some(value) = req.header(header)
        {
            let value = token(strip_bearer(trim_ows(value)), CredentialKind::Jwt);
            found.push(value.map(|t| self.bearer(t)));
        }
        if let Some((header, _)) = &self.api_key
            && let Some(value) = req.header(header)
        {
            let value = token(trim_ows(value), CredentialKind::ApiKey);
            found.push(value.map(Credential::ApiKey));
        }
        if let Some((cookie, header)) = &self.session {
            if let Some(value) = req.header(header) {
                let value = token(trim_ows(value), CredentialKind::Session);
                found.push(value.map(Credential::Session));
            }
            if let Some(cookies) = req.header("cookie") {
                // A browser holding the cookie for two paths sends it
                // twice: the same value twice in one carrier is one
                // credential; two carriers are two methods, equal or not.
                let mut values = cookie_values(cookies, cookie);
                values.dedup();
                for value in values {
                    found.push(cookie_token(value).map(Credential::Session));
                }
            }
        }
        let query = self.query_token(req.path, decoded);
        let carriers = found.len() + usize::from(!matches!(query, Ok(QueryToken::Absent)));
        let mut errors = found.iter().filter_map(|r| r.err()).chain(query.err());
        if let Some(reason) = errors.find(|r| r.status() == 400) {
            return Err(reason);
        }
        if carriers > 1 {
            return Err(Reason::MultipleCredentials);
        }
        match (found.pop(), query?) {
            (Some(one), QueryToken::Absent) => one,
            (None, QueryToken::Token(t)) => Ok(Credential::Bearer(t)),
            _ => Err(Reason::MissingCredential),
        }
    }

    /// `Authorization: Bearer <jwt>` or `Authorization: <scheme> <key>`.
    fn authorization<'a>(&self, value: &'a str) -> Result<Credential<'a>, Reason> {
        let value = trim_ows(value);
        let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
        let rest = trim_ows(rest);
        if self.jwt_header.as_deref() == Some("authorization")
            && scheme.eq_ignore_ascii_case("bearer")
        {
            return Ok(self.bearer(token(rest, CredentialKind::Jwt)?));
        }
        match &self.api_key {
            Some((_, s)) if scheme.eq_ignore_ascii_case(s) => {
                Ok(Credential::ApiKey(token(rest, CredentialKind::ApiKey)?))
            }
            _ => Err(Reason::UnsupportedScheme),
        }
    }

    /// A bearer token in the query: `jwt.from_query`'s parameter (a
    /// credential), or `access_token` where the query is not a place for
    /// credentials (present, so one method too many beside another). The
    /// query is only looked at when JWTs are on.
    fn query_token<'a>(
        &self,
        path: &'a str,
        decoded: &'a mut String,
    ) -> Result<QueryToken<'a>, Reason> {
        let Some((_, query)) = path.split_once('?') else {
            return Ok(QueryToken::Absent);
        };
        if self.jwt_header.is_none() {
            return Ok(QueryToken::Absent);
        }
        let param = self.jwt_query.as_deref();
        let (mut value, mut count, mut other) = (None, 0, false);
        for (name, raw) in query_pairs(query) {
            if param.is_some_and(|p| param_is(name, p)) {
                count += 1;
                value = Some(raw);
            } else if param_is(name, ACCESS_TOKEN) {
                other = true;
            }
        }
        match (count, value) {
            (0, _) if other => Ok(QueryToken::Present),
            (0, _) | (_, None) => Ok(QueryToken::Absent),
            (1, Some(raw)) if !other => {
                if !raw.contains(['%', '+']) {
                    return token(trim_ows(raw), CredentialKind::Jwt).map(QueryToken::Token);
                }
                *decoded = form_decode(raw).ok_or(Reason::MalformedToken)?;
                let decoded: &'a String = decoded;
                token(trim_ows(decoded), CredentialKind::Jwt).map(QueryToken::Token)
            }
            _ => Err(Reason::MultipleCredentials),
        }
    }
}

/// What the query holds of a bearer token.
#[derive(Debug, Clone, Copy)]
enum QueryToken<'a> {
    Absent,
    /// A token where tokens are not accepted: no credential, but a second
    /// method beside one.
    Present,
    Token(&'a str),
}

/// `value` without HTTP optional whitespace (SP, HTAB) at either end, and
/// nothing else removed (RFC 9110 §5.5).
pub fn trim_ows(value: &str) -> &str {
    value.trim_matches([' ', '\t'])
}

/// A credential value: non-empty visible ASCII, without a comma (Envoy
/// joins a repeated header with commas: two credentials). Empty or with
/// inner SP/HTAB, the *request* is malformed (400); with a control or
/// non-ASCII character, the credential is (its kind's 401).
fn token(value: &str, kind: CredentialKind) -> Result<&str, Reason> {
    // One branch-free pass over the bytes for the common, clean case; the
    // exact checks below only run for a value that is not.
    let suspicious = value.bytes().fold(false, |bad, b| {
        bad | (b <= b' ') | (b == b',') | (b >= 0x7f)
    });
    if !suspicious && !value.is_empty() {
        return Ok(value);
    }
    if value.is_empty() {
        return Err(Reason::MalformedAuthorization);
    }
    if value.contains(',') {
        return Err(Reason::MultipleCredentials);
    }
    if value.contains([' ', '\t']) {
        return Err(Reason::MalformedAuthorization);
    }
    Err(malformed(kind))
}

/// A session cookie's value, by the rule of [`token`]; an empty one (a
/// cookie cleared by value) is a malformed session id, as it always was.
fn cookie_token(value: &str) -> Result<&str, Reason> {
    if value.is_empty() {
        return Err(Reason::MalformedSessionId);
    }
    token(value, CredentialKind::Session)
}

fn strip_bearer(value: &str) -> &str {
    match value.get(..7) {
        Some(p) if p.eq_ignore_ascii_case("bearer ") => trim_ows(&value[7..]),
        _ => value,
    }
}

/// The `name=value` pieces of a `Cookie` header: split on `;` (RFC 6265
/// §5.4, and how HTTP mode and `ward explain` fold several `Cookie`
/// headers) and on `,` (how Envoy folds them into a gRPC check), each
/// without optional whitespace around it.
pub(crate) fn cookie_pieces(header: &str) -> impl Iterator<Item = &str> {
    header.split([';', ',']).map(trim_ows)
}

/// The name of a cookie piece (`name=value`), if it has one.
pub(crate) fn cookie_name(piece: &str) -> Option<&str> {
    piece.split_once('=').map(|(k, _)| trim_ows(k))
}

/// Every value of cookie `name` in a `Cookie` header, optional whitespace
/// and quotes around it removed.
fn cookie_values<'h>(header: &'h str, name: &str) -> Vec<&'h str> {
    cookie_pieces(header)
        .filter_map(|pair| {
            let (k, v) = pair.split_once('=')?;
            (trim_ows(k) == name).then(|| {
                let v = trim_ows(v);
                v.strip_prefix('"')
                    .and_then(|v| v.strip_suffix('"'))
                    .unwrap_or(v)
            })
        })
        .collect()
}

/// The `(name, raw value)` pairs of a query string, split on `&`.
pub(crate) fn query_pairs(query: &str) -> impl Iterator<Item = (&str, &str)> {
    query
        .split('&')
        .map(|pair| pair.split_once('=').unwrap_or((pair, "")))
}

/// Whether a raw query parameter name is `param` once form-decoded
/// (`access%5Ftoken` is `access_token` to every backend).
pub(crate) fn param_is(raw: &str, param: &str) -> bool {
    if raw.contains(['%', '+']) {
        form_decode(raw).is_some_and(|n| n == param)
    } else {
        raw == param
    }
}

/// A query value decoded as an `application/x-www-form-urlencoded` value
/// is: `+` is a space, `%XX` a byte, a `%` not followed by two hex digits
/// itself. `None` when the bytes are not UTF-8.
pub(crate) fn form_decode(raw: &str) -> Option<String> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |j: usize| bytes.get(j).and_then(|b| (*b as char).to_digit(16));
        match (bytes[i], hex(i + 1), hex(i + 2)) {
            (b'+', _, _) => out.push(b' '),
            (b'%', Some(hi), Some(lo)) => {
                // Two hex digits: at most 255.
                out.push(u8::try_from(hi * 16 + lo).unwrap_or(0));
                i += 2;
            }
            (b, _, _) => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests;
