//! The `ward` command line: parse arguments, load config, start logging,
//! and hand over to the library. No logic lives here.

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use ward::config::{Config, ConfigError, ProcessEnv};

/// ward: an Envoy ext_authz server for JWTs (sessions and API keys to come).
///
/// Envoy calls ward's gRPC `envoy.service.auth.v3.Authorization/Check` for
/// every request; ward verifies the credential, answers allow or deny, and
/// injects identity headers (x-user-id, ...) for the backend.
#[derive(Parser)]
#[command(name = "ward", version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the ext_authz server (gRPC Check + health, admin HTTP port).
    ///
    /// Stops on SIGTERM or SIGINT after draining in-flight checks.
    Serve {
        /// The YAML config file (see docs/configuration.md).
        #[arg(short, long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Check a config file: report every problem with its field path.
    ///
    /// Exits 0 when the config is valid, 1 otherwise. Reads key files, but
    /// fetches no JWKS URL.
    CheckConfig {
        /// The YAML config file to check.
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::CheckConfig { file } => check_config(&file),
        Command::Serve { config } => serve(&config),
    }
}

fn check_config(file: &std::path::Path) -> ExitCode {
    match Config::load(file, &ProcessEnv) {
        Ok(_) => {
            println!("{}: ok", file.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{}: {e}", file.display());
            ExitCode::FAILURE
        }
    }
}

fn serve(path: &std::path::Path) -> ExitCode {
    let config = match Config::load(path, &ProcessEnv) {
        Ok(c) => c,
        Err(e @ (ConfigError::Read { .. } | ConfigError::Parse(_) | ConfigError::Invalid(_))) => {
            eprintln!("{}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    };
    ward::telemetry::init(&config.log);
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    runtime.enable_all();
    if config.runtime.worker_threads > 0 {
        runtime.worker_threads(config.runtime.worker_threads);
    }
    let runtime = match runtime.build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let server = ward::server::Server::bind(&config).await?;
        tracing::info!(
            grpc = ?server.grpc_addr(),
            admin = ?server.admin_addr(),
            unix_socket = ?config.listen.unix_socket,
            version = env!("CARGO_PKG_VERSION"),
            "ward listening"
        );
        server.serve(shutdown_signal()).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "ward failed");
            eprintln!("ward: {e}");
            ExitCode::FAILURE
        }
    }
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
