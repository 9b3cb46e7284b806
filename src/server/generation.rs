//! One config's running parts: the checker and what renders its answers,
//! for both front ends, plus the stateful parts behind it (keys, store,
//! caches, limiter) and the background tasks those run. A reload builds a
//! new generation, reusing each stateful part whose digest
//! (`reload/digest.rs`) did not change, and swaps it in whole ([`Live`]):
//! a check loads the generation once and finishes on it, so checks in
//! flight during a swap end on the old config, and a check never sees half
//! of each.

use super::ServerError;
use super::backchannel::Backchannel;
use super::grpc::CheckService;
use super::http::HttpService;
use super::reload::digest::Digests;
use crate::clock::Clock;
use crate::config::{Config, Listen};
use crate::headers::ManagedHeaders;
use crate::jwks::KeyStore;
use crate::lookup::Lookups;
use crate::metrics::Metrics;
use crate::response::Responder;
use crate::store::Store;
use crate::wiring::{self, Parts};
use arc_swap::ArcSwap;
use std::sync::Arc;
use tokio::sync::watch;

/// What every generation shares: settings only a restart changes, and
/// the process's metrics and clock.
#[derive(Clone)]
pub(super) struct Shared {
    pub metrics: Arc<Metrics>,
    pub clock: Clock,
    /// The listeners' settings as started (`listen` is restart-only).
    pub listen: Listen,
}

/// Stops a part's background tasks (JWKS fetchers, the invalidation
/// subscriber) when the last generation using the part is dropped.
struct Stop(watch::Sender<bool>);

impl Stop {
    fn new() -> (Arc<Stop>, watch::Receiver<bool>) {
        let (tx, rx) = watch::channel(false);
        (Arc::new(Stop(tx)), rx)
    }
}

impl Drop for Stop {
    fn drop(&mut self) {
        let _ = self.0.send(true);
    }
}

/// A config, running.
pub(super) struct Generation {
    pub grpc: Arc<CheckService>,
    pub http: Arc<HttpService>,
    pub keys: Arc<KeyStore>,
    pub config: Config,
    pub digests: Digests,
    /// The back-channel logout endpoint's state over this generation's
    /// keys and store (`management.backchannel_logout`; `None`: off).
    pub backchannel: Option<Arc<Backchannel>>,
    store: Store,
    parts: Parts,
    /// Held for their `Drop`: the keys' fetchers, the lookups' subscriber.
    stops: [Arc<Stop>; 2],
}

/// What a new generation kept from the one before.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Kept {
    pub keys: bool,
    pub store: bool,
    pub records: bool,
    pub tokens: bool,
    pub limiter: bool,
}

impl Generation {
    /// Builds `config`'s generation, keeping what `old` has whose digest
    /// is unchanged. New JWKS sources start fetching here; a reload waits
    /// for them, a start does not (`/readyz` says when).
    pub(super) async fn build(
        config: Config,
        digests: Digests,
        old: Option<&Generation>,
        shared: &Shared,
    ) -> Result<(Generation, Kept), ServerError> {
        let kept = Kept::between(old.map(|o| &o.digests), &digests);
        let (keys, keys_stop) = match old.filter(|_| kept.keys) {
            Some(o) => (o.keys.clone(), o.stops[0].clone()),
            None => new_keys(&config, shared)?,
        };
        let store = match old.filter(|_| kept.store) {
            Some(o) => o.store.clone(),
            None => Store::open(&config).await?,
        };
        let (lookups, lookups_stop) = match old.filter(|_| kept.records) {
            Some(o) => (o.parts.lookups.clone(), o.stops[1].clone()),
            None => new_lookups(&config, &store, shared),
        };
        let previous = old.and_then(|o| o.parts.signing.as_deref());
        let mut parts = Parts::after(&config, keys.clone(), lookups, previous);
        if let Some(o) = old {
            if kept.tokens {
                parts.tokens = o.parts.tokens.clone();
            }
            if kept.limiter {
                parts.limiter = o.parts.limiter.clone();
            }
        }
        let (grpc, http) = front_ends(&config, parts.clone(), shared)?;
        let backchannel =
            Backchannel::new(&config, keys.clone(), store.clone(), shared.metrics.clone())
                .map(Arc::new);
        let generation = Generation {
            grpc,
            http,
            keys,
            config,
            digests,
            backchannel,
            store,
            parts,
            stops: [keys_stop, lookups_stop],
        };
        Ok((generation, kept))
    }
}

