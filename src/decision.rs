//! A decision is a value: allow with an identity, or deny with a reason.
//!
//! [`Reason`] is a closed set, so it is safe as a metric label and stable
//! as the machine-readable `reason` in a deny body. Each reason carries its
//! HTTP status and RFC 6750 §3.1 error code in one table ([`Reason::status`],
//! [`Reason::error_code`]); the gRPC adapter only copies them into Envoy's
//! types. Nothing here knows Envoy.

use crate::identity::Identity;
use crate::jwt::JwtError;
use std::sync::Arc;

/// What ward answers for one check.
#[derive(Debug, Clone)]
pub enum Decision {
    Allow(Arc<Identity>),
    /// A public route: no credential needed, no identity injected, and
    /// every managed header the client sent is still removed.
    AllowAnonymous,
    Deny(Reason),
}

/// Why a request was denied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    MissingCredential,
    MalformedRequest,
    RequestTooLarge,
    UnsupportedScheme,
    MalformedAuthorization,
    MultipleCredentials,
    MalformedToken,
    TokenTooLarge,
    UnsupportedAlgorithm,
    UnsupportedCrit,
    UnsupportedTyp,
    UnknownKid,
    AlgorithmMismatch,
    BadSignature,
    TokenExpired,
    TokenNotYetValid,
    TokenLifetimeTooLong,
    MissingClaim,
    InvalidClaim,
    InvalidIssuer,
    InvalidAudience,
    KeysUnavailable,
    UnknownPolicy,
    MalformedSessionId,
    UnknownSession,
    SessionExpired,
    SessionRevoked,
    InvalidSession,
    FingerprintMismatch,
    MalformedApiKey,
    UnknownApiKey,
    ApiKeyExpired,
    ApiKeyRevoked,
    InvalidApiKey,
    TokenRevoked,
    StoreUnavailable,
    CredentialNotAccepted,
    InsufficientRole,
    InsufficientScope,
    RouteDenied,
    NoRoute,
    MalformedPath,
    TooManyFailures,
}

impl Reason {
    /// Every reason, for pre-registering metric series.
    pub const ALL: [Reason; 43] = [
        Reason::MissingCredential,
        Reason::MalformedRequest,
        Reason::RequestTooLarge,
        Reason::UnsupportedScheme,
        Reason::MalformedAuthorization,
        Reason::MultipleCredentials,
        Reason::MalformedToken,
        Reason::TokenTooLarge,
        Reason::UnsupportedAlgorithm,
        Reason::UnsupportedCrit,
        Reason::UnsupportedTyp,
        Reason::UnknownKid,
        Reason::AlgorithmMismatch,
        Reason::BadSignature,
        Reason::TokenExpired,
        Reason::TokenNotYetValid,
        Reason::TokenLifetimeTooLong,
        Reason::MissingClaim,
        Reason::InvalidClaim,
        Reason::InvalidIssuer,
        Reason::InvalidAudience,
        Reason::KeysUnavailable,
        Reason::UnknownPolicy,
        Reason::MalformedSessionId,
        Reason::UnknownSession,
        Reason::SessionExpired,
        Reason::SessionRevoked,
        Reason::InvalidSession,
        Reason::FingerprintMismatch,
        Reason::MalformedApiKey,
        Reason::UnknownApiKey,
        Reason::ApiKeyExpired,
        Reason::ApiKeyRevoked,
        Reason::InvalidApiKey,
        Reason::TokenRevoked,
        Reason::StoreUnavailable,
        Reason::CredentialNotAccepted,
        Reason::InsufficientRole,
        Reason::InsufficientScope,
        Reason::RouteDenied,
        Reason::NoRoute,
        Reason::MalformedPath,
        Reason::TooManyFailures,
    ];

