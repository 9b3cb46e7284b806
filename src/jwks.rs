//! The key store and the JWKS fetcher: the I/O edge of JWT verification.
//!
//! Verification reads one immutable [`KeySet`] snapshot (an `ArcSwap`
//! load, no lock). Each JWKS source has a background task that refetches
//! on its interval and, at a bounded rate, when a token names a `kid`
//! nobody knows (a key rotation). A failed fetch keeps the last good keys:
//! an identity provider's outage must not log everyone out. `/readyz`
//! stays false until every source has loaded once. A key ward will not use
//! (an RSA key under 2048 bits, a key not meant for signatures) is
//! skipped and counted in `ward_jwks_keys_skipped_total{reason}`; a weak
//! one is also logged as a warning, by `kid`, never with key material.

pub(crate) mod discovery;

use crate::config::{JwksSource, JwtConfig, ProcessEnv};
use crate::jwt::keys::{self, Key, KeyError, SkipReason, Skipped};
use crate::jwt::{AllowedTypes, KeySet};
use crate::metrics::Metrics;
use arc_swap::{ArcSwap, ArcSwapOption};
use std::sync::Arc;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio::sync::{Notify, watch};
use tracing::Instrument;

/// A JWKS document larger than this is refused.
const MAX_JWKS_BYTES: usize = 1024 * 1024;
/// Retry delay after a failed fetch, before the first success.
const RETRY_DELAY: Duration = Duration::from_secs(2);

