//! The management API (`proto/ward/admin/v1/admin.proto`) over real gRPC,
//! against a real `ward serve` and a real `redis-server`: each call does
//! what it says and what the checks then decide shows it; a caller without
//! the bearer token, or with a wrong one, is refused; a revoke through one
//! ward is honoured by another ward on the same Redis within the
//! invalidation's budget; and every call leaves an audit line without a
//! secret in it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use jsonwebtoken::Algorithm;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use support::authz::{self, check, verdict};
use support::redis::RedisServer;
use support::tokens::{self, HMAC_SECRET};
use support::ward::Ward;
use tonic::transport::Channel;
use ward::server::management::proto::admin_service_client::AdminServiceClient;
use ward::server::management::proto::*;

pub(crate) const TOKEN: &str = "test-management-token-0123456789";

/// A ward on `redis` with the management API on, its token in `dir`.
/// Long cache lifetimes: only an invalidation explains a quick deny.
pub(crate) fn config(redis: &RedisServer, dir: &tempfile::TempDir) -> String {
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    format!(
        "log: {{format: text, level: info}}\n\
         store:\n  redis: {{url: \"{}\"}}\n\
         cache: {{store_ttl: 60s, negative_ttl: 60s, max_ttl: 300s}}\n\
         sessions: {{fingerprint: {{mode: off}}}}\n\
         jwt:\n  keys:\n    - {{alg: HS256, secret: {{value: \"{HMAC_SECRET}\"}}}}\n  revocation: {{check_jti: true}}\n\
         management:\n  auth: {{token_file: \"{}\"}}\n",
        redis.url(),
        token_file.display()
    )
}

/// A management client for `ward`.
pub(crate) async fn client(ward: &Ward) -> AdminServiceClient<Channel> {
    let addr = ward.management_addr.expect("the management API is on");
    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    AdminServiceClient::new(channel)
}

/// `message` with `authorization: Bearer <token>`.
fn bearer<T>(token: &str, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
}

pub(crate) fn authed<T>(message: T) -> tonic::Request<T> {
    bearer(TOKEN, message)
}

/// The Check status for a request carrying `header`.
pub(crate) async fn status_with(grpc: SocketAddr, header: (&str, &str)) -> i32 {
    let client = authz::connect(grpc).await;
    authz::status(&check(&client, &[header]).await)
}

