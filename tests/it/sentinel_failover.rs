//! Sentinel mode through a manual failover (`SENTINEL FAILOVER`), through
//! a ward answering over gRPC. The Sentinels promote the replica at once,
//! but the old master stays a master (answering reads and writes) until a
//! Sentinel converts it, ~13 s later. ward follows the Sentinels'
//! `+switch-master` event: a revocation a writer makes on the new master
//! is honoured long before that conversion, which the test checks is
//! still to come when ward denies (so the event moved ward, not the
//! conversion's closed connections). A Sentinel down or frozen costs
//! ward only its link to that Sentinel.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::time::{Duration, Instant};
use support::authz::{hset, publish_invalidation, session_id, verdict, wait_subscribed};
use support::inproc::InProc;
use support::redis::{MASTER_NAME, RedisSentinel, RedisServer};
use support::tokens;

/// Long cache lifetimes, so only an invalidation (or the `Reset` of a
/// resubscribe) explains a quick deny.
fn config(deployment: &RedisSentinel) -> String {
    let nodes: Vec<String> = deployment
        .urls()
        .iter()
        .map(|u| format!("\"{u}\""))
        .collect();
    format!(
        "log: {{format: text, level: warn}}\n\
         store:\n  redis: {{mode: sentinel, master_name: {MASTER_NAME}, nodes: [{}]}}\n\
         cache: {{store_ttl: 60s, negative_ttl: 60s, max_ttl: 300s}}\n\
         sessions: {{fingerprint: {{mode: off}}}}\n",
        nodes.join(", ")
    )
}

/// The first line of `ROLE`: `master` or `slave`.
fn role(node: &RedisServer) -> String {
    node.cli(&["ROLE"]).lines().next().unwrap_or("").to_string()
}

async fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Whether a client of ward's listens on `sentinel` (only ward subscribes
/// there: the Sentinels subscribe on the data nodes).
fn listened_on(sentinel: &RedisServer) -> bool {
    sentinel.cli(&["CLIENT", "LIST"]).contains(" sub=1 ")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_on_the_new_master_is_honoured_before_the_old_master_is_converted() {
    revoke_on_the_new_master(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_first_sentinel_down_ward_listens_on_the_next() {
    revoke_on_the_new_master(true).await;
}

/// A session cached, then `SENTINEL FAILOVER`, then the session deleted
/// and published on the promoted replica: ward denies it within 5 s,
/// while the old master is still a master. With `first_down`, the
/// Sentinel ward listened on is killed first.
async fn revoke_on_the_new_master(first_down: bool) {
    let mut deployment = RedisSentinel::start().await;
    let ward = InProc::start(&config(&deployment)).await;
    let sid = session_id();
    let key = format!("session:{sid}");
    let expires = (tokens::now() + 3600).to_string();
    hset(
        &deployment.master,
        &key,
        &[("user_id", "alice"), ("expires_at", expires.as_str())],
    );
    wait_subscribed(&deployment.master).await;
    let presented = [("x-session-id", sid.as_str())];
    assert_eq!(verdict(&ward.check(&presented).await).0, 200, "cached now");
    wait_for(
        "the replica to copy the session",
        Duration::from_secs(5),
        || deployment.replica.cli(&["EXISTS", &key]) == "1",
    )
    .await;
    wait_for("ward on the first Sentinel", Duration::from_secs(5), || {
        listened_on(&deployment.sentinels[0])
    })
    .await;
    if first_down {
        deployment.sentinels[0].stop();
        wait_for("ward on the next Sentinel", Duration::from_secs(5), || {
            listened_on(&deployment.sentinels[1])
        })
        .await;
    }

    let out = deployment.sentinels[1].cli(&["SENTINEL", "FAILOVER", MASTER_NAME]);
    assert_eq!(out, "OK", "SENTINEL FAILOVER");
    let failover = Instant::now();
    wait_for("the replica's promotion", Duration::from_secs(10), || {
        role(&deployment.replica) == "master"
    })
    .await;
    // A writer that follows the Sentinels revokes on the new master.
    assert_eq!(deployment.replica.cli(&["DEL", &key]), "1");
    publish_invalidation(&deployment.replica, &key);
    let revoked = Instant::now();

    loop {
        let (status, reason) = verdict(&ward.check(&presented).await);
        if status == 401 {
            break;
        }
        assert_eq!(status, 200, "{reason}");
        assert!(
            revoked.elapsed() < Duration::from_secs(5),
            "still allowed 5 s after the revocation on the new master"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let denied_after = revoked.elapsed();
    assert_eq!(
        role(&deployment.master),
        "master",
        "the old master is not converted yet: ward followed the event, not the conversion"
    );
    eprintln!(
        "promoted {:?} after SENTINEL FAILOVER; denied {denied_after:?} after the revocation",
        revoked - failover
    );
}

/// Frozen Sentinels (`SIGSTOP`: connections open, nothing answered) cost
/// ward only its `+switch-master` link: checks, cached or read from the
/// master, go on; the ping notices the frozen link, and ward listens on
/// the next Sentinel that answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frozen_sentinels_never_hold_up_checks() {
    let deployment = RedisSentinel::start().await;
    let ward = InProc::start(&config(&deployment)).await;
    let expires = (tokens::now() + 3600).to_string();
    let session = |sid: &str| {
        let fields = [("user_id", "alice"), ("expires_at", expires.as_str())];
        hset(&deployment.master, &format!("session:{sid}"), &fields);
    };
    let cached = session_id();
    session(&cached);
    wait_subscribed(&deployment.master).await;
    assert_eq!(
        verdict(&ward.check(&[("x-session-id", &cached)]).await).0,
        200
    );
    wait_for("ward on the first Sentinel", Duration::from_secs(5), || {
        listened_on(&deployment.sentinels[0])
    })
    .await;

    for sentinel in &deployment.sentinels {
        sentinel.signal("STOP");
    }
    let fresh = session_id();
    session(&fresh);
    for sid in [&cached, &fresh, &cached] {
        let started = Instant::now();
        let status = verdict(&ward.check(&[("x-session-id", sid)]).await).0;
        assert_eq!(status, 200, "answered while the Sentinels are frozen");
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );
    }

    for sentinel in &deployment.sentinels[1..] {
        sentinel.signal("CONT");
    }
    // The ping (every 5 s, 1 s to answer) finds the frozen link.
    wait_for("ward on another Sentinel", Duration::from_secs(15), || {
        deployment.sentinels[1..].iter().any(listened_on)
    })
    .await;
    deployment.sentinels[0].signal("CONT");
}
