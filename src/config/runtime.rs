//! The `runtime` section: Tokio's worker threads, and how ward drains on
//! SIGTERM (not ready first, then the listeners closed) so load balancers
//! and Envoy move away before a check is refused.

use serde::Deserialize;
use std::time::Duration;

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
