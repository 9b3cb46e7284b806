//! Connection hygiene for every listener: at most `listen.max_connections`
//! open per listener, and a connection whose first request has not arrived
//! within `listen.handshake_timeout` is closed.
//!
//! Why ward does this itself: tonic serves whatever stream of sockets it is
//! given and axum whatever a `Listener` accepts, and neither bounds the
//! count; hyper's HTTP/2 server has no deadline for the preface at all, and
//! axum gives HTTP/1 no timer (so hyper's header-read timeout never runs).
//! A peer that connects and stays silent was held forever, about 15 KB
//! each. So every listener is wrapped in a [`Limited`] acceptor:
//!
//! - past the cap, a new connection is accepted and dropped at once (the
//!   peer sees the close; the kernel's backlog does not fill with it), and
//!   counted in `ward_connections_refused_total{listener}`;
//! - an accepted one is a [`Conn`]: it holds its slot (and
//!   `ward_connections_open{listener}`) until the socket is dropped, and it
//!   watches the peer's bytes ([`FirstRequest`]) until the first request's
//!   headers are complete. Until then, once the deadline passes, its reads
//!   and writes fail with `TimedOut`, which makes hyper close the
//!   connection (`ward_connections_handshake_timeouts_total{listener}`).
//!   After that the wrapper costs one branch per read or write.
//!
//! The TCP listeners are bound with a deep accept queue ([`bind_tcp`]), so
//! a burst of connections is refused by ward rather than dropped (and
//! retried a second later) by the kernel.
//!
//! The deadline covers the first request only. Later, an HTTP/2 peer that
//! died is found by keepalive pings (`listen.keepalive_*`, set on tonic's
//! builder in `server.rs`); an idle HTTP/1 keep-alive connection (the HTTP
//! mode, the admin port) stays open until the peer closes it, within the cap.
//! What a closed connection's memory does afterwards (glibc keeps it for
//! reuse) is measured in docs/configuration.md, "Memory after a flood".

use crate::metrics::ConnectionMetrics;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tokio::time::Sleep;

mod first_request;

pub use first_request::{FirstRequest, Protocol};

/// The limits one listener enforces.
#[derive(Clone)]
pub struct Limits {
    pub name: &'static str,
    pub protocol: Protocol,
    pub max_connections: usize,
    pub handshake_timeout: Duration,
    pub metrics: ConnectionMetrics,
}

/// A listener's count of open connections.
struct Gate {
    open: AtomicUsize,
    max: usize,
    metrics: ConnectionMetrics,
}

/// One open connection's place under the cap, given back on drop.
struct Slot(Arc<Gate>);

impl Gate {
    fn enter(self: &Arc<Self>) -> Option<Slot> {
        self.open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max).then_some(n + 1)
            })
            .ok()?;
        self.metrics.open.inc();
        Some(Slot(self.clone()))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::AcqRel);
        self.0.metrics.open.dec();
    }
}

/// Where a connection is in its first request.
enum Handshake {
    Waiting {
        deadline: Pin<Box<Sleep>>,
        first: FirstRequest,
    },
    Done,
    TimedOut,
}

/// An accepted connection: holds its slot under the cap until dropped,
/// and fails its I/O once the handshake deadline passes before the first
/// request's headers arrived.
pub struct Conn<IO> {
    io: IO,
    handshake: Handshake,
    listener: &'static str,
    timeouts: prometheus::IntCounter,
    _slot: Slot,
}

fn timed_out() -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        "first request not received within listen.handshake_timeout",
    )
}

impl<IO> Conn<IO> {
    /// `Err(TimedOut)` from the moment the deadline passed without a first
    /// request; registers the deadline's wakeup while waiting, so a silent
    /// peer's connection task wakes up to fail.
    fn check_deadline(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        match &mut self.handshake {
            Handshake::Done => Ok(()),
            Handshake::TimedOut => Err(timed_out()),
            Handshake::Waiting { deadline, .. } => {
                if deadline.as_mut().poll(cx).is_pending() {
                    return Ok(());
                }
                self.handshake = Handshake::TimedOut;
                self.timeouts.inc();
                tracing::debug!(
                    listener = self.listener,
                    "closing a connection: no request within listen.handshake_timeout"
                );
                Err(timed_out())
            }
        }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Conn<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.check_deadline(cx)?;
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.io).poll_read(cx, buf))?;
        if let Handshake::Waiting { first, .. } = &mut this.handshake
            && first.feed(&buf.filled()[before..])
        {
            this.handshake = Handshake::Done;
        }
        Poll::Ready(Ok(()))
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Conn<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.check_deadline(cx)?;
        Pin::new(&mut this.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.check_deadline(cx)?;
        Pin::new(&mut this.io).poll_write_vectored(cx, bufs)
    }

    /// `false`, so that h2 copies every frame under 1 KB into its write
    /// buffer (`src/server/unary.rs`, `DATA_FRAME_MAX`): a frame it chains
    /// instead holds back every frame behind it until written, a `writev`
    /// per answer. Writes still carry many frames each.
    fn is_write_vectored(&self) -> bool {
        false
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.check_deadline(cx)?;
        Pin::new(&mut this.io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

impl<IO: tonic::transport::server::Connected> tonic::transport::server::Connected for Conn<IO> {
    type ConnectInfo = IO::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.io.connect_info()
    }
}

/// A socket listener [`Limited`] can wrap.
pub trait Accept: Send + Unpin + 'static {
    type Io: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    type Addr: Send + std::fmt::Debug;
    fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<io::Result<(Self::Io, Self::Addr)>>;
    fn local_addr(&self) -> io::Result<Self::Addr>;
}

