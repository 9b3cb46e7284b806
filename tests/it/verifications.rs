//! A new token's signature is verified on the verification threads, never
//! on the thread that answers cache hits: a hit (and a token refused
//! without a signature check) is answered while every verification thread
//! is busy, a full queue is a 503 at once, concurrent checks of one new
//! token make one verification, and a verification the threads never
//! start is run by the check waiting for it.
//!
//! Library-level, over the real checker and pool with real ES256 tokens.
//! The pool is saturated on demand (`ServerPorts::hold_verifications`
//! holds every thread until dropped), not by timing; "answered while
//! saturated" is a check future that completes on its first poll.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support::inproc::ward_request;
use crate::support::tokens::{claims, public_key_file, sign};
use jsonwebtoken::Algorithm;
use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use ward::config::Config;
use ward::decision::Decision;
use ward::jwks::KeyStore;
use ward::lookup::Lookups;
use ward::metrics::Metrics;
use ward::reason::Reason;
use ward::store::Store;
use ward::wiring::{self, ServerChecker};

struct Bed {
    checker: Arc<ServerChecker>,
    metrics: Arc<Metrics>,
}

fn bed(threads: usize, queue: usize) -> Bed {
    let yaml = format!(
        "jwt: {{keys: [{{alg: ES256, pem_file: {}}}], verify: {{threads: {threads}, queue: {queue}}}}}",
        public_key_file(Algorithm::ES256)
    );
    let config = Config::from_yaml(&yaml).unwrap();
    assert!(config.validate().is_empty());
    let metrics = Arc::new(Metrics::new().unwrap());
    let lookups = Arc::new(Lookups::new(
        &config,
        Store::Memory(Arc::default()),
        metrics.clone(),
    ));
    let keys = KeyStore::new(&config.jwt).unwrap();
    let checker = wiring::checker(&config, keys, lookups, metrics.clone()).unwrap();
    Bed {
        checker: Arc::new(checker),
        metrics,
    }
}

fn token(sub: &str) -> String {
    sign(Algorithm::ES256, None, &claims(sub))
}

fn bearer(token: &str) -> Vec<(String, String)> {
    vec![("authorization".into(), format!("Bearer {token}"))]
}

/// The user, or the deny's reason.
fn outcome(decision: Decision) -> Result<String, Reason> {
    match decision {
        Decision::Allow(allowed) => Ok(allowed.identity.user_id().to_string()),
        Decision::Deny(deny) => Err(deny.reason),
        Decision::AllowAnonymous { .. } => panic!("no public policy here"),
    }
}

impl Bed {
    async fn check(&self, token: &str) -> Result<String, Reason> {
        let headers = bearer(token);
        outcome(
            self.checker
                .check(&ward_request(&headers), ward::unix_now())
                .await,
        )
    }

    /// The check, if it completes on its first poll (it waited for nothing).
    fn check_at_once(&self, token: &str) -> Option<Result<String, Reason>> {
        let headers = bearer(token);
        let req = ward_request(&headers);
        let check = pin!(self.checker.check(&req, ward::unix_now()));
        match check.poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(decision) => Some(outcome(decision)),
            Poll::Pending => None,
        }
    }

    /// A check on its own task, waiting for the pool.
    fn spawn_check(&self, token: String) -> tokio::task::JoinHandle<Result<String, Reason>> {
        let checker = self.checker.clone();
        tokio::spawn(async move {
            let headers = bearer(&token);
            outcome(
                checker
                    .check(&ward_request(&headers), ward::unix_now())
                    .await,
            )
        })
    }

    /// Lets the spawned checks run until `done` holds (bounded).
    async fn until(&self, done: impl Fn(&Metrics) -> bool) {
        for _ in 0..1000 {
            if done(&self.metrics) {
                return;
            }
            tokio::task::yield_now().await;
        }
        panic!("the spawned checks never got there");
    }
}

