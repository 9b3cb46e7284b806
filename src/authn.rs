//! Authentication: request in, decision out. The one step of a check that
//! may wait: on the store (sessions, API keys, revocations, through the
//! in-process cache) and on a JWKS refetch for an unknown `kid`.
//!
//! One path per credential kind; a malformed id never reaches the store.
//! Every failed store read goes through [`on_store_error::verdict`], the
//! one place the policy's `on_store_error` is applied: an outage is a 503
//! unless the policy says `open`, a bad record is a 401 under every
//! policy. The policy, the limiter and roles/scopes are `check.rs`'s
//! business.

use crate::apikey::{self, ApiKey};
use crate::cache::TokenCache;
use crate::config::{Config, FingerprintConfig, FingerprintMode, OnStoreError};
use crate::credentials::hash_credential;
use crate::credentials::{Credential, Extractor};
use crate::fingerprint;
use crate::identity::{ClaimRenderer, HeaderRules, Identity, IdentityError};
use crate::reason::Reason;

use crate::credential_kind::CredentialKind;
use crate::fields::Fields;
use crate::jwks::KeyStore;
use crate::jwt::{JwtError, Rules, Verifier};
use crate::lookup::{Lookups, Record, Stale};
use crate::metrics::Metrics;
use crate::on_store_error::{self, Site, Verdict};
use crate::request::Request;
use crate::session::{self, Session};
use crate::store::StoreError;
use std::sync::Arc;
use std::time::Duration;

/// What authentication established.
#[derive(Debug, Clone)]
pub enum Authenticated {
    Identity(Arc<Identity>),
    /// The store did not answer and the policy says `on_store_error:
    /// open`: the request passes without an identity.
    Anonymous,
}

/// How long a check with an unknown `kid` waits for a triggered JWKS
/// refetch; well under Envoy's default 200 ms ext_authz timeout.
const UNKNOWN_KID_WAIT: Duration = Duration::from_millis(100);

pub struct Authenticator {
    extractor: Extractor,
    verifier: Verifier,
    renderer: ClaimRenderer,
    rules: HeaderRules,
    keys: Arc<KeyStore>,
    cache: TokenCache,
    /// Serves this authenticator only: the views it keeps in cached
    /// records ([`Record::derived`]) follow its header rules.
    lookups: Arc<Lookups>,
    metrics: Arc<Metrics>,
    session_fields: Vec<(String, String)>,
    fingerprint: FingerprintConfig,
    api_key_prefix: String,
    api_key_foreign: bool,
    api_key_id_header: String,
    check_jti: bool,
    require_session: bool,
}

impl Authenticator {
    pub fn new(
        config: &Config,
        keys: Arc<KeyStore>,
        lookups: Arc<Lookups>,
        metrics: Arc<Metrics>,
    ) -> Self {
        let jwt = &config.jwt;
        Self {
            extractor: Extractor::from_config(config),
            verifier: Verifier {
                max_token_bytes: jwt.max_token_bytes,
                rules: Rules {
                    leeway: jwt.leeway,
                    issuers: jwt.issuers.clone(),
                    audiences: jwt.audiences.clone(),
                    max_lifetime: jwt.max_lifetime,
                },
            },
            renderer: ClaimRenderer::from_config(config),
            rules: HeaderRules::from_config(config),
            keys,
            cache: TokenCache::new(&config.cache),
            lookups,
            metrics,
            session_fields: config
                .sessions
                .fields
                .iter()
                .map(|f| (f.field.clone(), f.header.clone()))
                .collect(),
            fingerprint: config.sessions.fingerprint.clone(),
            api_key_prefix: config.api_keys.prefix.clone(),
            api_key_foreign: config.api_keys.accept_foreign,
            api_key_id_header: config.api_keys.id_header.clone(),
            check_jti: jwt.revocation.check_jti,
            require_session: jwt.revocation.require_session,
        }
    }

    /// The cached store reads, for invalidation.
    pub fn lookups(&self) -> &Arc<Lookups> {
        &self.lookups
    }

