//! Authentication: request in, decision out. The one step of a check that
//! may wait: on the store (sessions, API keys, revocations, through the
//! in-process cache), on a JWKS refetch for an unknown `kid`, and on the
//! signature of a token not seen before, which the ports verify off the
//! thread that answers cache hits (what is refused without a signature,
//! a malformed token or an unknown `kid`, is refused here, inline).
//!
//! One path per credential kind; a malformed id never reaches the store.
//! Every failed store read goes through [`on_store_error::verdict`], the
//! one place the policy's `on_store_error` is applied: an outage is a 503
//! unless the policy says `open`, a bad record is a 401 under every
//! policy. The policy, the limiter and roles/scopes are `check.rs`'s
//! business.

use crate::apikey;
use crate::config::{Config, FingerprintConfig, FingerprintMode, OnStoreError};
use crate::credential_kind::CredentialKind;
use crate::credentials::{Credential, CredentialHash};
use crate::fingerprint;
use crate::identity::{ClaimRenderer, HeaderRules, Identity, IdentityError};
use crate::introspection::{AnswerRules, OpaqueFormats};
use crate::jwt::{JwtError, KeySet, Rules, Verifier};
use crate::on_store_error::{self, Site, Verdict};
use crate::ports::{Event, Ports, Stale, Verification, VerifiedToken};
use crate::presented::Presented;
use crate::reason::Reason;
use crate::record::SessionRecord;
use crate::session;
use crate::store::reply::StoreError;
use std::sync::Arc;
use std::time::Duration;

mod opaque;

/// What authentication established.
#[derive(Debug, Clone)]
pub(crate) enum Authenticated {
    Identity(Arc<Identity>),
    /// The store did not answer and the policy says `on_store_error:
    /// open`: the request passes without an identity.
    Anonymous,
}

/// How long a check with an unknown `kid` waits for a triggered JWKS
/// refetch; well under Envoy's default 200 ms ext_authz timeout.
const UNKNOWN_KID_WAIT: Duration = Duration::from_millis(100);

/// The rules of authentication, from the config; what it reads and
/// counts goes through the [`Ports`] each call is given.
pub(crate) struct Authenticator {
    /// Shared with the verifications in flight (they run on other threads).
    jwt: Arc<JwtRules>,
    /// The header rules of the views kept in cached records
    /// ([`crate::record::Record::view`]): one authenticator per store cache.
    rules: HeaderRules,
    session_fields: Vec<(String, String)>,
    fingerprint: FingerprintConfig,
    api_key_prefix: String,
    api_key_foreign: bool,
    api_key_id_header: String,
    check_jti: bool,
    require_session: bool,
    /// Which bearer tokens are opaque, and for which provider.
    formats: OpaqueFormats,
    /// Each provider's answer rules, in `introspection.providers` order.
    answers: Vec<AnswerRules>,
}

impl Authenticator {
    pub(crate) fn new(config: &Config) -> Self {
        let jwt = &config.jwt;
        Self {
            jwt: Arc::new(JwtRules {
                verifier: Verifier {
                    max_token_bytes: jwt.max_token_bytes,
                    rules: Rules {
                        leeway: jwt.leeway,
                        issuers: jwt.issuers.clone(),
                        audiences: jwt.audiences.clone(),
                        max_lifetime: jwt.max_lifetime,
                    },
                },
                renderer: ClaimRenderer::new(&jwt.claims, HeaderRules::new(&config.headers)),
            }),
            rules: HeaderRules::new(&config.headers),
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
            formats: OpaqueFormats::from_config(&config.introspection),
            answers: config
                .introspection
                .providers
                .iter()
                .map(|p| AnswerRules {
                    issuer: p.issuer.clone(),
                    audiences: p.audiences.clone(),
                    leeway: jwt.leeway.as_secs(),
                })
                .collect(),
        }
    }

    /// The identity behind a presented credential at `now` (unix
    /// seconds), reading the store as `mode` says.
    pub(crate) async fn authenticate<P: Ports>(
        &self,
        ports: &P,
        presented: &Presented<'_, '_>,
        now: u64,
        mode: ReadMode,
    ) -> Result<Authenticated, Reason> {
        let read = Read::from(mode);
        let io = Io { ports, read };
        match presented.credential() {
            Credential::Bearer(token) => self.jwt(io, token, presented, now).await,
            Credential::Session(sid) => self.session(io, sid, presented, now).await,
            Credential::ApiKey(key) => self.api_key(io, key, presented, now).await,
            Credential::Opaque(token) => self.opaque(io, token, presented, now).await,
        }
    }

