//! The calling workload's identity: its principal (the SPIFFE ID or other
//! name of its certificate), read once per check from where the deployment
//! says it can be trusted.
//!
//! Envoy reports the peer of a downstream mTLS connection as
//! `source.principal` (first URI SAN, else DNS SAN, else subject). Behind
//! another proxy, that peer is the proxy, and the caller's certificate
//! arrives in a header the proxy set: Envoy's `x-forwarded-client-cert`
//! (`xfcc.rs`) or RFC 9440 `Client-Cert` (`client_cert.rs`). Anyone can
//! send those headers, so they count only from a configured trusted hop;
//! from any other peer they are ignored here and removed from the request
//! (`headers.rs`). From a trusted hop the header is the only source: its
//! own principal is the hop's, never the caller's.
//!
//! A workload principal is not a user credential: it rides beside one
//! (the one-credential rule in `credentials.rs` is about user
//! credentials) and is checked by the policy's `principals` or `workload`.
//! Pure: the request in, a principal or a typed error out.

mod client_cert;
mod xfcc;

use crate::config::{CertHeader, Config, ForwardedCertConfig};
use crate::policy::Principals;
use crate::request::Request;
use std::borrow::Cow;
use std::sync::Arc;

pub use client_cert::principal_of_client_cert;
pub use xfcc::principal_of_xfcc;

/// The most bytes of a principal ward passes on (it goes into a header).
pub const MAX_PRINCIPAL_BYTES: usize = 2048;

/// The two forwarded-certificate headers (and RFC 9440's chain), which
/// only a trusted hop may send on to the backend.
pub const CERT_HEADERS: [&str; 3] = [
    "x-forwarded-client-cert",
    "client-cert",
    "client-cert-chain",
];

/// Why the principal could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WorkloadError {
    #[error("the forwarded certificate header is malformed: {0}")]
    Malformed(&'static str),
    #[error("the principal cannot go into a header (control character, non-ASCII or too long)")]
    Unsafe,
}

/// Where a principal came from (for `explain`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The connection's peer (`source.principal`).
    Peer,
    /// A trusted hop's `x-forwarded-client-cert`.
    Xfcc,
    /// A trusted hop's `Client-Cert`.
    ClientCert,
}

impl Origin {
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Peer => "source.principal",
            Origin::Xfcc => "x-forwarded-client-cert",
            Origin::ClientCert => "client-cert",
        }
    }
}

/// A principal read from a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal<'r> {
    pub name: Cow<'r, str>,
    pub origin: Origin,
}

/// The config's rules for reading principals.
#[derive(Debug)]
pub struct Workload {
    /// The header an allow carries the principal in.
    pub header: Arc<str>,
    forwarded: Option<Forwarded>,
}

#[derive(Debug)]
struct Forwarded {
    header: CertHeader,
    trusted: Trusted,
}

#[derive(Debug)]
enum Trusted {
    AnyPeer,
    Peers(Box<Principals>),
}

impl Workload {
    /// The `workload` section's rules (`check-config` has vetted the
    /// patterns; one that does not compile trusts no peer).
    pub fn from_config(config: &Config) -> Self {
        let w = &config.workload;
        Self {
            header: w.header.as_str().into(),
            forwarded: w.forwarded_cert.as_ref().map(Forwarded::new),
        }
    }

    /// Whether the request's peer is a hop trusted to forward a client
    /// certificate.
    pub fn trusted_hop(&self, req: &Request<'_>) -> bool {
        self.forwarded.as_ref().is_some_and(|f| f.trusts(req))
    }

    /// The calling workload's principal, if the request has one: a
    /// trusted hop's forwarded certificate, else the connection's peer.
    pub fn principal<'r>(&self, req: &Request<'r>) -> Result<Option<Principal<'r>>, WorkloadError> {
        let found = match &self.forwarded {
            Some(f) if f.trusts(req) => f.read(req)?,
            _ => req.principal.filter(|p| !p.is_empty()).map(|p| Principal {
                name: Cow::Borrowed(p),
                origin: Origin::Peer,
            }),
        };
        match found {
            Some(p) if !header_safe(&p.name) => Err(WorkloadError::Unsafe),
            found => Ok(found),
        }
    }
}

impl Forwarded {
    fn new(config: &ForwardedCertConfig) -> Self {
        let trusted = if config.any_peer {
            Trusted::AnyPeer
        } else {
            Trusted::Peers(Box::new(
                Principals::new(&config.trusted_peers).unwrap_or_default(),
            ))
        };
        Self {
            header: config.header,
            trusted,
        }
    }

    fn trusts(&self, req: &Request<'_>) -> bool {
        match &self.trusted {
            Trusted::AnyPeer => true,
            Trusted::Peers(peers) => req.principal.is_some_and(|p| peers.allows(p)),
        }
    }

    /// The principal in the hop's header; none when it sent none.
    fn read<'r>(&self, req: &Request<'r>) -> Result<Option<Principal<'r>>, WorkloadError> {
        let (name, origin) = match self.header {
            CertHeader::Xfcc => ("x-forwarded-client-cert", Origin::Xfcc),
            CertHeader::ClientCert => ("client-cert", Origin::ClientCert),
        };
        let Some(value) = req.header(name) else {
            return Ok(None);
        };
        // A hop trusted by its principal is a proxy, never the caller: an
        // element naming it was added for it, not by it.
        let hop = match &self.trusted {
            Trusted::Peers(_) => req.principal,
            Trusted::AnyPeer => None,
        };
        let name = match self.header {
            CertHeader::Xfcc => principal_of_xfcc(value, hop)?,
            CertHeader::ClientCert => principal_of_client_cert(value)?.map(Cow::Owned),
        };
        Ok(name.map(|name| Principal { name, origin }))
    }
}

/// Printable ASCII (inner spaces allowed: a subject name has them), not
/// too long: what can go into a header unchanged.
fn header_safe(name: &str) -> bool {
    name.len() <= MAX_PRINCIPAL_BYTES
        && name.trim() == name
        && !name.is_empty()
        && name.bytes().all(|b| (0x20..0x7f).contains(&b))
}

#[cfg(test)]
mod tests;
