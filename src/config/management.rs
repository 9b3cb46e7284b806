//! The `management` section: what ward offers the systems around it
//! besides checks. The management API (`proto/ward/admin/v1`), served on
//! a listener of its own and off unless `listen` is set: it changes
//! sessions, API keys and revoked tokens, so it is never on the Check port
//! and never open (a config that turns it on without a way to
//! authenticate callers is refused: fail closed). And the OpenID Connect
//! back-channel logout endpoint (`backchannel_logout`), on the same
//! listener, which its signed token alone authenticates. See
//! `docs/operations.md#the-management-api`.

use super::Problems;
use super::backchannel::BackchannelConfig;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::PathBuf;

/// The management API's listener and how callers authenticate.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ManagementConfig {
    /// Where the API listens (gRPC, and HTTP/1.1 routes on the same port);
    /// absent: no management API.
    pub listen: Option<SocketAddr>,
    /// How callers prove who they are; required when `listen` is set.
    pub auth: ManagementAuth,
    /// OpenID Connect Back-Channel Logout 1.0: an identity provider's
    /// logout revokes the ward sessions recorded for it.
    pub backchannel_logout: Option<BackchannelConfig>,
}

/// The ways a caller may authenticate.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ManagementAuth {
    /// A file holding the bearer token callers send (`authorization:
    /// Bearer <token>`), e.g. a mounted Kubernetes Secret. Read on every
    /// call, so a rotated Secret applies without a restart; a trailing
    /// newline is not part of the token.
    pub token_file: Option<PathBuf>,
    /// TLS on the listener, with client certificates (mTLS): a caller
    /// whose certificate chains to `client_ca` and names one of
    /// `allowed_identities` is let in without a token.
    pub tls: Option<ManagementTls>,
}

/// The listener's TLS and the client certificates it accepts.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManagementTls {
    /// The server's certificate chain (PEM).
    pub cert: PathBuf,
    /// The server's private key (PEM).
    pub key: PathBuf,
    /// The CA (PEM) client certificates must chain to.
    pub client_ca: PathBuf,
    /// DNS names a client certificate must be valid for (its
    /// `subjectAltName`), one of them: who may call. Required.
    pub allowed_identities: Vec<String>,
}

/// The shortest token accepted: a guessable token would open the API.
pub const MIN_TOKEN_BYTES: usize = 16;

impl ManagementConfig {
    /// The section's problems; `others` are the listeners it must not
    /// share an address with (`listen.grpc`, `.admin`, `.http`).
    pub(super) fn check(&self, others: &[SocketAddr], p: &mut Problems) {
        let Some(listen) = self.listen else {
            return;
        };
        if listen.port() != 0 && others.contains(&listen) {
            p.add(
                "management.listen",
                "must differ from listen.grpc, listen.admin and listen.http",
            );
        }
        let auth = &self.auth;
        if auth.token_file.is_none() && auth.tls.is_none() {
            p.add(
                "management.auth",
                "needs token_file or tls when management.listen is set (the API is never open)",
            );
        }
        if let Some(path) = &auth.token_file
            && let Err(e) = read_token(path)
        {
            p.add("management.auth.token_file", e);
        }
        if let Some(tls) = &auth.tls {
            tls.check(p);
        }
    }
}

impl ManagementTls {
    fn check(&self, p: &mut Problems) {
        for (field, path) in [
            ("cert", &self.cert),
            ("key", &self.key),
            ("client_ca", &self.client_ca),
        ] {
            match std::fs::read_to_string(path) {
                Ok(text) if text.contains("-----BEGIN ") => {}
                Ok(_) => p.add(
                    format!("management.auth.tls.{field}"),
                    format!("{}: not PEM", path.display()),
                ),
                Err(e) => p.add(
                    format!("management.auth.tls.{field}"),
                    format!("cannot read {}: {e}", path.display()),
                ),
            }
        }
        if self.allowed_identities.is_empty() {
            p.add(
                "management.auth.tls.allowed_identities",
                "must name at least one client identity (a DNS name in the client certificate)",
            );
        }
        for (i, id) in self.allowed_identities.iter().enumerate() {
            if !is_dns_name(id) {
                p.add(
                    format!("management.auth.tls.allowed_identities[{i}]"),
                    format!("`{id}` is not a DNS name"),
                );
            }
        }
    }
}