/// The status a check with `header` gets once a write made through the
/// API has reached ward's cache: every ward, this one too, evicts the
/// key when the write's invalidation arrives (docs/operations.md), a
/// pub/sub round trip after the call returned. Polls for at most 2 s.
async fn status_after_write(grpc: SocketAddr, header: (&str, &str), expected: i32) -> i32 {
    let mut status = status_with(grpc, header).await;
    for _ in 0..100 {
        if status == expected {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        status = status_with(grpc, header).await;
    }
    status
}

#[tokio::test]
async fn sessions_are_created_read_listed_and_revoked_through_the_api() {
    let redis = RedisServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let ward = Ward::start(&config(&redis, &dir)).await;
    let mut api = client(&ward).await;

    let mut sids = Vec::new();
    for _ in 0..3 {
        let created = api
            .create_session(authed(CreateSessionRequest {
                user_id: "alice".into(),
                email: "alice@example.com".into(),
                roles: vec!["admin".into()],
                ttl_seconds: 3600,
                ..Default::default()
            }))
            .await
            .unwrap()
            .into_inner();
        let now = tokens::now();
        assert!((now + 3590..=now + 3601).contains(&created.expires_at));
        sids.push(created.session_id);
    }
    let got = api
        .get_session(authed(GetSessionRequest {
            session_id: sids[0].clone(),
        }))
        .await
        .unwrap()
        .into_inner()
        .session
        .unwrap();
    assert_eq!(
        (got.user_id.as_str(), got.email.as_str(), got.roles.clone()),
        ("alice", "alice@example.com", vec!["admin".to_string()])
    );
    assert!(!got.revoked && !got.fingerprint_bound && got.ttl_seconds > 3500);
    let listed = api
        .list_sessions(authed(ListSessionsRequest {
            user_id: "alice".into(),
        }))
        .await
        .unwrap()
        .into_inner()
        .sessions;
    let mut listed: Vec<String> = listed.into_iter().map(|s| s.session_id).collect();
    listed.sort();
    let mut expected = sids.clone();
    expected.sort();
    assert_eq!(listed, expected);

    let grpc = ward.grpc_addr;
    assert_eq!(status_with(grpc, ("x-session-id", &sids[0])).await, 200);
    api.revoke_session(authed(RevokeSessionRequest {
        session_id: sids[0].clone(),
    }))
    .await
    .unwrap();
    assert_eq!(
        status_after_write(grpc, ("x-session-id", &sids[0]), 401).await,
        401
    );
    let again = api
        .get_session(authed(GetSessionRequest {
            session_id: sids[0].clone(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert!(again.session.unwrap().revoked);

    let all = api
        .revoke_user_sessions(authed(RevokeUserSessionsRequest {
            user_id: "alice".into(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(all.revoked, 3, "revoking twice still counts the session");
    for sid in &sids {
        assert_eq!(
            status_after_write(grpc, ("x-session-id", sid), 401).await,
            401
        );
    }
    let missing = api
        .get_session(authed(GetSessionRequest {
            session_id: "no-such-session".into(),
        }))
        .await
        .unwrap_err();
    assert_eq!(missing.code(), tonic::Code::NotFound);
    let failed = authz::metric(
        ward.admin_addr,
        "ward_management_calls_total",
        &[("call", "GetSession"), ("result", "failed")],
    )
    .await;
    assert_eq!(failed, 1.0);
    let invalid = api
        .create_session(authed(CreateSessionRequest::default()))
        .await
        .unwrap_err();
    assert_eq!(invalid.code(), tonic::Code::InvalidArgument);
}

#[tokio::test]
async fn api_keys_are_created_listed_rotated_and_revoked_through_the_api() {
    let redis = RedisServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let ward = Ward::start(&config(&redis, &dir)).await;
    let mut api = client(&ward).await;
    let created = api
        .create_api_key(authed(CreateApiKeyRequest {
            user_id: "bob".into(),
            name: "ci".into(),
            scopes: vec!["read".into()],
            expires_in_seconds: 86_400,
        }))
        .await
        .unwrap()
        .into_inner();
    assert!(ward::apikey::well_formed(&created.key, "ward", false));
    let listed = api
        .list_api_keys(authed(ListApiKeysRequest {
            user_id: "bob".into(),
        }))
        .await
        .unwrap()
        .into_inner()
        .api_keys;
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (listed[0].key_id.as_str(), listed[0].name.as_str()),
        (created.key_id.as_str(), "ci")
    );
    assert_eq!(listed[0].expires_at, created.expires_at);
    let grpc = ward.grpc_addr;
    assert_eq!(status_with(grpc, ("x-api-key", &created.key)).await, 200);

    // Rotation without overlap: the old key stops at once, the new works.
    let rotated = api
        .rotate_api_key(authed(RotateApiKeyRequest {
            key_id: created.key_id.clone(),
            overlap_seconds: 0,
        }))
        .await
        .unwrap()
        .into_inner();
    assert_ne!(rotated.key, created.key);
    assert_eq!(rotated.expires_at, created.expires_at, "the old expiry");
    assert!(rotated.old_key_expires_at <= tokens::now());
    assert_eq!(
        status_after_write(grpc, ("x-api-key", &created.key), 401).await,
        401
    );
    assert_eq!(status_with(grpc, ("x-api-key", &rotated.key)).await, 200);

    // With an overlap, both work; the old one's record now ends then.
    let overlap = api
        .rotate_api_key(authed(RotateApiKeyRequest {
            key_id: rotated.key_id.clone(),
            overlap_seconds: 600,
        }))
        .await
        .unwrap()
        .into_inner();
    let now = tokens::now();
    assert!((now + 590..=now + 601).contains(&overlap.old_key_expires_at));
    assert_eq!(status_with(grpc, ("x-api-key", &rotated.key)).await, 200);
    assert_eq!(status_with(grpc, ("x-api-key", &overlap.key)).await, 200);
    let ttl = redis_ttl(
        &redis,
        &format!("apikey:{}", ward::apikey::hash_hex(&rotated.key)),
    );
    assert!((590..=601).contains(&ttl), "the old record's TTL: {ttl}");

    api.revoke_api_key(authed(RevokeApiKeyRequest {
        key_id: overlap.key_id.clone(),
    }))
    .await
    .unwrap();
    assert_eq!(
        status_after_write(grpc, ("x-api-key", &overlap.key), 401).await,
        401
    );
    let gone = api
        .revoke_api_key(authed(RevokeApiKeyRequest {
            key_id: "key_unknown".into(),
        }))
        .await
        .unwrap_err();
    assert_eq!(gone.code(), tonic::Code::NotFound);
    let revoked = api
        .rotate_api_key(authed(RotateApiKeyRequest {
            key_id: overlap.key_id.clone(),
            overlap_seconds: 60,
        }))
        .await
        .unwrap_err();
    assert_eq!(
        revoked.code(),
        tonic::Code::InvalidArgument,
        "a revoked key is not rotated"
    );
}

fn redis_ttl(redis: &RedisServer, key: &str) -> i64 {
    redis.cli(&["TTL", key]).trim().parse().unwrap()
}

/// Until both wards listen on the invalidation channel (a published
/// message reaches two subscribers).
async fn wait_both_subscribed(redis: &RedisServer) {
    let started = Instant::now();
    while redis
        .cli(&["PUBLISH", ward::store::keys::INVALIDATION_CHANNEL, "warmup"])
        .trim()
        .parse::<u64>()
        .map_or(true, |n| n < 2)
    {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "not subscribed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The `Reset` every subscribe sends first, applied (authz.rs).
    tokio::time::sleep(Duration::from_millis(100)).await;
}

#[tokio::test]
async fn a_token_revoked_by_jti_is_denied_until_its_exp() {
    let redis = RedisServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let ward = Ward::start(&config(&redis, &dir)).await;
    let mut api = client(&ward).await;
    let mut claims = tokens::claims("carol");
    claims["jti"] = "jti-to-revoke".into();
    let exp = claims["exp"].as_u64().unwrap();
    let bearer_token = format!("Bearer {}", tokens::sign(Algorithm::HS256, None, &claims));
    let grpc = ward.grpc_addr;
    assert_eq!(
        status_with(grpc, ("authorization", &bearer_token)).await,
        200
    );
    api.revoke_token(authed(RevokeTokenRequest {
        jti: "jti-to-revoke".into(),
        expires_at: exp,
    }))
    .await
    .unwrap();
    assert_eq!(
        status_with(grpc, ("authorization", &bearer_token)).await,
        401
    );
    // Kept as long as ward accepts the token: exp plus jwt.leeway (60 s).
    let ttl = redis_ttl(&redis, "revoked_jti:jti-to-revoke");
    let left = i64::try_from(exp + 60 - tokens::now()).unwrap();
    assert!(
        (left - 5..=left + 1).contains(&ttl),
        "kept until exp + leeway: {ttl} vs {left}"
    );
    // Past exp but within the leeway: still accepted, so still revocable.
    api.revoke_token(authed(RevokeTokenRequest {
        jti: "in-leeway".into(),
        expires_at: tokens::now() - 10,
    }))
    .await
    .unwrap();
    let ttl = redis_ttl(&redis, "revoked_jti:in-leeway");
    assert!((45..=51).contains(&ttl), "{ttl}");
    let past = api
        .revoke_token(authed(RevokeTokenRequest {
            jti: "old".into(),
            expires_at: tokens::now() - 61,
        }))
        .await
        .unwrap_err();
    assert_eq!(past.code(), tonic::Code::InvalidArgument);
}

#[tokio::test]
async fn callers_without_the_token_or_with_a_wrong_one_are_unauthenticated() {
    let redis = RedisServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let ward = Ward::start(&config(&redis, &dir)).await;
    let mut api = client(&ward).await;
    let list = || ListSessionsRequest {
        user_id: "alice".into(),
    };
    let no_token = api.list_sessions(list()).await.unwrap_err();
    assert_eq!(no_token.code(), tonic::Code::Unauthenticated);
    for wrong in [
        "wrong-token-0123456789abcdef",
        &TOKEN[..TOKEN.len() - 1],
        "",
    ] {
        let refused = api.list_sessions(bearer(wrong, list())).await.unwrap_err();
        assert_eq!(refused.code(), tonic::Code::Unauthenticated, "{wrong:?}");
    }
    let mut basic = tonic::Request::new(list());
    basic
        .metadata_mut()
        .insert("authorization", format!("Basic {TOKEN}").parse().unwrap());
    assert_eq!(
        api.list_sessions(basic).await.unwrap_err().code(),
        tonic::Code::Unauthenticated
    );
    // Every call is behind the gate, not only the reads.
    let create = api
        .create_api_key(bearer(
            "wrong-token-0123456789abcdef",
            CreateApiKeyRequest {
                user_id: "mallory".into(),
                name: "x".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(create.code(), tonic::Code::Unauthenticated);
    let introspect = api
        .introspect(IntrospectRequest::default())
        .await
        .unwrap_err();
    assert_eq!(introspect.code(), tonic::Code::Unauthenticated);

    // A rotated token file applies to the next call.
    std::fs::write(dir.path().join("token"), "a-rotated-token-0123456789").unwrap();
    let old = api.list_sessions(authed(list())).await.unwrap_err();
    assert_eq!(old.code(), tonic::Code::Unauthenticated);
    api.list_sessions(bearer("a-rotated-token-0123456789", list()))
        .await
        .unwrap();

    // Counted, by call and result.
    for (call, result, want) in [
        ("ListSessions", "refused", 6.0),
        ("ListSessions", "ok", 1.0),
        ("CreateApiKey", "refused", 1.0),
        ("Introspect", "refused", 1.0),
        ("CreateApiKey", "ok", 0.0),
    ] {
        let got = authz::metric(
            ward.admin_addr,
            "ward_management_calls_total",
            &[("call", call), ("result", result)],
        )
        .await;
        assert_eq!(got, want, "{call} {result}");
    }
    let logs = ward.logs();
    assert_eq!(logs.matches("management call refused").count(), 8, "{logs}");
    assert!(
        logs.contains("call=\"CreateApiKey\"") || logs.contains("call=CreateApiKey"),
        "{logs}"
    );
    assert!(
        !logs.contains(TOKEN) && !logs.contains("wrong-token"),
        "{logs}"
    );
}

#[tokio::test]
async fn every_call_is_audited_with_who_what_and_which_user_but_no_secret() {
    let redis = RedisServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let ward = Ward::start(&config(&redis, &dir)).await;
    let mut api = client(&ward).await;
    let sid = api
        .create_session(authed(CreateSessionRequest {
            user_id: "dave".into(),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner()
        .session_id;
    api.revoke_session(authed(RevokeSessionRequest {
        session_id: sid.clone(),
    }))
    .await
    .unwrap();
    let key = api
        .create_api_key(authed(CreateApiKeyRequest {
            user_id: "dave".into(),
            name: "laptop".into(),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    let logs = ward.logs();
    let lines: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("management call"))
        .collect();
    assert_eq!(lines.len(), 3, "{logs}");
    for (line, call) in lines
        .iter()
        .zip(["CreateSession", "RevokeSession", "CreateApiKey"])
    {
        assert!(
            line.contains(call) && line.contains("caller") && line.contains("bearer"),
            "{line}"
        );
        assert!(line.contains("peer") && line.contains("result"), "{line}");
    }
    assert!(
        lines[0].contains("dave") && lines[2].contains("dave"),
        "{logs}"
    );
    let short = ward::credentials::short_hash(&ward::credentials::hash_credential(&sid));
    assert!(
        lines[1].contains(&short),
        "the session by its short hash: {}",
        lines[1]
    );
    for secret in [sid.as_str(), key.key.as_str(), TOKEN] {
        assert!(!logs.contains(secret), "a secret in the log: {logs}");
    }
}

/// Polls every 5 ms until `header` is denied by `grpc`; the deny and how
/// long it took.
async fn until_denied(grpc: SocketAddr, header: (&str, &str), limit: Duration) -> (i32, Duration) {
    let client = authz::connect(grpc).await;
    let started = Instant::now();
    loop {
        let (status, _) = verdict(&check(&client, &[header]).await);
        if status != 200 || started.elapsed() > limit {
            return (status, started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn a_revoke_through_one_wards_api_is_denied_by_another_ward_within_the_budget() {
    let redis = RedisServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let yaml = config(&redis, &dir);
    let (first, second) = (Ward::start(&yaml).await, Ward::start(&yaml).await);
    wait_both_subscribed(&redis).await;
    let mut api = client(&first).await;
    let sid = api
        .create_session(authed(CreateSessionRequest {
            user_id: "erin".into(),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner()
        .session_id;
    // The second ward has it cached (store_ttl 60 s): only the
    // invalidation can make it deny soon.
    assert_eq!(
        status_with(second.grpc_addr, ("x-session-id", &sid)).await,
        200
    );
    api.revoke_session(authed(RevokeSessionRequest {
        session_id: sid.clone(),
    }))
    .await
    .unwrap();
    let (status, took) = until_denied(
        second.grpc_addr,
        ("x-session-id", &sid),
        Duration::from_secs(2),
    )
    .await;
    assert_eq!(status, 401, "still allowed after {took:?}");
    assert!(took < Duration::from_secs(1), "denied only after {took:?}");
}

#[tokio::test]
async fn the_api_is_not_on_the_check_port_and_check_is_not_on_the_api_port() {
    let redis = RedisServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let ward = Ward::start(&config(&redis, &dir)).await;
    let channel = Channel::from_shared(format!("http://{}", ward.grpc_addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let on_check_port = AdminServiceClient::new(channel)
        .list_sessions(authed(ListSessionsRequest {
            user_id: "alice".into(),
        }))
        .await
        .unwrap_err();
    assert_eq!(on_check_port.code(), tonic::Code::Unimplemented);
    let check_client = authz::connect(ward.management_addr.unwrap()).await;
    let on_api_port = check_client
        .clone()
        .check(support::inproc::check_request("GET", "/api", &[]))
        .await
        .unwrap_err();
    assert_eq!(on_api_port.code(), tonic::Code::Unimplemented);
}

/// `ward session ...` and `ward apikey ...` with `--server`: the same
/// commands, through the API instead of Redis, printing the same text.
#[tokio::test]
async fn the_cli_goes_through_the_api_with_server_and_its_token() {
    let redis = RedisServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let ward = Ward::start(&config(&redis, &dir)).await;
    let url = format!("http://{}", ward.management_addr.unwrap());
    let token = dir.path().join("token").display().to_string();
    let remote = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--server", &url, "--token-file", &token]);
        support::cli::ward(&all)
    };
    let (ok, sid) = remote(&["session", "create", "--user", "frank", "--roles", "ops"]);
    assert!(ok, "{sid}");
    let sid = sid.trim().to_string();
    assert_eq!(
        status_with(ward.grpc_addr, ("x-session-id", &sid)).await,
        200
    );
    let (ok, out) = remote(&["session", "list", "frank"]);
    assert!(
        ok && out.starts_with("SESSION_ID") && out.contains(&sid),
        "{out}"
    );
    let (ok, out) = remote(&["session", "revoke", &sid]);
    assert!(ok && out.contains("revoked"), "{out}");
    assert_eq!(
        status_with(ward.grpc_addr, ("x-session-id", &sid)).await,
        401
    );
    let (ok, out) = remote(&["session", "revoke-user", "frank"]);
    assert!(ok && out.contains("revoked 1 session(s) of frank"), "{out}");

    let (ok, out) = remote(&["apikey", "create", "--user", "frank", "--name", "ci"]);
    assert!(ok, "{out}");
    let field = |out: &str, name: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap()
            .trim()
            .to_string()
    };
    let (key, key_id) = (field(&out, "key:"), field(&out, "key_id:"));
    let (ok, out) = remote(&["apikey", "list", "--user", "frank"]);
    assert!(ok && out.contains(&key_id) && !out.contains(&key), "{out}");
    let (ok, out) = remote(&["apikey", "rotate", &key_id, "--overlap", "0s"]);
    assert!(ok && out.contains("stops working at"), "{out}");
    let new_key = field(&out, "key:");
    assert_eq!(status_with(ward.grpc_addr, ("x-api-key", &key)).await, 401);
    assert_eq!(
        status_with(ward.grpc_addr, ("x-api-key", &new_key)).await,
        200
    );
    let (ok, out) = remote(&["apikey", "revoke", &field(&out, "key_id:")]);
    assert!(ok, "{out}");
    assert_eq!(
        status_with(ward.grpc_addr, ("x-api-key", &new_key)).await,
        401
    );

    // No token: refused by the server, and the CLI says so.
    let (ok, out) = support::cli::ward(&["session", "list", "frank", "--server", &url]);
    assert!(!ok && out.contains("Unauthenticated"), "{out}");
    // Direct to Redis, as before, sees what the API wrote.
    let cfg = dir.path().join("direct.yaml");
    std::fs::write(
        &cfg,
        format!("store: {{redis: {{url: \"{}\"}}}}\n", redis.url()),
    )
    .unwrap();
    let (ok, out) = support::cli::ward(&[
        "apikey",
        "list",
        "-c",
        cfg.to_str().unwrap(),
        "--user",
        "frank",
    ]);
    assert!(ok && out.contains(&key_id), "{out}");
}

/// The management port keeps the listeners' hygiene: a peer that says
/// nothing, or starts the HTTP/2 preface and stops, is closed after
/// `listen.handshake_timeout`; a whole HTTP/1.1 request is answered (the
/// plain routes' port: 404 for a path none serves) and its connection is
/// not cut; gRPC calls work as ever.
#[tokio::test]
async fn the_management_port_times_out_silent_peers_and_speaks_http1_and_grpc() {
    use support::sockets::{closed_after, closed_before};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;
    let redis = RedisServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let yaml = config(&redis, &dir) + "listen: {handshake_timeout: 300ms}\n";
    let ward = Ward::start(&yaml).await;
    let addr = ward.management_addr.unwrap();
    let start = tokio::time::Instant::now();
    let mut silent = TcpStream::connect(addr).await.unwrap();
    let mut preface = TcpStream::connect(addr).await.unwrap();
    preface.write_all(b"PRI * HTTP/2.0\r\n").await.unwrap();
    let mut http1 = TcpStream::connect(addr).await.unwrap();
    http1
        .write_all(b"POST /no-such-route HTTP/1.1\r\nhost: ward\r\ncontent-length: 0\r\n\r\n")
        .await
        .unwrap();
    let mut answer = vec![0u8; 256];
    let n = http1.read(&mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]).to_string();
    assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");
    for (what, stream) in [("silent", &mut silent), ("preface only", &mut preface)] {
        let after = closed_after(stream, start, Duration::from_secs(3))
            .await
            .unwrap_or_else(|| panic!("{what}: still open"));
        assert!(
            after >= Duration::from_millis(300),
            "{what}: closed after {after:?}"
        );
    }
    assert!(
        !closed_before(
            &mut http1,
            tokio::time::Instant::now() + Duration::from_millis(600)
        )
        .await,
        "an HTTP/1.1 connection past its first request was closed"
    );
    let timeouts = authz::metric(
        ward.admin_addr,
        "ward_connections_handshake_timeouts_total",
        &[("listener", "management")],
    )
    .await;
    assert_eq!(timeouts, 2.0);
    let mut api = client(&ward).await;
    api.list_sessions(authed(ListSessionsRequest {
        user_id: "alice".into(),
    }))
    .await
    .unwrap();
}

/// The API acts on the running config: after a reload, the next call
/// runs on the new generation (here: new keys carry the new
/// `api_keys.prefix`).
#[tokio::test]
async fn after_a_reload_the_api_runs_on_the_new_config() {
    let redis = RedisServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let ward = Ward::start(&config(&redis, &dir)).await;
    let mut api = client(&ward).await;
    let create = || {
        authed(CreateApiKeyRequest {
            user_id: "heidi".into(),
            name: "k".into(),
            ..Default::default()
        })
    };
    let before = api.create_api_key(create()).await.unwrap().into_inner();
    assert!(before.key.starts_with("ward_"), "{}", before.key);
    let path = ward.config_path();
    let text = std::fs::read_to_string(path).unwrap() + "api_keys: {prefix: acme}\n";
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
    ward.signal("HUP");
    let started = Instant::now();
    loop {
        let key = api.create_api_key(create()).await.unwrap().into_inner().key;
        if key.starts_with("acme_") {
            // And the new generation's checker accepts it.
            assert_eq!(status_with(ward.grpc_addr, ("x-api-key", &key)).await, 200);
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "still {key}: {}",
            ward.logs()
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Bad input changes nothing: a session or API key no check would
/// accept (a header-unsafe or over-long value, a fingerprint that can
/// never match), or a lifetime out of range, is refused with
/// `InvalidArgument` naming what is wrong, before anything is written.
#[tokio::test]
async fn a_record_no_check_would_accept_is_refused_and_nothing_is_written() {
    let redis = RedisServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let ward = Ward::start(&config(&redis, &dir)).await;
    let mut api = client(&ward).await;
    let keys_before = redis.cli(&["DBSIZE"]);
    let session = |user: &str, email: &str, fingerprint: &str, ttl: u64| CreateSessionRequest {
        user_id: user.into(),
        email: email.into(),
        fingerprint: fingerprint.into(),
        ttl_seconds: ttl,
        ..Default::default()
    };
    let long = "u".repeat(1025);
    let bad_sessions = [
        (session("alice\u{7}", "", "", 60), "user id"),
        (session("alice", "a@x\r\nx-user-id: admin", "", 60), "email"),
        (session(&long, "", "", 60), "max_value_bytes"),
        (session("alice", "", "not-a-fingerprint", 60), "fingerprint"),
        (
            session("alice", "", &format!("fp2:{}", "a".repeat(63)), 60),
            "fingerprint",
        ),
        (session("alice", "", "", u64::MAX), "ttl"),
        (session("alice", "", "", 10_u64.pow(16)), "ttl"),
    ];
    for (request, names) in bad_sessions {
        let error = api.create_session(authed(request)).await.unwrap_err();
        assert_eq!(error.code(), tonic::Code::InvalidArgument, "{error:?}");
        assert!(
            error.message().contains(names),
            "{names}: {}",
            error.message()
        );
    }
    let key = |user: &str, scopes: &[&str], expires: u64| CreateApiKeyRequest {
        user_id: user.into(),
        name: "ci".into(),
        scopes: scopes.iter().map(|s| s.to_string()).collect(),
        expires_in_seconds: expires,
    };
    let bad_keys = [
        (key("bob\n", &[], 60), "user id"),
        (key("bob", &["read\u{0}"], 60), "scopes"),
        (key("bob", &[], u64::MAX), "expires"),
    ];
    for (request, names) in bad_keys {
        let error = api.create_api_key(authed(request)).await.unwrap_err();
        assert_eq!(error.code(), tonic::Code::InvalidArgument, "{error:?}");
        assert!(
            error.message().contains(names),
            "{names}: {}",
            error.message()
        );
    }
    assert_eq!(redis.cli(&["DBSIZE"]), keys_before, "nothing written");
    // ward still answers checks, and the same requests made good work.
    let good = api
        .create_session(authed(session(
            "alice",
            "a@x",
            &format!("FP2:{}", "a".repeat(64)),
            60,
        )))
        .await
        .unwrap()
        .into_inner();
    let cookie = format!("session_id={}", good.session_id);
    assert_eq!(status_with(ward.grpc_addr, ("cookie", &cookie)).await, 200);
}

/// The two ACL users docs/redis-contract.md gives (read from the page
/// itself): the read-only one is enough for checks, the other for every
/// management write (scripts included: Redis checks a script's commands
/// against the user too).
#[tokio::test]
async fn the_documented_acl_users_are_enough() {
    let page = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/redis-contract.md");
    let page = std::fs::read_to_string(page).unwrap();
    let lines: Vec<&str> = page
        .lines()
        .filter(|l| l.starts_with("ACL SETUSER ward"))
        .collect();
    assert_eq!(lines.len(), 2, "the page gives a reader and a writer");
    let redis = RedisServer::start().await;
    const PASSWORD: &str = "acl-password-0123456789";
    let password = format!(">{PASSWORD}");
    for line in &lines {
        let args: Vec<&str> = line
            .split_whitespace()
            .map(|w| if w == ">CHANGE-ME" { &password } else { w })
            .collect();
        assert_eq!(redis.cli(&args).trim(), "OK", "{line}");
    }
    let as_user = |dir: &tempfile::TempDir, user: &str| {
        let url = format!("{{url: \"{}\"}}", redis.url());
        let with = format!(
            "{{url: \"{}\", username: {user}, password: {{value: \"{PASSWORD}\"}}}}",
            redis.url()
        );
        config(&redis, dir).replace(&url, &with)
    };

    // The reader: a session a login service wrote (as another user) is
    // checked, and its revocation, published, reaches the cache.
    let dir = tempfile::tempdir().unwrap();
    let reader = Ward::start(&as_user(&dir, "ward")).await;
    let sid = ward::session::generate_id().unwrap();
    let key = format!("session:{sid}");
    let exp = (tokens::now() + 3600).to_string();
    redis.cli(&["HSET", &key, "user_id", "alice", "expires_at", &exp]);
    redis.cli(&["EXPIRE", &key, "3600"]);
    let cookie = format!("session_id={sid}");
    assert_eq!(
        status_with(reader.grpc_addr, ("cookie", &cookie)).await,
        200
    );
    redis.cli(&["HSET", &key, "revoked", "1"]);
    redis.cli(&["PUBLISH", ward::store::keys::INVALIDATION_CHANNEL, &key]);
    assert_eq!(
        status_after_write(reader.grpc_addr, ("cookie", &cookie), 401).await,
        401
    );

    // The writer: every management call.
    let dir = tempfile::tempdir().unwrap();
    let writer = Ward::start(&as_user(&dir, "ward-admin")).await;
    let mut api = client(&writer).await;
    let created = api
        .create_session(authed(CreateSessionRequest {
            user_id: "bob".into(),
            ttl_seconds: 600,
            oidc_issuer: "https://idp.test".into(),
            oidc_sid: "idp-sid".into(),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    let cookie = format!("session_id={}", created.session_id);
    assert_eq!(
        status_with(writer.grpc_addr, ("cookie", &cookie)).await,
        200
    );
    let user = |id: &str| ListSessionsRequest { user_id: id.into() };
    assert_eq!(
        api.list_sessions(authed(user("bob")))
            .await
            .unwrap()
            .into_inner()
            .sessions
            .len(),
        1
    );
    let sid = created.session_id.clone();
    api.get_session(authed(GetSessionRequest {
        session_id: sid.clone(),
    }))
    .await
    .unwrap();
    api.revoke_session(authed(RevokeSessionRequest { session_id: sid }))
        .await
        .unwrap();
    api.revoke_user_sessions(authed(RevokeUserSessionsRequest {
        user_id: "bob".into(),
    }))
    .await
    .unwrap();
    let key = api
        .create_api_key(authed(CreateApiKeyRequest {
            user_id: "bob".into(),
            name: "ci".into(),
            scopes: vec![],
            expires_in_seconds: 600,
        }))
        .await
        .unwrap()
        .into_inner();
    api.list_api_keys(authed(ListApiKeysRequest {
        user_id: "bob".into(),
    }))
    .await
    .unwrap();
    let rotated = api
        .rotate_api_key(authed(RotateApiKeyRequest {
            key_id: key.key_id.clone(),
            overlap_seconds: 0,
        }))
        .await
        .unwrap()
        .into_inner();
    let new_id = rotated.key_id;
    api.revoke_api_key(authed(RevokeApiKeyRequest { key_id: new_id }))
        .await
        .unwrap();
    api.revoke_token(authed(RevokeTokenRequest {
        jti: "acl-jti".into(),
        expires_at: tokens::now() + 600,
    }))
    .await
    .unwrap();
    assert_eq!(redis.cli(&["EXISTS", "revoked_jti:acl-jti"]).trim(), "1");
}
