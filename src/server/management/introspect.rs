//! `Introspect`: the identity and decision the running checker gives a
//! request, RFC 7662 in spirit (`active` is an allow with an identity).
//! The request goes through `explain::introspect`, the running checker's
//! quiet path: the same steps as a check, without counting a rejected
//! credential against the credential or the client.

use super::proto::{Header, IntrospectRequest, IntrospectResponse};
use crate::decision::Decision;
use crate::explain::ExplainRequest;
use crate::server::generation::Generation;
use tonic::Status;

/// The introspection of `req` on `generation`.
pub(super) async fn run(
    generation: &Generation,
    req: IntrospectRequest,
) -> Result<IntrospectResponse, Status> {
    let request = ExplainRequest {
        method: req.method,
        url: if req.url.is_empty() {
            "/".into()
        } else {
            req.url
        },
        headers: req.headers.into_iter().map(|h| (h.name, h.value)).collect(),
        source_ip: None,
        principal: Some(req.principal).filter(|p| !p.is_empty()),
        envoy_policy: Some(req.envoy_policy).filter(|p| !p.is_empty()),
    };
    let service = &generation.grpc;
    let seen = crate::explain::introspect(
        &service.checker,
        &service.responder,
        &request,
        crate::unix_now(),
    )
    .await
    .map_err(|e| Status::invalid_argument(e.to_string()))?;
    let mut out = IntrospectResponse {
        status: u32::from(seen.status),
        steps: seen.steps.into_iter().map(header).collect(),
        credential_kind: seen
            .decision
            .method()
            .map_or("", |m| m.as_str())
            .to_string(),
        ..IntrospectResponse::default()
    };
    match seen.decision {
        Decision::Allow(allowed) => {
            // The identity headers; never the identity token, a bearer
            // credential for the backend (docs/backends.md).
            let identity = allowed.identity;
            out.active = true;
            out.decision = "allow".into();
            out.user_id = identity.user_id().to_string();
            out.roles = identity.roles().map(str::to_string).collect();
            out.scopes = identity.scopes().map(str::to_string).collect();
            out.identity_headers = identity
                .headers()
                .chain(allowed.principal.as_ref().map(|p| p.header()))
                .map(|(k, v)| header((k.to_string(), v.to_string())))
                .collect();
        }
        Decision::AllowAnonymous { .. } => out.decision = "allow_anonymous".into(),
        Decision::Deny(deny) => {
            out.decision = "deny".into();
            out.reason = deny.reason.as_str().to_string();
        }
    }
    Ok(out)
}

fn header((name, value): (String, String)) -> Header {
    Header { name, value }
}
