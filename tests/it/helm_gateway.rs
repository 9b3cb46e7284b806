//! The Helm chart's `gateway` mode, started for real: `helm template`
//! renders Envoy's and ward's configs; this test starts exactly those, on
//! loopback, in front of an echo upstream, and sends one allowed and one
//! denied request through Envoy.
//!
//! What the chart is given (values, not rewrites): the backend
//! (`gateway.backend` = the echo upstream on 127.0.0.1), the secrets mount
//! path (a temporary directory holding the HMAC key, standing in for the
//! mounted `existingSecret`), and a `config.jwt.keys` entry reading it.
//!
//! What is rewritten after rendering, and nothing else:
//! - ward's config: `listen.grpc` and `listen.admin` become free 127.0.0.1
//!   ports (the chart binds 127.0.0.1:9001 and 0.0.0.0:9901);
//! - Envoy's config: each listener's `socket_address` becomes 127.0.0.1 on a
//!   free port (the chart binds 0.0.0.0:8080 and 0.0.0.0:8081), the admin
//!   port becomes a free port (the address stays 127.0.0.1), and the `ward`
//!   cluster's endpoint becomes ward's gRPC address (the chart's is
//!   127.0.0.1:9001, the same pod).
//!
//! Helm comes from `WARD_HELM_BIN` (set by scripts/test.sh), else
//! `.tools/helm` in the crate root.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use jsonwebtoken::Algorithm;
use serde::Deserialize;
use serde_json::{Value, json};
use support::echo::{Echo, header_values};
use support::envoy::Envoy;
use support::tokens::{self, HMAC_SECRET};
use support::ward::Ward;
use support::{free_port, http};

#[tokio::test]
async fn gateway_mode_renders_a_working_authenticating_gateway() {
    let echo = Echo::start().await;
    let secrets = tempfile::tempdir().unwrap();
    std::fs::write(secrets.path().join("hmac"), format!("{HMAC_SECRET}\n")).unwrap();
    let mount = secrets.path().display();
    let values = format!(
        r#"
mode: gateway
gateway:
  backend: {{host: "127.0.0.1", port: {port}}}
  routes:
    - {{path: /healthz, authz: false}}
    - {{prefix: /, policy: required}}
secrets: {{existingSecret: ward-secrets, mountPath: "{mount}"}}
config:
  jwt:
    keys: [{{alg: HS256, secret: {{file: "{mount}/hmac"}}}}]
"#,
        port = echo.addr.port()
    );
    let rendered = helm_template(&values, secrets.path());
    let ward_yaml = config_map(&rendered, "-config", "ward.yaml");
    let envoy_yaml = config_map(&rendered, "-envoy", "envoy.yaml");

    // The rendered Envoy config keeps the settings ward relies on.
    let envoy_config: Value = serde_yaml_ng::from_str(&envoy_yaml).unwrap();
    assert_rendered_envoy_is_safe(&envoy_config, echo.addr.port());

    let ward = Ward::start(&ward_yaml).await;
    let health_port = Mutex::new(0);
    let envoy = Envoy::start_bootstrap(|http_port, admin_port| {
        let health = free_port();
        *health_port.lock().unwrap() = health;
        for_loopback(&envoy_config, http_port, health, admin_port, ward.grpc_addr)
    })
    .await;

    // Allowed: a valid token. A forged identity header is replaced.
    let token = tokens::sign(Algorithm::HS256, None, &tokens::claims("alice"));
    let resp = envoy
        .get(
            "/orders/42",
            &[
                ("authorization", &format!("Bearer {token}")),
                ("x-user-id", "mallory"),
                ("x-user-roles", "admin"),
            ],
        )
        .await;
    assert_eq!(resp.status, 200, "allowed request: {}", resp.text());
    let seen = resp.json();
    assert_eq!(seen["path"], "/orders/42");
    assert_eq!(header_values(&seen, "x-user-id"), ["alice"]);
    assert_eq!(header_values(&seen, "x-auth-method"), ["jwt"]);
    assert_eq!(header_values(&seen, "x-user-roles"), ["reader"]);
    assert_eq!(echo.hits(), 1);

    // Denied: no credential. The backend never sees it.
    let resp = envoy.get("/orders/42", &[("x-user-id", "mallory")]).await;
    assert_eq!(resp.status, 401, "denied request: {}", resp.text());
    assert!(
        resp.header("www-authenticate")
            .is_some_and(|c| c.starts_with("Bearer")),
        "a 401 carries a Bearer challenge: {:?}",
        resp.headers
    );
    assert_eq!(resp.json()["reason"], "missing_credential");
    assert_eq!(echo.hits(), 1, "a denied request reached the backend");

    // The route with ext_authz off still drops forged identity headers.
    let resp = envoy
        .get("/healthz", &[("x-user-id", "mallory"), ("x_user_id", "m")])
        .await;
    assert_eq!(resp.status, 200);
    let seen = resp.json();
    assert!(header_values(&seen, "x-user-id").is_empty(), "{seen}");
    assert!(header_values(&seen, "x_user_id").is_empty(), "{seen}");

    // Envoy's health listener answers the kubelet's readiness probe.
    let health = std::net::SocketAddr::from(([127, 0, 0, 1], *health_port.lock().unwrap()));
    let resp = http::get(health, "/ready").await.unwrap();
    assert_eq!(resp.status, 200, "health listener: {}", resp.text());

    // Every metric the Grafana dashboard queries is one ward exports.
    let metrics = http::get(ward.admin_addr, "/metrics").await.unwrap().text();
    assert_dashboard_matches(&metrics);
}

