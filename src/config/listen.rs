//! The `listen` section: the addresses ward serves on (gRPC, a Unix socket,
//! HTTP ext_authz, admin) and what each listener bounds (request size,
//! open connections, the first request's deadline, HTTP/2 keepalive), so a
//! silent or oversized client costs a known amount.

use serde::Deserialize;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Where ward listens.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Listen {
    /// ext_authz gRPC (`Authorization/Check` and `grpc.health.v1`).
    pub grpc: SocketAddr,
    /// The same gRPC services on a Unix domain socket, for a sidecar Envoy.
    pub unix_socket: Option<PathBuf>,
    /// Admin HTTP: `/healthz`, `/readyz`, `/metrics`.
    pub admin: SocketAddr,
    /// HTTP ext_authz mode (Envoy `http_service`, nginx `auth_request`,
    /// Traefik `forwardAuth`); off unless set.
    pub http: Option<SocketAddr>,
    /// The largest `CheckRequest` ward reads on the gRPC listeners, in
    /// bytes (the message, without gRPC's 5-byte prefix). A larger one is
    /// denied 413 `request_too_large` from its prefix alone, unread.
    pub max_request_bytes: usize,
    /// Every listener: a connection whose first request has not fully
    /// arrived by then (HTTP/2: the preface and the first request's
    /// headers; HTTP/1: the request line and headers) is closed.
    #[serde(with = "humantime_serde")]
    pub handshake_timeout: Duration,
    /// Every listener, each on its own: at most this many open
    /// connections; one more is accepted and closed at once.
    pub max_connections: usize,
    /// The gRPC listeners: an HTTP/2 PING after this long without a frame
    /// from the peer; `0s` sends none.
    #[serde(with = "humantime_serde")]
    pub keepalive_interval: Duration,
    /// The gRPC listeners: a PING unanswered this long closes the
    /// connection (a dead peer).
    #[serde(with = "humantime_serde")]
    pub keepalive_timeout: Duration,
    /// The gRPC listeners: HTTP/2 `SETTINGS_MAX_CONCURRENT_STREAMS`, the
    /// checks one connection may have in flight.
    pub max_concurrent_streams: u32,
    /// The gRPC listeners: HTTP/2 `SETTINGS_MAX_HEADER_LIST_SIZE`, the
    /// largest header block (not the `CheckRequest`, which is the body)
    /// in bytes as HTTP/2 counts it (name + value + 32 per header).
    pub max_header_list_size: u32,
}

/// `listen.max_request_bytes` by default: 8 MiB, room for the body Envoy's
/// `with_request_body` buffers.
pub const DEFAULT_MAX_REQUEST_BYTES: usize = 8 * 1024 * 1024;
/// `listen.max_request_bytes` bounds: room for Envoy's default header
/// limit (60 KiB) below, 1 GiB above (a gRPC frame declares at most 4 GiB).
pub const MAX_REQUEST_BYTES_RANGE: std::ops::RangeInclusive<usize> = 64 * 1024..=1024 * 1024 * 1024;
/// `listen.handshake_timeout` by default: an Envoy sends its first check
/// right after connecting; 10 s is generous for a slow network and short
/// for a connection that never speaks.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// `listen.max_connections` by default, per listener: room for a gateway
/// fleet (Envoy opens about one connection per worker thread per ward:
/// 1024 is 128 Envoys of 8 workers), and a bound on what a flood of silent
/// connections can cost (up to about 35 KB each in RSS under glibc after
/// repeated floods, so about 35 MiB per listener; docs/configuration.md).
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;
/// `listen.max_connections` at most.
pub const MAX_CONNECTIONS_LIMIT: usize = 1 << 20;
/// `listen.max_header_list_size` bounds: gRPC's own headers need about
/// 1 KiB; 16 MiB is h2's own ceiling.
pub const MAX_HEADER_LIST_SIZE_RANGE: std::ops::RangeInclusive<u32> = 4 * 1024..=16 * 1024 * 1024;

impl Default for Listen {
    fn default() -> Self {
        Self {
            grpc: SocketAddr::from(([127, 0, 0, 1], 9001)),
            unix_socket: None,
            admin: SocketAddr::from(([127, 0, 0, 1], 9901)),
            http: None,
            max_request_bytes: DEFAULT_MAX_REQUEST_BYTES,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            keepalive_interval: Duration::from_secs(30),
            keepalive_timeout: Duration::from_secs(10),
            max_concurrent_streams: 1024,
            // hyper's own default, which ward used before it was a setting.
            max_header_list_size: 16 * 1024,
        }
    }
}
