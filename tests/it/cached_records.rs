//! A session or API key served from ward's store cache is judged afresh on
//! every check: ward keeps the parsed record and its identity beside the
//! cached copy (so a hit does not parse it again), but expiry is checked
//! against each check's clock, the fingerprint against each request, and
//! a record changed in the store (invalidation) is read and parsed again.
//!
//! Library-level, over the embedded store, with `now` chosen per call and
//! the cache's own clock (`store_ttl`, `negative_ttl`) a manual one.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support::inproc::ward_request;
use std::sync::Arc;
use std::time::Duration;
use ward::clock::ManualClock;
use ward::config::Config;
use ward::decision::Decision;
use ward::jwks::KeyStore;
use ward::lookup::Lookups;
use ward::metrics::Metrics;
use ward::reason::Reason;
use ward::store::{Backend, Store};
use ward::wiring::{self, ServerChecker};

const SID: &str = "q2VsbG8td29ybGQtc2Vzc2lvbg";

struct Bed {
    config: Config,
    store: Store,
    lookups: Arc<Lookups>,
    metrics: Arc<Metrics>,
    checker: ServerChecker,
    /// The clock of the cache windows: still until a test advances it.
    time: ManualClock,
}

fn bed() -> Bed {
    let config = Config::default();
    let store = Store::Memory(Arc::default());
    let metrics = Arc::new(Metrics::new().unwrap());
    let time = ManualClock::new();
    let lookups = Arc::new(Lookups::with_clock(
        &config,
        store.clone(),
        metrics.clone(),
        time.clock(),
    ));
    let keys = KeyStore::new(&config.jwt).unwrap();
    let checker = wiring::checker(&config, keys, lookups.clone(), metrics.clone()).unwrap();
    Bed {
        config,
        store,
        lookups,
        metrics,
        checker,
        time,
    }
}

fn headers(credential: (&str, &str), agent: &str) -> Vec<(String, String)> {
    Vec::from([
        (credential.0.to_string(), credential.1.to_string()),
        ("user-agent".to_string(), agent.to_string()),
    ])
}

impl Bed {
    async fn decide(&self, headers: &[(String, String)], now: u64) -> Result<String, Reason> {
        match self.checker.check(&ward_request(headers), now).await {
            Decision::Allow(allowed) => Ok(allowed.identity.user_id().to_string()),
            Decision::Deny(deny) => Err(deny.reason),
            Decision::AllowAnonymous { .. } => panic!("no public policy here"),
        }
    }

    async fn put(&self, key: &str, fields: &[(&str, &str)]) {
        self.store.put_hash(key, fields, None).await.unwrap();
        self.lookups.invalidate(key).await;
    }

    fn store_reads(&self) -> u64 {
        self.metrics.store_cache_misses.get()
    }
}

#[tokio::test]
async fn a_cached_session_is_checked_for_expiry_and_device_on_every_hit() {
    let bed = bed();
    let cookie = ("cookie", &*format!("session_id={SID}"));
    let laptop = headers(cookie, "laptop");
    let phone = headers(cookie, "phone");
    let fingerprint = {
        let req = ward_request(&laptop);
        ward::fingerprint::of_request(
            &bed.config.sessions.fingerprint,
            ward::fingerprint::Version::V2,
            req.source_ip,
            |name| req.header(name),
        )
    };
    let key = format!("session:{SID}");
    bed.put(
        &key,
        &[
            ("user_id", "alice"),
            ("expires_at", "1000"),
            ("fingerprint", &fingerprint),
        ],
    )
    .await;

    assert_eq!(bed.decide(&laptop, 900).await, Ok("alice".into()));
    assert_eq!(bed.store_reads(), 1);
    assert_eq!(bed.decide(&laptop, 999).await, Ok("alice".into()));
    assert_eq!(
        bed.decide(&phone, 999).await,
        Err(Reason::FingerprintMismatch)
    );
    assert_eq!(bed.decide(&laptop, 1000).await, Err(Reason::SessionExpired));
    assert_eq!(bed.store_reads(), 1, "all but the first from the cache");

    // A changed record is read (and parsed) again.
    bed.put(
        &key,
        &[
            ("user_id", "alice"),
            ("fingerprint", &fingerprint),
            ("revoked", "1"),
        ],
    )
    .await;
    assert_eq!(bed.decide(&laptop, 900).await, Err(Reason::SessionRevoked));
    bed.put(&key, &[("user_id", "bob"), ("fingerprint", &fingerprint)])
        .await;
    assert_eq!(bed.decide(&laptop, 5000).await, Ok("bob".into()));
    assert_eq!(bed.store_reads(), 3);
}

