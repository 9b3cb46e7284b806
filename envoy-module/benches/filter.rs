//! The module's own work on a cache hit, apart from Envoy's.
//!
//! Through a real Envoy (`scripts/bench.sh`, the envoy phase) the module's
//! JWT hit is compared with a do-nothing module that makes the same calls
//! into Envoy (`benches/tools/noop_module.c`, config `shaped`); what is
//! left between them is what ward computes. This bench isolates that part
//! on a host that does nothing with the calls:
//!
//! - `filter/shaped_noop` makes the calls of the shaped do-nothing module
//!   (all headers, the route's config, the source address, a histogram
//!   value, two metadata strings in one call, four headers added, a route-cache
//!   clear): the baseline, measured in the same run;
//! - `filter/jwt_hit`, `filter/session_hit`: a stream through
//!   [`Filter::on_request_headers`] whose credential is in the cache.
//!
//! Inside Envoy the module runs between Envoy's own work on other streams,
//! which leaves little of the module's code and data in the CPU's first
//! two cache levels; the `_cold` variants evict them (writing a buffer the
//! size of the L2 cache) before each call, untimed.
//!
//! Read the hits as ratios to `shaped_noop` (`_cold` to `_cold`). Run with
//! `CARGO_TARGET_DIR=target/fuzzing cargo bench -p ward-envoy-module --features fuzzing --bench filter`
//! (its own target directory: this build's `.so` has no Envoy hooks).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use std::hint::black_box;
use std::net::IpAddr;
use std::sync::{Arc, OnceLock};
use ward_envoy::filter::{Config, Filter, Host, LogLevel, Resume, Verdict};
use ward_envoy::fuzzing::NoStats;
use ward_envoy::peer::CertField;

const SESSION: &str = "112f551c-d6fe-4e67-a818-01deee0e47c9";

/// A stream whose calls cost nothing beyond what the module hands over.
struct Lean<'a> {
    headers: &'a [(&'a [u8], &'a [u8])],
    sunk: usize,
}

impl Host for Lean<'_> {
    fn request_headers(&mut self) -> Vec<(&[u8], &[u8])> {
        self.headers.to_vec()
    }
    fn set_header(&mut self, name: &str, value: Option<&str>) {
        self.sunk += name.len() + value.map_or(0, str::len);
    }
    fn add_header(&mut self, name: &str, value: &str) {
        self.sunk += name.len() + value.len();
    }
    fn clear_route_cache(&mut self) {
        self.sunk += 1;
    }
    fn send_response(&mut self, status: u16, _: &[(&str, &str)], body: &str, _: &str) {
        panic!("a deny ({status}): {body}");
    }
    fn source_ip(&mut self) -> Option<IpAddr> {
        ward_envoy::filter::parse_ip("127.0.0.1:5000")
    }
    fn peer_certificate(&mut self, _: CertField) -> Option<&[u8]> {
        None
    }
    fn route_policy(&mut self) -> Option<Arc<str>> {
        None
    }
    fn log(&mut self, _: LogLevel, _: &str) {}
    fn resumer(&mut self) -> Option<Box<dyn Resume>> {
        Some(Box::new(Woken))
    }
    fn continue_decoding(&mut self) {}
    fn increment_counter(&mut self, _: usize, _: &[&str], n: u64) {
        self.sunk += n as usize;
    }
    fn record_histogram(&mut self, _: usize, n: u64) {
        self.sunk += n as usize;
    }
    fn set_metadata(&mut self, ns: &str, entries: &[(&str, &str)]) {
        let sizes = entries.iter().map(|(k, v)| k.len() + v.len());
        self.sunk += ns.len() + sizes.sum::<usize>();
    }
}

/// The first check of a credential waits on the runtime; nothing resumes
/// it here (the next check finds the cache filled).
struct Woken;

impl Resume for Woken {}

fn fixture(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/keys")
        .join(name)
}

/// The bench bed's module config (scripts/bench/bed.py `module_config`),
/// with a seed file for the session.
fn config() -> &'static Config {
    static CONFIG: OnceLock<Config> = OnceLock::new();
    CONFIG.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("ward-bench-module-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let seed = dir.join("seed.yaml");
        let sessions = format!(
            "sessions:\n  - {{id: {SESSION}, user_id: carol, roles: [reader], email: carol@example.com}}\n"
        );
        std::fs::write(&seed, sessions).unwrap();
        let yaml = format!(
            "store: {{seed_file: {}}}\njwt:\n  issuers: [https://idp.test]\n  audiences: [api]\n  keys: [{{kid: bench-rs256, alg: RS256, pem_file: {}}}]\ncache: {{max_entries: 200000, max_ttl: 300s, store_max_entries: 400000}}\n",
            seed.display(),
            fixture("rsa.pub").display(),
        );
        Config::new(yaml.as_bytes(), &mut NoStats).unwrap()
    })
}

