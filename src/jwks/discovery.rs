//! OpenID Connect Discovery 1.0: an identity provider configured by its
//! issuer URL. Its metadata lives at `{issuer}/.well-known/openid-configuration`
//! (the issuer's path kept: a Keycloak realm is `https://idp/realms/x`, and
//! its metadata `https://idp/realms/x/.well-known/...`), and must name the
//! issuer exactly as configured (§4.3: otherwise a document served under
//! one issuer could point ward at another's keys). `jwks_uri` is read for
//! the keys, then fetched like any `url` source; `introspection_endpoint`
//! for opaque tokens (`introspections.rs`), where it must be TLS (or on
//! loopback), since tokens are sent to it.

use serde::Deserialize;

/// Why a metadata document was refused.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    #[error("metadata is not JSON with `issuer` and `jwks_uri`: {0}")]
    Parse(#[from] serde_json::Error),
    #[error("metadata names issuer {found:?}, not the configured {expected:?}")]
    IssuerMismatch { expected: String, found: String },
    #[error("jwks_uri {0:?} is not an http(s) URL")]
    JwksUri(String),
    #[error("metadata has no introspection_endpoint")]
    NoIntrospection,
    #[error("introspection_endpoint {0:?} is neither https:// nor on a loopback host")]
    IntrospectionEndpoint(String),
}

#[derive(Deserialize)]
struct Metadata {
    issuer: String,
    jwks_uri: String,
}

#[derive(Deserialize)]
struct IntrospectionMetadata {
    issuer: String,
    introspection_endpoint: Option<String>,
}

/// Where `issuer`'s metadata is: its path kept, a trailing `/` not doubled.
pub(crate) fn url(issuer: &str) -> String {
    format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    )
}

/// The JWKS address the metadata `document` names, once its `issuer` is
/// checked against the configured one (byte for byte).
pub(super) fn jwks_uri(document: &[u8], issuer: &str) -> Result<String, DiscoveryError> {
    let metadata: Metadata = serde_json::from_slice(document)?;
    if metadata.issuer != issuer {
        return Err(DiscoveryError::IssuerMismatch {
            expected: issuer.to_string(),
            found: metadata.issuer,
        });
    }
    let uri = metadata.jwks_uri;
    if !(uri.starts_with("https://") || uri.starts_with("http://")) {
        return Err(DiscoveryError::JwksUri(uri));
    }
    Ok(uri)
}

/// The introspection endpoint the metadata `document` names, once its
/// `issuer` is checked against the configured one (byte for byte).
pub(crate) fn introspection_endpoint(
    document: &[u8],
    issuer: &str,
) -> Result<String, DiscoveryError> {
    let metadata: IntrospectionMetadata = serde_json::from_slice(document)?;
    if metadata.issuer != issuer {
        return Err(DiscoveryError::IssuerMismatch {
            expected: issuer.to_string(),
            found: metadata.issuer,
        });
    }
    let endpoint = metadata
        .introspection_endpoint
        .ok_or(DiscoveryError::NoIntrospection)?;
    if !crate::config::is_safe_endpoint(&endpoint) {
        return Err(DiscoveryError::IntrospectionEndpoint(endpoint));
    }
    Ok(endpoint)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_metadata_address_keeps_the_issuers_path() {
        assert_eq!(
            url("https://idp.test/realms/shop"),
            "https://idp.test/realms/shop/.well-known/openid-configuration"
        );
        assert_eq!(
            url("https://idp.test/"),
            "https://idp.test/.well-known/openid-configuration"
        );
    }

    #[test]
    fn the_issuer_must_match_exactly() {
        let doc = br#"{"issuer":"https://idp.test","jwks_uri":"https://idp.test/jwks","x":1}"#;
        assert_eq!(
            jwks_uri(doc, "https://idp.test").unwrap(),
            "https://idp.test/jwks"
        );
        assert!(matches!(
            jwks_uri(doc, "https://idp.test/"),
            Err(DiscoveryError::IssuerMismatch { .. })
        ));
        let bad = br#"{"issuer":"https://idp.test","jwks_uri":"file:///etc/passwd"}"#;
        assert!(matches!(
            jwks_uri(bad, "https://idp.test"),
            Err(DiscoveryError::JwksUri(_))
        ));
        assert!(matches!(
            jwks_uri(b"{}", "https://idp.test"),
            Err(DiscoveryError::Parse(_))
        ));
    }

    #[test]
    fn the_introspection_endpoint_is_the_issuers_and_tls_or_loopback() {
        let doc = br#"{"issuer":"https://idp.test","introspection_endpoint":"https://idp.test/i"}"#;
        assert_eq!(
            introspection_endpoint(doc, "https://idp.test").unwrap(),
            "https://idp.test/i"
        );
        assert!(matches!(
            introspection_endpoint(doc, "https://other.test"),
            Err(DiscoveryError::IssuerMismatch { .. })
        ));
        let plain =
            br#"{"issuer":"https://idp.test","introspection_endpoint":"http://idp.test/i"}"#;
        assert!(matches!(
            introspection_endpoint(plain, "https://idp.test"),
            Err(DiscoveryError::IntrospectionEndpoint(_))
        ));
        let none = br#"{"issuer":"https://idp.test"}"#;
        assert!(matches!(
            introspection_endpoint(none, "https://idp.test"),
            Err(DiscoveryError::NoIntrospection)
        ));
    }
}
