//! `ward apikey ...`, `ward session ...` and `ward fingerprint` against a
//! real Redis: what an operator types, and what lands in Redis.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use support::cli::ward;

use std::collections::BTreeSet;
use std::process::Command;
use support::redis::RedisServer;

fn redis_cli(redis: &RedisServer, args: &[&str]) -> String {
    let url = redis.url();
    let out = Command::new("redis-cli")
        .arg("-u")
        .arg(&url)
        .args(args)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn config(redis: &RedisServer) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ward.yaml");
    std::fs::write(
        &path,
        format!("store: {{redis: {{url: \"{}\"}}}}\n", redis.url()),
    )
    .unwrap();
    let path = path.display().to_string();
    (dir, path)
}

#[tokio::test]
async fn api_keys_are_created_listed_and_revoked_and_only_hashes_are_stored() {
    let redis = RedisServer::start().await;
    let (_dir, cfg) = config(&redis);
    let (ok, out) = ward(&[
        "apikey",
        "create",
        "-c",
        &cfg,
        "--user",
        "alice",
        "--name",
        "ci",
        "--scopes",
        "read,write",
        "--expires",
        "30d",
    ]);
    assert!(ok, "{out}");
    let key = out
        .lines()
        .find_map(|l| l.strip_prefix("key:"))
        .unwrap()
        .trim()
        .to_string();
    let key_id = out
        .lines()
        .find_map(|l| l.strip_prefix("key_id:"))
        .unwrap()
        .trim()
        .to_string();
    assert!(ward::apikey::well_formed(&key, "ward", false));
    let hash = ward::apikey::hash_hex(&key);
    assert_eq!(
        redis_cli(&redis, &["HGET", &format!("apikey:{hash}"), "user_id"]),
        "alice"
    );
    assert_eq!(
        redis_cli(&redis, &["HGET", &format!("apikey:{hash}"), "scopes"]),
        "read,write"
    );
    let dump = redis_cli(&redis, &["--scan"]);
    assert!(!dump.contains(&key), "the raw key is stored: {dump}");

    let (ok, out) = ward(&["apikey", "list", "-c", &cfg, "--user", "alice"]);
    assert!(ok && out.contains(&key_id) && !out.contains(&key), "{out}");
    let (ok, out) = ward(&["apikey", "revoke", "-c", &cfg, &key_id]);
    assert!(ok, "{out}");
    assert_eq!(
        redis_cli(&redis, &["HGET", &format!("apikey:{hash}"), "revoked"]),
        "1"
    );
    let (ok, out) = ward(&["apikey", "revoke", "-c", &cfg, "key_unknown"]);
    assert!(!ok && out.contains("not found"), "{out}");
    let (ok, out) = ward(&["apikey", "rotate", "-c", &cfg, &key_id]);
    assert!(!ok && out.contains("revoked or expired"), "{out}");
}

/// `ward apikey rotate` against Redis: a new key with the old one's
/// metadata, and the old one ending after the overlap, record and index.
#[tokio::test]
async fn a_rotated_key_keeps_its_metadata_and_the_old_one_ends_after_the_overlap() {
    let redis = RedisServer::start().await;
    let (_dir, cfg) = config(&redis);
    let (ok, out) = ward(&[
        "apikey", "create", "-c", &cfg, "--user", "bob", "--name", "deploy", "--scopes", "deploy",
    ]);
    assert!(ok, "{out}");
    let old_id = out
        .lines()
        .find_map(|l| l.strip_prefix("key_id:"))
        .unwrap()
        .trim()
        .to_string();
    let old_key = out
        .lines()
        .find_map(|l| l.strip_prefix("key:"))
        .unwrap()
        .trim()
        .to_string();
    let (ok, out) = ward(&["apikey", "rotate", "-c", &cfg, &old_id, "--overlap", "10m"]);
    assert!(ok && out.contains("stops working at"), "{out}");
    let new_key = out
        .lines()
        .find_map(|l| l.strip_prefix("key:"))
        .unwrap()
        .trim()
        .to_string();
    let (old_hash, new_hash) = (
        ward::apikey::hash_hex(&old_key),
        ward::apikey::hash_hex(&new_key),
    );
    for field in ["user_id", "name", "scopes"] {
        assert_eq!(
            redis_cli(&redis, &["HGET", &format!("apikey:{new_hash}"), field]),
            redis_cli(&redis, &["HGET", &format!("apikey:{old_hash}"), field]),
            "{field}"
        );
    }
    let ttl = |key: &str| redis_cli(&redis, &["TTL", key]).parse::<i64>().unwrap();
    assert!((590..=600).contains(&ttl(&format!("apikey:{old_hash}"))));
    assert!((590..=600).contains(&ttl(&format!("apikey_id:{old_id}"))));
    assert_eq!(
        ttl(&format!("apikey:{new_hash}")),
        -1,
        "no expiry, like the old key had"
    );
    let expires: u64 = redis_cli(
        &redis,
        &["HGET", &format!("apikey:{old_hash}"), "expires_at"],
    )
    .parse()
    .unwrap();
    let now = support::tokens::now();
    assert!((now + 590..=now + 601).contains(&expires), "{expires}");
}

