//! The credential a request presents, as every step after extraction sees
//! it: read once by `check.rs`, its hash and the client's address each
//! computed at most once, whichever step needs them first.
//!
//! Why one value: before it existed the credential went check → authn →
//! check → authn, was hashed twice (once for the token cache, once for the
//! log line) and the client IP was derived twice (limiter, fingerprint),
//! each copy free to drift from the other. Now the hash that keys the
//! token cache is the one that names the credential in a deny's log line,
//! keys it in the limiter and (hex) keys an API key's record; and the
//! address the limiter counts is the one the fingerprint binds.
//!
//! Both derived values are lazy: a cache hit of a session never hashes
//! its id, and the client IP is parsed only when the limiter is engaged or
//! a session carries a fingerprint.

use crate::credential_kind::CredentialKind;
use crate::credentials::{Credential, CredentialHash, hash_credential};
use crate::fingerprint;
use crate::request::Request;
use std::net::IpAddr;
use std::sync::OnceLock;

/// One presented credential and the request it came with.
#[derive(Debug)]
pub(crate) struct Presented<'r, 'a> {
    credential: Credential<'a>,
    req: &'r Request<'a>,
    trusted_hops: usize,
    hash: OnceLock<CredentialHash>,
    client_ip: OnceLock<Option<IpAddr>>,
}

impl<'r, 'a> Presented<'r, 'a> {
    /// `trusted_hops`: how many proxies in front of Envoy append to
    /// `x-forwarded-for` (see [`fingerprint::client_ip`]).
    pub(crate) fn new(
        credential: Credential<'a>,
        req: &'r Request<'a>,
        trusted_hops: usize,
    ) -> Self {
        Presented {
            credential,
            req,
            trusted_hops,
            hash: OnceLock::new(),
            client_ip: OnceLock::new(),
        }
    }

    pub(crate) fn credential(&self) -> Credential<'a> {
        self.credential
    }

    pub(crate) fn kind(&self) -> CredentialKind {
        match self.credential {
            Credential::Bearer(_) => CredentialKind::Jwt,
            Credential::Session(_) => CredentialKind::Session,
            Credential::ApiKey(_) => CredentialKind::ApiKey,
            Credential::Opaque(_) => CredentialKind::Opaque,
        }
    }

    /// The request the credential came with.
    pub(crate) fn request(&self) -> &'r Request<'a> {
        self.req
    }

    /// SHA-256 of the credential, computed on first use.
    pub(crate) fn hash(&self) -> &CredentialHash {
        self.hash.get_or_init(|| {
            let (Credential::Bearer(secret)
            | Credential::Session(secret)
            | Credential::ApiKey(secret)
            | Credential::Opaque(secret)) = self.credential;
            hash_credential(secret)
        })
    }

    /// The client's address: `x-forwarded-for` counted from the right by
    /// the trusted hops, else Envoy's peer. Computed on first use.
    pub(crate) fn client_ip(&self) -> Option<IpAddr> {
        *self.client_ip.get_or_init(|| {
            fingerprint::client_ip(
                self.req.header("x-forwarded-for"),
                self.req.source_ip,
                self.trusted_hops,
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::Headers;

    #[test]
    fn derived_values_match_their_one_definition() {
        let headers = [("x-forwarded-for", "203.0.113.9, 10.0.0.1")];
        let req = Request {
            method: "GET",
            host: "h",
            path: "/",
            headers: Headers::new(&headers),
            policy: None,
            source_ip: Some(IpAddr::from([127, 0, 0, 1])),
            principal: None,
        };
        let p = Presented::new(Credential::ApiKey("k"), &req, 2);
        assert_eq!(p.kind(), CredentialKind::ApiKey);
        assert_eq!(p.hash(), &hash_credential("k"));
        assert_eq!(p.client_ip(), Some(IpAddr::from([203, 0, 113, 9])));
        let p = Presented::new(Credential::Session("s"), &req, 0);
        assert_eq!(p.client_ip(), req.source_ip);
        assert_eq!(p.hash(), &hash_credential("s"));
    }
}
