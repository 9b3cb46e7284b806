//! Authentication: request in, decision out. The one step of a check that
//! may wait (for a JWKS refetch on an unknown `kid`); everything it calls
//! is pure but for the cache and the key store.
//!
//! Order: extract the credential (a malformed request never reaches a
//! verifier), look it up by hash in the cache (a hit skips the signature
//! entirely), else verify, render the identity and cache it.

use crate::cache::{CredentialHash, TokenCache, hash_credential};
use crate::config::Config;
use crate::credentials::{Credential, Extractor};
use crate::decision::{Decision, Reason};
use crate::identity::{AuthMethod, ClaimRenderer, Identity, IdentityError};
use crate::jwks::KeyStore;
use crate::jwt::{JwtError, Rules, Verifier};
use crate::metrics::Metrics;
use crate::request::Request;
use std::sync::Arc;
use std::time::Duration;

/// How long a check with an unknown `kid` waits for a triggered JWKS
/// refetch; well under Envoy's default 200 ms ext_authz timeout.
const UNKNOWN_KID_WAIT: Duration = Duration::from_millis(100);

/// A decision plus what the shell needs to record it.
#[derive(Debug)]
pub struct Outcome {
    pub decision: Decision,
    /// The method of the credential presented, if any was.
    pub method: Option<AuthMethod>,
    /// The credential's hash, for logs (never the credential).
    pub credential: Option<CredentialHash>,
}

impl Outcome {
    /// A decision taken before any credential was looked at.
    pub fn anonymous(decision: Decision) -> Self {
        Outcome {
            decision,
            method: None,
            credential: None,
        }
    }
}

/// Built-in policies an Envoy route can select with the ext_authz
/// `context_extensions` key `ward_policy`. `required` (a valid credential)
/// is the default; `public` lets the request pass without one, scrubbing
/// forged identity headers all the same. Any other name is denied: a
/// route that asks for a policy ward does not know fails closed.
pub const POLICY_REQUIRED: &str = "required";
pub const POLICY_PUBLIC: &str = "public";

pub struct Authenticator {
    extractor: Extractor,
    verifier: Verifier,
    renderer: ClaimRenderer,
    keys: Arc<KeyStore>,
    cache: TokenCache,
    metrics: Arc<Metrics>,
}

impl Authenticator {
    pub fn new(config: &Config, keys: Arc<KeyStore>, metrics: Arc<Metrics>) -> Self {
        let jwt = &config.jwt;
        Self {
            extractor: Extractor {
                jwt_header: jwt.header.clone(),
            },
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
            keys,
            cache: TokenCache::new(&config.cache),
            metrics,
        }
    }

    /// Decides one request at `now` (unix seconds).
    pub async fn authenticate(&self, req: &Request<'_>, now: u64) -> Outcome {
        match req.policy {
            None | Some(POLICY_REQUIRED) => {}
            Some(POLICY_PUBLIC) => return Outcome::anonymous(Decision::AllowAnonymous),
            Some(_) => return Outcome::anonymous(Decision::Deny(Reason::UnknownPolicy)),
        }
        let token = match self.extractor.extract(req) {
            Ok(Credential::Bearer(token)) => token,
            Err(reason) => return Outcome::anonymous(Decision::Deny(reason)),
        };
        let hash = hash_credential(token);
        let decision = match self.cache.get(&hash, now) {
            Some(identity) => {
                self.metrics.token_cache_hits.inc();
                Decision::Allow(identity)
            }
            None => {
                if self.cache.is_enabled() {
                    self.metrics.token_cache_misses.inc();
                }
                match self.verify_jwt(token, now).await {
                    Ok((identity, exp)) => {
                        self.cache.insert(hash, identity.clone(), exp, now);
                        Decision::Allow(identity)
                    }
                    Err(reason) => Decision::Deny(reason),
                }
            }
        };
        Outcome {
            decision,
            method: Some(AuthMethod::Jwt),
            credential: Some(hash),
        }
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
            .render(&verified.claims, AuthMethod::Jwt)
            .map_err(|e| match e {
                IdentityError::MissingUserId(_) => Reason::MissingClaim,
                IdentityError::BadValue { .. } => Reason::InvalidClaim,
            })?;
        Ok((Arc::new(identity), verified.exp))
    }
}
