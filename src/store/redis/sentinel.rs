//! Sentinel mode: ask the Sentinels which node is the master, keep one
//! multiplexed connection to it, and drop it on any connection error or
//! `READONLY` (the node was demoted). The next call asks the Sentinels
//! again, which is how a failover is followed without restarting ward:
//! while the Sentinels still name the dead master the lookup fails (and
//! the breaker limits how often we ask); once they name the promoted
//! replica, the next call connects to it.

use super::nodes::{Credentials, Request, parse_nodes};
use crate::config::RedisConfig;
use arc_swap::ArcSwapOption;
use redis::aio::MultiplexedConnection;
use redis::sentinel::{SentinelClient, SentinelNodeConnectionInfo, SentinelServerType};
use redis::{
    AsyncConnectionConfig, Client, ConnectionAddr, ErrorKind, RedisConnectionInfo, RedisError,
    RedisResult, ServerErrorKind, TlsMode, Value,
};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The Sentinel-named master and the current connection to it.
pub(super) struct SentinelMaster {
    /// The Sentinel client; the lock also makes lookups one at a time.
    sentinel: tokio::sync::Mutex<SentinelClient>,
    current: ArcSwapOption<MultiplexedConnection>,
    /// Lookups finished so far: a caller that queued behind a lookup takes
    /// its result instead of starting another.
    lookups: AtomicU64,
    name: String,
    connect_timeout: Duration,
}

impl SentinelMaster {
    /// `nodes` are the Sentinels (their own credentials, if any, in their
    /// URLs); the config's username and password are for the data nodes.
    pub(super) fn open(
        config: &RedisConfig,
        credentials: &Credentials,
    ) -> Result<SentinelMaster, String> {
        let name = config
            .master_name
            .as_deref()
            .ok_or("store.redis.master_name: required in sentinel mode")?;
        let sentinels = parse_nodes(config)?;
        let mut node = SentinelNodeConnectionInfo::default()
            .set_redis_connection_info(credentials.apply(RedisConnectionInfo::default()));
        if sentinels
            .iter()
            .any(|s| matches!(s.addr(), ConnectionAddr::TcpTls { .. }))
        {
            node = node.set_tls_mode(TlsMode::Secure);
        }
        let client = SentinelClient::build(sentinels, name, Some(node), SentinelServerType::Master)
            .map_err(|e| format!("store.redis.nodes: {e}"))?;
        Ok(SentinelMaster {
            sentinel: tokio::sync::Mutex::new(client),
            current: ArcSwapOption::empty(),
            lookups: AtomicU64::new(0),
            name: name.to_string(),
            connect_timeout: config.connect_timeout,
        })
    }

    pub(super) async fn query(self: &Arc<Self>, request: Request<'_>) -> RedisResult<Value> {
        let connection = self.connection().await?;
        let result = request.send(&mut (*connection).clone()).await;
        if let Err(e) = &result
            && points_elsewhere(e)
        {
            // Only if nobody replaced it meanwhile.
            self.current.compare_and_swap(&Some(connection), None);
        }
        result
    }

    /// Forgets the current master: the next call looks it up again.
    pub(super) fn forget(&self) {
        self.current.store(None);
    }

    /// A client for the current master (for pub/sub), bounded.
    pub(super) async fn lookup_client(&self) -> RedisResult<Client> {
        let mut sentinel = self.sentinel.lock().await;
        tokio::time::timeout(self.connect_timeout, sentinel.async_get_client())
            .await
            .unwrap_or_else(|_| Err(unavailable("sentinel lookup timed out")))
    }

    /// The current master connection, or a fresh lookup. The lookup runs
    /// in its own task, bounded by `connect_timeout`, so it completes even
    /// when the caller's (shorter) command deadline gives up on it.
    async fn connection(self: &Arc<Self>) -> RedisResult<Arc<MultiplexedConnection>> {
        if let Some(connection) = self.current.load_full() {
            return Ok(connection);
        }
        let seen = self.lookups.load(Ordering::Acquire);
        let this = self.clone();
        tokio::spawn(async move { this.reconnect(seen).await })
            .await
            .map_err(|e| unavailable(&format!("sentinel lookup task: {e}")))?
    }

    async fn reconnect(&self, seen: u64) -> RedisResult<Arc<MultiplexedConnection>> {
        let mut sentinel = self.sentinel.lock().await;
        if self.lookups.load(Ordering::Acquire) != seen {
            return self
                .current
                .load_full()
                .ok_or_else(|| unavailable("no reachable master named by the Sentinels"));
        }
        let result = tokio::time::timeout(self.connect_timeout, async {
            let client = sentinel.async_get_client().await?;
            let config =
                AsyncConnectionConfig::new().set_connection_timeout(Some(self.connect_timeout));
            let connection = client
                .get_multiplexed_async_connection_with_config(&config)
                .await?;
            Ok::<_, RedisError>((client, connection))
        })
        .await
        .unwrap_or_else(|_| Err(unavailable("sentinel lookup timed out")));
        self.lookups.fetch_add(1, Ordering::AcqRel);
        let (client, connection) = result?;
        tracing::info!(
            master_name = %self.name,
            master = %client.get_connection_info().addr(),
            "connected to the Redis master named by the Sentinels"
        );
        let connection = Arc::new(connection);
        self.current.store(Some(connection.clone()));
        Ok(connection)
    }
}

/// Whether an error means the connection no longer reaches the master: it
/// broke, or the node was demoted by a failover.
fn points_elsewhere(e: &RedisError) -> bool {
    e.is_unrecoverable_error()
        || e.is_io_error()
        || matches!(
            e.kind(),
            ErrorKind::Server(ServerErrorKind::ReadOnly | ServerErrorKind::MasterDown)
        )
}

/// An I/O-kind error, which the store reports as "unavailable".
fn unavailable(what: &str) -> RedisError {
    RedisError::from(std::io::Error::new(
        std::io::ErrorKind::NotConnected,
        what.to_string(),
    ))
}
