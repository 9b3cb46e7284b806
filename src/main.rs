//! The `ward` command line: parse arguments, load config, start logging,
//! and hand over to the library. No logic lives here.

use clap::{Args, Parser, Subcommand};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;
use ward::config::{Config, ConfigError, FingerprintConfig, ProcessEnv};
use ward::manage::{ManageError, Manager};
use ward::session::NewSession;

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
    Apikey(ApikeyCommand),
    /// Create, list and revoke sessions in Redis (store.redis).
    #[command(subcommand)]
    Session(SessionCommand),
}

#[derive(Args)]
struct ExplainArgs {
    /// The YAML config file.
    #[arg(short, long, value_name = "FILE")]
    config: PathBuf,
    /// The request URL: https://host/path?query, or /path with -H 'host: ...'.
    #[arg(value_name = "URL", required_unless_present = "request")]
    url: Option<String>,
    /// HTTP method.
    #[arg(short = 'X', long, default_value = "GET")]
    method: String,
    /// A request header, `Name: value` (repeatable).
    #[arg(short = 'H', long = "header", value_name = "HEADER")]
    headers: Vec<String>,
    /// The address Envoy would report as the peer (source.address).
    #[arg(long, value_name = "IP")]
    source_ip: Option<IpAddr>,
    /// The `ward_policy` an Envoy route sets in context_extensions.
    #[arg(long, value_name = "NAME")]
    envoy_policy: Option<String>,
    /// Read the request from a JSON file instead: {"method", "url",
    /// "headers": {name: value or [values]}, "source_ip", "envoy_policy"}.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["url", "headers", "source_ip", "envoy_policy"])]
    request: Option<PathBuf>,
}

#[derive(Args)]
struct FingerprintArgs {
    /// The client IP address (after trusted-hop resolution).
    #[arg(long)]
    ip: Option<String>,
    /// The User-Agent header value.
    #[arg(long)]
    user_agent: Option<String>,
    /// The Accept-Language header value.
    #[arg(long)]
    accept_language: Option<String>,
    /// Any other attribute header, as NAME=VALUE (repeatable).
    #[arg(long = "header", value_name = "NAME=VALUE")]
    headers: Vec<String>,
    /// Take attributes and masks from this config's sessions.fingerprint.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Print the v1 fingerprint (bare hex, every value byte for byte), as
    /// sessions written before `fp2:` store it.
    #[arg(long)]
    v1: bool,
}

#[derive(Args)]
struct StoreArgs {
    /// The ward config whose store.redis to use.
    #[arg(short, long, value_name = "FILE")]
    config: PathBuf,
}

#[derive(Subcommand)]
enum ApikeyCommand {
    /// Create a key and print it once (only its SHA-256 is stored).
    Create {
        #[command(flatten)]
        store: StoreArgs,
        /// The user the key acts as (x-user-id).
        #[arg(long)]
        user: String,
        /// A name to recognise the key by.
        #[arg(long)]
        name: String,
        /// Comma-separated scopes (x-user-scopes).
        #[arg(long, value_delimiter = ',')]
        scopes: Vec<String>,
        /// Lifetime, e.g. 30d or 12h; none means no expiry.
        #[arg(long, value_parser = humantime::parse_duration)]
        expires: Option<Duration>,
    },
    /// List a user's keys (ids and metadata, never the keys).
    List {
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long)]
        user: String,
    },
    /// Revoke a key by its public id.
    Revoke {
        #[command(flatten)]
        store: StoreArgs,
        #[arg(value_name = "KEY_ID")]
        key_id: String,
    },
}

