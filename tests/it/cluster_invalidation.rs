//! Invalidation in a Redis Cluster, through a ward answering over gRPC.
//! A revocation published on any master reaches ward straight from that
//! master (the fast path), not only over the cluster bus to the node its
//! primary subscription is on; a master lost costs the fast path nothing
//! but that master's link, and the primary subscription moves on with a
//! `Reset`. Every test starts its own three-master cluster; ward's seeds
//! are its nodes in order, so the primary subscription is on node 0.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use std::time::{Duration, Instant};
use support::authz::{self, check, session_id, verdict};
use support::inproc::InProc;
use support::redis::RedisCluster;
use support::tokens;
use tonic::transport::Channel;
use ward::store::keys::INVALIDATION_CHANNEL;

/// Long cache lifetimes, so only an invalidation explains a quick deny.
fn config(cluster: &RedisCluster) -> String {
    let nodes: Vec<String> = cluster.urls().iter().map(|u| format!("\"{u}\"")).collect();
    format!(
        "log: {{format: text, level: warn}}\n\
         store:\n  redis: {{mode: cluster, nodes: [{}]}}\n\
         cache: {{store_ttl: 60s, negative_ttl: 60s, max_ttl: 300s}}\n\
         sessions: {{fingerprint: {{mode: off}}}}\n",
        nodes.join(", ")
    )
}

/// Writes a session for alice on the master that owns its key, choosing
/// an id whose key is on none of the nodes in `avoid`; the id and its
/// owner's index. Each node is asked directly: only the owner takes it.
fn session_on_other_than(cluster: &RedisCluster, avoid: &[usize]) -> (String, usize) {
    let expires = (tokens::now() + 3600).to_string();
    for _ in 0..200 {
        let sid = session_id();
        let key = format!("session:{sid}");
        let fields = [
            "HSET",
            key.as_str(),
            "user_id",
            "alice",
            "expires_at",
            expires.as_str(),
        ];
        let owner = (0..cluster.nodes.len())
            .filter(|i| !avoid.contains(i))
            .find(|&i| cluster.nodes[i].cli(&fields).parse::<u64>().is_ok());
        if let Some(owner) = owner {
            return (sid, owner);
        }
    }
    panic!("no session id whose key avoids nodes {avoid:?} in 200 tries");
}

/// Marks a session revoked on its owner, without publishing.
fn mark_revoked(cluster: &RedisCluster, owner: usize, sid: &str) {
    let out = cluster.nodes[owner].cli(&["HSET", &format!("session:{sid}"), "revoked", "1"]);
    assert_eq!(out, "1", "HSET revoked on node {owner}");
}

fn publish(cluster: &RedisCluster, node: usize, sid: &str) {
    let out =
        cluster.nodes[node].cli(&["PUBLISH", INVALIDATION_CHANNEL, &format!("session:{sid}")]);
    assert!(
        out.parse::<u64>().is_ok(),
        "PUBLISH on node {node}: {out:?}"
    );
}

async fn session_verdict(client: &AuthorizationClient<Channel>, sid: &str) -> (i32, String) {
    verdict(&check(client, &[("x-session-id", sid)]).await)
}

