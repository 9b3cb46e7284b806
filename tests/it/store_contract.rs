//! The store contract: one suite of Redis semantics, written once over
//! `impl Backend`, run against the in-process store and a real Redis. Then
//! the Redis-only behaviour: deadlines, the breaker, recovery, auth,
//! invalidation pub/sub, cluster and Sentinel modes.
//!
//! Every Redis test starts its own throwaway `redis-server` on a free port.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::time::{Duration, Instant};
use support::redis::RedisServer;
use ward::config::{RedisConfig, RedisMode, SecretSource};
use ward::store::keys::INVALIDATION_CHANNEL;
use ward::store::redis::RedisStore;
use ward::store::{Backend, Invalidation, StoreError};

// ---------------------------------------------------------------------------
// The contract, once.

async fn missing_keys_read_as_absent(s: &impl Backend) {
    assert_eq!(s.hash("nope").await, Ok(None));
    assert_eq!(s.string("nope").await, Ok(None));
    assert_eq!(s.exists("nope").await, Ok(false));
    assert_eq!(s.set_members("nope").await, Ok(vec![]));
    assert_eq!(s.delete("nope").await, Ok(false));
}

async fn put_hash_then_hash(s: &impl Backend) {
    let ttl = Duration::from_secs(10);
    s.put_hash("h", &[("a", "1"), ("b", "2")], Some(ttl))
        .await
        .unwrap();
    let hash = s.hash("h").await.unwrap().expect("hash exists");
    assert_eq!(hash.fields, fields(&[("a", "1"), ("b", "2")]));
    let left = hash.ttl.expect("ttl");
    assert!(
        left <= ttl && left > ttl - Duration::from_secs(2),
        "ttl {left:?}"
    );
    assert_eq!(s.exists("h").await, Ok(true));

    s.put_hash("forever", &[("a", "1")], None).await.unwrap();
    assert_eq!(s.hash("forever").await.unwrap().unwrap().ttl, None);
}

async fn put_hash_replaces_everything(s: &impl Backend) {
    s.put_hash(
        "h",
        &[("a", "1"), ("b", "2")],
        Some(Duration::from_secs(10)),
    )
    .await
    .unwrap();
    s.put_hash("h", &[("c", "3")], None).await.unwrap();
    let hash = s.hash("h").await.unwrap().unwrap();
    assert_eq!(hash.fields, fields(&[("c", "3")]));
    assert_eq!(hash.ttl, None, "the old TTL went with the old hash");

    // Even a key of another type.
    s.put_string("k", "v", None).await.unwrap();
    s.put_hash("k", &[("a", "1")], None).await.unwrap();
    assert_eq!(
        s.hash("k").await.unwrap().unwrap().fields,
        fields(&[("a", "1")])
    );
}

async fn hash_expires(s: &impl Backend) {
    s.put_hash("h", &[("a", "1")], Some(Duration::from_millis(200)))
        .await
        .unwrap();
    assert!(s.hash("h").await.unwrap().is_some());
    eventually_gone(s, "h").await;
    assert_eq!(s.hash("h").await, Ok(None));
}

async fn set_field_if_exists(s: &impl Backend) {
    assert_eq!(s.set_field_if_exists("h", "a", "1").await, Ok(false));
    assert_eq!(s.exists("h").await, Ok(false), "must not create the key");

    s.put_hash(
        "h",
        &[("a", "1"), ("b", "2")],
        Some(Duration::from_secs(10)),
    )
    .await
    .unwrap();
    assert_eq!(s.set_field_if_exists("h", "a", "9").await, Ok(true));
    assert_eq!(s.set_field_if_exists("h", "c", "3").await, Ok(true));
    let hash = s.hash("h").await.unwrap().unwrap();
    assert_eq!(hash.fields, fields(&[("a", "9"), ("b", "2"), ("c", "3")]));
    assert!(hash.ttl.is_some(), "the TTL is kept");
}

