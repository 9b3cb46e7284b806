//! Route policies: which rules a request must meet, chosen by route.
//!
//! Real deployments are never "everything needs a token": health checks
//! are public, `/admin` needs a role, a partner API takes only API keys.
//! A [`Policy`] says what a request needs (mode, accepted credential
//! kinds, roles, scopes, behaviour when the store is down, a login URL);
//! [`Policies`] picks one per request:
//!
//! 1. an Envoy route's `context_extensions` `ward_policy: NAME`, for
//!    teams that keep routing in Envoy (an unknown name fails closed);
//! 2. else the first entry of `routes` matching the canonical path
//!    ([`path`]), host and method;
//! 3. else `default_policy` (`required` when there are no routes, so a
//!    config without routes protects everything; `deny` otherwise).
//!
//! Pure: no I/O, no clock. `check.rs` applies the chosen policy.

mod compile;
mod glob;
pub mod path;
mod principals;
mod route;

pub use principals::Principals;
pub use route::{PathMatch, RouteError, RouteSpec, RouteTable};

use crate::config::{Config, Mode, OnStoreError, PolicyConfig, PrincipalPattern, Requirement};
use crate::identity::Identity;
use crate::identity_token::Profile;
use crate::reason::Reason;

use crate::credential_kind::CredentialKind;
use std::collections::HashMap;
use std::sync::Arc;

/// A compiled policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// The policy's name, or the route's for an inline policy.
    pub name: String,
    pub mode: Mode,
    accept: [bool; KINDS],
    pub roles: Requirement,
    pub scopes: Requirement,
    pub on_store_error: OnStoreError,
    pub login_url: Option<String>,
    /// The identity token an allow sends the backend, if any.
    pub identity_token: Option<Arc<Profile>>,
    /// With `mtls` accepted: the workload principals it lets in alone.
    pub principals: Option<Arc<Principals>>,
    /// The workloads that must call, beside the user credential.
    pub workload: Option<Arc<Principals>>,
}

/// How many credential kinds there are.
pub const KINDS: usize = CredentialKind::ALL.len();

/// The credential kinds a config enables: JWTs when keys or JWKS are
/// configured, sessions and API keys when enabled, opaque tokens when
/// introspection providers are; `mtls` always (a policy names it, with
/// its principals).
pub fn enabled_kinds(config: &Config) -> [bool; KINDS] {
    let mut on = [false; KINDS];
    on[slot(CredentialKind::Jwt)] = !(config.jwt.keys.is_empty() && config.jwt.jwks.is_empty());
    on[slot(CredentialKind::Session)] = config.sessions.enabled;
    on[slot(CredentialKind::ApiKey)] = config.api_keys.enabled;
    on[slot(CredentialKind::Opaque)] = config.introspection_on();
    on[slot(CredentialKind::Mtls)] = true;
    on
}

impl Policy {
    /// A policy accepting `config.accept` (every user credential kind
    /// when empty; `mtls` only when listed) among the `enabled` ones.
    /// Principal patterns `check-config` would refuse let nothing in.
    pub fn from_config(name: &str, config: &PolicyConfig, enabled: [bool; KINDS]) -> Self {
        let mut accept = [config.accept.is_empty(); KINDS];
        accept[slot(CredentialKind::Mtls)] = false;
        for kind in &config.accept {
            accept[slot(*kind)] = true;
        }
        for (a, on) in accept.iter_mut().zip(enabled) {
            *a &= on;
        }
        let compile =
            |patterns: &[PrincipalPattern]| Arc::new(Principals::new(patterns).unwrap_or_default());
        let mtls = accept[slot(CredentialKind::Mtls)];
        Self {
            name: name.to_string(),
            mode: config.mode,
            accept,
            roles: config.roles.clone(),
            scopes: config.scopes.clone(),
            on_store_error: config.on_store_error,
            login_url: config.login_url.clone(),
            identity_token: None,
            principals: mtls.then(|| compile(&config.principals)),
            workload: config.workload.as_ref().map(|w| compile(&w.principals)),
        }
    }

    fn builtin(name: &str, mode: Mode, enabled: [bool; KINDS]) -> Self {
        Self::from_config(
            name,
            &PolicyConfig {
                mode,
                ..PolicyConfig::default()
            },
            enabled,
        )
    }