/// A token like the bed's (`benches/tools/loadgen.rs`), RS256.
fn token() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some("bench-rs256".into());
    let claims = serde_json::json!({
        "sub": "user-000001", "iss": "https://idp.test", "aud": "api",
        "iat": now, "exp": now + 3600, "jti": "user-000001",
        "email": "user-000001@example.com", "roles": ["reader"],
    });
    let pem = std::fs::read(fixture("rsa.key")).unwrap();
    let key = EncodingKey::from_rsa_pem(&pem).unwrap();
    jsonwebtoken::encode(&header, &claims, &key).unwrap()
}

/// The headers Envoy holds for one of h2load's requests, with `extra`.
fn headers(extra: (&'static str, String)) -> Vec<(String, String)> {
    [
        (":authority", "127.0.0.1:10000".to_string()),
        (":path", "/".into()),
        (":method", "GET".into()),
        (":scheme", "http".into()),
        ("user-agent", "h2load nghttp2/1.52.0".into()),
        ("x-forwarded-proto", "http".into()),
        (
            "x-request-id",
            "5c1d3f9e-8a77-4a8e-9a43-7f3c2f7a9b10".into(),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .chain(std::iter::once((extra.0.to_string(), extra.1)))
    .collect()
}

/// Bytes written between the calls of a `_cold` bench: more than the
/// L2 cache of the machines this runs on.
const EVICT: usize = 4 << 20;

/// Pushes the module's lines out of the first two cache levels.
fn evict(buffer: &mut [u8]) {
    for line in buffer.chunks_mut(64) {
        line[0] = line[0].wrapping_add(1);
    }
    black_box(&buffer);
}

fn hit(c: &mut Criterion, name: &str, owned: &[(String, String)]) {
    let raw: Vec<(&[u8], &[u8])> = owned
        .iter()
        .map(|(k, v)| (k.as_bytes(), v.as_bytes()))
        .collect();
    let config = config();
    let mut stream = Lean {
        headers: &raw,
        sunk: 0,
    };
    // Fill the cache (a miss may wait on the runtime).
    for _ in 0..200 {
        if Filter::new(config).on_request_headers(&mut stream) == Verdict::Continue {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert_eq!(
        Filter::new(config).on_request_headers(&mut stream),
        Verdict::Continue
    );
    c.bench_function(name, |b| {
        b.iter(|| {
            let mut filter = Filter::new(config);
            black_box(filter.on_request_headers(&mut stream))
        })
    });
    let mut buffer = vec![0u8; EVICT];
    c.bench_function(&format!("{name}_cold"), |b| {
        b.iter_batched(
            || evict(&mut buffer),
            |()| {
                let mut filter = Filter::new(config);
                black_box(filter.on_request_headers(&mut stream))
            },
            BatchSize::PerIteration,
        )
    });
}

/// What the shaped do-nothing module does, on the same host.
fn shaped_noop(c: &mut Criterion, owned: &[(String, String)]) {
    let raw: Vec<(&[u8], &[u8])> = owned
        .iter()
        .map(|(k, v)| (k.as_bytes(), v.as_bytes()))
        .collect();
    let mut stream = Lean {
        headers: &raw,
        sunk: 0,
    };
    let shaped = |stream: &mut Lean<'_>| {
        let n = black_box(stream.request_headers()).len();
        black_box(stream.route_policy());
        black_box(stream.source_ip());
        stream.record_histogram(0, n as u64);
        stream.set_metadata(
            "ward",
            &[("user_id", "user-000001"), ("auth_method", "jwt")],
        );
        for (name, value) in [
            ("x-user-id", "user-000001"),
            ("x-auth-method", "jwt"),
            ("x-user-email", "user-000001@example.com"),
            ("x-user-roles", "reader"),
        ] {
            stream.add_header(name, value);
        }
        stream.clear_route_cache();
    };
    c.bench_function("filter/shaped_noop", |b| b.iter(|| shaped(&mut stream)));
    let mut buffer = vec![0u8; EVICT];
    c.bench_function("filter/shaped_noop_cold", |b| {
        b.iter_batched(
            || evict(&mut buffer),
            |()| shaped(&mut stream),
            BatchSize::PerIteration,
        )
    });
}

fn benches(c: &mut Criterion) {
    let jwt = headers(("authorization", format!("Bearer {}", token())));
    shaped_noop(c, &jwt);
    hit(c, "filter/jwt_hit", &jwt);
    hit(
        c,
        "filter/session_hit",
        &headers(("x-session-id", SESSION.into())),
    );
}

criterion_group!(filter, benches);
criterion_main!(filter);
