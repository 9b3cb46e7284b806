//! Micro-benchmarks of ward's hot path: the pure pieces of a check and the
//! cached decision path, through the library's public API.
//!
//! Run with `cargo bench --bench hot_path`. Numbers on a shared, noisy
//! machine only mean something as ratios against a baseline measured in
//! the same run: `baseline/sha256_token` is the unavoidable cost of a cache
//! lookup (hashing the token), `baseline/block_on_ready` the cost of
//! driving a ready future on a current-thread runtime.
//!
//! The async `authenticate` benches drive a whole batch of calls inside one
//! `block_on` (what criterion's `async_tokio` support does), so the
//! per-call figure excludes runtime entry.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use criterion::{Criterion, criterion_group, criterion_main};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use std::hint::black_box;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use ward::config::{Config, ProcessEnv, SecretSource, StaticKey};
use ward::credentials::Extractor;
use ward::credentials::hash_credential;
use ward::headers::ManagedHeaders;
use ward::identity::ClaimRenderer;
use ward::reason::Reason;
use ward::wiring::{self, ServerChecker};

use ward::credential_kind::CredentialKind;
use ward::jwks::KeyStore;
use ward::jwt::{KeySet, Rules, Verifier, keys};
use ward::metrics::Metrics;
use ward::request::{Headers, Request};

/// The HMAC secret of the test configs (64 bytes: enough for HS512).
const HMAC_SECRET: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
const ISSUER: &str = "https://idp.test";
const AUDIENCE: &str = "api";
/// Distinct tokens for the cache-miss benches.
const POOL: usize = 10_000;

/// The algorithms `verify/<ALG>` covers, each with its fixture key pair.
const ALGS: [(Algorithm, &str, &str); 6] = [
    (Algorithm::HS256, "", ""),
    (Algorithm::RS256, "rsa.key", "rsa.pub"),
    (Algorithm::PS256, "rsa.key", "rsa.pub"),
    (Algorithm::ES256, "ec256.key", "ec256.pub"),
    (Algorithm::ES384, "ec384.key", "ec384.pub"),
    (Algorithm::EdDSA, "ed25519.key", "ed25519.pub"),
];

fn fixture(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/keys")
        .join(name)
}

fn alg_name(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::HS256 => "HS256",
        Algorithm::RS256 => "RS256",
        Algorithm::PS256 => "PS256",
        Algorithm::ES256 => "ES256",
        Algorithm::ES384 => "ES384",
        Algorithm::EdDSA => "EdDSA",
        other => panic!("no fixture for {other:?}"),
    }
}

fn encoding_key(alg: Algorithm, private: &str) -> EncodingKey {
    let pem = || std::fs::read(fixture(private)).unwrap();
    match alg {
        Algorithm::HS256 => EncodingKey::from_secret(HMAC_SECRET.as_bytes()),
        Algorithm::ES256 | Algorithm::ES384 => EncodingKey::from_ec_pem(&pem()).unwrap(),
        Algorithm::EdDSA => EncodingKey::from_ed_pem(&pem()).unwrap(),
        _ => EncodingKey::from_rsa_pem(&pem()).unwrap(),
    }
}

/// The config entry for one verification key, with `kid` = the alg name.
fn static_key(alg: Algorithm, public: &str) -> StaticKey {
    let hmac = alg == Algorithm::HS256;
    StaticKey {
        kid: Some(alg_name(alg).into()),
        alg: alg_name(alg).into(),
        pem_file: (!hmac).then(|| fixture(public)),
        pem: None,
        secret: hmac.then(|| SecretSource {
            value: Some(HMAC_SECRET.into()),
            file: None,
            env: None,
        }),
        allowed_types: None,
    }
}

/// Typical access-token claims: registered claims plus email, roles and
/// an OAuth scope string.
fn claims(sub: &str, jti: usize, now: u64) -> Value {
    json!({
        "sub": sub,
        "iss": ISSUER,
        "aud": AUDIENCE,
        "iat": now,
        "nbf": now,
        "exp": now + 3600,
        "jti": format!("jti-{jti:08}"),
        "email": format!("{sub}@example.com"),
        "roles": ["reader", "writer"],
        "scope": "openid profile email read:orders",
    })
}

