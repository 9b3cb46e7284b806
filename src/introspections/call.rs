//! One call to an introspection endpoint (RFC 7662 §2.1): the token in a
//! form POST, ward authenticated as the provider's client (secret in
//! Basic or in the form, or a signed assertion, RFC 7523), within the
//! provider's deadline. Redirects are not followed: the token goes to the
//! configured endpoint and nowhere else.

use crate::config::{ClientAuth, EnvSource, IntrospectionProvider};
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use std::time::Duration;

/// An answer larger than this is no answer.
const MAX_ANSWER_BYTES: usize = 64 * 1024;
/// A client assertion's lifetime.
const ASSERTION_TTL: u64 = 60;

/// Why a call gave no answer to read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CallError {
    #[error("the endpoint is not known yet (discovery has not succeeded)")]
    NoEndpoint,
    #[error("POST failed: {0}")]
    Http(String),
    #[error("status {0}")]
    Status(u16),
    #[error("answer larger than {MAX_ANSWER_BYTES} bytes")]
    TooLarge,
    #[error("client assertion: {0}")]
    Assertion(String),
}

/// How ward proves to the provider who it is.
pub(crate) enum ClientCredentials {
    Basic {
        id: String,
        secret: String,
    },
    Post {
        id: String,
        secret: String,
    },
    PrivateKeyJwt {
        id: String,
        key: EncodingKey,
        alg: Algorithm,
    },
}

impl std::fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClientCredentials(<redacted>)")
    }
}

impl ClientCredentials {
    /// The provider's client authentication, its secret or key read now.
    /// The error names the field, never the value.
    pub(crate) fn load(
        provider: &IntrospectionProvider,
        env: &dyn EnvSource,
    ) -> Result<Self, (&'static str, String)> {
        let id = provider.client_id.clone();
        let read = |field: &'static str,
                    source: Option<&crate::config::SecretSource>|
         -> Result<String, (&'static str, String)> {
            let source = source.ok_or((field, "is required".to_string()))?;
            let secret = source.resolve(env).map_err(|e| (field, e.to_string()))?;
            String::from_utf8(secret.expose().to_vec()).map_err(|_| (field, "is not UTF-8".into()))
        };
        Ok(match provider.client_auth {
            ClientAuth::ClientSecretBasic => Self::Basic {
                id,
                secret: read("client_secret", provider.client_secret.as_ref())?,
            },
            ClientAuth::ClientSecretPost => Self::Post {
                id,
                secret: read("client_secret", provider.client_secret.as_ref())?,
            },
            ClientAuth::PrivateKeyJwt => {
                let pem = read("private_key", provider.private_key.as_ref())?;
                let (key, alg) = signing_key(pem.as_bytes()).ok_or((
                    "private_key",
                    "is not a PEM EC P-256 or RSA private key".to_string(),
                ))?;
                Self::PrivateKeyJwt { id, key, alg }
            }
        })
    }
}

/// A private key that signs (a public key parses as a PEM too: a test
/// signature tells them apart at load, not at the first call).
fn signing_key(pem: &[u8]) -> Option<(EncodingKey, Algorithm)> {
    let key = match EncodingKey::from_ec_pem(pem) {
        Ok(key) => (key, Algorithm::ES256),
        Err(_) => (EncodingKey::from_rsa_pem(pem).ok()?, Algorithm::RS256),
    };
    let signs = jsonwebtoken::encode(&Header::new(key.1), &serde_json::json!({}), &key.0);
    signs.is_ok().then_some(key)
}

