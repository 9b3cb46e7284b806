//! The back-channel logout endpoint (OpenID Connect Back-Channel Logout
//! 1.0 §2.5, §2.8): an identity provider POSTs `logout_token=...` when a
//! user logs out there, and ward revokes the sessions a login service
//! recorded for that provider session or user, on every ward at once.
//!
//! The token is the request's only credential, so this endpoint belongs
//! on the management listener (never the Check port) yet asks the caller
//! for nothing else. The shell's part: read the form, hand the token and
//! its issuer's keys to the pure verifier (`backchannel.rs`), claim its
//! `jti` in the store (a second use, on any ward, is a replay), then
//! revoke through `store/records/oidc.rs`, whose every revocation
//! publishes its invalidation. Answers: 200 when done (also when nothing
//! was recorded: there is nothing left to log out), 400 with an OAuth
//! error body otherwise, always `Cache-Control: no-store`.

use crate::apikey::RandomError;
use crate::backchannel::{self, LogoutError, LogoutRules, Target};
use crate::config::Config;
use crate::jwks::KeyStore;
use crate::jwt::{AllowedTypes, JwtError, KeySet};
use crate::metrics::{LogoutOutcome, Metrics};
use crate::session;
use crate::store::keys::KeyNames;
use crate::store::records::Records;
use crate::store::{Store, StoreError};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use std::sync::Arc;
use std::time::Duration;

/// A body larger than this is refused before it is read: a form holding
/// one token of at most `jwt.max_token_bytes` (64 KiB at most).
const MAX_BODY: usize = 2 * 65_536;
/// How long a token naming a `kid` nobody knows waits for its provider's
/// keys to be refetched (a key rotation) before it is refused.
const NEW_KEYS_WAIT: Duration = Duration::from_secs(2);

/// One config's back-channel logout: its rules, and the keys and store
/// of the ward serving it.
pub struct Backchannel {
    rules: LogoutRules,
    issuers: Vec<String>,
    keys: Arc<KeyStore>,
    store: Store,
    names: KeyNames,
    metrics: Arc<Metrics>,
}

/// The endpoint's view of the running ward: the current config's
/// [`Backchannel`] (a reload may swap it), `None` when it is off.
pub type Current = Arc<dyn Fn() -> Option<Arc<Backchannel>> + Send + Sync>;