async fn expire_field_if_exists(s: &impl Backend) {
    let day = Duration::from_secs(86_400);
    assert_eq!(
        s.expire_field_if_exists("h", "a", "1", day).await,
        Ok(false)
    );
    assert_eq!(s.exists("h").await, Ok(false), "must not create the key");
    // No TTL: the cap becomes the TTL.
    s.put_hash("h", &[("a", "1"), ("b", "2")], None)
        .await
        .unwrap();
    assert_eq!(s.expire_field_if_exists("h", "a", "9", day).await, Ok(true));
    let hash = s.hash("h").await.unwrap().unwrap();
    assert_eq!(hash.fields, fields(&[("a", "9"), ("b", "2")]));
    let ttl = hash.ttl.unwrap();
    assert!(ttl <= day && ttl > day - Duration::from_secs(5), "{ttl:?}");
    // A shorter TTL stays.
    s.put_hash("h", &[("a", "1")], Some(Duration::from_secs(10)))
        .await
        .unwrap();
    assert_eq!(s.expire_field_if_exists("h", "a", "2", day).await, Ok(true));
    assert!(s.hash("h").await.unwrap().unwrap().ttl.unwrap() <= Duration::from_secs(10));
    // A longer one is cut, and the key then goes.
    s.expire_field_if_exists("h", "a", "3", Duration::from_millis(200))
        .await
        .unwrap();
    eventually_gone(s, "h").await;
    s.put_string("str", "v", None).await.unwrap();
    assert!(matches!(
        s.expire_field_if_exists("str", "a", "1", day).await,
        Err(StoreError::BadRecord(_))
    ));
}

async fn strings_with_and_without_ttl(s: &impl Backend) {
    s.put_string("k", "v", None).await.unwrap();
    assert_eq!(s.string("k").await, Ok(Some("v".into())));
    assert_eq!(s.exists("k").await, Ok(true));

    s.put_string("t", "v", Some(Duration::from_millis(200)))
        .await
        .unwrap();
    assert_eq!(s.string("t").await, Ok(Some("v".into())));
    eventually_gone(s, "t").await;
    assert_eq!(s.string("t").await, Ok(None));

    // Overwriting without a TTL makes the key permanent again.
    s.put_string("p", "1", Some(Duration::from_millis(200)))
        .await
        .unwrap();
    s.put_string("p", "2", None).await.unwrap();
    // Real time: the contract runs on redis-server too (real Redis TTL).
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(s.string("p").await, Ok(Some("2".into())));
}

async fn delete_says_whether_it_existed(s: &impl Backend) {
    s.put_string("k", "v", None).await.unwrap();
    s.put_hash("h", &[("a", "1")], None).await.unwrap();
    s.set_add("s", "m").await.unwrap();
    for key in ["k", "h", "s"] {
        assert_eq!(s.delete(key).await, Ok(true), "{key}");
        assert_eq!(s.delete(key).await, Ok(false), "{key}");
        assert_eq!(s.exists(key).await, Ok(false), "{key}");
    }
}

async fn sets(s: &impl Backend) {
    for member in ["b", "a", "c", "a"] {
        s.set_add("s", member).await.unwrap();
    }
    assert_eq!(s.set_members("s").await, Ok(strings(&["a", "b", "c"])));
    s.set_remove("s", "b").await.unwrap();
    s.set_remove("s", "not-there").await.unwrap();
    s.set_remove("missing-set", "x").await.unwrap();
    assert_eq!(s.set_members("s").await, Ok(strings(&["a", "c"])));
    s.set_remove("s", "a").await.unwrap();
    s.set_remove("s", "c").await.unwrap();
    assert_eq!(s.exists("s").await, Ok(false), "an empty set disappears");
    assert_eq!(s.set_members("s").await, Ok(vec![]));
}

async fn an_index_set_only_ever_extends_its_ttl(s: &impl Backend) {
    let short = Duration::from_millis(200);
    let long = Duration::from_secs(30);
    // A longer TTL raises it; a shorter one never lowers it.
    s.set_add_for("up", "a", short).await.unwrap();
    s.set_add_for("up", "b", long).await.unwrap();
    s.set_add_for("down", "a", long).await.unwrap();
    s.set_add_for("down", "b", short).await.unwrap();
    // A set written without a TTL gets one; a short one alone expires.
    s.set_add("plain", "a").await.unwrap();
    s.set_add_for("plain", "b", short).await.unwrap();
    eventually_gone(s, "plain").await;
    for key in ["up", "down"] {
        assert_eq!(s.set_members(key).await, Ok(strings(&["a", "b"])), "{key}");
    }
    s.put_string("str", "v", None).await.unwrap();
    let r = s.set_add_for("str", "m", long).await;
    assert!(matches!(r, Err(StoreError::BadRecord(_))), "{r:?}");
}

