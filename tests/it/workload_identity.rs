//! Workload identity through a real Envoy terminating downstream mTLS with
//! certificates generated here (a CA, Envoy's server certificate, and
//! SPIFFE client certificates for `orders`, `billing` and an edge
//! `gateway`), so the `source.principal` ward reads is the one Envoy
//! derives from a real handshake: allowed by principal, refused for
//! another, no certificate at all, a user credential with a required
//! workload. Envoy forwards client certificate headers
//! (`forward_client_cert_details: APPEND_FORWARD`, not its default
//! `SANITIZE`, which would strip a forged one before ward and prove
//! nothing about ward), so the tests show that a forged
//! `x-forwarded-client-cert` or RFC 9440 `Client-Cert` from an untrusted
//! peer never counts and never reaches the backend, and that from the
//! trusted hop it does count.
//!
//! Each of those runs twice, through the same Envoy with the same ward
//! config: `ward serve` behind Envoy's ext_authz filter (`source.principal`
//! from Envoy's `CheckRequest`), and the module inside Envoy (the peer
//! certificate's attributes read through the dynamic-module ABI). The
//! certificates carry a URI SAN, a different DNS SAN and a different
//! subject, so an attribute id that named another field would name
//! another principal and fail the module's run.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use base64::Engine;
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use jsonwebtoken::Algorithm;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair, SanType,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::sync::Arc;
use support::echo::{Echo, header_values};
use support::envoy::{Envoy, EnvoyOptions, render_config};
use support::http::Response;
use support::tokens::{claims, sign};
use support::ward::Ward;
use tempfile::TempDir;

const ORDERS: &str = "spiffe://cluster.local/ns/shop/sa/orders";
const BILLING: &str = "spiffe://cluster.local/ns/shop/sa/billing";
const GATEWAY: &str = "spiffe://cluster.local/ns/edge/sa/gateway";

/// A certificate and its key, PEM and DER (PKCS#8 for the key).
struct Leaf {
    cert: String,
    key: String,
    der: Vec<u8>,
    key_der: Vec<u8>,
}

/// A CA made for this test, Envoy's server certificate, and one client
/// certificate per workload; the PEM files Envoy reads live in `dir`.
struct Pki {
    dir: TempDir,
    ca: String,
    orders: Leaf,
    billing: Leaf,
    gateway: Leaf,
    /// A DNS SAN and no URI SAN: named by its DNS SAN.
    reports: Leaf,
    /// No SAN at all: named by its subject.
    legacy: Leaf,
}

