//! `config`: what `ward check-config` does with arbitrary YAML: parse
//! ([`Config::from_yaml`]), validate, and, for a valid config, build the
//! pure parts `ward serve` builds from it. Never panics; every problem
//! names its field.
//!
//! Validation reads files a config names (PEM keys, secrets, JWKS and
//! seed files). A fuzzed path could name a device (`/dev/zero` never
//! ends), so a config naming anything but a small regular file or a
//! missing path is parsed but not validated.

use crate::config::{Config, ConfigError, EnvSource};
use crate::credentials::Extractor;
use crate::headers::ManagedHeaders;
use crate::identity::{ClaimRenderer, HeaderRules};
use crate::policy::Policies;
use crate::response::Responder;
use std::path::Path;

/// No environment variable is set.
struct NoEnv;

impl EnvSource for NoEnv {
    fn var(&self, _: &str) -> Option<String> {
        None
    }
}

pub fn config(data: &[u8]) {
    let text = super::text(data);
    let config = match Config::from_yaml(&text) {
        Ok(config) => config,
        Err(e) => {
            if let ConfigError::Parse(p) = &e {
                assert!(!p.path.is_empty(), "a parse error names no field: {e}");
            }
            let _ = e.to_string();
            return;
        }
    };
    if !files_are_safe(&config) {
        return;
    }
    let problems = crate::setup::problems(&config, &NoEnv);
    for p in &problems {
        assert!(!p.path.is_empty(), "a problem names no field: {p}");
    }
    if !problems.is_empty() {
        let _ = ConfigError::Invalid(problems).to_string();
        return;
    }
    if let Err(problems) = Policies::from_config(&config) {
        panic!("a valid config's policies do not compile: {problems:?}");
    }
    let _ = Extractor::from_config(&config);
    let _ = ManagedHeaders::from_config(&config);
    let _ = Responder::from_config(&config);
    let _ = ClaimRenderer::new(&config.jwt.claims, HeaderRules::new(&config.headers));
}

/// Whether every file the config names is missing or a small regular
/// file outside `/dev`, `/proc` and `/sys`.
fn files_are_safe(config: &Config) -> bool {
    let mut paths: Vec<&Path> = Vec::new();
    for key in &config.jwt.keys {
        paths.extend(key.pem_file.as_deref());
        paths.extend(key.secret.as_ref().and_then(|s| s.file.as_deref()));
    }
    paths.extend(config.jwt.jwks.iter().filter_map(|j| j.file.as_deref()));
    paths.extend(config.store.seed_file.as_deref());
    if let Some(redis) = &config.store.redis {
        paths.extend(redis.password.as_ref().and_then(|s| s.file.as_deref()));
    }
    paths.iter().all(|p| match std::fs::canonicalize(p) {
        Ok(real) => {
            let special = ["/dev", "/proc", "/sys"]
                .iter()
                .any(|d| real.starts_with(d));
            let small = std::fs::metadata(&real).is_ok_and(|m| m.is_file() && m.len() <= 1 << 20);
            !special && small
        }
        Err(_) => true,
    })
}
