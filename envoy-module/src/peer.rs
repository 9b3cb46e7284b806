//! The downstream peer's principal, read from Envoy exactly as its
//! ext_authz filter derives `source.principal` for `ward serve`, so the
//! module decides workload identity as the gRPC mode does on the same
//! connection: the peer certificate's first URI SAN, else its first DNS
//! SAN, else its subject (RFC 2253), each byte that is not valid UTF-8
//! replaced by `!` (Envoy's `MessageUtil::sanitizeUtf8String`). An empty
//! result (TLS without a client certificate) is no principal, as an empty
//! `source.principal` is absent on the wire.
//!
//! Envoy's dynamic-module attributes give one field each
//! (`connection.uri_san_peer_certificate`, `..dns_san..`, `..subject..`;
//! the SAN ones return the first entry): the order is ward's, here.

use crate::filter::Host;
use ward::config::{Config as WardConfig, PolicyConfig};
use ward::credential_kind::CredentialKind;

/// One field of the peer certificate, as Envoy's attributes name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertField {
    /// `connection.uri_san_peer_certificate`: the first URI SAN.
    UriSan,
    /// `connection.dns_san_peer_certificate`: the first DNS SAN.
    DnsSan,
    /// `connection.subject_peer_certificate`: the subject, RFC 2253.
    Subject,
}

/// The principal Envoy's ext_authz would send as `source.principal`, or
/// `None` (no TLS, no client certificate). Stops at the first field
/// Envoy has: a certificate with a URI SAN is named by it even if that
/// SAN is empty, as in Envoy.
pub fn principal(host: &mut impl Host) -> Option<Box<str>> {
    for field in [CertField::UriSan, CertField::DnsSan, CertField::Subject] {
        if let Some(bytes) = host.peer_certificate(field) {
            return Some(sanitized(bytes)).filter(|p| !p.is_empty());
        }
    }
    None
}

/// Whether a check under `config` may use the principal: a policy that
/// accepts `mtls` or has a `workload` rule, named or a route's own, or a
/// forwarded certificate trusted by its hop's principal. Else the
/// principal changes no decision and no header (the forwarded
/// certificate headers are removed without it), and the module does not
/// ask Envoy for it.
pub fn needed(config: &WardConfig) -> bool {
    let needs = |p: &PolicyConfig| p.accept.contains(&CredentialKind::Mtls) || p.workload.is_some();
    let routes = config.routes.iter();
    config.policies.values().any(needs)
        || routes
            .filter(|r| r.policy.is_none())
            .any(|r| needs(&r.inline_policy()))
        || config
            .workload
            .forwarded_cert
            .as_ref()
            .is_some_and(|f| !f.trusted_peers.is_empty())
}

/// `bytes` as UTF-8, each byte of an invalid sequence replaced by `!`.
fn sanitized(bytes: &[u8]) -> Box<str> {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        out.push_str(chunk.valid());
        out.extend(std::iter::repeat_n('!', chunk.invalid().len()));
    }
    out.into_boxed_str()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_utf8_is_replaced_byte_by_byte_as_envoy_does() {
        for (raw, want) in [
            (&b"spiffe://td/a"[..], "spiffe://td/a"),
            (b"a\xffb", "a!b"),
            // A truncated 3-byte sequence: two bad bytes, two `!`.
            (b"a\xe2\x82b", "a!!b"),
            (b"\xc3\xa9t\xc3", "\u{e9}t!"),
            (b"", ""),
        ] {
            assert_eq!(&*sanitized(raw), want, "{raw:?}");
        }
    }
}
