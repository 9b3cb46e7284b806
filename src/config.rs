//! ward's configuration: one serde struct with defaults, read once from YAML.
//!
//! Loading has two steps so that `ward check-config` can report every
//! problem at once: [`Config::from_yaml`] rejects what does not parse (an
//! unknown field, a wrong type), naming the field path; [`Config::validate`]
//! then checks meaning (a key file that cannot be read, an issuer list that
//! is empty) and returns every problem with its path. Field-by-field
//! documentation lives in `docs/configuration.md`.

mod api_keys;
mod backchannel;
mod cache;
mod files;
mod headers;
mod identity_token;
mod introspection;
mod jwt;
mod limits;
mod listen;
mod log;
mod management;
mod policy;
mod reload;
mod runtime;
mod secret;
mod sessions;
mod store;
mod tracing;
mod validate;
mod workload;

pub use api_keys::ApiKeysConfig;
pub use backchannel::{BackchannelConfig, LOGOUT_TYPE, MAX_TOKEN_AGE};
pub use cache::CacheConfig;
pub use files::Part;
pub use headers::HeadersConfig;
pub use identity_token::{
    DEFAULT_TOKEN_HEADER, IdentityTokenConfig, MAX_TOKEN_TTL, SigningAlgorithm, SigningKeyConfig,
    TokenProfileConfig,
};
pub use introspection::{
    ClientAuth, INTROSPECTION_TIMEOUT_WARN, IntrospectionConfig, IntrospectionProvider,
    MAX_INTROSPECTION_TIMEOUT, is_loopback_url, is_safe_endpoint, is_token_byte,
};
pub use jwt::{
    ClaimHeader, ClaimMapping, DEFAULT_TYPES, JwksSource, JwtConfig, MAX_VERIFY_QUEUE,
    MAX_VERIFY_THREADS, RevocationConfig, StaticKey, VerifyConfig, VerifyPriority,
};
pub use limits::*;
pub use listen::{
    DEFAULT_HANDSHAKE_TIMEOUT, DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_REQUEST_BYTES, Listen,
    MAX_CONNECTIONS_LIMIT, MAX_HEADER_LIST_SIZE_RANGE, MAX_REQUEST_BYTES_RANGE,
};
pub use log::{Log, LogFormat};
pub use management::{
    MIN_TOKEN_BYTES, ManagementAuth, ManagementConfig, ManagementTls, read_token,
};
pub use policy::{
    BUILTIN_POLICIES, Mode, OnStoreError, PolicyConfig, Requirement, ResponsesConfig, RouteConfig,
};
pub use reload::ReloadConfig;
pub use runtime::Runtime;
pub use secret::{EnvSource, ProcessEnv, Secret, SecretError, SecretSource};
pub use sessions::{CLIENT_IP, FieldHeader, FingerprintConfig, FingerprintMode, SessionsConfig};
pub use store::{RedisConfig, RedisMode, StoreConfig};
pub use tracing::{OtlpConfig, OtlpProtocol, TracingConfig};
pub use validate::{Problems, is_valid_header_name};
pub use workload::{
    CertHeader, DEFAULT_PRINCIPAL_HEADER, ForwardedCertConfig, PatternForm, PrincipalPattern,
    WorkloadConfig, WorkloadRequirement, check_principal_patterns,
};

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

/// The whole configuration file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub listen: Listen,
    pub runtime: Runtime,
    pub log: Log,
    pub jwt: JwtConfig,
    pub headers: HeadersConfig,
    pub cache: CacheConfig,
    pub store: StoreConfig,
    pub sessions: SessionsConfig,
    pub api_keys: ApiKeysConfig,
    /// Request routes, first match wins (see `docs/policies.md`).
    pub routes: Vec<RouteConfig>,
    /// Named policies, for routes and Envoy's `ward_policy`.
    pub policies: BTreeMap<String, PolicyConfig>,
    /// The policy for a request no route matches: `required` when
    /// `routes` is empty, else `deny`.
    pub default_policy: Option<String>,
    /// How denies are rendered: status overrides, login redirects.
    pub responses: ResponsesConfig,
    /// Failed-authentication budgets (429 before the store).
    pub limits: LimitsConfig,
    /// How a running `ward serve` notices a changed config.
    pub reload: ReloadConfig,
    /// OpenTelemetry traces (off unless `tracing.otlp` is set).
    pub tracing: TracingConfig,
    /// How identity tokens for backends are signed (the policies that
    /// send one say so in their own `identity_token`).
    pub identity_token: IdentityTokenConfig,
    /// The management API (off unless `management.listen` is set) and
    /// OpenID Connect back-channel logout.
    pub management: ManagementConfig,
    /// Where a calling workload's principal may come from, and the header
    /// an allow carries it in.
    pub workload: WorkloadConfig,
    /// Opaque access tokens, checked at their provider (RFC 7662).
    pub introspection: IntrospectionConfig,
}

