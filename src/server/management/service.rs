//! `ward.admin.v1.AdminService`: each call authenticates its caller,
//! runs one `Manager` operation (`manage.rs`: the same store code as the
//! CLI, with the same invalidation) or one introspection on the running
//! generation, and ends with its audit line. Nothing here writes to the
//! store itself.

use super::auth::{Caller, Gate, Subject, audit};
use super::convert::{self, status};
use super::proto::admin_service_server::AdminService;
use super::proto::*;
use crate::manage::{KeyRequest, Manager};
use crate::metrics::{CallResult, Metrics};
use crate::server::generation::Live;
use crate::session::NewSession;
use crate::store::records::OidcLogin;
use std::sync::Arc;
use std::time::Duration;
use tonic::{Request, Response, Status};

/// A session's lifetime when the request names none.
const DEFAULT_SESSION_TTL: Duration = Duration::from_secs(24 * 3600);

/// The service over the running generation.
pub(super) struct Admin {
    live: Arc<Live>,
    gate: Gate,
    metrics: Arc<Metrics>,
}

type Answer<T> = Result<Response<T>, Status>;

impl Admin {
    pub(super) fn new(live: Arc<Live>, gate: Gate, metrics: Arc<Metrics>) -> Self {
        Self {
            live,
            gate,
            metrics,
        }
    }

    /// The caller of `request`, a refusal counted.
    fn caller<T>(&self, request: &Request<T>, name: &str) -> Result<Caller, Status> {
        self.gate.caller(request, name).inspect_err(|_| {
            self.metrics.management_call(name, CallResult::Refused);
        })
    }

    /// The audit line and the counter of an authenticated call.
    fn finished<T>(
        &self,
        caller: &Caller,
        name: &str,
        subject: &Subject<'_>,
        result: &Result<T, Status>,
    ) {
        audit(caller, name, subject, result);
        let counted = match result {
            Ok(_) => CallResult::Ok,
            Err(_) => CallResult::Failed,
        };
        self.metrics.management_call(name, counted);
    }

    /// The store of the generation running now, as the CLI's `Manager`.
    fn manager(&self) -> Manager {
        self.live.current().manager()
    }

    /// `API keys`' prefix of the running config (new keys carry it).
    fn key_prefix(&self) -> String {
        self.live.current().config.api_keys.prefix.clone()
    }

    /// Authenticates, runs `op`, writes the audit line.
    async fn call<Req, T>(
        &self,
        name: &str,
        request: Request<Req>,
        subject: impl FnOnce(&Req) -> Subject<'_>,
        op: impl AsyncFnOnce(&Self, &Req, &Caller) -> Result<T, Status>,
    ) -> Answer<T> {
        let caller = self.caller(&request, name)?;
        let req = request.into_inner();
        let result = op(self, &req, &caller).await;
        self.finished(&caller, name, &subject(&req), &result);
        result.map(Response::new)
    }
}

/// `Some(v)` unless `v` is empty (proto3's "absent").
fn some(v: &str) -> Option<&str> {
    Some(v).filter(|v| !v.is_empty())
}

/// `CreateSession`: the session, and the OpenID login it came from when
/// the request names one.
async fn new_session(
    manager: &Manager,
    q: &CreateSessionRequest,
) -> Result<CreateSessionResponse, Status> {
    let ttl = convert::nonzero(q.ttl_seconds).map_or(DEFAULT_SESSION_TTL, Duration::from_secs);
    let new = NewSession {
        user_id: q.user_id.clone(),
        email: convert::nonempty(q.email.clone()),
        roles: q.roles.clone(),
        scopes: q.scopes.clone(),
        fingerprint: convert::nonempty(q.fingerprint.clone()),
        ttl,
    };
    let login = some(&q.oidc_issuer).map(|issuer| OidcLogin {
        issuer,
        sid: some(&q.oidc_sid),
        sub: some(&q.oidc_sub),
    });
    if login.is_none() && !(q.oidc_sid.is_empty() && q.oidc_sub.is_empty()) {
        return Err(Status::invalid_argument(
            "oidc_sid and oidc_sub need oidc_issuer",
        ));
    }
    let (session_id, expires_at) = manager
        .create_session(&new, login.as_ref())
        .await
        .map_err(status)?;
    Ok(CreateSessionResponse {
        session_id,
        expires_at,
    })
}

fn user(user_id: &str) -> Subject<'_> {
    Subject {
        user: Some(user_id),
        ..Subject::default()
    }
}

fn session(sid: &str) -> Subject<'_> {
    Subject {
        session: Some(sid),
        ..Subject::default()
    }
}

fn key(key_id: &str) -> Subject<'_> {
    Subject {
        key_id: Some(key_id),
        ..Subject::default()
    }
}

fn token(q: &RevokeTokenRequest) -> Subject<'_> {
    Subject {
        jti: Some(&q.jti),
        ..Subject::default()
    }
}

#[tonic::async_trait]
impl AdminService for Admin {
    async fn create_session(
        &self,
        r: Request<CreateSessionRequest>,
    ) -> Answer<CreateSessionResponse> {
        self.call(
            "CreateSession",
            r,
            |q| user(&q.user_id),
            async |s, q, _| new_session(&s.manager(), q).await,
        )
        .await
    }