fn sign(alg: Algorithm, key: &EncodingKey, claims: &Value) -> String {
    let mut header = Header::new(alg);
    header.kid = Some(alg_name(alg).into());
    jsonwebtoken::encode(&header, claims, key).unwrap()
}

/// A config as a deployment would write it: issuer and audience checked,
/// the given keys, defaults elsewhere.
fn config(keys: Vec<StaticKey>) -> Config {
    let mut config = Config::default();
    config.jwt.issuers = vec![ISSUER.into()];
    config.jwt.audiences = vec![AUDIENCE.into()];
    config.jwt.keys = keys;
    config
}

fn verifier(config: &Config) -> Verifier {
    Verifier {
        max_token_bytes: config.jwt.max_token_bytes,
        rules: Rules {
            leeway: config.jwt.leeway,
            issuers: config.jwt.issuers.clone(),
            audiences: config.jwt.audiences.clone(),
            max_lifetime: config.jwt.max_lifetime,
        },
    }
}

/// The headers Envoy forwards for a typical browser/API request: 12 of
/// them, lowercase, the credential in `authorization`.
fn request_headers(token: &str) -> Vec<(String, String)> {
    [
        (":authority", "api.example.com"),
        (":method", "GET"),
        (":path", "/v1/orders?limit=50&cursor=eyJpZCI6MTIzNH0"),
        (":scheme", "https"),
        ("accept", "application/json, text/plain, */*"),
        ("accept-encoding", "gzip, deflate, br"),
        ("accept-language", "en-GB,en;q=0.9"),
        (
            "user-agent",
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36",
        ),
        ("x-forwarded-for", "203.0.113.7, 10.0.0.12"),
        ("x-forwarded-proto", "https"),
        ("x-request-id", "6f1c1e6e-3b0b-4b8e-9f3a-2a0d6c1f9e42"),
        ("authorization", &format!("Bearer {token}")),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

fn request(headers: &[(String, String)]) -> Request<'_> {
    Request {
        method: "GET",
        host: "api.example.com",
        path: "/v1/orders",
        headers: Headers::owned(headers),
        policy: None,
        source_ip: None,
        principal: None,
    }
}

/// Mints `n` distinct RS256 tokens (distinct `jti`) on every core.
fn rs256_pool(n: usize, now: u64) -> Vec<String> {
    let key = encoding_key(Algorithm::RS256, "rsa.key");
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = n.div_ceil(threads);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let key = &key;
                s.spawn(move || {
                    (t * chunk..((t + 1) * chunk).min(n))
                        .map(|i| sign(Algorithm::RS256, key, &claims("alice", i, now)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    })
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn authenticator(config: &Config) -> ServerChecker {
    let store = ward::store::Store::Memory(Arc::default());
    checker(config, store)
}

/// The whole check (policy, credential, authentication) over `store`.
fn checker(config: &Config, store: ward::store::Store) -> ServerChecker {
    let keys = KeyStore::new(&config.jwt).unwrap();
    let metrics = Arc::new(Metrics::new().unwrap());
    let lookups = Arc::new(ward::lookup::Lookups::new(config, store, metrics.clone()));
    wiring::checker(config, keys, lookups, metrics).unwrap()
}

/// Each request's headers, prepared up front so the benches time only
/// `authenticate`.
fn header_maps(tokens: &[String]) -> Vec<Vec<(String, String)>> {
    tokens.iter().map(|t| request_headers(t)).collect()
}

fn bench_pure(c: &mut Criterion) {
    let now = ward::unix_now();
    let config = config(vec![static_key(Algorithm::RS256, "rsa.pub")]);
    let token = sign(
        Algorithm::RS256,
        &encoding_key(Algorithm::RS256, "rsa.key"),
        &claims("alice", 0, now),
    );
    let headers = request_headers(&token);

    let extractor = Extractor::from_config(&config);
    assert!(
        extractor
            .extract(&request(&headers), &mut String::new())
            .is_ok()
    );
    c.bench_function("extract", |b| {
        b.iter(|| {
            extractor
                .extract(black_box(&request(&headers)), &mut String::new())
                .is_ok()
        })
    });

    let renderer = ClaimRenderer::new(
        &config.jwt.claims,
        ward::identity::HeaderRules::new(&config.headers),
    );
    let Value::Object(map) = claims("alice", 0, now) else {
        unreachable!()
    };
    let identity = renderer.render(&map, CredentialKind::Jwt).unwrap();
    assert_eq!(identity.headers().len(), 5, "{identity:?}");
    c.bench_function("claims_to_identity", |b| {
        b.iter(|| renderer.render(black_box(&map), CredentialKind::Jwt))
    });

    // 15 client headers: the 12 above, plus 3 forged identity headers in
    // the spellings a client would try.
    let managed = ManagedHeaders::from_config(&config);
    let mut client = headers.clone();
    for forged in ["x-user-id", "x_user_roles", "x-auth-admin"] {
        client.push((forged.into(), "root".into()));
    }
    assert_eq!(client.len(), 15);
    let scrub_req = request(&client);
    let removed = managed.to_remove(scrub_req.header_names(), identity.headers());
    assert_eq!(removed.len(), 2, "{removed:?}"); // x-user-id is overwritten
    c.bench_function("scrub", |b| {
        b.iter(|| managed.to_remove(black_box(scrub_req).header_names(), identity.headers()))
    });

    let request_id = Headers::owned(&headers)
        .get("x-request-id")
        .unwrap_or_default();
    c.bench_function("deny_body", |b| {
        b.iter(|| black_box(Reason::BadSignature).body(black_box(Some(request_id))))
    });

    let mut group = c.benchmark_group("baseline");
    group.bench_function("sha256_token", |b| {
        b.iter(|| hash_credential(black_box(&token)))
    });
    let rt = runtime();
    group.bench_function("block_on_ready", |b| {
        b.iter(|| rt.block_on(async { black_box(1) }))
    });
    group.finish();
}

fn bench_verify(c: &mut Criterion) {
    let now = ward::unix_now();
    let statics: Vec<StaticKey> = ALGS
        .iter()
        .map(|(alg, _, public)| static_key(*alg, public))
        .collect();
    let config = config(statics.clone());
    let keys = KeySet::new(
        statics
            .iter()
            .map(|k| Arc::new(keys::load_static(k, &Default::default(), &ProcessEnv).unwrap())),
    );
    let verifier = verifier(&config);
    let mut group = c.benchmark_group("verify");
    for (alg, private, _) in ALGS {
        let token = sign(alg, &encoding_key(alg, private), &claims("alice", 0, now));
        assert!(verifier.verify(&token, &keys, now).is_ok(), "{alg:?}");
        group.bench_function(alg_name(alg), |b| {
            b.iter(|| verifier.verify(black_box(&token), &keys, now))
        });
    }
    group.finish();
}

fn bench_authenticate(c: &mut Criterion) {
    let now = ward::unix_now();
    let rt = runtime();
    let rs256 = static_key(Algorithm::RS256, "rsa.pub");
    // Minted on first use (about 10 s of RSA signing), so a filtered run
    // such as `-- verify` does not pay for it.
    let pool = OnceLock::new();
    let pool = || pool.get_or_init(|| header_maps(&rs256_pool(POOL, now)));
    let mut group = c.benchmark_group("authenticate");

    // One token, already cached: the steady state for a returning caller.
    let hit = authenticator(&config(vec![rs256.clone()]));
    let token = sign(
        Algorithm::RS256,
        &encoding_key(Algorithm::RS256, "rsa.key"),
        &claims("alice", 0, now),
    );
    let one = request_headers(&token);
    let decision = rt.block_on(hit.check(&request(&one), now));
    assert!(matches!(decision, ward::decision::Decision::Allow(_)));
    group.bench_function("cache_hit", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let req = request(&one);
                let start = Instant::now();
                for _ in 0..iters {
                    black_box(hit.check(black_box(&req), now).await);
                }
                start.elapsed()
            })
        })
    });

    // The same hit on a policy that sends an identity token (issue 18):
    // the token kept in the identity is reused, never signed on a hit.
    let mut signed = config(vec![rs256.clone()]);
    let with_token = "identity_token: {issuer: \"http://ward.bench\"}\n\
                      policies: {backend: {identity_token: {audience: bench}}}\n\
                      default_policy: backend\n";
    let extra = ward::config::Config::from_yaml(with_token).unwrap();
    signed.identity_token = extra.identity_token;
    signed.policies = extra.policies;
    signed.default_policy = extra.default_policy;
    let hit_signed = authenticator(&signed);
    let decision = rt.block_on(hit_signed.check(&request(&one), now));
    assert!(
        matches!(&decision, ward::decision::Decision::Allow(a) if a.token.is_some()),
        "{decision:?}"
    );
    group.bench_function("cache_hit_identity_token", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let req = request(&one);
                let start = Instant::now();
                for _ in 0..iters {
                    black_box(hit_signed.check(black_box(&req), now).await);
                }
                start.elapsed()
            })
        })
    });

    // Many cached callers: the same hit path over 10k entries, so the
    // cache and the requests no longer sit in L1/L2.
    group.bench_function("cache_hit_10k", |b| {
        let pool = pool();
        let warm = authenticator(&config(vec![rs256.clone()]));
        for h in pool {
            rt.block_on(warm.check(&request(h), now));
        }
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for i in 0..iters as usize {
                    let req = request(&pool[i % POOL]);
                    black_box(warm.check(black_box(&req), now).await);
                }
                start.elapsed()
            })
        })
    });

    // Cache disabled: every call parses, looks up the key, verifies RS256,
    // checks claims and renders the identity. On the calling thread
    // (`jwt.verify.threads: 0`): the work itself, not the hand-off to the
    // verification threads and back.
    let mut cold_config = config(vec![rs256.clone()]);
    cold_config.cache.enabled = false;
    cold_config.jwt.verify.threads = Some(0);
    let cold = authenticator(&cold_config);
    group.bench_function("cache_miss_rs256", |b| {
        let pool = pool();
        let mut next = 0usize;
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    let req = request(&pool[next % POOL]);
                    next += 1;
                    black_box(cold.check(black_box(&req), now).await);
                }
                start.elapsed()
            })
        })
    });

    // Cache enabled and every token new: the real first-sight cost, miss
    // plus moka insert. A fresh cache each time the pool runs out, built
    // (and dropped) outside the timed section.
    let mut fresh_config = config(vec![rs256]);
    fresh_config.jwt.verify.threads = Some(0);
    group.bench_function("cache_miss_insert_rs256", |b| {
        let pool = pool();
        b.iter_custom(|iters| {
            let mut left = iters as usize;
            let mut total = Duration::ZERO;
            while left > 0 {
                let authn = authenticator(&fresh_config);
                let n = left.min(POOL);
                total += rt.block_on(async {
                    let start = Instant::now();
                    for h in &pool[..n] {
                        black_box(authn.check(black_box(&request(h)), now).await);
                    }
                    start.elapsed()
                });
                left -= n;
            }
            total
        })
    });
    group.finish();
}