impl Config {
    /// Whether any opaque-token provider is configured.
    pub fn introspection_on(&self) -> bool {
        !self.introspection.providers.is_empty()
    }

    /// Whether bearer tokens are read at all: JWTs or opaque tokens.
    pub fn bearer_on(&self) -> bool {
        !(self.jwt.keys.is_empty() && self.jwt.jwks.is_empty()) || self.introspection_on()
    }

    /// What `ward check-config` prints as warnings: valid, but likely
    /// not what was meant (each with its field path).
    pub fn warnings(&self) -> Vec<ConfigProblem> {
        let mut p = Problems(Vec::new());
        self.introspection.warnings(&mut p);
        self.http_client_ip_warning(&mut p);
        p.0
    }

    /// HTTP mode learns the client's address only from `x-forwarded-for`
    /// (Envoy's `http_service` sends no peer address), and only with
    /// `trusted_hops` above 0: at 0, its checks have none.
    fn http_client_ip_warning(&self, p: &mut Problems) {
        let fp = &self.sessions.fingerprint;
        let fingerprint_ip = self.sessions.enabled
            && fp.mode != FingerprintMode::Off
            && fp.attributes.iter().any(|a| a == CLIENT_IP);
        if self.listen.http.is_none() || fp.trusted_hops > 0 {
            return;
        }
        if self.limits.enabled || fingerprint_ip {
            p.add(
                "sessions.fingerprint.trusted_hops",
                "0 with listen.http set: HTTP-mode checks have no client IP (Envoy's http_service sends none; ward reads it from x-forwarded-for only with trusted_hops above 0), so limits.per_ip does not apply to them and a fingerprint's client_ip is empty; set it to the number of proxies that append to x-forwarded-for (1 behind one Envoy with use_remote_address: true)",
            );
        }
    }

    /// Every policy's identity token settings (named policies, then
    /// routes' inline ones), in config order.
    pub fn token_profiles(&self) -> impl Iterator<Item = &TokenProfileConfig> {
        let named = self
            .policies
            .values()
            .filter_map(|p| p.identity_token.as_ref());
        named.chain(self.routes.iter().filter_map(|r| r.identity_token.as_ref()))
    }
}

/// The YAML parser starts its messages with its own notion of the path
/// (`jwt.leeway: invalid value`); the problem already carries the path.
pub(crate) fn strip_location_prefix(message: &str, path: &str) -> String {
    match message.split_once(": ") {
        Some((head, rest)) if !head.contains(' ') && path.starts_with(head) => rest.to_string(),
        _ => message.to_string(),
    }
}

/// One problem in a config file, with the path of the field at fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    pub path: String,
    pub message: String,
}

impl std::fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Why a config could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Parse(ConfigProblem),
    #[error("{} problem(s):\n{}", .0.len(), render(.0))]
    Invalid(Vec<ConfigProblem>),
}

fn render(problems: &[ConfigProblem]) -> String {
    problems
        .iter()
        .map(|p| format!("  {p}"))
        .collect::<Vec<_>>()
        .join("\n")
}

impl Config {
    /// Parses YAML; an empty document gives the defaults.
    pub fn from_yaml(text: &str) -> Result<Config, ConfigError> {
        if text.trim().is_empty() {
            return Ok(Config::default());
        }
        let de = serde_yaml_ng::Deserializer::from_str(text);
        serde_path_to_error::deserialize(de).map_err(|e| {
            // `.` is the root; an empty path is an empty key (`"": 1`).
            let path = match e.path().to_string() {
                p if p == "." || p.is_empty() => "(root)".to_string(),
                p => p,
            };
            let message = strip_location_prefix(&e.inner().to_string(), &path);
            ConfigError::Parse(ConfigProblem { path, message })
        })
    }

    /// Reads and parses a config file, and checks what the config alone
    /// can tell ([`Config::validate`]). Not enough to run on: the checks
    /// that compile policies, keys and files are `setup::load`'s, which
    /// every command uses.
    pub fn read(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let config = Config::from_yaml(&text)?;
        let problems = config.validate();
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError::Invalid(problems))
        }
    }
}
