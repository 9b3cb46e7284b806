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
    _process: Process,
    _dir: TempDir,
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
    /// whose `backchannel_logout_uri` is `logout_uri` (see
    /// [`Provider::logout`]).
    pub async fn with_backchannel_logout(key: &str, kid: &str, logout_uri: &str) -> Provider {
        Self::start_with(key, kid, Some(logout_uri)).await
    }

    /// Makes the provider send client `web` the logout token of its
    /// session `sid` of user `sub`, as its end_session endpoint does;
    /// `Ok` when the client answered 200, else the provider's error.
    pub async fn logout(&self, sub: &str, sid: &str) -> Result<(), String> {
        let path = format!("/realms/shop/test/backchannel-logout?sub={sub}&sid={sid}");
        let resp = super::http::send(self.addr, "POST", &path, &[], b"")
            .await
            .unwrap();
        match resp.status {
            204 => Ok(()),
            _ => Err(format!("{}: {}", resp.status, resp.text())),
        }
    }

    async fn start_with(key: &str, kid: &str, logout_uri: Option<&str>) -> Provider {
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
        let mut process =
            Process::spawn("oidc-provider", cmd, &dir.path().join("oidc.log")).unwrap();
        process
            .wait_ready(addr, "/realms/shop/.well-known/openid-configuration")
            .await
            .unwrap();
        Provider {
            issuer,
            addr,
            _process: process,
            _dir: dir,
        }
    }
}
