//! ward's configuration: one serde struct with defaults, read once from YAML.
//!
//! Loading has two steps so that `ward check-config` can report every
//! problem at once: [`Config::from_yaml`] rejects what does not parse (an
//! unknown field, a wrong type), naming the field path; [`Config::validate`]
//! then checks meaning (a key file that cannot be read, an issuer list that
//! is empty) and returns every problem with its path. Field-by-field
//! documentation lives in `docs/configuration.md`.

mod limits;
mod policy;
mod secret;

pub use limits::*;
pub use policy::{
    BUILTIN_POLICIES, Mode, OnStoreError, PolicyConfig, Requirement, ResponsesConfig, RouteConfig,
};
pub use secret::{EnvSource, ProcessEnv, Secret, SecretError, SecretSource};

use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

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
}

/// Where ward listens.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Listen {
    /// ext_authz gRPC (`Authorization/Check` and `grpc.health.v1`).
    pub grpc: SocketAddr,
    /// The same gRPC services on a Unix domain socket, for a sidecar Envoy.
    pub unix_socket: Option<PathBuf>,
    /// Admin HTTP: `/healthz`, `/readyz`, `/metrics`.
    pub admin: SocketAddr,
    /// HTTP ext_authz mode (Envoy `http_service`, nginx `auth_request`,
    /// Traefik `forwardAuth`); off unless set.
    pub http: Option<SocketAddr>,
    /// The largest `CheckRequest` ward reads on the gRPC listeners, in
    /// bytes (the message, without gRPC's 5-byte prefix). A larger one is
    /// denied 413 `request_too_large` from its prefix alone, unread.
    pub max_request_bytes: usize,
    /// Every listener: a connection whose first request has not fully
    /// arrived by then (HTTP/2: the preface and the first request's
    /// headers; HTTP/1: the request line and headers) is closed.
    #[serde(with = "humantime_serde")]
    pub handshake_timeout: Duration,
    /// Every listener, each on its own: at most this many open
    /// connections; one more is accepted and closed at once.
    pub max_connections: usize,
    /// The gRPC listeners: an HTTP/2 PING after this long without a frame
    /// from the peer; `0s` sends none.
    #[serde(with = "humantime_serde")]
    pub keepalive_interval: Duration,
    /// The gRPC listeners: a PING unanswered this long closes the
    /// connection (a dead peer).
    #[serde(with = "humantime_serde")]
    pub keepalive_timeout: Duration,
    /// The gRPC listeners: HTTP/2 `SETTINGS_MAX_CONCURRENT_STREAMS`, the
    /// checks one connection may have in flight.
    pub max_concurrent_streams: u32,
    /// The gRPC listeners: HTTP/2 `SETTINGS_MAX_HEADER_LIST_SIZE`, the
    /// largest header block (not the `CheckRequest`, which is the body)
    /// in bytes as HTTP/2 counts it (name + value + 32 per header).
    pub max_header_list_size: u32,
}

/// `listen.max_request_bytes` by default: 8 MiB, room for the body Envoy's
/// `with_request_body` buffers.
pub const DEFAULT_MAX_REQUEST_BYTES: usize = 8 * 1024 * 1024;
/// `listen.max_request_bytes` bounds: room for Envoy's default header
/// limit (60 KiB) below, 1 GiB above (a gRPC frame declares at most 4 GiB).
pub const MAX_REQUEST_BYTES_RANGE: std::ops::RangeInclusive<usize> = 64 * 1024..=1024 * 1024 * 1024;
/// `listen.handshake_timeout` by default: an Envoy sends its first check
/// right after connecting; 10 s is generous for a slow network and short
/// for a connection that never speaks.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// `listen.max_connections` by default, per listener: room for a gateway
/// fleet (Envoy opens about one connection per worker thread per ward:
/// 1024 is 128 Envoys of 8 workers), and a bound on what a flood of silent
/// connections can cost (up to about 35 KB each in RSS under glibc after
/// repeated floods, so about 35 MiB per listener; docs/configuration.md).
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;
/// `listen.max_connections` at most.
pub const MAX_CONNECTIONS_LIMIT: usize = 1 << 20;
/// `listen.max_header_list_size` bounds: gRPC's own headers need about
/// 1 KiB; 16 MiB is h2's own ceiling.
pub const MAX_HEADER_LIST_SIZE_RANGE: std::ops::RangeInclusive<u32> = 4 * 1024..=16 * 1024 * 1024;

