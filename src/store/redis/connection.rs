//! How ward reaches Redis in each mode: one multiplexed, self-healing
//! connection per ward, whatever the topology behind it.
//!
//! - standalone: the crate's `ConnectionManager` (reconnects by itself);
//! - cluster: the crate's async cluster connection (follows slot moves and
//!   node failures by itself), also asked which nodes are masters for the
//!   invalidation fast path ([`Cluster::masters`]);
//! - sentinel: see [`super::sentinel`].
//!
//! All three connect lazily: building one fails only on a bad config, so a
//! ward that starts while Redis is down still starts, and its commands fail
//! until Redis is back. [`Connection::reset`] starts over from scratch (the
//! store calls it when its breaker opens), which also clears a connection
//! that hangs without ever failing.

use super::nodes::{Credentials, Request, parse_nodes, parse_url};
use super::sentinel::SentinelMaster;
use super::slots::{self, Endpoint};
use crate::config::{RedisConfig, RedisMode};
use arc_swap::ArcSwap;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::{ClusterClient, ClusterClientBuilder, ClusterConfig};
use redis::cluster_async::ClusterConnection;
use redis::{Client, ConnectionAddr, ConnectionInfo, RedisResult, Value};
use std::sync::Arc;
use std::time::Duration;

/// A connection to Redis in one of the three modes.
pub(super) enum Connection {
    Standalone(Box<Standalone>),
    Cluster(Arc<Cluster>),
    Sentinel(Arc<SentinelMaster>),
}

pub(super) struct Standalone {
    client: Client,
    connect_timeout: Duration,
    manager: ArcSwap<ConnectionManager>,
}

pub(super) struct Cluster {
    client: ClusterClient,
    nodes: Vec<ConnectionInfo>,
    connect_timeout: Duration,
    connection: ArcSwap<ClusterConnection>,
}

/// Where to subscribe: the standalone node; any node of a cluster (which
/// broadcasts `PUBLISH` to every node), whose masters the fast path
/// listens on too; or the master the Sentinels name at the time.
pub(super) enum SubscriptionTarget {
    Nodes(Vec<Client>),
    Cluster(Arc<Cluster>),
    Sentinel(Arc<SentinelMaster>),
}

impl Connection {
    /// Builds the connection without reaching Redis; fails only on a bad
    /// config (the message names the field, never a secret).
    pub(super) fn open(config: &RedisConfig) -> Result<Connection, String> {
        let credentials = Credentials::from_config(config)?;
        Ok(match config.mode {
            RedisMode::Standalone => {
                Connection::Standalone(Box::new(Standalone::open(config, &credentials)?))
            }
            RedisMode::Cluster => {
                Connection::Cluster(Arc::new(Cluster::open(config, &credentials)?))
            }
            RedisMode::Sentinel => {
                Connection::Sentinel(Arc::new(SentinelMaster::open(config, &credentials)?))
            }
        })
    }

    /// Sends one request. Not bounded here: the store puts its deadline
    /// around this call.
    pub(super) async fn query(&self, request: Request<'_>) -> RedisResult<Value> {
        match self {
            Connection::Standalone(s) => request.send(&mut (**s.manager.load()).clone()).await,
            Connection::Cluster(c) => request.send(&mut (**c.connection.load()).clone()).await,
            Connection::Sentinel(master) => master.query(request).await,
        }
    }

    /// Drops the current connection and starts a fresh one.
    pub(super) fn reset(&self) {
        match self {
            Connection::Standalone(s) => s.reset(),
            Connection::Cluster(c) => c
                .connection
                .store(Arc::new(pending_cluster(&c.client, c.connect_timeout))),
            Connection::Sentinel(master) => master.forget(),
        }
    }

    /// Where a pub/sub subscriber should connect.
    pub(super) fn subscription_target(&self) -> SubscriptionTarget {
        match self {
            Connection::Standalone(s) => SubscriptionTarget::Nodes(vec![s.client.clone()]),
            Connection::Cluster(c) => SubscriptionTarget::Cluster(c.clone()),
            Connection::Sentinel(master) => SubscriptionTarget::Sentinel(master.clone()),
        }
    }
}

impl SubscriptionTarget {
    /// The clients to try, in order.
    pub(super) async fn clients(&self) -> RedisResult<Vec<Client>> {
        match self {
            SubscriptionTarget::Nodes(clients) => Ok(clients.clone()),
            SubscriptionTarget::Cluster(cluster) => Ok(cluster.seeds()),
            SubscriptionTarget::Sentinel(master) => Ok(vec![master.lookup_client().await?]),
        }
    }

    /// The cluster whose other masters the fast path listens on, if any.
    pub(super) fn cluster(&self) -> Option<Arc<Cluster>> {
        match self {
            SubscriptionTarget::Cluster(cluster) => Some(cluster.clone()),
            _ => None,
        }
    }

