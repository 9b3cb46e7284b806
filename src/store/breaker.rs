//! A circuit breaker for the store: when Redis stops answering, waiting
//! `command_timeout` on every check only adds latency to a deny that is
//! coming anyway, and piles load onto a Redis that is trying to recover.
//! After `threshold` consecutive failures the breaker opens and calls fail
//! fast. The store probes Redis in the background while it is open (a
//! `PING` every ~50 ms, [`Breaker::probe_answered`]): the first answer
//! closes it, so checks pass again within a probe interval of Redis coming
//! back, and no check waits for a probe. `open_for` is the upper bound:
//! past it, one check's call goes through as a probe too (half-open), its
//! success closes the breaker, its failure opens it again.
//!
//! Pure state machine: the caller passes `now`, so every transition is
//! testable without sleeping. Only failures that say "the store is not
//! there" (timeouts, lost connections) count; an error Redis itself
//! answered (such as `WRONGTYPE`) proves it is up.

use std::time::{Duration, Instant};

/// The breaker's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Closed {
        failures: u32,
    },
    Open {
        until: Instant,
    },
    /// A probe went through at `since`; everything else fails fast.
    HalfOpen {
        since: Instant,
    },
}

/// Whether a call may go to the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Closed: call as usual.
    Call,
    /// Half-open: this call is the one probe; report its outcome.
    Probe,
    /// Open: fail fast without calling.
    Reject,
}

/// The outcome of an admitted call, as far as availability goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The store answered (even with an error of its own).
    Answered,
    /// Timeout or lost connection.
    Failed,
}

/// A state change worth logging.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// Closed → open after this many consecutive failures.
    Opened { failures: u32 },
    /// Half-open → open: the probe failed.
    Reopened,
    /// Half-open → closed: the probe succeeded.
    Closed,
}

/// See the module documentation.
#[derive(Debug, Clone)]
pub struct Breaker {
    threshold: u32,
    open_for: Duration,
    state: State,
}

impl Breaker {
    /// `threshold` consecutive failures open the breaker (0 is taken as 1);
    /// it then stays open for `open_for`.
    pub fn new(threshold: u32, open_for: Duration) -> Self {
        Self {
            threshold: threshold.max(1),
            open_for,
            state: State::Closed { failures: 0 },
        }
    }

    /// Whether a call starting at `now` may go through.
    ///
    /// A probe whose outcome never comes back (its caller gave up and
    /// dropped it) does not wedge the breaker: after `open_for`, another
    /// probe is admitted.
    pub fn admit(&mut self, now: Instant) -> Admit {
        let probe_due = match self.state {
            State::Closed { .. } => return Admit::Call,
            State::Open { until } => until,
            State::HalfOpen { since } => since + self.open_for,
        };
        if now < probe_due {
            return Admit::Reject;
        }
        self.state = State::HalfOpen { since: now };
        Admit::Probe
    }

    /// Records the outcome of a call admitted as `admitted`.
    pub fn record(
        &mut self,
        admitted: Admit,
        outcome: Outcome,
        now: Instant,
    ) -> Option<Transition> {
        match (self.state, admitted, outcome) {
            (State::Closed { .. }, _, Outcome::Answered) => {
                self.state = State::Closed { failures: 0 };
                None
            }
            (State::Closed { failures }, _, Outcome::Failed) => {
                let failures = failures.saturating_add(1);
                if failures >= self.threshold {
                    self.state = State::Open {
                        until: now + self.open_for,
                    };
                    Some(Transition::Opened { failures })
                } else {
                    self.state = State::Closed { failures };
                    None
                }
            }
            (State::HalfOpen { .. }, Admit::Probe, Outcome::Answered) => {
                self.state = State::Closed { failures: 0 };
                Some(Transition::Closed)
            }
            (State::HalfOpen { .. }, Admit::Probe, Outcome::Failed) => {
                self.state = State::Open {
                    until: now + self.open_for,
                };
                Some(Transition::Reopened)
            }
            // A call admitted before the breaker opened, finishing late:
            // the probe decides, not stragglers.
            (State::Open { .. } | State::HalfOpen { .. }, _, _) => None,
        }
    }

    /// A background probe found the store answering: an open (or
    /// half-open) breaker closes at once.
    pub fn probe_answered(&mut self) -> Option<Transition> {
        match self.state {
            State::Closed { .. } => None,
            State::Open { .. } | State::HalfOpen { .. } => {
                self.state = State::Closed { failures: 0 };
                Some(Transition::Closed)
            }
        }
    }

