//! One check, start to finish: policy, credential, authentication,
//! authorization. Both transports (gRPC and HTTP ext_authz) and
//! `ward explain` go through [`Checker::check`], so they cannot disagree.
//!
//! Order matters for safety and cost:
//! 1. the policy (`policy.rs`): Envoy's `ward_policy`, else the first
//!    matching route, else the default; `deny` and `public` end here;
//! 2. the credential (`credentials.rs`): exactly one, of a kind the
//!    policy accepts; a malformed request never reaches a verifier;
//! 3. the brute-force limiter: a client or credential with too many
//!    recent failures is answered from the caches only: a credential
//!    known good passes, anything else gets 429 before it reaches a
//!    signature check or the store;
//! 4. authentication (`authn.rs`): JWT, session or API key → identity;
//!    a failed store read is decided by `on_store_error.rs` under the
//!    policy's `on_store_error` (an outage under `open` passes
//!    anonymously, or keeps a verified JWT's identity);
//! 5. authorization: the policy's roles and scopes (403).
//!
//! An `optional` policy turns every failure of 2-5 into an anonymous
//! allow: the request passes without identity headers (forged ones are
//! still removed).

use crate::authn::{Authenticated, Authenticator};
use crate::config::{Config, Mode};
use crate::credential_kind::CredentialKind;
use crate::credentials::Credential;
use crate::credentials::hash_credential;
use crate::decision::{Decision, Deny};
use crate::fingerprint;
use crate::jwks::KeyStore;
use crate::limiter::Limiter;
use crate::lookup::Lookups;
use crate::metrics::Metrics;
use crate::policy::{Policies, Policy, PolicyErrors, SelectError, Source};
use crate::reason::Reason;
use crate::request::Request;
use std::net::IpAddr;
use std::sync::{Arc, OnceLock};

/// Bytes of the credential's SHA-256 that key it in the limiter.
const LIMITER_KEY_BYTES: usize = 8;

/// What `ward explain` prints: each step and its result, in order.
#[derive(Debug, Default)]
pub struct Trace {
    enabled: bool,
    pub steps: Vec<(String, String)>,
}

impl Trace {
    pub fn enabled() -> Self {
        Trace {
            enabled: true,
            steps: Vec::new(),
        }
    }

    fn step(&mut self, name: &str, detail: impl FnOnce() -> String) {
        if self.enabled {
            self.steps.push((name.to_string(), detail()));
        }
    }
}

pub struct Checker {
    policies: Policies,
    authn: Authenticator,
    limiter: Limiter,
    trusted_hops: usize,
}

impl Checker {
    /// The checker `config` describes, over these keys and store reads:
    /// what `ward serve` and `ward explain` both run.
    pub fn from_config(
        config: &Config,
        keys: Arc<KeyStore>,
        lookups: Arc<Lookups>,
        metrics: Arc<Metrics>,
    ) -> Result<Self, PolicyErrors> {
        let policies = Policies::from_config(config).map_err(PolicyErrors)?;
        let authn = Authenticator::new(config, keys, lookups, metrics);
        Ok(Self::new(config, policies, authn))
    }

    pub fn new(config: &Config, policies: Policies, authn: Authenticator) -> Self {
        Self {
            policies,
            authn,
            limiter: Limiter::new(&config.limits),
            trusted_hops: config.sessions.fingerprint.trusted_hops,
        }
    }

    pub fn authn(&self) -> &Authenticator {
        &self.authn
    }

    pub fn policies(&self) -> &Policies {
        &self.policies
    }

    /// Decides one request at `now` (unix seconds).
    pub async fn check(&self, req: &Request<'_>, now: u64) -> Decision {
        self.run(req, now, &mut Trace::default()).await
    }

    /// As [`Checker::check`], recording each step.
    pub async fn explain(&self, req: &Request<'_>, now: u64) -> (Decision, Trace) {
        let mut trace = Trace::enabled();
        let decision = self.run(req, now, &mut trace).await;
        (decision, trace)
    }

    async fn run(&self, req: &Request<'_>, now: u64, trace: &mut Trace) -> Decision {
        let selection = match self
            .policies
            .select(req.policy, req.host, req.method, req.path)
        {
            Ok(s) => s,
            Err(e) => {
                let reason = match e {
                    SelectError::UnknownPolicy => Reason::UnknownPolicy,
                    SelectError::BadPath => Reason::MalformedPath,
                };
                trace.step("policy", || format!("none: {}", reason.as_str()));
                return Decision::deny(reason);
            }
        };
        let policy = selection.policy;
        trace.step("policy", || {
            let from = match &selection.source {
                Source::Envoy => "selected by Envoy (context_extensions ward_policy)".to_string(),
                Source::Route { index, name } => format!("route {name} (routes[{index}])"),
                Source::Default => "no route matched: default_policy".to_string(),
            };
            format!("{} ({from}), mode {}", policy.name, policy.mode.as_str())
        });
        let decision = match policy.mode {
            Mode::Deny => Decision::deny(if selection.source == Source::Default {
                Reason::NoRoute
            } else {
                Reason::RouteDenied
            }),
            Mode::Public => Decision::AllowAnonymous { method: None },
            Mode::Optional | Mode::Required => self.authenticate(req, policy, now, trace).await,
        };
        match decision {
            Decision::Deny(deny) if policy.mode == Mode::Optional => {
                trace.step("optional", || {
                    "the credential did not pass: allowed anonymously".into()
                });
                Decision::AllowAnonymous {
                    method: deny.method,
                }
            }
            // Only a deny is shaped by its policy (login URL, challenges).
            Decision::Deny(deny) => Decision::Deny(Deny {
                policy: Some(policy.clone()),
                ..deny
            }),
            allowed => allowed,
        }
    }

