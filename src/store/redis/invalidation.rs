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

mod fast_path;

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
    if let Some(cluster) = target.cluster() {
        let tx = tx.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = tx.closed() => {}
                _ = fast_path::run(cluster, &tx, primary_rx, connect_timeout) => {}
            }
        });
    }
    tokio::spawn(async move {
        tokio::select! {
            _ = tx.closed() => {}
            _ = run(&target, &tx, &primary, connect_timeout) => {}
        }
    });
    rx
}

/// Why a subscription ended.
enum End {
    /// The consumer is gone: stop.
    ReceiverGone,
    /// Connecting or the connection failed: retry.
    Lost(String),
}

async fn run(
    target: &SubscriptionTarget,
    tx: &mpsc::Sender<Invalidation>,
    primary: &watch::Sender<Option<Endpoint>>,
    connect_timeout: Duration,
) {
    let mut delay = FIRST_RETRY;
    let mut healthy = true;
    loop {
        match subscribe(target, tx, primary, connect_timeout, &mut healthy).await {
            End::ReceiverGone => return,
            End::Lost(reason) if healthy => {
                tracing::warn!(%reason, "invalidation subscription lost; retrying");
                healthy = false;
                delay = FIRST_RETRY;
            }
            End::Lost(reason) => tracing::debug!(%reason, "invalidation subscription retry failed"),
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(MAX_RETRY);
    }
}

/// Subscribes on the first node that takes it, tells the fast path which
/// node that is (it need not listen there twice), and forwards.
async fn subscribe(
    target: &SubscriptionTarget,
    tx: &mpsc::Sender<Invalidation>,
    primary: &watch::Sender<Option<Endpoint>>,
    connect_timeout: Duration,
    healthy: &mut bool,
) -> End {
    let clients = match target.clients().await {
        Ok(clients) => clients,
        Err(e) => return End::Lost(e.to_string()),
    };
    let mut last = String::from("no node to subscribe on");
    for client in clients {
        let mut listener = match Listener::subscribe(&client, connect_timeout).await {
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
        primary.send_replace(Endpoint::of(client.get_connection_info().addr()));
        return forward(&mut listener, tx).await;
    }
    End::Lost(last)
}

/// Sends `Reset`, then every message, until the connection fails.
async fn forward(listener: &mut Listener, tx: &mpsc::Sender<Invalidation>) -> End {
    if tx.send(Invalidation::Reset).await.is_err() {
        return End::ReceiverGone;
    }
    loop {
        let payload = match listener.next().await {
            Ok(payload) => payload,
            Err(reason) => return End::Lost(reason),
        };
        // A key ward cannot read: forget everything rather than keep
        // something stale.
        let event = payload.map_or(Invalidation::Reset, Invalidation::Key);
        if tx.send(event).await.is_err() {
            return End::ReceiverGone;
        }
    }
}

/// One connection subscribed to the invalidation channel, pinged every
/// [`PING_EVERY`] so that one that died without closing is noticed.
struct Listener {
    sink: redis::aio::PubSubSink,
    stream: redis::aio::PubSubStream,
    ping: tokio::time::Interval,
    timeout: Duration,
}

impl Listener {
    /// Connects to `client` and subscribes, within `timeout`.
    async fn subscribe(client: &Client, timeout: Duration) -> Result<Listener, String> {
        let subscribed = tokio::time::timeout(timeout, async {
            let (mut sink, stream) = client.get_async_pubsub().await?.split();
            sink.subscribe(INVALIDATION_CHANNEL).await?;
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
