//! The Redis backend: the [`Backend`] primitives as Redis commands, in
//! standalone, cluster or sentinel mode, each bounded by
//! `command_timeout` and guarded by a circuit breaker.
//!
//! Failure modes, and why:
//! - `connect` never waits for Redis (it connects lazily): a ward started
//!   while Redis is down still starts, serves what needs no store, and
//!   recovers by itself. Only a bad config fails it.
//! - Every command has a deadline well under Envoy's (200 ms by default):
//!   a slow Redis turns into [`StoreError::Timeout`], not a hung check.
//! - After `breaker_failures` consecutive timeouts or lost connections the
//!   breaker opens: calls fail fast with [`StoreError::CircuitOpen`] for
//!   `breaker_open_for`, then one probe tests Redis again. Opening also
//!   throws the connection away, so one that hangs without failing is
//!   replaced.
//! - An error Redis answered does not trip the breaker: `WRONGTYPE` (or a
//!   reply of the wrong shape) is [`StoreError::BadRecord`], a problem
//!   with that key alone; any other (`NOPERM`, `OOM`) is
//!   [`StoreError::Command`], which a check treats as an outage.

mod batch;
mod connection;
mod invalidation;
mod nodes;
mod sentinel;
mod slots;

use self::connection::Connection;
use self::nodes::Request;
use super::breaker::{Admit, Breaker, Outcome, Transition};
use super::{Backend, Hash, Invalidation, StoreError};
use crate::config::{RedisConfig, RedisMode};
use crate::fields::Fields;
use redis::{ErrorKind, FromRedisValue, RedisError, ServerErrorKind, Value};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, mpsc};

/// The store on Redis. Share it behind an `Arc`.
pub struct RedisStore {
    shared: Arc<Shared>,
    /// Hash reads waiting to go out together ([`batch`]); `None` in
    /// cluster mode, where a pipeline cannot span nodes.
    batch: Option<Arc<batch::Queue>>,
}

/// What the store's calls, and the tasks that send batched reads, share.
struct Shared {
    connection: Connection,
    command_timeout: Duration,
    connect_timeout: Duration,
    breaker: Mutex<Breaker>,
    /// Wakes the background prober ([`probe_while_open`]) when the
    /// breaker opens, and when the store is dropped (so it ends).
    opened: Arc<Notify>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.opened.notify_one();
    }
}

/// How often the background prober pings Redis while the breaker is open
/// (plus up to [`PROBE_JITTER`], so wards do not probe in step).
const PROBE_INTERVAL: Duration = Duration::from_millis(50);
const PROBE_JITTER: Duration = Duration::from_millis(20);

/// While the breaker is open, pings Redis every [`PROBE_INTERVAL`] and
/// closes the breaker on the first answer; sleeps while it is closed.
/// Holds the store weakly: it ends when the store is dropped.
async fn probe_while_open(shared: std::sync::Weak<Shared>, opened: Arc<Notify>) {
    let ping = redis::cmd("PING");
    loop {
        let open = match shared.upgrade() {
            Some(s) => s.breaker().is_open(),
            None => return,
        };
        if !open {
            opened.notified().await;
            continue;
        }
        tokio::time::sleep(PROBE_INTERVAL + jitter(PROBE_JITTER)).await;
        let Some(s) = shared.upgrade() else { return };
        let answered =
            tokio::time::timeout(s.command_timeout, s.connection.query(Request::Cmd(&ping))).await;
        if matches!(answered, Ok(Ok(_))) {
            let transition = s.breaker().probe_answered();
            s.on_transition(transition, &Ok::<(), StoreError>(()));
        }
    }
}

/// A duration in `[0, max)`, from the clock's low bits: spreading probes,
/// not secrecy.
fn jitter(max: Duration) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let max_nanos = u32::try_from(max.as_nanos()).unwrap_or(u32::MAX).max(1);
    Duration::from_nanos(u64::from(nanos % max_nanos))
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("command_timeout", &self.shared.command_timeout)
            .field("batched", &self.batch.is_some())
            .finish_non_exhaustive()
    }
}

/// Sets a hash field only if the hash exists, atomically.
const SET_FIELD_IF_EXISTS: &str = "if redis.call('EXISTS', KEYS[1]) == 1 then \
     redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) return 1 else return 0 end";