impl Accept for TcpListener {
    type Io = TcpStream;
    type Addr = std::net::SocketAddr;

    fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<io::Result<(TcpStream, Self::Addr)>> {
        let (stream, addr) = ready!(TcpListener::poll_accept(self, cx))?;
        // Checks are small: send each answer at once.
        let _ = stream.set_nodelay(true);
        Poll::Ready(Ok((stream, addr)))
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        TcpListener::local_addr(self)
    }
}

impl Accept for UnixListener {
    type Io = UnixStream;
    type Addr = tokio::net::unix::SocketAddr;

    fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<io::Result<(UnixStream, Self::Addr)>> {
        UnixListener::poll_accept(self, cx)
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        UnixListener::local_addr(self)
    }
}

/// The kernel's queue of connections not yet accepted (Linux caps it at
/// `net.core.somaxconn`, 4096 by default). Past it, new connections' SYNs
/// are dropped and retried a second later; a deep queue keeps a burst of
/// connections (a flood, or a fleet of Envoys reconnecting) from costing
/// everyone that second while ward accepts and refuses.
const BACKLOG: u32 = 4096;

/// A TCP listener on `addr` with a 4096-deep accept queue (tokio's
/// `TcpListener::bind` uses 1024), `SO_REUSEADDR` as tokio sets it.
pub fn bind_tcp(addr: std::net::SocketAddr) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

/// How long the accept loop pauses after an error that is not one
/// connection's (out of file descriptors, say), so it does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// At most one log line per listener this often about refusals.
const REFUSAL_LOG_EVERY: Duration = Duration::from_secs(10);

/// A listener's connection count and limits, shared by every acceptor of
/// one socket (the check cores of `server/cores.rs`): the cap is the
/// listener's, however many threads accept.
#[derive(Clone)]
pub struct Counter {
    gate: Arc<Gate>,
    limits: Limits,
}

/// A listener that enforces [`Limits`]: a stream of [`Conn`]s for tonic,
/// an `axum::serve::Listener` for axum.
pub struct Limited<L> {
    listener: L,
    gate: Arc<Gate>,
    limits: Limits,
    backoff: Option<Pin<Box<Sleep>>>,
    /// Refusals not logged yet, and when the last log line was written.
    refused_unlogged: u64,
    last_refusal_log: Option<Instant>,
}

impl<L: Accept> Limited<L> {
    pub fn new(listener: L, limits: Limits) -> Self {
        Limited {
            listener,
            gate: Arc::new(Gate {
                open: AtomicUsize::new(0),
                max: limits.max_connections,
                metrics: limits.metrics.clone(),
            }),
            limits,
            backoff: None,
            refused_unlogged: 0,
            last_refusal_log: None,
        }
    }

    /// An acceptor of `listener` counted under `counter`'s cap.
    pub fn sharing(listener: L, counter: Counter) -> Self {
        Limited {
            listener,
            gate: counter.gate,
            limits: counter.limits,
            backoff: None,
            refused_unlogged: 0,
            last_refusal_log: None,
        }
    }

    /// The socket it accepts on.
    pub fn listener(&self) -> &L {
        &self.listener
    }

    /// Where this listener's connections are counted, for another
    /// acceptor that shares its cap ([`Limited::sharing`]).
    pub fn counter(&self) -> Counter {
        Counter {
            gate: self.gate.clone(),
            limits: self.limits.clone(),
        }
    }

