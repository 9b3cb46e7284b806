//! The invalidation subscriber: a background task that keeps one pub/sub
//! connection subscribed to the invalidation channel and forwards what
//! arrives, so every ward evicts a changed session or key within moments.
//!
//! Pub/sub is fire-and-forget: whatever is published while ward is not
//! subscribed is lost. So every successful (re)subscribe first sends
//! [`Invalidation::Reset`] (drop everything cached), then one
//! [`Invalidation::Key`] per message. On connection loss it retries with a
//! bounded backoff. A periodic `PING` notices a connection that died
//! without closing.
//!
//! In a Cluster this primary subscription hears every message, but one
//! published on another node reaches it over the cluster bus, which Redis
//! 7.0 writes without `TCP_NODELAY`: up to a delayed ACK (40 ms) late. So
//! [`fast_path`] also listens on every other master, and each message
//! arrives first from the node it was published on; the copy that follows
//! over the bus evicts the key again, which is harmless.
//!
//! In Sentinel mode a manual failover closes no connection: the old master
//! stays a master for ~13 s. So [`switch_master`] listens on a Sentinel for
//! `+switch-master`, moves the command connection to the new master, then
//! this subscription ([`End::Moved`]): it resubscribes there at once, with
//! its `Reset`, so nothing read from the old master stays cached.

mod fast_path;
mod switch_master;

use super::connection::SubscriptionTarget;
use super::slots::Endpoint;
use crate::store::Invalidation;
use crate::store::keys::INVALIDATION_CHANNEL;
use redis::Client;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio_stream::StreamExt;

const FIRST_RETRY: Duration = Duration::from_millis(100);
const MAX_RETRY: Duration = Duration::from_secs(2);
const PING_EVERY: Duration = Duration::from_secs(5);
/// Messages buffered for a slow consumer; beyond that the subscriber waits
/// (and Redis, past its pub/sub output limit, drops us: we then resubscribe
/// and send `Reset`, which is still correct).
const BUFFER: usize = 1024;

/// Starts the subscriber (and, in a Cluster, the fast path); both stop
/// when the receiver is dropped.
pub(super) fn spawn(
    target: SubscriptionTarget,
    connect_timeout: Duration,
) -> mpsc::Receiver<Invalidation> {
    let (tx, rx) = mpsc::channel(BUFFER);
    let (primary, primary_rx) = watch::channel(None);
    let (moves_tx, moves) = watch::channel(None);
    if let Some(cluster) = target.cluster() {
        let tx = tx.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = tx.closed() => {}
                _ = fast_path::run(cluster, &tx, primary_rx, connect_timeout) => {}
            }
        });
    } else if let Some(master) = target.sentinel() {
        let tx = tx.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = tx.closed() => {}
                _ = switch_master::run(master, moves_tx, primary_rx, connect_timeout) => {}
            }
        });
    }
    let mut subscriber = Subscriber {
        target,
        tx,
        primary,
        moves,
        connect_timeout,
    };
    tokio::spawn(async move {
        let tx = subscriber.tx.clone();
        tokio::select! {
            _ = tx.closed() => {}
            _ = subscriber.run() => {}
        }
    });
    rx
}

/// The primary subscription: where it subscribes, where it forwards, and
/// what tells it to move.
struct Subscriber {
    target: SubscriptionTarget,
    tx: mpsc::Sender<Invalidation>,
    /// The node it is subscribed on, for the fast path and `switch_master`.
    primary: watch::Sender<Option<Endpoint>>,
    /// A master to move to at once ([`switch_master`]); never changes in
    /// the other modes.
    moves: watch::Receiver<Option<Client>>,
    connect_timeout: Duration,
}

/// Why a subscription ended.
enum End {
    /// The consumer is gone: stop.
    ReceiverGone,
    /// Connecting or the connection failed: retry.
    Lost(String),
    /// The master moved ([`switch_master`]): resubscribe there at once.
    Moved,
}

