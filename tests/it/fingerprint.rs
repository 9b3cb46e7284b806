//! Device fingerprints through a real Envoy: a session bound with the
//! `fp2:` algorithm survives a browser that only changes a list header's
//! whitespace, case or empty elements (RFC 9110 §5.6.1 lists), and a
//! session written with the v1 algorithm (bare hex) still verifies.
//! The login side is computed here from the documented algorithm
//! (docs/redis-contract.md), not with ward's code.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use sha2::{Digest, Sha256};
use support::authz::{hset, session_id};
use support::echo::{Echo, header_values};
use support::envoy::Envoy;
use support::redis::RedisServer;
use support::ward::Ward;

fn config(redis: &RedisServer) -> String {
    format!(
        "log: {{format: text, level: info}}\nstore:\n  redis: {{url: \"{}\"}}\n",
        redis.url()
    )
}

const UA: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:140.0) Gecko/20100101 Firefox/140.0";
const LANG: &str = "en-US,en;q=0.9";

fn netstrings(tag: &str, attrs: &[(&str, String)]) -> String {
    let mut buf = tag.as_bytes().to_vec();
    for (name, value) in attrs {
        for s in [*name, value.as_str()] {
            buf.extend_from_slice(format!("{}:{s},", s.len()).as_bytes());
        }
    }
    hex::encode(Sha256::digest(&buf))
}

/// v1: the values byte for byte; bare lowercase hex.
fn login_v1(attrs: &[(&str, &str)]) -> String {
    let attrs: Vec<(&str, String)> = attrs.iter().map(|(n, v)| (*n, v.to_string())).collect();
    netstrings("ward-fp-v1", &attrs)
}

/// v2 as the contract describes it, for the headers this test uses:
/// `accept-language` is a list (split on commas, then each element on `;`,
/// OWS trimmed, empty parts and elements dropped, lower-cased, joined);
/// `user-agent` and `client_ip` are hashed as they are. `fp2:` + hex.
fn login_v2(attrs: &[(&str, &str)]) -> String {
    let normal = |name: &str, value: &str| {
        if name != "accept-language" {
            return value.to_string();
        }
        let ows: &[char] = &[' ', '\t'];
        let elements: Vec<String> = value
            .split(',')
            .map(|e| {
                let params: Vec<&str> = e
                    .split(';')
                    .map(|p| p.trim_matches(ows))
                    .filter(|p| !p.is_empty())
                    .collect();
                params.join(";").to_ascii_lowercase()
            })
            .filter(|e| !e.is_empty())
            .collect();
        elements.join(",")
    };
    let attrs: Vec<(&str, String)> = attrs.iter().map(|(n, v)| (*n, normal(n, v))).collect();
    format!("fp2:{}", netstrings("ward-fp-v2", &attrs))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_v2_session_survives_whitespace_changes_and_a_v1_session_still_verifies() {
    let redis = RedisServer::start().await;
    let echo = Echo::start().await;
    let ward = Ward::start(&config(&redis)).await;
    let envoy = Envoy::start(echo.addr, ward.grpc_addr).await;
    // The client connects to Envoy from 127.0.0.1: the peer Envoy reports.
    let login = [
        ("client_ip", "127.0.0.1"),
        ("user-agent", UA),
        ("accept-language", LANG),
    ];
    let v2 = login_v2(&login);
    let v1 = login_v1(&login);
    assert!(v2.starts_with("fp2:") && v2.len() == 68, "{v2}");
    let (sid2, sid1) = (session_id(), session_id());
    hset(
        &redis,
        &format!("session:{sid2}"),
        &[("user_id", "alice"), ("fingerprint", &v2)],
    );
    hset(
        &redis,
        &format!("session:{sid1}"),
        &[("user_id", "bob"), ("fingerprint", &v1)],
    );

    let check = |sid: String, headers: Vec<(&'static str, &'static str)>| {
        let envoy = &envoy;
        async move {
            let mut all = vec![("x-session-id", sid.as_str()), ("user-agent", UA)];
            all.extend(headers);
            envoy.get("/api", &all).await
        }
    };
    // v2: the same list, however it is spaced, cased or split.
    let same_list: [Vec<(&str, &str)>; 5] = [
        vec![("accept-language", LANG)],
        vec![("accept-language", "en-US, en;q=0.9")],
        vec![("accept-language", "EN-us ,, en ; q=0.9,")],
        vec![("accept-language", "en-US\t,en;q=0.9")],
        vec![
            ("accept-language", "en-US"),
            ("accept-language", "en;q=0.9"),
        ],
    ];
    for headers in same_list {
        let resp = check(sid2.clone(), headers.clone()).await;
        assert_eq!(resp.status, 200, "{headers:?}: {}", resp.text());
        assert_eq!(header_values(&resp.json(), "x-user-id"), vec!["alice"]);
    }
    // Another list, or another user agent, is another device.
    let other: [Vec<(&str, &str)>; 3] = [
        vec![("accept-language", "en;q=0.9, en-US")],
        vec![("accept-language", "de-CH")],
        vec![],
    ];
    for headers in other {
        let resp = check(sid2.clone(), headers.clone()).await;
        assert_eq!(resp.status, 401, "{headers:?}: {}", resp.text());
        assert_eq!(resp.json()["reason"], "fingerprint_mismatch");
    }
    let resp = envoy
        .get(
            "/api",
            &[
                ("x-session-id", &sid2),
                ("user-agent", "Mozilla/5.0  (X11; Linux x86_64; rv:140.0)"),
                ("accept-language", LANG),
            ],
        )
        .await;
    assert_eq!(resp.status, 401, "user-agent is byte-exact");

    // v1 (bare hex): still verified, byte for byte as before.
    let resp = check(sid1.clone(), vec![("accept-language", LANG)]).await;
    assert_eq!(resp.status, 200, "v1 session: {}", resp.text());
    assert_eq!(header_values(&resp.json(), "x-user-id"), vec!["bob"]);
    let resp = check(sid1, vec![("accept-language", "en-US, en;q=0.9")]).await;
    assert_eq!(resp.status, 401, "v1 hashes the value as sent");
}

#[test]
fn ward_fingerprint_prints_v2_by_default_and_v1_on_request() {
    let args = [
        "--ip",
        "203.0.113.7",
        "--user-agent",
        UA,
        "--accept-language",
        "en-US, en;q=0.9",
    ];
    let attrs = [
        ("client_ip", "203.0.113.7"),
        ("user-agent", UA),
        ("accept-language", "en-US, en;q=0.9"),
    ];
    assert_eq!(support::cli::fingerprint(&args), login_v2(&attrs));
    let mut v1 = args.to_vec();
    v1.push("--v1");
    assert_eq!(support::cli::fingerprint(&v1), login_v1(&attrs));
}
