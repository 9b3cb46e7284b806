//! OpenID Connect Discovery 1.0: an identity provider configured by its
//! issuer URL. Its metadata lives at `{issuer}/.well-known/openid-configuration`
//! (the issuer's path kept: a Keycloak realm is `https://idp/realms/x`, and
//! its metadata `https://idp/realms/x/.well-known/...`), and must name the
//! issuer exactly as configured (§4.3: otherwise a document served under
//! one issuer could point ward at another's keys). Only `jwks_uri` is
//! read; the keys are then fetched like any `url` source.

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
}

#[derive(Deserialize)]
struct Metadata {
    issuer: String,
    jwks_uri: String,
}

/// Where `issuer`'s metadata is: its path kept, a trailing `/` not doubled.
pub(super) fn url(issuer: &str) -> String {
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
}
