//! Who may call the management API, and the audit line of every call.
//!
//! With `management.auth.tls`, a caller may present a client certificate:
//! the TLS handshake (rustls) already checked that it chains to
//! `client_ca` and is meant for client authentication; here its DNS names
//! are checked against `allowed_identities` by rustls' own verifier
//! (webpki), and a certificate naming none of them is no credential.
//! Otherwise (or as well) a caller sends `authorization: Bearer <token>`; the token is compared
//! with the one in `management.auth.token_file`, read on every call (a
//! rotated Secret applies at once, and a file that became unreadable
//! refuses everyone: fail closed). Both sides are hashed with SHA-256 and
//! the digests compared in constant time, so neither the token's bytes
//! nor its length leak through timing. The audit line names the caller,
//! the call, and its subject (a user, a key id, a session by its short
//! hash), never a token, a session id or a key.

use crate::config::ManagementAuth;
use sha2::{Digest, Sha256};
use std::net::SocketAddr;
use std::path::PathBuf;
use subtle::ConstantTimeEq;
use tonic::{Request, Status};

/// The `tracing` target of audit lines, for a log pipeline to route.
pub(super) const AUDIT_TARGET: &str = "ward::audit";

/// How callers are checked.
#[derive(Debug, Clone)]
pub(super) struct Gate {
    token_file: Option<PathBuf>,
    /// `tls.allowed_identities`, when mTLS is on.
    identities: Option<Vec<String>>,
}

/// An authenticated caller, for the audit line.
#[derive(Debug, Clone)]
pub(super) struct Caller {
    /// How it authenticated: `bearer` or `mtls`.
    pub how: &'static str,
    /// The allowed identity its certificate is valid for (mTLS).
    pub identity: Option<String>,
    pub peer: Option<SocketAddr>,
}

/// What a call is about, for the audit line.
#[derive(Debug, Default)]
pub(super) struct Subject<'a> {
    pub user: Option<&'a str>,
    pub key_id: Option<&'a str>,
    /// A session id: logged as its short hash only.
    pub session: Option<&'a str>,
    pub jti: Option<&'a str>,
}

impl Gate {
    pub(super) fn new(auth: &ManagementAuth) -> Self {
        Self {
            token_file: auth.token_file.clone(),
            identities: auth.tls.as_ref().map(|t| t.allowed_identities.clone()),
        }
    }

    /// The caller of `request`, or `UNAUTHENTICATED` (logged, with the
    /// call's name and the peer, never what was sent).
    pub(super) fn caller<T>(&self, request: &Request<T>, call: &str) -> Result<Caller, Status> {
        let peer = request.remote_addr();
        let mut refusal = None;
        if let Some(allowed) = &self.identities
            && let Some(certs) = request.peer_certs()
            && let Some(leaf) = certs.first()
        {
            match allowed_identity(leaf, allowed) {
                Some(identity) => {
                    return Ok(Caller {
                        how: "mtls",
                        identity: Some(identity),
                        peer,
                    });
                }
                None => refusal = Some("the client certificate names no allowed identity"),
            }
        }
        let presented = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        let checked = match (&self.token_file, refusal) {
            // mTLS only, and the certificate did not pass.
            (None, Some(why)) => Err(why),
            (None, None) if self.identities.is_some() => Err("no client certificate"),
            _ => self.check_bearer(presented),
        };
        match checked {
            Ok(()) => Ok(Caller {
                how: "bearer",
                identity: None,
                peer,
            }),
            Err(why) => {
                tracing::warn!(
                    target: AUDIT_TARGET,
                    call,
                    peer = peer.map(|p| p.to_string()),
                    why,
                    "management call refused"
                );
                Err(Status::unauthenticated(
                    "a valid bearer token or an allowed client certificate is required",
                ))
            }
        }
    }

    fn check_bearer(&self, presented: Option<&str>) -> Result<(), &'static str> {
        let path = self
            .token_file
            .as_ref()
            .ok_or("no bearer token is configured")?;
        let presented = presented.ok_or("no bearer token")?;
        let expected = crate::config::read_token(path).map_err(|e| {
            tracing::error!(error = %e, "management.auth.token_file: every call is refused");
            "the token file cannot be read"
        })?;
        let same = Sha256::digest(presented.as_bytes()).ct_eq(&Sha256::digest(&expected));
        if bool::from(same) {
            Ok(())
        } else {
            Err("wrong bearer token")
        }
    }
}

/// The first of `allowed` that the certificate `leaf` is valid for (its
/// `subjectAltName` DNS names, as webpki matches a server's).
fn allowed_identity(
    leaf: &rustls_pki_types::CertificateDer<'_>,
    allowed: &[String],
) -> Option<String> {
    let cert = webpki::EndEntityCert::try_from(leaf).ok()?;
    allowed
        .iter()
        .find(|id| {
            rustls_pki_types::ServerName::try_from(id.as_str())
                .is_ok_and(|name| cert.verify_is_valid_for_subject_name(&name).is_ok())
        })
        .cloned()
}

/// The audit line of an authenticated call: who, what, about whom, and
/// how it ended (`ok` or the gRPC status code).
pub(super) fn audit<T>(
    caller: &Caller,
    call: &str,
    subject: &Subject<'_>,
    result: &Result<T, Status>,
) {
    let session = subject
        .session
        .map(|sid| crate::credentials::short_hash(&crate::credentials::hash_credential(sid)));
    let outcome = match result {
        Ok(_) => "ok".to_string(),
        Err(status) => format!("{:?}", status.code()),
    };
    tracing::info!(
        target: AUDIT_TARGET,
        caller = caller.how,
        identity = caller.identity.as_deref(),
        peer = caller.peer.map(|p| p.to_string()),
        call,
        user = subject.user,
        key_id = subject.key_id,
        session,
        jti = subject.jti,
        result = outcome,
        "management call"
    );
}
