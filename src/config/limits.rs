//! The `limits` section: how many failed authentications a client IP, or
//! one credential, may cause before ward answers 429 without asking the
//! store. It exists so that a flood of random session ids or API keys is
//! stopped in memory instead of becoming a flood of Redis calls.

use serde::Deserialize;
use std::time::Duration;

/// Brute-force limits on failed authentications.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    pub enabled: bool,
    /// Failures per client IP (IPv6: per /64).
    pub per_ip: FailureBudget,
    /// Failures per credential prefix.
    pub per_credential: FailureBudget,
    /// Keys remembered at most, for each of the two budgets.
    pub max_tracked: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            per_ip: FailureBudget {
                failures: 20,
                per: Duration::from_secs(60),
            },
            per_credential: FailureBudget {
                failures: 10,
                per: Duration::from_secs(60),
            },
            max_tracked: 100_000,
        }
    }
}

/// A token bucket of failures: `failures` at once (the burst), refilled at
/// `failures` per `per`. Both fields are required when the budget is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailureBudget {
    pub failures: u32,
    #[serde(with = "humantime_serde")]
    pub per: Duration,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn the_documented_shape_parses_and_omitted_fields_keep_defaults() {
        let config =
            Config::from_yaml("limits:\n  per_ip: {failures: 5, per: 10s}\n  max_tracked: 7\n")
                .unwrap();
        let l = config.limits;
        assert!(l.enabled);
        assert_eq!(
            l.per_ip,
            FailureBudget {
                failures: 5,
                per: Duration::from_secs(10)
            }
        );
        assert_eq!(l.per_credential, LimitsConfig::default().per_credential);
        assert_eq!(l.max_tracked, 7);
        assert!(
            !Config::from_yaml("limits: {enabled: false}")
                .unwrap()
                .limits
                .enabled
        );
    }

    #[test]
    fn the_annotated_example_in_the_docs_shows_the_defaults() {
        let doc = include_str!("../../docs/configuration.md");
        let example = doc
            .split("## A complete annotated example")
            .nth(1)
            .and_then(|rest| rest.split("```yaml\n").nth(1))
            .and_then(|rest| rest.split("```").next())
            .unwrap();
        let config = Config::from_yaml(example).unwrap();
        assert_eq!(config.limits, LimitsConfig::default());
    }

    #[test]
    fn a_budget_needs_both_fields_and_no_others() {
        for (yaml, field) in [
            ("limits: {per_ip: {failures: 5}}", "limits.per_ip"),
            (
                "limits: {per_ip: {failures: 5, per: 1m, burst: 2}}",
                "limits.per_ip",
            ),
            (
                "limits: {per_credential: {failures: 5, per: soon}}",
                "limits.per_credential.per",
            ),
            ("limits: {max_tracked: -1}", "limits.max_tracked"),
        ] {
            let err = Config::from_yaml(yaml).unwrap_err().to_string();
            assert!(err.starts_with(field), "{yaml}: {err}");
        }
    }
}