#[tokio::test]
async fn sessions_are_created_listed_and_revoked_per_user() {
    let redis = RedisServer::start().await;
    let (_dir, cfg) = config(&redis);
    let mut sids = Vec::new();
    for _ in 0..2 {
        let (ok, out) = ward(&[
            "session", "create", "-c", &cfg, "--user", "bob", "--roles", "admin", "--ttl", "1h",
        ]);
        assert!(ok, "{out}");
        let sid = out.trim().to_string();
        assert!(ward::session::valid_id(&sid), "{sid}");
        let ttl: i64 = redis_cli(&redis, &["TTL", &format!("session:{sid}")])
            .parse()
            .unwrap();
        assert!((3500..=3600).contains(&ttl), "{ttl}");
        sids.push(sid);
    }
    let (ok, out) = ward(&["session", "list", "-c", &cfg, "bob"]);
    assert!(ok && sids.iter().all(|s| out.contains(s)), "{out}");
    // A session dead on arrival, or one past any sane lifetime, is
    // refused before anything is written.
    let keys = redis_cli(&redis, &["DBSIZE"]);
    for ttl in ["0s", "500ms", "20000y"] {
        let (ok, out) = ward(&[
            "session", "create", "-c", &cfg, "--user", "bob", "--ttl", ttl,
        ]);
        assert!(
            !ok && out.contains("ttl: must be between 1s and 3650d"),
            "{ttl}: {out}"
        );
    }
    assert_eq!(redis_cli(&redis, &["DBSIZE"]), keys);
    // A user id from elsewhere may begin with `-`: a value, not an option.
    let (ok, out) = ward(&["session", "create", "-c", &cfg, "--user", "-b0b"]);
    assert!(ok, "{out}");
    let (ok, listed) = ward(&["session", "list", "-c", &cfg, "-b0b"]);
    assert!(ok && listed.contains(out.trim()), "{listed}");
    let (ok, _) = ward(&["session", "revoke", "-c", &cfg, &sids[0]]);
    assert!(ok);
    assert_eq!(
        redis_cli(
            &redis,
            &["HGET", &format!("session:{}", sids[0]), "revoked"]
        ),
        "1"
    );
    assert_eq!(
        redis_cli(
            &redis,
            &["HGET", &format!("session:{}", sids[1]), "revoked"]
        ),
        ""
    );
    let (ok, out) = ward(&["session", "revoke-user", "-c", &cfg, "bob"]);
    assert!(ok && out.contains("revoked 2"), "{out}");
    assert_eq!(
        redis_cli(
            &redis,
            &["HGET", &format!("session:{}", sids[1]), "revoked"]
        ),
        "1"
    );
}

