//! How a deny reads on the wire, for both transports: the status (with
//! `responses.status` overrides), `WWW-Authenticate` naming what the
//! route accepts, `Retry-After` on a 429, the JSON body, and the login
//! redirect a browser gets instead of a bare 401.
//!
//! Pure: the gRPC adapter copies a [`DenyResponse`] into Envoy's
//! `DeniedHttpResponse`; the HTTP adapter writes it as the response.

use crate::config::Config;
use crate::credential_kind::CredentialKind;
use crate::decision::Deny;
use crate::reason::Reason;
use crate::request::Request;

/// A rendered deny.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DenyResponse {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
}

/// Renders denies as configured.
#[derive(Debug, Clone)]
pub struct Responder {
    statuses: [u16; Reason::ALL.len()],
    realm: String,
    return_param: String,
    api_key_header: String,
    session_cookie: String,
}

impl Responder {
    pub fn from_config(config: &Config) -> Self {
        let mut statuses = Reason::ALL.map(Reason::status);
        for (i, reason) in Reason::ALL.iter().enumerate() {
            if let Some(status) = config.responses.status.get(reason.as_str()) {
                statuses[i] = *status;
            }
        }
        Self {
            statuses,
            realm: config.headers.realm.clone(),
            return_param: config.responses.return_param.clone(),
            api_key_header: config.api_keys.header.clone(),
            session_cookie: config.sessions.cookie.clone(),
        }
    }

    /// The status a reason is answered with.
    pub fn status(&self, reason: Reason) -> u16 {
        Reason::ALL
            .iter()
            .position(|r| *r == reason)
            .map_or_else(|| reason.status(), |i| self.statuses[i])
    }

    /// The response for a deny of `req`; `None` for a request ward could
    /// not read (too large, not a `CheckRequest`, headers not text), which
    /// has nothing to redirect and no request id for the body.
    pub fn deny(&self, req: Option<&Request<'_>>, deny: &Deny) -> DenyResponse {
        let reason = deny.reason;
        let status = self.status(reason);
        let login = deny.policy.as_ref().and_then(|p| p.login_url.as_deref());
        if let (Some(login), Some(req)) = (login, req)
            && status == 401
            && is_browser_navigation(req)
        {
            return DenyResponse {
                status: 302,
                headers: vec![
                    ("location", self.login_location(login, req)),
                    ("cache-control", "no-store".into()),
                ],
                body: String::new(),
            };
        }
        let mut headers = vec![
            ("content-type", "application/json".to_string()),
            ("cache-control", "no-store".to_string()),
        ];
        if let Some(challenge) = self.challenge(deny, status) {
            headers.push(("www-authenticate", challenge));
        }
        if let Some(secs) = deny.retry_after.filter(|_| status == 429) {
            headers.push(("retry-after", secs.to_string()));
        }
        DenyResponse {
            status,
            headers,
            body: reason.body_with_status(status, req.and_then(Request::request_id)),
        }
    }

    /// RFC 6750 §3: a 401 without a credential names every scheme the
    /// route accepts and no error; a bad credential or request gets the
    /// error code; a valid credential lacking a role or scope gets
    /// `insufficient_scope` on its 403.
    fn challenge(&self, deny: &Deny, status: u16) -> Option<String> {
        let reason = deny.reason;
        let realm = &self.realm;
        let kind_challenge = matches!(
            reason,
            Reason::MissingCredential | Reason::CredentialNotAccepted
        );
        if kind_challenge && matches!(status, 400 | 401) {
            let accepted: Vec<CredentialKind> = match &deny.policy {
                Some(p) => p.accepted().collect(),
                None => CredentialKind::ALL.to_vec(),
            };
            let mut schemes: Vec<String> = accepted
                .iter()
                // JWTs and opaque tokens share one scheme: one challenge.
                .filter(|m| {
                    **m != CredentialKind::Opaque || !accepted.contains(&CredentialKind::Jwt)
                })
                .map(|m| match m {
                    CredentialKind::Jwt | CredentialKind::Opaque => {
                        format!("Bearer realm=\"{realm}\"")
                    }
                    CredentialKind::ApiKey => format!(
                        "ApiKey realm=\"{realm}\", header=\"{}\"",
                        self.api_key_header
                    ),
                    CredentialKind::Session => format!(
                        "Session realm=\"{realm}\", cookie=\"{}\"",
                        self.session_cookie
                    ),
                    // TLS client authentication has no HTTP scheme.
                    CredentialKind::Mtls => String::new(),
                })
                .filter(|s| !s.is_empty())
                .collect();
            if schemes.is_empty() {
                return None;
            }
            if reason == Reason::CredentialNotAccepted {
                for s in &mut schemes {
                    s.push_str(
                        ", error=\"invalid_token\", error_description=\"credential_not_accepted\"",
                    );
                }
            }
            return Some(schemes.join(", "));
        }
        let code = match reason {
            Reason::InsufficientRole | Reason::InsufficientScope => "insufficient_scope",
            _ if matches!(status, 400 | 401) => reason.error_code()?,
            _ => return None,
        };
        Some(format!(
            "Bearer realm=\"{realm}\", error=\"{code}\", error_description=\"{}\"",
            reason.as_str()
        ))
    }

    /// `login_url` with the original URL appended as `return_param`,
    /// percent-encoded so nothing in it can break out of the parameter.
    fn login_location(&self, login: &str, req: &Request<'_>) -> String {
        let scheme = match req.header("x-forwarded-proto") {
            Some("http") => "http",
            _ => "https",
        };
        let original = format!("{scheme}://{}{}", req.host, req.path);
        let sep = if login.contains('?') { '&' } else { '?' };
        format!(
            "{login}{sep}{}={}",
            self.return_param,
            percent_encode(&original)
        )
    }
}