/// `expire_field_if_exists`: HSET, then PEXPIRE unless the key already
/// expires sooner (PTTL -1: no TTL).
const EXPIRE_FIELD_IF_EXISTS: &str = "if redis.call('EXISTS', KEYS[1]) == 1 then \
     redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) \
     local t = redis.call('PTTL', KEYS[1]) \
     if t < 0 or t > tonumber(ARGV[3]) then redis.call('PEXPIRE', KEYS[1], ARGV[3]) end \
     return 1 else return 0 end";
/// `SADD`, then `PEXPIRE` only to raise the TTL (a set without one, new
/// or old, gets one): `EXPIRE ... GT` needs Redis 7, ward supports 6.2.
const SET_ADD_FOR: &str = "redis.call('SADD', KEYS[1], ARGV[1]) \
     if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[2]) then \
     redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 1";

/// `SET NX PX`, except that the value already there being the claimant's
/// own is a success too: a request repeated on a fresh connection
/// (`send_with_retry`) must not find its own first attempt a replay.
const CLAIM: &str = "local v = redis.call('GET', KEYS[1]) \
     if v == false then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1 end \
     if v == ARGV[1] then return 1 end return 0";

impl RedisStore {
    /// Builds the store. Does not wait for Redis: it connects lazily (one
    /// warm-up attempt, bounded by `connect_timeout`, only logs if Redis is
    /// not there yet). Fails only on a bad config, with
    /// [`StoreError::Unavailable`] naming the field.
    pub async fn connect(config: &RedisConfig) -> Result<RedisStore, StoreError> {
        let connection = Connection::open(config).map_err(StoreError::Unavailable)?;
        let store = Shared {
            connection,
            command_timeout: config.command_timeout,
            connect_timeout: config.connect_timeout,
            breaker: Mutex::new(Breaker::new(
                config.breaker_failures,
                config.breaker_open_for,
            )),
            opened: Arc::new(Notify::new()),
        };
        let ping = redis::cmd("PING");
        let warm_up = tokio::time::timeout(
            config.connect_timeout,
            store.connection.query(Request::Cmd(&ping)),
        );
        let reason = match warm_up.await {
            Ok(Ok(_)) => None,
            Ok(Err(e)) => Some(e.to_string()),
            Err(_) => Some("timed out".to_string()),
        };
        match reason {
            None => tracing::info!(mode = ?config.mode, "connected to Redis"),
            Some(reason) => {
                tracing::warn!(mode = ?config.mode, %reason, "Redis not reachable yet; will keep trying");
                store.connection.reset();
            }
        }
        let batch = (config.mode != RedisMode::Cluster).then(|| Arc::new(batch::Queue::default()));
        let shared = Arc::new(store);
        tokio::spawn(probe_while_open(
            Arc::downgrade(&shared),
            shared.opened.clone(),
        ));
        Ok(RedisStore { shared, batch })
    }

    /// Subscribes to the invalidation channel in the background (see
    /// [`Invalidation`]). Each call starts its own subscriber, which stops
    /// when the receiver is dropped. Must be called inside a Tokio runtime.
    pub fn subscribe_invalidations(&self) -> mpsc::Receiver<Invalidation> {
        let shared = &self.shared;
        invalidation::spawn(
            shared.connection.subscription_target(),
            shared.connect_timeout,
        )
    }

    /// Whether the breaker currently fails calls fast.
    pub fn circuit_open(&self) -> bool {
        self.shared.breaker().is_open()
    }
}

impl Shared {
    /// Runs one request under the breaker and the command deadline.
    async fn query<T: FromRedisValue>(&self, request: Request<'_>) -> Result<T, StoreError> {
        self.call(request, |value| {
            // Redis answered; a reply of the wrong shape is not an outage.
            let result =
                T::from_redis_value(value).map_err(|e| StoreError::BadRecord(e.to_string()));
            (result, Outcome::Answered)
        })
        .await
    }

    /// Runs one request under the breaker and the command deadline;
    /// `answer` reads Redis's reply, and says whether it shows Redis
    /// failing (a batch of reads whose replies include "not now" errors
    /// such as `LOADING`), for the breaker.
    async fn call<T>(
        &self,
        request: Request<'_>,
        answer: impl FnOnce(Value) -> (Result<T, StoreError>, Outcome),
    ) -> Result<T, StoreError> {
        let admitted = self.breaker().admit(Instant::now());
        if admitted == Admit::Reject {
            return Err(StoreError::CircuitOpen);
        }
        let (result, outcome) =
            match tokio::time::timeout(self.command_timeout, self.send_with_retry(request)).await {
                Ok(Ok(value)) => answer(value),
                Ok(Err(e)) => (Err(classify(&e)), Outcome::Answered),
                Err(_) => (
                    Err(StoreError::Timeout(self.command_timeout)),
                    Outcome::Answered,
                ),
            };
        let outcome = match &result {
            Err(StoreError::Timeout(_) | StoreError::Unavailable(_)) => Outcome::Failed,
            _ => outcome,
        };
        let transition = self.breaker().record(admitted, outcome, Instant::now());
        self.on_transition(transition, &result);
        result
    }

