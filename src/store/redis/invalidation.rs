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

use super::connection::SubscriptionTarget;
use crate::store::Invalidation;
use crate::store::keys::INVALIDATION_CHANNEL;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_stream::StreamExt;

const FIRST_RETRY: Duration = Duration::from_millis(100);
const MAX_RETRY: Duration = Duration::from_secs(2);
const PING_EVERY: Duration = Duration::from_secs(5);
/// Messages buffered for a slow consumer; beyond that the subscriber waits
/// (and Redis, past its pub/sub output limit, drops us: we then resubscribe
/// and send `Reset`, which is still correct).
const BUFFER: usize = 1024;

/// Starts the subscriber; it stops when the receiver is dropped.
pub(super) fn spawn(
    target: SubscriptionTarget,
    connect_timeout: Duration,
) -> mpsc::Receiver<Invalidation> {
    let (tx, rx) = mpsc::channel(BUFFER);
    tokio::spawn(async move {
        tokio::select! {
            _ = tx.closed() => {}
            _ = run(&target, &tx, connect_timeout) => {}
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
    connect_timeout: Duration,
) {
    let mut delay = FIRST_RETRY;
    let mut healthy = true;
    loop {
        match subscribe(target, tx, connect_timeout, &mut healthy).await {
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

async fn subscribe(
    target: &SubscriptionTarget,
    tx: &mpsc::Sender<Invalidation>,
    connect_timeout: Duration,
    healthy: &mut bool,
) -> End {
    let clients = match target.clients().await {
        Ok(clients) => clients,
        Err(e) => return End::Lost(e.to_string()),
    };
    let mut last = String::from("no node to subscribe on");
    for client in clients {
        let subscribed = tokio::time::timeout(connect_timeout, async {
            let (mut sink, stream) = client.get_async_pubsub().await?.split();
            sink.subscribe(INVALIDATION_CHANNEL).await?;
            Ok::<_, redis::RedisError>((sink, stream))
        })
        .await;
        let (sink, stream) = match subscribed {
            Ok(Ok(pair)) => pair,
            Ok(Err(e)) => {
                last = e.to_string();
                continue;
            }
            Err(_) => {
                last = "subscribe timed out".into();
                continue;
            }
        };
        if !*healthy {
            tracing::info!("invalidation subscription restored");
        }
        *healthy = true;
        return forward(sink, stream, tx, connect_timeout).await;
    }
    End::Lost(last)
}

/// Sends `Reset`, then every message, until the connection fails.
async fn forward(
    mut sink: redis::aio::PubSubSink,
    mut stream: redis::aio::PubSubStream,
    tx: &mpsc::Sender<Invalidation>,
    connect_timeout: Duration,
) -> End {
    if tx.send(Invalidation::Reset).await.is_err() {
        return End::ReceiverGone;
    }
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.tick().await; // the first tick is immediate
    loop {
        tokio::select! {
            message = stream.next() => {
                let Some(message) = message else {
                    return End::Lost("connection closed".into());
                };
                // A key ward cannot read: forget everything rather than
                // keep something stale.
                let event = message
                    .get_payload::<String>()
                    .map_or(Invalidation::Reset, Invalidation::Key);
                if tx.send(event).await.is_err() {
                    return End::ReceiverGone;
                }
            }
            _ = ping.tick() => {
                match tokio::time::timeout(connect_timeout, sink.ping::<redis::Value>()).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => return End::Lost(format!("ping: {e}")),
                    Err(_) => return End::Lost("ping timed out".into()),
                }
            }
        }
    }
}
