//! Opaque tokens, the I/O: calls to the providers' introspection
//! endpoints (RFC 7662), and what keeps them few.
//!
//! Every opaque token not seen before is a call over the network, so:
//! answers are kept (an active one until its `exp`, at most the
//! provider's `max_ttl`; an inactive one for `negative_ttl`); concurrent
//! checks of one new token make one call (`flights.rs`); all providers
//! together are capped in calls in flight and calls started per second,
//! beyond which a check is refused at once (503
//! `introspection_overloaded`) rather than queued; and a provider that
//! keeps failing is not called for a while (the store's circuit breaker,
//! `store/breaker.rs`). A failed call is an outage the policy decides as
//! it decides a store outage (`on_store_error.rs`), `stale` answering
//! with an earlier active answer within `store.stale_if_error`. A token
//! revoked at its provider is forgotten at once when `introspect:{sha256
//! hex}` is published on `ward:invalidate` (`lookup.rs` passes the
//! message on). The token itself is sent to the configured endpoint only,
//! and logged nowhere (its short hash names it).

mod call;
mod discovery;

use crate::config::{Config, EnvSource, IntrospectionProvider};
use crate::credentials::{CredentialHash, short_hash};
use crate::flights::{Flights, Role};
use crate::identity::Identity;
use crate::lookup::Evict;
use crate::metrics::{CacheOutcome, CallOutcome, Metrics};
use crate::ports::{Interpretation, IntrospectionFailure, Stale};
use crate::reason::Reason;
use crate::store::breaker::{Admit, Breaker, Outcome};
use crate::store::keys::KeyNames;
use arc_swap::ArcSwapOption;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{Semaphore, watch};

pub(crate) use call::ClientCredentials;

/// Consecutive failed calls that open a provider's breaker, and how long
/// it then stays open: the store's defaults.
const BREAKER_FAILURES: u32 = 5;
const BREAKER_OPEN_FOR: Duration = Duration::from_secs(1);

/// A kept answer.
#[derive(Clone)]
enum Kept {
    /// The identity, and its token's `exp` (0: none given).
    Active {
        identity: Arc<Identity>,
        exp: u64,
    },
    Refused(Reason),
}

/// A kept answer and how long moka keeps it.
#[derive(Clone)]
struct Entry {
    kept: Kept,
    ttl: Duration,
}

struct PerEntryTtl;

impl moka::Expiry<CredentialHash, Entry> for PerEntryTtl {
    fn expire_after_create(&self, _: &CredentialHash, v: &Entry, _: Instant) -> Option<Duration> {
        Some(v.ttl)
    }
}

type Cache = moka::sync::Cache<CredentialHash, Entry, foldhash::quality::RandomState>;

/// One provider, running.
struct Provider {
    /// Configured, or found by discovery (`None` until then).
    endpoint: ArcSwapOption<String>,
    /// Who a client assertion is for: the issuer, else the endpoint.
    audience: Option<String>,
    /// `None` when the secret or key could not be read (`setup` refuses
    /// such a config; a file changed since): every call then fails.
    auth: Option<ClientCredentials>,
    config: IntrospectionProvider,
    breaker: Mutex<Breaker>,
}

/// The introspection side of a checker's ports.
pub struct Introspections {
    providers: Vec<Provider>,
    /// Fresh answers (active and inactive).
    answers: Cache,
    /// Active answers kept past their freshness for `stale_if_error`.
    stale: Cache,
    flights: Flights<CredentialHash, Result<Arc<Identity>, IntrospectionFailure>>,
    in_flight: Arc<Semaphore>,
    rate: DefaultDirectRateLimiter,
    client: Option<reqwest::Client>,
    metrics: Arc<Metrics>,
    stale_if_error: Duration,
    /// `{prefix}introspect:`, the invalidation key before the hash.
    invalidation_prefix: String,
    /// Stops the discovery tasks when the checker goes.
    _stop: watch::Sender<bool>,
}

impl Introspections {
    /// The providers of `config` (`None`: there are none), their
    /// endpoints discovered in the background on the current runtime.
    pub fn start(config: &Config, metrics: Arc<Metrics>, env: &dyn EnvSource) -> Option<Arc<Self>> {
        let section = &config.introspection;
        if section.providers.is_empty() {
            return None;
        }
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .ok();
        let rate = NonZeroU32::new(section.max_rate).unwrap_or(NonZeroU32::MIN);
        let (stop, stopped) = watch::channel(false);
        let cache = |capacity: u64| {
            moka::sync::Cache::builder()
                .max_capacity(capacity)
                .expire_after(PerEntryTtl)
                .build_with_hasher(foldhash::quality::RandomState::default())
        };
        let this = Arc::new(Self {
            providers: section
                .providers
                .iter()
                .map(|p| Provider::new(p, env))
                .collect(),
            answers: cache(config.cache.max_entries),
            stale: cache(config.cache.max_entries),
            flights: Flights::new(),
            in_flight: Arc::new(Semaphore::new(section.max_concurrency)),
            rate: RateLimiter::direct(Quota::per_second(rate)),
            client,
            metrics,
            stale_if_error: config.store.stale_if_error,
            invalidation_prefix: KeyNames::new(&config.store.key_prefix).introspected(""),
            _stop: stop,
        });
        discovery::spawn(&this, stopped);
        Some(this)
    }