/// Session and API-key checks answered from the store cache (embedded
/// store behind it): the steady state for a returning browser or client.
fn bench_store_credentials(c: &mut Criterion) {
    use ward::apikey::NewApiKey;
    use ward::session::NewSession;
    use ward::store::records::Records;
    let now = ward::unix_now();
    let rt = runtime();
    let config = config(vec![]);
    let memory = Arc::new(ward::store::memory::MemoryStore::default());
    let names = ward::store::keys::KeyNames::default();
    let sid = "112f551c-d6fe-4e67-a818-01deee0e47c9";
    let key = ward::apikey::generate("ward").unwrap();
    rt.block_on(async {
        let records = Records::new(&*memory, &names);
        let session = NewSession {
            user_id: "alice".into(),
            email: Some("alice@example.com".into()),
            roles: vec!["reader".into()],
            ttl: Duration::from_secs(3600),
            ..NewSession::default()
        };
        records.create_session(sid, &session, now).await.unwrap();
        let api_key = NewApiKey {
            key_id: "key_bench".into(),
            user_id: "bot".into(),
            name: "bench".into(),
            scopes: vec!["read".into()],
            expires_at: None,
        };
        let hash = ward::apikey::hash_hex(&key);
        records.create_api_key(&hash, &api_key, now).await.unwrap();
    });
    let authn = checker(&config, ward::store::Store::Memory(memory));

    let mut group = c.benchmark_group("authenticate");
    let cookie = Vec::from([("cookie".to_string(), format!("session_id={sid}"))]);
    let api = Vec::from([("x-api-key".to_string(), key.clone())]);
    for (name, headers) in [("session_hit", &cookie), ("apikey_hit", &api)] {
        let decision = rt.block_on(authn.check(&request(headers), now));
        assert!(
            matches!(decision, ward::decision::Decision::Allow(_)),
            "{name}"
        );
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let req = request(headers);
                    let start = Instant::now();
                    for _ in 0..iters {
                        black_box(authn.check(black_box(&req), now).await);
                    }
                    start.elapsed()
                })
            })
        });
    }
    group.finish();
}