#[derive(Subcommand)]
enum SessionCommand {
    /// Create a session and print its id (for tests and demos; a login
    /// service normally does this).
    Create {
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long)]
        user: String,
        #[arg(long)]
        email: Option<String>,
        #[arg(long, value_delimiter = ',')]
        roles: Vec<String>,
        #[arg(long, value_delimiter = ',')]
        scopes: Vec<String>,
        /// Fingerprint to bind the session to, as `ward fingerprint` prints
        /// it (`fp2:<hex>`, or v1's bare hex).
        #[arg(long)]
        fingerprint: Option<String>,
        /// Lifetime (key TTL and expires_at).
        #[arg(long, default_value = "24h", value_parser = humantime::parse_duration)]
        ttl: Duration,
    },
    /// List a user's live sessions.
    List {
        #[command(flatten)]
        store: StoreArgs,
        #[arg(value_name = "USER")]
        user: String,
    },
    /// Revoke one session.
    Revoke {
        #[command(flatten)]
        store: StoreArgs,
        #[arg(value_name = "SID")]
        sid: String,
    },
    /// Revoke every session of a user (log out everywhere).
    RevokeUser {
        #[command(flatten)]
        store: StoreArgs,
        #[arg(value_name = "USER")]
        user: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::CheckConfig { file } => check_config(&file),
        Command::Serve { config } => serve(&config),
        Command::Fingerprint(args) => fingerprint(&args),
        Command::Explain(args) => explain(&args),
        Command::Apikey(cmd) => {
            run_store_command(apikey_path(&cmd), |m, c| Box::pin(apikey(m, c, cmd)))
        }
        Command::Session(cmd) => {
            run_store_command(session_path(&cmd), |m, _| Box::pin(session(m, cmd)))
        }
    }
}

fn apikey_path(cmd: &ApikeyCommand) -> PathBuf {
    match cmd {
        ApikeyCommand::Create { store, .. }
        | ApikeyCommand::List { store, .. }
        | ApikeyCommand::Revoke { store, .. } => store.config.clone(),
    }
}

fn session_path(cmd: &SessionCommand) -> PathBuf {
    match cmd {
        SessionCommand::Create { store, .. }
        | SessionCommand::List { store, .. }
        | SessionCommand::Revoke { store, .. }
        | SessionCommand::RevokeUser { store, .. } => store.config.clone(),
    }
}

type CommandFuture<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<String, ManageError>> + 'a>>;

