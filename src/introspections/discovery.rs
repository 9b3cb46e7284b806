//! Introspection endpoints found by OpenID discovery: a provider given by
//! its `issuer` has its metadata read at start and again every
//! `refresh_interval` (`jwks/discovery.rs`: the issuer's path kept, its
//! `issuer` checked exactly, the endpoint TLS or loopback). A failed read
//! keeps the last endpoint found; before the first success the provider
//! has none, its tokens are an outage, and `/readyz` waits.

use super::Introspections;
use crate::jwks::{discovery, fetch_url};
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::sync::watch;

/// Retry delay after a failed read, before the first success.
const RETRY_DELAY: Duration = Duration::from_secs(2);

/// One task per provider given by issuer, on the current runtime (none
/// outside one: `ward check-config` starts nothing).
pub(super) fn spawn(this: &Arc<Introspections>, stopped: watch::Receiver<bool>) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    for (index, provider) in this.providers.iter().enumerate() {
        if provider.config.issuer.is_none() {
            continue;
        }
        let weak = Arc::downgrade(this);
        let mut stopped = stopped.clone();
        runtime.spawn(async move {
            loop {
                let Some(delay) = read_once(&weak, index).await else {
                    return;
                };
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = stopped.changed() => return,
                }
            }
        });
    }
}

/// One read of provider `index`'s metadata; the delay before the next
/// (`None`: the introspections are gone).
async fn read_once(weak: &Weak<Introspections>, index: usize) -> Option<Duration> {
    let this = weak.upgrade()?;
    let provider = this.providers.get(index)?;
    let config = &provider.config;
    let issuer = config.issuer.as_deref()?;
    let found = match &this.client {
        Some(client) => {
            let timeout = config.timeout.max(Duration::from_secs(5));
            match fetch_url(&discovery::url(issuer), timeout, Some(client)).await {
                Ok(document) => {
                    discovery::introspection_endpoint(&document, issuer).map_err(|e| e.to_string())
                }
                Err(e) => Err(e.to_string()),
            }
        }
        None => Err("no HTTP client".to_string()),
    };
    this.metrics.introspection_discovery(found.is_ok());
    let kept = provider.endpoint.load().is_some();
    Some(match found {
        Ok(endpoint) => {
            tracing::info!(%issuer, %endpoint, "introspection endpoint discovered");
            provider.endpoint.store(Some(Arc::new(endpoint)));
            config.refresh_interval
        }
        Err(error) => {
            tracing::warn!(%issuer, %error, keeping_last_good = kept, "introspection discovery failed");
            match kept {
                true => config.refresh_interval.min(Duration::from_secs(30)),
                false => RETRY_DELAY,
            }
        }
    })
}
