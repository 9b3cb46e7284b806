//! Who the caller is, as the backend will see it: the identity headers
//! rendered from a verified credential.
//!
//! Claim values end up in HTTP headers, so they are checked here: a value
//! with a control character (CR and LF would split headers; NUL truncates
//! them in C backends) or longer than the cap is rejected, never cleaned
//! up or truncated, since a silently altered identity is worse than none.

use crate::config::{ClaimHeader, ClaimMapping, HeadersConfig};
use crate::credential_kind::CredentialKind;
use serde_json::{Map, Value};
use std::borrow::Cow;

mod packed;
mod signed;

pub use packed::{EncodedAllow, Headers, Identity, Items};
pub use signed::{Signed, Slot, TokenSlots};

/// An identity field by field, as the credential kinds render it; packed
/// into an [`Identity`] (`Identity::from`) to be kept and shared.
#[derive(Debug, Clone)]
pub struct IdentityParts {
    pub user_id: String,
    pub method: CredentialKind,
    /// `(name, value)` pairs, names unique: user id, method, then claims.
    pub headers: Vec<(String, String)>,
    /// A JWT's `jti` and `sid`, kept for revocation checks on every use.
    pub jti: Option<String>,
    pub session_id: Option<String>,
    /// Roles and scopes, for route policies (`policy.rs`).
    pub roles: Vec<String>,
    pub scopes: Vec<String>,
}

/// One more header for [`HeaderRules::build`]: `(source, header, value)`,
/// the source (a claim or record field) named only in an error; an empty
/// value sends no header.
pub type Extra<'a> = (&'a str, &'a str, Cow<'a, str>);

/// The header rules every credential kind shares.
#[derive(Debug, Clone)]
pub struct HeaderRules {
    pub user_id_header: String,
    pub method_header: String,
    /// Where a session's `email`, `roles` and `scopes` (an API key's
    /// `scopes`) go: `headers.email`, `.roles`, `.scopes`.
    pub email_header: String,
    pub roles_header: String,
    pub scopes_header: String,
    pub max_value_bytes: usize,
}

impl HeaderRules {
    /// The rules of the `headers` section.
    pub fn new(headers: &HeadersConfig) -> Self {
        Self {
            user_id_header: headers.user_id.clone(),
            method_header: headers.auth_method.clone(),
            email_header: headers.email.clone(),
            roles_header: headers.roles.clone(),
            scopes_header: headers.scopes.clone(),
            max_value_bytes: headers.max_value_bytes,
        }
    }

    /// An identity's parts with the user id and method headers, then `extra`
    /// [`Extra`] triples (the first value for a header wins), every value
    /// checked for header safety. The triples borrow what they can: only
    /// the headers kept are copied, into the parts.
    pub fn build<'a>(
        &self,
        user_id: &str,
        method: CredentialKind,
        extra: impl IntoIterator<Item = Extra<'a>>,
    ) -> Result<IdentityParts, IdentityError> {
        self.check_value("user id", user_id)?;
        let extra = extra.into_iter();
        let mut headers = Vec::with_capacity(2 + extra.size_hint().0);
        headers.push((self.user_id_header.clone(), user_id.to_string()));
        headers.push((self.method_header.clone(), method.as_str().to_string()));
        for (source, header, value) in extra {
            if value.is_empty() || headers.iter().any(|(name, _)| name == header) {
                continue;
            }
            self.check_value(source, &value)?;
            headers.push((header.to_string(), value.into_owned()));
        }
        Ok(IdentityParts {
            user_id: user_id.to_string(),
            method,
            headers,
            jti: None,
            session_id: None,
            roles: Vec::new(),
            scopes: Vec::new(),
        })
    }

    fn check_value(&self, source: &str, value: &str) -> Result<(), IdentityError> {
        let bad = |why| {
            Err(IdentityError::BadValue {
                claim: source.to_string(),
                why,
            })
        };
        if value.len() > self.max_value_bytes {
            return bad("longer than headers.max_value_bytes");
        }
        if value.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f) {
            return bad("contains a control character (CR, LF, NUL, ...)");
        }
        Ok(())
    }
}

