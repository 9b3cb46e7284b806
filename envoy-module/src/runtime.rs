//! The module's one Tokio runtime, process-wide: store reads that miss
//! the cache, JWKS fetches and store invalidations of every filter config
//! run on it. Envoy's workers never block on it: a cache hit is decided on
//! the worker, and a check that waits resumes through Envoy's scheduler.
//!
//! Its size is ward's `runtime.worker_threads`, read from the first filter
//! config Envoy builds (the runtime starts then and lives as long as the
//! process; a thread count cannot change under running tasks). `0`, the
//! default, means one thread here, not one per CPU as in `ward serve`:
//! the runtime only carries misses, and Envoy's workers own the CPUs. A
//! later filter config asking for another count runs on the first one's
//! runtime, with a warning in Envoy's log.

use std::sync::OnceLock;
use tokio::runtime::{Builder, Runtime};

/// The runtime and the thread count it started with.
struct Started {
    runtime: Runtime,
    threads: usize,
}

/// The threads `runtime.worker_threads` asks for, in the module.
pub fn threads(worker_threads: usize) -> usize {
    worker_threads.max(1)
}

/// The runtime, started with `threads` threads by the first caller. The
/// second value is a warning when it runs with another count.
pub fn runtime(threads: usize) -> Result<(&'static Runtime, Option<String>), String> {
    static RUNTIME: OnceLock<Result<Started, String>> = OnceLock::new();
    let started = RUNTIME
        .get_or_init(|| {
            let runtime = Builder::new_multi_thread()
                .worker_threads(threads)
                .thread_name("ward-module")
                .enable_all()
                .build()
                .map_err(|e| format!("cannot start the module's runtime: {e}"))?;
            Ok(Started { runtime, threads })
        })
        .as_ref()
        .map_err(Clone::clone)?;
    let warning = (started.threads != threads).then(|| {
        format!(
            "ward: runtime.worker_threads asks for {threads} thread(s), but the module's \
             runtime already runs {} (the first filter config's; restart Envoy to change it)",
            started.threads
        )
    });
    Ok((&started.runtime, warning))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    /// nextest runs each test in its own process: this one starts the
    /// runtime.
    #[test]
    fn the_first_config_sizes_the_runtime_and_a_later_one_is_warned() {
        assert_eq!(threads(0), 1);
        assert_eq!(threads(4), 4);
        let (first, warning) = runtime(2).unwrap();
        assert_eq!(warning, None);
        assert_eq!(first.metrics().num_workers(), 2);
        let (again, warning) = runtime(1).unwrap();
        assert!(std::ptr::eq(first, again));
        let warning = warning.expect("a warning");
        assert!(
            warning.contains("asks for 1 thread(s)") && warning.contains("already runs 2"),
            "{warning}"
        );
    }
}
