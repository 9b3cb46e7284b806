//! Runs a real Envoy with `envoy.filters.http.ext_authz` (gRPC, V3) in front
//! of an upstream, asking an authorization server (ward or a stub) about every
//! request.
//!
//! The generated config mirrors `envoy/envoy.yaml`: fail closed, explicit
//! timeout, HTTP/2 to the authorization cluster, path normalization, and a
//! route (`/public` by default) with ext_authz disabled. See [`EnvoyOptions`].
//!
//! The binary comes from `WARD_ENVOY_BIN`, else from `.venv-envoy` in the
//! crate root; `scripts/test.sh` installs it there.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};
use tempfile::TempDir;

use super::free_port;
use super::http::{self, Response};
use super::process::Process;

/// Where Envoy finds the authorization server.
#[derive(Debug, Clone)]
pub enum AuthzTarget {
    Tcp(SocketAddr),
    Unix(PathBuf),
    /// HTTP ext_authz mode (`http_service`) to ward's `listen.http`,
    /// configured as `envoy/http-mode.yaml` is.
    Http(SocketAddr),
}

impl From<SocketAddr> for AuthzTarget {
    fn from(addr: SocketAddr) -> Self {
        AuthzTarget::Tcp(addr)
    }
}

/// What to generate. Defaults (via [`EnvoyOptions::new`]) follow
/// `envoy/envoy.yaml`, except for a longer timeout (absorbs CI noise) and
/// `use_remote_address`.
#[derive(Debug, Clone)]
pub struct EnvoyOptions {
    /// The HTTP/1.1 upstream every route goes to (e.g. [`super::echo::Echo`]).
    pub upstream: SocketAddr,
    /// The ext_authz gRPC server (e.g. `ward.grpc_addr`).
    pub authz: AuthzTarget,
    /// ext_authz `grpc_service.timeout` (default 0.5 s).
    pub timeout: Duration,
    /// Default `false`: fail closed.
    pub failure_mode_allow: bool,
    /// Status Envoy answers when the authorization call fails (default 503,
    /// so "ward down" cannot be mistaken for "ward denied"); `None` keeps
    /// Envoy's own default, 403.
    pub status_on_error: Option<u16>,
    /// Path prefix routed with ext_authz disabled (default `/public`).
    pub public_prefix: Option<String>,
    /// Path prefix whose route selects ward's `public` policy through
    /// `context_extensions: {ward_policy: public}` (default `/open`): no
    /// credential needed, forged identity headers still scrubbed.
    pub open_prefix: Option<String>,
    /// HCM `use_remote_address` (default `false`, unlike `envoy/envoy.yaml`):
    /// the `x-forwarded-for` a test sends is exactly what ward sees. With
    /// `true`, Envoy appends the peer address, and for a loopback peer it
    /// appends this machine's own non-loopback address instead, which a test
    /// cannot predict.
    pub use_remote_address: bool,
    /// `(prefix, policy)`: routes that select a named ward policy through
    /// `context_extensions: {ward_policy: policy}` (gRPC mode only).
    pub policy_routes: Vec<(String, String)>,
}

impl EnvoyOptions {
    pub fn new(upstream: SocketAddr, authz: impl Into<AuthzTarget>) -> Self {
        EnvoyOptions {
            upstream,
            authz: authz.into(),
            timeout: Duration::from_millis(500),
            failure_mode_allow: false,
            status_on_error: Some(503),
            public_prefix: Some("/public".to_owned()),
            open_prefix: Some("/open".to_owned()),
            use_remote_address: false,
            policy_routes: Vec::new(),
        }
    }
}

/// A running Envoy; killed when dropped.
pub struct Envoy {
    /// The HTTP listener clients talk to.
    pub http_addr: SocketAddr,
    /// Envoy's admin endpoint (/ready, /stats, ...).
    pub admin_addr: SocketAddr,
    process: Process,
    dir: TempDir,
}

impl Envoy {
    /// Starts Envoy with the default options in front of `upstream`, using
    /// `authz` for ext_authz, and waits until it is ready.
    pub async fn start(upstream: SocketAddr, authz: impl Into<AuthzTarget>) -> Envoy {
        Self::start_with(EnvoyOptions::new(upstream, authz)).await
    }