#[tokio::test]
async fn a_session_from_an_openid_login_is_recorded_under_its_provider_sid_and_sub() {
    let redis = RedisServer::start().await;
    let (_dir, cfg) = config(&redis);
    let issuer = "https://idp.example/realms/shop";
    let create = |ttl: &str, extra: &[&str]| {
        let mut args = vec![
            "session", "create", "-c", &cfg, "--user", "u-1", "--ttl", ttl,
        ];
        args.extend_from_slice(extra);
        ward(&args)
    };
    let oidc = [
        "--oidc-issuer",
        issuer,
        "--oidc-sid",
        "idp-s1",
        "--oidc-sub",
        "alice",
    ];
    let (ok, out) = create("1h", &oidc);
    assert!(ok, "{out}");
    let first = out.trim().to_string();
    // A shorter session later never shortens the index.
    let (ok, out) = create("10m", &["--oidc-issuer", issuer, "--oidc-sub", "alice"]);
    assert!(ok, "{out}");
    let second = out.trim().to_string();
    let by_sid = format!("oidc_sid:{issuer}#idp-s1");
    let by_sub = format!("oidc_sub:{issuer}#alice");
    assert_eq!(redis_cli(&redis, &["SMEMBERS", &by_sid]), first);
    let members: BTreeSet<String> = redis_cli(&redis, &["SMEMBERS", &by_sub])
        .lines()
        .map(String::from)
        .collect();
    assert_eq!(members, BTreeSet::from([first.clone(), second]));
    for key in [&by_sid, &by_sub] {
        let ttl: i64 = redis_cli(&redis, &["TTL", key]).parse().unwrap();
        assert!((3500..=3600).contains(&ttl), "{key}: {ttl}");
    }
    // Names a logout could never match are refused before any write.
    for bad in [
        vec!["--oidc-sid", "s"],
        vec!["--oidc-issuer", issuer],
        vec!["--oidc-issuer", "https://idp#x", "--oidc-sid", "s"],
        vec!["--oidc-issuer", issuer, "--oidc-sid", ""],
    ] {
        let (ok, out) = create("1h", &bad);
        assert!(!ok, "{bad:?}: {out}");
    }
    assert_eq!(redis_cli(&redis, &["SCARD", "user_sessions:u-1"]), "2");
    // A provider's ids are opaque: one may begin with `-` (seen from a
    // real provider), and is a value, not an option.
    let (ok, out) = create("1h", &["--oidc-issuer", issuer, "--oidc-sid", "-qXk2"]);
    assert!(ok, "{out}");
    let by_sid = format!("oidc_sid:{issuer}#-qXk2");
    assert_eq!(redis_cli(&redis, &["SMEMBERS", &by_sid]), out.trim());
}

#[test]
fn fingerprint_prints_the_documented_vector() {
    let (ok, out) = ward(&[
        "fingerprint",
        "--ip",
        "203.0.113.7",
        "--user-agent",
        "Mozilla/5.0",
        "--accept-language",
        "en-US",
    ]);
    assert!(ok);
    // "fp2:" sha256("ward-fp-v2" "9:client_ip," "11:203.0.113.7," ... "5:en-us,")
    assert_eq!(
        out.trim(),
        "fp2:4c85ce224a854c29fb50d281814f7b559397e498f0d7304e6ff1ba8a7a69b22f"
    );
    let (ok, out) = ward(&[
        "fingerprint",
        "--ip",
        "203.0.113.7",
        "--user-agent",
        "Mozilla/5.0",
        "--accept-language",
        "en-US",
        "--v1",
    ]);
    assert!(ok);
    // sha256("ward-fp-v1" "9:client_ip," "11:203.0.113.7," "10:user-agent," ...)
    assert_eq!(
        out.trim(),
        "90c2178d6f713c800346bd2b37db52b4457a7fa5578683a7d543dd899d5d745f"
    );
    let (ok, _) = ward(&["fingerprint", "--ip", "not-an-ip"]);
    assert!(!ok);
}

#[test]
fn management_commands_need_redis() {
    let (ok, out) = ward(&["session", "list", "-c", "examples/quickstart.yaml", "alice"]);
    assert!(!ok);
    assert!(out.contains("store.redis is not configured"), "{out}");
}