async fn a_claim_is_won_once_until_it_expires(s: &impl Backend) {
    let long = Duration::from_secs(30);
    assert_eq!(s.claim("jti", "first", long).await, Ok(true));
    // The same claimant again (a retried request) is still its own claim.
    assert_eq!(s.claim("jti", "first", long).await, Ok(true));
    assert_eq!(s.claim("jti", "second", long).await, Ok(false));
    assert_eq!(s.string("jti").await, Ok(Some("first".into())));
    s.claim("brief", "first", Duration::from_millis(200))
        .await
        .unwrap();
    eventually_gone(s, "brief").await;
    assert_eq!(s.claim("brief", "second", long).await, Ok(true));
    s.set_add("set", "m").await.unwrap();
    let r = s.claim("set", "x", long).await;
    assert!(matches!(r, Err(StoreError::BadRecord(_))), "{r:?}");
}

async fn wrong_type_is_a_bad_record(s: &impl Backend) {
    s.put_string("str", "v", None).await.unwrap();
    s.set_add("set", "m").await.unwrap();
    s.put_hash("hash", &[("a", "1")], None).await.unwrap();
    let is_bad_record = |r: Result<(), StoreError>, what: &str| {
        assert!(matches!(r, Err(StoreError::BadRecord(_))), "{what}: {r:?}");
    };
    is_bad_record(s.hash("str").await.map(drop), "hash on a string");
    is_bad_record(
        s.set_field_if_exists("str", "a", "1").await.map(drop),
        "hset on a string",
    );
    is_bad_record(s.set_add("str", "m").await, "sadd on a string");
    is_bad_record(s.set_remove("hash", "m").await, "srem on a hash");
    is_bad_record(s.set_members("hash").await.map(drop), "smembers on a hash");
    is_bad_record(s.string("set").await.map(drop), "get on a set");
    // Nothing was changed by the failed calls.
    assert_eq!(s.string("str").await, Ok(Some("v".into())));
}

/// Polls until `key` is gone (bounded: TTLs in the suite are 200 ms).
async fn eventually_gone(s: &impl Backend, key: &str) {
    let started = Instant::now();
    while s.exists(key).await.unwrap() {
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{key} never expired"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn fields(pairs: &[(&str, &str)]) -> ward::fields::Fields {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// Many reads at once (as a burst of cache misses makes them; Redis sends
/// them as one pipeline): each gets its own answer, and a key of the wrong
/// type fails only its own read.
async fn concurrent_reads_each_get_their_own_answer(s: &impl Backend) {
    for i in 0..40 {
        let ttl = (i % 2 == 0).then(|| Duration::from_secs(60));
        let value = i.to_string();
        s.put_hash(&format!("h{i}"), &[("n", value.as_str())], ttl)
            .await
            .unwrap();
    }
    s.put_string("str", "v", None).await.unwrap();
    let keys: Vec<String> = (0..40)
        .map(|i| format!("h{i}"))
        .chain(["missing".to_string(), "str".to_string()])
        .collect();
    let reads = keys.iter().map(|k| s.hash(k));
    let results = join_all(reads).await;
    for (i, r) in results.iter().take(40).enumerate() {
        let hash = r.as_ref().unwrap().as_ref().unwrap();
        assert_eq!(hash.fields, fields(&[("n", &i.to_string())]), "h{i}");
        assert_eq!(hash.ttl.is_some(), i % 2 == 0, "h{i} ttl");
    }
    assert_eq!(results[40], Ok(None), "missing");
    assert!(
        matches!(results[41], Err(StoreError::BadRecord(_))),
        "{:?}",
        results[41]
    );
}

/// Polls every future together until all are done (no extra crate).
async fn join_all<F: std::future::Future>(futures: impl Iterator<Item = F>) -> Vec<F::Output> {
    let mut futures: Vec<_> = futures.map(Box::pin).collect();
    let mut out: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (f, slot) in futures.iter_mut().zip(out.iter_mut()) {
            if slot.is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => *slot = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter().flatten().collect()
}

macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(&ward::store::memory::MemoryStore::default()).await;
                }
            )*
        }
        mod redis {
            $(
                #[tokio::test]
                async fn $name() {
                    let server = super::RedisServer::start().await;
                    let store = super::standalone(&server.url()).await;
                    super::$name(&store).await;
                }
            )*
        }
    };
}