impl Pki {
    fn new() -> Pki {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        // Every name distinct: a leaf named like its issuer looks
        // self-issued to Envoy's verifier.
        ca_params.distinguished_name = DistinguishedName::new();
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "ward workload test CA");
        let ca = ca_params.self_signed(&ca_key).unwrap().pem();
        let issuer = Issuer::new(ca_params, ca_key);
        // The CN doubles as the DNS SAN unless `dns` is false.
        let leaf = |cn: &str, dns: bool, uri: Option<&str>| {
            let key = KeyPair::generate().unwrap();
            let sans = if dns { vec![cn.to_string()] } else { vec![] };
            let mut params = CertificateParams::new(sans).unwrap();
            params.distinguished_name = DistinguishedName::new();
            params.distinguished_name.push(DnType::CommonName, cn);
            if let Some(uri) = uri {
                let uri = uri.try_into().unwrap();
                params.subject_alt_names.insert(0, SanType::URI(uri));
            }
            let cert = params.signed_by(&key, &issuer).unwrap();
            Leaf {
                cert: cert.pem(),
                key: key.serialize_pem(),
                der: cert.der().to_vec(),
                key_der: key.serialize_der(),
            }
        };
        let server = leaf("localhost", true, None);
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.pem"), &ca).unwrap();
        std::fs::write(dir.path().join("server.pem"), &server.cert).unwrap();
        std::fs::write(dir.path().join("server.key"), &server.key).unwrap();
        Pki {
            dir,
            ca,
            orders: leaf("orders.shop", true, Some(ORDERS)),
            billing: leaf("billing.shop", true, Some(BILLING)),
            gateway: leaf("gateway.edge", true, Some(GATEWAY)),
            reports: leaf("reports.shop", true, None),
            legacy: leaf("legacy", false, None),
        }
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// Where ward runs.
#[derive(Debug, Clone, Copy)]
enum Mode {
    /// `ward serve`, asked by Envoy's ext_authz filter over gRPC.
    Grpc,
    /// `libward_envoy.so` inside Envoy.
    Module,
}

/// ward's config: a JWT key, and the two shapes of workload policy (the
/// key's path absolute: the module reads it from Envoy's directory).
fn ward_config(workload: &str) -> String {
    let key = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/keys/rsa.pub");
    format!(
        "log: {{format: text, level: info}}\n\
         {workload}\
         jwt:\n  issuers: [\"https://idp.test\"]\n  keys:\n    - {{kid: r1, alg: RS256, pem_file: {key}}}\n\
         policies:\n\
         \x20 orders-only: {{accept: [mtls], principals: [\"{ORDERS}\"]}}\n\
         \x20 by-name: {{accept: [mtls], principals: [reports.shop, orders.shop, \"CN=legacy\"]}}\n\
         \x20 orders-for-sessions: {{accept: [session], workload: {{principals: [\"{ORDERS}\"]}}}}\n\
         \x20 orders-for-users:\n\
         \x20   accept: [jwt]\n\
         \x20   workload: {{principals: [{{prefix: \"spiffe://cluster.local/ns/shop/sa/orders\"}}]}}\n"
    )
}

/// Envoy in front of the echo backend, and the ward it asks (gRPC mode).
struct Front {
    envoy: Envoy,
    ward: Option<Ward>,
}

/// ward with `yaml` in `mode`, behind (or inside) [`start_envoy`]'s Envoy.
async fn front(mode: Mode, pki: &Pki, echo: &Echo, yaml: &str) -> Front {
    match mode {
        Mode::Grpc => {
            let ward = Ward::start(yaml).await;
            let envoy = start_envoy(pki, echo, ward.grpc_addr, None).await;
            Front {
                envoy,
                ward: Some(ward),
            }
        }
        Mode::Module => {
            // No ext_authz server: the address is never dialled.
            let unused = std::net::SocketAddr::from(([127, 0, 0, 1], 9));
            let envoy = start_envoy(pki, echo, unused, Some(yaml)).await;
            Front { envoy, ward: None }
        }
    }
}

/// Envoy with downstream mTLS (a client certificate verified against the
/// test CA, but not required, so a client without one reaches ward) and
/// `APPEND_FORWARD`; `/svc` selects `orders-only`, `/user`
/// `orders-for-users`, `/public` skips ward, `/open` is ward's `public`.
/// With `module: Some(yaml)`, ward's module replaces the ext_authz filter
/// (the same routes select the same policies).
async fn start_envoy(
    pki: &Pki,
    echo: &Echo,
    grpc: std::net::SocketAddr,
    module: Option<&str>,
) -> Envoy {
    let mut opts = EnvoyOptions::new(echo.addr, grpc);
    opts.policy_routes = vec![
        ("/svc".into(), "orders-only".into()),
        ("/user".into(), "orders-for-users".into()),
        ("/named".into(), "by-name".into()),
        ("/session".into(), "orders-for-sessions".into()),
    ];
    let file = |name: &str| pki.file(name).display().to_string();
    let tls = json!({
        "name": "envoy.transport_sockets.tls",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
            "require_client_certificate": false,
            "common_tls_context": {
                "tls_certificates": [{
                    "certificate_chain": { "filename": file("server.pem") },
                    "private_key": { "filename": file("server.key") }
                }],
                "validation_context": { "trusted_ca": { "filename": file("ca.pem") } }
            }
        }
    });
    let render = move |http, admin| {
        let mut config = render_config(&opts, http, admin);
        let chain = &mut config["static_resources"]["listeners"][0]["filter_chains"][0];
        chain["transport_socket"] = tls.clone();
        let hcm = &mut chain["filters"][0]["typed_config"];
        hcm["forward_client_cert_details"] = json!("APPEND_FORWARD");
        hcm["set_current_client_cert_details"] = json!({ "uri": true });
        if let Some(yaml) = module {
            support::module::into_module(&mut config, yaml);
        }
        config
    };
    match module {
        Some(_) => Envoy::start_bootstrap_env(render, &support::module::search_path()).await,
        None => Envoy::start_bootstrap(render).await,
    }
}

