//! The `identity_token` section (how ward signs the identity tokens it
//! sends backends: issuer, keys, rotation lead) and the per-policy
//! `identity_token` block (which header, which audience, how long).
//! Parsing and the checks the config alone can tell; the keys are read
//! by `identity_token::keys`, and `setup.rs` reports a key that does not
//! load.

use super::Problems;
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

/// The default header a signed identity token travels in.
pub const DEFAULT_TOKEN_HEADER: &str = "x-ward-identity";

/// The longest `ttl` a policy may give its tokens: they are bearer
/// credentials for the backend, meant to be short.
pub const MAX_TOKEN_TTL: Duration = Duration::from_secs(3600);

/// How ward signs identity tokens (`identity_token`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IdentityTokenConfig {
    /// The `iss` of every token, and of the discovery document served at
    /// `{issuer}/.well-known/openid-configuration`: the URL backends
    /// reach ward's admin port under (e.g. `http://ward.auth.svc:9090`).
    pub issuer: Option<String>,
    /// Signing keys (PKCS#8 or SEC 1 PEM files, e.g. a mounted Secret).
    /// Empty: one key generated at start (a single replica only: each
    /// process would generate its own).
    pub keys: Vec<SigningKeyConfig>,
    /// The algorithm of the key generated when `keys` is empty.
    pub generate: SigningAlgorithm,
    /// A key that appears in a reload is published at once but signs only
    /// this long after (or at its `not_before`, if later): the time for
    /// backends' JWKS caches to learn it.
    #[serde(with = "humantime_serde")]
    pub publish_lead: Duration,
}

impl Default for IdentityTokenConfig {
    fn default() -> Self {
        Self {
            issuer: None,
            keys: Vec::new(),
            generate: SigningAlgorithm::Es256,
            publish_lead: Duration::from_secs(15 * 60),
        }
    }
}

/// One signing key (`identity_token.keys[N]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SigningKeyConfig {
    /// The private key, PEM: `PRIVATE KEY` (PKCS#8) or `EC PRIVATE KEY`.
    pub pem_file: PathBuf,
    #[serde(default)]
    pub algorithm: SigningAlgorithm,
    /// The key's `kid`; by default its RFC 7638 thumbprint.
    #[serde(default)]
    pub kid: Option<String>,
    /// Unix seconds before which this key never signs (it is published
    /// from the moment it is configured): the rotation schedule that every
    /// replica reading the same Secret follows alike.
    #[serde(default)]
    pub not_before: Option<u64>,
}

/// How an identity token is signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Deserialize)]
pub enum SigningAlgorithm {
    /// ECDSA P-256 with SHA-256: every common JWT library verifies it.
    #[default]
    #[serde(rename = "ES256")]
    Es256,
    /// Ed25519, written with RFC 9864's fully-specified `alg` `Ed25519`.
    #[serde(rename = "Ed25519")]
    Ed25519,
    /// The same Ed25519 key and signature, with the older `alg` `EdDSA`
    /// (RFC 8037) for verifiers that know only that one.
    #[serde(rename = "EdDSA")]
    EdDsa,
}

impl SigningAlgorithm {
    /// The JWS `alg` this writes.
    pub fn as_str(self) -> &'static str {
        match self {
            SigningAlgorithm::Es256 => "ES256",
            SigningAlgorithm::Ed25519 => "Ed25519",
            SigningAlgorithm::EdDsa => "EdDSA",
        }
    }
}

/// A policy's identity token (`policies.NAME.identity_token`, or a
/// route's inline `identity_token`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenProfileConfig {
    /// The header it is sent in (overwritten if the client sent one).
    #[serde(default = "default_header")]
    pub header: String,
    /// The token's `aud`: the backend's name.
    pub audience: String,
    /// How long a token lives; never past the credential's own expiry.
    #[serde(default = "default_ttl", with = "humantime_serde")]
    pub ttl: Duration,
}

fn default_header() -> String {
    DEFAULT_TOKEN_HEADER.to_string()
}

fn default_ttl() -> Duration {
    Duration::from_secs(60)
}

/// The checks of one policy's `identity_token` block at `path`.
pub(super) fn check_profile(profile: &TokenProfileConfig, path: &str, p: &mut Problems) {
    if !super::is_valid_header_name(&profile.header) {
        p.add(
            format!("{path}.header"),
            "must be a lowercase header name".to_string(),
        );
    }
    if profile.audience.is_empty() || profile.audience.bytes().any(|b| b < 0x20 || b == 0x7f) {
        p.add(
            format!("{path}.audience"),
            "must be non-empty text without control characters".to_string(),
        );
    }
    if profile.ttl < Duration::from_secs(3) || profile.ttl > MAX_TOKEN_TTL {
        p.add(
            format!("{path}.ttl"),
            "must be between 3s and 1h".to_string(),
        );
    }
}