    /// The one credential the request carries (400 when ambiguous or
    /// malformed, 401 when missing); `decoded` holds a query token that had
    /// to be percent-decoded.
    pub fn extract<'a>(
        &self,
        req: &Request<'a>,
        decoded: &'a mut String,
    ) -> Result<Credential<'a>, Reason> {
        self.extractor.extract(req, decoded)
    }

    /// The identity behind a credential at `now` (unix seconds).
    /// `on_store_error` is the route's; a failed store read is decided by
    /// [`on_store_error::verdict`]. With `cache_only` (a client the limiter
    /// blocked), only what the caches answer counts: no signature is
    /// verified and the store is never asked.
    pub async fn authenticate(
        &self,
        credential: Credential<'_>,
        req: &Request<'_>,
        now: u64,
        on_store_error: OnStoreError,
        cache_only: bool,
    ) -> Result<Authenticated, Reason> {
        let read = Read {
            stale: match (cache_only, on_store_error) {
                (true, _) => Stale::CacheOnly,
                (false, OnStoreError::Closed) => Stale::Refused,
                (false, OnStoreError::Stale | OnStoreError::Open) => Stale::Allowed,
            },
            policy: on_store_error,
        };
        match credential {
            Credential::Bearer(token) => self.jwt(token, now, read).await,
            Credential::Session(sid) => self.session(sid, req, now, read).await,
            Credential::ApiKey(key) => self.api_key(key, now, read).await,
        }
    }

    async fn jwt(&self, token: &str, now: u64, read: Read) -> Result<Authenticated, Reason> {
        let stale = read.stale;
        let hash = hash_credential(token);
        let identity = match self.cache.get(&hash, now) {
            Some(identity) => {
                self.metrics.token_cache_hits.inc();
                identity
            }
            None if stale == Stale::CacheOnly => return Err(Reason::TooManyFailures),
            None => {
                if self.cache.is_enabled() {
                    self.metrics.token_cache_misses.inc();
                }
                let (identity, exp) = self.verify_jwt(token, now).await?;
                self.cache.insert(hash, identity.clone(), exp, now);
                identity
            }
        };
        self.check_revocation(&identity, now, read).await?;
        Ok(Authenticated::Identity(identity))
    }

    /// Revocation is checked on every use, cache hit or not: a logout must
    /// take effect within an invalidation, not at the token's `exp`. A
    /// read that fails is decided by the policy ([`on_store_error`]): under
    /// `open` an outage keeps the verified identity, a bad record never.
    async fn check_revocation(
        &self,
        identity: &Identity,
        now: u64,
        read: Read,
    ) -> Result<(), Reason> {
        if let (true, Some(jti)) = (self.check_jti, &identity.jti) {
            match self.lookups.jti_revoked(jti, read.stale).await {
                Ok(true) => return Err(Reason::TokenRevoked),
                Ok(false) => {}
                Err(e) => keep_identity(store_failure(&e, read.policy, Site::RevokedJti))?,
            }
        }
        if let (true, Some(sid)) = (self.require_session, &identity.session_id) {
            let record = match self.lookups.session(sid, read.stale).await {
                Ok(record) => record.ok_or(Reason::TokenRevoked)?,
                Err(e) => return keep_identity(store_failure(&e, read.policy, Site::TokenSession)),
            };
            self.with_session_view(&record, |view| match view {
                Ok(v) => session::check_state(v.revoked, v.expires_at, now)
                    .map_err(|_| Reason::TokenRevoked),
                // Unparsable or incomplete: a bad record, as WRONGTYPE is.
                Err(_) => keep_identity(on_store_error::verdict(
                    on_store_error::Fault::BadRecord,
                    read.policy,
                    Site::TokenSession,
                )),
            })?;
        }
        Ok(())
    }

    async fn verify_jwt(&self, token: &str, now: u64) -> Result<(Arc<Identity>, u64), Reason> {
        self.metrics.jwt_verifications.inc();
        let mut result = self.verifier.verify(token, &self.keys.snapshot(), now);
        if matches!(result, Err(JwtError::UnknownKey))
            && let Some(mut changed) = self.keys.request_refetch()
        {
            // A new kid is most often a key rotation: give the fetcher
            // one bounded chance before denying.
            let _ = tokio::time::timeout(UNKNOWN_KID_WAIT, changed.changed()).await;
            self.metrics.jwt_verifications.inc();
            result = self.verifier.verify(token, &self.keys.snapshot(), now);
        }
        let verified = result.map_err(|e| {
            if e == JwtError::UnknownKey && self.keys.snapshot().is_empty() {
                Reason::KeysUnavailable
            } else {
                Reason::from(&e)
            }
        })?;
        let identity = self
            .renderer
            .render(&verified.claims, CredentialKind::Jwt)
            .map_err(|e| match e {
                IdentityError::MissingUserId(_) => Reason::MissingClaim,
                IdentityError::BadValue { .. } => Reason::InvalidClaim,
            })?;
        Ok((Arc::new(identity), verified.exp))
    }

    async fn session(
        &self,
        sid: &str,
        req: &Request<'_>,
        now: u64,
        read: Read,
    ) -> Result<Authenticated, Reason> {
        if !session::valid_id(sid) {
            return Err(Reason::MalformedSessionId);
        }
        let record = match self.lookups.session(sid, read.stale).await {
            Ok(record) => record.ok_or(Reason::UnknownSession)?,
            Err(e) => return anonymous(store_failure(&e, read.policy, Site::Session)),
        };
        self.with_session_view(&record, |view| {
            let view = view.as_ref().map_err(|reason| *reason)?;
            session::check_state(view.revoked, view.expires_at, now)?;
            if let Some(stored) = &view.fingerprint {
                self.check_fingerprint(stored, req)?;
            }
            let identity = view.identity.clone().map_err(|()| Reason::InvalidSession)?;
            Ok(Authenticated::Identity(identity))
        })
    }

    /// Runs `f` on the session record read once per cached copy (see
    /// [`SessionView`]).
    fn with_session_view<R>(&self, record: &Record, f: impl FnOnce(&SessionView) -> R) -> R {
        let derive = || self.session_view(&record.hash.fields);
        match record.derived.get_or_init(derive) {
            Some(view) => f(view),
            None => f(&derive()),
        }
    }

    fn session_view(&self, fields: &Fields) -> SessionView {
        let session = Session::parse(fields)?;
        Ok(ParsedSession {
            revoked: session.revoked,
            expires_at: session.expires_at,
            fingerprint: session.fingerprint.map(str::to_string),
            identity: session
                .identity(&self.rules, &self.session_fields)
                .map(Arc::new)
                .map_err(|_| ()),
        })
    }

    fn check_fingerprint(&self, stored: &str, req: &Request<'_>) -> Result<(), Reason> {
        let fp = &self.fingerprint;
        if fp.mode == FingerprintMode::Off {
            return Ok(());
        }
        // The stored value says which algorithm wrote it (`fp2:` or bare
        // hex), so sessions written before v2 keep verifying.
        let version = fingerprint::Version::of(stored);
        let computed = request_fingerprint_as(fp, req, version);
        if fingerprint::matches(stored, &computed) {
            return Ok(());
        }
        match fp.mode {
            FingerprintMode::Enforce => Err(Reason::FingerprintMismatch),
            _ => {
                tracing::warn!(
                    request_id = req.request_id().unwrap_or(""),
                    "session fingerprint mismatch (fingerprint.mode: log)"
                );
                Ok(())
            }
        }
    }

    async fn api_key(&self, key: &str, now: u64, read: Read) -> Result<Authenticated, Reason> {
        if !apikey::well_formed(key, &self.api_key_prefix, self.api_key_foreign) {
            return Err(Reason::MalformedApiKey);
        }
        let record = match self
            .lookups
            .api_key(&apikey::hash_hex(key), read.stale)
            .await
        {
            Ok(record) => record.ok_or(Reason::UnknownApiKey)?,
            Err(e) => return anonymous(store_failure(&e, read.policy, Site::ApiKey)),
        };
        let derive = || self.api_key_view(&record.hash.fields);
        let fresh;
        let view = match record.derived.get_or_init(derive) {
            Some(view) => view,
            None => {
                fresh = derive();
                &fresh
            }
        };
        let (parsed, identity) = view.as_ref().map_err(|reason| *reason)?;
        parsed.check(now)?;
        let identity = identity.clone().map_err(|()| Reason::InvalidApiKey)?;
        Ok(Authenticated::Identity(identity))
    }

    fn api_key_view(&self, fields: &Fields) -> ApiKeyView {
        let record = ApiKey::parse(fields)?;
        let identity = record
            .identity(&self.rules, &self.api_key_id_header)
            .map(Arc::new)
            .map_err(|_| ());
        Ok((record, identity))
    }
}

