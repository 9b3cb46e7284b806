//! Between the management operations' types (`manage.rs`) and the API's
//! messages, both ways: the server sends what `Manager` returns, and
//! `ward ... --server` turns the answer back into the same types, so both
//! paths print the same text. Proto3 has no absent scalar: 0 and `""`
//! mean "none" here, as the proto's comments say.

use super::proto;
use crate::manage::{ApiKeyInfo, ManageError, SessionInfo};
use std::time::Duration;
use tonic::Status;

/// The gRPC status of a failed operation.
pub(super) fn status(e: ManageError) -> Status {
    match e {
        ManageError::NotFound(_) => Status::not_found(e.to_string()),
        ManageError::Invalid(_) => Status::invalid_argument(e.to_string()),
        ManageError::Store(_) | ManageError::Open(_) => Status::unavailable(e.to_string()),
        ManageError::NoRedis => Status::failed_precondition(e.to_string()),
        ManageError::Random(_) => Status::internal(e.to_string()),
    }
}

/// `0` for "none".
pub(crate) fn or_zero(t: Option<u64>) -> u64 {
    t.unwrap_or(0)
}

/// "none" for `0`.
pub(crate) fn nonzero(t: u64) -> Option<u64> {
    (t != 0).then_some(t)
}

/// "none" for `""`.
pub(crate) fn nonempty(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

pub(crate) fn session_to_proto(s: SessionInfo) -> proto::Session {
    proto::Session {
        session_id: s.session_id,
        user_id: s.user_id,
        email: s.email.unwrap_or_default(),
        roles: s.roles,
        scopes: s.scopes,
        expires_at: or_zero(s.expires_at),
        revoked: s.revoked,
        ttl_seconds: s.ttl.map_or(0, |t| t.as_secs()),
        fingerprint_bound: s.fingerprint_bound,
    }
}

pub(crate) fn session_from_proto(s: proto::Session) -> SessionInfo {
    SessionInfo {
        session_id: s.session_id,
        user_id: s.user_id,
        email: nonempty(s.email),
        roles: s.roles,
        scopes: s.scopes,
        expires_at: nonzero(s.expires_at),
        revoked: s.revoked,
        ttl: nonzero(s.ttl_seconds).map(Duration::from_secs),
        fingerprint_bound: s.fingerprint_bound,
    }
}

pub(crate) fn api_key_to_proto(k: ApiKeyInfo) -> proto::ApiKey {
    proto::ApiKey {
        key_id: k.key_id,
        user_id: k.user_id,
        name: k.name,
        scopes: k.scopes,
        expires_at: or_zero(k.expires_at),
        revoked: k.revoked,
        created_at: or_zero(k.created_at),
    }
}

pub(crate) fn api_key_from_proto(k: proto::ApiKey) -> ApiKeyInfo {
    ApiKeyInfo {
        key_id: k.key_id,
        user_id: k.user_id,
        name: k.name,
        scopes: k.scopes,
        expires_at: nonzero(k.expires_at),
        revoked: k.revoked,
        created_at: nonzero(k.created_at),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_survive_the_trip_through_the_messages() {
        let session = SessionInfo {
            session_id: "s".into(),
            user_id: "alice".into(),
            email: None,
            roles: vec!["admin".into()],
            scopes: vec![],
            expires_at: Some(1_700_000_000),
            revoked: true,
            ttl: None,
            fingerprint_bound: true,
        };
        assert_eq!(
            session_from_proto(session_to_proto(session.clone())),
            session
        );
        let key = ApiKeyInfo {
            key_id: "key_1".into(),
            user_id: "bob".into(),
            name: "ci".into(),
            scopes: vec!["read".into(), "write".into()],
            expires_at: None,
            revoked: false,
            created_at: Some(1),
        };
        assert_eq!(api_key_from_proto(api_key_to_proto(key.clone())), key);
    }
}