impl Default for Listen {
    fn default() -> Self {
        Self {
            grpc: SocketAddr::from(([127, 0, 0, 1], 9001)),
            unix_socket: None,
            admin: SocketAddr::from(([127, 0, 0, 1], 9901)),
            http: None,
            max_request_bytes: DEFAULT_MAX_REQUEST_BYTES,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            keepalive_interval: Duration::from_secs(30),
            keepalive_timeout: Duration::from_secs(10),
            max_concurrent_streams: 1024,
            // hyper's own default, which ward used before it was a setting.
            max_header_list_size: 16 * 1024,
        }
    }
}

/// Process-level settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Runtime {
    /// Tokio worker threads; 0 means one per CPU.
    pub worker_threads: usize,
    /// After SIGTERM, how long ward keeps answering checks while reporting
    /// not-ready (`/readyz` 503, gRPC health NOT_SERVING), so load
    /// balancers and Envoy move away before the listeners close.
    #[serde(with = "humantime_serde")]
    pub drain_delay: Duration,
    /// Then, how long to wait for in-flight checks before exiting.
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
}

impl Default for Runtime {
    fn default() -> Self {
        Self {
            worker_threads: 0,
            drain_delay: Duration::ZERO,
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// Log output.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Log {
    pub format: LogFormat,
    /// A `tracing` filter: `info`, `ward=debug`, ...; `RUST_LOG` overrides.
    pub level: String,
}

impl Default for Log {
    fn default() -> Self {
        Self {
            format: LogFormat::Json,
            level: "info".into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Json,
    Text,
}

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
                map("email", defaults::EMAIL_HEADER, false),
                map("roles", defaults::ROLES_HEADER, true),
                map("scope", defaults::SCOPES_HEADER, true),
                map("scp", defaults::SCOPES_HEADER, true),
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
            email: defaults::EMAIL_HEADER.into(),
            roles: defaults::ROLES_HEADER.into(),
            scopes: defaults::SCOPES_HEADER.into(),
            managed_prefixes: vec!["x-user-".into(), "x-auth-".into()],
            max_value_bytes: 1024,
            realm: "ward".into(),
        }
    }
}

/// The in-process caches: verified tokens, and store reads.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheConfig {
    pub enabled: bool,
    pub max_entries: u64,
    /// A verified token lives at most this long, and never past its `exp`.
    #[serde(with = "humantime_serde")]
    pub max_ttl: Duration,
    /// A store read (session, API key, revocation) is fresh this long;
    /// invalidation messages evict sooner. Never past the key's TTL.
    #[serde(with = "humantime_serde")]
    pub store_ttl: Duration,
    /// A "not found" is remembered this long, so a flood of random ids
    /// does not become a flood of store calls.
    #[serde(with = "humantime_serde")]
    pub negative_ttl: Duration,
    /// Store reads held at most.
    pub store_max_entries: u64,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            max_entries: 100_000,
            max_ttl: Duration::from_secs(300),
            store_ttl: Duration::from_secs(30),
            negative_ttl: Duration::from_secs(5),
            store_max_entries: 100_000,
        }
    }
}

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

/// The YAML parser starts its messages with its own notion of the path
/// (`jwt.leeway: invalid value`); the problem already carries the path.
pub(crate) fn strip_location_prefix(message: &str, path: &str) -> String {
    match message.split_once(": ") {
        Some((head, rest)) if !head.contains(' ') && path.starts_with(head) => rest.to_string(),
        _ => message.to_string(),
    }
}

