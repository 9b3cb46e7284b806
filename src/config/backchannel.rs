//! `management.backchannel_logout`: OpenID Connect Back-Channel Logout
//! 1.0. The identity provider POSTs a signed logout token; ward verifies it
//! with that provider's own keys (the `jwt.jwks` source discovered from its
//! issuer, so no second fetcher and no key written twice), then revokes the
//! sessions a login service recorded for it. See `docs/operations.md`.

use super::JwtConfig;
use super::validate::Problems;
use serde::Deserialize;
use std::time::Duration;

/// The longest replay window: a logout token is sent at once, and each
/// accepted `jti` is held in the store this long at most.
pub const MAX_TOKEN_AGE: Duration = Duration::from_secs(86_400);

/// The back-channel logout endpoint.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackchannelConfig {
    /// ward's client id at the provider: a logout token's `aud` must name it.
    pub client_id: String,
    /// The providers whose logouts are accepted, by issuer; each must be a
    /// `jwt.jwks[].issuer`, whose keys alone verify its logout tokens.
    pub issuers: Vec<String>,
    /// The header `typ` values a logout token may carry; a token without
    /// `typ` passes. `logout+jwt` by default (§2.4's explicit type); a
    /// provider that types its logout tokens `JWT` (Keycloak before 25)
    /// needs it added.
    #[serde(default = "default_types")]
    pub allowed_types: Vec<String>,
    /// The endpoint's path.
    #[serde(default = "default_path")]
    pub path: String,
    /// The replay window: a token issued longer ago is refused, and each
    /// accepted token's `jti` is remembered (in the store, for every ward)
    /// until then, or its `exp` if sooner.
    #[serde(default = "default_max_token_age", with = "humantime_serde")]
    pub max_token_age: Duration,
}

/// The `typ` of a logout token (Back-Channel Logout §2.4).
pub const LOGOUT_TYPE: &str = "logout+jwt";

fn default_types() -> Vec<String> {
    vec![LOGOUT_TYPE.into()]
}

fn default_path() -> String {
    "/backchannel-logout".into()
}

fn default_max_token_age() -> Duration {
    Duration::from_secs(600)
}

impl BackchannelConfig {
    /// Every problem, under `management.backchannel_logout`.
    pub(super) fn check(&self, jwt: &JwtConfig, p: &mut Problems) {
        const AT: &str = "management.backchannel_logout";
        if self.client_id.is_empty() {
            p.add(format!("{AT}.client_id"), "must not be empty");
        }
        if self.issuers.is_empty() {
            p.add(format!("{AT}.issuers"), "must name at least one issuer");
        }
        for (i, issuer) in self.issuers.iter().enumerate() {
            let discovered = jwt.jwks.iter().any(|s| s.issuer.as_ref() == Some(issuer));
            if !discovered {
                p.add(
                    format!("{AT}.issuers[{i}]"),
                    "must be a jwt.jwks[].issuer: a logout token is verified with its provider's keys only",
                );
            } else if issuer.contains('#') {
                p.add(format!("{AT}.issuers[{i}]"), "an issuer has no `#`");
            }
        }
        let path_ok = self.path.starts_with('/')
            && self.path.len() > 1
            && self
                .path
                .bytes()
                .all(|b| b.is_ascii_graphic() && b != b'?' && b != b'#');
        if !path_ok {
            p.add(
                format!("{AT}.path"),
                "must be an absolute path such as /backchannel-logout (no query)",
            );
        }
        if self.max_token_age.as_secs() < 1 || self.max_token_age > MAX_TOKEN_AGE {
            p.add(format!("{AT}.max_token_age"), "must be between 1s and 24h");
        }
    }
}