/// A session record as read and checked once per cached copy
/// ([`Record::derived`]): the parse verdict, and what a check needs that
/// does not depend on the request or the clock. Revocation, expiry (at
/// `now`) and the fingerprint (of this request) are still checked on every
/// use, in the same order as before the view existed: parse, revoked,
/// expired, fingerprint, identity.
type SessionView = Result<ParsedSession, Reason>;

#[derive(Debug)]
struct ParsedSession {
    revoked: bool,
    expires_at: Option<u64>,
    fingerprint: Option<String>,
    /// `Err` when a field cannot go into a header (denied as invalid).
    identity: Result<Arc<Identity>, ()>,
}

/// An API key record as read once per cached copy: the parsed record
/// (checked against `now` on every use) and its identity.
type ApiKeyView = Result<(ApiKey, Result<Arc<Identity>, ()>), Reason>;

/// How a check reads the store: whether a stale copy may answer, and the
/// policy that decides a failed read.
#[derive(Debug, Clone, Copy)]
struct Read {
    stale: Stale,
    policy: OnStoreError,
}

/// The policy's verdict on a failed read at `site`, logged once.
fn store_failure(e: &StoreError, policy: OnStoreError, site: Site) -> Verdict {
    let verdict = on_store_error::verdict(e.fault(), policy, site);
    match verdict {
        Verdict::Deny(reason) if reason.status() == 401 => {
            tracing::warn!(error = %e, site = ?site, "store holds a bad record: denied");
        }
        Verdict::Deny(_) => {}
        Verdict::Anonymous | Verdict::KeepIdentity => {
            tracing::warn!(error = %e, site = ?site, "store unavailable: passed (on_store_error: open)");
        }
    }
    verdict
}

