//! `ward apikey ...` and `ward session ...`: their flags, and the text
//! each prints. Every command goes to a `Target` (`target.rs`): the config's Redis
//! through `Manager` (which writes atomically and publishes the
//! invalidation), or with `--server` a running ward's management API,
//! which does the same on its side. One result is printed; a failure is
//! `ward: <error>`, exit status 1.

use super::target::{Remote, Target, TargetError};
use super::{Failure, Outcome};
use crate::manage::{ApiKeyInfo, KeyRequest, Manager, SessionInfo};
use crate::session::NewSession;
use crate::store::records::OidcLogin;
use clap::{Args, Subcommand};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Args, Clone)]
pub struct StoreArgs {
    /// The ward config whose store.redis to use.
    #[arg(short, long, value_name = "FILE", required_unless_present = "server")]
    config: Option<PathBuf>,
    /// Go through a running ward's management API instead of Redis
    /// (`http://host:port`, its management.listen).
    #[arg(long, value_name = "URL", conflicts_with = "config")]
    server: Option<String>,
    /// With --server: the file holding the API's bearer token (the one
    /// its management.auth.token_file holds).
    #[arg(long, value_name = "FILE", requires = "server")]
    token_file: Option<PathBuf>,
    /// With an `https://` --server: the CA (PEM) its certificate chains to.
    #[arg(long, value_name = "FILE", requires = "server")]
    ca_file: Option<PathBuf>,
    /// With an `https://` --server: a client certificate (PEM) for mTLS.
    #[arg(long, value_name = "FILE", requires_all = ["server", "key"])]
    cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(long, value_name = "FILE", requires = "cert")]
    key: Option<PathBuf>,
}

impl StoreArgs {
    /// The management API connection the flags describe.
    fn remote<'a>(&'a self, url: &'a str) -> super::target::RemoteOptions<'a> {
        super::target::RemoteOptions {
            url,
            token_file: self.token_file.as_deref(),
            ca_file: self.ca_file.as_deref(),
            client: self.cert.as_deref().zip(self.key.as_deref()),
        }
    }
}

#[derive(Subcommand)]
pub enum ApikeyCommand {
    /// Create a key and print it once (only its SHA-256 is stored).
    Create {
        #[command(flatten)]
        store: StoreArgs,
        /// The user the key acts as (x-user-id).
        #[arg(long, allow_hyphen_values = true)]
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
        #[arg(long, allow_hyphen_values = true)]
        user: String,
    },
    /// Revoke a key by its public id.
    Revoke {
        #[command(flatten)]
        store: StoreArgs,
        #[arg(value_name = "KEY_ID")]
        key_id: String,
    },
    /// Replace a key: a new key (printed once) with the old one's user,
    /// name, scopes and expiry; the old one works on for --overlap.
    Rotate {
        #[command(flatten)]
        store: StoreArgs,
        #[arg(value_name = "KEY_ID")]
        key_id: String,
        /// How long the old key keeps working, e.g. 1h; 0s stops it now.
        #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
        overlap: Duration,
    },
}

#[derive(Subcommand)]
pub enum SessionCommand {
    /// Create a session and print its id (for tests and demos; a login
    /// service normally does this).
    #[command(group(clap::ArgGroup::new("oidc_subject").multiple(true).args(["oidc_sid", "oidc_sub"])))]
    Create {
        #[command(flatten)]
        store: StoreArgs,
        /// The user id. Identifiers that come from elsewhere (this one and
        /// the provider's sid and sub) may begin with `-`.
        #[arg(long, allow_hyphen_values = true)]
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
        /// The OpenID provider (its `iss`) the login came from: with
        /// --oidc-sid and/or --oidc-sub, its back-channel logout revokes
        /// this session.
        #[arg(long, requires = "oidc_subject")]
        oidc_issuer: Option<String>,
        /// The provider's session id (the ID token's `sid`).
        #[arg(long, requires = "oidc_issuer", allow_hyphen_values = true)]
        oidc_sid: Option<String>,
        /// The provider's user (the ID token's `sub`).
        #[arg(long, requires = "oidc_issuer", allow_hyphen_values = true)]
        oidc_sub: Option<String>,
    },
    /// List a user's live sessions.
    List {
        #[command(flatten)]
        store: StoreArgs,
        #[arg(value_name = "USER", allow_hyphen_values = true)]
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
        #[arg(value_name = "USER", allow_hyphen_values = true)]
        user: String,
    },
}

/// Runs one `ward apikey` command.
pub fn apikey(cmd: ApikeyCommand) -> Outcome {
    let store = match &cmd {
        ApikeyCommand::Create { store, .. }
        | ApikeyCommand::List { store, .. }
        | ApikeyCommand::Revoke { store, .. }
        | ApikeyCommand::Rotate { store, .. } => store.clone(),
    };
    run(&store, async |t| apikey_text(t, cmd).await)
}

