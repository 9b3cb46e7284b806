//! What the `ward` binary does once clap has parsed its arguments.
//!
//! `src/main.rs` holds the command tree and hands each subcommand here, so
//! the binary has no logic of its own and everything it does is library
//! code. The steps every subcommand shares exist once: loading the config
//! (or the message naming the file and every problem), building the Tokio
//! runtime (`runtime.rs`), and printing a failure with exit status 1
//! ([`exit`]). A subcommand's flags live with the code that reads them:
//! [`explain`], [`fingerprint`], [`install_module`], [`store`] (`apikey`,
//! `session`).

pub mod explain;
pub mod fingerprint;
pub mod install_module;
pub mod store;
mod target;

use crate::config::{Config, ProcessEnv};
use std::future::Future;
use std::path::Path;
use std::process::ExitCode;

/// Why a subcommand failed: the message for stderr (the exit status is 1).
#[derive(Debug)]
pub struct Failure(pub String);

/// What a subcommand ends with: its exit status, or the failure to print.
pub type Outcome = Result<ExitCode, Failure>;

/// The process's exit status for `outcome`; a failure is printed here,
/// the one place the CLI prints one.
pub fn exit(outcome: Outcome) -> ExitCode {
    outcome.unwrap_or_else(|Failure(message)| {
        eprintln!("{message}");
        ExitCode::FAILURE
    })
}

/// The config at `path`, or a failure naming the file and every problem.
pub fn config(path: &Path) -> Result<Config, Failure> {
    crate::setup::load(path, &ProcessEnv).map_err(|e| Failure(format!("{}: {e}", path.display())))
}

/// Runs `task` to completion on the runtime `runtime.rs` builds for
/// `worker_threads` (1: the single-threaded scheduler).
pub fn block_on<F: Future>(worker_threads: usize, task: F) -> Result<F::Output, Failure> {
    let runtime = crate::runtime::builder(worker_threads)
        .build()
        .map_err(|e| Failure(format!("cannot start the runtime: {e}")))?;
    Ok(runtime.block_on(task))
}

/// `ward check-config FILE`: `FILE: ok`, or every problem; warnings
/// (valid, but likely not meant) on stderr either way.
pub fn check_config(file: &Path) -> Outcome {
    let config = config(file)?;
    for warning in config.warnings() {
        eprintln!("{}: warning: {warning}", file.display());
    }
    println!("{}: ok", file.display());
    Ok(ExitCode::SUCCESS)
}

/// `ward serve`: logging as configured, then the server until SIGTERM or
/// SIGINT, drained.
pub fn serve(path: &Path) -> Outcome {
    let (config, text) = crate::setup::load_with_text(path, &ProcessEnv)
        .map_err(|e| Failure(format!("{}: {e}", path.display())))?;
    // One runtime here; the other check workers are the server's cores
    // (`server/cores.rs`).
    let result = block_on(1, async {
        // In the runtime: the OTLP/gRPC exporter's channel lives on it.
        let telemetry = crate::telemetry::init(&config.log, &config.tracing);
        let served = serve_on(&config, &text, path).await;
        telemetry.finish().await;
        served
    })?;
    result.map(|()| ExitCode::SUCCESS).map_err(|e| {
        tracing::error!(error = %e, "ward failed");
        Failure(format!("ward: {e}"))
    })
}

async fn serve_on(
    config: &Config,
    text: &str,
    path: &Path,
) -> Result<(), crate::server::ServerError> {
    for warning in config.warnings() {
        tracing::warn!(field = %warning.path, "{}", warning.message);
    }
    let server = crate::server::Server::bind_reloading(config, text, path).await?;
    tracing::info!(
        grpc = ?server.grpc_addr(),
        admin = ?server.admin_addr(),
        http = ?server.http_addr(),
        management = ?server.management_addr(),
        unix_socket = ?config.listen.unix_socket,
        version = env!("CARGO_PKG_VERSION"),
        "ward listening"
    );
    server.serve(shutdown_signal()).await
}

/// Resolves on SIGTERM (Kubernetes) or SIGINT (a terminal).
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
