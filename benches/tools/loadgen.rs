//! The benchmark bed's gRPC load generator for `Authorization/Check`, and its
//! token minter. Used by `scripts/bench/`; see `docs/benchmarks.md`.
//!
//! ```text
//! loadgen mint  --alg RS256 --kid bench-rs256 --count 50000 --out tokens.txt
//! loadgen jwks  --alg RS256 --kid bench-rs256            # public JWKS on stdout
//! loadgen frame --token-file tokens.txt --out check.bin  # one gRPC frame, for h2load -d
//! loadgen run   --addr 127.0.0.1:9001 --conns 4 --depth 32 --duration 10 --tokens tokens.txt
//! ```
//!
//! `run` speaks HTTP/2 itself (the `h2` crate under tonic) so that one core
//! of load generator outruns one core of server: every request body is a
//! pre-encoded gRPC frame, nothing is buffered or boxed per call. It keeps
//! `conns` connections with `depth` requests in flight on each, picks a
//! token per request from a pool (cycling, or each token once with `--once`,
//! or a fresh token every Nth request with `--fresh`; `--header-name` and
//! `--value-prefix` send pool lines as, say, `cookie: session_id=<line>` or
//! `x-api-key: <line>` instead of `authorization: Bearer <line>`, in gRPC
//! checks or in HTTP mode's GETs), decodes every
//! `CheckResponse` and counts allows, denies and errors, so a fast deny is
//! never mistaken for a fast allow. It writes one JSON report: counts,
//! throughput, a latency histogram's percentiles, the longest gap between two
//! completions, and completions per second.
//!
//! With `--rps` it is open-loop: a pacer thread hands out send times at a
//! fixed rate (to the tasks in turn, with sub-millisecond precision, so the
//! load is smooth rather than bursts on tokio's 1 ms timer). A request whose
//! task was still busy when its time came counts its latency from that time
//! (coordinated omission is not hidden); otherwise from when it was sent.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::{Bytes, BytesMut};
use clap::{Parser, Subcommand};
use envoy_types::ext_authz::v3::pb::{CheckRequest, CheckResponse, HttpResponse};
use envoy_types::pb::envoy::config::core::v3::{Address, SocketAddress, address, socket_address};
use envoy_types::pb::envoy::service::auth::v3::AttributeContext;
use envoy_types::pb::envoy::service::auth::v3::attribute_context::{HttpRequest, Peer, Request};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use prost::Message;
use serde_json::json;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const KEYS: &str = "tests/fixtures/keys";
/// The HMAC secret of the test suite (tests/it/support/tokens.rs).
const HMAC_SECRET: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
const CHECK_PATH: &str = "/envoy.service.auth.v3.Authorization/Check";

#[derive(Parser)]
#[command(about = "gRPC Check load generator and token minter for the benchmark bed.")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Mint valid tokens, one per line, signed with the fixture keys.
    Mint {
        #[arg(long, default_value = "RS256")]
        alg: String,
        #[arg(long)]
        kid: Option<String>,
        #[arg(long, default_value_t = 1)]
        count: usize,
        /// Lifetime: `exp` = now + this many seconds.
        #[arg(long, default_value_t = 3600)]
        exp_secs: u64,
        /// Subjects are `<prefix><n>`.
        #[arg(long, default_value = "user-")]
        prefix: String,
        /// Signing threads (default: all CPUs).
        #[arg(long)]
        threads: Option<usize>,
        #[arg(long)]
        out: PathBuf,
    },
    /// Print the public JWKS of a fixture key.
    Jwks {
        #[arg(long, default_value = "RS256")]
        alg: String,
        #[arg(long)]
        kid: String,
    },
    /// Write one gRPC-framed CheckRequest (for `h2load -d`).
    Frame {
        /// Bearer token taken from the first line of this file; none if absent.
        #[arg(long)]
        token_file: Option<PathBuf>,
        #[arg(long)]
        out: PathBuf,
    },
    /// Drive load against a Check server and write a JSON report.
    Run(RunArgs),
}