/// Where sessions and API keys live.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// Redis; when absent, ward uses its embedded in-process store.
    pub redis: Option<RedisConfig>,
    /// Embedded store only: a YAML file of sessions and API keys to load
    /// at startup (for demos and tests).
    pub seed_file: Option<PathBuf>,
    /// Prefix before every key name (`myapp:` makes `myapp:session:{sid}`).
    pub key_prefix: String,
    /// Serve a cached record this long past its freshness when the store
    /// fails; after that, deny with 503 `store_unavailable`.
    #[serde(with = "humantime_serde")]
    pub stale_if_error: Duration,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            redis: None,
            seed_file: None,
            key_prefix: String::new(),
            stale_if_error: Duration::from_secs(60),
        }
    }
}

/// How to reach Redis.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisConfig {
    /// `redis://[user@]host:port/db`, or `rediss://` for TLS. Standalone
    /// mode only; cluster and sentinel modes use `nodes`.
    #[serde(default)]
    pub url: Option<String>,
    /// `standalone` (default), `cluster`, or `sentinel`.
    #[serde(default)]
    pub mode: RedisMode,
    /// Cluster seed nodes, or the Sentinels, as URLs.
    #[serde(default)]
    pub nodes: Vec<String>,
    /// Sentinel only: the monitored master's name.
    #[serde(default)]
    pub master_name: Option<String>,
    /// ACL user name (overrides one in the URL).
    #[serde(default)]
    pub username: Option<String>,
    /// Password (overrides one in the URL); never logged.
    #[serde(default)]
    pub password: Option<SecretSource>,
    /// Deadline for one command, well under Envoy's 200 ms.
    #[serde(default = "defaults::redis_command_timeout", with = "humantime_serde")]
    pub command_timeout: Duration,
    /// Deadline for (re)connecting.
    #[serde(default = "defaults::redis_connect_timeout", with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Consecutive failures that open the circuit breaker.
    #[serde(default = "defaults::breaker_failures")]
    pub breaker_failures: u32,
    /// How long an open breaker fails fast before probing Redis again.
    #[serde(default = "defaults::breaker_open_for", with = "humantime_serde")]
    pub breaker_open_for: Duration,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RedisMode {
    #[default]
    Standalone,
    Cluster,
    Sentinel,
}

mod defaults {
    use std::time::Duration;
    /// `headers.email`, `.roles`, `.scopes`, which the default
    /// `jwt.claims.headers` also use: one identity, one set of names.
    pub(super) const EMAIL_HEADER: &str = "x-user-email";
    pub(super) const ROLES_HEADER: &str = "x-user-roles";
    pub(super) const SCOPES_HEADER: &str = "x-user-scopes";
    pub(super) fn jwks_refresh() -> Duration {
        Duration::from_secs(300)
    }
    pub(super) fn jwks_min_refetch() -> Duration {
        Duration::from_secs(30)
    }
    pub(super) fn jwks_timeout() -> Duration {
        Duration::from_secs(5)
    }
    pub(super) fn redis_command_timeout() -> Duration {
        Duration::from_millis(50)
    }
    pub(super) fn redis_connect_timeout() -> Duration {
        Duration::from_secs(1)
    }
    pub(super) fn breaker_failures() -> u32 {
        5
    }
    pub(super) fn breaker_open_for() -> Duration {
        Duration::from_secs(1)
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

/// The list `jwt.allowed_types` defaults to: plain JWTs and OAuth access
/// tokens (RFC 9068).
pub const DEFAULT_TYPES: [&str; 4] = ["JWT", "at+jwt", "application/jwt", "application/at+jwt"];

/// The fingerprint attribute that stands for the client's (masked) IP
/// rather than a header.
pub const CLIENT_IP: &str = "client_ip";

mod validate;

pub use validate::{Problems, is_valid_header_name};