    /// The Sentinel-named master whose `+switch-master` events the
    /// subscription follows, if any.
    pub(super) fn sentinel(&self) -> Option<Arc<SentinelMaster>> {
        match self {
            SubscriptionTarget::Sentinel(master) => Some(master.clone()),
            _ => None,
        }
    }
}

impl Standalone {
    fn open(config: &RedisConfig, credentials: &Credentials) -> Result<Standalone, String> {
        let url = config
            .url
            .as_deref()
            .ok_or("store.redis.url: required in standalone mode")?;
        let info = credentials.apply_to(parse_url(url, "store.redis.url")?);
        let client = Client::open(info).map_err(|e| format!("store.redis.url: {e}"))?;
        let manager = lazy_manager(&client, config.connect_timeout)?;
        Ok(Standalone {
            client,
            connect_timeout: config.connect_timeout,
            manager: ArcSwap::from_pointee(manager),
        })
    }

    /// A fresh manager, connected in the background so that a connect
    /// slower than one command's deadline still completes.
    fn reset(&self) {
        // Built from a config that was accepted once: cannot fail.
        let Ok(mut fresh) = lazy_manager(&self.client, self.connect_timeout) else {
            return;
        };
        self.manager.store(Arc::new(fresh.clone()));
        let connect_timeout = self.connect_timeout;
        tokio::spawn(async move {
            let ping = redis::cmd("PING");
            let _ = tokio::time::timeout(connect_timeout, ping.exec_async(&mut fresh)).await;
        });
    }
}

impl Cluster {
    fn open(config: &RedisConfig, credentials: &Credentials) -> Result<Cluster, String> {
        let nodes: Vec<ConnectionInfo> = parse_nodes(config)?
            .into_iter()
            .map(|node| credentials.apply_to(node))
            .collect();
        let mut builder =
            ClusterClientBuilder::new(nodes.clone()).connection_timeout(config.connect_timeout);
        if let Some(user) = &credentials.username {
            builder = builder.username(user);
        }
        if let Some(password) = &credentials.password {
            builder = builder.password(password);
        }
        let client = builder
            .build()
            .map_err(|e| format!("store.redis.nodes: {e}"))?;
        let connection = pending_cluster(&client, config.connect_timeout);
        Ok(Cluster {
            client,
            nodes,
            connect_timeout: config.connect_timeout,
            connection: ArcSwap::from_pointee(connection),
        })
    }

    /// Clients for the seed nodes of the config, in its order.
    fn seeds(&self) -> Vec<Client> {
        self.nodes
            .iter()
            .filter_map(|n| Client::open(n.clone()).ok())
            .collect()
    }

    /// The masters the cluster names now (`CLUSTER SLOTS`, sent to any
    /// node over the command connection, so no connection of its own),
    /// each with a client that reaches it as the seeds are reached (their
    /// credentials and TLS settings). Bounded by `connect_timeout`.
    pub(super) async fn masters(&self) -> RedisResult<Vec<(Endpoint, Client)>> {
        let mut cmd = redis::cmd("CLUSTER");
        cmd.arg("SLOTS");
        let mut connection = (**self.connection.load()).clone();
        let reply = tokio::time::timeout(
            self.connect_timeout,
            Request::Cmd(&cmd).send(&mut connection),
        )
        .await
        .map_err(|_| {
            redis::RedisError::from(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "CLUSTER SLOTS timed out",
            ))
        })??;
        Ok(slots::masters(&reply)
            .into_iter()
            .filter_map(|endpoint| Some((endpoint.clone(), self.client_for(&endpoint)?)))
            .collect())
    }

    /// A client for an announced node, built from the first seed's
    /// settings with the node's host and port.
    fn client_for(&self, endpoint: &Endpoint) -> Option<Client> {
        let seed = self.nodes.first()?;
        let addr = match seed.addr() {
            ConnectionAddr::Tcp(..) => ConnectionAddr::Tcp(endpoint.host.clone(), endpoint.port),
            ConnectionAddr::TcpTls {
                insecure,
                tls_params,
                ..
            } => ConnectionAddr::TcpTls {
                host: endpoint.host.clone(),
                port: endpoint.port,
                insecure: *insecure,
                tls_params: tls_params.clone(),
            },
            _ => return None,
        };
        Client::open(seed.clone().set_addr(addr)).ok()
    }
}

/// A `ConnectionManager` that connects on first use. One connect attempt
/// per use: the store's breaker decides how often to try, not a retry loop
/// that would make every waiting command wait longer.
fn lazy_manager(client: &Client, connect_timeout: Duration) -> Result<ConnectionManager, String> {
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(connect_timeout))
        .set_number_of_retries(0);
    ConnectionManager::new_lazy_with_config(client.clone(), config)
        .map_err(|e| format!("store.redis: {e}"))
}

fn pending_cluster(client: &ClusterClient, connect_timeout: Duration) -> ClusterConnection {
    client.get_pending_async_connection_with_config(
        ClusterConfig::default().set_connection_timeout(connect_timeout),
    )
}