/// One HTTPS request to Envoy, presenting `client`'s certificate if any.
async fn get(
    envoy: &Envoy,
    pki: &Pki,
    client: Option<&Leaf>,
    path: &str,
    headers: &[(&str, &str)],
) -> Response {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(pem_der(&pki.ca)).unwrap();
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let config = match client {
        Some(leaf) => {
            let key = PrivateKeyDer::Pkcs8(leaf.key_der.clone().into());
            builder
                .with_client_auth_cert(vec![CertificateDer::from(leaf.der.clone())], key)
                .unwrap()
        }
        None => builder.with_no_client_auth(),
    };
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(envoy.http_addr)
        .await
        .unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let tls = connector.connect(name, tcp).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn);
    let mut req = hyper::Request::get(path).header("host", "api.test");
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let resp = sender
        .send_request(req.body(Empty::<Bytes>::new()).unwrap())
        .await;
    let resp = resp.unwrap_or_else(|e| panic!("{path}: {e}\n{}", envoy.logs()));
    let (parts, body) = resp.into_parts();
    Response {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body: body.collect().await.unwrap().to_bytes(),
    }
}

/// The DER of the first PEM block of `pem`.
fn pem_der(pem: &str) -> CertificateDer<'static> {
    let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    CertificateDer::from(der)
}

/// RFC 9440 `Client-Cert`: the certificate as a byte sequence.
fn client_cert(leaf: &Leaf) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(&leaf.der);
    format!(":{b64}:")
}