/// The brute-force limiter's check before any store call, and path
/// canonicalization before route matching.
fn bench_limits(c: &mut Criterion) {
    use std::net::IpAddr;
    use ward::limiter::Limiter;
    let client: IpAddr = "203.0.113.7".parse().unwrap();
    let credential = [0x5au8; 8];
    let mut group = c.benchmark_group("limiter");

    // Nothing blocked anywhere: the steady state.
    let calm = Limiter::new(&ward::config::LimitsConfig::default());
    assert_eq!(calm.blocked(Some(client), Some(&credential)), None);
    group.bench_function("blocked", |b| {
        b.iter(|| calm.blocked(black_box(Some(client)), black_box(Some(&credential))))
    });

    // Under attack: some other client is blocked, so every check looks
    // both keys up (and finds nothing for this client).
    let attacked = Limiter::new(&ward::config::LimitsConfig::default());
    let attacker: IpAddr = "198.51.100.1".parse().unwrap();
    while attacked.record_failure(Some(attacker), None).is_none() {}
    assert!(attacked.blocked(Some(attacker), None).is_some());
    assert_eq!(attacked.blocked(Some(client), Some(&credential)), None);
    group.bench_function("blocked_under_attack", |b| {
        b.iter(|| attacked.blocked(black_box(Some(client)), black_box(Some(&credential))))
    });

    // A failure from a new IP with a new credential: two bucket inserts.
    let failing = Limiter::new(&ward::config::LimitsConfig::default());
    let mut n = 0u32;
    group.bench_function("record_failure_new_keys", |b| {
        b.iter(|| {
            n = n.wrapping_add(1);
            failing.record_failure(Some(IpAddr::from(n.to_be_bytes())), Some(&n.to_le_bytes()))
        })
    });
    group.finish();

    let path = "/v1/orders/1234/items?limit=50&cursor=eyJpZCI6MTIzNH0";
    assert_eq!(
        ward::policy::path::canonicalize(path).as_deref(),
        Ok("/v1/orders/1234/items")
    );
    c.bench_function("path/canonicalize", |b| {
        b.iter(|| ward::policy::path::canonicalize(black_box(path)))
    });
}

