//! The embedded store: Redis semantics (hashes, sets, strings, TTLs,
//! publish) in one process, for the quick start and for tests. It can be
//! seeded from a file so a demo has sessions and API keys with nothing
//! else installed. Its data lives and dies with the process.

use super::{Backend, Hash, StoreError};
use crate::fields::Fields;
use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio::sync::broadcast;

#[derive(Debug, Clone)]
enum Value {
    Hash(Fields),
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
    data: Mutex<Data>,
    published: broadcast::Sender<(String, String)>,
}

/// The keys, and how many operations ran since expired keys were last
/// swept out.
#[derive(Debug, Default)]
struct Data {
    entries: HashMap<String, Entry>,
    since_sweep: usize,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self {
            data: Mutex::new(Data::default()),
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

    /// Runs `f` on the data, as an operation on `key`: an expired `key`
    /// is gone first, as in Redis. Other expired keys are swept out once
    /// every as many operations as there are keys, so a sweep (a pass over
    /// every key) costs each operation O(1) on average, and memory stays
    /// bounded by the live keys.
    fn with<T>(
        &self,
        key: &str,
        f: impl FnOnce(&mut HashMap<String, Entry>, Instant) -> T,
    ) -> Result<T, StoreError> {
        let mut data = self
            .data
            .lock()
            .map_err(|_| StoreError::Unavailable("memory store lock poisoned".into()))?;
        let now = Instant::now();
        let Data {
            entries,
            since_sweep,
        } = &mut *data;
        *since_sweep += 1;
        if *since_sweep >= entries.len() {
            entries.retain(|_, e| e.live(now));
            *since_sweep = 0;
        } else if entries.get(key).is_some_and(|e| !e.live(now)) {
            entries.remove(key);
        }
        Ok(f(entries, now))
    }
}

impl Backend for MemoryStore {
    async fn hash(&self, key: &str) -> Result<Option<Hash>, StoreError> {
        self.with(key, |data, now| match data.get(key) {
            None => Ok(None),
            Some(Entry {
                value: Value::Hash(fields),
                expires_at,
            }) => Ok(Some(Hash {
                fields: fields.clone(),
                ttl: expires_at.map(|t| t.saturating_duration_since(now)),
            })),
            Some(_) => Err(StoreError::BadRecord(WRONG_TYPE.into())),
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
        self.with(key, |data, now| {
            if fields.is_empty() {
                data.remove(key); // Redis cannot hold an empty hash
                return;
            }
            data.insert(
                key.to_string(),
                Entry {
                    value: Value::Hash(map),
                    expires_at: ttl.map(|t| later(now, t)),
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
        self.with(key, |data, _| match data.get_mut(key) {
            None => Ok(false),
            Some(Entry {
                value: Value::Hash(fields),
                ..
            }) => {
                fields.insert(field.to_string(), value.to_string());
                Ok(true)
            }
            Some(_) => Err(StoreError::BadRecord(WRONG_TYPE.into())),
        })?
    }

    async fn expire_field_if_exists(
        &self,
        key: &str,
        field: &str,
        value: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        self.with(key, |data, now| match data.get_mut(key) {
            None => Ok(false),
            Some(Entry {
                value: Value::Hash(fields),
                expires_at,
            }) => {
                fields.insert(field.to_string(), value.to_string());
                let cap = later(now, ttl);
                *expires_at = Some(expires_at.map_or(cap, |t| t.min(cap)));
                Ok(true)
            }
            Some(_) => Err(StoreError::BadRecord(WRONG_TYPE.into())),
        })?
    }

    async fn exists(&self, key: &str) -> Result<bool, StoreError> {
        self.with(key, |data, _| data.contains_key(key))
    }

    async fn put_string(
        &self,
        key: &str,
        value: &str,
        ttl: Option<Duration>,
    ) -> Result<(), StoreError> {
        self.with(key, |data, now| {
            data.insert(
                key.to_string(),
                Entry {
                    value: Value::String(value.to_string()),
                    expires_at: ttl.map(|t| later(now, t)),
                },
            );
        })
    }

    async fn string(&self, key: &str) -> Result<Option<String>, StoreError> {
        self.with(key, |data, _| match data.get(key) {
            None => Ok(None),
            Some(Entry {
                value: Value::String(s),
                ..
            }) => Ok(Some(s.clone())),
            Some(_) => Err(StoreError::BadRecord(WRONG_TYPE.into())),
        })?
    }

    async fn delete(&self, key: &str) -> Result<bool, StoreError> {
        self.with(key, |data, _| data.remove(key).is_some())
    }

    async fn set_add(&self, key: &str, member: &str) -> Result<(), StoreError> {
        self.with(key, |data, _| {
            let entry = data.entry(key.to_string()).or_insert_with(|| Entry {
                value: Value::Set(BTreeSet::new()),
                expires_at: None,
            });
            match &mut entry.value {
                Value::Set(set) => {
                    set.insert(member.to_string());
                    Ok(())
                }
                _ => Err(StoreError::BadRecord(WRONG_TYPE.into())),
            }
        })?
    }

    async fn set_remove(&self, key: &str, member: &str) -> Result<(), StoreError> {
        self.with(key, |data, _| {
            let emptied = match data.get_mut(key) {
                Some(Entry {
                    value: Value::Set(set),
                    ..
                }) => {
                    set.remove(member);
                    set.is_empty()
                }
                Some(_) => return Err(StoreError::BadRecord(WRONG_TYPE.into())),
                None => false,
            };
            if emptied {
                data.remove(key); // Redis deletes an empty set
            }
            Ok(())
        })?
    }

    async fn set_members(&self, key: &str) -> Result<Vec<String>, StoreError> {
        self.with(key, |data, _| match data.get(key) {
            None => Ok(Vec::new()),
            Some(Entry {
                value: Value::Set(set),
                ..
            }) => Ok(set.iter().cloned().collect()),
            Some(_) => Err(StoreError::BadRecord(WRONG_TYPE.into())),
        })?
    }

    async fn set_add_for(&self, key: &str, member: &str, ttl: Duration) -> Result<(), StoreError> {
        self.with(key, |data, now| {
            let entry = data.entry(key.to_string()).or_insert_with(|| Entry {
                value: Value::Set(BTreeSet::new()),
                expires_at: None,
            });
            let Value::Set(set) = &mut entry.value else {
                return Err(StoreError::BadRecord(WRONG_TYPE.into()));
            };
            set.insert(member.to_string());
            let until = later(now, ttl);
            entry.expires_at = Some(entry.expires_at.map_or(until, |t| t.max(until)));
            Ok(())
        })?
    }

    async fn claim(&self, key: &str, claimant: &str, ttl: Duration) -> Result<bool, StoreError> {
        self.with(key, |data, now| match data.get(key) {
            None => {
                let entry = Entry {
                    value: Value::String(claimant.to_string()),
                    expires_at: Some(later(now, ttl)),
                };
                data.insert(key.to_string(), entry);
                Ok(true)
            }
            Some(Entry {
                value: Value::String(held),
                ..
            }) => Ok(held == claimant),
            Some(_) => Err(StoreError::BadRecord(WRONG_TYPE.into())),
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

/// `now + ttl`, with a TTL past a century held to one: `Instant + Duration`
/// panics on overflow, and a panic here, under the store's lock, would
/// poison it for every check after.
fn later(now: Instant, ttl: Duration) -> Instant {
    const CENTURY: Duration = Duration::from_secs(100 * 365 * 24 * 3600);
    now + ttl.min(CENTURY)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held(store: &MemoryStore) -> usize {
        store.data.lock().unwrap().entries.len()
    }

    #[tokio::test]
    async fn expired_keys_are_gone_when_read_and_swept_out_in_time() {
        let store = MemoryStore::default();
        let short = Some(Duration::from_millis(5));
        for i in 0..50 {
            store
                .put_string(&format!("k{i}"), "v", short)
                .await
                .unwrap();
        }
        store.put_string("live", "v", None).await.unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
        store.data.lock().unwrap().since_sweep = 0; // a sweep just ran
        assert_eq!(store.string("k7").await.unwrap(), None);
        assert!(!store.exists("k8").await.unwrap());
        // Not every operation sweeps: a read of a live key leaves the rest.
        store.string("live").await.unwrap();
        assert!(held(&store) > 2, "swept on every operation");
        // Within as many operations as there are keys, the rest is swept.
        for _ in 0..60 {
            assert_eq!(store.string("live").await.unwrap().as_deref(), Some("v"));
        }
        assert_eq!(held(&store), 1);
    }
}
