//! The Tokio runtime ward runs on, chosen by worker count.
//!
//! One worker (`runtime.worker_threads: 1`, or `0` on a one-CPU machine or
//! pod, the usual sidecar) gets Tokio's single-threaded scheduler, not a
//! multi-thread scheduler with one worker. The reason is the multi-thread
//! scheduler's LIFO slot: a task woken by the running task runs next, so
//! each check that finishes wakes its HTTP/2 connection (or each store
//! read wakes the Redis connection) and that connection flushes one frame
//! per `writev`. The single-threaded scheduler queues woken tasks behind
//! the ready ones, so one flush carries every answer (or command) that
//! became ready together. Measured on the benchmark bed (the do-nothing
//! baseline, which uses this function too): 0.67 `writev` per check fell
//! to 0.03, and Check/s rose by about a quarter (82k to 105k), for ward
//! and the baseline alike.
//!
//! `ward serve` runs on one such runtime; more check workers are more of
//! them, each serving its own connections (`server/cores.rs`), not Tokio's
//! multi-thread scheduler, whose hand-offs between workers cost more CPU
//! per check than they bring on one connection. [`builder`] still gives the
//! multi-thread scheduler for more than one worker to the tools that want
//! it (the benchmark's do-nothing server).

use std::num::NonZeroUsize;
use tokio::runtime::Builder;

/// The worker count `worker_threads` asks for: itself, or one per CPU
/// (as the process may use them: cgroup quotas count) when it is 0.
pub fn workers(worker_threads: usize) -> usize {
    match worker_threads {
        0 => std::thread::available_parallelism().map_or(1, NonZeroUsize::get),
        n => n,
    }
}

/// A runtime builder for `worker_threads` (0: one per CPU), with I/O and
/// timers enabled.
pub fn builder(worker_threads: usize) -> Builder {
    let workers = workers(worker_threads);
    let mut builder = if workers == 1 {
        Builder::new_current_thread()
    } else {
        let mut b = Builder::new_multi_thread();
        b.worker_threads(workers);
        b
    };
    builder.enable_all();
    builder
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_means_one_per_cpu() {
        assert_eq!(workers(3), 3);
        assert_eq!(
            workers(0),
            std::thread::available_parallelism().map_or(1, NonZeroUsize::get)
        );
    }

    #[test]
    fn one_worker_runs_the_single_threaded_scheduler() {
        use tokio::runtime::RuntimeFlavor;
        let flavor = |n| builder(n).build().map(|r| r.handle().runtime_flavor());
        assert_eq!(flavor(1).ok(), Some(RuntimeFlavor::CurrentThread));
        assert_eq!(flavor(2).ok(), Some(RuntimeFlavor::MultiThread));
    }
}