/// `application/x-www-form-urlencoded` for one value.
fn form(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The form body and, for Basic, the `Authorization` header.
fn request(
    auth: &ClientCredentials,
    token: &str,
    audience: &str,
    now: u64,
) -> Result<(String, Option<String>), CallError> {
    let mut body = format!("token={}&token_type_hint=access_token", form(token));
    let header = match auth {
        ClientCredentials::Basic { id, secret } => {
            // RFC 6749 §2.3.1: each form-encoded, then Base64.
            let pair = format!("{}:{}", form(id), form(secret));
            let encoded = base64::engine::general_purpose::STANDARD.encode(pair);
            Some(format!("Basic {encoded}"))
        }
        ClientCredentials::Post { id, secret } => {
            body.push_str(&format!(
                "&client_id={}&client_secret={}",
                form(id),
                form(secret)
            ));
            None
        }
        ClientCredentials::PrivateKeyJwt { id, key, alg } => {
            let assertion = assertion(id, key, *alg, audience, now)?;
            body.push_str(&format!(
                "&client_id={}&client_assertion_type={}&client_assertion={assertion}",
                form(id),
                form("urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
            ));
            None
        }
    };
    Ok((body, header))
}

/// A client assertion (RFC 7523 §3): this client, to `audience`, once.
fn assertion(
    id: &str,
    key: &EncodingKey,
    alg: Algorithm,
    audience: &str,
    now: u64,
) -> Result<String, CallError> {
    let mut jti = [0u8; 16];
    getrandom::fill(&mut jti).map_err(|e| CallError::Assertion(e.to_string()))?;
    let claims = serde_json::json!({
        "iss": id,
        "sub": id,
        "aud": audience,
        "jti": hex::encode(jti),
        "iat": now,
        "exp": now + ASSERTION_TTL,
    });
    jsonwebtoken::encode(&Header::new(alg), &claims, key)
        .map_err(|e| CallError::Assertion(e.to_string()))
}

/// POSTs `token` to `endpoint`; the answer's bytes on status 200.
/// `audience`: who a client assertion is for (the issuer, else the
/// endpoint).
pub(crate) async fn post(
    client: &reqwest::Client,
    endpoint: &str,
    auth: &ClientCredentials,
    audience: &str,
    token: &str,
    timeout: Duration,
) -> Result<Vec<u8>, CallError> {
    let (body, authorization) = request(auth, token, audience, crate::unix_now())?;
    let mut call = client
        .post(endpoint)
        .header("content-type", "application/x-www-form-urlencoded")
        .header("accept", "application/json")
        .timeout(timeout)
        .body(body);
    if let Some(value) = authorization {
        call = call.header("authorization", value);
    }
    // The error's text never holds the token: it went in the body.
    let http = |e: reqwest::Error| CallError::Http(e.without_url().to_string());
    let response = call.send().await.map_err(http)?;
    if response.status().as_u16() != 200 {
        return Err(CallError::Status(response.status().as_u16()));
    }
    if response
        .content_length()
        .is_some_and(|n| n as usize > MAX_ANSWER_BYTES)
    {
        return Err(CallError::TooLarge);
    }
    let bytes = response.bytes().await.map_err(http)?;
    if bytes.len() > MAX_ANSWER_BYTES {
        return Err(CallError::TooLarge);
    }
    Ok(bytes.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_form_encoded_and_basic_is_rfc_6749() {
        let auth = ClientCredentials::Basic {
            id: "ward".into(),
            secret: "a b:c".into(),
        };
        let (body, header) = request(&auth, "t+k/=", "https://idp", 1).unwrap();
        assert_eq!(body, "token=t%2Bk%2F%3D&token_type_hint=access_token");
        let encoded = base64::engine::general_purpose::STANDARD.encode("ward:a%20b%3Ac");
        assert_eq!(header, Some(format!("Basic {encoded}")));
        let auth = ClientCredentials::Post {
            id: "ward".into(),
            secret: "s&t".into(),
        };
        let (body, header) = request(&auth, "tok", "https://idp", 1).unwrap();
        assert_eq!(
            body,
            "token=tok&token_type_hint=access_token&client_id=ward&client_secret=s%26t"
        );
        assert_eq!(header, None);
        assert!(!format!("{auth:?}").contains("s&t"));
    }
}