#[tokio::test]
async fn a_cached_token_is_answered_while_the_verification_pool_is_saturated() {
    let bed = bed(1, 2);
    let alice = token("alice");
    assert_eq!(bed.check(&alice).await.as_deref(), Ok("alice"));
    assert_eq!(bed.metrics.jwt_verifications.get(), 1);

    let hold = bed.checker.ports().hold_verifications().unwrap();
    // Two new tokens fill the queue behind the held thread.
    let waiting = [
        bed.spawn_check(token("bob")),
        bed.spawn_check(token("carol")),
    ];
    bed.until(|m| m.jwt_verify_queue.get() == 2).await;

    // Saturated: the cached token is answered on the first poll, and so
    // is what needs no signature check; one more new token is a 503.
    for _ in 0..3 {
        assert_eq!(bed.check_at_once(&alice), Some(Ok("alice".into())));
    }
    assert_eq!(
        bed.check_at_once("a.b.c"),
        Some(Err(Reason::MalformedToken))
    );
    let unknown_kid = sign(Algorithm::ES256, Some("other"), &claims("eve"));
    assert_eq!(
        bed.check_at_once(&unknown_kid),
        Some(Err(Reason::UnknownKid))
    );
    assert_eq!(
        bed.check_at_once(&token("dave")),
        Some(Err(Reason::VerificationOverloaded))
    );
    assert_eq!(Reason::VerificationOverloaded.status(), 503);
    assert_eq!(bed.metrics.jwt_verify_overloaded.get(), 1);
    assert_eq!(
        bed.metrics.jwt_verifications.get(),
        1,
        "nothing verified yet"
    );

    drop(hold);
    let [bob, carol] = waiting;
    assert_eq!(bob.await.unwrap().as_deref(), Ok("bob"));
    assert_eq!(carol.await.unwrap().as_deref(), Ok("carol"));
    assert_eq!(bed.metrics.jwt_verifications.get(), 3);
    assert_eq!(bed.metrics.jwt_verify_queue.get(), 0);
    // The refused token was not remembered as refused: it verifies now.
    assert_eq!(bed.check(&token("dave")).await.as_deref(), Ok("dave"));
}

#[tokio::test]
async fn concurrent_checks_of_one_new_token_verify_once() {
    let bed = bed(1, 8);
    let erin = token("erin");
    let hold = bed.checker.ports().hold_verifications().unwrap();
    let checks: Vec<_> = (0..5).map(|_| bed.spawn_check(erin.clone())).collect();
    // Each check counts its cache miss just before it joins the flight.
    bed.until(|m| m.token_cache_misses.get() == 5).await;
    assert_eq!(
        bed.metrics.jwt_verify_queue.get(),
        1,
        "one verification queued"
    );
    drop(hold);
    for check in checks {
        assert_eq!(check.await.unwrap().as_deref(), Ok("erin"));
    }
    assert_eq!(bed.metrics.jwt_verifications.get(), 1);
    // Kept where it landed: the next check is a hit.
    assert_eq!(bed.check_at_once(&erin), Some(Ok("erin".into())));
    assert_eq!(bed.metrics.token_cache_hits.get(), 1);
}

#[tokio::test]
async fn a_first_poll_dropped_leaves_its_verification_running_for_the_retry() {
    // The Envoy module polls a check once on Envoy's worker and, if it
    // waits, drops it and checks again on its runtime: the retry joins
    // the verification the first poll started, or hits its result.
    let bed = bed(1, 8);
    let frank = token("frank");
    let hold = bed.checker.ports().hold_verifications().unwrap();
    assert_eq!(bed.check_at_once(&frank), None, "a new token waits");
    let retry = bed.spawn_check(frank.clone());
    bed.until(|m| m.token_cache_misses.get() == 2).await;
    drop(hold);
    assert_eq!(retry.await.unwrap().as_deref(), Ok("frank"));
    assert_eq!(bed.metrics.jwt_verifications.get(), 1);
}

#[tokio::test]
async fn a_verification_the_threads_never_start_is_run_by_its_waiting_check() {
    // What a SCHED_IDLE thread on a CPU that other processes keep busy
    // looks like: held, it never takes the job; after a while the check
    // that waits for it runs it itself.
    let bed = bed(1, 8);
    let hold = bed.checker.ports().hold_verifications().unwrap();
    assert_eq!(bed.check(&token("heidi")).await.as_deref(), Ok("heidi"));
    assert_eq!(bed.metrics.jwt_verify_helped.get(), 1);
    assert_eq!(bed.metrics.jwt_verifications.get(), 1);
    assert_eq!(bed.metrics.jwt_verify_queue.get(), 0);
    drop(hold);
}

#[tokio::test]
async fn without_verification_threads_a_new_token_is_verified_inline() {
    let bed = bed(0, 1);
    assert!(bed.checker.ports().hold_verifications().is_none());
    let grace = token("grace");
    assert_eq!(bed.check_at_once(&grace), Some(Ok("grace".into())));
    assert_eq!(bed.check_at_once(&grace), Some(Ok("grace".into())));
    assert_eq!(bed.metrics.jwt_verifications.get(), 1);
}
