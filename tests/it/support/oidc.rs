//! A real OpenID provider (the npm package `oidc-provider`, started with
//! the machine's Node.js by `tests/fixtures/oidc/provider.mjs`) on a free
//! loopback port, under an issuer with a path (`/realms/shop`).

use super::process::Process;
use std::path::PathBuf;
use std::process::Command;
use tempfile::TempDir;

/// A running provider; killed when dropped.
pub struct Provider {
    /// `http://127.0.0.1:PORT/realms/shop`
    pub issuer: String,
    addr: std::net::SocketAddr,
    process: Process,
    dir: TempDir,
}

/// The installed package's entry file (scripts/test.sh installs it).
fn package_main() -> PathBuf {
    let dir = std::env::var_os("WARD_OIDC_PROVIDER_DIR").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".tools/oidc-provider"),
        PathBuf::from,
    );
    let main = dir.join("node_modules/oidc-provider/lib/index.js");
    assert!(
        main.exists(),
        "{} is missing: run scripts/test.sh, which installs oidc-provider (npm) there",
        main.display()
    );
    main
}

impl Provider {
    /// Starts a provider signing with the fixture key `key` (a PEM under
    /// `tests/fixtures/keys`) as `kid`.
    pub async fn start(key: &str, kid: &str) -> Provider {
        Self::start_with(key, kid, None).await
    }

    /// [`Provider::start`] with back-channel logout on: one client `web`
    /// whose `backchannel_logout_uri` is `logout_uri`, and the provider's
    /// login pages ([`Provider::login`], [`Provider::end_session`]).
    pub async fn with_backchannel_logout(key: &str, kid: &str, logout_uri: &str) -> Provider {
        Self::start_with(key, kid, Some(logout_uri)).await
    }

    /// [`Provider::start`] with client credentials, introspection and
    /// revocation on (clients `app`, `ward`, `ward-jwt`: see
    /// tests/fixtures/oidc/provider.mjs).
    pub async fn with_introspection(key: &str, kid: &str) -> Provider {
        Self::start_env(key, kid, None, true).await
    }

    async fn start_with(key: &str, kid: &str, logout_uri: Option<&str>) -> Provider {
        Self::start_env(key, kid, logout_uri, false).await
    }

    async fn start_env(
        key: &str,
        kid: &str,
        logout_uri: Option<&str>,
        introspection: bool,
    ) -> Provider {
        let dir = tempfile::tempdir().unwrap();
        let [addr] = super::free_addrs::<1>();
        let issuer = format!("http://{addr}/realms/shop");
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let mut cmd = Command::new("node");
        cmd.arg(root.join("tests/fixtures/oidc/provider.mjs"))
            .env("OIDC_PROVIDER_MAIN", package_main())
            .env("OIDC_ISSUER", &issuer)
            .env("OIDC_PORT", addr.port().to_string())
            .env("OIDC_KEY", root.join("tests/fixtures/keys").join(key))
            .env("OIDC_KID", kid);
        if let Some(uri) = logout_uri {
            cmd.env("OIDC_BACKCHANNEL_URI", uri);
        }
        if introspection {
            cmd.env("OIDC_INTROSPECTION", "1");
        }
        let mut process =
            Process::spawn("oidc-provider", cmd, &dir.path().join("oidc.log")).unwrap();
        process
            .wait_ready(addr, "/realms/shop/.well-known/openid-configuration")
            .await
            .unwrap();
        Provider {
            issuer,
            addr,
            process,
            dir,
        }
    }

    /// The provider's loopback address.
    pub fn addr(&self) -> std::net::SocketAddr {
        self.addr
    }

    /// Stops the provider (its port then refuses connections).
    pub fn stop(&mut self) {
        self.process.kill();
    }

    /// Introspection calls the provider has received so far (each one is
    /// a line of its log).
    pub fn introspection_calls(&self) -> usize {
        let log = std::fs::read_to_string(self.dir.path().join("oidc.log")).unwrap_or_default();
        log.lines()
            .filter(|l| l.contains("introspection call"))
            .count()
    }

    /// An opaque access token for client `app` (client credentials, scope
    /// `api:read`).
    pub async fn client_token(&self) -> String {
        let body = "grant_type=client_credentials&scope=api%3Aread";
        let resp = self.as_app("/realms/shop/token", body).await;
        assert_eq!(resp.status, 200, "{}", resp.text());
        let token = resp.json()["access_token"].as_str().unwrap().to_string();
        assert_ne!(token.matches('.').count(), 2, "not opaque: {token}");
        token
    }

    /// Revokes `token` at the provider (RFC 7009), as its client `app`.
    pub async fn revoke(&self, token: &str) {
        let body = format!("token={token}&token_type_hint=access_token");
        let resp = self.as_app("/realms/shop/token/revocation", &body).await;
        assert_eq!(resp.status, 200, "{}", resp.text());
    }

    async fn as_app(&self, path: &str, form: &str) -> super::http::Response {
        use base64::Engine;
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("app:{APP_SECRET}"));
        let auth = format!("Basic {basic}");
        let headers = [
            ("authorization", auth.as_str()),
            ("content-type", "application/x-www-form-urlencoded"),
        ];
        super::http::send(self.addr, "POST", path, &headers, form.as_bytes())
            .await
            .unwrap()
    }
}