    /// The next connection under the cap; refuses (closes) those over it.
    fn poll_conn(&mut self, cx: &mut Context<'_>) -> Poll<(Conn<L::Io>, L::Addr)> {
        loop {
            if let Some(backoff) = &mut self.backoff {
                ready!(backoff.as_mut().poll(cx));
                self.backoff = None;
            }
            // Accepting uses the task's cooperative budget: a flood of
            // refusals still yields to the runtime.
            match ready!(self.listener.poll_accept(cx)) {
                Ok((io, addr)) => match self.gate.enter() {
                    Some(slot) => return Poll::Ready((self.conn(io, slot), addr)),
                    None => {
                        drop(io);
                        self.refused();
                    }
                },
                Err(e) if is_connection_error(&e) => {}
                Err(e) => {
                    tracing::error!(listener = self.limits.name, error = %e, "accept failed");
                    self.backoff = Some(Box::pin(tokio::time::sleep(ACCEPT_BACKOFF)));
                }
            }
        }
    }

    fn conn(&self, io: L::Io, slot: Slot) -> Conn<L::Io> {
        let first = FirstRequest::new(self.limits.protocol);
        let handshake = if first == FirstRequest::Done {
            Handshake::Done
        } else {
            Handshake::Waiting {
                deadline: Box::pin(tokio::time::sleep(self.limits.handshake_timeout)),
                first,
            }
        };
        Conn {
            io,
            handshake,
            listener: self.limits.name,
            timeouts: self.limits.metrics.handshake_timeouts.clone(),
            _slot: slot,
        }
    }

    fn refused(&mut self) {
        self.limits.metrics.refused.inc();
        self.refused_unlogged += 1;
        let now = Instant::now();
        if self
            .last_refusal_log
            .is_none_or(|last| now.duration_since(last) >= REFUSAL_LOG_EVERY)
        {
            tracing::warn!(
                listener = self.limits.name,
                max_connections = self.limits.max_connections,
                refused = self.refused_unlogged,
                "connections refused: listen.max_connections are open"
            );
            self.refused_unlogged = 0;
            self.last_refusal_log = Some(now);
        }
    }
}

/// Errors of one connection that went away before it was accepted: the
/// next accept is fine.
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

impl<L: Accept> tokio_stream::Stream for Limited<L> {
    type Item = Result<Conn<L::Io>, std::convert::Infallible>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let (conn, _) = ready!(self.get_mut().poll_conn(cx));
        Poll::Ready(Some(Ok(conn)))
    }
}

impl<L: Accept> axum::serve::Listener for Limited<L> {
    type Io = Conn<L::Io>;
    type Addr = L::Addr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        std::future::poll_fn(|cx| self.poll_conn(cx)).await
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.listener.local_addr()
    }
}

/// Logs a warning when the process may run out of file descriptors before
/// its listeners reach `listen.max_connections` (`sockets` in all): then
/// accepting fails instead of refusing cleanly. Linux only (reads
/// `/proc/self/limits`); silent elsewhere.
pub fn warn_if_few_descriptors(sockets: usize) {
    let Ok(limits) = std::fs::read_to_string("/proc/self/limits") else {
        return;
    };
    let Some(soft) = open_files_limit(&limits) else {
        return;
    };
    // Room for the store, JWKS fetches, logs and the runtime.
    let needed = sockets.saturating_add(64);
    if soft < needed as u64 {
        tracing::warn!(
            open_files_limit = soft,
            needed,
            "the open-files limit (ulimit -n) is below the listeners' listen.max_connections: raise it or lower max_connections"
        );
    }
}

/// The soft "Max open files" of a `/proc/PID/limits` text; `None` when
/// unlimited or absent.
fn open_files_limit(limits: &str) -> Option<u64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.trim_start_matches("Max open files")
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_open_files_limit_is_read_from_proc() {
        let text = "Limit                     Soft Limit           Hard Limit           Units     \nMax processes             63504                63504                processes \nMax open files            1024                 524288               files     \n";
        assert_eq!(open_files_limit(text), Some(1024));
        let text = "Max open files            unlimited            unlimited            files\n";
        assert_eq!(open_files_limit(text), None);
        assert_eq!(open_files_limit(""), None);
    }

    #[tokio::test]
    async fn the_gate_counts_open_connections() {
        let metrics = crate::metrics::Metrics::new().unwrap();
        let gate = Arc::new(Gate {
            open: AtomicUsize::new(0),
            max: 2,
            metrics: metrics.connections(crate::metrics::Listener::Grpc),
        });
        let a = gate.enter().unwrap();
        let b = gate.enter().unwrap();
        assert!(gate.enter().is_none());
        assert_eq!(gate.metrics.open.get(), 2);
        drop(a);
        let c = gate.enter().unwrap();
        drop((b, c));
        assert_eq!(gate.metrics.open.get(), 0);
        assert_eq!(gate.open.load(Ordering::Relaxed), 0);
    }
}