impl Generation {
    /// The identity-token keys, when a policy sends tokens.
    pub(super) fn signing(&self) -> Option<&crate::identity_token::keys::KeyRing> {
        self.parts.signing.as_deref()
    }

    /// The management operations over this generation's store (the
    /// management API's writes go where its checks read).
    pub(super) fn manager(&self) -> crate::manage::Manager {
        crate::manage::Manager::over(self.store.clone(), &self.config)
    }
}

impl Kept {
    /// What a generation built from `new` may keep of one built from
    /// `old` (nothing at start).
    fn between(old: Option<&Digests>, new: &Digests) -> Kept {
        let same = |f: fn(&Digests) -> &[u8; 32]| old.is_some_and(|o| f(o) == f(new));
        let (keys, store, records) = (same(|d| &d.keys), same(|d| &d.store), same(|d| &d.records));
        Kept {
            keys,
            store,
            records: store && records,
            tokens: keys && records,
            limiter: same(|d| &d.limits),
        }
    }
}

/// A key store for `config`, its fetchers started.
fn new_keys(config: &Config, shared: &Shared) -> Result<(Arc<KeyStore>, Arc<Stop>), ServerError> {
    let keys = KeyStore::new(&config.jwt)?;
    let (stop, rx) = Stop::new();
    keys.spawn(shared.metrics.clone(), rx);
    Ok((keys, stop))
}

/// Empty store-read caches over `store`, their invalidations subscribed.
fn new_lookups(config: &Config, store: &Store, shared: &Shared) -> (Arc<Lookups>, Arc<Stop>) {
    let lookups = Arc::new(Lookups::with_clock(
        config,
        store.clone(),
        shared.metrics.clone(),
        shared.clock.clone(),
    ));
    let (stop, rx) = Stop::new();
    lookups.spawn_invalidations(store, rx);
    (lookups, stop)
}

/// The checker and its renderers, for gRPC and HTTP.
fn front_ends(
    config: &Config,
    parts: Parts,
    shared: &Shared,
) -> Result<(Arc<CheckService>, Arc<HttpService>), ServerError> {
    let checker = Arc::new(wiring::checker_with(config, parts, shared.metrics.clone())?);
    let managed = ManagedHeaders::from_config(config);
    let responder = Responder::from_config(config);
    let http = HttpService {
        checker: checker.clone(),
        managed: Arc::new(managed.clone()),
        metrics: shared.metrics.clone(),
        responder: Arc::new(responder.clone()),
        max_body_bytes: shared.listen.max_request_bytes,
        body_timeout: shared.listen.handshake_timeout,
    };
    let grpc = CheckService {
        checker,
        managed,
        metrics: shared.metrics.clone(),
        responder,
        max_request_bytes: shared.listen.max_request_bytes,
    };
    Ok((Arc::new(grpc), Arc::new(http)))
}

/// The running generation, swapped whole by a reload.
pub(super) struct Live(ArcSwap<Generation>);

impl Live {
    pub(super) fn new(generation: Generation) -> Arc<Live> {
        Arc::new(Live(ArcSwap::from_pointee(generation)))
    }

    /// The generation a new check runs on.
    pub(super) fn current(&self) -> Arc<Generation> {
        self.0.load_full()
    }

    pub(super) fn swap(&self, generation: Generation) {
        self.0.store(Arc::new(generation));
    }
}

/// The gRPC service of the current generation: one reference count, no
/// lock (the hot path's only cost of reloading).
impl super::grpc::CurrentService for Live {
    fn grpc(&self) -> Arc<CheckService> {
        self.0.load().grpc.clone()
    }
}

impl super::http::CurrentService for Live {
    fn http(&self) -> Arc<HttpService> {
        self.0.load().http.clone()
    }
}
