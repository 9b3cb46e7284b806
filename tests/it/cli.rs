//! The `ward` command line as a user meets it: `--version`, `--help`,
//! `check-config` on good and bad files, secrets kept out of output, and a
//! clean exit on SIGTERM.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use support::cli::ward;

fn write(dir: &tempfile::TempDir, yaml: &str) -> String {
    let path = dir.path().join("ward.yaml");
    std::fs::write(&path, yaml).unwrap();
    path.display().to_string()
}

#[test]
fn version_and_help() {
    let (ok, text) = ward(&["--version"]);
    assert!(ok);
    assert!(text.contains(env!("CARGO_PKG_VERSION")));
    let (ok, text) = ward(&["--help"]);
    assert!(ok);
    for word in ["serve", "check-config", "ext_authz"] {
        assert!(text.contains(word), "--help lacks {word}: {text}");
    }
}

#[test]
fn check_config_accepts_a_good_file_and_lists_every_problem_of_a_bad_one() {
    let dir = tempfile::tempdir().unwrap();
    let good = write(
        &dir,
        "jwt: {keys: [{alg: ES256, pem_file: tests/fixtures/keys/ec256.pub}]}\n",
    );
    let (ok, text) = ward(&["check-config", &good]);
    assert!(ok, "{text}");

    let bad = write(
        &dir,
        "jwt:\n  max_token_bytes: 1\n  keys:\n    - {alg: HS256, secret: {value: short-secret-value}}\n    - {alg: RS256, pem_file: /nope.pem}\ncache: {max_ttl: 0s}\n",
    );
    let (ok, text) = ward(&["check-config", &bad]);
    assert!(!ok);
    for path in [
        "jwt.max_token_bytes",
        "jwt.keys[0]",
        "jwt.keys[1]",
        "cache.max_ttl",
    ] {
        assert!(text.contains(path), "missing {path} in: {text}");
    }
    assert!(
        !text.contains("short-secret-value"),
        "a secret was printed: {text}"
    );

    let typo = write(&dir, "jwt: {issuer: x}\n");
    let (ok, text) = ward(&["check-config", &typo]);
    assert!(!ok);
    assert!(text.contains("jwt") && text.contains("issuer"), "{text}");
}

#[test]
fn serve_refuses_an_invalid_config_without_starting() {
    let dir = tempfile::tempdir().unwrap();
    let bad = write(
        &dir,
        "sessions: {enabled: false}\napi_keys: {enabled: false}\n",
    );
    let (ok, text) = ward(&["serve", "--config", &bad]);
    assert!(!ok);
    assert!(text.contains("jwt"), "{text}");
}

#[tokio::test]
async fn sigterm_drains_and_exits_cleanly() {
    let yaml = "log: {format: json}\njwt: {keys: [{alg: ES256, pem_file: tests/fixtures/keys/ec256.pub}]}\n";
    let mut ward = support::ward::Ward::start(yaml).await;
    ward.signal("TERM");
    let code = ward.wait_exit(std::time::Duration::from_secs(10)).await;
    assert_eq!(code, Some(0), "logs: {}", ward.logs());
    let logs = ward.logs();
    assert!(
        logs.contains("\"message\":\"ward stopped\""),
        "JSON logs by default: {logs}"
    );
}

#[tokio::test]
async fn sigterm_first_reports_not_ready_while_still_answering() {
    let yaml = "runtime: {drain_delay: 1s}\njwt: {keys: [{alg: ES256, pem_file: tests/fixtures/keys/ec256.pub}]}\n";
    let mut ward = support::ward::Ward::start(yaml).await;
    let admin = ward.admin_addr;
    ward.signal("TERM");
    // Real time: the binary's drain_delay (1 s); this lets SIGTERM land within it.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let readyz = support::http::get(admin, "/readyz").await.unwrap();
    assert_eq!(readyz.status, 503, "not ready while draining");
    assert_eq!(readyz.text().trim(), "draining");
    let healthz = support::http::get(admin, "/healthz").await.unwrap();
    assert_eq!(healthz.status, 200, "still alive while draining");
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", ward.grpc_addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    for service in ["", "envoy.service.auth.v3.Authorization"] {
        let status = health
            .check(tonic_health::pb::HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner()
            .status;
        assert_eq!(status, 2, "{service:?} must be NOT_SERVING while draining");
    }
    let code = ward.wait_exit(std::time::Duration::from_secs(10)).await;
    assert_eq!(code, Some(0), "logs: {}", ward.logs());
}
