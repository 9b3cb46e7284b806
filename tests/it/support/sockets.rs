//! Raw sockets for connection-hygiene tests: peers that connect and say
//! nothing (or too little), and the process's file-descriptor budget.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::time::Instant;

/// The soft "Max open files" of this process (`ulimit -n`); a child such
/// as ward inherits it. `None` when unlimited or unknown.
pub fn open_files_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.trim_start_matches("Max open files")
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Reads (and discards what the server sends, such as HTTP/2 SETTINGS)
/// until the server closes the connection: `true` if it did before
/// `deadline`, `false` if it was still open then.
pub async fn closed_before<S: AsyncRead + Unpin>(stream: &mut S, deadline: Instant) -> bool {
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return false,
            // EOF, or a reset: closed either way.
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
        }
    }
}

/// How long after `start` the server closed `stream` (`None`: not before
/// `limit` had passed).
pub async fn closed_after<S: AsyncRead + Unpin>(
    stream: &mut S,
    start: Instant,
    limit: Duration,
) -> Option<Duration> {
    closed_before(stream, start + limit)
        .await
        .then(|| start.elapsed())
}
