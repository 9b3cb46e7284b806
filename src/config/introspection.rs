//! The `introspection` section: opaque access tokens, checked by asking
//! the provider that issued them (OAuth 2.0 Token Introspection, RFC 7662).
//! Per provider: where its endpoint is (given, or found by OpenID
//! discovery from its issuer), how ward authenticates to it, its
//! deadline, which bearer tokens go there, and how long its answers are
//! kept. Globally: how many calls may be in flight and how many may start
//! per second, since per-address limits do not stop random tokens sent
//! from many addresses, and every one of them would be a call.

use super::secret::SecretSource;
use super::validate::Problems;
use serde::Deserialize;
use std::time::Duration;

/// The deadline `check-config` warns above: an answer must beat Envoy's
/// default 200 ms ext_authz timeout with room for the rest of the check.
pub const INTROSPECTION_TIMEOUT_WARN: Duration = Duration::from_millis(150);
/// The deadline `check-config` refuses above.
pub const MAX_INTROSPECTION_TIMEOUT: Duration = Duration::from_secs(5);

/// Opaque tokens and the providers that answer for them.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IntrospectionConfig {
    /// Tried in order: a bearer token that is not a JWT goes to the first
    /// provider whose format it matches.
    pub providers: Vec<IntrospectionProvider>,
    /// Calls to providers in flight at once, all providers together; one
    /// more is refused at once (503 `introspection_overloaded`).
    pub max_concurrency: usize,
    /// Calls to providers started per second, all providers together
    /// (a burst of as many is allowed); beyond, 503
    /// `introspection_overloaded`.
    pub max_rate: u32,
}

impl Default for IntrospectionConfig {
    fn default() -> Self {
        Self {
            providers: Vec::new(),
            max_concurrency: 64,
            max_rate: 200,
        }
    }
}

/// How ward authenticates to the introspection endpoint (RFC 7662 §2.1
/// requires it; the names are OpenID Connect Core §9's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuth {
    /// HTTP Basic with `client_id` and `client_secret`.
    #[default]
    ClientSecretBasic,
    /// `client_id` and `client_secret` in the form body.
    ClientSecretPost,
    /// A JWT signed with `private_key` (ES256 or RS256), RFC 7523.
    PrivateKeyJwt,
}

/// One provider.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntrospectionProvider {
    /// The provider's issuer URL: its `introspection_endpoint` is read
    /// from `{issuer}/.well-known/openid-configuration`, whose `issuer`
    /// must equal this exactly. Exclusive with `endpoint`.
    #[serde(default)]
    pub issuer: Option<String>,
    /// The introspection endpoint itself. Exclusive with `issuer`.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// ward's client id at the provider.
    pub client_id: String,
    #[serde(default)]
    pub client_auth: ClientAuth,
    /// For `client_secret_basic` and `client_secret_post`.
    #[serde(default)]
    pub client_secret: Option<SecretSource>,
    /// A PEM private key (EC P-256 or RSA), for `private_key_jwt`.
    #[serde(default)]
    pub private_key: Option<SecretSource>,
    /// Deadline for one call.
    #[serde(default = "defaults::timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// Only tokens starting with this go to this provider.
    #[serde(default)]
    pub prefix: Option<String>,
    /// Shortest token sent (shorter: `malformed_token`, no call).
    #[serde(default = "defaults::min_length")]
    pub min_length: usize,
    /// Longest token sent.
    #[serde(default = "defaults::max_length")]
    pub max_length: usize,
    /// Accepted `aud` values of an answer; empty: not checked.
    #[serde(default)]
    pub audiences: Vec<String>,
    /// An active answer is kept until its `exp`, at most this long.
    #[serde(default = "defaults::max_ttl", with = "humantime_serde")]
    pub max_ttl: Duration,
    /// An inactive answer is kept this long (0: not kept).
    #[serde(default = "defaults::negative_ttl", with = "humantime_serde")]
    pub negative_ttl: Duration,
    /// How often the discovery document is read again (`issuer` only).
    #[serde(default = "defaults::refresh", with = "humantime_serde")]
    pub refresh_interval: Duration,
}

mod defaults {
    use std::time::Duration;
    pub(super) fn timeout() -> Duration {
        Duration::from_millis(150)
    }
    pub(super) fn min_length() -> usize {
        16
    }
    pub(super) fn max_length() -> usize {
        4096
    }
    pub(super) fn max_ttl() -> Duration {
        Duration::from_secs(300)
    }
    pub(super) fn negative_ttl() -> Duration {
        Duration::from_secs(10)
    }
    pub(super) fn refresh() -> Duration {
        Duration::from_secs(300)
    }
}

