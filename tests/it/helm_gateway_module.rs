//! The Helm chart's `gateway` mode with `gateway.module.enabled`, started
//! for real: ward inside Envoy, no ward container. The test plays the
//! pod: it runs the rendered init container's command (`ward
//! install-module DIR`, the binary with the module beside it, as in the
//! image) into a directory standing in for the `emptyDir`, starts a real
//! Envoy on the rendered bootstrap with `ENVOY_DYNAMIC_MODULES_SEARCH_PATH`
//! as the rendered Envoy container sets it (pointing at that directory),
//! a real redis-server as `redis.url`, and sends requests through it.
//!
//! Rewritten after rendering, as in `helm_gateway.rs`: only the listener
//! and admin addresses (loopback, free ports) and the search path's
//! directory.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::helm_gateway::{config_map, for_loopback, helm_template};
use crate::support;

use jsonwebtoken::Algorithm;
use serde_json::Value;
use std::path::Path;
use std::process::Command;
use support::echo::{Echo, header_values};
use support::envoy::Envoy;
use support::redis::RedisServer;
use support::tokens::{self, HMAC_SECRET};

/// The pod spec of the rendered Deployment.
fn pod_spec(docs: &[Value]) -> &Value {
    docs.iter()
        .find(|d| d["kind"] == "Deployment")
        .map(|d| &d["spec"]["template"]["spec"])
        .expect("a Deployment")
}

/// Where the container mounts `volume`.
fn mount<'a>(container: &'a Value, volume: &str) -> &'a str {
    container["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == volume)
        .and_then(|m| m["mountPath"].as_str())
        .unwrap_or_else(|| panic!("{} does not mount {volume}", container["name"]))
}

