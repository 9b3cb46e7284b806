//! A decision is a value: allow with an identity, allow without one, or
//! deny with a [`Deny`] that carries everything the response and the log
//! line need. The renderers (`response.rs`, the adapters in `server/`)
//! depend on this, not on the checker that produced it.

use crate::credential_kind::CredentialKind;
use crate::credentials::CredentialHash;
use crate::identity::{Headers, Identity, Signed};
use crate::policy::Policy;
use crate::reason::Reason;
use std::sync::Arc;

/// What ward answers for one check.
#[derive(Debug, Clone)]
pub enum Decision {
    Allow(Allowed),
    /// No identity injected, and every managed header the client sent
    /// still removed: a `public` policy, an `optional` one whose credential
    /// did not pass, or a store outage under `on_store_error: open`.
    /// `method` is the kind of a credential that was found, if any (for
    /// metrics).
    AllowAnonymous {
        method: Option<CredentialKind>,
    },
    Deny(Deny),
}

impl Decision {
    /// A deny with nothing known but its reason.
    pub fn deny(reason: Reason) -> Self {
        Decision::Deny(Deny::new(reason))
    }

    /// The kind of the credential presented, if one was found.
    pub fn method(&self) -> Option<CredentialKind> {
        match self {
            Decision::Allow(allowed) => Some(allowed.identity.method),
            Decision::AllowAnonymous { method } => *method,
            Decision::Deny(deny) => deny.method,
        }
    }
}

/// An allow with an identity: its headers, the identity token the
/// policy sends with them, if it does, and the calling workload's
/// principal, if the policy checked one.
#[derive(Debug, Clone)]
pub struct Allowed {
    pub identity: Arc<Identity>,
    pub token: Option<IdentityToken>,
    pub principal: Option<PrincipalHeader>,
}

impl From<Arc<Identity>> for Allowed {
    fn from(identity: Arc<Identity>) -> Self {
        Allowed {
            identity,
            token: None,
            principal: None,
        }
    }
}

/// Every header an allow sets, in order.
pub type AllowHeaders<'a> = std::iter::Chain<
    std::iter::Chain<Headers<'a>, std::option::IntoIter<(&'a str, &'a str)>>,
    std::option::IntoIter<(&'a str, &'a str)>,
>;

impl Allowed {
    /// Every header the allow sets: the identity's, the token's, then the
    /// principal's.
    pub fn headers(&self) -> AllowHeaders<'_> {
        let token = self.token.as_ref().map(IdentityToken::header);
        let principal = self.principal.as_ref().map(PrincipalHeader::header);
        self.identity.headers().chain(token).chain(principal)
    }
}

/// The checked principal of the calling workload, and the header it goes
/// in (`workload.header`). Set per check: the same user may call through
/// many workloads, so it is never part of the cached identity.
#[derive(Debug, Clone)]
pub struct PrincipalHeader {
    pub name: Arc<str>,
    pub value: String,
}

impl PrincipalHeader {
    /// `(header name, principal)`.
    pub fn header(&self) -> (&str, &str) {
        (&self.name, &self.value)
    }
}

/// A signed identity token and the header it goes in.
#[derive(Debug, Clone)]
pub struct IdentityToken {
    pub name: Arc<str>,
    pub signed: Arc<Signed>,
}

impl IdentityToken {
    /// `(header name, token)`.
    pub fn header(&self) -> (&str, &str) {
        (&self.name, &self.signed.token)
    }
}

/// A deny, with what shapes its response and its log line.
#[derive(Debug, Clone)]
pub struct Deny {
    pub reason: Reason,
    /// The kind of the credential presented, if one was found.
    pub method: Option<CredentialKind>,
    /// The credential's hash, for the log line (never the credential).
    pub credential: Option<CredentialHash>,
    /// The policy applied, when one was selected: its login URL and
    /// accepted kinds shape the response.
    pub policy: Option<Arc<Policy>>,
    /// For a 429: seconds until the client may try again.
    pub retry_after: Option<u64>,
}

impl Deny {
    pub fn new(reason: Reason) -> Self {
        Deny {
            reason,
            method: None,
            credential: None,
            policy: None,
            retry_after: None,
        }
    }
}
