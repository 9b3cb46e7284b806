//! One thread for work a check hands off and never waits for: identity
//! tokens re-signed before they expire (`identity_token.rs`), so a cache
//! hit sends the token it has and never pays for a signature.
//!
//! A plain OS thread over a bounded queue, not a runtime task: the Envoy
//! module answers hits on Envoy's workers, where no runtime is entered.
//! A full queue drops the job (`Ports::background` allows it: a token not
//! re-signed in time is signed by the next check that finds it expired).
//! The thread ends when the last handle is dropped.

use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};

/// Jobs queued at most; past that, new ones are dropped.
const QUEUE: usize = 4096;

type Job = Box<dyn FnOnce() + Send>;

/// The handle: clone it to share the thread.
#[derive(Clone, Debug)]
pub struct Background {
    tx: Option<SyncSender<Job>>,
}

impl Background {
    /// Starts the thread (`None` inside: it could not start, and every
    /// job is dropped).
    pub fn start() -> Background {
        let (tx, rx) = sync_channel::<Job>(QUEUE);
        let spawned = std::thread::Builder::new()
            .name("ward-background".into())
            .spawn(move || {
                for job in rx {
                    // A job that panics must not end the thread.
                    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                }
            });
        if let Err(e) = &spawned {
            tracing::error!(error = %e, "the background thread could not start: identity tokens are signed when they expire");
        }
        Background {
            tx: spawned.ok().map(|_| tx),
        }
    }

    /// A handle without a thread: every job is dropped (nothing to
    /// re-sign).
    pub fn idle() -> Background {
        Background { tx: None }
    }

    /// Queues `job`; `false` if it was dropped.
    pub fn run(&self, job: Job) -> bool {
        match &self.tx {
            Some(tx) => match tx.try_send(job) {
                Ok(()) => true,
                Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => false,
            },
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc::channel;
    use std::time::Duration;

    #[test]
    fn jobs_run_on_the_thread_and_a_panic_does_not_stop_it() {
        let background = Background::start();
        let (tx, rx) = channel();
        assert!(background.run(Box::new(|| panic!("a failing job"))));
        let caller = std::thread::current().id();
        assert!(background.run(Box::new(move || {
            tx.send(std::thread::current().id()).unwrap();
        })));
        let ran_on = rx.recv_timeout(Duration::from_secs(5)).unwrap();
        assert_ne!(ran_on, caller);
    }
}
