//! How fast a revocation reaches every ward: two ward processes on one
//! Redis both hold a session in their cache (`store_ttl: 60s`, so only the
//! invalidation message can explain a quick deny); the session is revoked
//! the way the contract says (set `revoked`, publish the key on
//! `ward:invalidate`), and each ward is polled until it denies.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use std::time::{Duration, Instant};
use support::authz::{self, check, hset, percentile, session_id, verdict};
use support::inproc::InProc;
use support::redis::RedisServer;
use support::tokens;
use support::ward::Ward;
use tonic::transport::Channel;
use ward::config::RedisConfig;
use ward::store::Backend;
use ward::store::keys::KeyNames;
use ward::store::records::Records;
use ward::store::redis::RedisStore;

const ROUNDS: usize = 30;
const LIMIT: Duration = Duration::from_secs(2);

fn config(redis: &RedisServer) -> String {
    format!(
        "log: {{format: text, level: warn}}\n\
         store:\n  redis: {{url: \"{}\"}}\n\
         cache: {{store_ttl: 60s, negative_ttl: 5s}}\n\
         sessions: {{fingerprint: {{mode: off}}}}\n",
        redis.url()
    )
}

/// A store client for the test itself (the login service's side).
async fn login_service(redis: &RedisServer) -> RedisStore {
    let config = format!("url: \"{}\"\ncommand_timeout: 1s", redis.url());
    RedisStore::connect(&serde_yaml_ng::from_str::<RedisConfig>(&config).unwrap())
        .await
        .unwrap()
}

fn write_session(redis: &RedisServer, sid: &str) {
    let expires = (tokens::now() + 3600).to_string();
    hset(
        redis,
        &format!("session:{sid}"),
        &[("user_id", "alice"), ("expires_at", &expires)],
    );
}

