//! The `ward` binary: the command tree, parsed, and each subcommand handed
//! to [`ward::cli`], which loads the config, builds the runtime and prints
//! any failure. No logic lives here.

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use ward::cli::{
    self, explain::ExplainArgs, fingerprint::FingerprintArgs, install_module::InstallModuleArgs,
    store,
};

/// ward: an Envoy ext_authz server for JWTs, sessions and API keys.
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
    /// Print the device fingerprint ward computes for these attributes, so
    /// a login service can check its own implementation: `fp2:<hex>` (the
    /// current algorithm), or with --v1 the bare hex of v1.
    ///
    /// With --config, its sessions.fingerprint settings (attributes,
    /// masks) apply; otherwise the defaults (client_ip, user-agent,
    /// accept-language; no masking).
    Fingerprint(FingerprintArgs),
    /// Explain the decision for one request, without Envoy: the policy
    /// and route, the credential, each check, and the response.
    ///
    /// Uses the config's keys and store (Redis or the embedded store).
    /// Exits 0 when the request would be allowed, 2 when denied, 1 on an
    /// error.
    ///
    /// Example: ward explain -c ward.yaml -H 'authorization: Bearer eyJ...'
    /// https://api.example.com/admin/users
    Explain(ExplainArgs),
    /// Create, list and revoke API keys in Redis (store.redis).
    #[command(subcommand)]
    Apikey(store::ApikeyCommand),
    /// Create, list and revoke sessions in Redis (store.redis).
    #[command(subcommand)]
    Session(store::SessionCommand),
    /// Copy the Envoy module (libward_envoy.so) into DIR, atomically.
    ///
    /// For an init container from ward's (distroless) image: it fills an
    /// emptyDir that Envoy reads as ENVOY_DYNAMIC_MODULES_SEARCH_PATH.
    /// The module is taken from beside the ward binary unless --from
    /// names it (docs/envoy-module.md).
    InstallModule(InstallModuleArgs),
}

fn main() -> ExitCode {
    let outcome = match Cli::parse().command {
        Command::Serve { config } => cli::serve(&config),
        Command::CheckConfig { file } => cli::check_config(&file),
        Command::Fingerprint(args) => cli::fingerprint::run(&args),
        Command::Explain(args) => cli::explain::run(&args),
        Command::Apikey(cmd) => store::apikey(cmd),
        Command::Session(cmd) => store::session(cmd),
        Command::InstallModule(args) => cli::install_module::run(&args),
    };
    cli::exit(outcome)
}
