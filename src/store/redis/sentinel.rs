//! Sentinel mode: ask the Sentinels which node is the master, keep one
//! multiplexed connection to it, and drop it on any connection error or
//! `READONLY` (the node was demoted). The next call asks the Sentinels
//! again, which is how a failover is followed without restarting ward:
//! while the Sentinels still name the dead master the lookup fails (and
//! the breaker limits how often we ask); once they name the promoted
//! replica, the next call connects to it.
//!
//! A manual failover (`SENTINEL FAILOVER`) breaks no connection: the old
//! master stays a master until a Sentinel converts it (~13 s). So the
//! invalidation subscriber also listens for the Sentinels' `+switch-master`
//! event (`invalidation/switch_master.rs`), asks the Sentinel that sent it
//! where the master is ([`SentinelMaster::named_by`]), and moves the
//! connection there at once ([`SentinelMaster::follow`]).

use super::nodes::{Credentials, Request, parse_nodes};
use super::slots::Endpoint;
use crate::config::RedisConfig;
use arc_swap::ArcSwapOption;
use redis::aio::MultiplexedConnection;
use redis::sentinel::{SentinelClient, SentinelNodeConnectionInfo, SentinelServerType};
use redis::{
    AsyncConnectionConfig, Client, ConnectionAddr, ConnectionInfo, ErrorKind, IntoConnectionInfo,
    RedisConnectionInfo, RedisError, RedisResult, ServerErrorKind, TlsMode, Value,
};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The Sentinel-named master and the current connection to it.
pub(super) struct SentinelMaster {
    /// The Sentinel client; the lock also makes lookups one at a time.
    sentinel: tokio::sync::Mutex<SentinelClient>,
    current: ArcSwapOption<Current>,
    /// Lookups (and follows) finished so far: a caller that queued behind
    /// one takes its result instead of starting another.
    lookups: AtomicU64,
    name: String,
    /// The Sentinels, with their own credentials (from their URLs).
    sentinels: Vec<ConnectionInfo>,
    /// How a data node is reached: the config's credentials, and TLS when
    /// the Sentinels are reached over TLS (as the crate's lookup does).
    node: RedisConnectionInfo,
    tls: bool,
    connect_timeout: Duration,
}

/// The connection to the master, and which node it reaches.
struct Current {
    connection: MultiplexedConnection,
    master: Option<Endpoint>,
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
        let node_settings = credentials.apply(RedisConnectionInfo::default());
        let mut node =
            SentinelNodeConnectionInfo::default().set_redis_connection_info(node_settings.clone());
        let tls = sentinels
            .iter()
            .any(|s| matches!(s.addr(), ConnectionAddr::TcpTls { .. }));
        if tls {
            node = node.set_tls_mode(TlsMode::Secure);
        }
        let client = SentinelClient::build(
            sentinels.clone(),
            name,
            Some(node),
            SentinelServerType::Master,
        )
        .map_err(|e| format!("store.redis.nodes: {e}"))?;
        Ok(SentinelMaster {
            sentinel: tokio::sync::Mutex::new(client),
            current: ArcSwapOption::empty(),
            lookups: AtomicU64::new(0),
            name: name.to_string(),
            sentinels,
            node: node_settings,
            tls,
            connect_timeout: config.connect_timeout,
        })
    }

    pub(super) async fn query(self: &Arc<Self>, request: Request<'_>) -> RedisResult<Value> {
        let current = self.connection().await?;
        let result = request.send(&mut current.connection.clone()).await;
        if let Err(e) = &result
            && points_elsewhere(e)
        {
            // Only if nobody replaced it meanwhile.
            self.current.compare_and_swap(&Some(current), None);
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
    async fn connection(self: &Arc<Self>) -> RedisResult<Arc<Current>> {
        if let Some(connection) = self.current.load_full() {
            return Ok(connection);
        }
        let seen = self.lookups.load(Ordering::Acquire);
        let this = self.clone();
        tokio::spawn(async move { this.reconnect(seen).await })
            .await
            .map_err(|e| unavailable(&format!("sentinel lookup task: {e}")))?
    }

    async fn reconnect(&self, seen: u64) -> RedisResult<Arc<Current>> {
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
        let current = Arc::new(Current {
            connection,
            master: Endpoint::of(client.get_connection_info().addr()),
        });
        self.current.store(Some(current.clone()));
        Ok(current)
    }

    /// The master's name and the Sentinels, for the `+switch-master`
    /// listener.
    pub(super) fn name(&self) -> &str {
        &self.name
    }

    pub(super) fn sentinels(&self) -> &[ConnectionInfo] {
        &self.sentinels
    }

    /// Where `sentinel` says the master is now (`SENTINEL
    /// GET-MASTER-ADDR-BY-NAME`), on a connection of its own, bounded by
    /// `connect_timeout`; `None` if it knows no such master.
    pub(super) async fn named_by(&self, sentinel: &Client) -> RedisResult<Option<Endpoint>> {
        let mut cmd = redis::cmd("SENTINEL");
        cmd.arg("GET-MASTER-ADDR-BY-NAME").arg(&self.name);
        let config =
            AsyncConnectionConfig::new().set_connection_timeout(Some(self.connect_timeout));
        let named = tokio::time::timeout(self.connect_timeout, async {
            let mut connection = sentinel
                .get_multiplexed_async_connection_with_config(&config)
                .await?;
            cmd.query_async::<Option<(String, u16)>>(&mut connection)
                .await
        })
        .await
        .unwrap_or_else(|_| Err(unavailable("sentinel query timed out")))?;
        Ok(named.map(|(host, port)| Endpoint { host, port }))
    }

    /// Moves the connection to `master` (a node the Sentinels name after a
    /// `+switch-master`) unless it is there already, and returns a client
    /// that reaches it. Under the lookup lock, so a lookup that started
    /// before does not put the old master back.
    pub(super) async fn follow(&self, master: &Endpoint) -> RedisResult<Client> {
        let client = self.client_for(master)?;
        let _lookup = self.sentinel.lock().await;
        let here = self.current.load_full();
        if here.as_ref().and_then(|c| c.master.as_ref()) == Some(master) {
            return Ok(client);
        }
        let config =
            AsyncConnectionConfig::new().set_connection_timeout(Some(self.connect_timeout));
        let connection = tokio::time::timeout(
            self.connect_timeout,
            client.get_multiplexed_async_connection_with_config(&config),
        )
        .await
        .unwrap_or_else(|_| Err(unavailable("connecting to the new master timed out")))?;
        let from = here.as_ref().and_then(|c| c.master.as_ref());
        tracing::info!(
            master_name = %self.name,
            from = %from.map(ToString::to_string).unwrap_or_default(),
            master = %master,
            "followed the Sentinels' +switch-master to the new master"
        );
        self.current.store(Some(Arc::new(Current {
            connection,
            master: Some(master.clone()),
        })));
        self.lookups.fetch_add(1, Ordering::AcqRel);
        Ok(client)
    }

    /// A client for a data node, reached as the crate's lookup reaches
    /// the master (the config's credentials; TLS if the Sentinels use it).
    fn client_for(&self, master: &Endpoint) -> RedisResult<Client> {
        let (host, port) = (master.host.clone(), master.port);
        let addr = if self.tls {
            ConnectionAddr::TcpTls {
                host,
                port,
                insecure: false,
                tls_params: None,
            }
        } else {
            ConnectionAddr::Tcp(host, port)
        };
        let info = addr.into_connection_info()?;
        Client::open(info.set_redis_settings(self.node.clone()))
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
