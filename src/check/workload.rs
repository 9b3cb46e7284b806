//! The workload steps of a check: the calling workload's principal
//! (`workload.rs`) against the policy's patterns.
//!
//! Two uses, one reading: `accept: [mtls]` lets a workload in on its
//! principal alone (an identity with `x-auth-method: mtls` and no user),
//! and `workload` names the workloads that must call beside a user
//! credential ("only the orders service, on behalf of a logged-in
//! user"). The second is checked before the user credential, so a
//! workload that may not call never costs a store read or a signature.
//! Statuses follow RFC 6750's split: no principal where it is the
//! credential is a 401 without an error code (nothing was presented);
//! a principal that may not pass, or none beside a valid user, is a 403.

use super::{Checker, Trace};
use crate::credential_kind::CredentialKind;
use crate::decision::{Allowed, Decision, Deny, PrincipalHeader};
use crate::identity::{Identity, IdentityParts};
use crate::policy::{Policy, Principals};
use crate::ports::Ports;
use crate::reason::Reason;
use crate::request::Request;
use crate::workload::Principal;
use std::sync::Arc;

impl<P: Ports> Checker<P> {
    /// The policy's `workload` requirement, if it has one: the principal
    /// that passed it, for the allow's header.
    pub(super) fn required_workload(
        &self,
        req: &Request<'_>,
        policy: &Policy,
        trace: &mut Trace,
    ) -> Result<Option<PrincipalHeader>, Deny> {
        let Some(allowed) = &policy.workload else {
            return Ok(None);
        };
        let checked = self.checked_principal(req, allowed, Reason::PrincipalRequired, trace);
        checked.map(|p| Some(self.principal_header(&p)))
    }

    /// `accept: [mtls]` and no user credential: the principal is the
    /// credential. An allow carries an identity with `x-auth-method:
    /// mtls` (no user id header: there is no user) and the principal's
    /// header; the policy's roles and scopes, which a workload never
    /// holds, still apply.
    pub(super) fn workload_allow(
        &self,
        req: &Request<'_>,
        policy: &Policy,
        trace: &mut Trace,
    ) -> Result<Decision, Deny> {
        // Only a policy with principals gets here; without, none passes.
        let none = Principals::default();
        let allowed = policy.principals.as_deref().unwrap_or(&none);
        let checked = self.checked_principal(req, allowed, Reason::MissingPrincipal, trace);
        let principal = checked.map_err(|deny| Deny {
            method: Some(CredentialKind::Mtls),
            ..deny
        })?;
        let identity = Arc::new(Identity::from(IdentityParts {
            user_id: principal.name.to_string(),
            method: CredentialKind::Mtls,
            headers: vec![(self.method_header.clone(), "mtls".into())],
            jti: None,
            session_id: None,
            roles: Vec::new(),
            scopes: Vec::new(),
        }));
        let authorized = policy.authorize(&identity).map_err(|reason| Deny {
            method: Some(CredentialKind::Mtls),
            ..Deny::new(reason)
        });
        trace.step("authorize", || super::trace::authorized(&authorized));
        authorized?;
        Ok(Decision::Allow(Allowed {
            principal: Some(self.principal_header(&principal)),
            ..Allowed::from(identity)
        }))
    }

    /// The request's principal if `allowed` lets it in; `missing` when
    /// there is none. Recorded as the `principal` step.
    fn checked_principal<'r>(
        &self,
        req: &Request<'r>,
        allowed: &Principals,
        missing: Reason,
        trace: &mut Trace,
    ) -> Result<Principal<'r>, Deny> {
        let read = self.workload.principal(req);
        let (result, found) = match read {
            Err(_) => (Err(Reason::MalformedPrincipal), None),
            Ok(None) => (Err(missing), None),
            Ok(Some(p)) if allowed.allows(&p.name) => (Ok(()), Some(p)),
            Ok(Some(p)) => (Err(Reason::PrincipalNotAllowed), Some(p)),
        };
        trace.step("principal", || {
            super::trace::principal(found.as_ref(), result, allowed)
        });
        match (result, found) {
            (Ok(()), Some(p)) => Ok(p),
            (Err(reason), _) => Err(Deny::new(reason)),
            (Ok(()), None) => Err(Deny::new(missing)),
        }
    }

    fn principal_header(&self, principal: &Principal<'_>) -> PrincipalHeader {
        PrincipalHeader {
            name: self.workload.header.clone(),
            value: principal.name.to_string(),
        }
    }
}
