//! `ward apikey ...` and `ward session ...`: their flags, and the text
//! each prints. Every command loads the config, opens its Redis through
//! `Manager` (which writes atomically and publishes the invalidation)
//! and prints one result; a failure is `ward: <error>`, exit status 1.

use super::{Failure, Outcome};
use crate::config::Config;
use crate::manage::{self, ManageError, Manager};
use crate::session::NewSession;
use crate::store::records::OidcLogin;
use clap::{Args, Subcommand};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

#[derive(Args)]
pub struct StoreArgs {
    /// The ward config whose store.redis to use.
    #[arg(short, long, value_name = "FILE")]
    config: PathBuf,
}

#[derive(Subcommand)]
pub enum ApikeyCommand {
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
pub enum SessionCommand {
    /// Create a session and print its id (for tests and demos; a login
    /// service normally does this).
    #[command(group(clap::ArgGroup::new("oidc_subject").multiple(true).args(["oidc_sid", "oidc_sub"])))]
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
        /// The OpenID provider (its `iss`) the login came from: with
        /// --oidc-sid and/or --oidc-sub, its back-channel logout revokes
        /// this session.
        #[arg(long, requires = "oidc_subject")]
        oidc_issuer: Option<String>,
        /// The provider's session id (the ID token's `sid`).
        #[arg(long, requires = "oidc_issuer")]
        oidc_sid: Option<String>,
        /// The provider's user (the ID token's `sub`).
        #[arg(long, requires = "oidc_issuer")]
        oidc_sub: Option<String>,
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

/// Runs one `ward apikey` command.
pub fn apikey(cmd: ApikeyCommand) -> Outcome {
    let path = match &cmd {
        ApikeyCommand::Create { store, .. }
        | ApikeyCommand::List { store, .. }
        | ApikeyCommand::Revoke { store, .. } => store.config.clone(),
    };
    run(&path, async |m, config| apikey_text(m, config, cmd).await)
}

/// Runs one `ward session` command.
pub fn session(cmd: SessionCommand) -> Outcome {
    let path = match &cmd {
        SessionCommand::Create { store, .. }
        | SessionCommand::List { store, .. }
        | SessionCommand::Revoke { store, .. }
        | SessionCommand::RevokeUser { store, .. } => store.config.clone(),
    };
    run(&path, async |m, _| session_text(m, cmd).await)
}

/// Loads the config at `path`, opens its Redis, runs `command` and prints
/// the text it returns.
fn run(
    path: &Path,
    command: impl AsyncFnOnce(&Manager, &Config) -> Result<String, ManageError>,
) -> Outcome {
    let config = super::config(path)?;
    let result = super::block_on(1, async {
        let manager = Manager::open(&config).await?;
        command(&manager, &config).await
    })?;
    let text = result.map_err(|e| Failure(format!("ward: {e}")))?;
    print!("{text}");
    Ok(ExitCode::SUCCESS)
}

async fn apikey_text(
    m: &Manager,
    config: &Config,
    cmd: ApikeyCommand,
) -> Result<String, ManageError> {
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

async fn session_text(m: &Manager, cmd: SessionCommand) -> Result<String, ManageError> {
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
            if let Some(login) = &login {
                manage::check_oidc_login(login)?;
            }
            let sid = m.create_session(&new).await?;
            if let Some(login) = &login {
                m.link_oidc(&sid, login, ttl).await?;
            }
            Ok(format!("{sid}\n"))
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
