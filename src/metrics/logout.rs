//! The back-channel logout endpoint's metrics (`server/backchannel.rs`):
//! what an operator alerts on when a provider's logouts stop taking
//! effect (refused tokens, a failing store) and how many sessions they end.

use prometheus::{IntCounter, IntCounterVec, Opts, Registry};

/// How one back-channel logout request ended: a closed set, a label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogoutOutcome {
    /// Verified, and the recorded sessions revoked (maybe none).
    LoggedOut,
    /// Not a form with one logout token, or a token failing a check.
    Refused,
    /// A valid token whose `jti` was already used.
    Replayed,
    /// The store failed; the provider may send the token again.
    Failed,
}

impl LogoutOutcome {
    pub const ALL: [LogoutOutcome; 4] = [
        LogoutOutcome::LoggedOut,
        LogoutOutcome::Refused,
        LogoutOutcome::Replayed,
        LogoutOutcome::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            LogoutOutcome::LoggedOut => "logged_out",
            LogoutOutcome::Refused => "refused",
            LogoutOutcome::Replayed => "replayed",
            LogoutOutcome::Failed => "failed",
        }
    }
}

/// `ward_backchannel_logouts_total{result}` and
/// `ward_backchannel_sessions_revoked_total`.
pub(super) struct LogoutMetrics {
    outcomes: [IntCounter; 4],
    revoked: IntCounter,
}

impl LogoutMetrics {
    pub(super) fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let total = IntCounterVec::new(
            Opts::new(
                "ward_backchannel_logouts_total",
                "OpenID back-channel logout requests, by result.",
            ),
            &["result"],
        )?;
        let revoked = IntCounter::new(
            "ward_backchannel_sessions_revoked_total",
            "Ward sessions revoked by OpenID back-channel logouts.",
        )?;
        registry.register(Box::new(total.clone()))?;
        registry.register(Box::new(revoked.clone()))?;
        Ok(Self {
            outcomes: LogoutOutcome::ALL.map(|o| total.with_label_values(&[o.as_str()])),
            revoked,
        })
    }

    pub(super) fn record(&self, outcome: LogoutOutcome, revoked: usize) {
        // In bounds: one counter per variant, in declaration order.
        if let Some(counter) = self.outcomes.get(outcome as usize) {
            counter.inc();
        }
        self.revoked.inc_by(revoked as u64);
    }
}