/// Why one JWKS fetch failed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("read {0}: {1}")]
    File(String, std::io::Error),
    #[error("GET {0}: {1}")]
    Http(String, String),
    #[error("GET {0}: status {1}")]
    Status(String, u16),
    #[error("document larger than {MAX_JWKS_BYTES} bytes")]
    TooLarge,
    #[error("not a JWKS document: {0}")]
    Parse(#[from] serde_json::Error),
    #[error("no usable signing key in the document ({0} skipped)")]
    NoKeys(usize),
    #[error("OpenID discovery: {0}")]
    Discovery(#[from] discovery::DiscoveryError),
}

struct Source {
    config: JwksSource,
    /// The `typ` values this source's keys accept.
    types: AllowedTypes,
    keys: ArcSwapOption<Vec<Arc<Key>>>,
    wake: Notify,
    last_fetch: Mutex<Option<Instant>>,
}

/// All verification keys: static ones from config, plus each JWKS
/// source's last good set, merged into one snapshot.
pub struct KeyStore {
    static_keys: Vec<Arc<Key>>,
    sources: Vec<Source>,
    current: ArcSwap<KeySet>,
    generation: watch::Sender<u64>,
}

impl KeyStore {
    /// Loads the static keys; JWKS sources start empty until [`Self::spawn`]ed
    /// fetchers fill them.
    pub fn new(config: &JwtConfig) -> Result<Arc<Self>, KeyError> {
        let types = AllowedTypes::new(&config.allowed_types);
        let static_keys = config
            .keys
            .iter()
            .map(|k| keys::load_static(k, &types, &ProcessEnv).map(Arc::new))
            .collect::<Result<Vec<_>, _>>()?;
        let sources = config
            .jwks
            .iter()
            .map(|c| Source {
                config: c.clone(),
                types: c
                    .allowed_types
                    .as_ref()
                    .map_or_else(|| types.clone(), |own| AllowedTypes::new(own)),
                keys: ArcSwapOption::empty(),
                wake: Notify::new(),
                last_fetch: Mutex::new(None),
            })
            .collect();
        let store = Self {
            current: ArcSwap::from_pointee(KeySet::new(static_keys.iter().cloned())),
            static_keys,
            sources,
            generation: watch::channel(0).0,
        };
        Ok(Arc::new(store))
    }

    /// The current keys.
    pub fn snapshot(&self) -> Arc<KeySet> {
        self.current.load_full()
    }

    /// The last good keys of the discovery source for `issuer`
    /// (`jwt.jwks[].issuer`), and of no other source: a back-channel
    /// logout token is verified with its own provider's keys only
    /// (`server/backchannel.rs`). Empty until the source has loaded;
    /// `None` when no source has this issuer.
    pub fn issuer_keys(&self, issuer: &str) -> Option<Arc<KeySet>> {
        let source = self
            .sources
            .iter()
            .find(|s| s.config.issuer.as_deref() == Some(issuer))?;
        let keys = source.keys.load_full();
        let keys = keys.iter().flat_map(|k| k.iter().cloned());
        Some(Arc::new(KeySet::new(keys)))
    }

    /// True once every JWKS source has loaded at least once.
    pub fn is_ready(&self) -> bool {
        self.sources.iter().all(|s| s.keys.load().is_some())
    }

    /// Asks the sources to refetch because a token named an unknown `kid`.
    /// Returns a receiver that changes when new keys land, or `None` if
    /// every source fetched too recently (the refetch rate is bounded so a
    /// flood of random `kid`s cannot hammer the identity provider).
    pub fn request_refetch(&self) -> Option<watch::Receiver<u64>> {
        let mut woke = false;
        for source in &self.sources {
            let Ok(last) = source.last_fetch.lock() else {
                continue;
            };
            let due = last.is_none_or(|t| t.elapsed() >= source.config.min_refetch_interval);
            if due {
                source.wake.notify_one();
                woke = true;
            }
        }
        woke.then(|| self.generation.subscribe())
    }

    fn publish(&self) {
        let jwks: Vec<Arc<Key>> = self
            .sources
            .iter()
            .filter_map(|s| s.keys.load_full())
            .flat_map(|keys| keys.iter().cloned().collect::<Vec<_>>())
            .collect();
        let set = KeySet::new(self.static_keys.iter().cloned().chain(jwks));
        self.current.store(Arc::new(set));
        self.generation.send_modify(|g| *g += 1);
    }

    /// Starts one background fetcher per JWKS source. They stop when
    /// `shutdown` fires.
    pub fn spawn(self: &Arc<Self>, metrics: Arc<Metrics>, shutdown: watch::Receiver<bool>) {
        let client = reqwest::Client::builder().build().ok();
        for index in 0..self.sources.len() {
            let store = self.clone();
            let metrics = metrics.clone();
            let client = client.clone();
            let mut shutdown = shutdown.clone();
            tokio::spawn(async move {
                loop {
                    let delay = store.fetch_once(index, client.as_ref(), &metrics).await;
                    let source = &store.sources[index];
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = source.wake.notified() => {}
                        _ = shutdown.changed() => return,
                    }
                }
            });
        }
    }

    /// Fetches one source, publishes on success, and says how long to wait
    /// before the next scheduled fetch.
    async fn fetch_once(
        &self,
        index: usize,
        client: Option<&reqwest::Client>,
        metrics: &Metrics,
    ) -> Duration {
        let source = &self.sources[index];
        if let Ok(mut last) = source.last_fetch.lock() {
            *last = Some(Instant::now());
        }
        let name = source_name(&source.config);
        let span = tracing::info_span!(target: crate::TRACE_TARGET, "ward.jwks.fetch", ward.source = %name);
        match fetch(source, &name, client, metrics).instrument(span).await {
            Ok(keys) => {
                metrics.jwks_refresh_ok.inc();
                metrics.jwks_last_success.set(crate::unix_now() as i64);
                tracing::info!(source = %name, keys = keys.len(), "jwks loaded");
                source.keys.store(Some(Arc::new(keys)));
                self.publish();
                let total: usize = self
                    .sources
                    .iter()
                    .filter_map(|s| s.keys.load_full())
                    .map(|k| k.len())
                    .sum();
                metrics.jwks_keys.set(total as i64);
                source.config.refresh_interval
            }
            Err(e) => {
                metrics.jwks_refresh_error.inc();
                let kept = source.keys.load().is_some();
                tracing::warn!(source = %name, error = %e, keeping_last_good = kept, "jwks fetch failed");
                if kept {
                    source.config.refresh_interval.min(Duration::from_secs(30))
                } else {
                    RETRY_DELAY
                }
            }
        }
    }
}

