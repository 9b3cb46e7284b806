//! More check workers than one: single-threaded runtimes ("cores") beside
//! the one `ward serve` runs on, each serving the gRPC connections it
//! accepts, never handing a connection's work to another thread.
//!
//! Why not Tokio's multi-thread scheduler: a check is a few microseconds,
//! and an HTTP/2 connection's streams are tasks. With two workers, the
//! streams one read brings in are stolen by the other worker, which must
//! be woken for them (a futex) and whose answers wake the connection's
//! task back on the first (another): measured on the benchmark bed (the
//! `cores` phase: ward on one CPU, 20k Check/s, one client connection),
//! 2 workers cost ~1.45 x the CPU per check of 1. Here a connection and
//! all its streams live on the core that accepted it, as on one worker,
//! and the cores share only what every check already shares (caches,
//! config, store clients: all thread-safe).
//!
//! What this means for spreading load: a connection uses one core. Envoy
//! opens one HTTP/2 connection to its ext_authz cluster per worker, so an
//! Envoy with N workers (`--concurrency`, one per CPU by default) spreads
//! its checks over N connections, and so over ward's cores; one busy
//! Envoy worker is served by one core. Every core accepts from the same
//! listening socket (the kernel hands each connection to one of them).
//! The HTTP ext_authz listener, the Unix socket, the admin port and the
//! background work (JWKS, invalidations, reload) stay on the first runtime.

use std::io;
use tokio::runtime::Handle;
use tokio::sync::oneshot;

/// The extra runtimes, each on its own thread, running until dropped.
pub(crate) struct Cores {
    handles: Vec<Handle>,
    /// Dropping a sender ends its core's thread (its tasks are dropped).
    stops: Vec<oneshot::Sender<()>>,
}

impl Cores {
    /// `extra` cores (threads `ward-core-1`, ...); none for 0.
    pub(crate) fn start(extra: usize) -> io::Result<Cores> {
        let mut cores = Cores {
            handles: Vec::with_capacity(extra),
            stops: Vec::with_capacity(extra),
        };
        for index in 1..=extra {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let (stop, stopped) = oneshot::channel::<()>();
            cores.handles.push(runtime.handle().clone());
            cores.stops.push(stop);
            std::thread::Builder::new()
                .name(format!("ward-core-{index}"))
                .spawn(move || {
                    runtime.block_on(async {
                        let _ = stopped.await;
                    });
                })?;
        }
        Ok(cores)
    }

    /// No extra core.
    pub(crate) fn none() -> Cores {
        Cores {
            handles: Vec::new(),
            stops: Vec::new(),
        }
    }

    /// The extra runtimes (not the one the caller runs on).
    pub(crate) fn handles(&self) -> &[Handle] {
        &self.handles
    }
}

impl Drop for Cores {
    fn drop(&mut self) {
        self.stops.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each core runs tasks on its own named thread, and stops when the
    /// cores are dropped.
    #[test]
    fn each_core_runs_tasks_on_its_own_thread() {
        let cores = Cores::start(2).unwrap_or_else(|e| panic!("start: {e}"));
        assert_eq!(cores.handles().len(), 2);
        let names: Vec<String> = cores
            .handles()
            .iter()
            .map(|handle| {
                let task = handle.spawn(async {
                    std::thread::current()
                        .name()
                        .unwrap_or_default()
                        .to_string()
                });
                futures_lite_block_on(task).unwrap_or_default()
            })
            .collect();
        assert_eq!(names, ["ward-core-1", "ward-core-2"]);
        let handle = cores.handles()[0].clone();
        drop(cores);
        // The runtime is gone: a task spawned now never runs.
        std::thread::sleep(std::time::Duration::from_millis(50));
        let late = handle.spawn(async {});
        let waited = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map(|rt| rt.block_on(late))
            .is_ok_and(|r| r.is_err());
        assert!(waited, "a stopped core ran a task");
    }

    fn futures_lite_block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map(|rt| rt.block_on(f))
            .unwrap_or_else(|e| panic!("runtime: {e}"))
    }
}