    /// Whether calls currently fail fast (for readiness reporting).
    pub fn is_open(&self) -> bool {
        !matches!(self.state, State::Closed { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPEN_FOR: Duration = Duration::from_secs(1);
    const MS: Duration = Duration::from_millis(1);

    /// One step of a scenario: at `t` ms, either ask to call (and expect
    /// `admit`), or report an outcome (and expect `transition`).
    enum Step {
        Admit(u64, Admit),
        Record(u64, Admit, Outcome, Option<Transition>),
    }
    use Admit::{Call, Probe, Reject};
    use Outcome::{Answered, Failed};
    use Step::{Admit as A, Record as R};

    fn check(threshold: u32, steps: &[Step]) {
        let t0 = Instant::now();
        let mut breaker = Breaker::new(threshold, OPEN_FOR);
        for (i, step) in steps.iter().enumerate() {
            match *step {
                A(t, expected) => {
                    assert_eq!(breaker.admit(t0 + MS * t as u32), expected, "step {i}")
                }
                R(t, admitted, outcome, expected) => assert_eq!(
                    breaker.record(admitted, outcome, t0 + MS * t as u32),
                    expected,
                    "step {i}"
                ),
            }
        }
    }

    #[test]
    fn a_background_probe_closes_an_open_breaker_before_open_for() {
        let t0 = Instant::now();
        let mut breaker = Breaker::new(1, OPEN_FOR);
        assert_eq!(breaker.probe_answered(), None, "closed stays closed");
        assert_eq!(
            breaker.record(Call, Failed, t0),
            Some(Transition::Opened { failures: 1 })
        );
        assert_eq!(breaker.admit(t0 + MS * 50), Reject);
        assert_eq!(breaker.probe_answered(), Some(Transition::Closed));
        assert_eq!(breaker.admit(t0 + MS * 51), Call);
        // Half-open (a check's probe in flight) closes the same way, and
        // that probe's late outcome changes nothing.
        breaker.record(Call, Failed, t0);
        assert_eq!(breaker.admit(t0 + OPEN_FOR), Probe);
        assert_eq!(breaker.probe_answered(), Some(Transition::Closed));
        assert_eq!(breaker.record(Probe, Answered, t0 + OPEN_FOR), None);
        assert!(!breaker.is_open());
    }

    #[test]
    fn opens_after_consecutive_failures_only() {
        check(
            3,
            &[
                R(0, Call, Failed, None),
                R(1, Call, Failed, None),
                R(2, Call, Answered, None), // resets the count
                R(3, Call, Failed, None),
                R(4, Call, Failed, None),
                A(5, Call),
                R(5, Call, Failed, Some(Transition::Opened { failures: 3 })),
                A(6, Reject),
                A(1004, Reject),
            ],
        );
    }

    #[test]
    fn one_probe_after_open_period_and_its_success_closes() {
        check(
            1,
            &[
                R(0, Call, Failed, Some(Transition::Opened { failures: 1 })),
                A(999, Reject),
                A(1000, Probe),
                A(1001, Reject), // only one probe at a time
                R(1010, Probe, Answered, Some(Transition::Closed)),
                A(1011, Call),
            ],
        );
    }

    #[test]
    fn failed_probe_reopens_for_a_full_period() {
        check(
            2,
            &[
                R(0, Call, Failed, None),
                R(0, Call, Failed, Some(Transition::Opened { failures: 2 })),
                A(1000, Probe),
                R(1050, Probe, Failed, Some(Transition::Reopened)),
                A(2049, Reject),
                A(2050, Probe),
            ],
        );
    }

    #[test]
    fn an_abandoned_probe_does_not_wedge_the_breaker() {
        check(
            1,
            &[
                R(0, Call, Failed, Some(Transition::Opened { failures: 1 })),
                A(1000, Probe), // its caller drops it: no record
                A(1999, Reject),
                A(2000, Probe),
                R(2001, Probe, Answered, Some(Transition::Closed)),
            ],
        );
    }

    #[test]
    fn stragglers_do_not_decide() {
        check(
            1,
            &[
                R(0, Call, Failed, Some(Transition::Opened { failures: 1 })),
                R(1, Call, Answered, None), // still open
                A(2, Reject),
                A(1000, Probe),
                R(1001, Call, Answered, None), // not the probe
                A(1002, Reject),
                R(1003, Probe, Answered, Some(Transition::Closed)),
            ],
        );
    }

    #[test]
    fn answered_errors_keep_it_closed_and_zero_threshold_means_one() {
        check(
            0,
            &[
                R(0, Call, Answered, None),
                A(1, Call),
                R(1, Call, Failed, Some(Transition::Opened { failures: 1 })),
            ],
        );
        assert!(!Breaker::new(1, OPEN_FOR).is_open());
    }
}
