//! The kinds of credential ward checks, as one enum for every part that
//! names them: a policy's `accept` list in the config, the policy check,
//! the identity (`x-auth-method`) and the metrics' `method` label. Before,
//! each had its own copy and the copies were converted by hand.
//!
//! Four are user credentials a request carries (one per request); the
//! fifth, `mtls`, is the calling workload's certificate principal
//! (`workload.rs`), which rides beside them.

use serde::Deserialize;

/// A kind of credential; also how a caller authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
pub enum CredentialKind {
    #[serde(rename = "jwt")]
    Jwt,
    #[serde(rename = "session")]
    Session,
    #[serde(rename = "apikey")]
    ApiKey,
    /// An opaque bearer token, checked at its provider (RFC 7662).
    #[serde(rename = "opaque")]
    Opaque,
    /// The peer workload's principal (downstream mTLS), accepted alone.
    #[serde(rename = "mtls")]
    Mtls,
}

impl CredentialKind {
    pub const ALL: [CredentialKind; 5] = [
        CredentialKind::Jwt,
        CredentialKind::Session,
        CredentialKind::ApiKey,
        CredentialKind::Opaque,
        CredentialKind::Mtls,
    ];

    /// The name in the config, the `x-auth-method` header and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            CredentialKind::Jwt => "jwt",
            CredentialKind::Session => "session",
            CredentialKind::ApiKey => "apikey",
            CredentialKind::Opaque => "opaque",
            CredentialKind::Mtls => "mtls",
        }
    }
}