/// Polls every ~2 ms from `start` until `sid` is denied; the time it took.
async fn time_to_deny(
    client: AuthorizationClient<Channel>,
    sid: String,
    start: Instant,
) -> Result<Duration, String> {
    loop {
        let resp = check(&client, &[("x-session-id", &sid)]).await;
        match verdict(&resp) {
            (200, _) if start.elapsed() < LIMIT => {}
            (200, _) => return Err(format!("still allowed after {LIMIT:?}")),
            (401, r) if r == "session_revoked" => return Ok(start.elapsed()),
            other => return Err(format!("unexpected {other:?}")),
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

async fn assert_allowed(clients: &[AuthorizationClient<Channel>], sid: &str) {
    for (i, client) in clients.iter().enumerate() {
        let resp = check(client, &[("x-session-id", sid)]).await;
        assert_eq!(verdict(&resp), (200, "allowed".into()), "ward {i}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_revocation_reaches_every_ward_quickly() {
    let redis = RedisServer::start().await;
    let wards = [
        Ward::start(&config(&redis)).await,
        Ward::start(&config(&redis)).await,
    ];
    let clients = [
        authz::connect(wards[0].grpc_addr).await,
        authz::connect(wards[1].grpc_addr).await,
    ];
    let store = login_service(&redis).await;
    let keys = KeyNames::default();
    let records = Records::new(&store, &keys);

    // Warm up: the first revocation also proves both wards are subscribed
    // (a ward that subscribes late drops its whole cache, which would
    // look like a fast invalidation without being one).
    let warm = session_id();
    write_session(&redis, &warm);
    assert_allowed(&clients, &warm).await;
    assert!(records.revoke_session(&warm).await.unwrap());
    for client in &clients {
        let start = Instant::now();
        time_to_deny(client.clone(), warm.clone(), start)
            .await
            .expect("warm-up revocation");
    }

    let mut per_ward: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    for round in 0..ROUNDS {
        let sid = session_id();
        write_session(&redis, &sid);
        assert_allowed(&clients, &sid).await;
        assert_allowed(&clients, &sid).await; // now served from each cache
        let start = Instant::now();
        assert!(records.revoke_session(&sid).await.unwrap()); // HSET + PUBLISH
        let (a, b) = tokio::join!(
            time_to_deny(clients[0].clone(), sid.clone(), start),
            time_to_deny(clients[1].clone(), sid.clone(), start),
        );
        for (i, r) in [a, b].into_iter().enumerate() {
            let took = r.unwrap_or_else(|e| panic!("round {round}, ward {i}: {e}"));
            per_ward[i].push(took.as_secs_f64() * 1000.0);
        }
    }

    // Each ward read each session from Redis once (plus the warm-up), not
    // once per check: the allows really came from the cache.
    for (i, ward) in wards.iter().enumerate() {
        let hits = authz::metric(
            ward.admin_addr,
            "ward_cache_requests_total",
            &[("cache", "store"), ("result", "hit")],
        )
        .await;
        assert!(hits >= ROUNDS as f64, "ward {i}: {hits} cache hits");
    }
    let mut all: Vec<f64> = per_ward.iter().flatten().copied().collect();
    let (p50, p99, max) = (
        percentile(&mut all, 50.0),
        percentile(&mut all, 99.0),
        percentile(&mut all, 100.0),
    );
    for (i, samples) in per_ward.iter_mut().enumerate() {
        println!(
            "ward {i}: revocation to deny p50 {:.1} ms, p99 {:.1} ms",
            percentile(samples, 50.0),
            percentile(samples, 99.0)
        );
    }
    println!(
        "revocation to deny, {} samples over {ROUNDS} sessions x 2 wards: p50 {p50:.1} ms, p99 {p99:.1} ms, max {max:.1} ms",
        all.len()
    );
    assert!(p99 < 100.0, "p99 {p99:.1} ms");
}

/// A revocation published while ward is reading that very session must
/// not be lost: the read may return the record as it was before the
/// revocation, but the invalidation that follows must then evict it.
///
/// To make the read slow enough to race reliably, the session carries a
/// large unmapped field (4 MiB): Redis writes the reply in chunks, so the
/// small PUBLISH overtakes it. On a loaded machine the same window opens
/// for an ordinary session.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_revocation_racing_a_read_is_not_lost() {
    let redis = RedisServer::start().await;
    let ward = InProc::start(&format!(
        "log: {{format: text, level: warn}}\n\
         store:\n  redis: {{url: \"{}\", command_timeout: 1s}}\n\
         cache: {{store_ttl: 60s, negative_ttl: 5s}}\n\
         sessions: {{fingerprint: {{mode: off}}}}\n",
        redis.url()
    ))
    .await;
    let store = login_service(&redis).await;
    let keys = KeyNames::default();
    let records = Records::new(&store, &keys);
    let blob = "x".repeat(4 << 20);
    let expires = (tokens::now() + 3600).to_string();
    for trial in 0..12u64 {
        let sid = session_id();
        let key = format!("session:{sid}");
        let fields = [
            ("user_id", "alice"),
            ("expires_at", expires.as_str()),
            ("blob", blob.as_str()),
        ];
        store.put_hash(&key, &fields, None).await.unwrap();
        // A first check makes ward read the session; the revocation is
        // written and published while that read is in flight.
        let (client, s) = (ward.client.clone(), sid.clone());
        let read = tokio::spawn(async move { check(&client, &[("x-session-id", &s)]).await });
        tokio::time::sleep(Duration::from_millis(trial % 4)).await;
        assert!(records.revoke_session(&sid).await.unwrap()); // HSET + PUBLISH
        let revoked = Instant::now();
        let first = verdict(&read.await.unwrap());
        // Long after the invalidation arrived (p99 is a few ms), every
        // check must see the revocation.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let after = verdict(&check(&ward.client, &[("x-session-id", &sid)]).await);
        if after.0 == 200 {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let later = verdict(&check(&ward.client, &[("x-session-id", &sid)]).await);
            panic!(
                "trial {trial}: session revoked and published, yet still {after:?} {:?} later \
                 and {later:?} {:?} later (Redis: revoked={}); the racing read answered {first:?}. \
                 The invalidation arrived while the read was in flight, found nothing to evict, \
                 and the read then cached the pre-revocation record for cache.store_ttl.",
                Duration::from_millis(200),
                revoked.elapsed(),
                redis.cli(&["HGET", &key, "revoked"]),
            );
        }
        assert_eq!(after, (401, "session_revoked".into()), "trial {trial}");
    }
}