/// The pod's shape: Envoy alone, fed by the install-module init container
/// through the `ward-module` emptyDir. Returns the init container's args.
fn assert_module_pod(spec: &Value) -> Vec<String> {
    let names: Vec<&str> = spec["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["envoy"], "no ward container with the module");
    let init = &spec["initContainers"][0];
    assert_eq!(init["name"], "install-module");
    assert!(
        init["image"].as_str().unwrap().starts_with("ward:"),
        "{init}"
    );
    let args: Vec<String> = serde_json::from_value(init["args"].clone()).unwrap();
    assert_eq!(args[0], "install-module");
    let dir = mount(init, "ward-module");
    assert_eq!(args[1], dir, "install-module writes into the emptyDir");
    let envoy = &spec["containers"][0];
    assert_eq!(
        mount(envoy, "ward-module"),
        dir,
        "Envoy mounts the same dir"
    );
    let search = envoy["env"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "ENVOY_DYNAMIC_MODULES_SEARCH_PATH")
        .expect("ENVOY_DYNAMIC_MODULES_SEARCH_PATH");
    assert_eq!(search["value"], dir);
    let volume = spec["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "ward-module")
        .unwrap();
    assert!(volume["emptyDir"].is_object(), "{volume}");
    args
}

/// Runs the init container's `args` with the image's layout (`ward` and
/// `libward_envoy.so` side by side, as in the target directory), its
/// directory replaced by `into`.
fn run_init_container(args: &[String], into: &Path) {
    let ward = support::module::dir().join("ward");
    let out = Command::new(ward).arg(&args[0]).arg(into).output().unwrap();
    assert!(
        out.status.success(),
        "install-module: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(into.join("libward_envoy.so").is_file());
}

fn values(echo: &Echo, redis: &RedisServer, mount: &Path) -> String {
    format!(
        r#"
mode: gateway
gateway:
  backend: {{host: "127.0.0.1", port: {port}}}
  routes:
    - {{path: /healthz, authz: false}}
    - {{prefix: /public/, policy: public}}
    - {{prefix: /, policy: required}}
  module: {{enabled: true}}
redis: {{mode: standalone, url: "{url}"}}
secrets: {{existingSecret: ward-secrets, mountPath: "{mount}"}}
config:
  jwt:
    keys: [{{alg: HS256, secret: {{file: "{mount}/hmac"}}}}]
"#,
        port = echo.addr.port(),
        url = redis.url(),
        mount = mount.display()
    )
}

#[tokio::test]
async fn gateway_module_mode_renders_a_working_gateway_with_ward_inside_envoy() {
    let echo = Echo::start().await;
    let redis = RedisServer::start().await;
    let secrets = tempfile::tempdir().unwrap();
    std::fs::write(secrets.path().join("hmac"), format!("{HMAC_SECRET}\n")).unwrap();
    let rendered = helm_template(&values(&echo, &redis, secrets.path()), secrets.path());

    let args = assert_module_pod(pod_spec(&rendered));
    let envoy_yaml = config_map(&rendered, "-envoy", "envoy.yaml");
    let config: Value = serde_yaml_ng::from_str(&envoy_yaml).unwrap();
    let clusters = config["static_resources"]["clusters"].as_array().unwrap();
    assert!(clusters.iter().all(|c| c["name"] != "ward"), "no ward hop");

    let empty_dir = tempfile::tempdir().unwrap();
    run_init_container(&args, empty_dir.path());
    // No ward cluster to point anywhere: for_loopback leaves it alone.
    let unused = std::net::SocketAddr::from(([127, 0, 0, 1], 9));
    let envoy = Envoy::start_bootstrap_env(
        |http, admin| for_loopback(&config, http, support::free_port(), admin, unused),
        &[(
            "ENVOY_DYNAMIC_MODULES_SEARCH_PATH",
            empty_dir.path().as_os_str(),
        )],
    )
    .await;
    assert!(
        envoy.logs().contains("Dynamic module ABI version"),
        "{}",
        envoy.logs()
    );

    // A JWT, decided inside Envoy; a forged identity header replaced.
    let token = tokens::sign(Algorithm::HS256, None, &tokens::claims("alice"));
    let bearer = format!("Bearer {token}");
    let resp = envoy
        .get(
            "/orders/1",
            &[("authorization", &bearer), ("x-user-id", "mallory")],
        )
        .await;
    assert_eq!(resp.status, 200, "{}\n{}", resp.text(), envoy.logs());
    assert_eq!(header_values(&resp.json(), "x-user-id"), ["alice"]);

    // A session in the real Redis the chart's redis.url names.
    let sid = support::authz::session_id();
    let expires = (tokens::now() + 3600).to_string();
    let fields = [("user_id", "dana"), ("expires_at", expires.as_str())];
    support::authz::hset(&redis, &format!("session:{sid}"), &fields);
    let cookie = format!("session_id={sid}");
    let resp = envoy.get("/orders/2", &[("cookie", &cookie)]).await;
    assert_eq!(resp.status, 200, "{}\n{}", resp.text(), envoy.logs());
    assert_eq!(header_values(&resp.json(), "x-user-id"), ["dana"]);

    // No credential: ward's 401, and the backend never sees it.
    let hits = echo.hits();
    let resp = envoy.get("/orders/3", &[("x-user-id", "mallory")]).await;
    assert_eq!(resp.status, 401, "{}", resp.text());
    assert_eq!(resp.json()["reason"], "missing_credential");
    assert_eq!(echo.hits(), hits);

    // The route's policy (per-route config): public, forged headers gone.
    let resp = envoy.get("/public/a", &[("x-user-id", "mallory")]).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert!(header_values(&resp.json(), "x-user-id").is_empty());

    // ward disabled on the route: Envoy still drops forged identity.
    let resp = envoy
        .get("/healthz", &[("x-user-id", "mallory"), ("x_user_id", "m")])
        .await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    let seen = resp.json();
    assert!(header_values(&seen, "x-user-id").is_empty(), "{seen}");
    assert!(header_values(&seen, "x_user_id").is_empty(), "{seen}");
}