/// Runs one `ward session` command.
pub fn session(cmd: SessionCommand) -> Outcome {
    let store = match &cmd {
        SessionCommand::Create { store, .. }
        | SessionCommand::List { store, .. }
        | SessionCommand::Revoke { store, .. }
        | SessionCommand::RevokeUser { store, .. } => store.clone(),
    };
    run(&store, async |t| session_text(t, cmd).await)
}

/// Opens the target the flags name (the config's Redis, or `--server`),
/// runs `command` and prints the text it returns.
fn run(
    store: &StoreArgs,
    command: impl AsyncFnOnce(&Target) -> Result<String, TargetError>,
) -> Outcome {
    let config = match &store.config {
        Some(path) => Some(super::config(path)?),
        None => None,
    };
    let result = super::block_on(1, async {
        let target = match (&config, &store.server) {
            (_, Some(url)) => Target::Remote(Remote::connect(&store.remote(url)).await?),
            (Some(config), None) => Target::Direct {
                manager: Manager::open(config).await?,
                prefix: config.api_keys.prefix.clone(),
            },
            // clap requires one of the two.
            (None, None) => return Err(TargetError::NoTarget),
        };
        command(&target).await
    })?;
    let text = result.map_err(|e| Failure(format!("ward: {e}")))?;
    print!("{text}");
    Ok(ExitCode::SUCCESS)
}

async fn apikey_text(t: &Target, cmd: ApikeyCommand) -> Result<String, TargetError> {
    match cmd {
        ApikeyCommand::Create {
            user,
            name,
            scopes,
            expires,
            ..
        } => {
            let req = KeyRequest {
                user_id: user,
                name,
                scopes,
                expires_in: expires,
            };
            let created = t.create_api_key(req).await?;
            Ok(shown_once(&created.key_id, &created.key))
        }
        ApikeyCommand::List { user, .. } => Ok(api_key_table(&t.list_api_keys(&user).await?)),
        ApikeyCommand::Revoke { key_id, .. } => {
            t.revoke_api_key(&key_id).await?;
            Ok(format!("revoked {key_id}\n"))
        }
        ApikeyCommand::Rotate {
            key_id, overlap, ..
        } => {
            let rotated = t.rotate_api_key(&key_id, overlap).await?;
            Ok(format!(
                "{}{key_id} stops working at {} (unix time)\n",
                shown_once(&rotated.new.key_id, &rotated.new.key),
                rotated.old_expires_at
            ))
        }
    }
}

fn shown_once(key_id: &str, key: &str) -> String {
    format!(
        "key_id: {key_id}\nkey:    {key}\n\nThe key is shown only this once; ward stores only its SHA-256.\n"
    )
}

async fn session_text(t: &Target, cmd: SessionCommand) -> Result<String, TargetError> {
    match cmd {
        SessionCommand::Create {
            user,
            email,
            roles,
            scopes,
            fingerprint,
            ttl,
            oidc_issuer,
            oidc_sid,
            oidc_sub,
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
            let login = oidc_issuer.as_deref().map(|issuer| OidcLogin {
                issuer,
                sid: oidc_sid.as_deref(),
                sub: oidc_sub.as_deref(),
            });
            Ok(format!(
                "{}\n",
                t.create_session(new, login.as_ref()).await?
            ))
        }
        SessionCommand::List { user, .. } => Ok(session_table(&t.list_sessions(&user).await?)),
        SessionCommand::Revoke { sid, .. } => {
            t.revoke_session(&sid).await?;
            Ok(format!("revoked {sid}\n"))
        }
        SessionCommand::RevokeUser { user, .. } => {
            let n = t.revoke_user(&user).await?;
            Ok(format!("revoked {n} session(s) of {user}\n"))
        }
    }
}

fn session_table(sessions: &[SessionInfo]) -> String {
    let mut out = String::from("SESSION_ID                        EXPIRES_AT  REVOKED  TTL\n");
    for s in sessions {
        let _ = writeln!(
            out,
            "{:<33} {:<11} {:<8} {}",
            s.session_id,
            or_dash(s.expires_at),
            flag(s.revoked),
            s.ttl
                .map_or_else(|| "-".into(), |t| format!("{}s", t.as_secs()))
        );
    }
    out
}

fn api_key_table(keys: &[ApiKeyInfo]) -> String {
    let mut out = String::from(
        "KEY_ID                NAME                  SCOPES            EXPIRES_AT  REVOKED\n",
    );
    for k in keys {
        let scopes = if k.scopes.is_empty() {
            "-".into()
        } else {
            k.scopes.join(",")
        };
        let _ = writeln!(
            out,
            "{:<21} {:<21} {:<17} {:<11} {}",
            k.key_id,
            k.name,
            scopes,
            or_dash(k.expires_at),
            flag(k.revoked)
        );
    }
    out
}

fn or_dash(t: Option<u64>) -> String {
    t.map_or_else(|| "-".into(), |t| t.to_string())
}

fn flag(revoked: bool) -> &'static str {
    if revoked { "1" } else { "-" }
}