/// `helm template` with `values`; every rendered document.
pub(crate) fn helm_template(values: &str, dir: &Path) -> Vec<Value> {
    let values_path = dir.join("values.yaml");
    std::fs::write(&values_path, values).unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(helm_bin())
        .args(["template", "ward", "helm/ward", "--namespace", "ward", "-f"])
        .arg(&values_path)
        .current_dir(root)
        .output()
        .expect("run helm");
    assert!(
        out.status.success(),
        "helm template failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|doc| Value::deserialize(doc).unwrap())
        .filter(|doc| !doc.is_null())
        .collect()
}

/// Helm: `$WARD_HELM_BIN`, else `.tools/helm` (scripts/test.sh installs it).
fn helm_bin() -> PathBuf {
    let bin = std::env::var_os("WARD_HELM_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".tools/helm"));
    assert!(
        bin.is_file(),
        "Helm not found at {}: run scripts/test.sh (it installs .tools/helm) or set WARD_HELM_BIN",
        bin.display()
    );
    bin
}

/// The `key` of the ConfigMap whose name ends with `suffix`.
pub(crate) fn config_map(docs: &[Value], suffix: &str, key: &str) -> String {
    docs.iter()
        .find(|d| {
            d["kind"] == "ConfigMap"
                && d["metadata"]["name"]
                    .as_str()
                    .is_some_and(|n| n.ends_with(suffix))
        })
        .and_then(|d| d["data"][key].as_str())
        .unwrap_or_else(|| panic!("no ConfigMap *{suffix} with {key} in the rendered chart"))
        .to_owned()
}

fn assert_rendered_envoy_is_safe(config: &Value, backend_port: u16) {
    let listeners = config["static_resources"]["listeners"].as_array().unwrap();
    let hcm = &listeners[0]["filter_chains"][0]["filters"][0]["typed_config"];
    assert_eq!(hcm["normalize_path"], true);
    assert_eq!(hcm["merge_slashes"], true);
    assert_eq!(
        hcm["path_with_escaped_slashes_action"],
        "UNESCAPE_AND_REDIRECT"
    );
    let ext_authz = &hcm["http_filters"][0];
    assert_eq!(ext_authz["name"], "envoy.filters.http.ext_authz");
    assert_eq!(ext_authz["typed_config"]["failure_mode_allow"], false);
    assert!(ext_authz["typed_config"]["grpc_service"]["timeout"].is_string());
    let backend = cluster_address(config, "backend");
    assert_eq!(backend["address"], "127.0.0.1");
    assert_eq!(backend["port_value"], backend_port);
}

pub(crate) fn cluster_address<'a>(config: &'a Value, name: &str) -> &'a Value {
    config["static_resources"]["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .map(|c| &c["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"])
        .unwrap_or_else(|| panic!("no cluster {name}"))
}

/// The rendered Envoy config with only its addresses and ports moved to
/// loopback (see the module docs).
pub(crate) fn for_loopback(
    rendered: &Value,
    http_port: u16,
    health_port: u16,
    admin_port: u16,
    ward: std::net::SocketAddr,
) -> Value {
    let mut config = rendered.clone();
    config["admin"]["address"]["socket_address"]["port_value"] = json!(admin_port);
    for listener in config["static_resources"]["listeners"]
        .as_array_mut()
        .unwrap()
    {
        let port = match listener["name"].as_str() {
            Some("gateway") => http_port,
            Some("health") => health_port,
            other => panic!("unexpected listener {other:?} in the rendered Envoy config"),
        };
        listener["address"]["socket_address"] = json!({"address": "127.0.0.1", "port_value": port});
    }
    for cluster in config["static_resources"]["clusters"]
        .as_array_mut()
        .unwrap()
    {
        if cluster["name"] == "ward" {
            cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]
                ["socket_address"] =
                json!({"address": ward.ip().to_string(), "port_value": ward.port()});
        }
    }
    config
}

