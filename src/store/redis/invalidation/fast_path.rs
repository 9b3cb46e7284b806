//! The Cluster fast path: besides the primary subscription, one
//! subscription on every other master, so that a message reaches ward
//! from the node it was published on instead of over the cluster bus
//! (Redis 7.0 writes the bus without `TCP_NODELAY`: a message may wait
//! for a delayed ACK, 40 ms). Writers publish on any node, as before.
//!
//! Only [`Invalidation::Key`] is forwarded, and never waited for: the
//! primary subscription hears every message anyway, so a fast path that
//! is lost, slow or full only loses speed, never a message. That is why a
//! lost fast-path subscription needs no `Reset`, while the primary's does.
//!
//! The masters come from `CLUSTER SLOTS` ([`Cluster::masters`]), asked
//! again every [`REFRESH_EVERY`], whenever a fast-path subscription is
//! lost (a failover or a resharding shows that way first) and when the
//! primary moves. One connection per master, the primary's own node
//! excepted; each retries alone, with the primary's backoff, so a dead
//! node costs a connect attempt every 2 s at most and delays nothing else.
//!
//! The crate's cluster pub/sub (RESP3 pushes on the cluster connection)
//! subscribes through one node and resubscribes without telling: neither
//! the per-master listening nor the loss a `Reset` needs.

use super::{FIRST_RETRY, Listener, MAX_RETRY};
use crate::store::Invalidation;
use crate::store::keys::INVALIDATION_CHANNEL;
use crate::store::redis::connection::Cluster;
use crate::store::redis::slots::Endpoint;
use redis::Client;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, mpsc, watch};
use tokio::task::JoinHandle;

/// How often the masters are asked again when no subscription was lost.
const REFRESH_EVERY: Duration = Duration::from_secs(5);

/// Keeps a subscription on every master but the primary's node; runs
/// until dropped (the caller stops it when the receiver is gone).
pub(super) async fn run(
    cluster: Arc<Cluster>,
    tx: &mpsc::Sender<Invalidation>,
    mut primary: watch::Receiver<Option<Endpoint>>,
    connect_timeout: Duration,
) {
    // Let the primary pick its node first, so as not to open a link there
    // only to close it.
    let _ = tokio::time::timeout(connect_timeout, primary.wait_for(Option::is_some)).await;
    let lost = Arc::new(Notify::new());
    let mut links: HashMap<Endpoint, Link> = HashMap::new();
    let mut delay = FIRST_RETRY;
    let mut failing = false;
    loop {
        match cluster.masters().await {
            Ok(masters) => {
                failing = false;
                let skip = primary.borrow_and_update().clone();
                reconcile(
                    &mut links,
                    masters,
                    skip.as_ref(),
                    tx,
                    &lost,
                    connect_timeout,
                );
                delay = FIRST_RETRY;
                tokio::select! {
                    _ = tokio::time::sleep(REFRESH_EVERY) => {}
                    _ = lost.notified() => {}
                    _ = changed(&mut primary) => {}
                }
                // However often links flap, CLUSTER SLOTS at most 10 times a second.
                tokio::time::sleep(FIRST_RETRY).await;
            }
            Err(e) => {
                // Said once per streak (an ACL without `cluster|slots`
                // would otherwise turn the fast path off unseen); the
                // primary subscription still hears every message.
                if failing {
                    tracing::debug!(error = %e, "invalidation fast path: masters unknown; retrying");
                } else {
                    tracing::warn!(error = %e, "invalidation fast path: masters unknown; retrying");
                    failing = true;
                }
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(MAX_RETRY);
            }
        }
    }
}