/// Whether `url` is `http(s)://` on a loopback host (where plain HTTP is
/// allowed: the token never leaves the machine).
pub fn is_loopback_url(url: &str) -> bool {
    let Some(rest) = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
    else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    };
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Whether a token may be sent to `url`: TLS, or a loopback host.
pub fn is_safe_endpoint(url: &str) -> bool {
    url.starts_with("https://") || (url.starts_with("http://") && is_loopback_url(url))
}

impl IntrospectionConfig {
    /// What the config alone can tell (secrets and keys load in setup.rs).
    pub(super) fn check(&self, p: &mut Problems) {
        if !(1..=4096).contains(&self.max_concurrency) {
            p.add(
                "introspection.max_concurrency",
                "must be between 1 and 4096",
            );
        }
        if !(1..=100_000).contains(&self.max_rate) {
            p.add("introspection.max_rate", "must be between 1 and 100000");
        }
        for (i, provider) in self.providers.iter().enumerate() {
            let path = format!("introspection.providers[{i}]");
            provider.check(&path, p);
            if provider.prefix.is_none() && i + 1 < self.providers.len() {
                p.add(
                    format!("{path}.prefix"),
                    "a provider without a prefix takes every opaque token: it must be the last",
                );
            }
        }
    }

    /// Deadlines above [`INTROSPECTION_TIMEOUT_WARN`]: valid, but an
    /// answer may then come after Envoy has given up.
    pub(super) fn warnings(&self, p: &mut Problems) {
        for (i, provider) in self.providers.iter().enumerate() {
            if provider.timeout > INTROSPECTION_TIMEOUT_WARN
                && provider.timeout <= MAX_INTROSPECTION_TIMEOUT
            {
                p.add(
                    format!("introspection.providers[{i}].timeout"),
                    "above 150ms: the answer may come after Envoy's default 200 ms ext_authz timeout",
                );
            }
        }
    }
}

impl IntrospectionProvider {
    fn check(&self, path: &str, p: &mut Problems) {
        self.check_where(path, p);
        if self.client_id.is_empty() {
            p.add(format!("{path}.client_id"), "must not be empty");
        }
        let (secret, key) = (self.client_secret.is_some(), self.private_key.is_some());
        match self.client_auth {
            ClientAuth::ClientSecretBasic | ClientAuth::ClientSecretPost if !secret || key => {
                p.add(
                    format!("{path}.client_secret"),
                    "client_secret_basic and client_secret_post need `client_secret` and no `private_key`",
                );
            }
            ClientAuth::PrivateKeyJwt if !key || secret => p.add(
                format!("{path}.private_key"),
                "private_key_jwt needs `private_key` and no `client_secret`",
            ),
            _ => {}
        }
        if self.timeout.is_zero() || self.timeout > MAX_INTROSPECTION_TIMEOUT {
            p.add(format!("{path}.timeout"), "must be above 0 and at most 5s");
        }
        if let Some(prefix) = &self.prefix
            && (prefix.is_empty() || !prefix.bytes().all(is_token_byte))
        {
            p.add(
                format!("{path}.prefix"),
                "must be non-empty token characters (letters, digits, -._~+/)",
            );
        }
        if self.min_length == 0 || self.min_length > self.max_length || self.max_length > 16_384 {
            p.add(
                format!("{path}.min_length"),
                "need 1 <= min_length <= max_length <= 16384",
            );
        }
        if self.max_ttl < Duration::from_secs(1) {
            p.add(format!("{path}.max_ttl"), "must be at least 1s");
        }
        if self.refresh_interval < Duration::from_secs(1) {
            p.add(format!("{path}.refresh_interval"), "must be at least 1s");
        }
    }

    /// `issuer` or `endpoint`, and never a plain-HTTP address off the
    /// machine: the token would cross the network in the clear.
    fn check_where(&self, path: &str, p: &mut Problems) {
        let (field, url) = match (&self.issuer, &self.endpoint) {
            (Some(issuer), None) => ("issuer", issuer),
            (None, Some(endpoint)) => ("endpoint", endpoint),
            _ => {
                p.add(path, "exactly one of `issuer` or `endpoint` must be set");
                return;
            }
        };
        if !is_safe_endpoint(url) {
            p.add(
                format!("{path}.{field}"),
                "must start with https:// (http:// only on a loopback host)",
            );
        }
    }
}

/// A byte of an RFC 6750 `b64token` (`=` only as trailing padding, which
/// the token check allows separately).
pub fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_only_on_loopback() {
        assert!(is_safe_endpoint("https://idp.example/introspect"));
        assert!(is_safe_endpoint("http://127.0.0.1:8080/x"));
        assert!(is_safe_endpoint("http://localhost/x"));
        assert!(is_safe_endpoint("http://[::1]:9/x"));
        assert!(!is_safe_endpoint("http://idp.example/x"));
        assert!(!is_safe_endpoint("http://127.0.0.1.evil.example/x"));
        assert!(!is_safe_endpoint("ftp://127.0.0.1/x"));
    }
}