#[derive(Parser, Clone)]
struct RunArgs {
    /// The gRPC server, host:port (plaintext HTTP/2).
    #[arg(long)]
    addr: SocketAddr,
    #[arg(long, default_value_t = 4)]
    conns: usize,
    /// Requests in flight per connection.
    #[arg(long, default_value_t = 32)]
    depth: usize,
    /// Measured seconds (after the warm-up).
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
    /// Seconds of load before measuring.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Token pool, one per line. Without it (and without --gen-hs256) no
    /// credential is sent.
    #[arg(long)]
    tokens: Option<PathBuf>,
    /// Use each pool token at most once, and stop when the pool runs out.
    #[arg(long)]
    once: bool,
    /// The request header that carries each pool line, e.g. `cookie` or
    /// `x-api-key` for sessions and API keys.
    #[arg(long, default_value = "authorization")]
    header_name: String,
    /// Prepended to each pool line to make the header's value, e.g.
    /// `session_id=` (with `--header-name cookie`) or `` (API keys).
    #[arg(long, default_value = "Bearer ")]
    value_prefix: String,
    /// A second pool of fresh tokens, each used once, for every
    /// `--fresh-every`-th request (the tail-stability mix).
    #[arg(long)]
    fresh: Option<PathBuf>,
    #[arg(long, default_value_t = 20)]
    fresh_every: u64,
    /// Instead of a pool: mint this many distinct HS256 tokens on the fly
    /// (subjects `fill-<offset + n>`), each sent once; then stop.
    #[arg(long)]
    gen_hs256: Option<u64>,
    #[arg(long, default_value_t = 0)]
    gen_offset: u64,
    #[arg(long, default_value = "bench-hs256")]
    gen_kid: String,
    /// HTTP mode: send `GET <path>` with `authorization: Bearer <token>`
    /// (to Envoy, say) instead of gRPC checks; 200 counts as an allow.
    #[arg(long)]
    http_path: Option<String>,
    /// Open-loop rate (requests per second, all connections together).
    #[arg(long)]
    rps: Option<f64>,
    /// Write the JSON report here (default: stdout).
    #[arg(long)]
    out: Option<PathBuf>,
}

fn main() {
    let cli = Cli::parse();
    match cli.command {
        Command::Mint {
            alg,
            kid,
            count,
            exp_secs,
            prefix,
            threads,
            out,
        } => mint(&alg, kid, count, exp_secs, &prefix, threads, &out),
        Command::Jwks { alg, kid } => {
            let alg = parse_alg(&alg);
            let mut jwk = jsonwebtoken::jwk::Jwk::from_encoding_key(&encoding_key(alg), alg)
                .expect("fixture key as JWK");
            jwk.common.key_id = Some(kid);
            println!("{}", json!({ "keys": [jwk] }));
        }
        Command::Frame { token_file, out } => {
            let token = token_file.map(|f| {
                let text = std::fs::read_to_string(&f).expect("read token file");
                text.lines()
                    .next()
                    .expect("token file is empty")
                    .to_string()
            });
            let cred = token.map(|t| ("authorization", format!("Bearer {t}")));
            std::fs::write(out, frame(cred)).expect("write frame");
        }
        Command::Run(args) => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("tokio runtime");
            let report = runtime.block_on(run(args.clone()));
            let text = serde_json::to_string_pretty(&report).expect("report as JSON");
            match args.out {
                Some(path) => std::fs::write(path, text + "\n").expect("write report"),
                None => println!("{text}"),
            }
        }
    }
}

// ---------------------------------------------------------------- tokens

fn parse_alg(alg: &str) -> Algorithm {
    alg.parse()
        .unwrap_or_else(|_| panic!("unknown algorithm {alg}"))
}

