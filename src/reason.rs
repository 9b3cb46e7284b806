//! Why a request was denied: the closed [`Reason`] set.
//!
//! A closed set, so it is safe as a metric label and stable as the
//! machine-readable `reason` in a deny body. Each reason carries its HTTP
//! status and RFC 6750 §3.1 error code in one table ([`Reason::status`],
//! [`Reason::error_code`]), which `docs/decisions.md` must match (a test
//! reads it); the adapters only copy them into their wire types. Nothing
//! here knows Envoy.

use crate::jwt::JwtError;

/// Declares [`Reason`] from one table: each reason once, with its stable
/// code (deny body, metric label, logs), its default HTTP status and its
/// RFC 6750 §3.1 `error` code. A new reason cannot compile without all
/// three, and nothing matches on `Reason` with a fallback arm.
macro_rules! reasons {
    ($($variant:ident $code:literal, $status:literal, $error:expr;)+) => {
        /// Why a request was denied.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Reason {
            $($variant,)+
        }

        impl Reason {
            /// Every reason, in declaration order (a reason's index is
            /// `reason as usize`), for pre-registering metric series.
            pub const ALL: [Reason; [$(Reason::$variant),+].len()] = [$(Reason::$variant),+];

            /// The stable machine-readable code (deny body, metrics, logs).
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Reason::$variant => $code,)+
                }
            }

            /// HTTP status: 400 for a malformed request (413 when it is too
            /// large to read), 503 when ward cannot decide yet, 500 for a
            /// route naming a policy ward does not have (a deployment
            /// mistake, failed closed), 403 for a valid credential that may
            /// not pass, 429 for a client the limiter blocked, 401 for every
            /// credential problem (RFC 6750 §3.1).
            pub fn status(self) -> u16 {
                match self {
                    $(Reason::$variant => $status,)+
                }
            }

            /// The RFC 6750 `error` code; none when no credential was
            /// presented (RFC 6750 §3.1: "SHOULD NOT include an error code").
            pub fn error_code(self) -> Option<&'static str> {
                match self {
                    $(Reason::$variant => $error,)+
                }
            }
        }
    };
}

reasons! {
    // variant                code, status, RFC 6750 error
    MissingCredential        "missing_credential", 401, None;
    MalformedRequest         "malformed_request", 400, Some("invalid_request");
    RequestTooLarge          "request_too_large", 413, Some("invalid_request");
    UnsupportedScheme        "unsupported_scheme", 400, Some("invalid_request");
    MalformedAuthorization   "malformed_authorization", 400, Some("invalid_request");
    MultipleCredentials      "multiple_credentials", 400, Some("invalid_request");
    MalformedToken           "malformed_token", 401, Some("invalid_token");
    TokenTooLarge            "token_too_large", 401, Some("invalid_token");
    UnsupportedAlgorithm     "unsupported_algorithm", 401, Some("invalid_token");
    UnsupportedCrit          "unsupported_crit", 401, Some("invalid_token");
    UnsupportedTyp           "unsupported_typ", 401, Some("invalid_token");
    UnknownKid               "unknown_kid", 401, Some("invalid_token");
    AlgorithmMismatch        "algorithm_mismatch", 401, Some("invalid_token");
    BadSignature             "bad_signature", 401, Some("invalid_token");
    TokenExpired             "token_expired", 401, Some("invalid_token");
    TokenNotYetValid         "token_not_yet_valid", 401, Some("invalid_token");
    TokenLifetimeTooLong     "token_lifetime_too_long", 401, Some("invalid_token");
    MissingClaim             "missing_claim", 401, Some("invalid_token");
    InvalidClaim             "invalid_claim", 401, Some("invalid_token");
    InvalidIssuer            "invalid_issuer", 401, Some("invalid_token");
    InvalidAudience          "invalid_audience", 401, Some("invalid_token");
    KeysUnavailable          "keys_unavailable", 503, Some("temporarily_unavailable");
    VerificationOverloaded   "verification_overloaded", 503, Some("temporarily_unavailable");
    UnknownPolicy            "unknown_policy", 500, Some("server_error");
    MalformedSessionId       "malformed_session_id", 401, Some("invalid_token");
    UnknownSession           "unknown_session", 401, Some("invalid_token");
    SessionExpired           "session_expired", 401, Some("invalid_token");
    SessionRevoked           "session_revoked", 401, Some("invalid_token");
    InvalidSession           "invalid_session", 401, Some("invalid_token");
    FingerprintMismatch      "fingerprint_mismatch", 401, Some("invalid_token");
    MalformedApiKey          "malformed_api_key", 401, Some("invalid_token");
    UnknownApiKey            "unknown_api_key", 401, Some("invalid_token");
    ApiKeyExpired            "api_key_expired", 401, Some("invalid_token");
    ApiKeyRevoked            "api_key_revoked", 401, Some("invalid_token");
    InvalidApiKey            "invalid_api_key", 401, Some("invalid_token");
    TokenRevoked             "token_revoked", 401, Some("invalid_token");
    StoreUnavailable         "store_unavailable", 503, Some("temporarily_unavailable");
    CredentialNotAccepted    "credential_not_accepted", 401, Some("invalid_token");
    InsufficientRole         "insufficient_role", 403, Some("insufficient_scope");
    InsufficientScope        "insufficient_scope", 403, Some("insufficient_scope");
    RouteDenied              "route_denied", 403, Some("access_denied");
    NoRoute                  "no_route", 403, Some("access_denied");
    MalformedPath            "malformed_path", 400, Some("invalid_request");
    TooManyFailures          "too_many_failures", 429, Some("too_many_requests");
    IdentityTokenUnavailable "identity_token_unavailable", 500, Some("server_error");
    InactiveToken            "inactive_token", 401, Some("invalid_token");
    IntrospectionUnavailable "introspection_unavailable", 503, Some("temporarily_unavailable");
    IntrospectionOverloaded  "introspection_overloaded", 503, Some("temporarily_unavailable");
    MissingPrincipal         "missing_principal", 401, None;
    PrincipalRequired        "principal_required", 403, Some("access_denied");
    PrincipalNotAllowed      "principal_not_allowed", 403, Some("access_denied");
    MalformedPrincipal       "malformed_principal", 400, Some("invalid_request");
}

impl Reason {
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

    /// docs/decisions.md is the contract: its reason table lists every
    /// reason once, with the status and RFC 6750 code the code gives it.
    #[test]
    fn the_documented_reason_table_is_the_code_table() {
        let doc = include_str!("../docs/decisions.md");
        let mut documented: Vec<(String, u16, Option<String>)> = doc
            .lines()
            .filter_map(|line| {
                let cells: Vec<&str> = line.split('|').map(str::trim).collect();
                let code = cells.get(1)?.strip_prefix('`')?.strip_suffix('`')?;
                let status: u16 = cells.get(2)?.parse().ok()?;
                let error = cells.get(3)?;
                let error = error.strip_prefix('`').and_then(|e| e.strip_suffix('`'));
                Some((code.to_string(), status, error.map(str::to_string)))
            })
            .collect();
        documented.sort();
        let mut code: Vec<(String, u16, Option<String>)> = Reason::ALL
            .iter()
            .map(|r| {
                let error = r.error_code().map(str::to_string);
                (r.as_str().to_string(), r.status(), error)
            })
            .collect();
        code.sort();
        assert_eq!(documented, code);
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