/// Loads the config, opens its Redis, runs one management command and
/// prints its output.
fn run_store_command(
    path: PathBuf,
    run: impl for<'a> FnOnce(&'a Manager, &'a Config) -> CommandFuture<'a>,
) -> ExitCode {
    let config = match Config::load(&path, &ProcessEnv) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let manager = Manager::open(&config).await?;
        run(&manager, &config).await
    });
    match result {
        Ok(out) => {
            print!("{out}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ward: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn apikey(m: &Manager, config: &Config, cmd: ApikeyCommand) -> Result<String, ManageError> {
    match cmd {
        ApikeyCommand::Create {
            user,
            name,
            scopes,
            expires,
            ..
        } => {
            let (key, id) = m
                .create_api_key(&config.api_keys.prefix, &user, &name, scopes, expires)
                .await?;
            Ok(format!(
                "key_id: {id}\nkey:    {key}\n\nThe key is shown only this once; ward stores only its SHA-256.\n"
            ))
        }
        ApikeyCommand::List { user, .. } => m.list_api_keys(&user).await,
        ApikeyCommand::Revoke { key_id, .. } => {
            m.revoke_api_key(&key_id).await?;
            Ok(format!("revoked {key_id}\n"))
        }
    }
}

async fn session(m: &Manager, cmd: SessionCommand) -> Result<String, ManageError> {
    match cmd {
        SessionCommand::Create {
            user,
            email,
            roles,
            scopes,
            fingerprint,
            ttl,
            ..
        } => {
            let new = NewSession {
                user_id: user,
                email,
                roles,
                scopes,
                fingerprint,
                ttl,
            };
            Ok(format!("{}\n", m.create_session(&new).await?))
        }
        SessionCommand::List { user, .. } => m.list_sessions(&user).await,
        SessionCommand::Revoke { sid, .. } => {
            m.revoke_session(&sid).await?;
            Ok(format!("revoked {sid}\n"))
        }
        SessionCommand::RevokeUser { user, .. } => {
            let n = m.revoke_user(&user).await?;
            Ok(format!("revoked {n} session(s) of {user}\n"))
        }
    }
}

fn explain(args: &ExplainArgs) -> ExitCode {
    let config = match Config::load(&args.config, &ProcessEnv) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{}: {e}", args.config.display());
            return ExitCode::FAILURE;
        }
    };
    let request = match explain_request(args) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(ward::explain::explain(&config, &request, ward::unix_now())) {
        Ok(e) => {
            print!("{}", e.text);
            if e.allowed {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(2)
            }
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

fn explain_request(args: &ExplainArgs) -> Result<ward::explain::ExplainRequest, String> {
    if let Some(path) = &args.request {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let mut req: ward::explain::ExplainRequest =
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        if req.url.is_empty() {
            return Err(format!("{}: `url` is required", path.display()));
        }
        if req.method.is_empty() {
            req.method = args.method.clone();
        }
        return Ok(req);
    }
    // In order, repeats kept: explain folds them as `ward serve` does. Only
    // optional whitespace (SP, HTAB) is dropped around a value, as an HTTP
    // parser drops it.
    let mut headers = Vec::with_capacity(args.headers.len());
    for h in &args.headers {
        let Some((name, value)) = h.split_once(':') else {
            return Err(format!("-H takes `Name: value`, got {h:?}"));
        };
        let value = ward::credentials::trim_ows(value).to_string();
        headers.push((name.trim().to_ascii_lowercase(), value));
    }
    Ok(ward::explain::ExplainRequest {
        method: args.method.clone(),
        url: args.url.clone().unwrap_or_default(),
        headers,
        source_ip: args.source_ip,
        envoy_policy: args.envoy_policy.clone(),
    })
}

fn fingerprint(args: &FingerprintArgs) -> ExitCode {
    let config = match &args.config {
        Some(path) => match Config::load(path, &ProcessEnv) {
            Ok(c) => c.sessions.fingerprint,
            Err(e) => {
                eprintln!("{}: {e}", path.display());
                return ExitCode::FAILURE;
            }
        },
        None => FingerprintConfig::default(),
    };
    // Later values of a name win (Headers looks from the end).
    let mut headers: Vec<(String, String)> = Vec::new();
    if let Some(ua) = &args.user_agent {
        headers.push(("user-agent".to_string(), ua.clone()));
    }
    if let Some(al) = &args.accept_language {
        headers.push(("accept-language".to_string(), al.clone()));
    }
    for pair in &args.headers {
        let Some((name, value)) = pair.split_once('=') else {
            eprintln!("--header takes NAME=VALUE, got {pair:?}");
            return ExitCode::FAILURE;
        };
        headers.push((name.trim().to_ascii_lowercase(), value.to_string()));
    }
    let source_ip = match args.ip.as_deref().map(str::parse) {
        None => None,
        Some(Ok(ip)) => Some(ip),
        Some(Err(_)) => {
            eprintln!("--ip is not an IP address");
            return ExitCode::FAILURE;
        }
    };
    // The IP given is the resolved client IP: no hops to count.
    let config = FingerprintConfig {
        trusted_hops: 0,
        ..config
    };
    let req = ward::request::Request {
        method: "GET",
        host: "",
        path: "/",
        headers: ward::request::Headers::owned(&headers),
        policy: None,
        source_ip,
    };
    let version = if args.v1 {
        ward::fingerprint::Version::V1
    } else {
        ward::fingerprint::Version::V2
    };
    println!(
        "{}",
        ward::authn::request_fingerprint_as(&config, &req, version)
    );
    ExitCode::SUCCESS
}

fn check_config(file: &Path) -> ExitCode {
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

fn serve(path: &Path) -> ExitCode {
    let config = match Config::load(path, &ProcessEnv) {
        Ok(c) => c,
        Err(e @ (ConfigError::Read { .. } | ConfigError::Parse(_) | ConfigError::Invalid(_))) => {
            eprintln!("{}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    };
    ward::telemetry::init(&config.log);
    let runtime = match ward::runtime::builder(config.runtime.worker_threads).build() {
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
            http = ?server.http_addr(),
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