contract!(
    missing_keys_read_as_absent,
    put_hash_then_hash,
    put_hash_replaces_everything,
    hash_expires,
    set_field_if_exists,
    expire_field_if_exists,
    strings_with_and_without_ttl,
    delete_says_whether_it_existed,
    sets,
    an_index_set_only_ever_extends_its_ttl,
    a_claim_is_won_once_until_it_expires,
    wrong_type_is_a_bad_record,
    concurrent_reads_each_get_their_own_answer,
);

// Publish is delivered: the same message, seen through each store's own
// subscription API.

#[tokio::test]
async fn memory_publish_is_delivered() {
    let store = ward::store::memory::MemoryStore::default();
    let mut sub = store.subscribe();
    store
        .publish(INVALIDATION_CHANNEL, "session:abc")
        .await
        .unwrap();
    let got = tokio::time::timeout(Duration::from_secs(1), sub.recv()).await;
    assert_eq!(
        got.unwrap().unwrap(),
        (INVALIDATION_CHANNEL.to_string(), "session:abc".to_string())
    );
}

#[tokio::test]
async fn redis_publish_is_delivered() {
    let server = RedisServer::start().await;
    let store = standalone(&server.url()).await;
    let mut sub = store.subscribe_invalidations();
    assert_eq!(next(&mut sub).await, Invalidation::Reset);
    store
        .publish(INVALIDATION_CHANNEL, "session:abc")
        .await
        .unwrap();
    assert_eq!(
        next(&mut sub).await,
        Invalidation::Key("session:abc".into())
    );
    // Other channels are not ours.
    store.publish("elsewhere", "x").await.unwrap();
    assert_delivered(&store, &mut sub, "apikey:1").await;
}

// ---------------------------------------------------------------------------
// Redis only.

fn config(url: &str) -> RedisConfig {
    RedisConfig {
        url: Some(url.to_string()),
        mode: RedisMode::Standalone,
        nodes: vec![],
        master_name: None,
        username: None,
        password: None,
        // Generous: the suite runs in parallel on small machines.
        command_timeout: Duration::from_secs(1),
        connect_timeout: Duration::from_secs(1),
        breaker_failures: 3,
        breaker_open_for: Duration::from_millis(200),
    }
}

async fn standalone(url: &str) -> RedisStore {
    RedisStore::connect(&config(url)).await.expect("connect")
}

/// The next invalidation, within 5 s (a resubscribe backs off up to 2 s).
async fn next(sub: &mut tokio::sync::mpsc::Receiver<Invalidation>) -> Invalidation {
    tokio::time::timeout(Duration::from_secs(5), sub.recv())
        .await
        .expect("no invalidation within 5 s")
        .expect("subscriber ended")
}

/// Publishes `key` on the invalidation channel and expects the subscriber
/// to pass it on.
async fn assert_delivered(
    store: &RedisStore,
    sub: &mut tokio::sync::mpsc::Receiver<Invalidation>,
    key: &str,
) {
    store.publish(INVALIDATION_CHANNEL, key).await.unwrap();
    assert_eq!(next(sub).await, Invalidation::Key(key.into()));
}