fn settings() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(30)
}

/// Route selection: no routes (the default policy), and 10k routes of
/// which none matches until the last (exact, prefix and glob, a third
/// each), for a path that is already canonical and one that is not.
fn bench_routes(c: &mut Criterion) {
    let mut group = c.benchmark_group("policy");
    let none = ward::policy::Policies::from_config(&Config::default()).unwrap();
    let mut yaml = String::from("routes:\n");
    for i in 0..9999 {
        yaml.push_str(&match i % 3 {
            0 => format!("- {{exact: /svc{i}/health, policy: public}}\n"),
            1 => format!("- {{prefix: /svc{i}, policy: public}}\n"),
            _ => format!("- {{glob: \"/g{i}/*/items\", policy: public}}\n"),
        });
    }
    yaml.push_str("- {prefix: /, policy: required}\n");
    let many = ward::policy::Policies::from_config(&Config::from_yaml(&yaml).unwrap()).unwrap();
    let path = "/api/v1/items?limit=10";
    assert!(many.select(None, "h", "GET", path).is_ok());
    group.bench_function("select_no_routes", |b| {
        b.iter(|| black_box(none.select(None, "h", "GET", black_box(path)).is_ok()))
    });
    group.bench_function("select_10k_routes", |b| {
        b.iter(|| black_box(many.select(None, "h", "GET", black_box(path)).is_ok()))
    });
    group.bench_function("select_10k_routes_dirty_path", |b| {
        let dirty = "/api//v1/./x/../items;p=1?limit=10";
        b.iter(|| black_box(many.select(None, "h", "GET", black_box(dirty)).is_ok()))
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = settings();
    targets = bench_pure, bench_verify, bench_authenticate, bench_store_credentials, bench_routes,
        bench_limits
}
criterion_main!(benches);