/// A browser loading a page (not an API call or an XHR): GET or HEAD,
/// asking for HTML.
fn is_browser_navigation(req: &Request<'_>) -> bool {
    matches!(req.method, "GET" | "HEAD")
        && req
            .header("accept")
            .is_some_and(|a| a.to_ascii_lowercase().contains("text/html"))
}

/// Everything but RFC 3986 unreserved characters, percent-encoded.
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decision::Deny;
    use crate::policy::Policies;
    use crate::request::Headers;
    use std::sync::Arc;

    fn setup(yaml: &str) -> (Responder, Policies) {
        let config = Config::from_yaml(yaml).unwrap();
        (
            Responder::from_config(&config),
            Policies::from_config(&config).unwrap(),
        )
    }

    fn deny_on(policies: &Policies, name: &str, reason: Reason) -> Deny {
        let mut o = Deny::new(reason);
        o.policy = policies.named(name).cloned();
        o
    }

    fn req<'a>(method: &'a str, headers: &'a [(&'a str, &'a str)]) -> Request<'a> {
        Request {
            method,
            host: "app.example.com",
            path: "/orders?id=7&x=<y>",
            headers: Headers::new(headers),
            policy: None,
            source_ip: None,
            principal: None,
        }
    }

    fn header<'a>(r: &'a DenyResponse, name: &str) -> Option<&'a str> {
        r.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    const WEB: &str = "jwt: {keys: [{alg: RS256, pem_file: tests/fixtures/keys/rsa.pub}]}\npolicies: {web: {login_url: 'https://login.example.com/start?app=1', accept: [session]}, api: {accept: [jwt, apikey]}}";

    #[test]
    fn a_browser_is_redirected_to_login_with_its_url() {
        let (r, p) = setup(WEB);
        let html = [("accept", "text/html,application/xhtml+xml")];
        let o = deny_on(&p, "web", Reason::MissingCredential);
        let d = r.deny(Some(&req("GET", &html)), &o);
        assert_eq!(d.status, 302);
        assert_eq!(
            header(&d, "location"),
            Some(
                "https://login.example.com/start?app=1&return_to=https%3A%2F%2Fapp.example.com%2Forders%3Fid%3D7%26x%3D%3Cy%3E"
            )
        );
        // Not for an API call, a POST, or a 403.
        let json = [("accept", "application/json")];
        assert_eq!(r.deny(Some(&req("GET", &json)), &o).status, 401);
        assert_eq!(r.deny(Some(&req("POST", &html)), &o).status, 401);
        let o = deny_on(&p, "web", Reason::InsufficientRole);
        assert_eq!(r.deny(Some(&req("GET", &html)), &o).status, 403);
    }

    #[test]
    fn an_unreadable_request_gets_the_plain_deny() {
        let (r, p) = setup(WEB);
        let mut o = deny_on(&p, "web", Reason::MissingCredential);
        let d = r.deny(None, &o);
        assert_eq!(d.status, 401, "no request to redirect");
        assert!(header(&d, "location").is_none());
        o = Deny::new(Reason::MalformedRequest);
        let d = r.deny(None, &o);
        assert_eq!(d.status, 400);
        let body: serde_json::Value = serde_json::from_str(&d.body).unwrap();
        assert_eq!(body["reason"], "malformed_request");
        assert!(body.get("request_id").is_none());
    }

    #[test]
    fn missing_credential_names_what_the_route_accepts() {
        let (r, p) = setup(WEB);
        let none = [];
        let d = r.deny(
            Some(&req("GET", &none)),
            &deny_on(&p, "api", Reason::MissingCredential),
        );
        assert_eq!(d.status, 401);
        assert_eq!(
            header(&d, "www-authenticate"),
            Some("Bearer realm=\"ward\", ApiKey realm=\"ward\", header=\"x-api-key\"")
        );
        let d = r.deny(
            Some(&req("GET", &none)),
            &deny_on(&p, "web", Reason::MissingCredential),
        );
        assert_eq!(
            header(&d, "www-authenticate"),
            Some("Session realm=\"ward\", cookie=\"session_id\"")
        );
    }

    #[test]
    fn statuses_can_be_overridden_and_429_says_when() {
        let (r, _) = setup("responses: {status: {unknown_api_key: 403}}");
        let none = [];
        let o = Deny::new(Reason::UnknownApiKey);
        let d = r.deny(Some(&req("GET", &none)), &o);
        assert_eq!(d.status, 403);
        assert_eq!(header(&d, "www-authenticate"), None);
        let body: serde_json::Value = serde_json::from_str(&d.body).unwrap();
        assert_eq!(body["status"], 403);
        assert_eq!(body["reason"], "unknown_api_key");

        let mut o = Deny::new(Reason::TooManyFailures);
        o.retry_after = Some(7);
        let d = r.deny(Some(&req("GET", &none)), &o);
        assert_eq!(d.status, 429);
        assert_eq!(header(&d, "retry-after"), Some("7"));
    }

    #[test]
    fn insufficient_scope_is_a_403_with_its_challenge() {
        let (r, _) = setup("");
        let none = [];
        let mut o = Deny::new(Reason::InsufficientScope);
        o.policy = Some(Arc::new(
            Policies::from_config(&Config::default())
                .unwrap()
                .named("required")
                .unwrap()
                .as_ref()
                .clone(),
        ));
        let d = r.deny(Some(&req("GET", &none)), &o);
        assert_eq!(d.status, 403);
        assert_eq!(
            header(&d, "www-authenticate"),
            Some(
                "Bearer realm=\"ward\", error=\"insufficient_scope\", error_description=\"insufficient_scope\""
            )
        );
    }
}
