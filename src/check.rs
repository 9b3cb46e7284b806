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
//! A policy that names workloads (`workload.rs`, `check/workload.rs`)
//! checks the calling workload's principal before step 2 (`workload`:
//! beside a user credential), or instead of 2-4 (`accept: [mtls]`, when
//! no user credential is presented).
//!
//! An `optional` policy turns every failure of 2-5 into an anonymous
//! allow: the request passes without identity headers (forged ones are
//! still removed).

use crate::authn::{Authenticated, Authenticator, ReadMode};
use crate::config::{Config, Mode};
use crate::credentials::Extractor;
use crate::decision::{Allowed, Decision, Deny, IdentityToken, PrincipalHeader};
use crate::identity::Identity;
use crate::identity_token::{self, Kept};
use crate::policy::{Policies, Policy, SelectError, Selection, Source};
use crate::ports::Ports;
use crate::presented::Presented;
use crate::reason::Reason;
use crate::request::Request;
use crate::workload::Workload;
use std::sync::Arc;

mod trace;
mod workload;

pub(crate) use trace::Trace;

/// Bytes of the credential's SHA-256 that key it in the limiter.
const LIMITER_KEY_BYTES: usize = 8;

/// One check's pipeline over its [`Ports`] (the server's are in
/// `wiring.rs`).
pub struct Checker<P> {
    policies: Policies,
    extractor: Extractor,
    authn: Authenticator,
    ports: P,
    trusted_hops: usize,
    /// Where a workload's principal comes from, and its header.
    workload: Workload,
    /// `headers.auth_method`, for a workload's identity.
    method_header: String,
}

impl<P: Ports> Checker<P> {
    /// The checker `config` describes, with these compiled policies, over
    /// these ports.
    pub fn new(config: &Config, policies: Policies, ports: P) -> Self {
        Self {
            policies,
            extractor: Extractor::from_config(config),
            authn: Authenticator::new(config),
            ports,
            trusted_hops: config.sessions.fingerprint.trusted_hops,
            workload: Workload::from_config(config),
            method_header: config.headers.auth_method.clone(),
        }
    }