    /// The stable machine-readable code (deny body, metrics, logs).
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::MissingCredential => "missing_credential",
            Reason::MalformedRequest => "malformed_request",
            Reason::RequestTooLarge => "request_too_large",
            Reason::UnsupportedScheme => "unsupported_scheme",
            Reason::MalformedAuthorization => "malformed_authorization",
            Reason::MultipleCredentials => "multiple_credentials",
            Reason::MalformedToken => "malformed_token",
            Reason::TokenTooLarge => "token_too_large",
            Reason::UnsupportedAlgorithm => "unsupported_algorithm",
            Reason::UnsupportedCrit => "unsupported_crit",
            Reason::UnsupportedTyp => "unsupported_typ",
            Reason::UnknownKid => "unknown_kid",
            Reason::AlgorithmMismatch => "algorithm_mismatch",
            Reason::BadSignature => "bad_signature",
            Reason::TokenExpired => "token_expired",
            Reason::TokenNotYetValid => "token_not_yet_valid",
            Reason::TokenLifetimeTooLong => "token_lifetime_too_long",
            Reason::MissingClaim => "missing_claim",
            Reason::InvalidClaim => "invalid_claim",
            Reason::InvalidIssuer => "invalid_issuer",
            Reason::InvalidAudience => "invalid_audience",
            Reason::KeysUnavailable => "keys_unavailable",
            Reason::UnknownPolicy => "unknown_policy",
            Reason::MalformedSessionId => "malformed_session_id",
            Reason::UnknownSession => "unknown_session",
            Reason::SessionExpired => "session_expired",
            Reason::SessionRevoked => "session_revoked",
            Reason::InvalidSession => "invalid_session",
            Reason::FingerprintMismatch => "fingerprint_mismatch",
            Reason::MalformedApiKey => "malformed_api_key",
            Reason::UnknownApiKey => "unknown_api_key",
            Reason::ApiKeyExpired => "api_key_expired",
            Reason::ApiKeyRevoked => "api_key_revoked",
            Reason::InvalidApiKey => "invalid_api_key",
            Reason::TokenRevoked => "token_revoked",
            Reason::StoreUnavailable => "store_unavailable",
            Reason::CredentialNotAccepted => "credential_not_accepted",
            Reason::InsufficientRole => "insufficient_role",
            Reason::InsufficientScope => "insufficient_scope",
            Reason::RouteDenied => "route_denied",
            Reason::NoRoute => "no_route",
            Reason::MalformedPath => "malformed_path",
            Reason::TooManyFailures => "too_many_failures",
        }
    }

    /// HTTP status: 400 for a malformed request (413 when it is too large
    /// to read), 503 when ward cannot
    /// decide yet, 500 for a route naming a policy ward does not have (a
    /// deployment mistake, failed closed), 401 for every credential
    /// problem (RFC 6750 §3.1).
    pub fn status(self) -> u16 {
        match self {
            Reason::UnknownPolicy => 500,
            Reason::RequestTooLarge => 413,
            Reason::MalformedRequest
            | Reason::UnsupportedScheme
            | Reason::MalformedAuthorization
            | Reason::MultipleCredentials
            | Reason::MalformedPath => 400,
            Reason::KeysUnavailable | Reason::StoreUnavailable => 503,
            Reason::InsufficientRole
            | Reason::InsufficientScope
            | Reason::RouteDenied
            | Reason::NoRoute => 403,
            Reason::TooManyFailures => 429,
            _ => 401,
        }
    }

    /// The RFC 6750 `error` code; none when no credential was presented
    /// (RFC 6750 §3.1: "SHOULD NOT include an error code").
    pub fn error_code(self) -> Option<&'static str> {
        match self {
            Reason::MissingCredential => None,
            Reason::MalformedRequest
            | Reason::RequestTooLarge
            | Reason::UnsupportedScheme
            | Reason::MalformedAuthorization
            | Reason::MultipleCredentials
            | Reason::MalformedPath => Some("invalid_request"),
            Reason::KeysUnavailable | Reason::StoreUnavailable => Some("temporarily_unavailable"),
            Reason::UnknownPolicy => Some("server_error"),
            Reason::InsufficientRole | Reason::InsufficientScope => Some("insufficient_scope"),
            Reason::RouteDenied | Reason::NoRoute => Some("access_denied"),
            Reason::TooManyFailures => Some("too_many_requests"),
            _ => Some("invalid_token"),
        }
    }

    /// The small JSON deny body. Holds no credential and nothing the
    /// client sent except the request id (kept to correlate with logs,
    /// and JSON-escaped).
    pub fn body(self, request_id: Option<&str>) -> String {
        self.body_with_status(self.status(), request_id)
    }

    /// The body when `responses.status` answers this reason with `status`.
    pub fn body_with_status(self, status: u16, request_id: Option<&str>) -> String {
        let mut body = serde_json::json!({
            "error": self.error_code().unwrap_or("unauthorized"),
            "reason": self.as_str(),
            "status": status,
        });
        if let Some(id) = request_id.filter(|id| id.len() <= 128) {
            body["request_id"] = id.into();
        }
        body.to_string()
    }
}