impl Subscriber {
    async fn run(&mut self) {
        let mut delay = FIRST_RETRY;
        let mut healthy = true;
        let mut moved_to = None;
        loop {
            match self.subscribe(moved_to.take(), &mut healthy).await {
                End::ReceiverGone => return,
                End::Moved => {
                    moved_to = self.moves.borrow_and_update().clone();
                    continue;
                }
                End::Lost(reason) if healthy => {
                    tracing::warn!(%reason, "invalidation subscription lost; retrying");
                    healthy = false;
                    delay = FIRST_RETRY;
                }
                End::Lost(reason) => {
                    tracing::debug!(%reason, "invalidation subscription retry failed");
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = moved(&mut self.moves) => {
                    moved_to = self.moves.borrow_and_update().clone();
                }
            }
            delay = (delay * 2).min(MAX_RETRY);
        }
    }

    /// Subscribes on `moved_to`, or else on the first node that takes it,
    /// tells the fast path which node that is (it need not listen there
    /// twice), and forwards.
    async fn subscribe(&mut self, moved_to: Option<Client>, healthy: &mut bool) -> End {
        let clients = match moved_to {
            Some(client) => vec![client],
            None => match self.target.clients().await {
                Ok(clients) => clients,
                Err(e) => return End::Lost(e.to_string()),
            },
        };
        let mut last = String::from("no node to subscribe on");
        for client in clients {
            let subscribed =
                Listener::subscribe(&client, INVALIDATION_CHANNEL, self.connect_timeout).await;
            let mut listener = match subscribed {
                Ok(listener) => listener,
                Err(e) => {
                    last = e;
                    continue;
                }
            };
            if !*healthy {
                tracing::info!("invalidation subscription restored");
            }
            *healthy = true;
            self.primary
                .send_replace(Endpoint::of(client.get_connection_info().addr()));
            return self.forward(&mut listener).await;
        }
        End::Lost(last)
    }

    /// Sends `Reset`, then every message, until the connection fails or
    /// the master moves.
    async fn forward(&mut self, listener: &mut Listener) -> End {
        if self.tx.send(Invalidation::Reset).await.is_err() {
            return End::ReceiverGone;
        }
        loop {
            let payload = tokio::select! {
                next = listener.next() => match next {
                    Ok(payload) => payload,
                    Err(reason) => return End::Lost(reason),
                },
                _ = moved(&mut self.moves) => return End::Moved,
            };
            // A key ward cannot read: forget everything rather than keep
            // something stale.
            let event = payload.map_or(Invalidation::Reset, Invalidation::Key);
            if self.tx.send(event).await.is_err() {
                return End::ReceiverGone;
            }
        }
    }
}

/// Resolves when a move is asked for; never once nobody can ask (every
/// mode but Sentinel).
async fn moved(moves: &mut watch::Receiver<Option<Client>>) {
    if moves.changed().await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// One connection subscribed to one channel (the invalidation channel,
/// or a Sentinel's `+switch-master`), pinged every [`PING_EVERY`] so that
/// one that died without closing is noticed.
struct Listener {
    sink: redis::aio::PubSubSink,
    stream: redis::aio::PubSubStream,
    ping: tokio::time::Interval,
    timeout: Duration,
}

impl Listener {
    /// Connects to `client` and subscribes to `channel`, within `timeout`.
    async fn subscribe(
        client: &Client,
        channel: &str,
        timeout: Duration,
    ) -> Result<Listener, String> {
        let subscribed = tokio::time::timeout(timeout, async {
            let (mut sink, stream) = client.get_async_pubsub().await?.split();
            sink.subscribe(channel).await?;
            Ok::<_, redis::RedisError>((sink, stream))
        })
        .await;
        let (sink, stream) = match subscribed {
            Ok(Ok(pair)) => pair,
            Ok(Err(e)) => return Err(e.to_string()),
            Err(_) => return Err("subscribe timed out".into()),
        };
        let mut ping = tokio::time::interval(PING_EVERY);
        ping.reset(); // the first tick one period from now, not at once
        Ok(Listener {
            sink,
            stream,
            ping,
            timeout,
        })
    }

    /// The next message's payload (`None`: not UTF-8), or why the
    /// connection is lost.
    async fn next(&mut self) -> Result<Option<String>, String> {
        loop {
            tokio::select! {
                message = self.stream.next() => {
                    let Some(message) = message else {
                        return Err("connection closed".into());
                    };
                    return Ok(message.get_payload::<String>().ok());
                }
                _ = self.ping.tick() => {
                    match tokio::time::timeout(self.timeout, self.sink.ping::<redis::Value>()).await {
                        Ok(Ok(_)) => {}
                        Ok(Err(e)) => return Err(format!("ping: {e}")),
                        Err(_) => return Err("ping timed out".into()),
                    }
                }
            }
        }
    }
}