/// A verdict where a credential's own record was read (a session, an API
/// key): an outage under `open` passes anonymously.
fn anonymous(verdict: Verdict) -> Result<Authenticated, Reason> {
    match verdict {
        Verdict::Deny(reason) => Err(reason),
        Verdict::Anonymous | Verdict::KeepIdentity => Ok(Authenticated::Anonymous),
    }
}

/// A verdict on a JWT's revocation check: an outage under `open` keeps
/// the verified identity.
fn keep_identity(verdict: Verdict) -> Result<(), Reason> {
    match verdict {
        Verdict::Deny(reason) => Err(reason),
        Verdict::Anonymous | Verdict::KeepIdentity => Ok(()),
    }
}

/// The fingerprint of a request under `config`, as a login service
/// stores it today: the current version ([`fingerprint::Version::V2`]).
pub fn request_fingerprint(config: &FingerprintConfig, req: &Request<'_>) -> String {
    request_fingerprint_as(config, req, fingerprint::Version::V2)
}

/// The fingerprint of a request under `config` with `version`: the client
/// IP (masked) and the named headers' values, in the configured order.
pub fn request_fingerprint_as(
    config: &FingerprintConfig,
    req: &Request<'_>,
    version: fingerprint::Version,
) -> String {
    let ip = fingerprint::client_ip(
        req.header("x-forwarded-for"),
        req.source_ip,
        config.trusted_hops,
    )
    .map(|ip| fingerprint::masked(ip, config.ipv4_prefix, config.ipv6_prefix))
    .unwrap_or_default();
    let values: Vec<(&str, &str)> = config
        .attributes
        .iter()
        .map(|a| {
            let v = if a == fingerprint::CLIENT_IP {
                ip.as_str()
            } else {
                req.header(a).unwrap_or("")
            };
            (a.as_str(), v)
        })
        .collect();
    version.compute(values)
}