/// Every `ward_*` metric in the dashboard's queries is exported, and every
/// label value it matches (`label="v"`, `label=~"a|b"`) occurs on it.
/// `namespace` and `pod` come from Prometheus, not from ward.
fn assert_dashboard_matches(metrics: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("helm/ward/dashboards/ward.json");
    let dashboard: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut checked = 0;
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            for (name, matchers) in selectors(expr) {
                let lines: Vec<&str> = metrics
                    .lines()
                    .filter(|l| {
                        l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} "))
                    })
                    .collect();
                assert!(
                    !lines.is_empty(),
                    "dashboard queries {name}, which ward does not export"
                );
                for (label, values) in matchers {
                    if label == "namespace" || label == "pod" {
                        continue;
                    }
                    for value in values {
                        let needle = format!("{label}=\"{value}\"");
                        assert!(
                            lines.iter().any(|l| l.contains(&needle)),
                            "dashboard matches {name}{{{needle}}}, which ward never exports"
                        );
                    }
                }
                checked += 1;
            }
        }
    }
    assert!(
        checked >= 10,
        "only {checked} selectors found in the dashboard"
    );
}

/// A label and the values a selector matches it against.
type Matcher = (String, Vec<String>);

/// `(metric, matchers)` for each `ward_*` selector in a PromQL expression.
fn selectors(expr: &str) -> Vec<(String, Vec<Matcher>)> {
    let mut found = Vec::new();
    let mut rest = expr;
    while let Some(start) = rest.find("ward_") {
        let tail = &rest[start..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        let name = tail[..end].to_owned();
        let mut matchers = Vec::new();
        if let Some(body) = tail[end..].strip_prefix('{') {
            let close = body.find('}').expect("unclosed selector");
            for m in body[..close].split(',') {
                let m = m.trim();
                let (label, value) = m
                    .split_once("=~")
                    .or_else(|| m.split_once('='))
                    .unwrap_or_else(|| panic!("cannot read matcher {m:?}"));
                let value = value.trim_matches('"');
                if value.contains('$') {
                    continue;
                }
                let values = value.split('|').map(str::to_owned).collect();
                matchers.push((label.trim().to_owned(), values));
            }
        }
        found.push((name, matchers));
        rest = &tail[end..];
    }
    found
}