impl From<&JwtError> for Reason {
    fn from(e: &JwtError) -> Self {
        match e {
            JwtError::TooLarge => Reason::TokenTooLarge,
            JwtError::Malformed(_) => Reason::MalformedToken,
            JwtError::UnsupportedAlg => Reason::UnsupportedAlgorithm,
            JwtError::UnsupportedCrit => Reason::UnsupportedCrit,
            JwtError::UnsupportedTyp => Reason::UnsupportedTyp,
            JwtError::UnknownKey => Reason::UnknownKid,
            JwtError::AlgorithmMismatch => Reason::AlgorithmMismatch,
            JwtError::BadSignature => Reason::BadSignature,
            JwtError::Expired => Reason::TokenExpired,
            JwtError::NotYetValid => Reason::TokenNotYetValid,
            JwtError::LifetimeTooLong => Reason::TokenLifetimeTooLong,
            JwtError::MissingClaim(_) => Reason::MissingClaim,
            JwtError::InvalidClaim(_) => Reason::InvalidClaim,
            JwtError::WrongIssuer => Reason::InvalidIssuer,
            JwtError::WrongAudience => Reason::InvalidAudience,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_snake_case() {
        let mut codes: Vec<&str> = Reason::ALL.iter().map(|r| r.as_str()).collect();
        assert!(
            codes
                .iter()
                .all(|c| c.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'))
        );
        codes.sort();
        codes.dedup();
        assert_eq!(codes.len(), Reason::ALL.len());
    }

    #[test]
    fn statuses_follow_rfc_6750() {
        assert_eq!(Reason::MissingCredential.status(), 401);
        assert_eq!(Reason::TokenExpired.status(), 401);
        assert_eq!(Reason::MalformedToken.status(), 401);
        assert_eq!(Reason::UnsupportedScheme.status(), 400);
        assert_eq!(Reason::KeysUnavailable.status(), 503);
        assert_eq!(Reason::InsufficientRole.status(), 403);
        assert_eq!(
            Reason::InsufficientScope.error_code(),
            Some("insufficient_scope")
        );
        assert_eq!(Reason::MalformedPath.status(), 400);
        assert_eq!(Reason::TooManyFailures.status(), 429);
        assert_eq!(Reason::MissingCredential.error_code(), None);
        assert_eq!(Reason::TokenExpired.error_code(), Some("invalid_token"));
        assert_eq!(
            Reason::UnsupportedScheme.error_code(),
            Some("invalid_request")
        );
    }

    #[test]
    fn body_is_json_with_a_stable_reason() {
        let body: serde_json::Value =
            serde_json::from_str(&Reason::BadSignature.body(Some("req-\"1"))).unwrap();
        assert_eq!(body["reason"], "bad_signature");
        assert_eq!(body["error"], "invalid_token");
        assert_eq!(body["status"], 401);
        assert_eq!(body["request_id"], "req-\"1");
        let body: serde_json::Value =
            serde_json::from_str(&Reason::MissingCredential.body(Some(&"x".repeat(200)))).unwrap();
        assert!(body.get("request_id").is_none());
    }
}
