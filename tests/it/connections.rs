//! Connection hygiene on the real binary (`src/server/conn.rs`): peers
//! that connect and never send a request are closed after
//! `listen.handshake_timeout` on every listener, connections over
//! `listen.max_connections` are refused at once and counted, and checks on
//! an established connection keep being answered through a flood of
//! silent ones.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use jsonwebtoken::Algorithm;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;
use support::authz::{check, connect, metric, status};
use support::sockets::{closed_after, closed_before, open_files_limit};
use support::tokens::{HMAC_SECRET, claims, sign};
use support::ward::Ward;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};
use tokio::time::Instant;

fn config(listen: &str) -> String {
    format!(
        "log: {{format: text, level: warn}}\nlisten: {listen}\njwt:\n  issuers: [\"https://idp.test\"]\n  audiences: [api]\n  keys:\n    - {{kid: h, alg: HS256, secret: {{value: \"{HMAC_SECRET}\"}}}}\n"
    )
}

fn bearer() -> String {
    format!(
        "Bearer {}",
        sign(Algorithm::HS256, Some("h"), &claims("alice"))
    )
}

async fn conn_metric(ward: &Ward, name: &str, listener: &str) -> f64 {
    metric(ward.admin_addr, name, &[("listener", listener)]).await
}

/// Polls `/metrics` until `name{listener}` equals `want` (or 5 s pass); the
/// last value seen.
async fn await_metric(ward: &Ward, name: &str, listener: &str, want: f64) -> f64 {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let got = conn_metric(ward, name, listener).await;
        if got == want || Instant::now() > deadline {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_flood_of_silent_connections_is_timed_out_or_refused_while_checks_go_on() {
    // 2,000 silent peers against a cap of 1,000, unless `ulimit -n` is too
    // low for that (this process and ward each hold up to one socket per peer).
    let mut silent: usize = 2000;
    if let Some(limit) = open_files_limit() {
        let room = usize::try_from(limit.saturating_sub(256)).unwrap_or(usize::MAX);
        if room < silent {
            eprintln!("ulimit -n is {limit}: {room} silent connections instead of {silent}");
            silent = room;
        }
    }
    assert!(silent >= 100, "ulimit -n too low for this test");
    let cap = silent / 2;
    let timeout = Duration::from_millis(500);
    let ward = Ward::start(&config(&format!(
        "{{handshake_timeout: 500ms, max_connections: {cap}}}"
    )))
    .await;

    // An Envoy-like client, connected (and past its first request) before
    // the flood, checking all along.
    let client = connect(ward.grpc_addr).await;
    let auth = bearer();
    assert_eq!(
        status(&check(&client, &[("authorization", &auth)]).await),
        200
    );
    let stop = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(AtomicUsize::new(0));
    let checker = tokio::spawn({
        let (client, auth, stop, answered) =
            (client.clone(), auth.clone(), stop.clone(), answered.clone());
        async move {
            while !stop.load(Ordering::Relaxed) {
                let resp = check(&client, &[("authorization", &auth)]).await;
                assert_eq!(status(&resp), 200);
                answered.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    });

    let start = Instant::now();
    let mut streams = Vec::with_capacity(silent);
    for _ in 0..silent {
        streams.push(TcpStream::connect(ward.grpc_addr).await.unwrap());
    }
    let flood = start.elapsed();
    let open = conn_metric(&ward, "ward_connections_open", "grpc").await;
    assert!(
        open <= cap as f64,
        "{open} connections open on a cap of {cap}"
    );

    // Every silent connection is closed: the refused at once, the others
    // after the handshake timeout.
    let deadline = start + flood + timeout + Duration::from_secs(3);
    for (i, stream) in streams.iter_mut().enumerate() {
        assert!(
            closed_before(stream, deadline).await,
            "silent connection {i} of {silent} still open {:?} after the flood",
            deadline - start - flood
        );
    }
    let during = answered.load(Ordering::Relaxed);
    assert!(
        during > 0,
        "no check answered during the flood ({:?})",
        start.elapsed()
    );

    // Each silent connection was counted once, as refused or timed out;
    // the checking client's connection in neither (and it is still open).
    assert_eq!(
        await_metric(&ward, "ward_connections_open", "grpc", 1.0).await,
        1.0
    );
    let refused = conn_metric(&ward, "ward_connections_refused_total", "grpc").await;
    let timed_out = conn_metric(&ward, "ward_connections_handshake_timeouts_total", "grpc").await;
    assert_eq!(
        refused + timed_out,
        silent as f64,
        "refused {refused} + timed out {timed_out}"
    );
    eprintln!(
        "{silent} silent connections in {flood:?}: {refused} refused, {timed_out} timed out; {during} checks answered meanwhile"
    );
    // Nothing is refused below the cap: at least `cap - 1` were let in.
    assert!(refused <= (silent - (cap - 1)) as f64, "refused {refused}");
    assert!(
        refused >= 1.0 && timed_out >= 1.0,
        "refused {refused}, timed out {timed_out} (flood took {flood:?})"
    );

    // A connection past its first request may idle beyond the timeout.
    stop.store(true, Ordering::Relaxed);
    checker.await.unwrap();
    tokio::time::sleep(timeout * 2).await;
    assert_eq!(
        conn_metric(&ward, "ward_connections_open", "grpc").await,
        1.0
    );
    assert_eq!(
        status(&check(&client, &[("authorization", &auth)]).await),
        200
    );
    assert_eq!(
        conn_metric(&ward, "ward_connections_handshake_timeouts_total", "grpc").await,
        timed_out
    );
    // And a new client is served once the flood has gone.
    let fresh = connect(ward.grpc_addr).await;
    assert_eq!(
        status(&check(&fresh, &[("authorization", &auth)]).await),
        200
    );
}

#[tokio::test]
async fn every_listener_closes_a_peer_that_does_not_finish_its_first_request() {
    let ward = Ward::start(&config(
        "{handshake_timeout: 300ms, unix_socket: \"{{tmp}}/ward.sock\"}",
    ))
    .await;
    let timeout = Duration::from_millis(300);
    let limit = Duration::from_secs(3);
    let start = Instant::now();

    // gRPC: silent; the HTTP/2 preface and SETTINGS but no request.
    let mut grpc_silent = TcpStream::connect(ward.grpc_addr).await.unwrap();
    let mut grpc_preface = TcpStream::connect(ward.grpc_addr).await.unwrap();
    grpc_preface
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
        .await
        .unwrap();
    // The Unix socket: silent.
    let mut unix = UnixStream::connect(ward.dir().join("ward.sock"))
        .await
        .unwrap();
    // HTTP mode: silent; headers begun and never ended.
    let mut http_silent = TcpStream::connect(ward.http_addr).await.unwrap();
    let mut http_partial = TcpStream::connect(ward.http_addr).await.unwrap();
    http_partial
        .write_all(b"GET /api HTTP/1.1\r\nhost: app\r\nx-slow: a")
        .await
        .unwrap();
    // Admin: silent.
    let mut admin_silent = TcpStream::connect(ward.admin_addr).await.unwrap();
    // Admin: a whole request, answered; the connection then idles on.
    let mut admin_kept = TcpStream::connect(ward.admin_addr).await.unwrap();
    admin_kept
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: ward\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    while !answer.ends_with(b"ok\n") {
        let mut buf = [0u8; 512];
        let n = admin_kept.read(&mut buf).await.unwrap();
        assert!(n > 0, "admin closed before answering");
        answer.extend_from_slice(&buf[..n]);
    }

    for (what, closed) in [
        (
            "gRPC, silent",
            closed_after(&mut grpc_silent, start, limit).await,
        ),
        (
            "gRPC, preface only",
            closed_after(&mut grpc_preface, start, limit).await,
        ),
        (
            "unix socket, silent",
            closed_after(&mut unix, start, limit).await,
        ),
        (
            "HTTP, silent",
            closed_after(&mut http_silent, start, limit).await,
        ),
        (
            "HTTP, partial headers",
            closed_after(&mut http_partial, start, limit).await,
        ),
        (
            "admin, silent",
            closed_after(&mut admin_silent, start, limit).await,
        ),
    ] {
        let after = closed.unwrap_or_else(|| panic!("{what}: still open after {limit:?}"));
        assert!(
            after >= timeout,
            "{what}: closed after {after:?}, before the timeout"
        );
    }
    assert!(
        !closed_before(&mut admin_kept, Instant::now() + timeout * 2).await,
        "a connection past its first request was closed"
    );

    for (listener, want) in [("grpc", 2.0), ("unix", 1.0), ("http", 2.0), ("admin", 1.0)] {
        let got = conn_metric(&ward, "ward_connections_handshake_timeouts_total", listener).await;
        assert_eq!(got, want, "{listener}");
        assert_eq!(
            conn_metric(&ward, "ward_connections_refused_total", listener).await,
            0.0
        );
    }
}

/// Reads one HTTP/2 frame: (type, flags, payload).
async fn read_frame(stream: &mut TcpStream) -> (u8, u8, Vec<u8>) {
    let mut header = [0u8; 9];
    stream.read_exact(&mut header).await.unwrap();
    let len = usize::from(header[0]) << 16 | usize::from(header[1]) << 8 | usize::from(header[2]);
    let mut payload = vec![0u8; len];
    stream.read_exact(&mut payload).await.unwrap();
    (header[3], header[4], payload)
}

#[tokio::test]
async fn the_grpc_listener_advertises_its_limits_and_pings_out_a_dead_peer() {
    let ward = Ward::start(&config(
        "{keepalive_interval: 1s, keepalive_timeout: 200ms, max_concurrent_streams: 77, max_header_list_size: 5000}",
    ))
    .await;
    let mut peer = TcpStream::connect(ward.grpc_addr).await.unwrap();
    // The preface, an empty SETTINGS, and one request (GET /: :method GET,
    // :scheme http, :path / from HPACK's static table), so the handshake
    // is complete; then this peer never answers again, like a dead host.
    peer.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
        .await
        .unwrap();
    peer.write_all(&[0, 0, 3, 0x1, 0x5, 0, 0, 0, 1, 0x82, 0x86, 0x84])
        .await
        .unwrap();
    let start = Instant::now();

    // The server's SETTINGS come first.
    let (kind, _, payload) = read_frame(&mut peer).await;
    assert_eq!(kind, 0x4, "the server's first frame is SETTINGS");
    let settings: Vec<(u16, u32)> = payload
        .chunks(6)
        .map(|c| {
            (
                u16::from_be_bytes([c[0], c[1]]),
                u32::from_be_bytes([c[2], c[3], c[4], c[5]]),
            )
        })
        .collect();
    assert!(
        settings.contains(&(0x3, 77)),
        "MAX_CONCURRENT_STREAMS in {settings:?}"
    );
    assert!(
        settings.contains(&(0x6, 5000)),
        "MAX_HEADER_LIST_SIZE in {settings:?}"
    );

    // A PING after a second of silence; unanswered, the connection is
    // closed 200 ms later.
    let mut pinged = false;
    while !pinged {
        let (kind, flags, _) = tokio::time::timeout(Duration::from_secs(3), read_frame(&mut peer))
            .await
            .expect("no PING within 3s");
        pinged = kind == 0x6 && flags & 0x1 == 0;
    }
    let ping_after = start.elapsed();
    assert!(
        ping_after >= Duration::from_millis(900),
        "pinged after {ping_after:?}"
    );
    let closed = closed_after(&mut peer, start, Duration::from_secs(4))
        .await
        .expect("a peer that does not answer PINGs is closed");
    assert!(
        closed >= ping_after + Duration::from_millis(150),
        "closed after {closed:?}, pinged after {ping_after:?}"
    );
    assert_eq!(
        conn_metric(&ward, "ward_connections_handshake_timeouts_total", "grpc").await,
        0.0
    );
}

/// The threads of process `pid` named `name`: their CPU ticks so far
/// (user + system), one entry per thread.
fn thread_ticks(pid: u32, name: &str) -> Vec<u64> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).unwrap();
    tasks
        .filter_map(|task| {
            let dir = task.ok()?.path();
            let comm = std::fs::read_to_string(dir.join("comm")).ok()?;
            (comm.trim() == name).then_some(())?;
            let stat = std::fs::read_to_string(dir.join("stat")).ok()?;
            // Fields after the parenthesized name: state is field 3; utime
            // and stime are fields 14 and 15.
            let rest = stat.rsplit_once(')')?.1;
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let ticks = |i: usize| fields.get(i - 3)?.parse::<u64>().ok();
            Some(ticks(14)? + ticks(15)?)
        })
        .collect()
}

/// `runtime.worker_threads: 2` is a second check core (`server/cores.rs`):
/// a thread `ward-core-1` that accepts on the gRPC socket and answers the
/// connections it took, so checks from several connections run on both.
/// With 1 worker there is no such thread.
#[tokio::test]
async fn a_second_worker_is_a_core_that_answers_the_connections_it_accepts() {
    let one = Ward::start(&format!("{}runtime: {{worker_threads: 1}}\n", config("{}"))).await;
    assert!(thread_ticks(one.pid(), "ward-core-1").is_empty());
    drop(one);

    let ward = Ward::start(&format!("{}runtime: {{worker_threads: 2}}\n", config("{}"))).await;
    assert_eq!(thread_ticks(ward.pid(), "ward-core-1").len(), 1);
    let bearer = Arc::new(bearer());
    let deadline = Instant::now() + Duration::from_secs(20);
    // Rounds of 8 new connections x 300 checks, until the core has spent
    // CPU (a tick is 10 ms) answering some of them.
    while thread_ticks(ward.pid(), "ward-core-1")[0] == 0 {
        assert!(
            Instant::now() < deadline,
            "ward-core-1 never answered a check"
        );
        let rounds = (0..8).map(|_| {
            let (addr, bearer) = (ward.grpc_addr, bearer.clone());
            tokio::spawn(async move {
                let client = connect(addr).await;
                for _ in 0..300 {
                    let resp = check(&client, &[("authorization", bearer.as_str())]).await;
                    assert_eq!(status(&resp), 200, "{resp:?}");
                }
            })
        });
        for round in rounds.collect::<Vec<_>>() {
            round.await.unwrap();
        }
    }
}

/// HTTP mode: a request that announces a body and never sends it gets its
/// answer once `listen.handshake_timeout` has passed (it held the answer,
/// and the connection, forever), and the connection then closes.
#[tokio::test]
async fn an_http_body_announced_and_never_sent_does_not_hold_the_answer() {
    let ward = Ward::start(&config("{handshake_timeout: 300ms}")).await;
    let start = Instant::now();
    let mut stream = TcpStream::connect(ward.http_addr).await.unwrap();
    stream
        .write_all(b"POST /api HTTP/1.1\r\nhost: app\r\ncontent-length: 10\r\n\r\nabc")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), async {
        let mut buf = [0u8; 1024];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(read.is_ok(), "no answer and no close within 5 s");
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 401"), "{text}");
    assert!(
        start.elapsed() >= Duration::from_millis(300),
        "{:?}",
        start.elapsed()
    );
}