    /// True once every provider's endpoint is known.
    pub fn is_ready(&self) -> bool {
        self.providers.iter().all(|p| p.endpoint.load().is_some())
    }

    /// A token's kept answer at `now`.
    pub(crate) fn kept(
        &self,
        hash: &CredentialHash,
        now: u64,
    ) -> Option<Result<Arc<Identity>, Reason>> {
        let found = match self.answers.get(hash).map(|e| e.kept) {
            Some(Kept::Active { identity, exp }) if exp == 0 || now < exp => {
                self.metrics.introspection_cache(CacheOutcome::Hit);
                Some(Ok(identity))
            }
            Some(Kept::Refused(reason)) => {
                self.metrics.introspection_cache(CacheOutcome::NegativeHit);
                Some(Err(reason))
            }
            Some(Kept::Active { .. }) | None => None,
        };
        if found.is_none() {
            self.metrics.introspection_cache(CacheOutcome::Miss);
        }
        found
    }

    /// See [`crate::ports::Ports::introspect`].
    pub(crate) async fn introspect<F>(
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
        let result = match self.flights.join(hash, None) {
            Role::Leader(lead) => {
                let answered = self.ask(provider, token, hash, interpret).await;
                let result = match &answered {
                    Ok(Kept::Active { identity, .. }) => Ok(identity.clone()),
                    Ok(Kept::Refused(reason)) => Err(IntrospectionFailure::Refused(*reason)),
                    Err(failure) => Err(*failure),
                };
                lead.land(result.clone(), |_| {
                    if let Ok(kept) = &answered {
                        self.keep(provider, hash, kept.clone(), now);
                    }
                });
                result
            }
            // The lead went away (its check was cancelled): no answer.
            Role::Follower(flight) => flight
                .wait()
                .await
                .unwrap_or(Err(IntrospectionFailure::Outage)),
            // Only with an epoch, and none was given.
            Role::Landed => Err(IntrospectionFailure::Outage),
        };
        match result {
            Err(IntrospectionFailure::Outage) if stale == Stale::Allowed => self
                .stale_copy(hash, now)
                .ok_or(IntrospectionFailure::Outage),
            other => other,
        }
    }

    /// An earlier active answer for an outage under `stale` or `open`.
    fn stale_copy(&self, hash: &CredentialHash, now: u64) -> Option<Arc<Identity>> {
        match self.stale.get(hash)?.kept {
            Kept::Active { identity, exp } if exp == 0 || now < exp => {
                self.metrics.introspection_cache(CacheOutcome::Stale);
                Some(identity)
            }
            _ => None,
        }
    }

    /// One call, within the limits and the provider's breaker; the
    /// answer as it is kept, or why there is none.
    async fn ask<F>(
        &self,
        index: usize,
        token: &str,
        hash: &CredentialHash,
        interpret: F,
    ) -> Result<Kept, IntrospectionFailure>
    where
        F: FnOnce(&[u8]) -> Interpretation + Send,
    {
        let provider = self
            .providers
            .get(index)
            .ok_or(IntrospectionFailure::Outage)?;
        let Ok(_permit) = self.in_flight.clone().try_acquire_owned() else {
            return Err(self.overloaded(hash));
        };
        if self.rate.check().is_err() {
            return Err(self.overloaded(hash));
        }
        let admitted = provider.admit();
        if admitted == Admit::Reject {
            self.metrics.introspection_call(CallOutcome::Error);
            return Err(IntrospectionFailure::Outage);
        }
        let started = Instant::now();
        let body = self.post(provider, token).await;
        self.metrics
            .introspection_duration(started.elapsed().as_secs_f64());
        let answer = body.map(|body| interpret(&body));
        let answered = matches!(answer, Ok(Ok(_) | Err(Some(_))));
        provider.record(admitted, answered);
        match answer {
            Ok(Ok((identity, exp))) => {
                self.metrics.introspection_call(CallOutcome::Active);
                Ok(Kept::Active {
                    identity,
                    exp: exp.unwrap_or(0),
                })
            }
            Ok(Err(Some(reason))) => {
                self.metrics.introspection_call(CallOutcome::Inactive);
                Ok(Kept::Refused(reason))
            }
            Ok(Err(None)) => {
                self.metrics.introspection_call(CallOutcome::Error);
                tracing::warn!(token = %short_hash(hash), "introspection answer is not RFC 7662 JSON");
                Err(IntrospectionFailure::Outage)
            }
            Err(()) => {
                self.metrics.introspection_call(CallOutcome::Error);
                Err(IntrospectionFailure::Outage)
            }
        }
    }

