//! The embedded store: Redis semantics (hashes, sets, strings, TTLs,
//! publish) in one process, for the quick start and for tests. It can be
//! seeded from a file so a demo has sessions and API keys with nothing
//! else installed. Its data lives and dies with the process.

use super::{Backend, Hash, StoreError};
use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio::sync::broadcast;

#[derive(Debug, Clone)]
enum Value {
    Hash(HashMap<String, String>),
    Set(BTreeSet<String>),
    String(String),
}

#[derive(Debug, Clone)]
struct Entry {
    value: Value,
    expires_at: Option<Instant>,
}

impl Entry {
    fn live(&self, now: Instant) -> bool {
        self.expires_at.is_none_or(|t| t > now)
    }
}

/// An in-process store. Cloning shares nothing: wrap it in an `Arc`.
#[derive(Debug)]
pub struct MemoryStore {
    data: Mutex<HashMap<String, Entry>>,
    published: broadcast::Sender<(String, String)>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self {
            data: Mutex::new(HashMap::new()),
            published: broadcast::channel(1024).0,
        }
    }
}

const WRONG_TYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";

impl MemoryStore {
    /// Messages published on any channel, as `(channel, message)`.
    pub fn subscribe(&self) -> broadcast::Receiver<(String, String)> {
        self.published.subscribe()
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&mut HashMap<String, Entry>, Instant) -> T,
    ) -> Result<T, StoreError> {
        let mut data = self
            .data
            .lock()
            .map_err(|_| StoreError::Unavailable("memory store lock poisoned".into()))?;
        let now = Instant::now();
        data.retain(|_, e| e.live(now));
        Ok(f(&mut data, now))
    }
}

impl Backend for MemoryStore {
    async fn hash(&self, key: &str) -> Result<Option<Hash>, StoreError> {
        self.with(|data, now| match data.get(key) {
            None => Ok(None),
            Some(Entry {
                value: Value::Hash(fields),
                expires_at,
            }) => Ok(Some(Hash {
                fields: fields.clone(),
                ttl: expires_at.map(|t| t.saturating_duration_since(now)),
            })),
            Some(_) => Err(StoreError::Command(WRONG_TYPE.into())),
        })?
    }

    async fn put_hash(
        &self,
        key: &str,
        fields: &[(&str, &str)],
        ttl: Option<Duration>,
    ) -> Result<(), StoreError> {
        let map = fields
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.with(|data, now| {
            if fields.is_empty() {
                data.remove(key); // Redis cannot hold an empty hash
                return;
            }
            data.insert(
                key.to_string(),
                Entry {
                    value: Value::Hash(map),
                    expires_at: ttl.map(|t| now + t),
                },
            );
        })
    }

    async fn set_field_if_exists(
        &self,
        key: &str,
        field: &str,
        value: &str,
    ) -> Result<bool, StoreError> {
        self.with(|data, _| match data.get_mut(key) {
            None => Ok(false),
            Some(Entry {
                value: Value::Hash(fields),
                ..
            }) => {
                fields.insert(field.to_string(), value.to_string());
                Ok(true)
            }
            Some(_) => Err(StoreError::Command(WRONG_TYPE.into())),
        })?
    }

    async fn exists(&self, key: &str) -> Result<bool, StoreError> {
        self.with(|data, _| data.contains_key(key))
    }

    async fn put_string(
        &self,
        key: &str,
        value: &str,
        ttl: Option<Duration>,
    ) -> Result<(), StoreError> {
        self.with(|data, now| {
            data.insert(
                key.to_string(),
                Entry {
                    value: Value::String(value.to_string()),
                    expires_at: ttl.map(|t| now + t),
                },
            );
        })
    }

    async fn string(&self, key: &str) -> Result<Option<String>, StoreError> {
        self.with(|data, _| match data.get(key) {
            None => Ok(None),
            Some(Entry {
                value: Value::String(s),
                ..
            }) => Ok(Some(s.clone())),
            Some(_) => Err(StoreError::Command(WRONG_TYPE.into())),
        })?
    }

    async fn delete(&self, key: &str) -> Result<bool, StoreError> {
        self.with(|data, _| data.remove(key).is_some())
    }

    async fn set_add(&self, key: &str, member: &str) -> Result<(), StoreError> {
        self.with(|data, _| {
            let entry = data.entry(key.to_string()).or_insert_with(|| Entry {
                value: Value::Set(BTreeSet::new()),
                expires_at: None,
            });
            match &mut entry.value {
                Value::Set(set) => {
                    set.insert(member.to_string());
                    Ok(())
                }
                _ => Err(StoreError::Command(WRONG_TYPE.into())),
            }
        })?
    }

    async fn set_remove(&self, key: &str, member: &str) -> Result<(), StoreError> {
        self.with(|data, _| {
            let emptied = match data.get_mut(key) {
                Some(Entry {
                    value: Value::Set(set),
                    ..
                }) => {
                    set.remove(member);
                    set.is_empty()
                }
                Some(_) => return Err(StoreError::Command(WRONG_TYPE.into())),
                None => false,
            };
            if emptied {
                data.remove(key); // Redis deletes an empty set
            }
            Ok(())
        })?
    }

    async fn set_members(&self, key: &str) -> Result<Vec<String>, StoreError> {
        self.with(|data, _| match data.get(key) {
            None => Ok(Vec::new()),
            Some(Entry {
                value: Value::Set(set),
                ..
            }) => Ok(set.iter().cloned().collect()),
            Some(_) => Err(StoreError::Command(WRONG_TYPE.into())),
        })?
    }

    async fn publish(&self, channel: &str, message: &str) -> Result<(), StoreError> {
        // No subscriber is not an error, as in Redis.
        let _ = self
            .published
            .send((channel.to_string(), message.to_string()));
        Ok(())
    }
}