/// The checks of the `identity_token` section, given whether any policy
/// asks for a token.
pub(super) fn check_section(config: &IdentityTokenConfig, used: bool, p: &mut Problems) {
    match config.issuer.as_deref() {
        None if used => p.add(
            "identity_token.issuer",
            "a policy sends identity tokens: set the issuer URL backends check `iss` against",
        ),
        Some(iss) if !(iss.starts_with("https://") || iss.starts_with("http://")) => p.add(
            "identity_token.issuer",
            "must be an http(s) URL (the discovery document is served under it)",
        ),
        Some(iss) if iss.ends_with('/') => p.add(
            "identity_token.issuer",
            "must not end with `/` (`{issuer}/.well-known/...` would have `//`)",
        ),
        _ => {}
    }
    let mut kids: Vec<&str> = config
        .keys
        .iter()
        .filter_map(|k| k.kid.as_deref())
        .collect();
    kids.sort_unstable();
    if kids.windows(2).any(|w| w[0] == w[1]) {
        p.add("identity_token.keys", "two keys have the same kid");
    }
    if let Some(i) = config
        .keys
        .iter()
        .position(|k| k.kid.as_deref() == Some(""))
    {
        p.add(format!("identity_token.keys[{i}].kid"), "must not be empty");
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    fn paths(yaml: &str) -> Vec<String> {
        let config = Config::from_yaml(yaml).unwrap();
        config.validate().into_iter().map(|p| p.path).collect()
    }

    #[test]
    fn every_problem_names_its_field() {
        assert_eq!(
            paths(
                "policies: {a: {identity_token: {audience: '', header: X-Bad, ttl: 2s}}}\n\
                 routes: [{prefix: /r, identity_token: {audience: r, ttl: 2h}}]\n"
            ),
            [
                "policies.a.identity_token.header",
                "policies.a.identity_token.audience",
                "policies.a.identity_token.ttl",
                "routes[0].identity_token.ttl",
                "identity_token.issuer",
            ]
        );
        for issuer in ["ward.local", "https://ward.local/"] {
            let yaml = format!(
                "identity_token: {{issuer: \"{issuer}\"}}\n\
                 policies: {{a: {{identity_token: {{audience: a}}}}}}\n"
            );
            assert_eq!(paths(&yaml), ["identity_token.issuer"], "{issuer}");
        }
        let twice = "identity_token:\n  issuer: https://w\n  keys: [{pem_file: /a, kid: k}, {pem_file: /b, kid: k}]\n";
        assert_eq!(paths(twice), ["identity_token.keys"]);
        // Defaults: a 60 s token in x-ward-identity; no issuer needed
        // while no policy sends tokens.
        let config = Config::from_yaml("policies: {a: {identity_token: {audience: a}}}").unwrap();
        let profile = config.policies["a"].identity_token.clone().unwrap();
        assert_eq!(profile.header, "x-ward-identity");
        assert_eq!(profile.ttl.as_secs(), 60);
        assert!(paths("identity_token: {publish_lead: 1m}").is_empty());
    }

    /// A header set beside the identity (the token, the principal) never
    /// takes a name the identity already has, or a reserved one: the
    /// backend would get two values through the module.
    #[test]
    fn headers_beside_the_identity_take_names_of_their_own() {
        let issuer = "identity_token: {issuer: https://w}\n";
        let token = |header: &str| {
            format!(
                "{issuer}policies: {{a: {{identity_token: {{audience: a, header: {header}}}}}}}\n"
            )
        };
        for taken in [
            "x-user-id",
            "x-auth-method",
            "x-user-scopes",
            "x-ward-principal",
        ] {
            assert_eq!(
                paths(&token(taken)),
                ["policies.a.identity_token.header"],
                "{taken}"
            );
        }
        assert_eq!(
            paths(&token("authorization")),
            ["policies.a.identity_token.header"]
        );
        let claim = format!(
            "{issuer}jwt: {{claims: {{headers: [{{claim: dept, header: x-dept}}]}}}}\n\
             routes: [{{prefix: /r, identity_token: {{audience: r, header: x-dept}}}}]\n"
        );
        assert_eq!(paths(&claim), ["routes[0].identity_token.header"]);
        for (principal, problem) in [
            ("x-user-id", true),
            ("x-user-email", true),
            ("cookie", true),
            ("x-ward-identity", false),
            ("x-caller", false),
        ] {
            let yaml = format!("workload: {{header: {principal}}}\n");
            let expected: &[&str] = if problem { &["workload.header"] } else { &[] };
            assert_eq!(paths(&yaml), expected, "{principal}");
        }
        // A disabled kind's headers are free: the API key id header only
        // counts with api_keys on (the default).
        assert_eq!(
            paths("workload: {header: x-api-key-id}\n"),
            ["workload.header"]
        );
        let off = "api_keys: {enabled: false}\njwt: {keys: [{kid: k, alg: HS256, secret: {value: s3cr3t-s3cr3t-s3cr3t-s3cr3t-s3cr3t}}]}\nworkload: {header: x-api-key-id}\n";
        assert_eq!(paths(off), Vec::<String>::new());
    }
}