    async fn jwt<P: Ports>(
        &self,
        io: Io<'_, P>,
        token: &str,
        presented: &Presented<'_, '_>,
        now: u64,
    ) -> Result<Authenticated, Reason> {
        let identity = match io.ports.token(token, || presented.hash(), now) {
            Some(identity) => {
                io.ports.count(Event::TokenCacheHit);
                identity
            }
            None if io.read.stale == Stale::CacheOnly => return Err(Reason::TooManyFailures),
            None => {
                if io.ports.keeps_tokens() {
                    io.ports.count(Event::TokenCacheMiss);
                }
                self.verify_jwt(io.ports, token, presented.hash(), now)
                    .await?
            }
        };
        self.check_revocation(io, &identity, now).await?;
        Ok(Authenticated::Identity(identity))
    }

    /// Revocation is checked on every use, cache hit or not: a logout must
    /// take effect within an invalidation, not at the token's `exp`. A
    /// read that fails is decided by the policy ([`on_store_error`]): under
    /// `open` an outage keeps the verified identity, a bad record never.
    async fn check_revocation<P: Ports>(
        &self,
        io: Io<'_, P>,
        identity: &Identity,
        now: u64,
    ) -> Result<(), Reason> {
        let read = io.read;
        if let (true, Some(jti)) = (self.check_jti, identity.jti()) {
            match io.ports.jti_revoked(jti, read.stale).await {
                Ok(true) => return Err(Reason::TokenRevoked),
                Ok(false) => {}
                Err(e) => keep_identity(store_failure(&e, read.policy, Site::RevokedJti))?,
            }
        }
        if let (true, Some(sid)) = (self.require_session, identity.session_id()) {
            let record = match io.ports.session(sid, read.stale).await {
                Ok(record) => record.ok_or(Reason::TokenRevoked)?,
                Err(e) => return keep_identity(store_failure(&e, read.policy, Site::TokenSession)),
            };
            match self.session_view(&record) {
                Ok(v) => session::check_state(v.revoked, v.expires_at, now)
                    .map_err(|_| Reason::TokenRevoked)?,
                // Unparsable or incomplete: a bad record, as WRONGTYPE is.
                Err(_) => keep_identity(on_store_error::verdict(
                    on_store_error::Fault::BadRecord,
                    read.policy,
                    Site::TokenSession,
                ))?,
            }
        }
        Ok(())
    }

    /// A token not in the cache: what needs no signature is checked here
    /// (a new `kid` waits for a bounded refetch), the signature and claims
    /// by [`Ports::verify`].
    async fn verify_jwt<P: Ports>(
        &self,
        ports: &P,
        token: &str,
        hash: &CredentialHash,
        now: u64,
    ) -> Result<Arc<Identity>, Reason> {
        let mut keys = ports.keys();
        let mut checked = self.jwt.verifier.precheck(token, &keys);
        // A new kid is most often a key rotation: give the fetcher one
        // bounded chance before denying.
        if matches!(checked, Err(JwtError::UnknownKey))
            && ports.await_new_keys(UNKNOWN_KID_WAIT).await
        {
            keys = ports.keys();
            checked = self.jwt.verifier.precheck(token, &keys);
        }
        checked.map_err(|e| refusal(&e, &keys))?;
        let rules = Arc::clone(&self.jwt);
        let token = token.to_owned();
        ports
            .verify(hash, now, move || rules.verify(&token, &keys, now))
            .await
    }

    async fn session<P: Ports>(
        &self,
        io: Io<'_, P>,
        sid: &str,
        presented: &Presented<'_, '_>,
        now: u64,
    ) -> Result<Authenticated, Reason> {
        let read = io.read;
        if !session::valid_id(sid) {
            return Err(Reason::MalformedSessionId);
        }
        let record = match io.ports.session(sid, read.stale).await {
            Ok(record) => record.ok_or(Reason::UnknownSession)?,
            Err(e) => return anonymous(store_failure(&e, read.policy, Site::Session)),
        };
        let view = self
            .session_view(&record)
            .as_ref()
            .map_err(|reason| *reason)?;
        session::check_state(view.revoked, view.expires_at, now)?;
        if let Some(stored) = &view.fingerprint {
            self.check_fingerprint(stored, presented)?;
        }
        let identity = view.identity.clone().map_err(|()| Reason::InvalidSession)?;
        Ok(Authenticated::Identity(identity))
    }

