//! Sentinel mode: follow the Sentinels' `+switch-master` event. A manual
//! failover (`SENTINEL FAILOVER`) promotes the replica but closes no
//! connection: the old master answers reads and writes until a Sentinel
//! converts it, ~13 s later. Without this, ward would read and listen on
//! it all that time, and miss what writers do on the new master.
//!
//! One subscription on one Sentinel at a time (lost or refused, the next
//! Sentinel, with the primary's backoff: a Sentinel down costs a connect
//! attempt every 2 s at most). The event is advisory: on one naming
//! ward's master set, the Sentinel that sent it is asked where the master
//! is now (`SENTINEL GET-MASTER-ADDR-BY-NAME`, [`SentinelMaster::named_by`]);
//! the command connection moves there first ([`SentinelMaster::follow`]),
//! then the primary subscription, which resubscribes with a `Reset`:
//! whatever was cached from the old master goes, and what is read again
//! comes from the new one. Events for other master sets, and events that
//! name where ward already is (several Sentinels publish each switch), move
//! nothing. An event published while ward has no Sentinel link is missed:
//! ward then follows at the conversion, as it did before.

use super::{FIRST_RETRY, Listener, MAX_RETRY};
use crate::store::redis::sentinel::SentinelMaster;
use crate::store::redis::slots::Endpoint;
use redis::Client;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Where a Sentinel announces a new master: `<name> <old-ip> <old-port>
/// <new-ip> <new-port>`.
const CHANNEL: &str = "+switch-master";

/// Listens on the Sentinels in turn, and follows every switch of ward's
/// master set; runs until dropped (the caller stops it with the
/// subscription).
pub(super) async fn run(
    master: Arc<SentinelMaster>,
    moves: watch::Sender<Option<Client>>,
    primary: watch::Receiver<Option<Endpoint>>,
    connect_timeout: Duration,
) {
    let mut turn = 0usize;
    let mut delay = FIRST_RETRY;
    let mut healthy = true;
    loop {
        let sentinels = master.sentinels();
        let Some(info) = sentinels.get(turn % sentinels.len().max(1)) else {
            return;
        };
        turn = turn.wrapping_add(1);
        let sentinel = info.addr().to_string();
        let reason = match Client::open(info.clone()) {
            Ok(client) => match Listener::subscribe(&client, CHANNEL, connect_timeout).await {
                Ok(mut listener) => {
                    if !healthy {
                        tracing::info!(%sentinel, "listening for +switch-master again");
                    }
                    healthy = true;
                    delay = FIRST_RETRY;
                    listen(&master, &client, &mut listener, &moves, &primary).await
                }
                Err(reason) => reason,
            },
            Err(e) => e.to_string(),
        };
        if healthy {
            tracing::warn!(%sentinel, %reason, "+switch-master subscription lost; trying the next Sentinel");
            healthy = false;
        } else {
            tracing::debug!(%sentinel, %reason, "+switch-master subscription failed; trying the next Sentinel");
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(MAX_RETRY);
    }
}

/// Follows each event for ward's master set, until the link is lost (the
/// reason returned).
async fn listen(
    master: &SentinelMaster,
    sentinel: &Client,
    listener: &mut Listener,
    moves: &watch::Sender<Option<Client>>,
    primary: &watch::Receiver<Option<Endpoint>>,
) -> String {
    loop {
        let payload = match listener.next().await {
            Ok(Some(payload)) => payload,
            Ok(None) => continue,
            Err(reason) => return reason,
        };
        let Some(announced) = announced(&payload, master.name()) else {
            tracing::debug!(%payload, "+switch-master for another master set, or unreadable: ignored");
            continue;
        };
        if let Err(error) = follow(master, sentinel, &announced, moves, primary).await {
            tracing::warn!(%announced, %error, "+switch-master: could not follow now; the connections move at their next failure");
        }
    }
}

/// Asks the Sentinel where the master is, moves the command connection
/// there, then the subscription unless it is there already.
async fn follow(
    master: &SentinelMaster,
    sentinel: &Client,
    announced: &Endpoint,
    moves: &watch::Sender<Option<Client>>,
    primary: &watch::Receiver<Option<Endpoint>>,
) -> Result<(), String> {
    let named = master
        .named_by(sentinel)
        .await
        .map_err(|e| format!("asking the Sentinel: {e}"))?
        .ok_or("the Sentinel names no such master")?;
    if named != *announced {
        tracing::debug!(%announced, %named, "+switch-master: the Sentinel now names another master; following the Sentinel");
    }
    let client = master
        .follow(&named)
        .await
        .map_err(|e| format!("connecting to {named}: {e}"))?;
    if primary.borrow().as_ref() != Some(&named) {
        moves.send_replace(Some(client));
    }
    Ok(())
}

/// The new master a `+switch-master` message announces for the master set
/// `name`; `None` for another set, or a message of another shape.
fn announced(payload: &str, name: &str) -> Option<Endpoint> {
    let fields: Vec<&str> = payload.split(' ').collect();
    let [set, old_host, old_port, host, port] = fields.as_slice() else {
        return None;
    };
    if *set != name || old_host.is_empty() || host.is_empty() {
        return None;
    }
    old_port.parse::<u16>().ok()?;
    let port = port.parse::<u16>().ok().filter(|&p| p != 0)?;
    Some(Endpoint {
        host: (*host).to_string(),
        port,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_well_formed_event_for_our_master_set_counts() {
        let ours = Some(Endpoint {
            host: "10.0.0.2".into(),
            port: 6380,
        });
        let cases: &[(&str, Option<Endpoint>)] = &[
            ("wardmaster 10.0.0.1 6379 10.0.0.2 6380", ours.clone()),
            ("other 10.0.0.1 6379 10.0.0.2 6380", None),
            ("wardmaster2 10.0.0.1 6379 10.0.0.2 6380", None),
            ("ward 10.0.0.1 6379 10.0.0.2 6380", None),
            ("WARDMASTER 10.0.0.1 6379 10.0.0.2 6380", None),
            ("", None),
            ("wardmaster", None),
            ("wardmaster 10.0.0.1 6379 10.0.0.2", None),
            ("wardmaster 10.0.0.1 6379 10.0.0.2 6380 extra", None),
            ("wardmaster  10.0.0.1 6379 10.0.0.2 6380", None),
            ("wardmaster 10.0.0.1 6379 10.0.0.2 6380 ", None),
            ("wardmaster 10.0.0.1 6379  6380", None),
            ("wardmaster 10.0.0.1 6379 10.0.0.2 0", None),
            ("wardmaster 10.0.0.1 6379 10.0.0.2 70000", None),
            ("wardmaster 10.0.0.1 6379 10.0.0.2 -1", None),
            ("wardmaster 10.0.0.1 6379 10.0.0.2 port", None),
            ("wardmaster 10.0.0.1 old 10.0.0.2 6380", None),
            ("wardmaster\t10.0.0.1\t6379\t10.0.0.2\t6380", None),
        ];
        for (payload, want) in cases {
            assert_eq!(&announced(payload, "wardmaster"), want, "{payload:?}");
        }
        let ipv6 = announced("m ::1 6379 ::2 6380", "m");
        assert_eq!(ipv6.map(|e| e.to_string()).as_deref(), Some("::2:6380"));
    }
}
