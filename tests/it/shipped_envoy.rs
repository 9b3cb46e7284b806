//! Every Envoy config shipped in `envoy/`, started for real: the files a
//! user copies must do what their comments say. Only addresses change, by
//! the convention every file follows: listener 8080, admin 9902, backend
//! 8000, ward gRPC 9001, ward HTTP 9002, ward socket
//! /var/run/ward/ward.sock.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use jsonwebtoken::Algorithm;
use support::echo::{Echo, header_values};
use support::envoy::Envoy;
use support::tokens::{claims, sign};
use support::ward::Ward;

const WARD: &str = "log: {format: text, level: info}\n\
    listen: {unix_socket: \"{{tmp}}/ward.sock\"}\n\
    jwt:\n  keys:\n    - {kid: r1, alg: RS256, pem_file: tests/fixtures/keys/rsa.pub}\n";

async fn start(file: &str) -> (Echo, Ward, Envoy) {
    let echo = Echo::start().await;
    let ward = Ward::start(WARD).await;
    let text = std::fs::read_to_string(file).unwrap();
    let socket = ward.dir().join("ward.sock");
    let envoy = Envoy::start_bootstrap(|http, admin| {
        let yaml = text
            .replace("port_value: 8080", &format!("port_value: {http}"))
            .replace("address: 0.0.0.0", "address: 127.0.0.1")
            .replace("port_value: 9902", &format!("port_value: {admin}"))
            .replace(
                "port_value: 8000",
                &format!("port_value: {}", echo.addr.port()),
            )
            .replace(
                "port_value: 9001",
                &format!("port_value: {}", ward.grpc_addr.port()),
            )
            .replace(
                "port_value: 9002",
                &format!("port_value: {}", ward.http_addr.port()),
            )
            .replace("/var/run/ward/ward.sock", &socket.display().to_string());
        serde_yaml_ng::from_str(&yaml).unwrap()
    })
    .await;
    (echo, ward, envoy)
}

fn bearer(sub: &str) -> String {
    format!(
        "Bearer {}",
        sign(Algorithm::RS256, Some("r1"), &claims(sub))
    )
}

/// What every shipped config must do: an allowed request reaches the
/// backend with ward's identity only; a request without a credential is
/// a 401 with a challenge; the health route works without ward's
/// verdict and carries no forged identity.
async fn common(file: &str) -> (Echo, Ward, Envoy) {
    let (echo, ward, envoy) = start(file).await;
    let auth = bearer("alice");
    let resp = envoy
        .get(
            "/api/orders",
            &[
                ("authorization", &auth),
                ("x-user-id", "root"),
                ("x_user_id", "root"),
                ("x-user-admin", "true"),
                ("x-auth-method", "forged"),
            ],
        )
        .await;
    assert_eq!(resp.status, 200, "{file}: {}", resp.text());
    let seen = resp.json();
    assert_eq!(header_values(&seen, "x-user-id"), vec!["alice"], "{file}");
    assert_eq!(header_values(&seen, "x-auth-method"), vec!["jwt"], "{file}");
    assert!(header_values(&seen, "x_user_id").is_empty(), "{file}");
    assert!(header_values(&seen, "x-user-admin").is_empty(), "{file}");

    let resp = envoy.get("/api/orders", &[("x-user-id", "root")]).await;
    assert_eq!(resp.status, 401, "{file}");
    assert_eq!(resp.json()["reason"], "missing_credential", "{file}");
    assert!(resp.header("www-authenticate").is_some(), "{file}");

    let resp = envoy
        .get("/healthz", &[("x-user-id", "root"), ("x_user_id", "root")])
        .await;
    assert_eq!(resp.status, 200, "{file}");
    let seen = resp.json();
    assert!(header_values(&seen, "x-user-id").is_empty(), "{file}");
    assert!(header_values(&seen, "x_user_id").is_empty(), "{file}");
    (echo, ward, envoy)
}

#[tokio::test]
async fn front_proxy_grpc() {
    let (_echo, _ward, envoy) = common("envoy/envoy.yaml").await;
    // `ward_policy: public` under /public/: no credential, forged removed.
    let resp = envoy.get("/public/x", &[("x-user-roles", "admin")]).await;
    assert_eq!(resp.status, 200);
    assert!(header_values(&resp.json(), "x-user-roles").is_empty());
}

#[tokio::test]
async fn sidecar_over_a_unix_socket() {
    common("envoy/sidecar-uds.yaml").await;
}

#[tokio::test]
async fn http_mode() {
    common("envoy/http-mode.yaml").await;
}

#[tokio::test]
async fn per_route_policies() {
    let (_echo, _ward, envoy) = common("envoy/per-route.yaml").await;
    let resp = envoy.get("/public/x", &[("x-user-id", "root")]).await;
    assert_eq!(resp.status, 200);
    assert!(header_values(&resp.json(), "x-user-id").is_empty());
    // `optional`: anonymous without a credential, identity with one.
    let resp = envoy.get("/catalog/1", &[("x-user-id", "root")]).await;
    assert_eq!(resp.status, 200);
    assert!(header_values(&resp.json(), "x-user-id").is_empty());
    let resp = envoy
        .get("/catalog/1", &[("authorization", &bearer("bob"))])
        .await;
    assert_eq!(resp.status, 200);
    assert_eq!(header_values(&resp.json(), "x-user-id"), vec!["bob"]);
}
