//! The server's side of the checker's ports (`ports.rs`): store reads
//! through the moka-cached lookups (Redis or the embedded store), verified
//! tokens in the moka token cache, new tokens verified on the verification
//! threads (`verifications.rs`), the JWKS key store with its tokio
//! fetchers, the governor limiter, and Prometheus counters. `ward serve`
//! and `ward explain` build their checker here, so they run the same one.

use crate::background::Background;
use crate::cache::{Lookup, TokenCache};
use crate::check::Checker;
use crate::config::{Config, ProcessEnv};
use crate::credentials::CredentialHash;
use crate::identity::Identity;
use crate::identity_token::{self, keys::KeyRing};
use crate::introspections::Introspections;
use crate::jwks::KeyStore;
use crate::jwt::KeySet;
use crate::limiter::Limiter;
use crate::lookup::Lookups;
use crate::metrics::Metrics;
use crate::policy::{Policies, PolicyErrors};
use crate::ports::{Event, Interpretation, IntrospectionFailure, Ports, Stale, Verification};
use crate::reason::Reason;
use crate::record::{ApiKeyRecord, SessionRecord};
use crate::store::StoreError;
use crate::verifications::{Hold, Verifications};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;
use tracing::Instrument;

/// The checker `ward serve` runs.
pub type ServerChecker = Checker<ServerPorts>;

/// The checker `config` describes, over these keys and store reads:
/// what `ward serve` and `ward explain` both run.
pub fn checker(
    config: &Config,
    keys: Arc<KeyStore>,
    lookups: Arc<Lookups>,
    metrics: Arc<Metrics>,
) -> Result<ServerChecker, PolicyErrors> {
    let parts = Parts::new(config, keys, lookups);
    checker_with(config, parts, metrics)
}

/// The checker `config` describes, over parts that may come from an
/// earlier config: a reload (`server/reload.rs`) keeps the parts whose
/// config and files did not change, with what they hold.
pub fn checker_with(
    config: &Config,
    parts: Parts,
    metrics: Arc<Metrics>,
) -> Result<ServerChecker, PolicyErrors> {
    let policies = Policies::from_config(config).map_err(PolicyErrors)?;
    // Each checker its own verification threads (a reload's old ones end
    // with the old checker); successes go to the parts' token cache.
    let jwt_on = !(config.jwt.keys.is_empty() && config.jwt.jwks.is_empty());
    let verifications = Verifications::new(
        &config.jwt.verify,
        jwt_on,
        parts.tokens.clone(),
        metrics.clone(),
    );
    // Each checker its own introspection state (answers, limits,
    // discovery), told of invalidations by the parts' store reads.
    let introspections = Introspections::start(config, metrics.clone(), &ProcessEnv);
    if let Some(i) = &introspections {
        let weak = Arc::downgrade(i);
        let weak: std::sync::Weak<dyn crate::lookup::Evict> = weak;
        parts.lookups.also_evict(weak);
    }
    Ok(Checker::new(
        config,
        policies,
        ServerPorts {
            parts,
            verifications,
            introspections,
            metrics,
        },
    ))
}

/// The stateful parts behind a checker's ports: each may outlive one
/// config (cloning one shares it, and what it holds).
#[derive(Clone)]
pub struct Parts {
    pub keys: Arc<KeyStore>,
    pub lookups: Arc<Lookups>,
    pub(crate) tokens: TokenCache,
    pub limiter: Arc<Limiter>,
    /// The identity-token keys (`None`: no policy sends tokens).
    pub signing: Option<Arc<KeyRing>>,
    /// Where identity tokens are re-signed (idle without `signing`).
    pub background: Background,
}

impl Parts {
    /// Fresh caches and limiter for `config`. `lookups` serves this
    /// checker only: the views its records keep follow this config's
    /// header rules, and the limiter reads its clock.
    pub fn new(config: &Config, keys: Arc<KeyStore>, lookups: Arc<Lookups>) -> Self {
        Self::after(config, keys, lookups, None)
    }

    /// As [`Parts::new`], the identity-token keys following those of the
    /// config before a reload (`previous`).
    pub fn after(
        config: &Config,
        keys: Arc<KeyStore>,
        lookups: Arc<Lookups>,
        previous: Option<&KeyRing>,
    ) -> Self {
        let limiter = Limiter::with_clock(&config.limits, lookups.clock().clone());
        let signing = signing_keys(config, previous, crate::unix_now());
        let background = match signing {
            Some(_) => Background::start(),
            None => Background::idle(),
        };
        Self {
            keys,
            lookups,
            tokens: TokenCache::new(&config.cache),
            limiter: Arc::new(limiter),
            signing,
            background,
        }
    }

    /// A verified-token cache for `config`, empty.
    pub fn fresh_tokens(&mut self, config: &Config) {
        self.tokens = TokenCache::new(&config.cache);
    }
}

/// The ports of a checker in the server process.
pub struct ServerPorts {
    parts: Parts,
    verifications: Verifications,
    /// `None`: no `introspection.providers`.
    introspections: Option<Arc<Introspections>>,
    metrics: Arc<Metrics>,
}

impl ServerPorts {
    /// The cached store reads, for invalidation.
    pub fn lookups(&self) -> &Arc<Lookups> {
        &self.parts.lookups
    }