/// A DNS name as a certificate's `subjectAltName` holds it: dot-separated
/// labels of letters, digits and inner `-`, 1 to 63 bytes each, 253 in all.
fn is_dns_name(name: &str) -> bool {
    let label = |l: &str| {
        (1..=63).contains(&l.len())
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    (1..=253).contains(&name.len()) && name.split('.').all(label)
}

/// The token in `path`, without a trailing newline; a message when it
/// cannot be read or is too short to be a secret (never the token).
pub fn read_token(path: &std::path::Path) -> Result<Vec<u8>, String> {
    let mut bytes =
        std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    while bytes.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        bytes.pop();
    }
    if bytes.len() < MIN_TOKEN_BYTES {
        return Err(format!(
            "{}: the token must be at least {MIN_TOKEN_BYTES} bytes",
            path.display()
        ));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(yaml: &str) -> Vec<String> {
        let config = crate::config::Config::from_yaml(yaml).unwrap_or_else(|e| panic!("{e}"));
        config.validate().iter().map(|p| p.to_string()).collect()
    }

    #[test]
    fn off_by_default_and_never_open_or_on_another_listener() {
        assert!(problems("").is_empty());
        assert_eq!(
            problems("management: {listen: '127.0.0.1:9003'}"),
            vec![
                "management.auth: needs token_file or tls when management.listen is set (the API is never open)"
            ]
        );
        let clash = problems(
            "listen: {grpc: '127.0.0.1:9100'}\nmanagement: {listen: '127.0.0.1:9100', auth: {token_file: /nonexistent/t}}",
        );
        assert_eq!(clash.len(), 2, "{clash:?}");
        assert!(clash[0].starts_with("management.listen: must differ"));
        assert!(clash[1].starts_with("management.auth.token_file: cannot read /nonexistent/t"));
    }

    #[test]
    fn tls_needs_readable_pem_files_and_dns_identities() {
        let found = problems(
            "management:\n  listen: '127.0.0.1:9003'\n  auth:\n    tls:\n      cert: tests/fixtures/management/server.pem\n      key: /nonexistent/key.pem\n      client_ca: Cargo.toml\n      allowed_identities: ['login.auth.svc', 'not a name']",
        );
        assert_eq!(found.len(), 3, "{found:?}");
        assert!(found[0].starts_with("management.auth.tls.key: cannot read /nonexistent/key.pem"));
        assert_eq!(
            found[1],
            "management.auth.tls.client_ca: Cargo.toml: not PEM"
        );
        assert_eq!(
            found[2],
            "management.auth.tls.allowed_identities[1]: `not a name` is not a DNS name"
        );
        let none = problems(
            "management:\n  listen: '127.0.0.1:9003'\n  auth:\n    tls: {cert: tests/fixtures/management/server.pem, key: tests/fixtures/management/server.key, client_ca: tests/fixtures/management/ca.pem, allowed_identities: []}",
        );
        assert_eq!(
            none,
            vec![
                "management.auth.tls.allowed_identities: must name at least one client identity (a DNS name in the client certificate)"
            ]
        );
    }

    #[test]
    fn a_short_token_is_refused_and_a_trailing_newline_is_not_part_of_it() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("token");
        std::fs::write(&path, "short\n").unwrap_or_else(|e| panic!("{e}"));
        assert!(read_token(&path).is_err_and(|e| e.contains("at least 16 bytes")));
        std::fs::write(&path, "0123456789abcdef\r\n").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(read_token(&path), Ok(b"0123456789abcdef".to_vec()));
    }
}