#[tokio::test]
async fn a_cached_session_with_a_bad_field_stays_denied() {
    let bed = bed();
    let cookie = headers(("cookie", &format!("session_id={SID}")), "laptop");
    let key = format!("session:{SID}");
    bed.put(&key, &[("user_id", "alice"), ("expires_at", "soon")])
        .await;
    for now in [1, 2] {
        assert_eq!(bed.decide(&cookie, now).await, Err(Reason::InvalidSession));
    }
    bed.put(&key, &[("user_id", "alice"), ("roles", "a\r\nx-admin: 1")])
        .await;
    for now in [1, 2] {
        assert_eq!(bed.decide(&cookie, now).await, Err(Reason::InvalidSession));
    }
    assert_eq!(bed.store_reads(), 2);
}

#[tokio::test]
async fn a_cached_api_key_is_checked_for_expiry_on_every_hit() {
    let bed = bed();
    let key = ward::apikey::generate(&bed.config.api_keys.prefix).unwrap();
    let api = headers(("x-api-key", &key), "bot");
    let record = format!("apikey:{}", ward::apikey::hash_hex(&key));
    let fields = [("key_id", "key_1"), ("user_id", "bot-1")];
    bed.put(&record, &[fields[0], fields[1], ("expires_at", "1000")])
        .await;

    assert_eq!(bed.decide(&api, 900).await, Ok("bot-1".into()));
    assert_eq!(bed.decide(&api, 999).await, Ok("bot-1".into()));
    assert_eq!(bed.decide(&api, 1000).await, Err(Reason::ApiKeyExpired));
    assert_eq!(bed.store_reads(), 1);

    bed.put(&record, &[fields[0], fields[1], ("revoked", "true")])
        .await;
    assert_eq!(bed.decide(&api, 900).await, Err(Reason::ApiKeyRevoked));
    assert_eq!(bed.store_reads(), 2);
}

#[tokio::test]
async fn a_read_is_fresh_for_store_ttl_and_a_miss_for_negative_ttl() {
    let bed = bed();
    let (store_ttl, negative_ttl) = (bed.config.cache.store_ttl, bed.config.cache.negative_ttl);
    let ms = Duration::from_millis;
    let cookie = headers(("cookie", &format!("session_id={SID}")), "laptop");
    let key = format!("session:{SID}");
    let now = 900;

    // Not there: "not found" is kept for negative_ttl, so a write that
    // publishes nothing is seen only once that is over.
    assert_eq!(bed.decide(&cookie, now).await, Err(Reason::UnknownSession));
    bed.store
        .put_hash(&key, &[("user_id", "alice")], None)
        .await
        .unwrap();
    bed.time.advance(negative_ttl - ms(1));
    assert_eq!(bed.decide(&cookie, now).await, Err(Reason::UnknownSession));
    assert_eq!(bed.store_reads(), 1);
    bed.time.advance(ms(1));
    assert_eq!(bed.decide(&cookie, now).await, Ok("alice".into()));
    assert_eq!(bed.store_reads(), 2);

    // A record is kept for store_ttl, then read again.
    bed.store
        .put_hash(&key, &[("user_id", "bob")], None)
        .await
        .unwrap();
    bed.time.advance(store_ttl - ms(1));
    assert_eq!(bed.decide(&cookie, now).await, Ok("alice".into()));
    assert_eq!(bed.store_reads(), 2);
    bed.time.advance(ms(1));
    assert_eq!(bed.decide(&cookie, now).await, Ok("bob".into()));
    assert_eq!(bed.store_reads(), 3);
}