/// Polls every 5 ms until the session is no longer allowed, for at most
/// `limit`; the last verdict and how long it took.
async fn until_denied(
    client: &AuthorizationClient<Channel>,
    sid: &str,
    limit: Duration,
) -> ((i32, String), Duration) {
    let started = Instant::now();
    loop {
        let resp = check(client, &[("x-session-id", sid)]).await;
        if authz::status(&resp) != 200 || started.elapsed() > limit {
            return (verdict(&resp), started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Subscribers to the invalidation channel on one node (`PUBSUB NUMSUB`
/// counts only the node's own in a cluster).
fn listeners(cluster: &RedisCluster, node: usize) -> u64 {
    let out = cluster.nodes[node].cli(&["PUBSUB", "NUMSUB", INVALIDATION_CHANNEL]);
    out.lines()
        .last()
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

/// Waits (at most 10 s) until each listed node has exactly its count of
/// ward's subscriptions.
async fn wait_listeners(cluster: &RedisCluster, want: &[(usize, u64)]) {
    let started = Instant::now();
    loop {
        let have: Vec<(usize, u64)> = want
            .iter()
            .map(|&(n, _)| (n, listeners(cluster, n)))
            .collect();
        if have == want {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "subscriptions per node (node, count): {have:?}, want {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A session on a live master other than `avoid`, checked once so ward
/// holds it in its cache.
async fn cached_session(ward: &InProc, cluster: &RedisCluster, avoid: &[usize]) -> (String, usize) {
    let (sid, owner) = session_on_other_than(cluster, avoid);
    let first = session_verdict(&ward.client, &sid).await;
    assert_eq!(first, (200, "allowed".into()), "session on node {owner}");
    (sid, owner)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_published_on_any_master_reaches_ward_from_that_master() {
    let cluster = RedisCluster::start().await;
    let ward = InProc::start(&config(&cluster)).await;
    // The primary subscription on node 0, one fast-path link on each other
    // master, none twice on node 0.
    wait_listeners(&cluster, &[(0, 1), (1, 1), (2, 1)]).await;
    tokio::time::sleep(Duration::from_millis(100)).await; // the first Reset applied

    for publisher in 0..cluster.nodes.len() {
        // The key off node 0, so its read never waits for node 0.
        let (sid, owner) = cached_session(&ward, &cluster, &[0]).await;
        mark_revoked(&cluster, owner, &sid);
        // Node 0 frozen: nothing crosses the bus to the primary
        // subscription, so only a subscription on the publishing master
        // can bring the message while it sleeps (well under the 2 s node
        // timeout, so the cluster stays up).
        let freeze = publisher != 0;
        if freeze {
            cluster.nodes[0].signal("STOP");
        }
        publish(&cluster, publisher, &sid);
        let (deny, took) = until_denied(&ward.client, &sid, Duration::from_millis(1000)).await;
        if freeze {
            cluster.nodes[0].signal("CONT");
        }
        assert_eq!(
            deny,
            (401, "session_revoked".into()),
            "published on node {publisher} (key on node {owner}), node 0 frozen: {freeze}; after {took:?}"
        );
        println!("published on node {publisher}: denied after {took:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_master_costs_only_its_fast_path_link() {
    let mut cluster = RedisCluster::start_with(&["--cluster-require-full-coverage", "no"]).await;
    let ward = InProc::start(&config(&cluster)).await;
    wait_listeners(&cluster, &[(0, 1), (1, 1), (2, 1)]).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Held in ward's cache: one on node 2, which dies; one on node 1
    // revoked behind ward's back (no message), which only a Reset shows.
    let (on_dead, _) = cached_session(&ward, &cluster, &[0, 1]).await;
    let (unannounced, owner) = cached_session(&ward, &cluster, &[0, 2]).await;
    mark_revoked(&cluster, owner, &unannounced);

    cluster.nodes[2].stop();
    // The fast path retries node 2 on its own (with a backoff) and sends no
    // Reset: the primary subscription on node 0 lost nothing.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let held = [&on_dead, &unannounced];
    for sid in held {
        let answer = session_verdict(&ward.client, sid).await;
        assert_eq!(answer, (200, "allowed".into()), "still cached, no Reset");
    }
    // Meanwhile, revocations published on the live masters are honoured.
    for publisher in [0, 1] {
        let (sid, owner) = cached_session(&ward, &cluster, &[2]).await;
        mark_revoked(&cluster, owner, &sid);
        publish(&cluster, publisher, &sid);
        let (deny, took) = until_denied(&ward.client, &sid, Duration::from_secs(1)).await;
        assert_eq!(
            deny,
            (401, "session_revoked".into()),
            "node {publisher}, {took:?}"
        );
    }
    assert_eq!(listeners(&cluster, 0), 1, "the primary stayed on node 0");
    assert_eq!(listeners(&cluster, 1), 1, "node 1's link untouched");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_the_primary_node_resubscribes_elsewhere_with_a_reset() {
    let mut cluster = RedisCluster::start_with(&["--cluster-require-full-coverage", "no"]).await;
    let ward = InProc::start(&config(&cluster)).await;
    wait_listeners(&cluster, &[(0, 1), (1, 1), (2, 1)]).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (unannounced, owner) = cached_session(&ward, &cluster, &[0]).await;
    mark_revoked(&cluster, owner, &unannounced);
    let answer = session_verdict(&ward.client, &unannounced).await;
    assert_eq!(answer, (200, "allowed".into()), "cached: no message yet");

    cluster.nodes[0].stop();
    // The primary subscription moves to node 1 (the next seed) and sends
    // Reset: what was published while it was away may be lost, so the
    // cache is cleared and the revocation read from the store.
    let (deny, took) = until_denied(&ward.client, &unannounced, Duration::from_secs(5)).await;
    assert_eq!(deny, (401, "session_revoked".into()), "after {took:?}");
    // One subscription on each live master: the fast path left node 1 to
    // the primary.
    wait_listeners(&cluster, &[(1, 1), (2, 1)]).await;
    for publisher in [1, 2] {
        let (sid, owner) = cached_session(&ward, &cluster, &[0]).await;
        mark_revoked(&cluster, owner, &sid);
        publish(&cluster, publisher, &sid);
        let (deny, took) = until_denied(&ward.client, &sid, Duration::from_secs(1)).await;
        assert_eq!(
            deny,
            (401, "session_revoked".into()),
            "node {publisher}, {took:?}"
        );
    }
}