    /// Starts Envoy with explicit options. Panics with Envoy's log on failure.
    pub async fn start_with(opts: EnvoyOptions) -> Envoy {
        let mut last_err = String::new();
        // Free ports can be taken between choosing and binding: retry.
        for _ in 0..3 {
            match Self::start_once(&opts).await {
                Ok(envoy) => return envoy,
                Err(e) => last_err = e,
            }
        }
        panic!("{last_err}")
    }

    async fn start_once(opts: &EnvoyOptions) -> Result<Envoy, String> {
        let (http_port, admin_port) = (free_port(), free_port());
        Self::spawn(
            &render_config(opts, http_port, admin_port),
            http_port,
            admin_port,
        )
        .await
    }

    /// Starts Envoy with a complete bootstrap that the caller renders for
    /// the ports it is given: `render(http_port, admin_port)` must put the
    /// listener clients use on `127.0.0.1:http_port` and the admin endpoint
    /// on `127.0.0.1:admin_port`. Retried with new ports if they were taken.
    /// Panics with Envoy's log on failure.
    pub async fn start_bootstrap(render: impl Fn(u16, u16) -> Value) -> Envoy {
        Self::start_bootstrap_env(render, &[]).await
    }

    /// As [`Envoy::start_bootstrap`], with extra environment variables for
    /// Envoy (e.g. `ENVOY_DYNAMIC_MODULES_SEARCH_PATH`).
    pub async fn start_bootstrap_env(
        render: impl Fn(u16, u16) -> Value,
        env: &[(&str, &std::ffi::OsStr)],
    ) -> Envoy {
        let mut last_err = String::new();
        for _ in 0..3 {
            let (http_port, admin_port) = (free_port(), free_port());
            match Self::spawn_env(&render(http_port, admin_port), http_port, admin_port, env).await
            {
                Ok(envoy) => return envoy,
                Err(e) => last_err = e,
            }
        }
        panic!("{last_err}")
    }

    async fn spawn(config: &Value, http_port: u16, admin_port: u16) -> Result<Envoy, String> {
        Self::spawn_env(config, http_port, admin_port, &[]).await
    }

    async fn spawn_env(
        config: &Value,
        http_port: u16,
        admin_port: u16,
        env: &[(&str, &std::ffi::OsStr)],
    ) -> Result<Envoy, String> {
        let bin = envoy_bin();
        let dir = tempfile::tempdir().map_err(|e| format!("envoy: tempdir: {e}"))?;
        let config_path = dir.path().join("envoy.yaml");
        let yaml = serde_yaml_ng::to_string(config).map_err(|e| format!("envoy: {e}"))?;
        std::fs::write(&config_path, yaml).map_err(|e| format!("envoy: write config: {e}"))?;

        let mut cmd = Command::new(&bin);
        cmd.arg("-c")
            .arg(&config_path)
            // Each Envoy needs its own shared-memory id; the admin port is
            // unique among the Envoys running on this machine.
            .args(["--base-id", &admin_port.to_string()])
            .args(["--concurrency", "1"])
            // The access log reaches the log file within 0.1 s (default: 10 s).
            .args(["--file-flush-interval-msec", "100"])
            // A listener replaced by an update drains for 1 s (default:
            // 600 s) before its filters and their configs are destroyed.
            .args(["--drain-time-s", "1"])
            .args(["--log-level", "warning"])
            // What a dynamic module logs (ward's module: its ABI check,
            // config problems, denies).
            .args(["--component-log-level", "dynamic_modules:info"])
            .envs(env.iter().copied())
            .current_dir(dir.path());
        let mut process = Process::spawn("envoy", cmd, &dir.path().join("envoy.log"))?;
        let admin_addr = SocketAddr::from(([127, 0, 0, 1], admin_port));
        process.wait_ready(admin_addr, "/ready").await?;
        Ok(Envoy {
            http_addr: SocketAddr::from(([127, 0, 0, 1], http_port)),
            admin_addr,
            process,
            dir,
        })
    }

