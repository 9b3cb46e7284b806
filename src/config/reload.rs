//! The `reload` section: how a running `ward serve` notices a changed
//! config (SIGHUP always works; this adds polling), and how long a new
//! config's JWKS sources may take to load before the reload is refused.
//!
//! Polling, not inotify: Kubernetes updates a mounted ConfigMap or Secret
//! by swapping a `..data` symlink, which inotify watches on the file miss
//! unless they watch the directory and follow the swap. Reading each file
//! by its path every interval and comparing a digest sees every kind of
//! change (an edit, a rename over it, a symlink swap) with no extra crate,
//! and a config and its key files are a few kilobytes.

use serde::Deserialize;
use std::time::Duration;

/// Reload settings. These take effect at the next reload check, not at
/// restart.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReloadConfig {
    /// How often the config file and every file it references are read and
    /// compared with what is running. `0s`: only SIGHUP reloads.
    #[serde(with = "humantime_serde")]
    pub watch_interval: Duration,
    /// How long a new config's JWKS sources may take to load (each once)
    /// before the reload is refused and the running config kept.
    #[serde(with = "humantime_serde")]
    pub keys_timeout: Duration,
}

impl Default for ReloadConfig {
    fn default() -> Self {
        Self {
            watch_interval: Duration::from_secs(2),
            keys_timeout: Duration::from_secs(10),
        }
    }
}
