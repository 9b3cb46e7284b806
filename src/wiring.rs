//! The server's side of the checker's ports (`ports.rs`): store reads
//! through the moka-cached lookups (Redis or the embedded store), verified
//! tokens in the moka token cache, new tokens verified on the verification
//! threads (`verifications.rs`), the JWKS key store with its tokio
//! fetchers, the governor limiter, and Prometheus counters. `ward serve`
//! and `ward explain` build their checker here, so they run the same one.

use crate::cache::TokenCache;
use crate::check::Checker;
use crate::config::Config;
use crate::credentials::CredentialHash;
use crate::identity::Identity;
use crate::jwks::KeyStore;
use crate::jwt::KeySet;
use crate::limiter::Limiter;
use crate::lookup::Lookups;
use crate::metrics::Metrics;
use crate::policy::{Policies, PolicyErrors};
use crate::ports::{Event, Ports, Stale, Verification};
use crate::reason::Reason;
use crate::record::{ApiKeyRecord, SessionRecord};
use crate::store::StoreError;
use crate::verifications::{Hold, Verifications};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

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
    let policies = Policies::from_config(config).map_err(PolicyErrors)?;
    let ports = ServerPorts::new(config, keys, lookups, metrics);
    Ok(Checker::new(config, policies, ports))
}

/// The ports of a checker in the server process.
pub struct ServerPorts {
    lookups: Arc<Lookups>,
    tokens: TokenCache,
    verifications: Verifications,
    keys: Arc<KeyStore>,
    limiter: Limiter,
    metrics: Arc<Metrics>,
}

impl ServerPorts {
    /// `lookups` serves this checker only: the views its records keep
    /// follow this config's header rules, and the limiter reads its clock.
    pub fn new(
        config: &Config,
        keys: Arc<KeyStore>,
        lookups: Arc<Lookups>,
        metrics: Arc<Metrics>,
    ) -> Self {
        let limiter = Limiter::with_clock(&config.limits, lookups.clock().clone());
        let tokens = TokenCache::new(&config.cache);
        let jwt_on = !(config.jwt.keys.is_empty() && config.jwt.jwks.is_empty());
        let verifications =
            Verifications::new(&config.jwt.verify, jwt_on, tokens.clone(), metrics.clone());
        Self {
            lookups,
            tokens,
            verifications,
            keys,
            limiter,
            metrics,
        }
    }

    /// The cached store reads, for invalidation.
    pub fn lookups(&self) -> &Arc<Lookups> {
        &self.lookups
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
        self.lookups.session(sid, stale).await
    }

    async fn api_key(
        &self,
        key_hash: &str,
        stale: Stale,
    ) -> Result<Option<Arc<ApiKeyRecord>>, StoreError> {
        self.lookups.api_key(key_hash, stale).await
    }

    async fn jti_revoked(&self, jti: &str, stale: Stale) -> Result<bool, StoreError> {
        self.lookups.jti_revoked(jti, stale).await
    }

    fn token(&self, hash: &CredentialHash, now: u64) -> Option<Arc<Identity>> {
        self.tokens.get(hash, now)
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
        self.verifications.verify(hash, now, verify).await
    }

    fn keeps_tokens(&self) -> bool {
        self.tokens.is_enabled()
    }

    fn keys(&self) -> Arc<KeySet> {
        self.keys.snapshot()
    }

    async fn await_new_keys(&self, wait: Duration) -> bool {
        let Some(mut changed) = self.keys.request_refetch() else {
            return false;
        };
        let _ = tokio::time::timeout(wait, changed.changed()).await;
        true
    }

    fn any_blocked(&self) -> bool {
        self.limiter.any_blocked()
    }

    fn blocked(&self, ip: Option<IpAddr>, credential: &[u8]) -> Option<Duration> {
        self.limiter.blocked(ip, Some(credential))
    }

    fn record_failure(&self, ip: Option<IpAddr>, credential: &[u8]) {
        self.limiter.record_failure(ip, Some(credential));
    }

    fn count(&self, event: Event) {
        match event {
            Event::TokenCacheHit => self.metrics.token_cache_hits.inc(),
            Event::TokenCacheMiss => self.metrics.token_cache_misses.inc(),
        }
    }
}
