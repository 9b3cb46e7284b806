//! Where `ward session ...` and `ward apikey ...` send their operations:
//! straight to the config's Redis (`Manager`, as always), or with
//! `--server` through a running ward's management API, whose answers are
//! turned back into the same types (`server/management/convert.rs`) so
//! both print the same text. Through the API, the server's config decides
//! what the CLI's would (the key prefix, the store), and the server's audit
//! log records the call.

use crate::manage::{
    ApiKeyInfo, CreatedKey, KeyRequest, ManageError, Manager, Rotated, SessionInfo,
};
use crate::server::management::convert;
use crate::server::management::proto::admin_service_client::AdminServiceClient;
use crate::server::management::proto::*;
use crate::session::NewSession;
use crate::store::records::OidcLogin;
use std::path::Path;
use std::time::Duration;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

/// Why an operation failed, on either path.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TargetError {
    #[error("{0}")]
    Manage(#[from] ManageError),
    #[error("cannot reach the management API at {url}: {reason}")]
    Connect { url: String, reason: String },
    #[error("--config or --server is required")]
    NoTarget,
    #[error("TLS: {0}")]
    Tls(String),
    #[error("cannot read --token-file: {0}")]
    Token(String),
    /// The API's answer: its status code and message.
    #[error("management API: {:?}: {}", .0.code(), .0.message())]
    Api(#[from] tonic::Status),
}

/// The store directly, or a ward's management API.
pub(crate) enum Target {
    Direct { manager: Manager, prefix: String },
    Remote(Remote),
}

/// How to reach a management API: `--server` and its companions.
pub(crate) struct RemoteOptions<'a> {
    pub url: &'a str,
    pub token_file: Option<&'a Path>,
    /// The CA of an `https://` server's certificate.
    pub ca_file: Option<&'a Path>,
    /// A client certificate and its key (PEM), for mTLS.
    pub client: Option<(&'a Path, &'a Path)>,
}

/// A management API client and the bearer token it sends.
pub(crate) struct Remote {
    client: AdminServiceClient<Channel>,
    token: Option<String>,
}

impl Remote {
    /// Connects to `options.url` (`http://host:port`, or `https://` with
    /// TLS); the token from its file.
    pub(crate) async fn connect(options: &RemoteOptions<'_>) -> Result<Self, TargetError> {
        let token = match options.token_file {
            Some(path) => Some(read_token(path)?),
            None => None,
        };
        let unreachable = |reason: String| TargetError::Connect {
            url: options.url.to_string(),
            reason,
        };
        let mut endpoint = Channel::from_shared(options.url.to_string())
            .map_err(|e| unreachable(e.to_string()))?
            .connect_timeout(Duration::from_secs(5));
        if options.url.starts_with("https://") {
            endpoint = endpoint
                .tls_config(tls(options)?)
                .map_err(|e| unreachable(e.to_string()))?;
        }
        let channel = endpoint
            .connect()
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        Ok(Self {
            client: AdminServiceClient::new(channel),
            token,
        })
    }

    /// `message` with the bearer token.
    fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        if let Some(value) = self
            .token
            .as_ref()
            .and_then(|t| format!("Bearer {t}").parse().ok())
        {
            request.metadata_mut().insert("authorization", value);
        }
        request
    }

    /// The tonic client (cloned: its calls take `&mut self`).
    fn client(&self) -> AdminServiceClient<Channel> {
        self.client.clone()
    }
}

/// The client side of an `https://` server: its CA (required: there is
/// no system trust store here) and, for mTLS, a client certificate.
fn tls(options: &RemoteOptions<'_>) -> Result<ClientTlsConfig, TargetError> {
    let read = |path: &Path| {
        std::fs::read(path).map_err(|e| TargetError::Tls(format!("{}: {e}", path.display())))
    };
    let ca = options
        .ca_file
        .ok_or_else(|| TargetError::Tls("an https:// --server needs --ca-file".into()))?;
    let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(read(ca)?));
    if let Some((cert, key)) = options.client {
        tls = tls.identity(Identity::from_pem(read(cert)?, read(key)?));
    }
    Ok(tls)
}

/// The token in `path` without its trailing newline (not checked for
/// length here: the server judges it).
fn read_token(path: &Path) -> Result<String, TargetError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| TargetError::Token(format!("{}: {e}", path.display())))?;
    Ok(text.trim_end_matches(['\n', '\r']).to_string())
}