/// A comma-separated list header value from a string: split on spaces
/// and commas, joined with commas (`"read write"` becomes `read,write`).
pub fn list_value(s: &str) -> String {
    split_list(s).collect::<Vec<_>>().join(",")
}

/// A list value's items: split on spaces and commas, empties dropped.
pub fn list_items(s: &str) -> Vec<String> {
    split_list(s).map(str::to_string).collect()
}

/// Why verified claims could not become an identity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    #[error("claim `{0}` (the user id) is missing or not a non-empty string")]
    MissingUserId(String),
    #[error("claim `{claim}` cannot go into a header: {why}")]
    BadValue { claim: String, why: &'static str },
}

/// Renders claims into identity headers, as configured.
#[derive(Debug, Clone)]
pub struct ClaimRenderer {
    user_id_claim: String,
    mappings: Vec<ClaimHeader>,
    roles_claims: Vec<String>,
    scopes_claims: Vec<String>,
    rules: HeaderRules,
}

impl ClaimRenderer {
    /// The mapping of `jwt.claims`, under these header rules.
    pub fn new(claims: &ClaimMapping, rules: HeaderRules) -> Self {
        Self {
            user_id_claim: claims.user_id.clone(),
            mappings: claims.headers.clone(),
            roles_claims: claims.roles.clone(),
            scopes_claims: claims.scopes.clone(),
            rules,
        }
    }

    pub fn render(
        &self,
        claims: &Map<String, Value>,
        method: CredentialKind,
    ) -> Result<Identity, IdentityError> {
        let user_id = match lookup(claims, &self.user_id_claim) {
            Some(Value::String(s)) if !s.is_empty() => s.as_str(),
            _ => return Err(IdentityError::MissingUserId(self.user_id_claim.clone())),
        };
        let mut extra = Vec::new();
        for m in &self.mappings {
            let Some(value) = lookup(claims, &m.claim) else {
                continue;
            };
            let text = render_value(value, m.list).map_err(|why| IdentityError::BadValue {
                claim: m.claim.clone(),
                why,
            })?;
            if let Some(text) = text {
                extra.push((m.claim.as_str(), m.header.as_str(), Cow::Owned(text)));
            }
        }
        let mut identity = self.rules.build(user_id, method, extra)?;
        identity.jti = string_claim(claims, "jti");
        identity.session_id = string_claim(claims, "sid");
        identity.roles = list_claim(claims, &self.roles_claims);
        identity.scopes = list_claim(claims, &self.scopes_claims);
        Ok(identity.into())
    }
}

fn string_claim(claims: &Map<String, Value>, name: &str) -> Option<String> {
    match claims.get(name) {
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        _ => None,
    }
}

/// The items of the first of `names` present: an array of strings, or
/// a string of items separated by spaces or commas (OAuth's `scope`).
fn list_claim(claims: &Map<String, Value>, names: &[String]) -> Vec<String> {
    let Some(value) = names.iter().find_map(|n| lookup(claims, n)) else {
        return Vec::new();
    };
    match value {
        Value::String(s) => list_items(s),
        Value::Array(items) => items
            .iter()
            .filter_map(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect(),
        _ => Vec::new(),
    }
}

/// A claim by name; a name with dots that is not itself a claim is read as
/// a path into nested objects (`realm_access.roles`). Namespaced claims
/// such as `https://example.com/roles` are found by their literal name.
fn lookup<'a>(claims: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    if let Some(v) = claims.get(name) {
        return Some(v);
    }
    let mut parts = name.split('.');
    let mut current = claims.get(parts.next()?)?;
    for part in parts {
        current = current.as_object()?.get(part)?;
    }
    Some(current)
}