    /// Sends `request`; if the connection turns out to be one Redis closed
    /// (a restart or a failover while ward was idle), drops it and sends
    /// once more on a fresh one, within the caller's deadline. Otherwise
    /// the first check after a restart would find the dead connection for
    /// everybody. Every request ward sends is safe to repeat: reads, and
    /// writes that set a value whole (`MULTI`/`EXEC`, `SADD`, `SREM`); a
    /// repeated `PUBLISH` only evicts a key twice.
    async fn send_with_retry(&self, request: Request<'_>) -> redis::RedisResult<Value> {
        match self.connection.query(request).await {
            Err(e) if e.is_connection_dropped() || e.is_unrecoverable_error() => {
                tracing::debug!(error = %e, "Redis connection closed; retrying once on a fresh one");
                self.connection.reset();
                self.connection.query(request).await
            }
            result => result,
        }
    }

    /// Logs a breaker state change; on opening, also drops the connection.
    fn on_transition<T>(&self, transition: Option<Transition>, result: &Result<T, StoreError>) {
        let error = result
            .as_ref()
            .err()
            .map(ToString::to_string)
            .unwrap_or_default();
        match transition {
            Some(Transition::Opened { failures }) => {
                tracing::warn!(failures, %error, "Redis circuit breaker opened: failing fast");
                self.connection.reset();
                self.opened.notify_one();
            }
            Some(Transition::Reopened) => {
                tracing::debug!(%error, "Redis circuit breaker probe failed; staying open");
            }
            Some(Transition::Closed) => {
                tracing::info!("Redis circuit breaker closed: Redis answers again")
            }
            None => {}
        }
    }

    fn breaker(&self) -> std::sync::MutexGuard<'_, Breaker> {
        // The breaker never panics while locked; a poisoned lock still
        // holds a consistent state.
        self.breaker.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// One command with string arguments.
    async fn cmd<T: FromRedisValue>(&self, name: &str, args: &[&str]) -> Result<T, StoreError> {
        let mut cmd = redis::cmd(name);
        for arg in args {
            cmd.arg(*arg);
        }
        self.query(Request::Cmd(&cmd)).await
    }
}

/// Sorts a Redis error into the store's vocabulary. Errors Redis answered
/// about the key (`WRONGTYPE`) are `BadRecord`; other answered errors are
/// `Command`, except those that mean "not this node, not now" (failover,
/// cluster resharding, loading), which are outages.
fn classify(e: &RedisError) -> StoreError {
    use ServerErrorKind as S;
    let transient = matches!(
        e.kind(),
        ErrorKind::Server(
            S::ReadOnly
                | S::MasterDown
                | S::ClusterDown
                | S::TryAgain
                | S::BusyLoading
                | S::Moved
                | S::Ask
        )
    ) || matches!(e.code(), Some("NOAUTH" | "WRONGPASS"));
    let answered = matches!(
        e.kind(),
        ErrorKind::Server(_)
            | ErrorKind::Extension
            | ErrorKind::UnexpectedReturnType
            | ErrorKind::Client
    );
    if answered && (e.code() == Some("WRONGTYPE") || e.kind() == ErrorKind::UnexpectedReturnType) {
        StoreError::BadRecord(e.to_string())
    } else if answered && !transient {
        StoreError::Command(e.to_string())
    } else {
        StoreError::Unavailable(e.to_string())
    }
}

/// A hash read with `HGETALL` and `PTTL` (-1: no expiry; -2: no key, as
/// when it expired between the two commands).
fn hash_of(fields: Fields, pttl: i64) -> Option<Hash> {
    if fields.is_empty() || pttl == -2 {
        return None;
    }
    let ttl = u64::try_from(pttl).ok().map(Duration::from_millis);
    Some(Hash { fields, ttl })
}

/// Milliseconds for `PX`/`PEXPIRE`, rounded up, at least 1 (`SET PX 0` is
/// an error in Redis; the memory store treats 0 as "already expired").
fn millis(ttl: Duration) -> u64 {
    let ms = ttl.as_nanos().div_ceil(1_000_000);
    u64::try_from(ms).unwrap_or(u64::MAX).max(1)
}

