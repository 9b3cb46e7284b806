//! The `jwt` section: how a token is read and verified strictly (header,
//! leeway, issuers, audiences, `typ`), the keys and JWKS sources it may be
//! verified with, which claims become identity headers, and revocation
//! through the store.

use super::headers::{EMAIL_HEADER, ROLES_HEADER, SCOPES_HEADER};
use super::secret::SecretSource;
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

/// JWT verification.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JwtConfig {
    /// Request header carrying `Bearer <token>`.
    pub header: String,
    /// Clock skew tolerated on `exp`, `nbf` and `iat`.
    #[serde(with = "humantime_serde")]
    pub leeway: Duration,
    /// Tokens longer than this are rejected before any parsing.
    pub max_token_bytes: usize,
    /// Accepted `iss` values; empty means `iss` is not checked.
    pub issuers: Vec<String>,
    /// Accepted `aud` values; empty means `aud` is not checked.
    pub audiences: Vec<String>,
    /// Reject tokens whose `exp` lies further than this in the future.
    #[serde(with = "humantime_serde")]
    pub max_lifetime: Option<Duration>,
    /// Header `typ` values a token may carry (case-insensitive, the
    /// `application/` prefix optional); a token without `typ` passes. A
    /// key or JWKS source may override it with its own `allowed_types`.
    pub allowed_types: Vec<String>,
    /// Keys written in the config (PEM file, inline PEM, or HMAC secret).
    pub keys: Vec<StaticKey>,
    /// JWKS documents, from a file or a URL, refreshed in the background.
    pub jwks: Vec<JwksSource>,
    /// Which claims become which identity headers.
    pub claims: ClaimMapping,
    /// Revocation checks against the store.
    pub revocation: RevocationConfig,
    /// Where new tokens are verified: off the thread that answers hits.
    pub verify: VerifyConfig,
    /// Whether the JWT header reaches the backend on allow (default yes).
    pub forward_credential: bool,
    /// A query parameter that may carry the JWT (RFC 6750 §2.3, which
    /// discourages it); off unless set. gRPC mode only: Envoy removes the
    /// parameter from the forwarded path.
    pub from_query: Option<String>,
}

impl Default for JwtConfig {
    fn default() -> Self {
        Self {
            header: "authorization".into(),
            leeway: Duration::from_secs(60),
            max_token_bytes: 8 * 1024,
            issuers: Vec::new(),
            audiences: Vec::new(),
            max_lifetime: None,
            allowed_types: DEFAULT_TYPES.iter().map(|t| t.to_string()).collect(),
            keys: Vec::new(),
            jwks: Vec::new(),
            claims: ClaimMapping::default(),
            revocation: RevocationConfig::default(),
            verify: VerifyConfig::default(),
            forward_credential: true,
            from_query: None,
        }
    }
}

/// JWT revocation through the store.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RevocationConfig {
    /// Deny a token whose `jti` is listed at `revoked_jti:{jti}`.
    pub check_jti: bool,
    /// Deny a token with a `sid` claim unless `session:{sid}` is live (not
    /// missing, expired or revoked): a logout also kills access tokens.
    pub require_session: bool,
}

/// The verification pool: a new token's signature and claims are checked
/// on these threads, so a cache hit never waits behind one on its own
/// thread (`verifications.rs`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VerifyConfig {
    /// Threads verifying new tokens; 0 verifies on the thread that runs
    /// the check (hits then queue behind verifications). Absent: one when
    /// ward may use two CPUs or more, else 0 ([`VerifyConfig::threads`]).
    pub threads: Option<usize>,
    /// New tokens waiting for a thread; one more is denied at once (503
    /// `verification_overloaded`).
    pub queue: usize,
    /// The threads' scheduling priority.
    pub priority: VerifyPriority,
}

/// The verification threads' scheduling priority.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VerifyPriority {
    /// `SCHED_IDLE`: they run only when nothing else on the CPU would,
    /// and never preempt the threads that answer hits.
    Idle,
    /// The same priority as every other thread: for hosts where other busy
    /// processes share ward's CPUs, which would starve an idle thread.
    Normal,
}

/// Upper bounds of `jwt.verify`: more threads than this only contend for
/// the cores; a deeper queue only waits past Envoy's timeout.
pub const MAX_VERIFY_THREADS: usize = 64;
pub const MAX_VERIFY_QUEUE: usize = 65_536;

