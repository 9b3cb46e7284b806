//! `envoy/module.yaml`, the shipped config that loads ward as an Envoy
//! dynamic module, started for real with the module the test harness
//! builds: the file a user copies must do what its comments say. Only
//! addresses change (listener 8080, admin 9903, backend 8000, as the
//! file has them) and the seed file's path, which the file gives relative
//! to Envoy's working directory (the crate root when run as documented).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use jsonwebtoken::{EncodingKey, Header};
use support::echo::{Echo, header_values};
use support::envoy::Envoy;

/// The demo secret and key id the file names (public, demo only).
const DEMO_SECRET: &str = "ward-demo-secret-DO-NOT-USE-IN-PRODUCTION";

fn demo_bearer(sub: &str) -> String {
    let mut header = Header::new(jsonwebtoken::Algorithm::HS256);
    header.kid = Some("demo".into());
    let claims = serde_json::json!({"sub": sub, "exp": support::tokens::now() + 600});
    let key = EncodingKey::from_secret(DEMO_SECRET.as_bytes());
    format!(
        "Bearer {}",
        jsonwebtoken::encode(&header, &claims, &key).unwrap()
    )
}

async fn start(echo: &Echo) -> Envoy {
    let root = env!("CARGO_MANIFEST_DIR");
    let text = std::fs::read_to_string(format!("{root}/envoy/module.yaml")).unwrap();
    Envoy::start_bootstrap_env(
        |http, admin| {
            let yaml = text
                .replace("port_value: 8080", &format!("port_value: {http}"))
                .replace("address: 0.0.0.0", "address: 127.0.0.1")
                .replace("port_value: 9903", &format!("port_value: {admin}"))
                .replace(
                    "port_value: 8000",
                    &format!("port_value: {}", echo.addr.port()),
                )
                .replace(
                    "seed_file: examples/seed.yaml",
                    &format!("seed_file: {root}/examples/seed.yaml"),
                );
            serde_yaml_ng::from_str(&yaml).unwrap()
        },
        &[(
            "ENVOY_DYNAMIC_MODULES_SEARCH_PATH",
            support::module::dir().as_os_str(),
        )],
    )
    .await
}

#[tokio::test]
async fn module_yaml_loads_the_module_and_decides_every_credential_kind() {
    let echo = Echo::start().await;
    let envoy = start(&echo).await;

    let demo = [
        ("authorization", demo_bearer("erin")),
        (
            "cookie",
            "session_id=112f551c-d6fe-4e67-a818-01deee0e47c9".into(),
        ),
        (
            "x-api-key",
            "ward_DemoKeyForLocalTestingOnly0000002b9ypC".into(),
        ),
    ];
    for ((name, value), user) in demo.iter().zip(["erin", "alice", "reports-bot"]) {
        let resp = envoy
            .get(
                "/api/orders",
                &[(name, value.as_str()), ("x-user-id", "root")],
            )
            .await;
        assert_eq!(
            resp.status,
            200,
            "{name}: {}\n{}",
            resp.text(),
            envoy.logs()
        );
        assert_eq!(header_values(&resp.json(), "x-user-id"), [user], "{name}");
    }

    let hits = echo.hits();
    let resp = envoy.get("/api/orders", &[("x-user-id", "root")]).await;
    assert_eq!(resp.status, 401, "{}", resp.text());
    assert_eq!(resp.json()["reason"], "missing_credential");
    assert!(resp.header("www-authenticate").is_some());
    assert_eq!(echo.hits(), hits, "a denied request reached the backend");

    // /public/: the route's per-route config selects `public`.
    let resp = envoy.get("/public/x", &[("x-user-roles", "admin")]).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert!(header_values(&resp.json(), "x-user-roles").is_empty());
}