impl Backend for RedisStore {
    async fn hash(&self, key: &str) -> Result<Option<Hash>, StoreError> {
        match &self.batch {
            Some(queue) => queue.hash(&self.shared, key).await,
            None => {
                let mut pipe = redis::pipe();
                pipe.cmd("HGETALL").arg(key).cmd("PTTL").arg(key);
                let (fields, pttl): (Fields, i64) = self.shared.query(Request::Pipe(&pipe)).await?;
                Ok(hash_of(fields, pttl))
            }
        }
    }

    async fn put_hash(
        &self,
        key: &str,
        fields: &[(&str, &str)],
        ttl: Option<Duration>,
    ) -> Result<(), StoreError> {
        let mut pipe = redis::pipe();
        pipe.atomic().cmd("DEL").arg(key).ignore();
        if !fields.is_empty() {
            let hset = pipe.cmd("HSET").arg(key);
            for (field, value) in fields {
                hset.arg(*field).arg(*value);
            }
            pipe.ignore();
        }
        if let Some(ttl) = ttl {
            pipe.cmd("PEXPIRE").arg(key).arg(millis(ttl)).ignore();
        }
        self.shared.query(Request::Pipe(&pipe)).await
    }

    async fn set_field_if_exists(
        &self,
        key: &str,
        field: &str,
        value: &str,
    ) -> Result<bool, StoreError> {
        let set: i64 = self
            .shared
            .cmd("EVAL", &[SET_FIELD_IF_EXISTS, "1", key, field, value])
            .await?;
        Ok(set == 1)
    }

    async fn expire_field_if_exists(
        &self,
        key: &str,
        field: &str,
        value: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let ms = millis(ttl).to_string();
        let set: i64 = self
            .shared
            .cmd(
                "EVAL",
                &[EXPIRE_FIELD_IF_EXISTS, "1", key, field, value, &ms],
            )
            .await?;
        Ok(set == 1)
    }

    async fn exists(&self, key: &str) -> Result<bool, StoreError> {
        let n: i64 = self.shared.cmd("EXISTS", &[key]).await?;
        Ok(n > 0)
    }

    async fn put_string(
        &self,
        key: &str,
        value: &str,
        ttl: Option<Duration>,
    ) -> Result<(), StoreError> {
        match ttl {
            Some(ttl) => {
                self.shared
                    .cmd("SET", &[key, value, "PX", &millis(ttl).to_string()])
                    .await
            }
            None => self.shared.cmd("SET", &[key, value]).await,
        }
    }

    async fn string(&self, key: &str) -> Result<Option<String>, StoreError> {
        self.shared.cmd("GET", &[key]).await
    }

    async fn delete(&self, key: &str) -> Result<bool, StoreError> {
        let n: i64 = self.shared.cmd("DEL", &[key]).await?;
        Ok(n > 0)
    }

    async fn set_add(&self, key: &str, member: &str) -> Result<(), StoreError> {
        self.shared
            .cmd::<i64>("SADD", &[key, member])
            .await
            .map(drop)
    }

    async fn set_remove(&self, key: &str, member: &str) -> Result<(), StoreError> {
        self.shared
            .cmd::<i64>("SREM", &[key, member])
            .await
            .map(drop)
    }

    async fn set_members(&self, key: &str) -> Result<Vec<String>, StoreError> {
        let mut members: Vec<String> = self.shared.cmd("SMEMBERS", &[key]).await?;
        members.sort_unstable();
        Ok(members)
    }

    async fn set_add_for(&self, key: &str, member: &str, ttl: Duration) -> Result<(), StoreError> {
        let ms = millis(ttl).to_string();
        self.shared
            .cmd::<i64>("EVAL", &[SET_ADD_FOR, "1", key, member, &ms])
            .await
            .map(drop)
    }

    async fn claim(&self, key: &str, claimant: &str, ttl: Duration) -> Result<bool, StoreError> {
        let ms = millis(ttl).to_string();
        let won: i64 = self
            .shared
            .cmd("EVAL", &[CLAIM, "1", key, claimant, &ms])
            .await?;
        Ok(won == 1)
    }

    async fn publish(&self, channel: &str, message: &str) -> Result<(), StoreError> {
        self.shared
            .cmd::<i64>("PUBLISH", &[channel, message])
            .await
            .map(drop)
    }
}
