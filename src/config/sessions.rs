//! The `sessions` section: an opaque session id in a cookie or a header,
//! looked up as `session:{sid}`; which record fields become headers, and
//! the device fingerprint a session may be bound to.

use serde::Deserialize;

/// Session credentials.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SessionsConfig {
    pub enabled: bool,
    /// Cookie carrying the session id.
    pub cookie: String,
    /// Header carrying the session id (for non-browser clients).
    pub header: String,
    /// Further session hash fields copied into headers.
    pub fields: Vec<FieldHeader>,
    pub fingerprint: FingerprintConfig,
    /// Whether the session header and cookie reach the backend on allow
    /// (default yes; no cuts the cookie out of `cookie`).
    pub forward_credential: bool,
}

impl Default for SessionsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            cookie: "session_id".into(),
            header: "x-session-id".into(),
            fields: Vec::new(),
            fingerprint: FingerprintConfig::default(),
            forward_credential: true,
        }
    }
}

/// A session hash field and the header it goes to.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldHeader {
    pub field: String,
    pub header: String,
}

/// Device fingerprint binding for sessions.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FingerprintConfig {
    /// `enforce` (mismatch denies), `log` (mismatch is logged), or `off`.
    pub mode: FingerprintMode,
    /// `client_ip` and/or request header names, in hashing order.
    pub attributes: Vec<String>,
    /// Proxies in front of Envoy that append to `x-forwarded-for`; 0 means
    /// the client is the peer Envoy saw.
    pub trusted_hops: usize,
    /// Bits of an IPv4 address kept before hashing (24 tolerates a mobile
    /// client moving within its carrier's /24).
    pub ipv4_prefix: u8,
    /// Bits of an IPv6 address kept before hashing.
    pub ipv6_prefix: u8,
}

impl Default for FingerprintConfig {
    fn default() -> Self {
        Self {
            mode: FingerprintMode::Enforce,
            attributes: vec![
                CLIENT_IP.into(),
                "user-agent".into(),
                "accept-language".into(),
            ],
            trusted_hops: 0,
            ipv4_prefix: 32,
            ipv6_prefix: 128,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FingerprintMode {
    Enforce,
    Log,
    Off,
}

/// The fingerprint attribute that stands for the client's (masked) IP
/// rather than a header.
pub const CLIENT_IP: &str = "client_ip";
