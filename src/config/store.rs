//! The `store` section: where sessions, API keys and JWT revocations live
//! (Redis, standalone, Cluster or Sentinel, or the embedded store), the
//! deadlines and circuit breaker of a Redis read, and how long a cached
//! record may serve while the store fails.

use super::secret::SecretSource;
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

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