    /// True once every introspection endpoint is known (discovery).
    pub fn introspection_ready(&self) -> bool {
        self.introspections.as_ref().is_none_or(|i| i.is_ready())
    }

    /// Holds every verification thread busy until the [`Hold`] is
    /// dropped: a saturated pool on demand, for tests that a cache hit
    /// never waits for it. `None` with `jwt.verify.threads: 0`.
    #[doc(hidden)]
    pub fn hold_verifications(&self) -> Option<Hold> {
        self.verifications.hold()
    }
}

impl Ports for ServerPorts {
    async fn session(
        &self,
        sid: &str,
        stale: Stale,
    ) -> Result<Option<Arc<SessionRecord>>, StoreError> {
        self.parts.lookups.session(sid, stale).await
    }

    async fn api_key(
        &self,
        key_hash: &str,
        stale: Stale,
    ) -> Result<Option<Arc<ApiKeyRecord>>, StoreError> {
        self.parts.lookups.api_key(key_hash, stale).await
    }

    async fn jti_revoked(&self, jti: &str, stale: Stale) -> Result<bool, StoreError> {
        self.parts.lookups.jti_revoked(jti, stale).await
    }

    fn token<'k>(
        &self,
        token: &str,
        hash: impl FnOnce() -> &'k CredentialHash,
        now: u64,
    ) -> Option<Arc<Identity>> {
        let keys = || self.parts.keys.snapshot().fingerprint();
        let renewed = || self.metrics.token_cache_renewed.inc();
        match self
            .parts
            .tokens
            .lookup_token(token, hash, now, keys, renewed)
        {
            Lookup::Hit(identity) => Some(identity),
            Lookup::Miss => None,
        }
    }

    async fn verify<F>(
        &self,
        hash: &CredentialHash,
        now: u64,
        verify: F,
    ) -> Result<Arc<Identity>, Reason>
    where
        F: FnOnce() -> Verification + Send + 'static,
    {
        // For traces: the wait for a verification (queued, then run on the
        // pool, or joined to one in flight), a child of the check's span.
        let span = tracing::info_span!(target: crate::TRACE_TARGET, "ward.jwt.verify");
        self.verifications
            .verify(hash, now, verify)
            .instrument(span)
            .await
    }

    fn introspected(
        &self,
        hash: &CredentialHash,
        now: u64,
    ) -> Option<Result<Arc<Identity>, Reason>> {
        self.introspections.as_ref()?.kept(hash, now)
    }

    async fn introspect<F>(
        &self,
        provider: usize,
        token: &str,
        hash: &CredentialHash,
        now: u64,
        stale: Stale,
        interpret: F,
    ) -> Result<Arc<Identity>, IntrospectionFailure>
    where
        F: FnOnce(&[u8]) -> Interpretation + Send,
    {
        let Some(introspections) = &self.introspections else {
            return Err(IntrospectionFailure::Outage);
        };
        let span = tracing::info_span!(target: crate::TRACE_TARGET, "ward.introspection");
        introspections
            .introspect(provider, token, hash, now, stale, interpret)
            .instrument(span)
            .await
    }

    fn keeps_tokens(&self) -> bool {
        self.parts.tokens.is_enabled()
    }

    fn keys(&self) -> Arc<KeySet> {
        self.parts.keys.snapshot()
    }

    async fn await_new_keys(&self, wait: Duration) -> bool {
        let Some(mut changed) = self.parts.keys.request_refetch() else {
            return false;
        };
        let _ = tokio::time::timeout(wait, changed.changed()).await;
        true
    }

    fn any_blocked(&self) -> bool {
        self.parts.limiter.any_blocked()
    }

    fn blocked(&self, ip: Option<IpAddr>, credential: &[u8]) -> Option<Duration> {
        self.parts.limiter.blocked(ip, Some(credential))
    }

    fn record_failure(&self, ip: Option<IpAddr>, credential: &[u8]) {
        self.parts.limiter.record_failure(ip, Some(credential));
    }

    fn count(&self, event: Event) {
        match event {
            Event::TokenCacheHit => self.metrics.token_cache_hits.inc(),
            Event::TokenCacheMiss => self.metrics.token_cache_misses.inc(),
        }
    }

    fn signing_keys(&self) -> Option<&Arc<KeyRing>> {
        self.parts.signing.as_ref()
    }

    fn background(&self, job: Box<dyn FnOnce() + Send>) {
        self.parts.background.run(job);
    }
}

/// The identity-token keys of `config` at `now`, after `previous` (a
/// reload's: see `KeyRing::new`); `None` when no policy sends a token,
/// or the keys do not load (`setup` has refused such a config already,
/// unless a file changed since: then the policies that send tokens deny).
pub fn signing_keys(config: &Config, previous: Option<&KeyRing>, now: u64) -> Option<Arc<KeyRing>> {
    config.token_profiles().next()?;
    let max_ttl = identity_token::max_ttl(config);
    match KeyRing::new(&config.identity_token, max_ttl, previous, now) {
        Ok(ring) => Some(Arc::new(ring)),
        Err(e) => {
            tracing::error!(error = %e, "identity_token keys could not be loaded");
            None
        }
    }
}