    /// The session record as read once per cached copy.
    fn session_view<'r>(&self, record: &'r SessionRecord) -> &'r session::view::View {
        record.view(|hash| session::view::of(&hash.fields, &self.rules, &self.session_fields))
    }

    fn check_fingerprint(&self, stored: &str, presented: &Presented<'_, '_>) -> Result<(), Reason> {
        let fp = &self.fingerprint;
        if fp.mode == FingerprintMode::Off {
            return Ok(());
        }
        // The stored value says which algorithm wrote it (`fp2:` or bare
        // hex), so sessions written before v2 keep verifying.
        let version = fingerprint::Version::of(stored);
        let req = presented.request();
        let client = presented.client_ip();
        let computed = fingerprint::of_client(fp, version, client, |name| req.header(name));
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

    async fn api_key<P: Ports>(
        &self,
        io: Io<'_, P>,
        key: &str,
        presented: &Presented<'_, '_>,
        now: u64,
    ) -> Result<Authenticated, Reason> {
        let read = io.read;
        if !apikey::well_formed(key, &self.api_key_prefix, self.api_key_foreign) {
            return Err(Reason::MalformedApiKey);
        }
        let key_hash = apikey::hex_of(presented.hash());
        let record = match io.ports.api_key(&key_hash, read.stale).await {
            Ok(record) => record.ok_or(Reason::UnknownApiKey)?,
            Err(e) => return anonymous(store_failure(&e, read.policy, Site::ApiKey)),
        };
        let view = record
            .view(|hash| apikey::view::of(&hash.fields, &self.rules, &self.api_key_id_header))
            .as_ref()
            .map_err(|reason| *reason)?;
        view.record.check(now)?;
        let identity = view.identity.clone().map_err(|()| Reason::InvalidApiKey)?;
        Ok(Authenticated::Identity(identity))
    }
}

/// What verifies a new token: the JWS rules and the claim mapping. Shared
/// (`Arc`) with the verification of each new token, wherever it runs.
struct JwtRules {
    verifier: Verifier,
    renderer: ClaimRenderer,
}

impl JwtRules {
    /// The signature and claims of `token`, and its identity: the costly
    /// part of a check, run by [`Ports::verify`].
    fn verify(&self, token: &str, keys: &KeySet, now: u64) -> Verification {
        let verified = self
            .verifier
            .verify(token, keys, now)
            .map_err(|e| refusal(&e, keys))?;
        let identity = self
            .renderer
            .render(&verified.claims, CredentialKind::Jwt)
            .map_err(|e| match e {
                IdentityError::MissingUserId(_) => Reason::MissingClaim,
                IdentityError::BadValue { .. } => Reason::InvalidClaim,
            })?;
        Ok(VerifiedToken {
            identity: Arc::new(identity.with_expiry(Some(verified.exp))),
            exp: verified.exp,
            keys: keys.fingerprint(),
        })
    }
}

/// Why a token was refused: an unknown `kid` when there are no keys at
/// all means the keys have not loaded yet (503), not a bad token.
fn refusal(e: &JwtError, keys: &KeySet) -> Reason {
    if *e == JwtError::UnknownKey && keys.is_empty() {
        Reason::KeysUnavailable
    } else {
        Reason::from(e)
    }
}

/// How a check may read the store, as `check.rs` decides it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReadMode {
    /// Read through the cache; a failed read is decided by the route's
    /// `on_store_error` (which also says whether a stale copy may answer).
    Store(OnStoreError),
    /// Only what the caches answer counts: no signature is verified and
    /// the store is never asked (a client the limiter blocked).
    CacheOnly,
}

/// What one authentication reads through, and how.
struct Io<'p, P> {
    ports: &'p P,
    read: Read,
}

// Not derived: `P` itself need not be `Copy` for a reference to it to be.
impl<P> Clone for Io<'_, P> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<P> Copy for Io<'_, P> {}

/// How a check reads the store: whether a stale copy may answer, and the
/// policy that decides a failed read.
#[derive(Debug, Clone, Copy)]
struct Read {
    stale: Stale,
    policy: OnStoreError,
}

impl From<ReadMode> for Read {
    fn from(mode: ReadMode) -> Self {
        match mode {
            ReadMode::CacheOnly => Read {
                stale: Stale::CacheOnly,
                // Nothing is read, so nothing fails for a policy to decide.
                policy: OnStoreError::Closed,
            },
            ReadMode::Store(policy) => Read {
                stale: match policy {
                    OnStoreError::Closed => Stale::Refused,
                    OnStoreError::Stale | OnStoreError::Open => Stale::Allowed,
                },
                policy,
            },
        }
    }
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