    /// `GET path` through Envoy with extra request headers.
    pub async fn get(&self, path: &str, headers: &[(&str, &str)]) -> Response {
        self.request("GET", path, headers, b"").await
    }

    /// Any request through Envoy. Panics only if no HTTP response comes back.
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Response {
        http::send(self.http_addr, method, path, headers, body)
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "request {method} {path} through Envoy failed: {e}\nEnvoy log:\n{}",
                    self.logs()
                )
            })
    }

    /// A counter or gauge from Envoy's `/stats`, e.g.
    /// `http.ingress_http.ext_authz.denied` (0 if Envoy has not created it).
    pub async fn stat(&self, name: &str) -> u64 {
        let resp = http::get(self.admin_addr, &format!("/stats?filter=^{name}$"))
            .await
            .expect("envoy: GET /stats");
        resp.text()
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}: ")))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    }

    /// Envoy's own log and access log so far.
    pub fn logs(&self) -> String {
        self.process.logs()
    }

    /// Envoy's process id.
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// Waits up to `limit` for Envoy to exit by itself; its exit code
    /// (`None`: still running, or ended by a signal).
    pub async fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        self.process.wait_exit(limit).await
    }

    /// The directory holding this Envoy's config and log.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

/// The Envoy binary: `$WARD_ENVOY_BIN`, else
/// `.venv-envoy/lib/python*/site-packages/envoy/_bin/envoy` in the crate root.
pub fn envoy_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("WARD_ENVOY_BIN") {
        let bin = PathBuf::from(bin);
        assert!(
            bin.is_file(),
            "WARD_ENVOY_BIN={} is not a file; run scripts/test.sh to install Envoy",
            bin.display()
        );
        return bin;
    }
    let lib = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv-envoy/lib");
    std::fs::read_dir(&lib)
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path().join("site-packages/envoy/_bin/envoy"))
        .find(|bin| bin.is_file())
        .unwrap_or_else(|| {
            panic!(
                "Envoy not found: set WARD_ENVOY_BIN or run scripts/test.sh, \
                 which installs it under {}",
                lib.display()
            )
        })
}