/// A claim value as header text; `None` for null or an empty list.
fn render_value(value: &Value, list: bool) -> Result<Option<String>, &'static str> {
    let text = match value {
        Value::Null => return Ok(None),
        Value::String(s) if list => split_list(s).collect::<Vec<_>>().join(","),
        Value::String(s) => s.clone(),
        Value::Bool(_) | Value::Number(_) => value.to_string(),
        Value::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                let s = match item {
                    Value::String(s) => s.clone(),
                    Value::Bool(_) | Value::Number(_) => item.to_string(),
                    _ => return Err("an array element is not a string, number or boolean"),
                };
                if s.contains(',') {
                    return Err("an array element contains a comma");
                }
                out.push(s);
            }
            out.join(",")
        }
        Value::Object(_) => return Err("an object cannot be a header value"),
    };
    Ok((!text.is_empty()).then_some(text))
}

fn split_list(s: &str) -> impl Iterator<Item = &str> {
    s.split([' ', ',']).filter(|p| !p.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use serde_json::json;

    fn render(claims: Value) -> Result<Identity, IdentityError> {
        let config = Config::default();
        let renderer = ClaimRenderer::new(&config.jwt.claims, HeaderRules::new(&config.headers));
        renderer.render(claims.as_object().unwrap(), CredentialKind::Jwt)
    }

    fn header<'a>(id: &'a Identity, name: &str) -> Option<&'a str> {
        id.headers().find(|(n, _)| *n == name).map(|(_, v)| v)
    }

    #[test]
    fn default_mapping() {
        let id = render(json!({
            "sub": "alice", "email": "a@example.com",
            "roles": ["admin", "dev"], "scope": "read  write"
        }))
        .unwrap();
        assert_eq!(id.user_id(), "alice");
        assert_eq!(header(&id, "x-user-id"), Some("alice"));
        assert_eq!(header(&id, "x-auth-method"), Some("jwt"));
        assert_eq!(header(&id, "x-user-email"), Some("a@example.com"));
        assert_eq!(header(&id, "x-user-roles"), Some("admin,dev"));
        assert_eq!(header(&id, "x-user-scopes"), Some("read,write"));
    }

    #[test]
    fn first_present_claim_wins_and_absent_claims_add_nothing() {
        let id = render(json!({"sub": "bob", "scp": ["a", "b"]})).unwrap();
        assert_eq!(header(&id, "x-user-scopes"), Some("a,b"));
        assert_eq!(header(&id, "x-user-email"), None);
        assert_eq!(id.headers().len(), 3);
        let id = render(json!({"sub": "bob", "scope": "x", "scp": ["a"]})).unwrap();
        assert_eq!(header(&id, "x-user-scopes"), Some("x"));
    }

    #[test]
    fn rejects_values_that_would_corrupt_headers() {
        let long = "a".repeat(1025);
        for claims in [
            json!({"sub": "ali\r\nx-user-admin: 1"}),
            json!({"sub": "ali\nce"}),
            json!({"sub": "ali\u{0}ce"}),
            json!({"sub": "alice", "email": "a@b\r\n"}),
            json!({"sub": long}),
            json!({"sub": "alice", "roles": [["nested"]]}),
            json!({"sub": "alice", "roles": ["a,b"]}),
            json!({"sub": "alice", "email": {"o": 1}}),
        ] {
            assert!(
                matches!(render(claims.clone()), Err(IdentityError::BadValue { .. })),
                "{claims}"
            );
        }
        for claims in [json!({}), json!({"sub": ""}), json!({"sub": 42})] {
            assert!(matches!(
                render(claims),
                Err(IdentityError::MissingUserId(_))
            ));
        }
    }

    #[test]
    fn nested_and_namespaced_claims() {
        let claims = json!({
            "sub": "a",
            "realm_access": {"roles": ["r1"]},
            "https://example.com/roles": ["n1"]
        });
        let map = claims.as_object().unwrap();
        assert_eq!(lookup(map, "realm_access.roles"), Some(&json!(["r1"])));
        assert_eq!(
            lookup(map, "https://example.com/roles"),
            Some(&json!(["n1"]))
        );
        assert_eq!(lookup(map, "realm_access.nope"), None);
    }
}