    async fn get_session(&self, r: Request<GetSessionRequest>) -> Answer<GetSessionResponse> {
        self.call(
            "GetSession",
            r,
            |q| session(&q.session_id),
            async |s, q, _| {
                let found = s
                    .manager()
                    .get_session(&q.session_id)
                    .await
                    .map_err(status)?;
                Ok(GetSessionResponse {
                    session: Some(convert::session_to_proto(found)),
                })
            },
        )
        .await
    }

    async fn list_sessions(&self, r: Request<ListSessionsRequest>) -> Answer<ListSessionsResponse> {
        self.call(
            "ListSessions",
            r,
            |q| user(&q.user_id),
            async |s, q, _| {
                let found = s
                    .manager()
                    .list_sessions(&q.user_id)
                    .await
                    .map_err(status)?;
                let sessions = found.into_iter().map(convert::session_to_proto).collect();
                Ok(ListSessionsResponse { sessions })
            },
        )
        .await
    }

    async fn revoke_session(
        &self,
        r: Request<RevokeSessionRequest>,
    ) -> Answer<RevokeSessionResponse> {
        self.call(
            "RevokeSession",
            r,
            |q| session(&q.session_id),
            async |s, q, _| {
                s.manager()
                    .revoke_session(&q.session_id)
                    .await
                    .map_err(status)?;
                Ok(RevokeSessionResponse {})
            },
        )
        .await
    }

    async fn revoke_user_sessions(
        &self,
        r: Request<RevokeUserSessionsRequest>,
    ) -> Answer<RevokeUserSessionsResponse> {
        self.call(
            "RevokeUserSessions",
            r,
            |q| user(&q.user_id),
            async |s, q, _| {
                let n = s.manager().revoke_user(&q.user_id).await.map_err(status)?;
                Ok(RevokeUserSessionsResponse {
                    revoked: u32::try_from(n).unwrap_or(u32::MAX),
                })
            },
        )
        .await
    }

    async fn create_api_key(
        &self,
        r: Request<CreateApiKeyRequest>,
    ) -> Answer<CreateApiKeyResponse> {
        self.call(
            "CreateApiKey",
            r,
            |q| user(&q.user_id),
            async |s, q, _| {
                let req = KeyRequest {
                    user_id: q.user_id.clone(),
                    name: q.name.clone(),
                    scopes: q.scopes.clone(),
                    expires_in: convert::nonzero(q.expires_in_seconds).map(Duration::from_secs),
                };
                let created = s
                    .manager()
                    .create_api_key(&s.key_prefix(), req)
                    .await
                    .map_err(status)?;
                Ok(CreateApiKeyResponse {
                    key_id: created.key_id,
                    key: created.key,
                    expires_at: convert::or_zero(created.expires_at),
                })
            },
        )
        .await
    }

    async fn list_api_keys(&self, r: Request<ListApiKeysRequest>) -> Answer<ListApiKeysResponse> {
        self.call(
            "ListApiKeys",
            r,
            |q| user(&q.user_id),
            async |s, q, _| {
                let found = s
                    .manager()
                    .list_api_keys(&q.user_id)
                    .await
                    .map_err(status)?;
                let api_keys = found.into_iter().map(convert::api_key_to_proto).collect();
                Ok(ListApiKeysResponse { api_keys })
            },
        )
        .await
    }

    async fn revoke_api_key(
        &self,
        r: Request<RevokeApiKeyRequest>,
    ) -> Answer<RevokeApiKeyResponse> {
        self.call(
            "RevokeApiKey",
            r,
            |q| key(&q.key_id),
            async |s, q, _| {
                s.manager()
                    .revoke_api_key(&q.key_id)
                    .await
                    .map_err(status)?;
                Ok(RevokeApiKeyResponse {})
            },
        )
        .await
    }

    async fn rotate_api_key(
        &self,
        r: Request<RotateApiKeyRequest>,
    ) -> Answer<RotateApiKeyResponse> {
        self.call(
            "RotateApiKey",
            r,
            |q| key(&q.key_id),
            async |s, q, _| {
                let overlap = Duration::from_secs(q.overlap_seconds);
                let m = s.manager();
                let rotated = m
                    .rotate_api_key(&s.key_prefix(), &q.key_id, overlap)
                    .await
                    .map_err(status)?;
                Ok(RotateApiKeyResponse {
                    key_id: rotated.new.key_id,
                    key: rotated.new.key,
                    expires_at: convert::or_zero(rotated.new.expires_at),
                    old_key_expires_at: rotated.old_expires_at,
                })
            },
        )
        .await
    }

    async fn revoke_token(&self, r: Request<RevokeTokenRequest>) -> Answer<RevokeTokenResponse> {
        self.call("RevokeToken", r, token, async |s, q, _| {
            s.manager()
                .revoke_token(&q.jti, q.expires_at)
                .await
                .map_err(status)?;
            Ok(RevokeTokenResponse {})
        })
        .await
    }

    async fn introspect(&self, r: Request<IntrospectRequest>) -> Answer<IntrospectResponse> {
        let caller = self.caller(&r, "Introspect")?;
        let result = super::introspect::run(&self.live.current(), r.into_inner()).await;
        let user = result
            .as_ref()
            .ok()
            .map(|a| a.user_id.as_str())
            .filter(|u| !u.is_empty());
        self.finished(
            &caller,
            "Introspect",
            &Subject {
                user,
                ..Subject::default()
            },
            &result,
        );
        result.map(Response::new)
    }
}