fn source_name(config: &JwksSource) -> String {
    match (&config.url, &config.file, &config.issuer) {
        (Some(url), _, _) => url.clone(),
        (_, Some(file), _) => file.display().to_string(),
        (_, _, Some(issuer)) => format!("issuer {issuer}"),
        _ => "?".into(),
    }
}

/// Logs and counts the entries a fetch left out: a weak key is a warning
/// (the identity provider publishes a key ward will never trust), the rest
/// (`use: enc` and the like are normal in a JWKS) a debug note.
fn report_skipped(source: &str, skipped: &[Skipped], metrics: &Metrics) {
    for skip in skipped {
        metrics.jwks_key_skipped(skip.reason);
        match skip.reason {
            SkipReason::WeakRsa => tracing::warn!(
                %source, kid = ?skip.kid, index = skip.index, why = %skip.detail,
                "jwks key skipped: too weak to trust"
            ),
            SkipReason::Unusable => tracing::debug!(%source, note = %skip, "jwks key skipped"),
        }
    }
}

/// One fetch of a source: its usable keys; skipped entries are reported.
async fn fetch(
    source: &Source,
    name: &str,
    client: Option<&reqwest::Client>,
    metrics: &Metrics,
) -> Result<Vec<Arc<Key>>, FetchError> {
    let config = &source.config;
    let body = match (&config.url, &config.file, &config.issuer) {
        (Some(url), _, _) => fetch_url(url, config.timeout, client).await?,
        (_, Some(path), _) => tokio::fs::read(path)
            .await
            .map_err(|e| FetchError::File(path.display().to_string(), e))?,
        (_, _, Some(issuer)) => {
            // The provider's metadata names its JWKS: read it at each
            // refresh, so a moved `jwks_uri` is followed.
            let document = fetch_url(&discovery::url(issuer), config.timeout, client).await?;
            if document.len() > MAX_JWKS_BYTES {
                return Err(FetchError::TooLarge);
            }
            let jwks_uri = discovery::jwks_uri(&document, issuer)?;
            fetch_url(&jwks_uri, config.timeout, client).await?
        }
        _ => return Err(FetchError::NoKeys(0)),
    };
    if body.len() > MAX_JWKS_BYTES {
        return Err(FetchError::TooLarge);
    }
    let (keys, skipped) = keys::from_jwks(&body, &source.types)?;
    report_skipped(name, &skipped, metrics);
    if keys.is_empty() {
        return Err(FetchError::NoKeys(skipped.len()));
    }
    Ok(keys.into_iter().map(Arc::new).collect())
}

/// A GET of `url` within `timeout`: the body, at most [`MAX_JWKS_BYTES`]
/// (also the discovery document's reader for `introspections.rs`).
pub(crate) async fn fetch_url(
    url: &str,
    timeout: Duration,
    client: Option<&reqwest::Client>,
) -> Result<Vec<u8>, FetchError> {
    let http = |e: reqwest::Error| FetchError::Http(url.to_string(), e.to_string());
    let client = client.ok_or_else(|| FetchError::Http(url.into(), "no HTTP client".into()))?;
    let response = client
        .get(url)
        .timeout(timeout)
        .send()
        .await
        .map_err(http)?;
    if !response.status().is_success() {
        return Err(FetchError::Status(url.into(), response.status().as_u16()));
    }
    if response
        .content_length()
        .is_some_and(|n| n as usize > MAX_JWKS_BYTES)
    {
        return Err(FetchError::TooLarge);
    }
    Ok(response.bytes().await.map_err(http)?.to_vec())
}
