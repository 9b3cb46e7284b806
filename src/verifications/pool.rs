//! The verification threads: a fixed set of OS threads, at normal
//! priority or the lowest (`SCHED_IDLE`, `jwt.verify.priority: idle`),
//! over one bounded queue.
//!
//! Why threads of their own, not Tokio's blocking pool: their priority is
//! set once per thread, and a queue of our own has a bound we choose
//! (Tokio's queues without one). Why normal priority by default: under
//! `SCHED_IDLE` a thread never preempts a normal one, but it also yields
//! to every other busy process on the CPU (Envoy beside ward, under load)
//! and starves; measured on the bench bed it made the tail three times
//! worse (docs/configuration.md#jwtverify). `idle` stays an option for
//! hosts with CPUs to spare; a system that refuses it (some containers)
//! gets normal priority, logged once.

use prometheus::IntGauge;
use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Once, PoisonError, mpsc};
use std::time::{Duration, Instant};

/// One verification, boxed: only a new token pays for it.
pub(crate) type Job = Box<dyn FnOnce() + Send>;

/// The threads and their queue. Dropped, the threads end after the job
/// they run; jobs still queued are dropped (their checks answer 503).
pub(crate) struct Pool {
    shared: Arc<Shared>,
    threads: usize,
}

/// Every thread of a pool held busy until this is dropped
/// (`Pool::hold`).
pub struct Hold {
    _release: Vec<mpsc::Sender<()>>,
}

struct Shared {
    queue: Mutex<Queue>,
    ready: Condvar,
    capacity: usize,
    /// The queue's length (`ward_jwt_verify_queue`).
    depth: IntGauge,
}

struct Queue {
    /// Each job with the time it was queued.
    jobs: VecDeque<(Instant, Job)>,
    closed: bool,
}

fn lock(shared: &Shared) -> MutexGuard<'_, Queue> {
    // Jobs run outside the lock; a poisoned queue is still consistent.
    shared.queue.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Pool {
    /// `threads` threads (at least one, at `SCHED_IDLE` if `idle`) over a
    /// queue of `capacity` jobs; `depth` shows the queue's length.
    pub(crate) fn start(
        threads: usize,
        idle: bool,
        capacity: usize,
        depth: IntGauge,
    ) -> std::io::Result<Pool> {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue {
                jobs: VecDeque::with_capacity(capacity),
                closed: false,
            }),
            ready: Condvar::new(),
            capacity,
            depth,
        });
        let threads = threads.max(1);
        for i in 0..threads {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name(format!("ward-verify-{i}"))
                .spawn(move || work(&shared, idle))?;
        }
        Ok(Pool { shared, threads })
    }

    /// Holds every thread busy until the [`Hold`] is dropped, once each
    /// has started on it: a saturated pool on demand, for tests of what
    /// must not wait for it. `None` if the queue refused.
    pub(crate) fn hold(&self) -> Option<Hold> {
        let (started, running) = mpsc::channel();
        let mut release = Vec::new();
        for _ in 0..self.threads {
            let (tx, rx) = mpsc::channel::<()>();
            let started = started.clone();
            let job = move || {
                let _ = started.send(());
                let _ = rx.recv(); // until the Hold is dropped
            };
            self.submit(Box::new(job)).ok()?;
            release.push(tx);
        }
        for _ in 0..self.threads {
            running.recv().ok()?;
        }
        Some(Hold { _release: release })
    }

    /// Queues `job`, or gives it back when the queue is full.
    pub(crate) fn submit(&self, job: Job) -> Result<(), Job> {
        let mut queue = lock(&self.shared);
        if queue.jobs.len() >= self.shared.capacity || queue.closed {
            return Err(job);
        }
        queue.jobs.push_back((Instant::now(), job));
        self.shared.depth.set(queue.jobs.len() as i64);
        drop(queue);
        self.shared.ready.notify_one();
        Ok(())
    }

    /// The oldest queued job, if it has waited `age` or more: the threads
    /// got no CPU meanwhile, and a caller may run it instead ([`run`]).
    pub(crate) fn take_stale(&self, age: Duration) -> Option<Job> {
        let mut queue = lock(&self.shared);
        let (queued, _) = queue.jobs.front()?;
        if queued.elapsed() < age {
            return None;
        }
        let (_, job) = queue.jobs.pop_front()?;
        self.shared.depth.set(queue.jobs.len() as i64);
        Some(job)
    }
}

/// Runs `job` where it is called; a panic ends the job (its checks answer
/// 503), not the thread.
pub(crate) fn run(job: Job) {
    if catch_unwind(AssertUnwindSafe(job)).is_err() {
        tracing::error!("a token verification panicked: its checks were denied");
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        let dropped: Vec<Job> = {
            let mut queue = lock(&self.shared);
            queue.closed = true;
            queue.jobs.drain(..).map(|(_, job)| job).collect()
        };
        self.shared.depth.set(0);
        self.shared.ready.notify_all();
        drop(dropped); // outside the lock: dropping a job wakes its checks
    }
}

