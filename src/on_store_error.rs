//! What a failed store read means for a check: the one place the
//! policy's `on_store_error` is applied.
//!
//! A check reads the store at four sites (a session, an API key, the
//! session behind a JWT's `sid`, a JWT's `jti` revocation marker). Each
//! failure is first classified by the store ([`Fault`]): an *outage* (the
//! store did not answer: timeout, lost connection, open breaker) may pass
//! under `on_store_error: open`; a *bad record* (the store answered, and
//! what it holds is not what the contract says: `WRONGTYPE`, an
//! unparsable or incomplete hash) is a permanent problem with that one
//! credential, so it is a 401 under every policy, never a 503 and never an
//! allow. Before this function existed, the rules lived in three modules
//! and disagreed: a corrupt session reached through a JWT's `sid` was
//! *allowed* under `open`.
//!
//! `stale` needs nothing here: the stale copy is served (or not) by the
//! read itself (`lookup.rs`), before a failure reaches this function.

use crate::config::OnStoreError;
use crate::reason::Reason;

/// Why a store read gave no usable answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The store did not answer (and no stale copy was allowed or usable).
    Outage,
    /// The store answered with something that is not a valid record.
    BadRecord,
    /// A cache-only read (a client the limiter blocked) found nothing
    /// cached; the store was not asked.
    NotCached,
}

/// Where in a check the read was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Site {
    /// `session:{sid}` for a session credential.
    Session,
    /// `apikey:{hash}` for an API key.
    ApiKey,
    /// `session:{sid}` for a JWT's `sid` (`require_session`).
    TokenSession,
    /// `revoked_jti:{jti}` for a JWT (`check_jti`).
    RevokedJti,
    /// An opaque token's introspection endpoint: not the store, but a
    /// dependency failing the same ways, decided by the same rule (its
    /// outage is `introspection_unavailable`).
    Introspection,
}

/// What the check does about the failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    Deny(Reason),
    /// Pass without identity (a session or API key under `open`).
    Anonymous,
    /// Keep the identity already verified (a JWT's signature and claims
    /// held; only its revocation could not be checked, under `open`).
    KeepIdentity,
}

/// The verdict for a `fault` at `site` under `policy`.
pub(crate) fn verdict(fault: Fault, policy: OnStoreError, site: Site) -> Verdict {
    match fault {
        Fault::BadRecord => Verdict::Deny(match site {
            Site::Session | Site::TokenSession => Reason::InvalidSession,
            Site::ApiKey => Reason::InvalidApiKey,
            // A marker exists under the token's jti, in whatever shape:
            // the issuer meant to revoke it.
            Site::RevokedJti => Reason::TokenRevoked,
            // Not produced (a provider's unreadable answer is an
            // outage); were it, a refusal of the token.
            Site::Introspection => Reason::InactiveToken,
        }),
        Fault::NotCached => Verdict::Deny(down(site)),
        Fault::Outage => match (policy, site) {
            (OnStoreError::Closed | OnStoreError::Stale, _) => Verdict::Deny(down(site)),
            (OnStoreError::Open, Site::Session | Site::ApiKey | Site::Introspection) => {
                Verdict::Anonymous
            }
            (OnStoreError::Open, Site::TokenSession | Site::RevokedJti) => Verdict::KeepIdentity,
        },
    }
}

/// The 503 of a dependency that did not answer.
fn down(site: Site) -> Reason {
    match site {
        Site::Introspection => Reason::IntrospectionUnavailable,
        Site::Session | Site::ApiKey | Site::TokenSession | Site::RevokedJti => {
            Reason::StoreUnavailable
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Fault::*;
    use OnStoreError::*;
    use Site::*;

    /// Every fault × policy × site, written out: the table the docs give
    /// (docs/redis-contract.md, "When Redis fails").
    #[test]
    fn table() {
        let deny = Verdict::Deny;
        let down = deny(Reason::StoreUnavailable);
        #[rustfmt::skip]
        let cases = [
            // fault      policy  site           verdict
            (Outage,    Closed, Session,      down),
            (Outage,    Closed, ApiKey,       down),
            (Outage,    Closed, TokenSession, down),
            (Outage,    Closed, RevokedJti,   down),
            (Outage,    Stale,  Session,      down),
            (Outage,    Stale,  ApiKey,       down),
            (Outage,    Stale,  TokenSession, down),
            (Outage,    Stale,  RevokedJti,   down),
            (Outage,    Open,   Session,      Verdict::Anonymous),
            (Outage,    Open,   ApiKey,       Verdict::Anonymous),
            (Outage,    Open,   TokenSession, Verdict::KeepIdentity),
            (Outage,    Open,   RevokedJti,   Verdict::KeepIdentity),
            (BadRecord, Closed, Session,      deny(Reason::InvalidSession)),
            (BadRecord, Closed, ApiKey,       deny(Reason::InvalidApiKey)),
            (BadRecord, Closed, TokenSession, deny(Reason::InvalidSession)),
            (BadRecord, Closed, RevokedJti,   deny(Reason::TokenRevoked)),
            (BadRecord, Stale,  Session,      deny(Reason::InvalidSession)),
            (BadRecord, Stale,  ApiKey,       deny(Reason::InvalidApiKey)),
            (BadRecord, Stale,  TokenSession, deny(Reason::InvalidSession)),
            (BadRecord, Stale,  RevokedJti,   deny(Reason::TokenRevoked)),
            (BadRecord, Open,   Session,      deny(Reason::InvalidSession)),
            (BadRecord, Open,   ApiKey,       deny(Reason::InvalidApiKey)),
            (BadRecord, Open,   TokenSession, deny(Reason::InvalidSession)),
            (BadRecord, Open,   RevokedJti,   deny(Reason::TokenRevoked)),
            (NotCached, Closed, Session,      down),
            (NotCached, Closed, ApiKey,       down),
            (NotCached, Closed, TokenSession, down),
            (NotCached, Closed, RevokedJti,   down),
            (NotCached, Stale,  Session,      down),
            (NotCached, Stale,  ApiKey,       down),
            (NotCached, Stale,  TokenSession, down),
            (NotCached, Stale,  RevokedJti,   down),
            (NotCached, Open,   Session,      down),
            (NotCached, Open,   ApiKey,       down),
            (NotCached, Open,   TokenSession, down),
            (NotCached, Open,   RevokedJti,   down),
            (Outage,    Closed, Introspection, deny(Reason::IntrospectionUnavailable)),
            (Outage,    Stale,  Introspection, deny(Reason::IntrospectionUnavailable)),
            (Outage,    Open,   Introspection, Verdict::Anonymous),
            (BadRecord, Open,   Introspection, deny(Reason::InactiveToken)),
            (NotCached, Open,   Introspection, deny(Reason::IntrospectionUnavailable)),
        ];
        for (fault, policy, site, want) in cases {
            assert_eq!(
                verdict(fault, policy, site),
                want,
                "{fault:?} {policy:?} {site:?}"
            );
        }
    }

    #[test]
    fn a_bad_record_is_never_an_outage_or_an_allow() {
        for policy in [Closed, Stale, Open] {
            for site in [Session, ApiKey, TokenSession, RevokedJti, Introspection] {
                match verdict(BadRecord, policy, site) {
                    Verdict::Deny(r) => assert_eq!(r.status(), 401, "{policy:?} {site:?}"),
                    v => panic!("{policy:?} {site:?}: {v:?}"),
                }
            }
        }
    }
}
