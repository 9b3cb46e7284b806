//! Reload without restart: on SIGHUP, or when the config file or a file it
//! references changes (read and compared every `reload.watch_interval`;
//! see `config/reload.rs` for why polling), the config is read and
//! validated as `ward check-config` validates it, a new generation is
//! built (`generation.rs`: parts whose config and files did not change are
//! kept, with their caches), and swapped in. A config that fails is
//! refused whole: the running one keeps serving, the problems are logged
//! with their field paths, and `ward_config_reload_total{result="failure"}`
//! counts it. A new config whose JWKS sources do not all load within
//! `reload.keys_timeout` is refused too, so a reload never causes
//! `keys_unavailable` denies.

pub(super) mod digest;

use super::ServerError;
use super::generation::{Generation, Kept, Live, Shared};
use crate::config::{Config, ConfigError, ProcessEnv};
use digest::Digests;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Why a reload was refused.
#[derive(Debug, thiserror::Error)]
pub(super) enum ReloadError {
    #[error("{0}")]
    Config(#[from] ConfigError),
    #[error("{0}")]
    Build(#[from] ServerError),
    #[error("JWKS sources not loaded within reload.keys_timeout ({0:?})")]
    KeysTimeout(Duration),
}

/// Reloads the config at `path` into `live`.
pub(super) struct Reloader {
    pub path: PathBuf,
    pub live: Arc<Live>,
    pub shared: Shared,
}

/// Why a reload was attempted (for the log).
#[derive(Debug, Clone, Copy)]
enum Trigger {
    Signal,
    Changed,
}

impl Reloader {
    /// Waits for SIGHUP or a changed file, and reloads, until `stop`.
    pub(super) async fn run(self, mut stop: watch::Receiver<bool>) {
        let mut hangup =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
        if hangup.is_none() {
            tracing::warn!("cannot listen for SIGHUP; reload only when files change");
        }
        // The config whose named files are watched: the running one, or
        // the last one a reload read (so fixing a key file a refused
        // config could not read is noticed).
        let mut named = self.live.current().config.clone();
        let mut seen = digest::watched(&self.path, &named);
        loop {
            let interval = self.live.current().config.reload.watch_interval;
            let poll = async {
                if interval.is_zero() {
                    std::future::pending::<()>().await;
                }
                tokio::time::sleep(interval).await;
            };
            let trigger = tokio::select! {
                Some(()) = async { hangup.as_mut()?.recv().await } => Trigger::Signal,
                () = poll => Trigger::Changed,
                _ = stop.changed() => return,
            };
            let now = digest::watched(&self.path, &named);
            if matches!(trigger, Trigger::Changed) && now == seen {
                continue;
            }
            // `seen` is what was read before this reload: a file changed
            // while it runs differs from it, so the next poll reloads again.
            seen = now;
            if let Some(config) = self.reload(trigger).await {
                named = config;
                let fresh = digest::watched(&self.path, &named);
                seen.retain(|path, _| fresh.contains_key(path));
                for (path, digest) in fresh {
                    seen.entry(path).or_insert(digest);
                }
            }
        }
    }

    /// One reload; returns the config it read, if it parsed.
    async fn reload(&self, trigger: Trigger) -> Option<Config> {
        let metrics = &self.shared.metrics;
        let text = match std::fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(source) => {
                let path = self.path.display().to_string();
                self.refused(
                    ReloadError::Config(ConfigError::Read { path, source }),
                    trigger,
                );
                return None;
            }
        };
        let config = match crate::setup::parse(&text, &ProcessEnv) {
            Ok(config) => config,
            Err(e) => {
                self.refused(e.into(), trigger);
                return None;
            }
        };
        let old = self.live.current();
        let digests = Digests::of(&text, &config);
        if digests == old.digests {
            tracing::info!(?trigger, "config unchanged; nothing to reload");
            return Some(config);
        }
        let restart = old.digests.restart_changes(&digests);
        match self.build(config.clone(), digests, &old).await {
            Ok((generation, kept)) => {
                self.live.swap(generation);
                metrics.config_reloaded(true);
                log_success(trigger, kept, &restart);
            }
            Err(e) => self.refused(e, trigger),
        }
        Some(config)
    }

    /// The new generation, once its JWKS sources have loaded and its
    /// introspection endpoints are known (discovery), so a reload never
    /// answers opaque tokens with 503 while they load.
    async fn build(
        &self,
        config: Config,
        digests: Digests,
        old: &Generation,
    ) -> Result<(Generation, Kept), ReloadError> {
        let timeout = config.reload.keys_timeout;
        let (generation, kept) =
            Generation::build(config, digests, Some(old), &self.shared).await?;
        let keys = generation.keys.clone();
        let checker = generation.grpc.checker.clone();
        let loaded = async {
            while !keys.is_ready() || !checker.ports().introspection_ready() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        tokio::time::timeout(timeout, loaded)
            .await
            .map_err(|_| ReloadError::KeysTimeout(timeout))?;
        Ok((generation, kept))
    }

    fn refused(&self, error: ReloadError, trigger: Trigger) {
        self.shared.metrics.config_reloaded(false);
        tracing::error!(
            ?trigger,
            path = %self.path.display(),
            error = %error,
            "config reload refused; the running config keeps serving"
        );
    }
}

fn log_success(trigger: Trigger, kept: Kept, restart: &[&str]) {
    tracing::info!(
        ?trigger,
        keys = kept_or(kept.keys),
        store = kept_or(kept.store),
        store_cache = kept_or(kept.records),
        token_cache = kept_or(kept.tokens),
        limiter = kept_or(kept.limiter),
        "config reloaded"
    );
    if !restart.is_empty() {
        tracing::warn!(
            sections = ?restart,
            "changed sections take effect at restart; the running values are kept"
        );
    }
}

fn kept_or(kept: bool) -> &'static str {
    if kept { "kept" } else { "new" }
}