    async fn authenticate(
        &self,
        req: &Request<'_>,
        policy: &Arc<Policy>,
        now: u64,
        trace: &mut Trace,
    ) -> Decision {
        let mut decoded = String::new();
        let credential = match self.authn.extract(req, &mut decoded) {
            Ok(c) => c,
            Err(reason) => {
                trace.step("credential", || reason.as_str().to_string());
                return Decision::deny(reason);
            }
        };
        let (method, secret) = match credential {
            Credential::Bearer(t) => (CredentialKind::Jwt, t),
            Credential::Session(s) => (CredentialKind::Session, s),
            Credential::ApiKey(k) => (CredentialKind::ApiKey, k),
        };
        // The credential's hash names it in a deny's log line and keys it
        // in the limiter; computed at most once, and only when needed (a
        // cache hit's own hashing happens in authn).
        let hash = OnceLock::new();
        let hashed = || *hash.get_or_init(|| hash_credential(secret));
        trace.step("credential", || {
            format!(
                "{} ({})",
                method.as_str(),
                crate::credentials::short_hash(&hashed())
            )
        });
        let deny = |reason: Reason, retry_after: Option<u64>| {
            Decision::Deny(Deny {
                method: Some(method),
                credential: Some(hashed()),
                retry_after,
                ..Deny::new(reason)
            })
        };
        if !policy.accepts(method) {
            trace.step("accepted", || {
                let kinds: Vec<&str> = policy.accepted().map(|m| m.as_str()).collect();
                format!("no: the policy accepts {}", kinds.join(", "))
            });
            return deny(Reason::CredentialNotAccepted, None);
        }
        // The client IP and the credential's limiter key (a hash prefix,
        // never the secret) are derived only when something is blocked or
        // a failure is counted.
        let key = || {
            let mut key = [0u8; LIMITER_KEY_BYTES];
            key.copy_from_slice(&hashed()[..LIMITER_KEY_BYTES]);
            key
        };
        // A blocked client or credential is answered from the caches only:
        // a credential known good (a cached token or record) still passes,
        // so a shared address (a gateway, a NAT) blocked by someone else's
        // failures does not lock out its signed-in users; anything that
        // would need a signature check or a store read gets 429.
        let blocked = if self.limiter.any_blocked() {
            self.limiter
                .blocked(self.client_ip(req), Some(&key()))
                .map(|wait| wait.as_secs().max(1))
        } else {
            None
        };
        let result = self
            .authn
            .authenticate(
                credential,
                req,
                now,
                policy.on_store_error,
                blocked.is_some(),
            )
            .await;
        if let Some(secs) = blocked
            && !matches!(result, Ok(Authenticated::Identity(_)))
        {
            trace.step("limiter", || {
                let why = result.as_ref().err().map_or("no identity", |r| r.as_str());
                format!("blocked for {secs}s more; not answerable from the caches ({why})")
            });
            return deny(Reason::TooManyFailures, Some(secs));
        }
        let identity = match result {
            Ok(Authenticated::Identity(identity)) => identity,
            Ok(Authenticated::Anonymous) => {
                trace.step("on_store_error", || {
                    "store unavailable; open: allowed anonymously".into()
                });
                return Decision::AllowAnonymous {
                    method: Some(method),
                };
            }
            Err(reason) => {
                trace.step("authenticate", || reason.as_str().to_string());
                if counts_as_failure(reason) {
                    self.limiter
                        .record_failure(self.client_ip(req), Some(&key()));
                }
                return deny(reason, None);
            }
        };
        trace.step("authenticate", || {
            format!(
                "user {} via {}; roles [{}]; scopes [{}]",
                identity.user_id,
                identity.method.as_str(),
                identity.roles.join(", "),
                identity.scopes.join(", ")
            )
        });
        if let Err(reason) = policy.authorize(&identity) {
            trace.step("authorize", || reason.as_str().to_string());
            return deny(reason, None);
        }
        trace.step("authorize", || "ok".into());
        Decision::Allow(identity)
    }

    fn client_ip(&self, req: &Request<'_>) -> Option<IpAddr> {
        fingerprint::client_ip(
            req.header("x-forwarded-for"),
            req.source_ip,
            self.trusted_hops,
        )
    }
}

/// Failures the limiter counts: a presented credential that is bad. Not
/// an outage (503), not a malformed request (400), not a valid credential
/// lacking a role (403).
fn counts_as_failure(reason: Reason) -> bool {
    reason.status() == 401
}
