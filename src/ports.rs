//! The checker's ports: everything a check asks of the world outside the
//! pure core, as one trait. Store reads (through the in-process cache),
//! verified tokens kept from earlier checks, where a new token's signature
//! is verified (off the thread that answers hits), the current JWT keys
//! (and a bounded wait for a refetch), the brute-force limiter, and the
//! counters a check bumps.
//!
//! Why a trait: the core (`check.rs`, `authn.rs` and what they import)
//! then names no runtime, cache, client or metrics crate (an architecture
//! test holds it to that), so the same checker runs behind the gRPC
//! server, in `ward explain`, and inside Envoy as a dynamic module, each
//! with its own wiring. The server's implementation is `wiring.rs` (moka,
//! Redis, tokio, prometheus). Generic, not `dyn`: a cache hit must not pay
//! for a boxed future.

use crate::credentials::CredentialHash;
use crate::identity::Identity;
use crate::identity_token::keys::KeyRing;
use crate::jwt::KeySet;
use crate::reason::Reason;
use crate::record::{ApiKeyRecord, SessionRecord};
use crate::store::reply::StoreError;
use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

/// Whether a read may be answered from an older copy when the store
/// fails: the route's `on_store_error` decides (`closed` never). And
/// `CacheOnly`: answer from a fresh cached read or not at all, never
/// asking the store (for a client the brute-force limiter has blocked).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stale {
    Allowed,
    Refused,
    CacheOnly,
}

/// A counter a check bumps (the metrics are the wiring's business).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    TokenCacheHit,
    TokenCacheMiss,
}

/// A new token's verification, as [`Ports::verify`] runs it: what it
/// verified as, or why it was refused.
pub type Verification = Result<VerifiedToken, Reason>;

/// A token whose signature and claims checked out.
#[derive(Debug, Clone)]
pub struct VerifiedToken {
    pub identity: Arc<Identity>,
    /// The token's `exp`, unix seconds.
    pub exp: u64,
    /// The [`KeySet::fingerprint`](crate::jwt::KeySet::fingerprint) of the
    /// keys it was verified with: while the keys keep it, the token would
    /// verify the same again (`cache.rs` renews it without a signature check).
    pub keys: u64,
}

/// Why an opaque token's introspection gave no identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntrospectionFailure {
    /// The provider answered, and the token does not pass (kept for the
    /// provider's `negative_ttl`).
    Refused(Reason),
    /// The provider did not answer usably, and no earlier answer could
    /// stand in (the policy's `on_store_error` decides).
    Outage,
    /// Too many calls to providers already (`introspection.max_*`).
    Overloaded,
}

/// What the core makes of a provider's answer: the identity and the
/// token's `exp`, or the refusal; `Err(None)`: no answer at all (an
/// outage).
pub type Interpretation = Result<(Arc<Identity>, Option<u64>), Option<Reason>>;

/// What a check needs from outside the core.
pub trait Ports: Send + Sync {
    /// The hash at `session:{sid}` (`None`: no such session).
    fn session(
        &self,
        sid: &str,
        stale: Stale,
    ) -> impl Future<Output = Result<Option<Arc<SessionRecord>>, StoreError>> + Send;

    /// The hash at `apikey:{key_hash}`.
    fn api_key(
        &self,
        key_hash: &str,
        stale: Stale,
    ) -> impl Future<Output = Result<Option<Arc<ApiKeyRecord>>, StoreError>> + Send;

    /// Whether `revoked_jti:{jti}` exists.
    fn jti_revoked(
        &self,
        jti: &str,
        stale: Stale,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// The identity verified earlier for `token`, if still unexpired at
    /// `now`. `hash` gives its hash, the cache's key: asked only when the
    /// wiring does not know the token by its text already.
    fn token<'k>(
        &self,
        token: &str,
        hash: impl FnOnce() -> &'k CredentialHash,
        now: u64,
    ) -> Option<Arc<Identity>>;

    /// Runs `verify` (a new token's signature and claims: the costly part
    /// of a check) where the wiring says: off the thread that answers
    /// [`Ports::token`] hits, unless there is no other or the others got no
    /// CPU for a while; once for all the checks of one token (`hash`) that
    /// ask together. A success is kept
    /// for [`Ports::token`] until the token's `exp` (at most). `Err`:
    /// `verify`'s refusal, or [`Reason::VerificationOverloaded`] when too
    /// many new tokens wait already.
    fn verify<F>(
        &self,
        hash: &CredentialHash,
        now: u64,
        verify: F,
    ) -> impl Future<Output = Result<Arc<Identity>, Reason>> + Send
    where
        F: FnOnce() -> Verification + Send + 'static;

    /// An opaque token's kept answer at `now`: the identity of an active
    /// one (until its `exp`, at most the provider's `max_ttl`), or the
    /// refusal of an inactive one (for `negative_ttl`).
    fn introspected(
        &self,
        hash: &CredentialHash,
        now: u64,
    ) -> Option<Result<Arc<Identity>, Reason>>;

    /// Asks provider `provider` (its index in `introspection.providers`)
    /// about `token`: once for all the checks of one token that ask
    /// together, within the global call limits, through the provider's
    /// breaker; `interpret` reads the answer. With `stale`, an outage may
    /// be answered by an earlier active answer still within
    /// `store.stale_if_error` of its freshness. The answer is kept for
    /// [`Ports::introspected`].
    fn introspect<F>(
        &self,
        provider: usize,
        token: &str,
        hash: &CredentialHash,
        now: u64,
        stale: Stale,
        interpret: F,
    ) -> impl Future<Output = Result<Arc<Identity>, IntrospectionFailure>> + Send
    where
        F: FnOnce(&[u8]) -> Interpretation + Send;

    /// Whether verified tokens are kept at all (`cache.enabled`).
    fn keeps_tokens(&self) -> bool;

    /// The JWT keys now.
    fn keys(&self) -> Arc<KeySet>;

    /// A token named an unknown `kid`: ask for a refetch and wait at most
    /// `wait` for new keys. `false` when no refetch was due (the refetch
    /// rate is bounded), so nothing changed.
    fn await_new_keys(&self, wait: Duration) -> impl Future<Output = bool> + Send;

    /// Whether any client or credential is blocked now (cheap; the common
    /// answer is no).
    fn any_blocked(&self) -> bool;

    /// How long this client IP or credential key is still blocked.
    fn blocked(&self, ip: Option<IpAddr>, credential: &[u8]) -> Option<Duration>;

    /// Counts a rejected credential against its client and itself.
    fn record_failure(&self, ip: Option<IpAddr>, credential: &[u8]);

    fn count(&self, event: Event);

    /// The identity-token signing keys (`None`: the config has none, or
    /// they could not be loaded: a policy that sends tokens then fails
    /// closed).
    fn signing_keys(&self) -> Option<&Arc<KeyRing>>;

    /// Runs `job` later, off the check's thread, without waiting for it
    /// (an identity token's re-sign). May drop it when too much is
    /// queued: the job must not be needed for correctness.
    fn background(&self, job: Box<dyn FnOnce() + Send>);
}
