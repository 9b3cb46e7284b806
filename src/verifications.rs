//! Where a new token is verified: off the thread that answers cache hits.
//!
//! A signature check (ES256: tens of microseconds) on the thread that also
//! answers hits makes every hit queued behind it wait; under churn (new
//! tokens arriving all the time) that was ward's slowest percentile. So
//! the server's ports ([`crate::wiring`]) send the signature and claims of
//! a token not in the cache to threads of their own (`verifications/pool.rs`;
//! by default one, and only when a second CPU can run it: on one CPU it
//! would only take turns with the check thread), with a bounded queue: when it is full,
//! the check is answered at once with 503 `verification_overloaded`,
//! never queued without bound. Concurrent checks of one new token wait
//! for one verification (`flights.rs`), which lands on the pool
//! thread: the check that started it may go away meanwhile (the Envoy
//! module drops its first poll) without cancelling it, and its success is
//! kept in the token cache there, so a check that comes later hits.
//!
//! A check that has waited 20 ms (`HELP_AFTER`) runs the oldest queued
//! verification itself: threads at `SCHED_IDLE` (`jwt.verify.priority:
//! idle`) get no CPU while other busy processes hold ward's CPUs, and a
//! new token must not wait for them past
//! Envoy's timeout. `jwt.verify.threads: 0` (or a pool that cannot start)
//! verifies on the checking thread, as before: the same flights, no queue.

mod pool;

use crate::cache::TokenCache;
use crate::config::{VerifyConfig, VerifyPriority};
use crate::credentials::CredentialHash;
use crate::flights::{Flight, Flights, Lead, Role};
use crate::identity::Identity;
use crate::metrics::Metrics;
use crate::ports::Verification;
use crate::reason::Reason;
use pool::Pool;

pub use pool::Hold;
use std::sync::Arc;
use std::time::Duration;

/// How long a queued verification may wait for the threads before a check
/// waiting for one runs it itself: far above a wait for a thread that gets
/// CPU (microseconds), well under Envoy's 200 ms ext_authz timeout.
const HELP_AFTER: Duration = Duration::from_millis(20);

/// What the checks of one token get: its identity, or why not.
type Answer = Result<Arc<Identity>, Reason>;

/// The verifications of new tokens: in flight, queued, and where they run.
pub(crate) struct Verifications {
    flights: Arc<Flights<CredentialHash, Answer>>,
    /// `None`: verify on the checking thread.
    pool: Option<Pool>,
    tokens: TokenCache,
    metrics: Arc<Metrics>,
}

impl Verifications {
    /// The pool `config` asks for (none when `jwt_on` is false: no token
    /// will come), keeping successes in `tokens`.
    pub(crate) fn new(
        config: &VerifyConfig,
        jwt_on: bool,
        tokens: TokenCache,
        metrics: Arc<Metrics>,
    ) -> Self {
        let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
        let threads = if jwt_on { config.threads(cpus) } else { 0 };
        let pool = (threads > 0)
            .then(|| {
                let idle = config.priority == VerifyPriority::Idle;
                Pool::start(threads, idle, config.queue, metrics.jwt_verify_queue.clone())
            })
            .and_then(|started| {
                started
                    .inspect_err(|e| {
                        tracing::error!(error = %e, "cannot start the verification threads: verifying on the checking thread");
                    })
                    .ok()
            });
        Self {
            flights: Arc::new(Flights::new()),
            pool,
            tokens,
            metrics,
        }
    }

    /// Every verification thread held busy until the [`Hold`] is dropped
    /// (tests: a saturated pool); `None` without a pool.
    pub(crate) fn hold(&self) -> Option<Hold> {
        self.pool.as_ref()?.hold()
    }

    /// The answer of `verify` for the token `hash`, run once for all
    /// concurrent callers, on the pool if there is one (see the module
    /// doc); a success is kept in the token cache as of `now`.
    pub(crate) async fn verify<F>(&self, hash: &CredentialHash, now: u64, verify: F) -> Answer
    where
        F: FnOnce() -> Verification + Send + 'static,
    {
        let answer = self.join(hash, now, verify).await;
        if matches!(answer, Err(Reason::VerificationOverloaded)) {
            self.metrics.jwt_verify_overloaded.inc();
        }
        answer
    }

    async fn join<F>(&self, hash: &CredentialHash, now: u64, verify: F) -> Answer
    where
        F: FnOnce() -> Verification + Send + 'static,
    {
        // The caller missed the cache; a verification of this token may
        // have landed since: look once more, then join.
        let mut epoch = Some(self.flights.epoch());
        if let Some(identity) = self.tokens.get(hash, now) {
            return Ok(identity);
        }
        loop {
            let flight = match self.flights.join(hash, epoch) {
                Role::Leader(lead) => self.start(lead, *hash, now, verify),
                Role::Follower(flight) => flight,
                Role::Landed => {
                    epoch = None;
                    if let Some(identity) = self.tokens.get(hash, now) {
                        return Ok(identity);
                    }
                    continue;
                }
            };
            return self.wait(&flight).await;
        }
    }

    /// The flight's answer. Waiting longer than [`HELP_AFTER`] means the
    /// threads got no CPU (at `SCHED_IDLE`, other busy processes on ward's
    /// CPUs starve them): the check then runs the oldest queued
    /// verification itself, perhaps its own, and waits again.
    async fn wait(&self, flight: &Flight<Answer>) -> Answer {
        loop {
            let landed = match &self.pool {
                None => flight.wait().await,
                Some(pool) => match tokio::time::timeout(HELP_AFTER, flight.wait()).await {
                    Ok(landed) => landed,
                    Err(_) => {
                        if let Some(job) = pool.take_stale(HELP_AFTER) {
                            self.metrics.jwt_verify_helped.inc();
                            pool::run(job);
                        }
                        continue;
                    }
                },
            };
            // `None`: the verification never ran (the queue was full, the
            // pool stopped, or it panicked).
            return landed.unwrap_or(Err(Reason::VerificationOverloaded));
        }
    }

    /// Sends the verification to the pool (or runs it here, without
    /// one); it lands, and keeps a success, wherever it runs.
    fn start<F>(
        &self,
        lead: Lead<'_, CredentialHash, Answer, CredentialHash>,
        hash: CredentialHash,
        now: u64,
        verify: F,
    ) -> Arc<Flight<Answer>>
    where
        F: FnOnce() -> Verification + Send + 'static,
    {
        let landing = lead.detach(Arc::clone(&self.flights));
        let flight = landing.flight();
        let tokens = self.tokens.clone();
        let counter = self.metrics.jwt_verifications.clone();
        let job = move || {
            counter.inc();
            let verified = verify();
            let answer = verified
                .as_ref()
                .map(|v| v.identity.clone())
                .map_err(|r| *r);
            landing.land(answer, |_| {
                if let Ok(v) = verified {
                    tokens.insert(hash, v.identity, v.exp, v.keys, now);
                }
            });
        };
        match &self.pool {
            None => job(),
            // A refused job is dropped: its landing lets the waiters go.
            Some(pool) => drop(pool.submit(Box::new(job))),
        }
        flight
    }
}
