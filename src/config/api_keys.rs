//! The `api_keys` section: API keys in a header or an `Authorization`
//! scheme, looked up by SHA-256 as `apikey:{hash}`; ward's key format,
//! and whether the key (a long-lived secret) reaches the backend.

use serde::Deserialize;

/// API key credentials.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiKeysConfig {
    pub enabled: bool,
    /// Header carrying the bare key.
    pub header: String,
    /// `Authorization` scheme carrying the key (`Authorization: ApiKey KEY`).
    pub scheme: String,
    /// Prefix of ward-issued keys (`PREFIX_...`).
    pub prefix: String,
    /// Also look up keys not in ward's format (16-256 visible ASCII).
    pub accept_foreign: bool,
    /// Header carrying the key's public id upstream.
    pub id_header: String,
    /// Whether the raw key reaches the backend on allow (default no: it
    /// is a long-lived secret, and backends log headers).
    pub forward_credential: bool,
}

impl Default for ApiKeysConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            header: "x-api-key".into(),
            scheme: "ApiKey".into(),
            prefix: "ward".into(),
            accept_foreign: false,
            id_header: "x-api-key-id".into(),
            forward_credential: false,
        }
    }
}
