//! The `headers` section: the identity headers ward sets on an allowed
//! request, and the prefixes of the client headers it scrubs so no forged
//! identity reaches the backend.

use serde::Deserialize;

/// The identity headers ward manages.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HeadersConfig {
    pub user_id: String,
    pub auth_method: String,
    /// A session's `email` field.
    pub email: String,
    /// A session's `roles` field, as a list.
    pub roles: String,
    /// A session's or API key's `scopes` field, as a list.
    pub scopes: String,
    /// A client header starting with one of these (or its underscore
    /// spelling) is removed unless ward sets it.
    pub managed_prefixes: Vec<String>,
    /// A claim value longer than this is rejected, not truncated.
    pub max_value_bytes: usize,
    /// The `realm` in `WWW-Authenticate`.
    pub realm: String,
}

impl Default for HeadersConfig {
    fn default() -> Self {
        Self {
            user_id: "x-user-id".into(),
            auth_method: "x-auth-method".into(),
            email: EMAIL_HEADER.into(),
            roles: ROLES_HEADER.into(),
            scopes: SCOPES_HEADER.into(),
            managed_prefixes: vec!["x-user-".into(), "x-auth-".into()],
            max_value_bytes: 1024,
            realm: "ward".into(),
        }
    }
}

/// `headers.email`, `.roles`, `.scopes`, which the default
/// `jwt.claims.headers` also use: one identity, one set of names.
pub(super) const EMAIL_HEADER: &str = "x-user-email";
pub(super) const ROLES_HEADER: &str = "x-user-roles";
pub(super) const SCOPES_HEADER: &str = "x-user-scopes";