fn reason(resp: &Response) -> String {
    resp.json()["reason"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn bearer() -> String {
    format!(
        "Bearer {}",
        sign(Algorithm::RS256, Some("r1"), &claims("alice"))
    )
}

/// The headers the echo upstream got for the last request.
fn seen(resp: &Response) -> Value {
    assert_eq!(resp.status, 200, "{}", resp.text());
    resp.json()
}

#[tokio::test]
async fn the_peer_principal_allows_refuses_and_rides_beside_a_user() {
    principal_allows_refuses_and_rides_beside_a_user(Mode::Grpc).await;
}

#[tokio::test]
async fn the_peer_principal_allows_refuses_and_rides_beside_a_user_in_the_module() {
    principal_allows_refuses_and_rides_beside_a_user(Mode::Module).await;
}

async fn principal_allows_refuses_and_rides_beside_a_user(mode: Mode) {
    let pki = Pki::new();
    let echo = Echo::start().await;
    let front = front(mode, &pki, &echo, &ward_config("")).await;
    let envoy = &front.envoy;
    let forged = [
        ("x-ward-principal", "spiffe://cluster.local/ns/x/sa/admin"),
        ("x-user-id", "root"),
    ];

    // `accept: [mtls]`: the principal alone, in a header no client forges.
    let ok = get(envoy, &pki, Some(&pki.orders), "/svc", &forged).await;
    let s = seen(&ok);
    assert_eq!(header_values(&s, "x-ward-principal"), [ORDERS]);
    assert_eq!(header_values(&s, "x-auth-method"), ["mtls"]);
    assert!(header_values(&s, "x-user-id").is_empty(), "no user: {s}");

    let other = get(envoy, &pki, Some(&pki.billing), "/svc", &[]).await;
    assert_eq!(
        (other.status, reason(&other)),
        (403, "principal_not_allowed".into())
    );
    let none = get(envoy, &pki, None, "/svc", &[]).await;
    assert_eq!(
        (none.status, reason(&none)),
        (401, "missing_principal".into())
    );
    assert_eq!(
        none.json()["error"],
        "unauthorized",
        "no RFC 6750 error code"
    );
    assert_eq!(
        none.header("www-authenticate"),
        None,
        "mTLS has no HTTP scheme"
    );

    // `workload` beside a JWT: only the orders service, for a signed-in user.
    let auth = bearer();
    let auth = [("authorization", auth.as_str())];
    let ok = get(envoy, &pki, Some(&pki.orders), "/user", &auth).await;
    let s = seen(&ok);
    assert_eq!(header_values(&s, "x-user-id"), ["alice"]);
    assert_eq!(header_values(&s, "x-ward-principal"), [ORDERS]);
    let other = get(envoy, &pki, Some(&pki.billing), "/user", &auth).await;
    assert_eq!(
        (other.status, reason(&other)),
        (403, "principal_not_allowed".into())
    );
    let none = get(envoy, &pki, None, "/user", &auth).await;
    assert_eq!(
        (none.status, reason(&none)),
        (403, "principal_required".into())
    );
    let no_user = get(envoy, &pki, Some(&pki.orders), "/user", &[]).await;
    assert_eq!(
        (no_user.status, reason(&no_user)),
        (401, "missing_credential".into())
    );

    // A route without a workload rule: the header is still ward's alone.
    let open = get(envoy, &pki, Some(&pki.orders), "/open", &forged).await;
    assert!(header_values(&seen(&open), "x-ward-principal").is_empty());

    // Envoy's order: the first URI SAN, else the first DNS SAN, else the
    // subject (orders has a URI SAN, so its DNS SAN never names it).
    for (leaf, name) in [(&pki.reports, "reports.shop"), (&pki.legacy, "CN=legacy")] {
        let ok = get(envoy, &pki, Some(leaf), "/named", &[]).await;
        assert_eq!(
            header_values(&seen(&ok), "x-ward-principal"),
            [name],
            "{mode:?}"
        );
    }
    let uri_first = get(envoy, &pki, Some(&pki.orders), "/named", &[]).await;
    assert_eq!(
        (uri_first.status, reason(&uri_first)),
        (403, "principal_not_allowed".into()),
        "{mode:?}"
    );

    let series = [
        r#"ward_check_total{decision="allow",method="mtls",reason="ok"} 3"#,
        r#"ward_check_total{decision="deny",method="mtls",reason="missing_principal"} 1"#,
        r#"reason="principal_required"} 1"#,
    ];
    let metrics = counters(&front, &series).await;
    for series in series {
        assert!(metrics.contains(series), "{mode:?}: {series} in\n{metrics}");
    }
}

/// ward's counters as Prometheus text: `ward serve`'s `/metrics`, or the
/// module's, which are Envoy stats (`envoy_ward_*` on Envoy's admin port,
/// read back here without the `envoy_`) and arrive about a second after
/// the event: read until every one of `series` is there, at most 5 s.
async fn counters(front: &Front, series: &[&str]) -> String {
    let (addr, path) = match &front.ward {
        Some(ward) => (ward.admin_addr, "/metrics"),
        None => (front.envoy.admin_addr, "/stats/prometheus"),
    };
    let started = std::time::Instant::now();
    loop {
        let text = support::http::get(addr, path).await.unwrap().text();
        let text = text.replace("envoy_ward_", "ward_");
        let all = series.iter().all(|s| text.contains(s));
        if all || started.elapsed() > std::time::Duration::from_secs(5) {
            return text;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn forged_forwarded_certificates_from_an_untrusted_peer_never_count_or_arrive() {
    forged_forwarded_certificates_never_count_or_arrive(Mode::Grpc).await;
}

#[tokio::test]
async fn forged_forwarded_certificates_from_an_untrusted_peer_never_count_or_arrive_in_the_module()
{
    forged_forwarded_certificates_never_count_or_arrive(Mode::Module).await;
}

async fn forged_forwarded_certificates_never_count_or_arrive(mode: Mode) {
    let pki = Pki::new();
    let echo = Echo::start().await;
    let front = front(mode, &pki, &echo, &ward_config("")).await;
    let envoy = &front.envoy;
    let xfcc = format!("By=spiffe://x;Hash=00;URI={ORDERS}");
    let cert = client_cert(&pki.orders);
    let forged = [
        ("x-forwarded-client-cert", xfcc.as_str()),
        ("client-cert", cert.as_str()),
    ];

    // Envoy passes both on (APPEND_FORWARD; it never strips Client-Cert):
    // on a route ward does not see, the backend gets them.
    let public = get(envoy, &pki, Some(&pki.billing), "/public", &forged).await;
    let s = seen(&public);
    assert!(
        header_values(&s, "x-forwarded-client-cert")[0].contains(ORDERS),
        "{s}"
    );
    assert_eq!(header_values(&s, "client-cert"), [cert.as_str()]);

    // Through ward: billing claiming to be orders is still billing...
    let denied = get(envoy, &pki, Some(&pki.billing), "/svc", &forged).await;
    assert_eq!(
        (denied.status, reason(&denied)),
        (403, "principal_not_allowed".into())
    );
    let none = get(envoy, &pki, None, "/svc", &forged).await;
    assert_eq!(
        (none.status, reason(&none)),
        (401, "missing_principal".into())
    );
    // ...and an allowed peer's forged headers never reach the backend.
    let billing_cert = client_cert(&pki.billing);
    let forged = [
        (
            "x-forwarded-client-cert",
            "URI=spiffe://cluster.local/ns/x/sa/admin",
        ),
        ("client-cert", billing_cert.as_str()),
        ("client_cert", billing_cert.as_str()),
    ];
    for path in ["/svc", "/open"] {
        let ok = get(envoy, &pki, Some(&pki.orders), path, &forged).await;
        let s = seen(&ok);
        for name in ["x-forwarded-client-cert", "client-cert", "client_cert"] {
            assert!(header_values(&s, name).is_empty(), "{path} {name}: {s}");
        }
    }
}

#[tokio::test]
async fn a_trusted_hop_speaks_for_its_client_by_xfcc_or_client_cert() {
    trusted_hop_speaks_for_its_client(Mode::Grpc).await;
}

#[tokio::test]
async fn a_trusted_hop_speaks_for_its_client_by_xfcc_or_client_cert_in_the_module() {
    trusted_hop_speaks_for_its_client(Mode::Module).await;
}

async fn trusted_hop_speaks_for_its_client(mode: Mode) {
    let pki = Pki::new();
    let echo = Echo::start().await;
    let trusted = |header: &str| {
        format!(
            "workload:\n  forwarded_cert: {{header: {header}, trusted_peers: [\"{GATEWAY}\"]}}\n"
        )
    };
    let front_xfcc = front(mode, &pki, &echo, &ward_config(&trusted("xfcc"))).await;
    let envoy = &front_xfcc.envoy;

    // The gateway forwards what it saw of its client; Envoy appends its
    // own element for the gateway, which ward passes over.
    let xfcc = format!("By={GATEWAY};Hash=00;URI={ORDERS}");
    let via = [("x-forwarded-client-cert", xfcc.as_str())];
    let ok = get(envoy, &pki, Some(&pki.gateway), "/svc", &via).await;
    let s = seen(&ok);
    assert_eq!(header_values(&s, "x-ward-principal"), [ORDERS]);
    let kept = &header_values(&s, "x-forwarded-client-cert")[0];
    assert!(
        kept.starts_with(&xfcc),
        "the trusted hop's header is kept: {kept}"
    );
    let billing = format!("By={GATEWAY};Hash=00;URI={BILLING}");
    let via_billing = [("x-forwarded-client-cert", billing.as_str())];
    let denied = get(envoy, &pki, Some(&pki.gateway), "/svc", &via_billing).await;
    assert_eq!(
        (denied.status, reason(&denied)),
        (403, "principal_not_allowed".into())
    );
    // The gateway alone is not its client: no principal.
    let alone = get(envoy, &pki, Some(&pki.gateway), "/svc", &[]).await;
    assert_eq!(
        (alone.status, reason(&alone)),
        (401, "missing_principal".into())
    );
    let broken = [("x-forwarded-client-cert", "URI=\"spiffe://unterminated")];
    let bad = get(envoy, &pki, Some(&pki.gateway), "/svc", &broken).await;
    assert_eq!(
        (bad.status, reason(&bad)),
        (400, "malformed_principal".into())
    );
    // Billing sending the same header is not the gateway: its own name.
    let spoof = get(envoy, &pki, Some(&pki.billing), "/svc", &via).await;
    assert_eq!(spoof.status, 403);
    drop(front_xfcc);

    // RFC 9440 `Client-Cert`, read with x509-parser.
    let front = front(mode, &pki, &echo, &ward_config(&trusted("client_cert"))).await;
    let envoy = &front.envoy;
    let cert = client_cert(&pki.orders);
    let ok = get(
        envoy,
        &pki,
        Some(&pki.gateway),
        "/svc",
        &[("client-cert", &cert)],
    )
    .await;
    assert_eq!(header_values(&seen(&ok), "x-ward-principal"), [ORDERS]);
    let junk = get(
        envoy,
        &pki,
        Some(&pki.gateway),
        "/svc",
        &[("client-cert", ":AAAA:")],
    )
    .await;
    assert_eq!(
        (junk.status, reason(&junk)),
        (400, "malformed_principal".into())
    );
    let from_orders = get(
        envoy,
        &pki,
        Some(&pki.billing),
        "/svc",
        &[("client-cert", &cert)],
    )
    .await;
    assert_eq!(
        from_orders.status, 403,
        "only the gateway's Client-Cert counts"
    );
}

#[tokio::test]
async fn a_principal_beside_a_session_survives_the_store_read() {
    principal_survives_a_store_read(Mode::Grpc).await;
}

#[tokio::test]
async fn a_principal_beside_a_session_survives_the_store_read_in_the_module() {
    principal_survives_a_store_read(Mode::Module).await;
}

/// A session read from Redis: in the module, the check waits and is run
/// again from the start on the runtime, so the principal must go with
/// it (lost, it would be 403 `principal_required`).
async fn principal_survives_a_store_read(mode: Mode) {
    let redis = support::redis::RedisServer::start().await;
    let pki = Pki::new();
    let echo = Echo::start().await;
    let store = format!(
        "store:\n  redis: {{url: \"{}\", command_timeout: 1s}}\n\
         sessions: {{fingerprint: {{mode: off}}}}\n",
        redis.url()
    );
    let front = front(mode, &pki, &echo, &ward_config(&store)).await;
    let envoy = &front.envoy;
    let sid = support::authz::session_id();
    let expires = (support::tokens::now() + 3600).to_string();
    let record = format!("session:{sid}");
    support::authz::hset(
        &redis,
        &record,
        &[("user_id", "carol"), ("expires_at", &expires)],
    );
    let cookie = format!("session_id={sid}");
    let cookie = [("cookie", cookie.as_str())];

    // Redis held a moment: the read cannot be done in the worker's one
    // poll, so the module's check always waits and runs again.
    assert_eq!(redis.cli(&["CLIENT", "PAUSE", "150", "ALL"]), "OK");
    let ok = get(envoy, &pki, Some(&pki.orders), "/session", &cookie).await;
    let s = seen(&ok);
    assert_eq!(header_values(&s, "x-user-id"), ["carol"], "{mode:?}");
    assert_eq!(header_values(&s, "x-ward-principal"), [ORDERS], "{mode:?}");
    let other = get(envoy, &pki, Some(&pki.billing), "/session", &cookie).await;
    assert_eq!(
        (other.status, reason(&other)),
        (403, "principal_not_allowed".into()),
        "{mode:?}"
    );
}

/// `ward explain --principal`: the principal step, and what an allow
/// would set, for the shipped example config (no Envoy).
#[test]
fn explain_shows_the_principal_step() {
    let run = |principal: &str, url: &str| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_ward"))
            .args([
                "explain",
                "-c",
                "examples/workload.yaml",
                "--principal",
                principal,
                url,
            ])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        (out.status.code().unwrap(), text)
    };
    let (code, text) = run(ORDERS, "https://payments.shop/internal/settle");
    assert_eq!(code, 0, "{text}");
    let step = text
        .lines()
        .find(|l| l.trim_start().starts_with("principal"))
        .unwrap();
    assert!(
        step.contains(ORDERS) && step.contains("source.principal") && step.contains("allowed"),
        "{text}"
    );
    assert!(
        text.contains(&format!("x-ward-principal: {ORDERS}")),
        "{text}"
    );
    let (code, text) = run(BILLING, "https://payments.shop/internal/settle");
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("principal_not_allowed"), "{text}");
}

/// The management API's `Introspect` with a principal: the principal
/// step, and the workload's decision, from a running ward.
#[tokio::test]
async fn introspect_shows_the_principal_step() {
    use crate::management::{authed, client, config};
    use ward::server::management::proto::IntrospectRequest;
    let redis = support::redis::RedisServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let yaml = config(&redis, &dir)
        + &format!("policies:\n  svc: {{accept: [mtls], principals: [\"{ORDERS}\"]}}\n");
    let ward = Ward::start(&yaml).await;
    let mut api = client(&ward).await;
    let ask = |principal: &str| IntrospectRequest {
        url: "https://payments.shop/internal".into(),
        envoy_policy: "svc".into(),
        principal: principal.into(),
        ..Default::default()
    };
    let seen = api
        .introspect(authed(ask(ORDERS)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (seen.decision.as_str(), seen.status),
        ("allow", 200),
        "{seen:?}"
    );
    assert_eq!(seen.credential_kind, "mtls");
    let step = seen.steps.iter().find(|s| s.name == "principal").unwrap();
    assert!(step.value.contains(ORDERS), "{step:?}");
    let principal = seen
        .identity_headers
        .iter()
        .find(|h| h.name == "x-ward-principal");
    assert_eq!(principal.map(|h| h.value.as_str()), Some(ORDERS));
    let seen = api
        .introspect(authed(ask(BILLING)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (seen.status, seen.reason.as_str()),
        (403, "principal_not_allowed")
    );
}