fn encoding_key(alg: Algorithm) -> EncodingKey {
    let pem = |f: &str| {
        std::fs::read(format!("{KEYS}/{f}"))
            .unwrap_or_else(|e| panic!("{KEYS}/{f}: {e} (run from the crate root)"))
    };
    match alg {
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => {
            EncodingKey::from_secret(HMAC_SECRET.as_bytes())
        }
        Algorithm::ES256 => EncodingKey::from_ec_pem(&pem("ec256.key")).unwrap(),
        Algorithm::ES384 => EncodingKey::from_ec_pem(&pem("ec384.key")).unwrap(),
        Algorithm::EdDSA => EncodingKey::from_ed_pem(&pem("ed25519.key")).unwrap(),
        _ => EncodingKey::from_rsa_pem(&pem("rsa.key")).unwrap(),
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Claims like the test suite's (`tests/it/support/tokens.rs`), with a unique
/// subject and `jti` so every token is distinct.
fn sign(alg: Algorithm, kid: Option<&str>, key: &EncodingKey, sub: &str, exp: u64) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_string);
    let now = now_secs();
    let claims = json!({
        "sub": sub,
        "iss": "https://idp.test",
        "aud": "api",
        "iat": now,
        "exp": exp,
        "jti": sub,
        "email": format!("{sub}@example.com"),
        "roles": ["reader"],
    });
    jsonwebtoken::encode(&header, &claims, key).expect("sign token")
}