impl Default for VerifyConfig {
    fn default() -> Self {
        // One thread when a second core exists (`threads()`): it verifies
        // there while the first answers hits. Normal priority: an idle
        // thread starves whenever another process keeps the CPUs busy
        // (Envoy beside ward, under load). 256 waiting
        // ES256 tokens (~65 µs each, docs/benchmarks.md) are ~17 ms of one
        // core's work: a fresh token still
        // answers well within Envoy's 200 ms, and a burst beyond that is
        // refused at once instead of timing out.
        Self {
            threads: None,
            queue: 256,
            priority: VerifyPriority::Normal,
        }
    }
}

impl VerifyConfig {
    /// The threads to start: as configured, else one when ward may use
    /// two CPUs or more and none with one. On one CPU a verification
    /// thread only takes turns with the thread answering hits: measured on
    /// the bench bed's tail run (one pinned core, 5 % new ES256 tokens),
    /// p99.9 was 6.7 ms verifying inline against 11.4 ms on a normal
    /// thread and 33 ms on an idle one (docs/benchmarks.md).
    pub fn threads(&self, cpus: usize) -> usize {
        self.threads.unwrap_or(usize::from(cpus >= 2))
    }
}

/// One verification key. Its `alg` is the only algorithm it verifies.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticKey {
    #[serde(default)]
    pub kid: Option<String>,
    pub alg: String,
    #[serde(default)]
    pub pem_file: Option<PathBuf>,
    #[serde(default)]
    pub pem: Option<String>,
    #[serde(default)]
    pub secret: Option<SecretSource>,
    /// Overrides `jwt.allowed_types` for tokens this key verifies.
    #[serde(default)]
    pub allowed_types: Option<Vec<String>>,
}

/// A JWKS document to load keys from.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwksSource {
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub file: Option<PathBuf>,
    /// An OpenID provider by its issuer URL: the JWKS address is read from
    /// `{issuer}/.well-known/openid-configuration` (OIDC discovery), whose
    /// `issuer` must equal this exactly.
    #[serde(default)]
    pub issuer: Option<String>,
    #[serde(default = "defaults::jwks_refresh", with = "humantime_serde")]
    pub refresh_interval: Duration,
    /// Minimum gap between refetches triggered by an unknown `kid`.
    #[serde(default = "defaults::jwks_min_refetch", with = "humantime_serde")]
    pub min_refetch_interval: Duration,
    /// Deadline for one fetch.
    #[serde(default = "defaults::jwks_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// Overrides `jwt.allowed_types` for tokens this source's keys verify.
    #[serde(default)]
    pub allowed_types: Option<Vec<String>>,
}

/// Claim-to-header mapping.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClaimMapping {
    /// The claim (dot path) that identifies the user; required in tokens.
    pub user_id: String,
    /// Further claims copied into headers; the first present claim wins
    /// for a header named twice.
    pub headers: Vec<ClaimHeader>,
    /// Where route policies read roles: the first of these claims present
    /// (an array, or a string split on spaces and commas).
    pub roles: Vec<String>,
    /// Where route policies read scopes, likewise.
    pub scopes: Vec<String>,
}

impl Default for ClaimMapping {
    fn default() -> Self {
        let map = |claim: &str, header: &str, list: bool| ClaimHeader {
            claim: claim.into(),
            header: header.into(),
            list,
        };
        Self {
            user_id: "sub".into(),
            headers: vec![
                map("email", EMAIL_HEADER, false),
                map("roles", ROLES_HEADER, true),
                map("scope", SCOPES_HEADER, true),
                map("scp", SCOPES_HEADER, true),
            ],
            roles: vec!["roles".into()],
            scopes: vec!["scope".into(), "scp".into()],
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClaimHeader {
    pub claim: String,
    pub header: String,
    /// Render as a comma-separated list: an array is joined, a string is
    /// split on spaces and commas (`"read write"` becomes `read,write`).
    #[serde(default)]
    pub list: bool,
}

/// The list `jwt.allowed_types` defaults to: plain JWTs and OAuth access
/// tokens (RFC 9068).
pub const DEFAULT_TYPES: [&str; 4] = ["JWT", "at+jwt", "application/jwt", "application/at+jwt"];

mod defaults {
    use std::time::Duration;
    pub(super) fn jwks_refresh() -> Duration {
        Duration::from_secs(300)
    }
    pub(super) fn jwks_min_refetch() -> Duration {
        Duration::from_secs(30)
    }
    pub(super) fn jwks_timeout() -> Duration {
        Duration::from_secs(5)
    }
}