    /// The POST, its failure logged (by the token's short hash only).
    async fn post(&self, provider: &Provider, token: &str) -> Result<Vec<u8>, ()> {
        let endpoint = provider.endpoint.load_full();
        let result = match (&self.client, endpoint.as_deref(), &provider.auth) {
            (Some(client), Some(endpoint), Some(auth)) => {
                let audience = provider.audience.as_deref().unwrap_or(endpoint);
                call::post(
                    client,
                    endpoint,
                    auth,
                    audience,
                    token,
                    provider.config.timeout,
                )
                .await
            }
            (_, None, _) => Err(call::CallError::NoEndpoint),
            _ => Err(call::CallError::Http(
                "no HTTP client or client credentials".into(),
            )),
        };
        result.map_err(|e| {
            let hash = crate::credentials::hash_credential(token);
            tracing::warn!(token = %short_hash(&hash), error = %e, "introspection call failed");
        })
    }

    fn overloaded(&self, hash: &CredentialHash) -> IntrospectionFailure {
        self.metrics.introspection_call(CallOutcome::Overloaded);
        tracing::debug!(token = %short_hash(hash), "introspection limits reached");
        IntrospectionFailure::Overloaded
    }

    /// Keeps an answer: an active one until its `exp`, at most `max_ttl`
    /// (and its stale copy `stale_if_error` longer); an inactive one for
    /// `negative_ttl`.
    fn keep(&self, index: usize, hash: &CredentialHash, kept: Kept, now: u64) {
        let Some(provider) = self.providers.get(index) else {
            return;
        };
        let config = &provider.config;
        match &kept {
            Kept::Active { exp, .. } => {
                let left = match *exp {
                    0 => config.max_ttl,
                    exp => Duration::from_secs(exp.saturating_sub(now)),
                };
                let ttl = left.min(config.max_ttl);
                if ttl.is_zero() {
                    return;
                }
                let stale_ttl = left.min(config.max_ttl + self.stale_if_error);
                if !self.stale_if_error.is_zero() {
                    let entry = Entry {
                        kept: kept.clone(),
                        ttl: stale_ttl,
                    };
                    self.stale.insert(*hash, entry);
                }
                self.answers.insert(*hash, Entry { kept, ttl });
            }
            Kept::Refused(_) if !config.negative_ttl.is_zero() => {
                let ttl = config.negative_ttl;
                self.answers.insert(*hash, Entry { kept, ttl });
            }
            Kept::Refused(_) => {}
        }
    }

    /// Forgets one token's answers (an invalidation named it).
    fn forget(&self, hash: &CredentialHash) {
        self.flights.invalidate(hash);
        self.answers.invalidate(hash);
        self.stale.invalidate(hash);
    }
}

impl Evict for Introspections {
    fn evict(&self, key: &str) {
        let Some(digits) = key.strip_prefix(&self.invalidation_prefix) else {
            return;
        };
        let mut hash = [0u8; 32];
        if hex::decode_to_slice(digits, &mut hash).is_ok() {
            self.forget(&hash);
        }
    }

    fn evict_all(&self) {
        self.flights.invalidate_all();
        self.answers.invalidate_all();
        self.stale.invalidate_all();
    }
}

impl Provider {
    fn new(config: &IntrospectionProvider, env: &dyn EnvSource) -> Self {
        let auth = ClientCredentials::load(config, env)
            .map_err(
                |(field, e)| tracing::error!(field, error = %e, "introspection client credentials"),
            )
            .ok();
        Self {
            endpoint: ArcSwapOption::from_pointee(config.endpoint.clone()),
            audience: config.issuer.clone(),
            auth,
            config: config.clone(),
            breaker: Mutex::new(Breaker::new(BREAKER_FAILURES, BREAKER_OPEN_FOR)),
        }
    }

    fn admit(&self) -> Admit {
        match self.breaker.lock() {
            Ok(mut b) => b.admit(Instant::now()),
            Err(_) => Admit::Call,
        }
    }

    fn record(&self, admitted: Admit, answered: bool) {
        let outcome = if answered {
            Outcome::Answered
        } else {
            Outcome::Failed
        };
        if let Ok(mut b) = self.breaker.lock()
            && let Some(t) = b.record(admitted, outcome, Instant::now())
        {
            tracing::warn!(transition = ?t, "introspection endpoint circuit breaker");
        }
    }
}