impl Target {
    pub(crate) async fn create_session(
        &self,
        new: NewSession,
        login: Option<&OidcLogin<'_>>,
    ) -> Result<String, TargetError> {
        // Checked here too: the server reads a TTL of 0 as its default.
        crate::manage::check_ttl("ttl", new.ttl)?;
        match self {
            Target::Direct { manager, .. } => Ok(manager.create_session(&new, login).await?.0),
            Target::Remote(r) => {
                let text = |v: Option<&str>| v.unwrap_or_default().to_string();
                let message = CreateSessionRequest {
                    user_id: new.user_id,
                    email: new.email.unwrap_or_default(),
                    roles: new.roles,
                    scopes: new.scopes,
                    fingerprint: new.fingerprint.unwrap_or_default(),
                    ttl_seconds: new.ttl.as_secs(),
                    oidc_issuer: text(login.map(|l| l.issuer)),
                    oidc_sid: text(login.and_then(|l| l.sid)),
                    oidc_sub: text(login.and_then(|l| l.sub)),
                };
                let answer = r.client().create_session(r.request(message)).await?;
                Ok(answer.into_inner().session_id)
            }
        }
    }

    pub(crate) async fn list_sessions(&self, user: &str) -> Result<Vec<SessionInfo>, TargetError> {
        match self {
            Target::Direct { manager, .. } => Ok(manager.list_sessions(user).await?),
            Target::Remote(r) => {
                let message = ListSessionsRequest {
                    user_id: user.to_string(),
                };
                let answer = r.client().list_sessions(r.request(message)).await?;
                let sessions = answer.into_inner().sessions;
                Ok(sessions
                    .into_iter()
                    .map(convert::session_from_proto)
                    .collect())
            }
        }
    }

    pub(crate) async fn revoke_session(&self, sid: &str) -> Result<(), TargetError> {
        match self {
            Target::Direct { manager, .. } => Ok(manager.revoke_session(sid).await?),
            Target::Remote(r) => {
                let message = RevokeSessionRequest {
                    session_id: sid.to_string(),
                };
                r.client().revoke_session(r.request(message)).await?;
                Ok(())
            }
        }
    }

    pub(crate) async fn revoke_user(&self, user: &str) -> Result<usize, TargetError> {
        match self {
            Target::Direct { manager, .. } => Ok(manager.revoke_user(user).await?),
            Target::Remote(r) => {
                let message = RevokeUserSessionsRequest {
                    user_id: user.to_string(),
                };
                let answer = r.client().revoke_user_sessions(r.request(message)).await?;
                Ok(answer.into_inner().revoked as usize)
            }
        }
    }

    pub(crate) async fn create_api_key(&self, req: KeyRequest) -> Result<CreatedKey, TargetError> {
        if let Some(expires_in) = req.expires_in {
            crate::manage::check_ttl("expires", expires_in)?;
        }
        match self {
            Target::Direct { manager, prefix } => Ok(manager.create_api_key(prefix, req).await?),
            Target::Remote(r) => {
                let message = CreateApiKeyRequest {
                    user_id: req.user_id,
                    name: req.name,
                    scopes: req.scopes,
                    expires_in_seconds: req.expires_in.map_or(0, |d| d.as_secs()),
                };
                let answer = r.client().create_api_key(r.request(message)).await?;
                let answer = answer.into_inner();
                Ok(CreatedKey {
                    key_id: answer.key_id,
                    key: answer.key,
                    expires_at: convert::nonzero(answer.expires_at),
                })
            }
        }
    }

    pub(crate) async fn list_api_keys(&self, user: &str) -> Result<Vec<ApiKeyInfo>, TargetError> {
        match self {
            Target::Direct { manager, .. } => Ok(manager.list_api_keys(user).await?),
            Target::Remote(r) => {
                let message = ListApiKeysRequest {
                    user_id: user.to_string(),
                };
                let answer = r.client().list_api_keys(r.request(message)).await?;
                let keys = answer.into_inner().api_keys;
                Ok(keys.into_iter().map(convert::api_key_from_proto).collect())
            }
        }
    }

    pub(crate) async fn revoke_api_key(&self, key_id: &str) -> Result<(), TargetError> {
        match self {
            Target::Direct { manager, .. } => Ok(manager.revoke_api_key(key_id).await?),
            Target::Remote(r) => {
                let message = RevokeApiKeyRequest {
                    key_id: key_id.to_string(),
                };
                r.client().revoke_api_key(r.request(message)).await?;
                Ok(())
            }
        }
    }

    pub(crate) async fn rotate_api_key(
        &self,
        key_id: &str,
        overlap: Duration,
    ) -> Result<Rotated, TargetError> {
        match self {
            Target::Direct { manager, prefix } => {
                Ok(manager.rotate_api_key(prefix, key_id, overlap).await?)
            }
            Target::Remote(r) => {
                let message = RotateApiKeyRequest {
                    key_id: key_id.to_string(),
                    overlap_seconds: overlap.as_secs(),
                };
                let answer = r.client().rotate_api_key(r.request(message)).await?;
                let answer = answer.into_inner();
                Ok(Rotated {
                    new: CreatedKey {
                        key_id: answer.key_id,
                        key: answer.key,
                        expires_at: convert::nonzero(answer.expires_at),
                    },
                    old_expires_at: answer.old_key_expires_at,
                })
            }
        }
    }
}
