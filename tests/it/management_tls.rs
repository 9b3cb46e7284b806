//! The management API over mTLS (`management.auth.tls`), against a real
//! `ward serve` and `redis-server`: a client certificate from the trusted
//! CA that names an allowed identity is a caller; one naming another
//! identity, one from another CA, and no certificate at all are not; with
//! a token file as well, the bearer token remains a second way in. The
//! certificates are `tests/fixtures/management/` (its README).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::management::TOKEN;
use crate::support;

use support::redis::RedisServer;
use support::ward::Ward;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};
use ward::server::management::proto::admin_service_client::AdminServiceClient;
use ward::server::management::proto::*;

const DIR: &str = "tests/fixtures/management";

fn config(redis: &RedisServer, token_file: Option<&std::path::Path>) -> String {
    let token = token_file.map_or(String::new(), |p| {
        format!("    token_file: \"{}\"\n", p.display())
    });
    format!(
        "log: {{format: text, level: info}}\n\
         store:\n  redis: {{url: \"{}\"}}\n\
         management:\n  auth:\n{token}    tls:\n      cert: {DIR}/server.pem\n      key: {DIR}/server.key\n      client_ca: {DIR}/ca.pem\n      allowed_identities: [login.auth.svc]\n",
        redis.url()
    )
}

fn read(name: &str) -> Vec<u8> {
    std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(DIR)
            .join(name),
    )
    .unwrap()
}

/// A client over TLS, presenting the certificate `client` (`login`, ...)
/// if any; the connection error when the handshake is refused.
async fn client(
    ward: &Ward,
    client: Option<&str>,
) -> Result<AdminServiceClient<Channel>, tonic::transport::Error> {
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(read("ca.pem")))
        .domain_name("localhost");
    if let Some(name) = client {
        tls = tls.identity(Identity::from_pem(
            read(&format!("{name}.pem")),
            read(&format!("{name}.key")),
        ));
    }
    let url = format!("https://{}", ward.management_addr.unwrap());
    let channel = Channel::from_shared(url)
        .unwrap()
        .tls_config(tls)?
        .connect()
        .await?;
    Ok(AdminServiceClient::new(channel))
}

fn list() -> ListSessionsRequest {
    ListSessionsRequest {
        user_id: "alice".into(),
    }
}

/// Whether `code` is a connection torn down in the handshake, not an
/// answer: the server sends no status then (with TLS 1.3 the client
/// learns that its certificate was refused only at its first call).
fn handshake_refused(code: tonic::Code) -> bool {
    matches!(
        code,
        tonic::Code::Unavailable | tonic::Code::Cancelled | tonic::Code::Unknown
    )
}

/// The call's status code, or `Unavailable` for a refused handshake.
async fn code(
    client: Result<AdminServiceClient<Channel>, tonic::transport::Error>,
    req: tonic::Request<ListSessionsRequest>,
) -> tonic::Code {
    match client {
        Err(_) => tonic::Code::Unavailable,
        Ok(mut c) => c
            .list_sessions(req)
            .await
            .map_or_else(|s| s.code(), |_| tonic::Code::Ok),
    }
}

fn with_token<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
}

#[tokio::test]
async fn an_allowed_client_certificate_is_a_caller_and_no_other_is() {
    let redis = RedisServer::start().await;
    let ward = Ward::start(&config(&redis, None)).await;
    let mut login = client(&ward, Some("login")).await.unwrap();
    let created = login
        .create_session(CreateSessionRequest {
            user_id: "alice".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!created.session_id.is_empty());
    assert_eq!(
        code(Ok(login), tonic::Request::new(list())).await,
        tonic::Code::Ok
    );

    let intruder = client(&ward, Some("intruder")).await;
    assert_eq!(
        code(intruder, tonic::Request::new(list())).await,
        tonic::Code::Unauthenticated
    );
    // Another CA's certificate, even naming an allowed identity, and no
    // certificate: the handshake itself fails.
    for refused in ["stranger", ""] {
        let c = client(&ward, Some(refused).filter(|n| !n.is_empty())).await;
        let got = code(c, tonic::Request::new(list())).await;
        assert!(handshake_refused(got), "{refused:?}: {got:?}");
    }
    // Without a token file, a bearer token is no way in.
    let intruder = client(&ward, Some("intruder")).await;
    assert_eq!(
        code(intruder, with_token(list(), TOKEN)).await,
        tonic::Code::Unauthenticated
    );

    let logs = ward.logs();
    let audit = logs
        .lines()
        .find(|l| l.contains("management call") && l.contains("CreateSession"))
        .unwrap_or_else(|| panic!("{logs}"));
    assert!(
        audit.contains("caller=\"mtls\"") && audit.contains("identity=\"login.auth.svc\""),
        "{audit}"
    );
    assert!(
        logs.contains("the client certificate names no allowed identity"),
        "{logs}"
    );
}

#[tokio::test]
async fn with_a_token_file_as_well_the_bearer_token_still_lets_in() {
    let redis = RedisServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, TOKEN).unwrap();
    let ward = Ward::start(&config(&redis, Some(&token_file))).await;
    // No client certificate: the handshake passes, the token decides.
    assert_eq!(
        code(client(&ward, None).await, with_token(list(), TOKEN)).await,
        tonic::Code::Ok
    );
    assert_eq!(
        code(client(&ward, None).await, tonic::Request::new(list())).await,
        tonic::Code::Unauthenticated
    );
    // A certificate naming no allowed identity is no credential, but the
    // token still is.
    assert_eq!(
        code(
            client(&ward, Some("intruder")).await,
            with_token(list(), TOKEN)
        )
        .await,
        tonic::Code::Ok
    );
    assert_eq!(
        code(
            client(&ward, Some("intruder")).await,
            tonic::Request::new(list())
        )
        .await,
        tonic::Code::Unauthenticated
    );
    assert_eq!(
        code(
            client(&ward, Some("login")).await,
            tonic::Request::new(list())
        )
        .await,
        tonic::Code::Ok
    );
}

/// `ward ... --server https://...` with `--ca-file` and a client
/// certificate: the CLI over mTLS.
#[tokio::test]
async fn the_cli_reaches_the_api_over_mtls() {
    let redis = RedisServer::start().await;
    let ward = Ward::start(&config(&redis, None)).await;
    let url = format!("https://{}", ward.management_addr.unwrap());
    let run = |cert: &str| {
        let (pem, key) = (format!("{DIR}/{cert}.pem"), format!("{DIR}/{cert}.key"));
        support::cli::ward(&[
            "session",
            "create",
            "--user",
            "grace",
            "--server",
            &url,
            "--ca-file",
            &format!("{DIR}/ca.pem"),
            "--cert",
            &pem,
            "--key",
            &key,
        ])
    };
    let (ok, out) = run("login");
    assert!(ok && !out.trim().is_empty(), "{out}");
    let (ok, out) = run("intruder");
    assert!(!ok && out.contains("Unauthenticated"), "{out}");
    let (ok, out) = support::cli::ward(&["session", "list", "grace", "--server", &url]);
    assert!(!ok && out.contains("needs --ca-file"), "{out}");
}