/// One thread's life: take a job, run it, until the pool is dropped.
fn work(shared: &Shared, idle: bool) {
    if idle {
        lower_priority();
    }
    while let Some(job) = next(shared) {
        run(job);
    }
}

/// The next job; `None` once the pool is dropped.
fn next(shared: &Shared) -> Option<Job> {
    let mut queue = lock(shared);
    loop {
        if queue.closed {
            return None;
        }
        if let Some((_, job)) = queue.jobs.pop_front() {
            shared.depth.set(queue.jobs.len() as i64);
            return Some(job);
        }
        queue = shared
            .ready
            .wait(queue)
            .unwrap_or_else(PoisonError::into_inner);
    }
}

/// This thread to `SCHED_IDLE`; on failure, one warning per process.
fn lower_priority() {
    static WARNED: Once = Once::new();
    if let Err(e) = set_idle() {
        WARNED.call_once(|| {
            tracing::warn!(
                error = %e,
                "cannot lower the verification threads' priority (SCHED_IDLE): \
                 they run at normal priority"
            );
        });
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn set_idle() -> Result<(), thread_priority::Error> {
    use thread_priority::{
        NormalThreadSchedulePolicy, ThreadPriority, ThreadSchedulePolicy,
        set_thread_priority_and_policy, thread_native_id,
    };
    set_thread_priority_and_policy(
        thread_native_id(),
        // The only priority SCHED_IDLE has.
        ThreadPriority::Min,
        ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle),
    )
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn set_idle() -> Result<(), &'static str> {
    Err("SCHED_IDLE is Linux's")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gauge() -> IntGauge {
        IntGauge::new("queue", "queue").unwrap()
    }

    #[test]
    fn jobs_run_off_the_caller_and_a_full_queue_gives_the_job_back() {
        let (tx, rx) = mpsc::channel();
        let (release, held) = mpsc::channel::<()>();
        let depth = gauge();
        let pool = Pool::start(1, true, 1, depth.clone()).unwrap();
        // The one thread holds a job; the queue takes one more, no third.
        let started = tx.clone();
        pool.submit(Box::new(move || {
            started
                .send(std::thread::current().name().map(String::from))
                .unwrap();
            held.recv().unwrap();
        }))
        .unwrap_or_else(|_| panic!("refused"));
        let name = rx.recv().unwrap();
        assert_eq!(name.as_deref(), Some("ward-verify-0"));
        let queued = tx.clone();
        assert!(
            pool.submit(Box::new(move || queued.send(None).unwrap()))
                .is_ok()
        );
        assert_eq!(depth.get(), 1);
        assert!(
            pool.submit(Box::new(|| {})).is_err(),
            "a full queue refuses"
        );
        release.send(()).unwrap();
        assert_eq!(rx.recv().unwrap(), None, "the queued job ran");
    }

    #[test]
    fn a_job_queued_long_enough_can_be_taken_by_a_caller() {
        let pool = Pool::start(1, true, 4, gauge()).unwrap();
        let hold = pool.hold().unwrap();
        assert!(pool.take_stale(Duration::ZERO).is_none(), "nothing queued");
        let (tx, rx) = mpsc::channel();
        let job = move || tx.send(std::thread::current().id()).unwrap();
        assert!(pool.submit(Box::new(job)).is_ok());
        assert!(
            pool.take_stale(Duration::from_secs(3600)).is_none(),
            "too young"
        );
        run(pool.take_stale(Duration::ZERO).unwrap());
        assert_eq!(rx.recv().unwrap(), std::thread::current().id());
        assert!(pool.take_stale(Duration::ZERO).is_none(), "taken once");
        drop(hold);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_threads_run_at_idle_priority_unless_told_normal() {
        use thread_priority::{NormalThreadSchedulePolicy, ThreadSchedulePolicy};
        let policy = |idle| {
            let (tx, rx) = mpsc::channel();
            let pool = Pool::start(1, idle, 1, gauge()).unwrap();
            pool.submit(Box::new(move || {
                tx.send(thread_priority::thread_schedule_policy().ok())
                    .unwrap();
            }))
            .unwrap_or_else(|_| panic!("refused"));
            rx.recv().unwrap()
        };
        let of = |p| Some(ThreadSchedulePolicy::Normal(p));
        assert_eq!(policy(true), of(NormalThreadSchedulePolicy::Idle));
        assert_eq!(policy(false), of(NormalThreadSchedulePolicy::Other));
    }
}