/// The Envoy bootstrap for `opts`, as a JSON value (written out as YAML).
pub fn render_config(opts: &EnvoyOptions, http_port: u16, admin_port: u16) -> Value {
    let mut routes = Vec::new();
    // A route whose ext_authz filter gets a per-route setting.
    let route = |prefix: &str, per_route: Value| {
        let mut setting = json!({
            "@type": "type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthzPerRoute"
        });
        if let (Some(obj), Value::Object(extra)) = (setting.as_object_mut(), per_route) {
            obj.extend(extra);
        }
        json!({
            "match": { "prefix": prefix },
            "route": { "cluster": "upstream" },
            "typed_per_filter_config": { "envoy.filters.http.ext_authz": setting }
        })
    };
    if let Some(prefix) = &opts.public_prefix {
        routes.push(route(prefix, json!({ "disabled": true })));
    }
    if let Some(prefix) = &opts.open_prefix {
        let public = json!({ "context_extensions": { "ward_policy": "public" } });
        routes.push(route(prefix, json!({ "check_settings": public })));
    }
    for (prefix, policy) in &opts.policy_routes {
        let named = json!({ "context_extensions": { "ward_policy": policy } });
        routes.push(route(prefix, json!({ "check_settings": named })));
    }
    routes.push(json!({ "match": { "prefix": "/" }, "route": { "cluster": "upstream" } }));

    let timeout = format!("{}s", opts.timeout.as_secs_f64());
    let mut ext_authz = json!({
        "@type": "type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz",
        "transport_api_version": "V3",
        "failure_mode_allow": opts.failure_mode_allow,
        "include_peer_certificate": false,
    });
    if matches!(opts.authz, AuthzTarget::Http(_)) {
        let exact = |names: &[&str]| -> Vec<Value> {
            names.iter().map(|n| json!({ "exact": n })).collect()
        };
        let mut forwarded = exact(&[
            "authorization",
            "cookie",
            "x-api-key",
            "x-session-id",
            "accept",
            "user-agent",
            "accept-language",
            "x-forwarded-for",
            "x-forwarded-proto",
            "x-request-id",
        ]);
        forwarded.extend(
            [
                "x-user-",
                "x-auth-",
                "x_user_",
                "x_auth_",
                "x-api-key-id",
                "x-ward",
                "x_ward",
            ]
            .iter()
            .map(|p| json!({ "prefix": p })),
        );
        ext_authz["allowed_headers"] = json!({ "patterns": forwarded });
        ext_authz["http_service"] = json!({
            "server_uri": { "uri": "http://ward", "cluster": "authz", "timeout": timeout },
            "authorization_response": {
                "allowed_upstream_headers": { "patterns": exact(&[
                    "x-user-id", "x-user-email", "x-user-roles", "x-user-scopes",
                    "x-auth-method", "x-api-key-id", "x-ward-identity",
                ]) }
            }
        });
    } else {
        ext_authz["grpc_service"] = json!({
            "envoy_grpc": { "cluster_name": "authz" },
            "timeout": timeout
        });
    }
    if let Some(code) = opts.status_on_error {
        ext_authz["status_on_error"] = json!({ "code": code });
    }

    let authz_address = match &opts.authz {
        AuthzTarget::Tcp(addr) | AuthzTarget::Http(addr) => socket_address(*addr),
        AuthzTarget::Unix(path) => json!({ "pipe": { "path": path } }),
    };

    json!({
        "admin": { "address": socket_address(SocketAddr::from(([127, 0, 0, 1], admin_port))) },
        "static_resources": {
            "listeners": [{
                "name": "ingress",
                "address": socket_address(SocketAddr::from(([127, 0, 0, 1], http_port))),
                "filter_chains": [{ "filters": [{
                    "name": "envoy.filters.network.http_connection_manager",
                    "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                        "stat_prefix": "ingress_http",
                        "use_remote_address": opts.use_remote_address,
                        "normalize_path": true,
                        "merge_slashes": true,
                        "path_with_escaped_slashes_action": "UNESCAPE_AND_REDIRECT",
                        "access_log": [access_log()],
                        "route_config": {
                            "name": "local",
                            "virtual_hosts": [{ "name": "all", "domains": ["*"], "routes": routes }]
                        },
                        "http_filters": [
                            { "name": "envoy.filters.http.ext_authz", "typed_config": ext_authz },
                            { "name": "envoy.filters.http.router", "typed_config": {
                                "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
                            }}
                        ]
                    }
                }]}]
            }],
            "clusters": [
                cluster("upstream", socket_address(opts.upstream), false),
                cluster("authz", authz_address, !matches!(opts.authz, AuthzTarget::Http(_))),
            ]
        }
    })
}

fn socket_address(addr: SocketAddr) -> Value {
    json!({ "socket_address": { "address": addr.ip().to_string(), "port_value": addr.port() } })
}

fn cluster(name: &str, address: Value, http2: bool) -> Value {
    let mut cluster = json!({
        "name": name,
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [{ "lb_endpoints": [{ "endpoint": { "address": address } }] }]
        }
    });
    if http2 {
        cluster["typed_extension_protocol_options"] = json!({
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                "explicit_http_config": { "http2_protocol_options": {} }
            }
        });
    }
    cluster
}

/// A stdout access log line per request (`ACCESS ...`), with ward's
/// dynamic metadata (`user_id=`, `auth_method=`, `reason=`).
pub fn access_log() -> Value {
    json!({
        "name": "envoy.access_loggers.stdout",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog",
            "log_format": { "text_format_source": { "inline_string":
                "ACCESS %REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %RESPONSE_CODE% %RESPONSE_FLAGS% \
                 user_id=%DYNAMIC_METADATA(envoy.filters.http.ext_authz:user_id)% \
                 auth_method=%DYNAMIC_METADATA(envoy.filters.http.ext_authz:auth_method)% \
                 reason=%DYNAMIC_METADATA(envoy.filters.http.ext_authz:reason)%\n"
            }}
        }
    })
}