    pub fn ports(&self) -> &P {
        &self.ports
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

    /// As [`Checker::explain`], without counting a rejected credential in
    /// the limiter (the management API's `Introspect`).
    pub async fn introspect(&self, req: &Request<'_>, now: u64) -> (Decision, Trace) {
        let mut trace = Trace::quiet();
        let decision = self.run(req, now, &mut trace).await;
        (decision, trace)
    }

    /// The pipeline: each step returns its result, recorded here (and
    /// only here) for `explain`; the first deny ends the check.
    async fn run(&self, req: &Request<'_>, now: u64, trace: &mut Trace) -> Decision {
        let selected = self.select(req);
        trace.step("policy", || trace::policy(&selected));
        let selection = match selected {
            Ok(selection) => selection,
            Err(deny) => return Decision::Deny(deny),
        };
        let policy = selection.policy;
        let result = match policy.mode {
            Mode::Deny => Err(Deny::new(refusal(&selection))),
            Mode::Public => Ok(Decision::AllowAnonymous { method: None }),
            Mode::Optional | Mode::Required => self.authenticate(req, policy, now, trace).await,
        };
        match result {
            Ok(decision) => decision,
            Err(deny) if policy.mode == Mode::Optional => {
                trace.step("optional", || {
                    "the credential did not pass: allowed anonymously".into()
                });
                Decision::AllowAnonymous {
                    method: deny.method,
                }
            }
            // Only a deny is shaped by its policy (login URL, challenges).
            Err(deny) => Decision::Deny(Deny {
                policy: Some(policy.clone()),
                ..deny
            }),
        }
    }

    /// The workload the policy requires, if any; then `mtls` alone, or
    /// the user credential.
    async fn authenticate(
        &self,
        req: &Request<'_>,
        policy: &Policy,
        now: u64,
        trace: &mut Trace,
    ) -> Result<Decision, Deny> {
        let principal = self.required_workload(req, policy, trace)?;
        if policy.only_mtls() {
            return self.workload_allow(req, policy, trace);
        }
        let mut decoded = String::new();
        let presented = self.present(req, &mut decoded);
        trace.step("credential", || trace::credential(&presented));
        let missing = matches!(&presented, Err(d) if d.reason == Reason::MissingCredential);
        if missing && policy.principals.is_some() {
            return self.workload_allow(req, policy, trace);
        }
        self.user(presented?, policy, now, principal, trace).await
    }

    /// Accepted kind → limiter → authn → authorize, for a user credential.
    async fn user(
        &self,
        presented: Presented<'_, '_>,
        policy: &Policy,
        now: u64,
        principal: Option<PrincipalHeader>,
        trace: &mut Trace,
    ) -> Result<Decision, Deny> {
        if !policy.accepts(presented.kind()) {
            trace.step("accepted", || trace::accepted(policy));
            return Err(deny(&presented, Reason::CredentialNotAccepted));
        }
        let blocked = self.blocked(&presented);
        let mode = match blocked {
            Some(_) => ReadMode::CacheOnly,
            None => ReadMode::Store(policy.on_store_error),
        };
        let result = self
            .authn
            .authenticate(&self.ports, &presented, now, mode)
            .await;
        if let Some(secs) = blocked
            && !matches!(result, Ok(Authenticated::Identity(_)))
        {
            trace.step("limiter", || trace::limiter(secs, &result));
            return Err(Deny {
                retry_after: Some(secs),
                ..deny(&presented, Reason::TooManyFailures)
            });
        }
        let quiet = trace.quiet;
        let result = result.map_err(|reason| self.failed(&presented, reason, quiet));
        trace.step(trace::authenticated_step(&result), || {
            trace::authenticated(&result)
        });
        let identity = match result? {
            Authenticated::Identity(identity) => identity,
            Authenticated::Anonymous => {
                return Ok(Decision::AllowAnonymous {
                    method: Some(presented.kind()),
                });
            }
        };
        let authorized = policy
            .authorize(&identity)
            .map_err(|reason| deny(&presented, reason));
        trace.step("authorize", || trace::authorized(&authorized));
        authorized?;
        let token = self.identity_token(&identity, policy, &presented, now);
        if let Some(profile) = &policy.identity_token {
            trace.step("identity_token", || trace::identity_token(profile, &token));
        }
        Ok(Decision::Allow(Allowed {
            identity,
            token: token?,
            principal,
        }))
    }

    /// The policy's identity token for `identity`: the one kept in the
    /// identity while it has life left (a re-sign queued in the
    /// background when a third is left), else one signed here. Could not
    /// sign: 500, never an allow without the token the backend checks.
    fn identity_token(
        &self,
        identity: &Arc<Identity>,
        policy: &Policy,
        presented: &Presented<'_, '_>,
        now: u64,
    ) -> Result<Option<IdentityToken>, Deny> {
        let Some(profile) = &policy.identity_token else {
            return Ok(None);
        };
        let unavailable = || deny(presented, Reason::IdentityTokenUnavailable);
        let ring = self.ports.signing_keys().ok_or_else(unavailable)?;
        let signed = match identity_token::kept(identity, profile, ring, now) {
            Kept::Fresh(signed) => signed,
            Kept::Refresh(signed) => {
                let (identity, profile) = (identity.clone(), profile.clone());
                let (ring, hash) = (ring.clone(), *presented.hash());
                // Dropped unrun (a full queue), the slot stays marked as
                // refreshing until the token expires and a check signs
                // inline, which clears it.
                self.ports.background(Box::new(move || {
                    let _ = identity_token::sign_and_keep(&identity, &profile, &ring, &hash, now);
                }));
                signed
            }
            Kept::Missing => {
                identity_token::sign_and_keep(identity, profile, ring, presented.hash(), now)
                    .map_err(|_| unavailable())?
            }
        };
        Ok(Some(IdentityToken {
            name: profile.header.clone(),
            signed,
        }))
    }

    /// The policy: Envoy's, else the first matching route, else the
    /// default.
    fn select<'p>(&'p self, req: &Request<'_>) -> Result<Selection<'p>, Deny> {
        self.policies
            .select(req.policy, req.host, req.method, req.path)
            .map_err(|e| {
                Deny::new(match e {
                    SelectError::UnknownPolicy => Reason::UnknownPolicy,
                    SelectError::BadPath => Reason::MalformedPath,
                })
            })
    }

    /// The one credential the request carries (400 when ambiguous or
    /// malformed, 401 when missing); `decoded` holds a query token that
    /// had to be percent-decoded.
    fn present<'r, 'a>(
        &self,
        req: &'r Request<'a>,
        decoded: &'a mut String,
    ) -> Result<Presented<'r, 'a>, Deny> {
        match self.extractor.extract(req, decoded) {
            Ok(credential) => Ok(Presented::new(credential, req, self.trusted_hops)),
            Err(reason) => Err(Deny::new(reason)),
        }
    }

    /// Seconds the limiter still blocks this client or credential, if
    /// it does. A blocked request is answered from the caches only: a
    /// credential known good (a cached token or record) still passes, so
    /// a shared address (a gateway, a NAT) blocked by someone else's
    /// failures does not lock out its signed-in users; anything that would
    /// need a signature check or a store read gets 429. The client IP and
    /// the limiter key are derived only when something is blocked.
    fn blocked(&self, presented: &Presented<'_, '_>) -> Option<u64> {
        if !self.ports.any_blocked() {
            return None;
        }
        self.ports
            .blocked(presented.client_ip(), limiter_key(presented))
            .map(|wait| wait.as_secs().max(1))
    }

    /// A failed authentication's deny; a rejected credential (401, not an
    /// outage or a malformed request) counts toward the limiter, unless
    /// the check is `quiet` (an introspection).
    fn failed(&self, presented: &Presented<'_, '_>, reason: Reason, quiet: bool) -> Deny {
        if reason.status() == 401 && !quiet {
            self.ports
                .record_failure(presented.client_ip(), limiter_key(presented));
        }
        deny(presented, reason)
    }
}

/// Why a `deny` policy refused: no route matched, or a route said so.
fn refusal(selection: &Selection<'_>) -> Reason {
    if selection.source == Source::Default {
        Reason::NoRoute
    } else {
        Reason::RouteDenied
    }
}

/// A deny of a presented credential: its kind and hash go with it.
fn deny(presented: &Presented<'_, '_>, reason: Reason) -> Deny {
    Deny {
        method: Some(presented.kind()),
        credential: Some(*presented.hash()),
        ..Deny::new(reason)
    }
}

/// The credential's key in the limiter: a hash prefix, never the secret.
fn limiter_key<'p>(presented: &'p Presented<'_, '_>) -> &'p [u8] {
    &presented.hash()[..LIMITER_KEY_BYTES]
}