/// Resolves when the primary subscription moves; never once it is gone.
async fn changed(primary: &mut watch::Receiver<Option<Endpoint>>) {
    if primary.changed().await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// One master's fast-path subscription: a task of its own, ended when
/// the link is dropped (the node is no longer a master, or the fast path
/// stops).
struct Link(JoinHandle<()>);

impl Drop for Link {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Links to exactly the masters given, the primary's node excepted: new
/// ones started, those of former masters dropped, the others untouched.
fn reconcile(
    links: &mut HashMap<Endpoint, Link>,
    masters: Vec<(Endpoint, Client)>,
    skip: Option<&Endpoint>,
    tx: &mpsc::Sender<Invalidation>,
    lost: &Arc<Notify>,
    connect_timeout: Duration,
) {
    let wanted: Vec<(Endpoint, Client)> = masters
        .into_iter()
        .filter(|(endpoint, _)| Some(endpoint) != skip)
        .collect();
    let before = links.len();
    links.retain(|endpoint, _| wanted.iter().any(|(w, _)| w == endpoint));
    let mut changed = links.len() != before;
    for (endpoint, client) in wanted {
        if links.contains_key(&endpoint) {
            continue;
        }
        let task = link(client, tx.clone(), lost.clone(), connect_timeout);
        links.insert(endpoint, Link(tokio::spawn(task)));
        changed = true;
    }
    if changed {
        let nodes: Vec<String> = links.keys().map(ToString::to_string).collect();
        tracing::info!(
            primary = %skip.map(ToString::to_string).unwrap_or_default(),
            fast_path = ?nodes,
            "invalidation fast path: listening on the other masters"
        );
    }
}

/// Subscribes on one master and forwards its keys, resubscribing after a
/// loss with a backoff; every loss asks [`run`] to look at the masters
/// again.
async fn link(
    client: Client,
    tx: mpsc::Sender<Invalidation>,
    lost: Arc<Notify>,
    connect_timeout: Duration,
) {
    let mut delay = FIRST_RETRY;
    loop {
        let subscribed = Listener::subscribe(&client, INVALIDATION_CHANNEL, connect_timeout).await;
        let reason = match subscribed {
            Ok(mut listener) => {
                delay = FIRST_RETRY;
                forward_keys(&mut listener, &tx).await
            }
            Err(reason) => reason,
        };
        let node = client.get_connection_info().addr().to_string();
        tracing::debug!(%node, %reason, "invalidation fast path: subscription lost; retrying");
        lost.notify_one();
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(MAX_RETRY);
    }
}

/// Forwards each readable key at once, until the connection is lost
/// (the reason returned). Never waits for the consumer: a full buffer
/// drops this copy, the primary's follows. A payload that is not UTF-8 is
/// left to the primary, which turns it into a `Reset`.
async fn forward_keys(listener: &mut Listener, tx: &mpsc::Sender<Invalidation>) -> String {
    loop {
        match listener.next().await {
            Ok(Some(key)) => {
                let _ = tx.try_send(Invalidation::Key(key));
            }
            Ok(None) => {}
            Err(reason) => return reason,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(port: u16) -> Endpoint {
        Endpoint {
            host: "127.0.0.1".into(),
            port,
        }
    }

    /// A master nobody listens on: its link fails and retries, harmlessly.
    fn master(port: u16) -> (Endpoint, Client) {
        let client = Client::open(format!("redis://127.0.0.1:{port}")).unwrap();
        (endpoint(port), client)
    }

    fn ports(links: &HashMap<Endpoint, Link>) -> Vec<u16> {
        let mut ports: Vec<u16> = links.keys().map(|e| e.port).collect();
        ports.sort_unstable();
        ports
    }

    #[tokio::test]
    async fn links_follow_the_masters_and_skip_the_primarys_node() {
        let (tx, _rx) = mpsc::channel(8);
        let lost = Arc::new(Notify::new());
        let timeout = Duration::from_millis(50);
        let mut links = HashMap::new();
        let masters = vec![master(1), master(2), master(3)];
        reconcile(&mut links, masters, Some(&endpoint(2)), &tx, &lost, timeout);
        assert_eq!(ports(&links), [1, 3], "none on the primary's node");
        let kept = links[&endpoint(1)].0.id();

        // A failover: 3 gone, 4 promoted; the primary moved off 2.
        let masters = vec![master(1), master(2), master(4)];
        reconcile(&mut links, masters, Some(&endpoint(9)), &tx, &lost, timeout);
        assert_eq!(ports(&links), [1, 2, 4]);
        assert_eq!(
            links[&endpoint(1)].0.id(),
            kept,
            "a link still wanted runs on"
        );

        // A dropped link's task ends.
        let dropped = links.remove(&endpoint(4)).unwrap();
        let handle = &dropped.0;
        assert!(!handle.is_finished());
        let abort = handle.abort_handle();
        drop(dropped);
        for _ in 0..100 {
            if abort.is_finished() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(abort.is_finished(), "aborted with its link");
    }
}