/// The client secrets of `app` and `ward` (tests/fixtures/oidc/provider.mjs).
const APP_SECRET: &str = "app-client-secret-for-the-test-0123456789";
pub const WARD_SECRET: &str = "ward-client-secret-for-the-test-012345678";

/// What a login at the provider gave the relying party: the ID token and
/// the claims a login service records (`iss`, `sid`, `sub`).
pub struct Login {
    pub id_token: String,
    pub claims: serde_json::Value,
    browser: Browser,
}

/// The client secret of `web` (tests/fixtures/oidc/provider.mjs).
const WEB_SECRET: &str = "web-client-secret-for-the-test-0123456789";
const REDIRECT_URI: &str = "https%3A%2F%2Frp.test%2Fcallback";

impl Provider {
    /// Logs `user` in to client `web` as a browser does (authorization
    /// request, the provider's login and consent pages, the redirect with
    /// a code) and redeems the code as the relying party does.
    pub async fn login(&self, user: &str) -> Login {
        let mut browser = Browser::new(self.addr);
        let auth = format!(
            "/realms/shop/auth?client_id=web&response_type=code&scope=openid&nonce=n&state=s&redirect_uri={REDIRECT_URI}"
        );
        let login_page = browser.redirected("GET", &auth, "").await;
        let body = format!("prompt=login&login={user}&password=any");
        let resume = browser.redirected("POST", &login_page, &body).await;
        let consent_page = browser.redirected("GET", &resume, "").await;
        let resume = browser
            .redirected("POST", &consent_page, "prompt=consent")
            .await;
        let callback = browser.redirected("GET", &resume, "").await;
        let code = callback
            .split(['?', '&'])
            .find_map(|p| p.strip_prefix("code="))
            .unwrap_or_else(|| panic!("no code in {callback}"));
        let body = format!(
            "grant_type=authorization_code&code={code}&redirect_uri={REDIRECT_URI}&client_id=web&client_secret={WEB_SECRET}"
        );
        let resp = browser.send("POST", "/realms/shop/token", &body).await;
        assert_eq!(resp.status, 200, "{}", resp.text());
        let id_token = resp.json()["id_token"].as_str().unwrap().to_string();
        let payload = id_token.split('.').nth(1).unwrap();
        let payload = {
            use base64::Engine;
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(payload)
                .unwrap()
        };
        let claims = serde_json::from_slice(&payload).unwrap();
        Login {
            id_token,
            claims,
            browser,
        }
    }

    /// Logs the login's user out at the provider (RP-initiated logout,
    /// confirmed on the provider's page): the provider then sends the
    /// back-channel logout to every client of the session, and answers
    /// once they have answered.
    pub async fn end_session(&self, login: Login) {
        let mut browser = login.browser;
        let path = format!(
            "/realms/shop/session/end?client_id=web&id_token_hint={}",
            login.id_token
        );
        let page = browser.send("GET", &path, "").await;
        assert_eq!(page.status, 200, "{}", page.text());
        let text = page.text();
        let xsrf = text
            .split("name=\"xsrf\" value=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap_or_else(|| panic!("no xsrf in {text}"));
        let body = format!("xsrf={xsrf}&logout=yes");
        browser
            .redirected("POST", "/realms/shop/session/end/confirm", &body)
            .await;
    }
}

/// Just enough of a browser for the provider's pages: its cookies, and
/// redirects read one at a time.
struct Browser {
    addr: std::net::SocketAddr,
    cookies: std::collections::BTreeMap<String, String>,
}

impl Browser {
    fn new(addr: std::net::SocketAddr) -> Browser {
        Browser {
            addr,
            cookies: Default::default(),
        }
    }

    /// Sends a request expecting a redirect; returns where to (the path,
    /// for the provider's own pages).
    async fn redirected(&mut self, method: &str, path: &str, form: &str) -> String {
        let resp = self.send(method, path, form).await;
        assert!(
            (300..400).contains(&resp.status),
            "{method} {path}: {} {}",
            resp.status,
            resp.text()
        );
        let location = resp.header("location").unwrap();
        let origin = format!("http://{}", self.addr);
        location
            .strip_prefix(&origin)
            .unwrap_or(location)
            .to_string()
    }

    async fn send(&mut self, method: &str, path: &str, form: &str) -> super::http::Response {
        let cookie = self
            .cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ");
        let mut headers = vec![("cookie", cookie.as_str())];
        if method == "POST" {
            headers.push(("content-type", "application/x-www-form-urlencoded"));
        }
        let resp = super::http::send(self.addr, method, path, &headers, form.as_bytes())
            .await
            .unwrap();
        for set in resp.header_all("set-cookie") {
            let pair = set.split(';').next().unwrap_or_default();
            if let Some((name, value)) = pair.split_once('=') {
                match value.is_empty() {
                    true => self.cookies.remove(name),
                    false => self.cookies.insert(name.into(), value.into()),
                };
            }
        }
        resp
    }
}
