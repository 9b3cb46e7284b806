//! Seeding the embedded store from a YAML file, so a demo or a test has
//! sessions and API keys with nothing else installed. Raw API keys in the
//! file are hashed on load, as the contract requires; the file itself is
//! a secret.

use super::keys::KeyNames;
use super::memory::MemoryStore;
use super::records::Records;
use crate::apikey::{self, NewApiKey};
use crate::config::ApiKeysConfig;
use crate::session::{self, NewSession};
use serde::Deserialize;
use std::path::Path;
use std::time::Duration;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct SeedFile {
    sessions: Vec<SeedSession>,
    api_keys: Vec<SeedApiKey>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SeedSession {
    id: String,
    user_id: String,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    roles: Vec<String>,
    #[serde(default)]
    scopes: Vec<String>,
    #[serde(default)]
    fingerprint: Option<String>,
    #[serde(default = "one_day", with = "humantime_serde")]
    ttl: Duration,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SeedApiKey {
    key: String,
    key_id: String,
    user_id: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    scopes: Vec<String>,
    #[serde(default)]
    expires_at: Option<u64>,
}

fn one_day() -> Duration {
    Duration::from_secs(86_400)
}

/// Why a seed file could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    #[error("cannot read {0}: {1}")]
    Read(String, std::io::Error),
    #[error("{0}: {1}")]
    Parse(String, String),
    #[error("{0}: {1}")]
    Store(String, super::StoreError),
}

/// Reads and checks a seed file: every session id must pass the format
/// check and every API key must be well formed for `config.api_keys`, so
/// the file cannot hold a credential ward would always refuse.
fn read(path: &Path, config: &ApiKeysConfig) -> Result<SeedFile, SeedError> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| SeedError::Read(name.clone(), e))?;
    let de = serde_yaml_ng::Deserializer::from_str(&text);
    let seed: SeedFile = serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let message = crate::config::strip_location_prefix(&e.inner().to_string(), &path);
        SeedError::Parse(name.clone(), format!("{path}: {message}"))
    })?;
    for (i, s) in seed.sessions.iter().enumerate() {
        if !session::valid_id(&s.id) {
            let why = "not a valid session id (see docs/redis-contract.md)";
            return Err(SeedError::Parse(name, format!("sessions[{i}].id: {why}")));
        }
    }
    for (i, k) in seed.api_keys.iter().enumerate() {
        if !apikey::well_formed(&k.key, &config.prefix, config.accept_foreign) {
            let why = format!(
                "not a well-formed `{}_` key (prefix and checksum)",
                config.prefix
            );
            return Err(SeedError::Parse(name, format!("api_keys[{i}].key: {why}")));
        }
    }
    Ok(seed)
}

/// Checks a seed file without loading it (for `ward check-config`).
pub fn check(path: &Path, config: &ApiKeysConfig) -> Result<(), SeedError> {
    read(path, config).map(|_| ())
}

/// Loads `path` into `store`.
pub async fn load(
    path: &Path,
    config: &ApiKeysConfig,
    store: &MemoryStore,
    keys: &KeyNames,
    now: u64,
) -> Result<(usize, usize), SeedError> {
    let name = path.display().to_string();
    let seed = read(path, config)?;
    let records = Records::new(store, keys);
    for s in &seed.sessions {
        let new = NewSession {
            user_id: s.user_id.clone(),
            email: s.email.clone(),
            roles: s.roles.clone(),
            scopes: s.scopes.clone(),
            fingerprint: s.fingerprint.clone(),
            ttl: s.ttl,
        };
        records
            .create_session(&s.id, &new, now)
            .await
            .map_err(|e| SeedError::Store(name.clone(), e))?;
    }
    for k in &seed.api_keys {
        let new = NewApiKey {
            key_id: k.key_id.clone(),
            user_id: k.user_id.clone(),
            name: k.name.clone(),
            scopes: k.scopes.clone(),
            expires_at: k.expires_at,
        };
        records
            .create_api_key(&apikey::hash_hex(&k.key), &new, now)
            .await
            .map_err(|e| SeedError::Store(name.clone(), e))?;
    }
    Ok((seed.sessions.len(), seed.api_keys.len()))
}
