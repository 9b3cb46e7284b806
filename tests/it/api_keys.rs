//! API keys over a real Redis: `apikey:{sha256hex}` hashes written with
//! `redis-cli`, as a key-management service in any language would, read
//! by ward over real gRPC. Every test has its own `redis-server`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use sha2::{Digest, Sha256};
use support::authz::{
    self, assert_no_set_and_remove, check, hset, removed, session_id, set_header, verdict,
};
use support::inproc::InProc;
use support::redis::RedisServer;
use support::tokens;
use support::ward::Ward;

fn config(redis: &RedisServer, log: &str) -> String {
    format!(
        "log: {{format: {log}, level: debug}}\nstore:\n  redis: {{url: \"{}\"}}\nsessions: {{fingerprint: {{mode: off}}}}\n",
        redis.url()
    )
}

/// The Redis key for `key`: `apikey:` + lowercase hex SHA-256 of the whole
/// key, computed here as the contract says (not with ward's code).
fn record_key(key: &str) -> String {
    let hex = hex::encode(Sha256::digest(key.as_bytes()));
    assert_eq!(hex, ward::apikey::hash_hex(key));
    format!("apikey:{hex}")
}

/// A new key stored for `user_id` with `extra` fields; returns the key.
fn store_key(redis: &RedisServer, key_id: &str, user_id: &str, extra: &[(&str, &str)]) -> String {
    let key = ward::apikey::generate("ward").unwrap();
    let mut fields = vec![
        ("key_id", key_id),
        ("user_id", user_id),
        ("name", "ci deploy"),
        ("scopes", "read write"),
    ];
    fields.extend_from_slice(extra);
    hset(redis, &record_key(&key), &fields);
    key
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_in_its_header_or_the_authorization_scheme_is_allowed() {
    let redis = RedisServer::start().await;
    let ward = InProc::start(&config(&redis, "text")).await;
    let key = store_key(&redis, "key_7f3a", "svc-billing", &[]);
    let scheme = format!("ApiKey {key}");
    let lower = format!("apikey {key}");
    for via in [
        ("x-api-key", key.as_str()),
        ("authorization", scheme.as_str()),
        ("authorization", lower.as_str()),
    ] {
        let resp = check(
            &ward.client,
            &[
                via,
                ("x-api-key-id", "key_forged"),
                ("x-user-id", "root"),
                ("x-user-roles", "admin"),
            ],
        )
        .await;
        assert_eq!(verdict(&resp), (200, "allowed".into()), "{}", via.0);
        assert_eq!(
            set_header(&resp, "x-user-id").as_deref(),
            Some("svc-billing")
        );
        assert_eq!(
            set_header(&resp, "x-user-scopes").as_deref(),
            Some("read,write")
        );
        assert_eq!(
            set_header(&resp, "x-api-key-id").as_deref(),
            Some("key_7f3a"),
            "the forged id is overwritten"
        );
        assert_eq!(
            set_header(&resp, "x-auth-method").as_deref(),
            Some("apikey")
        );
        assert!(removed(&resp).contains(&"x-user-roles".to_string()));
        assert_no_set_and_remove(&resp);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_key_id_is_removed_when_the_credential_is_not_a_key() {
    let redis = RedisServer::start().await;
    let ward = InProc::start(&config(&redis, "text")).await;
    let sid = session_id();
    hset(&redis, &format!("session:{sid}"), &[("user_id", "alice")]);
    let resp = check(
        &ward.client,
        &[("x-session-id", &sid), ("x-api-key-id", "key_admin")],
    )
    .await;
    assert_eq!(verdict(&resp), (200, "allowed".into()));
    assert_eq!(set_header(&resp, "x-api-key-id"), None);
    assert!(
        removed(&resp).contains(&"x-api-key-id".to_string()),
        "{:?}",
        removed(&resp)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_expired_revoked_and_invalid_keys_are_denied() {
    let redis = RedisServer::start().await;
    let ward = InProc::start(&config(&redis, "text")).await;
    let past = (tokens::now() - 5).to_string();
    let future = (tokens::now() + 3600).to_string();
    let expired = store_key(&redis, "key_old", "svc", &[("expires_at", &past)]);
    let revoked = store_key(&redis, "key_gone", "svc", &[("revoked", "1")]);
    let revoked_later = store_key(
        &redis,
        "key_gone2",
        "svc",
        &[("revoked", "true"), ("expires_at", &future)],
    );
    let no_user = ward::apikey::generate("ward").unwrap();
    hset(&redis, &record_key(&no_user), &[("key_id", "key_orphan")]);
    let cases = [
        (ward::apikey::generate("ward").unwrap(), "unknown_api_key"),
        (expired, "api_key_expired"),
        (revoked, "api_key_revoked"),
        (revoked_later, "api_key_revoked"),
        (no_user, "invalid_api_key"),
    ];
    for (key, want) in &cases {
        for via in [
            ("x-api-key", key.clone()),
            ("authorization", format!("ApiKey {key}")),
        ] {
            let resp = check(&ward.client, &[(via.0, &via.1)]).await;
            assert_eq!(
                verdict(&resp),
                (401, want.to_string()),
                "{want} via {}",
                via.0
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_keys_never_reach_the_store() {
    let mut redis = RedisServer::start().await;
    let ward = InProc::start(&config(&redis, "text")).await;
    redis.stop();
    let good = ward::apikey::generate("ward").unwrap();
    let typo = {
        let mut chars: Vec<char> = good.chars().collect();
        chars[12] = if chars[12] == 'Q' { 'R' } else { 'Q' };
        chars.into_iter().collect::<String>()
    };
    let cases = [
        typo,                                       // bad checksum
        ward::apikey::generate("acme").unwrap(),    // wrong prefix
        good[..good.len() - 1].to_string(),         // truncated
        format!("{good}0"),                         // too long
        good.replacen("ward_", "ward-", 1),         // wrong separator
        "sk-live-0123456789abcdef0123".to_string(), // a foreign key
        "ward_".to_string(),
    ];
    for key in &cases {
        let resp = check(&ward.client, &[("x-api-key", key)]).await;
        assert_eq!(verdict(&resp), (401, "malformed_api_key".into()), "{key}");
        let auth = format!("ApiKey {key}");
        let resp = check(&ward.client, &[("authorization", &auth)]).await;
        assert_eq!(verdict(&resp), (401, "malformed_api_key".into()), "{key}");
    }
    let store_calls = authz::metric(ward.admin_addr, "ward_store_requests_total", &[]).await;
    assert_eq!(
        store_calls, 0.0,
        "a malformed key must not cost a store call"
    );
    // Control: a well-formed key does go to the store, which is down.
    let resp = check(&ward.client, &[("x-api-key", &good)]).await;
    assert_eq!(verdict(&resp), (503, "store_unavailable".into()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_raw_key_never_appears_in_the_logs() {
    let redis = RedisServer::start().await;
    let ward = Ward::start(&config(&redis, "json")).await;
    let client = authz::connect(ward.grpc_addr).await;
    let allowed = store_key(&redis, "key_logged", "svc", &[]);
    let revoked = store_key(&redis, "key_revoked", "svc", &[("revoked", "1")]);
    let unknown = ward::apikey::generate("ward").unwrap();
    let malformed = {
        let mut k = ward::apikey::generate("ward").unwrap();
        k.pop();
        k.push('!');
        k
    };
    let mut keys = Vec::new();
    for (key, want) in [
        (&allowed, 200),
        (&revoked, 401),
        (&unknown, 401),
        (&malformed, 401),
    ] {
        for via in [
            ("x-api-key", key.clone()),
            ("authorization", format!("ApiKey {key}")),
        ] {
            let resp = check(&client, &[(via.0, &via.1), ("x-request-id", "req-apikey")]).await;
            assert_eq!(authz::status(&resp), want, "{via:?}");
        }
        keys.push(key.clone());
    }
    // The deny lines are written before the answer; give the writer a beat.
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let logs = ward.logs();
    assert!(
        logs.matches("\"deny\"").count() + logs.matches(" deny").count() >= 6,
        "expected a log line per deny:\n{logs}"
    );
    // Credentials are named by the first 12 hex digits of their SHA-256.
    let short = &ward::apikey::hash_hex(&unknown)[..12];
    assert!(
        logs.contains(short),
        "the deny names the key by {short}:\n{logs}"
    );
    for key in &keys {
        // The whole key, and its secret part alone.
        let secret = &key[5..key.len() - 6];
        assert!(
            !logs.contains(key.as_str()),
            "raw key {key} in logs:\n{logs}"
        );
        assert!(
            !logs.contains(secret),
            "key material of {key} in logs:\n{logs}"
        );
    }
}
