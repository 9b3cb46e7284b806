//! The opaque-token path of authentication: the kept answer, else one
//! introspection call through the ports, its answer read by the pure
//! `introspection.rs` and rendered by the JWT claim mapping. Apart from
//! `authn.rs` because it is a kind of its own, with its own failure
//! modes (a provider that does not answer is decided like a store outage).

use super::{Authenticated, Authenticator, Io, anonymous};
use crate::credential_kind::CredentialKind;
use crate::identity::{ClaimRenderer, IdentityError};
use crate::introspection::{self, AnswerRules};
use crate::on_store_error::{self, Site};
use crate::ports::{Interpretation, IntrospectionFailure, Ports, Stale};
use crate::presented::Presented;
use crate::reason::Reason;
use std::sync::Arc;

impl Authenticator {
    /// An opaque token: its kept answer, else one call to its provider
    /// (through the ports: limits, single flight, breaker). A provider
    /// that does not answer is an outage, decided by the policy as a
    /// store outage is.
    pub(super) async fn opaque<P: Ports>(
        &self,
        io: Io<'_, P>,
        token: &str,
        presented: &Presented<'_, '_>,
        now: u64,
    ) -> Result<Authenticated, Reason> {
        let hash = presented.hash();
        match io.ports.introspected(hash, now) {
            Some(kept) => return kept.map(Authenticated::Identity),
            None if io.read.stale == Stale::CacheOnly => return Err(Reason::TooManyFailures),
            None => {}
        }
        let provider = self.formats.provider_for(token);
        let Some((provider, rules)) = provider.and_then(|p| Some((p, self.answers.get(p)?))) else {
            return Err(Reason::MalformedToken);
        };
        let renderer = &self.jwt.renderer;
        let read = |body: &[u8]| interpret(body, rules, renderer, now);
        let asked = io
            .ports
            .introspect(provider, token, hash, now, io.read.stale, read)
            .await;
        match asked {
            Ok(identity) => Ok(Authenticated::Identity(identity)),
            Err(IntrospectionFailure::Refused(reason)) => Err(reason),
            Err(IntrospectionFailure::Overloaded) => Err(Reason::IntrospectionOverloaded),
            Err(IntrospectionFailure::Outage) => anonymous(on_store_error::verdict(
                on_store_error::Fault::Outage,
                io.read.policy,
                Site::Introspection,
            )),
        }
    }
}

/// A provider's answer → the identity (the JWT claim mapping, `x-auth-method:
/// opaque`) and the token's `exp`; a refusal's reason; `Err(None)` for an
/// answer that is none.
fn interpret(
    body: &[u8],
    rules: &AnswerRules,
    renderer: &ClaimRenderer,
    now: u64,
) -> Interpretation {
    let active = introspection::read_answer(body, rules, now).map_err(|e| e.reason())?;
    let identity = renderer
        .render(&active.claims, CredentialKind::Opaque)
        .map_err(|e| {
            Some(match e {
                IdentityError::MissingUserId(_) => Reason::MissingClaim,
                IdentityError::BadValue { .. } => Reason::InvalidClaim,
            })
        })?;
    Ok((Arc::new(identity.with_expiry(active.exp)), active.exp))
}