/// What `ward apikey ...` and `ward session ...` send Redis, seen with
/// `MONITOR`: every change to a record (`session:*`, `apikey:*`) is inside
/// one `MULTI`/`EXEC` or one script, so no reader ever sees it
/// half-written; and the raw API key is never sent at all.
#[tokio::test]
async fn record_writes_are_one_transaction_and_the_raw_key_is_never_sent() {
    let redis = RedisServer::start().await;
    let (dir, cfg) = config(&redis);
    let log = dir.path().join("monitor.log");
    let mut monitor = Command::new("redis-cli")
        .args(["-p", &redis.port().to_string(), "MONITOR"])
        .stdout(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let seen = |marker: &str| {
        let started = std::time::Instant::now();
        loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if text.contains(marker) {
                return text;
            }
            assert!(
                started.elapsed().as_secs() < 5,
                "MONITOR never showed {marker}"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    };
    seen("OK");

    let field = |out: &str, name: &str| {
        let line = out.lines().find_map(|l| l.strip_prefix(name));
        line.unwrap_or_else(|| panic!("no {name} in {out}"))
            .trim()
            .to_string()
    };
    let (ok, out) = ward(&[
        "apikey",
        "create",
        "-c",
        &cfg,
        "--user",
        "alice",
        "--name",
        "ci",
        "--expires",
        "30d",
    ]);
    assert!(ok, "{out}");
    let (key, key_id) = (field(&out, "key:"), field(&out, "key_id:"));
    let (ok, out) = ward(&[
        "session", "create", "-c", &cfg, "--user", "bob", "--ttl", "1h",
    ]);
    assert!(ok, "{out}");
    let sid = out.trim().to_string();
    for args in [["apikey", "revoke", &key_id], ["session", "revoke", &sid]] {
        let (ok, out) = ward(&[args[0], args[1], "-c", &cfg, args[2]]);
        assert!(ok, "{out}");
    }
    redis.cli(&["ECHO", "end-of-test"]);
    let text = seen("end-of-test");
    monitor.kill().unwrap();
    monitor.wait().unwrap();

    assert!(
        !text.contains(&key),
        "the raw key was sent to Redis:\n{text}"
    );
    const READS: [&str; 6] = ["HGETALL", "HGET", "PTTL", "TTL", "EXISTS", "TYPE"];
    let (mut in_transaction, mut transactions, mut scripts) = (BTreeSet::new(), 0, 0);
    for line in text.lines() {
        // `1700000000.000000 [0 127.0.0.1:5000] "HSET" "session:x" ...`
        let Some((client, command)) = line.split_once(" [").and_then(|(_, r)| r.split_once("] "))
        else {
            continue;
        };
        let words: Vec<&str> = command.split('"').skip(1).step_by(2).collect();
        let (name, key) = (words[0].to_ascii_uppercase(), words.get(1).copied());
        match name.as_str() {
            "MULTI" => _ = in_transaction.insert(client.to_string()),
            "EXEC" | "DISCARD" => _ = in_transaction.remove(client),
            _ if key.is_some_and(|k| k.starts_with("session:") || k.starts_with("apikey:"))
                && !READS.contains(&name.as_str()) =>
            {
                if client.ends_with(" lua") {
                    scripts += 1;
                } else {
                    assert!(in_transaction.contains(client), "a lone write: {line}");
                    transactions += 1;
                }
            }
            _ => {}
        }
    }
    // DEL, HSET, PEXPIRE for each record created; one HSET per revocation.
    assert_eq!((transactions, scripts), (6, 2), "{text}");
    // The indexes before the records (docs/redis-contract.md, "Order of
    // writes"): a cut-off write never leaves a live record unlisted.
    let at = |needle: &str| {
        text.find(needle)
            .unwrap_or_else(|| panic!("no {needle} in:\n{text}"))
    };
    assert!(
        at("\"SADD\" \"user_apikeys:alice\"") < at("\"HSET\" \"apikey:"),
        "{text}"
    );
    assert!(
        at(&format!("\"SET\" \"apikey_id:{key_id}\"")) < at("\"HSET\" \"apikey:"),
        "{text}"
    );
    assert!(
        at("\"SADD\" \"user_sessions:bob\"") < at("\"HSET\" \"session:"),
        "{text}"
    );
}