/// Retries a round trip until it works, for at most `limit`.
async fn until_it_works(store: &RedisStore, limit: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let attempt = async {
            store.put_string("probe", "1", None).await?;
            store.string("probe").await
        };
        match attempt.await {
            Ok(Some(_)) => return started.elapsed(),
            other => assert!(
                started.elapsed() < limit,
                "not working after {limit:?}: {other:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_slow_redis_times_out_at_the_command_deadline() {
    let server = RedisServer::start().await;
    let store = RedisStore::connect(&RedisConfig {
        command_timeout: Duration::from_millis(50),
        ..config(&server.url())
    })
    .await
    .unwrap();
    store.put_string("k", "v", None).await.unwrap();
    assert_eq!(server.cli(&["CLIENT", "PAUSE", "400", "ALL"]), "OK");
    let started = Instant::now();
    let result = store.string("k").await;
    let took = started.elapsed();
    assert_eq!(result, Err(StoreError::Timeout(Duration::from_millis(50))));
    assert!(took < Duration::from_millis(200), "took {took:?}");
}

#[tokio::test]
async fn an_unreadable_value_is_a_bad_record_not_an_outage() {
    use std::os::unix::ffi::OsStrExt;
    let server = RedisServer::start().await;
    let store = standalone(&server.url()).await;
    // A value that is not UTF-8, as a buggy writer might leave.
    let status = std::process::Command::new("redis-cli")
        .args(["-p", &server.port().to_string(), "SET", "bin"])
        .arg(std::ffi::OsStr::from_bytes(b"\xff\xfe"))
        .output()
        .unwrap();
    assert!(status.status.success());
    for _ in 0..5 {
        let result = store.string("bin").await;
        assert!(
            matches!(result, Err(StoreError::BadRecord(_))),
            "{result:?}"
        );
    }
    assert!(
        !store.circuit_open(),
        "a bad record must not trip the breaker"
    );
}

#[tokio::test]
async fn an_outage_fails_then_fails_fast() {
    let mut server = RedisServer::start().await;
    let store = standalone(&server.url()).await;
    store.put_string("k", "v", None).await.unwrap();
    server.stop();
    for i in 0..3 {
        let result = store.string("k").await;
        assert!(
            matches!(
                result,
                Err(StoreError::Unavailable(_) | StoreError::Timeout(_))
            ),
            "call {i}: {result:?}"
        );
    }
    let started = Instant::now();
    assert_eq!(store.string("k").await, Err(StoreError::CircuitOpen));
    assert!(started.elapsed() < Duration::from_millis(5));
    assert!(store.circuit_open());
}

#[tokio::test]
async fn commands_recover_after_a_restart() {
    let mut server = RedisServer::start().await;
    let store = standalone(&server.url()).await;
    store.put_string("k", "v", None).await.unwrap();
    server.stop();
    for _ in 0..4 {
        assert!(store.string("k").await.is_err());
    }
    server.restart().await;
    let took = until_it_works(&store, Duration::from_secs(5)).await;
    eprintln!("recovered {took:?} after the restart");
    assert!(!store.circuit_open());
    assert_eq!(
        store.string("k").await,
        Ok(None),
        "a fresh server (no persistence)"
    );
}

#[tokio::test]
async fn ward_starts_while_redis_is_down() {
    let mut server = RedisServer::start().await;
    server.stop();
    let started = Instant::now();
    let store = standalone(&server.url()).await;
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "connect is bounded"
    );
    let result = store.exists("k").await;
    assert!(
        matches!(
            result,
            Err(StoreError::Unavailable(_) | StoreError::Timeout(_))
        ),
        "{result:?}"
    );
    server.restart().await;
    until_it_works(&store, Duration::from_secs(5)).await;
}

#[tokio::test]
async fn the_subscriber_resets_after_a_restart() {
    let mut server = RedisServer::start().await;
    let store = standalone(&server.url()).await;
    let mut sub = store.subscribe_invalidations();
    assert_eq!(next(&mut sub).await, Invalidation::Reset);
    server.stop();
    server.restart().await;
    assert_eq!(
        next(&mut sub).await,
        Invalidation::Reset,
        "missed messages are assumed"
    );
    until_it_works(&store, Duration::from_secs(5)).await;
    assert_delivered(&store, &mut sub, "session:x").await;
}

#[tokio::test]
async fn password_from_config_overrides_the_url() {
    let server = RedisServer::start_with(&["--requirepass", "s3cret"]).await;
    let with = |password: &str| RedisConfig {
        password: Some(SecretSource {
            value: Some(password.to_string()),
            file: None,
            env: None,
        }),
        ..config(&server.url().replace("redis://", "redis://:wrong@"))
    };
    let store = RedisStore::connect(&with("s3cret")).await.unwrap();
    store.put_string("k", "v", None).await.unwrap();
    assert_eq!(store.string("k").await, Ok(Some("v".into())));
    let mut sub = store.subscribe_invalidations();
    assert_eq!(next(&mut sub).await, Invalidation::Reset);

    let wrong = RedisStore::connect(&with("nope")).await.unwrap();
    let result = wrong.string("k").await;
    assert!(
        matches!(result, Err(StoreError::Unavailable(_))),
        "{result:?}"
    );
    assert!(!format!("{result:?}").contains("s3cret"));
}

#[tokio::test]
async fn a_bad_config_fails_connect() {
    let no_url = RedisConfig {
        url: None,
        ..config("")
    };
    let no_master = RedisConfig {
        mode: RedisMode::Sentinel,
        nodes: vec!["redis://127.0.0.1:1".into()],
        ..config("")
    };
    let no_nodes = RedisConfig {
        mode: RedisMode::Cluster,
        ..config("")
    };
    let bad_url = config("http://:hunter2@example/");
    for (name, cfg) in [
        ("no url", no_url),
        ("no master", no_master),
        ("no nodes", no_nodes),
        ("bad url", bad_url),
    ] {
        match RedisStore::connect(&cfg).await {
            Err(StoreError::Unavailable(e)) => {
                assert!(e.contains("store.redis."), "{name}: {e}");
                assert!(!e.contains("hunter2"), "{name}: {e}");
            }
            other => panic!("{name}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn cluster_mode() {
    let cluster = support::redis::RedisCluster::start().await;
    let store = RedisStore::connect(&RedisConfig {
        mode: RedisMode::Cluster,
        url: None,
        nodes: cluster.urls(),
        ..config("")
    })
    .await
    .unwrap();
    let mut sub = store.subscribe_invalidations();
    assert_eq!(next(&mut sub).await, Invalidation::Reset);
    // Keys spread over the three masters' slots.
    for i in 0..20 {
        let key = format!("session:{i}");
        store
            .put_hash(&key, &[("user_id", "u")], Some(Duration::from_secs(60)))
            .await
            .unwrap();
        assert_eq!(store.set_field_if_exists(&key, "x", "1").await, Ok(true));
        let hash = store.hash(&key).await.unwrap().unwrap();
        assert_eq!(hash.fields, fields(&[("user_id", "u"), ("x", "1")]));
        store
            .set_add(&format!("user_sessions:{i}"), &key)
            .await
            .unwrap();
        store
            .put_string(&format!("revoked_jti:{i}"), "1", None)
            .await
            .unwrap();
    }
    assert_eq!(
        store.set_members("user_sessions:7").await,
        Ok(strings(&["session:7"]))
    );
    assert_eq!(store.string("revoked_jti:13").await, Ok(Some("1".into())));
    let masters_used = cluster
        .nodes
        .iter()
        .filter(|n| n.cli(&["DBSIZE"]).parse::<u32>().unwrap_or(0) > 0)
        .count();
    assert_eq!(masters_used, 3, "keys landed on every master");
    assert_delivered(&store, &mut sub, "session:3").await;
}

#[tokio::test]
async fn sentinel_mode_follows_a_failover() {
    let mut deployment = support::redis::RedisSentinel::start().await;
    let store = RedisStore::connect(&RedisConfig {
        mode: RedisMode::Sentinel,
        url: None,
        nodes: deployment.urls(),
        master_name: Some(support::redis::MASTER_NAME.into()),
        ..config("")
    })
    .await
    .unwrap();
    let mut sub = store.subscribe_invalidations();
    assert_eq!(next(&mut sub).await, Invalidation::Reset);
    store.put_string("before", "1", None).await.unwrap();
    // Let the write reach the replica before the master dies.
    let started = Instant::now();
    while deployment.replica.cli(&["GET", "before"]) != "1" {
        assert!(started.elapsed() < Duration::from_secs(5), "not replicated");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    deployment.kill_master();
    let took = until_it_works(&store, Duration::from_secs(10)).await;
    eprintln!("writes work again {took:?} after the master was killed");
    assert_eq!(deployment.master_port(), Some(deployment.replica.port()));
    assert_eq!(store.string("before").await, Ok(Some("1".into())));
    assert_eq!(
        next(&mut sub).await,
        Invalidation::Reset,
        "resubscribed on the new master"
    );
    store
        .publish(INVALIDATION_CHANNEL, "session:after")
        .await
        .unwrap();
    assert_eq!(
        next(&mut sub).await,
        Invalidation::Key("session:after".into())
    );
}