    /// Whether this policy accepts credentials of `method`.
    pub fn accepts(&self, method: CredentialKind) -> bool {
        self.accept[slot(method)]
    }

    /// Whether `mtls` is the only kind accepted: user credentials are
    /// not read at all.
    pub fn only_mtls(&self) -> bool {
        self.accepted().all(|k| k == CredentialKind::Mtls) && self.principals.is_some()
    }

    /// The kinds accepted, in a fixed order (for challenges and `explain`).
    pub fn accepted(&self) -> impl Iterator<Item = CredentialKind> + '_ {
        CredentialKind::ALL.into_iter().filter(|m| self.accepts(*m))
    }

    /// Roles, then scopes: a valid credential lacking either is a 403.
    pub fn authorize(&self, identity: &Identity) -> Result<(), Reason> {
        if !satisfies(&self.roles, identity.roles()) {
            return Err(Reason::InsufficientRole);
        }
        if !satisfies(&self.scopes, identity.scopes()) {
            return Err(Reason::InsufficientScope);
        }
        Ok(())
    }
}

fn satisfies<'a>(req: &Requirement, held: impl Iterator<Item = &'a str> + Clone) -> bool {
    let has = |want: &String| held.clone().any(|h| h == want);
    req.all_of.iter().all(has) && (req.any_of.is_empty() || req.any_of.iter().any(has))
}

fn slot(method: CredentialKind) -> usize {
    match method {
        CredentialKind::Jwt => 0,
        CredentialKind::Session => 1,
        CredentialKind::ApiKey => 2,
        CredentialKind::Opaque => 3,
        CredentialKind::Mtls => 4,
    }
}

/// Which policy applies to a request, and why.
#[derive(Debug, Clone)]
pub struct Selection<'a> {
    pub policy: &'a Arc<Policy>,
    pub source: Source,
}

/// Where a selection came from (shown by `ward explain`, logged on deny).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Envoy's `context_extensions` named it.
    Envoy,
    /// `routes[index]` matched.
    Route { index: usize, name: String },
    /// No route matched.
    Default,
}

/// Why no policy could be selected: the request is denied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SelectError {
    /// Envoy named a policy ward does not have (a deployment mistake).
    UnknownPolicy,
    /// The path cannot be canonicalized (400).
    BadPath,
}

/// The compiled `routes`, `policies` and `default_policy`.
#[derive(Debug)]
pub struct Policies {
    named: HashMap<String, Arc<Policy>>,
    routes: RouteTable,
    route_policies: Vec<(String, Arc<Policy>)>,
    default: Arc<Policy>,
    /// Whether any route needs the path (else matching is skipped).
    has_routes: bool,
}

/// Every problem of a policy config, as one error (for code that loads a
/// config `check-config` has not vetted).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .0.iter().map(|p| format!("{}: {}", p.path, p.message)).collect::<Vec<_>>().join("; "))]
pub struct PolicyErrors(pub Vec<PolicyProblem>);

/// A config problem found while compiling, with its field path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyProblem {
    pub path: String,
    pub message: String,
}

impl Policies {
    /// The policy for a request. `envoy_policy` is the `ward_policy`
    /// context extension, if the Envoy route set one.
    pub fn select(
        &self,
        envoy_policy: Option<&str>,
        host: &str,
        method: &str,
        raw_path: &str,
    ) -> Result<Selection<'_>, SelectError> {
        if let Some(name) = envoy_policy {
            return self
                .named
                .get(name)
                .map(|policy| Selection {
                    policy,
                    source: Source::Envoy,
                })
                .ok_or(SelectError::UnknownPolicy);
        }
        if !self.has_routes {
            return Ok(Selection {
                policy: &self.default,
                source: Source::Default,
            });
        }
        let path = path::canonicalize(raw_path).map_err(|_| SelectError::BadPath)?;
        Ok(match self.routes.find(host, method, &path) {
            Some(index) => {
                let (name, policy) = &self.route_policies[index];
                Selection {
                    policy,
                    source: Source::Route {
                        index,
                        name: name.clone(),
                    },
                }
            }
            None => Selection {
                policy: &self.default,
                source: Source::Default,
            },
        })
    }

    /// A named policy (built-in or from `policies`).
    pub fn named(&self, name: &str) -> Option<&Arc<Policy>> {
        self.named.get(name)
    }
}

#[cfg(test)]
mod tests;
