//! Test support for black-box tests against real processes: an echo upstream,
//! the ward binary, and a real Envoy in front of both.
//!
//! Use it from a test module with `use crate::support;`. Every helper picks
//! its own ports and temporary directories, so tests can run in parallel
//! (nextest runs each test in its own process).
//!
//! ```ignore
//! let echo = support::echo::Echo::start().await;
//! let ward = support::ward::Ward::start(JWT_CONFIG).await;
//! let envoy = support::envoy::Envoy::start(echo.addr, ward.grpc_addr).await;
//! let resp = envoy.get("/", &[("authorization", "Bearer ...")]).await;
//! assert_eq!(resp.status, 200);
//! ```

// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]
// Test setup failing is a test failure: panicking with a message is the point.
#![allow(clippy::expect_used, clippy::unwrap_used)]

pub mod authz;
pub mod cli;
pub mod echo;
pub mod envoy;
pub mod http;
pub mod inproc;
pub mod modgraph;
pub mod module;
pub mod oidc;
pub mod otlp;
pub mod process;
pub mod redis;
pub mod sockets;
pub mod tokens;
pub mod ward;

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::time::Duration;

/// How long any helper waits for a process to become ready before failing.
pub const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// A TCP port on 127.0.0.1 that was free a moment ago.
///
/// The port is released before it is returned, so another process can take
/// it in between; the process helpers retry once on "address in use".
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free port on 127.0.0.1")
}

/// `N` distinct free loopback addresses: held open together while chosen,
/// so two of them can never be the same port.
pub fn free_addrs<const N: usize>() -> [SocketAddr; N] {
    let listeners: Vec<TcpListener> = (0..N)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("no free port on 127.0.0.1"))
        .collect();
    std::array::from_fn(|i| {
        listeners[i]
            .local_addr()
            .expect("a bound listener has an address")
    })
}

/// `127.0.0.1:<free_port()>`.
pub fn free_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], free_port()))
}

/// The contents of a log file, or a note that it could not be read.
pub(crate) fn read_log(path: &Path) -> String {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| format!("<cannot read {}: {e}>", path.display()))
}

/// Says that a test skipped, and why, in the one wording every test that
/// can skip uses (README.md, "Tests"): `SKIPPED: <suite>: <reason>`, on
/// stderr. Under nextest it shows even when the test passes
/// (`.config/nextest.toml` prints those suites' output at the end).
///
/// Only for what the project cannot install itself: a missing tool its
/// scripts install (redis-server, Envoy, Helm) is a failure, not a skip.
pub fn skipped(suite: &str, reason: &str) {
    eprintln!("SKIPPED: {suite}: {reason}");
}
