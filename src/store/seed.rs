//! Seeding the embedded store from a YAML file, so a demo or a test has
//! sessions and API keys with nothing else installed. Raw API keys in the
//! file are hashed on load, as the contract requires; the file itself is
//! a secret.

use super::keys::KeyNames;
use super::memory::MemoryStore;
use super::records::{NewApiKey, NewSession, Records};
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

/// Loads `path` into `store`.
pub async fn load(
    path: &Path,
    store: &MemoryStore,
    keys: &KeyNames,
    now: u64,
) -> Result<(usize, usize), SeedError> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| SeedError::Read(name.clone(), e))?;
    let de = serde_yaml_ng::Deserializer::from_str(&text);
    let seed: SeedFile = serde_path_to_error::deserialize(de)
        .map_err(|e| SeedError::Parse(name.clone(), e.to_string()))?;
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
            .create_api_key(&crate::apikey::hash_hex(&k.key), &new, now)
            .await
            .map_err(|e| SeedError::Store(name.clone(), e))?;
    }
    Ok((seed.sessions.len(), seed.api_keys.len()))
}