/// Why a logout was not done; every one is a 400 (§2.8).
#[derive(Debug, thiserror::Error)]
enum Refusal {
    #[error("{0}")]
    Form(&'static str),
    #[error("{0}")]
    Token(#[from] LogoutError),
    #[error("this logout token was already used")]
    Replay,
    #[error("the session store failed: {0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Random(#[from] RandomError),
}

impl Backchannel {
    /// The endpoint for `config`, over the ward's key store, store and
    /// metrics; `None` when `management.backchannel_logout` is not set.
    pub fn new(
        config: &Config,
        keys: Arc<KeyStore>,
        store: Store,
        metrics: Arc<Metrics>,
    ) -> Option<Self> {
        let logout = config.management.backchannel_logout.as_ref()?;
        Some(Self {
            rules: LogoutRules {
                client_id: logout.client_id.clone(),
                leeway: config.jwt.leeway,
                max_age: logout.max_token_age,
                max_token_bytes: config.jwt.max_token_bytes,
                types: AllowedTypes::new(&logout.allowed_types),
            },
            issuers: logout.issuers.clone(),
            keys,
            store,
            names: KeyNames::new(&config.store.key_prefix),
            metrics,
        })
    }

    /// An accepted issuer's keys, and only its own.
    fn issuer_keys(&self, issuer: &str) -> Option<Arc<KeySet>> {
        if !self.issuers.iter().any(|i| i == issuer) {
            return None;
        }
        self.keys.issuer_keys(issuer)
    }

    /// Verifies `token`; a `kid` its provider's keys lack waits once for
    /// a refetch (the provider rotated its keys), within a bound.
    async fn verify(&self, token: &str) -> Result<backchannel::Logout, LogoutError> {
        let verify = || {
            let keys = |iss: &str| self.issuer_keys(iss);
            backchannel::verify(token, keys, &self.rules, crate::unix_now())
        };
        match verify() {
            Err(LogoutError::Jwt(JwtError::UnknownKey)) => {
                if let Some(mut fresh) = self.keys.request_refetch() {
                    let _ = tokio::time::timeout(NEW_KEYS_WAIT, fresh.changed()).await;
                }
                verify()
            }
            result => result,
        }
    }

    /// The whole logout: verify, claim the `jti`, revoke; returns how
    /// many ward sessions were revoked.
    async fn logout(&self, token: &str) -> Result<(backchannel::Logout, usize), Refusal> {
        let logout = self.verify(token).await?;
        let records = Records::new(&self.store, &self.names);
        let now = crate::unix_now();
        let window = Duration::from_secs(logout.replay_until.saturating_sub(now).max(1));
        let claimant = session::generate_id()?;
        if !records
            .claim_logout(&logout.issuer, &logout.jti, &claimant, window)
            .await?
        {
            return Err(Refusal::Replay);
        }
        match records.logout_oidc(&logout.issuer, &logout.target).await {
            Ok(revoked) => Ok((logout, revoked)),
            Err(e) => {
                // The provider may send this token again: not a replay.
                let _ = records.release_logout(&logout.issuer, &logout.jti).await;
                Err(e.into())
            }
        }
    }
}

/// A [`Current`] that is always `backchannel` (no reload).
pub fn fixed(backchannel: Arc<Backchannel>) -> Current {
    Arc::new(move || Some(backchannel.clone()))
}

/// The endpoint at `path` (`management.backchannel_logout.path`), to be
/// merged into the management listener's router.
pub fn router(path: &str, current: Current) -> Router {
    Router::new()
        .route(path, post(handle))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(current)
}

/// Serves `router` on `listener` until `shutdown` completes: the
/// endpoint on a listener of its own, in-process (tests); `ward serve`
/// mounts `router` on the management listener instead
/// (`server/management.rs`).
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}

async fn handle(State(current): State<Current>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(backchannel) = current() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let result = match logout_token(&headers, &body) {
        Ok(token) => backchannel.logout(&token).await,
        Err(e) => Err(e),
    };
    let outcome = match &result {
        Ok(_) => LogoutOutcome::LoggedOut,
        Err(Refusal::Replay) => LogoutOutcome::Replayed,
        Err(Refusal::Store(_) | Refusal::Random(_)) => LogoutOutcome::Failed,
        Err(Refusal::Form(_) | Refusal::Token(_)) => LogoutOutcome::Refused,
    };
    let revoked = result.as_ref().map_or(0, |(_, n)| *n);
    backchannel.metrics.backchannel_logout(outcome, revoked);
    match result {
        Ok((logout, revoked)) => {
            let by = match logout.target {
                Target::Session(_) => "sid",
                Target::Subject(_) => "sub",
            };
            tracing::info!(issuer = %logout.issuer, jti = %logout.jti, by, revoked, "back-channel logout");
            ([(header::CACHE_CONTROL, "no-store")], StatusCode::OK).into_response()
        }
        Err(refusal) => refused(&refusal),
    }
}

/// The one `logout_token` of an `application/x-www-form-urlencoded` body.
fn logout_token(headers: &HeaderMap, body: &[u8]) -> Result<String, Refusal> {
    let form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if !form {
        return Err(Refusal::Form(
            "the body must be application/x-www-form-urlencoded",
        ));
    }
    let mut tokens = form_urlencoded::parse(body).filter(|(k, _)| k == "logout_token");
    match (tokens.next(), tokens.next()) {
        (Some((_, token)), None) => Ok(token.into_owned()),
        (None, _) => Err(Refusal::Form("`logout_token` is missing")),
        (Some(_), Some(_)) => Err(Refusal::Form("`logout_token` is given twice")),
    }
}

/// A 400 with an OAuth error body (RFC 6749 §5.2), never the token.
fn refused(refusal: &Refusal) -> Response {
    let error = match refusal {
        Refusal::Store(_) | Refusal::Random(_) => "temporarily_unavailable",
        _ => "invalid_request",
    };
    match refusal {
        Refusal::Store(_) | Refusal::Random(_) => {
            tracing::warn!(error = %refusal, "back-channel logout failed")
        }
        _ => tracing::info!(reason = %refusal, "back-channel logout refused"),
    }
    let body = serde_json::json!({"error": error, "error_description": refusal.to_string()});
    let headers = [
        (header::CACHE_CONTROL, "no-store"),
        (header::CONTENT_TYPE, "application/json"),
    ];
    (StatusCode::BAD_REQUEST, headers, body.to_string()).into_response()
}