fn mint(
    alg: &str,
    kid: Option<String>,
    count: usize,
    exp_secs: u64,
    prefix: &str,
    threads: Option<usize>,
    out: &PathBuf,
) {
    let alg = parse_alg(alg);
    let key = encoding_key(alg);
    let threads = threads
        .or_else(|| std::thread::available_parallelism().ok().map(|n| n.get()))
        .unwrap_or(1)
        .clamp(1, count.max(1));
    let exp = now_secs() + exp_secs;
    let per = count.div_ceil(threads);
    let chunks: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (key, kid) = (&key, kid.as_deref());
                s.spawn(move || {
                    let mut text = String::new();
                    for i in (t * per)..((t + 1) * per).min(count) {
                        text += &sign(alg, kid, key, &format!("{prefix}{i}"), exp);
                        text.push('\n');
                    }
                    text
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    std::fs::write(out, chunks.concat()).expect("write tokens");
}

/// What one request carries: a gRPC frame, or in HTTP mode the value of
/// its `authorization` header (empty: none).
fn payload(token: Option<&str>, http: bool) -> Bytes {
    match (http, token) {
        (false, token) => frame(token.map(|t| ("authorization", format!("Bearer {t}")))),
        (true, Some(token)) => Bytes::from(format!("Bearer {token}")),
        (true, None) => Bytes::new(),
    }
}

/// A pool file's lines as request bodies: each line goes in header `name`
/// as `prefix` + line (in HTTP mode the body is that header's value).
fn read_pool(path: &PathBuf, http: bool, name: &str, prefix: &str) -> Vec<Bytes> {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("token file {}: {e}", path.display()));
    text.lines()
        .filter(|l| !l.is_empty())
        .map(|t| match http {
            true => Bytes::from(format!("{prefix}{t}")),
            false => frame(Some((name, format!("{prefix}{t}")))),
        })
        .collect()
}

// ---------------------------------------------------------------- requests

/// A CheckRequest shaped like Envoy's for a typical API call, as one gRPC
/// frame (flag byte, big-endian length, protobuf). `cred`: one more header
/// (name, value), e.g. `authorization: Bearer <token>`.
fn frame(cred: Option<(&str, String)>) -> Bytes {
    let mut headers: HashMap<String, String> = [
        (":authority", "api.bench.test"),
        (":method", "GET"),
        (":path", "/api/v1/items?limit=10"),
        (":scheme", "http"),
        ("accept", "application/json"),
        ("user-agent", "bench/1.0"),
        ("x-forwarded-proto", "http"),
        ("x-request-id", "5f0c6f2e-3a5b-4c1d-9e8f-0a1b2c3d4e5f"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    if let Some((name, value)) = cred {
        headers.insert(name.into(), value);
    }
    let peer = |port: u32| Peer {
        address: Some(Address {
            address: Some(address::Address::SocketAddress(SocketAddress {
                address: "127.0.0.1".into(),
                port_specifier: Some(socket_address::PortSpecifier::PortValue(port)),
                ..Default::default()
            })),
        }),
        ..Default::default()
    };
    let check = CheckRequest {
        attributes: Some(AttributeContext {
            source: Some(peer(40000)),
            destination: Some(peer(8080)),
            request: Some(Request {
                http: Some(HttpRequest {
                    id: "1234567890".into(),
                    method: "GET".into(),
                    path: "/api/v1/items?limit=10".into(),
                    host: "api.bench.test".into(),
                    scheme: "http".into(),
                    protocol: "HTTP/1.1".into(),
                    headers,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
    };
    let len = check.encoded_len();
    let mut buf = BytesMut::with_capacity(5 + len);
    buf.extend_from_slice(&[0]);
    buf.extend_from_slice(&(len as u32).to_be_bytes());
    check.encode(&mut buf).expect("encode CheckRequest");
    buf.freeze()
}

/// Where the next request's body comes from.
enum Source {
    None(Bytes),
    Cycle(Vec<Bytes>),
    Once(Vec<Bytes>),
    Mixed {
        hot: Vec<Bytes>,
        fresh: Vec<Bytes>,
        every: u64,
    },
    Gen {
        count: u64,
        offset: u64,
        kid: String,
        key: EncodingKey,
    },
}

struct Shared {
    source: Source,
    /// HTTP mode: plain GETs (through Envoy) instead of gRPC checks.
    http: bool,
    /// HTTP mode: the header each body is the value of.
    http_header: http::HeaderName,
    next: AtomicUsize,
    next_fresh: AtomicUsize,
    /// Nanoseconds from `t0` of the last completion, and the longest gap.
    last_done: AtomicU64,
    max_gap: AtomicU64,
    /// Completions per second of the measured window, and the slowest
    /// request (ns) that completed in each second.
    per_second: Vec<AtomicU64>,
    per_second_max: Vec<AtomicU64>,
    t0: Instant,
    measure_from: Instant,
    end: Instant,
}

impl Shared {
    /// The next body, and whether it carries a fresh token (mixed mode),
    /// or `None` when the pool is used up or time is over.
    fn next_body(&self) -> Option<(Bytes, bool)> {
        if Instant::now() >= self.end {
            return None;
        }
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let body = match &self.source {
            Source::None(body) => Some(body.clone()),
            Source::Cycle(pool) => Some(pool[n % pool.len()].clone()),
            Source::Once(pool) => pool.get(n).cloned(),
            Source::Mixed { hot, fresh, every } => {
                if (n as u64) % every == every - 1 {
                    let f = self.next_fresh.fetch_add(1, Ordering::Relaxed);
                    // Out of fresh tokens: the run is over (the driver sizes
                    // the pool so this does not happen before the end).
                    return fresh.get(f).map(|b| (b.clone(), true));
                } else {
                    Some(hot[n % hot.len()].clone())
                }
            }
            Source::Gen {
                count,
                offset,
                kid,
                key,
            } => ((n as u64) < *count).then(|| {
                let sub = format!("fill-{}", offset + n as u64);
                let token = sign(Algorithm::HS256, Some(kid), key, &sub, now_secs() + 3600);
                payload(Some(&token), self.http)
            }),
        };
        body.map(|b| (b, false))
    }

    fn completed(&self, now: Instant, latency_ns: Option<u64>) {
        let ns = now.duration_since(self.t0).as_nanos() as u64;
        let prev = self.last_done.swap(ns, Ordering::Relaxed);
        if now >= self.measure_from && ns > prev {
            self.max_gap.fetch_max(ns - prev, Ordering::Relaxed);
        }
        if now >= self.measure_from {
            let s = now.duration_since(self.measure_from).as_secs() as usize;
            if let Some(c) = self.per_second.get(s) {
                c.fetch_add(1, Ordering::Relaxed);
            }
            if let (Some(m), Some(l)) = (self.per_second_max.get(s), latency_ns) {
                m.fetch_max(l, Ordering::Relaxed);
            }
        }
    }
}

#[derive(Default, Clone, Copy)]
struct Counts {
    sent: u64,
    allow: u64,
    deny: u64,
    grpc_error: u64,
    transport_error: u64,
}

impl Counts {
    fn add(&mut self, o: &Counts) {
        self.sent += o.sent;
        self.allow += o.allow;
        self.deny += o.deny;
        self.grpc_error += o.grpc_error;
        self.transport_error += o.transport_error;
    }
}

enum Outcome {
    Allow,
    Deny,
    GrpcError,
}

/// One task's results: all requests, and the measured ones with latencies.
struct TaskResult {
    all: Counts,
    measured: Counts,
    hist: Histogram,
    /// Latencies of the requests with a fresh token (mixed mode only).
    hist_fresh: Histogram,
}

async fn run(args: RunArgs) -> serde_json::Value {
    let http = args.http_path.is_some();
    let source = if let Some(count) = args.gen_hs256 {
        Source::Gen {
            count,
            offset: args.gen_offset,
            kid: args.gen_kid.clone(),
            key: encoding_key(Algorithm::HS256),
        }
    } else if let Some(path) = &args.tokens {
        let (name, prefix) = (args.header_name.as_str(), args.value_prefix.as_str());
        let pool = read_pool(path, http, name, prefix);
        assert!(!pool.is_empty(), "empty token pool");
        match (&args.fresh, args.once) {
            (Some(fresh), _) => Source::Mixed {
                hot: pool,
                fresh: read_pool(fresh, http, name, prefix),
                every: args.fresh_every.max(1),
            },
            (None, true) => Source::Once(pool),
            (None, false) => Source::Cycle(pool),
        }
    } else {
        Source::None(payload(None, http))
    };
    let pool_size = match &source {
        Source::None(_) => 0,
        Source::Cycle(p) | Source::Once(p) => p.len(),
        Source::Mixed { hot, fresh, .. } => hot.len() + fresh.len(),
        Source::Gen { count, .. } => *count as usize,
    };

    let mut senders = Vec::new();
    for _ in 0..args.conns.max(1) {
        let tcp = tokio::net::TcpStream::connect(args.addr)
            .await
            .unwrap_or_else(|e| panic!("connect {}: {e}", args.addr));
        tcp.set_nodelay(true).expect("nodelay");
        let (send, conn) = h2::client::Builder::new()
            .initial_window_size(1 << 20)
            .initial_connection_window_size(1 << 24)
            .handshake::<_, Bytes>(tcp)
            .await
            .expect("HTTP/2 handshake");
        tokio::spawn(async move {
            let _ = conn.await;
        });
        senders.push(send);
    }

    let t0 = Instant::now();
    let measure_from = t0 + Duration::from_secs_f64(args.warmup);
    let end = measure_from + Duration::from_secs_f64(args.duration);
    let http_header = http::HeaderName::from_bytes(args.header_name.as_bytes())
        .expect("--header-name: a valid header name");
    let shared = Arc::new(Shared {
        source,
        http,
        http_header,
        next: AtomicUsize::new(0),
        next_fresh: AtomicUsize::new(0),
        last_done: AtomicU64::new(0),
        max_gap: AtomicU64::new(0),
        per_second: (0..(args.duration.ceil() as usize + 1))
            .map(|_| AtomicU64::new(0))
            .collect(),
        per_second_max: (0..(args.duration.ceil() as usize + 1))
            .map(|_| AtomicU64::new(0))
            .collect(),
        t0,
        measure_from,
        end,
    });
    let path = args.http_path.as_deref().unwrap_or(CHECK_PATH);
    let uri: http::Uri = format!("http://{}{path}", args.addr).parse().expect("uri");
    let tasks = senders.len() * args.depth.max(1);
    let mut tickets = Vec::new();
    let mut handles = Vec::new();
    for sender in &senders {
        for _ in 0..args.depth.max(1) {
            let sender = sender.clone();
            let shared = shared.clone();
            let uri = uri.clone();
            let rx = args.rps.map(|_| {
                let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
                tickets.push(tx);
                rx
            });
            handles.push(tokio::spawn(task(sender, shared, uri, rx)));
        }
    }
    if let Some(rps) = args.rps {
        let interval = Duration::from_secs_f64(1.0 / rps.max(1.0));
        std::thread::spawn(move || pace(tickets, t0, end, interval));
    }
    debug_assert!(tasks > 0);
    let mut all = Counts::default();
    let mut measured = Counts::default();
    let mut hist = Histogram::new();
    let mut hist_fresh = Histogram::new();
    for h in handles {
        let r = h.await.expect("load task");
        all.add(&r.all);
        measured.add(&r.measured);
        hist.merge(&r.hist);
        hist_fresh.merge(&r.hist_fresh);
    }
    let finished = Instant::now();
    let window = finished
        .min(end)
        .saturating_duration_since(measure_from)
        .as_secs_f64()
        // A pool that runs out ends the window early: use the real span.
        .max(1e-9);
    let window = if matches!(shared.source, Source::Once(_) | Source::Gen { .. }) {
        finished
            .saturating_duration_since(measure_from)
            .as_secs_f64()
            .max(1e-9)
    } else {
        window
    };
    let done = measured.allow + measured.deny + measured.grpc_error;
    let us = |q: f64| hist.quantile(q) as f64 / 1000.0;
    let per_second: Vec<u64> = shared
        .per_second
        .iter()
        .map(|c| c.load(Ordering::Relaxed))
        .collect();
    json!({
        "addr": args.addr.to_string(),
        "conns": args.conns,
        "depth": args.depth,
        "target_rps": args.rps,
        "http_path": args.http_path,
        "pool_size": pool_size,
        "elapsed_s": finished.duration_since(t0).as_secs_f64(),
        "window_s": window,
        "all": counts_json(&all),
        "measured": counts_json(&measured),
        "rps": done as f64 / window,
        "latency_us": {
            "p50": us(0.50), "p90": us(0.90), "p99": us(0.99), "p999": us(0.999),
            "max": hist.max as f64 / 1000.0, "mean": hist.mean() / 1000.0,
        },
        "longest_gap_ms": shared.max_gap.load(Ordering::Relaxed) as f64 / 1e6,
        "per_second": per_second,
        "per_second_max_us": shared
            .per_second_max
            .iter()
            .map(|c| c.load(Ordering::Relaxed) as f64 / 1000.0)
            .collect::<Vec<_>>(),
        "fresh_latency_us": (hist_fresh.count > 0).then(|| json!({
            "count": hist_fresh.count,
            "p50": hist_fresh.quantile(0.50) as f64 / 1000.0,
            "p99": hist_fresh.quantile(0.99) as f64 / 1000.0,
            "p999": hist_fresh.quantile(0.999) as f64 / 1000.0,
            "max": hist_fresh.max as f64 / 1000.0,
        })),
    })
}

fn counts_json(c: &Counts) -> serde_json::Value {
    json!({
        "sent": c.sent, "allow": c.allow, "deny": c.deny,
        "grpc_error": c.grpc_error, "transport_error": c.transport_error,
    })
}

/// The open-loop pacer: send time `t0 + k * interval` goes to task `k % n`.
/// `thread::sleep` is precise to tens of microseconds; tickets that fall
/// due while it sleeps are handed out together when it wakes.
fn pace(
    tickets: Vec<tokio::sync::mpsc::UnboundedSender<Instant>>,
    t0: Instant,
    end: Instant,
    interval: Duration,
) {
    let mut due = t0;
    let mut k = 0usize;
    while due < end {
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        let now = Instant::now();
        while due <= now && due < end {
            let _ = tickets[k % tickets.len()].send(due);
            k += 1;
            due += interval;
        }
    }
    // Dropping the senders ends the tasks.
}

async fn task(
    sender: h2::client::SendRequest<Bytes>,
    shared: Arc<Shared>,
    uri: http::Uri,
    mut tickets: Option<tokio::sync::mpsc::UnboundedReceiver<Instant>>,
) -> TaskResult {
    let mut result = TaskResult {
        all: Counts::default(),
        measured: Counts::default(),
        hist: Histogram::new(),
        hist_fresh: Histogram::new(),
    };
    loop {
        // Open loop: wait for this request's ticket. A ticket that was
        // already waiting (this task was busy when it fell due) counts from
        // its due time; one this task waited for counts from now.
        let mut start = Instant::now();
        if let Some(rx) = tickets.as_mut() {
            match rx.try_recv() {
                Ok(due) => start = due.min(start),
                Err(tokio::sync::mpsc::error::TryRecvError::Empty) => match rx.recv().await {
                    Some(_) => start = Instant::now(),
                    None => break,
                },
                Err(tokio::sync::mpsc::error::TryRecvError::Disconnected) => break,
            }
        }
        let Some((body, fresh)) = shared.next_body() else {
            break;
        };
        let measured = start >= shared.measure_from;
        result.all.sent += 1;
        if measured {
            result.measured.sent += 1;
        }
        let outcome = if shared.http {
            call_http(sender.clone(), &uri, &shared.http_header, body).await
        } else {
            call(sender.clone(), &uri, body).await
        };
        let now = Instant::now();
        let counts = [
            Some(&mut result.all),
            measured.then_some(&mut result.measured),
        ];
        for c in counts.into_iter().flatten() {
            match &outcome {
                Ok(Outcome::Allow) => c.allow += 1,
                Ok(Outcome::Deny) => c.deny += 1,
                Ok(Outcome::GrpcError) => c.grpc_error += 1,
                Err(_) => c.transport_error += 1,
            }
        }
        if outcome.is_err() {
            // A broken connection: do not spin on it.
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        }
        let latency = now.duration_since(start).as_nanos() as u64;
        shared.completed(now, measured.then_some(latency));
        if measured {
            result.hist.record(latency);
            if fresh {
                result.hist_fresh.record(latency);
            }
        }
    }
    result
}

/// One `GET` in HTTP mode, `value` in header `name` (if not empty): 200
/// is an allow, 401/403 a deny, anything else an error.
async fn call_http(
    sender: h2::client::SendRequest<Bytes>,
    uri: &http::Uri,
    name: &http::HeaderName,
    value: Bytes,
) -> Result<Outcome, h2::Error> {
    let mut sender = sender.ready().await?;
    let mut request = http::Request::get(uri.clone());
    if !value.is_empty() {
        let value = http::HeaderValue::from_maybe_shared(value).expect("header value");
        request = request.header(name.clone(), value);
    }
    let (response, _) = sender.send_request(request.body(()).expect("request"), true)?;
    let response = response.await?;
    let status = response.status().as_u16();
    let mut body = response.into_body();
    while let Some(chunk) = body.data().await {
        let chunk = chunk?;
        let _ = body.flow_control().release_capacity(chunk.len());
    }
    Ok(match status {
        200 => Outcome::Allow,
        401 | 403 => Outcome::Deny,
        _ => Outcome::GrpcError,
    })
}

async fn call(
    sender: h2::client::SendRequest<Bytes>,
    uri: &http::Uri,
    body: Bytes,
) -> Result<Outcome, h2::Error> {
    let mut sender = sender.ready().await?;
    let request = http::Request::post(uri.clone())
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .expect("request");
    let (response, mut stream) = sender.send_request(request, false)?;
    stream.send_data(body, true)?;
    let response = response.await?;
    let (parts, mut body) = response.into_parts();
    let mut data = BytesMut::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk?;
        let _ = body.flow_control().release_capacity(chunk.len());
        data.extend_from_slice(&chunk);
    }
    let trailers = body.trailers().await?;
    let grpc_status = trailers
        .as_ref()
        .and_then(|t| t.get("grpc-status"))
        .or_else(|| parts.headers.get("grpc-status"))
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i32>().ok());
    if parts.status != http::StatusCode::OK || grpc_status != Some(0) || data.len() < 5 {
        return Ok(Outcome::GrpcError);
    }
    let Ok(check) = CheckResponse::decode(&data[5..]) else {
        return Ok(Outcome::GrpcError);
    };
    let ok_status = check.status.as_ref().map(|s| s.code) == Some(0);
    Ok(match check.http_response {
        Some(HttpResponse::OkResponse(_)) if ok_status => Outcome::Allow,
        Some(HttpResponse::ErrorResponse(_)) => Outcome::GrpcError,
        _ => Outcome::Deny,
    })
}

// ---------------------------------------------------------------- histogram

/// A log-linear histogram of nanoseconds: 128 sub-buckets per power of
/// two, so any value is known within 1%.
struct Histogram {
    buckets: Vec<u64>,
    count: u64,
    sum: u128,
    max: u64,
}

const SUB_BITS: u32 = 7;
const SUB: u64 = 1 << SUB_BITS;

impl Histogram {
    fn new() -> Self {
        Histogram {
            buckets: vec![0; (64 * SUB) as usize],
            count: 0,
            sum: 0,
            max: 0,
        }
    }

    fn index(v: u64) -> usize {
        if v < 2 * SUB {
            return v as usize;
        }
        let e = 63 - v.leading_zeros(); // > SUB_BITS
        let shift = e - SUB_BITS;
        (shift as u64 * SUB + (v >> shift)) as usize
    }

    /// The middle of bucket `i`.
    fn value(i: usize) -> u64 {
        let i = i as u64;
        if i < 2 * SUB {
            return i;
        }
        let shift = i / SUB - 1;
        let m = i % SUB + SUB;
        (m << shift) + (1 << shift) / 2
    }

    fn record(&mut self, v: u64) {
        self.buckets[Self::index(v)] += 1;
        self.count += 1;
        self.sum += v as u128;
        self.max = self.max.max(v);
    }

    fn merge(&mut self, o: &Histogram) {
        for (a, b) in self.buckets.iter_mut().zip(&o.buckets) {
            *a += b;
        }
        self.count += o.count;
        self.sum += o.sum;
        self.max = self.max.max(o.max);
    }

    fn quantile(&self, q: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        let rank = ((q * self.count as f64).ceil() as u64).clamp(1, self.count);
        let mut seen = 0;
        for (i, n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return Self::value(i).min(self.max);
            }
        }
        self.max
    }

    fn mean(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.sum as f64 / self.count as f64
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Histogram;

    #[test]
    fn histogram_is_within_one_percent() {
        for v in [0u64, 1, 255, 256, 1000, 123_456, 9_999_999_999] {
            let got = Histogram::value(Histogram::index(v));
            assert!(
                got.abs_diff(v) as f64 <= v as f64 * 0.01 + 1.0,
                "{v} -> {got}"
            );
        }
        let mut h = Histogram::new();
        for v in 1..=1000u64 {
            h.record(v * 1000);
        }
        let p50 = h.quantile(0.5) as f64;
        assert!((p50 - 500_000.0).abs() < 5_000.0, "{p50}");
    }
}
