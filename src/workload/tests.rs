use super::*;
use crate::request::Headers;

const ORDERS: &str = "spiffe://cluster.local/ns/shop/sa/orders";
const GATEWAY: &str = "spiffe://cluster.local/ns/edge/sa/gateway";

fn workload(yaml: &str) -> Workload {
    let config: Config = serde_yaml_ng::from_str(yaml).unwrap();
    Workload::from_config(&config)
}

fn request<'a>(principal: Option<&'a str>, headers: &'a [(&'a str, &'a str)]) -> Request<'a> {
    Request {
        method: "GET",
        host: "api",
        path: "/",
        headers: Headers::new(headers),
        policy: None,
        source_ip: None,
        principal,
    }
}

fn name(w: &Workload, req: &Request<'_>) -> Option<(String, Origin)> {
    let p = w.principal(req).unwrap();
    p.map(|p| (p.name.into_owned(), p.origin))
}

#[test]
fn the_peer_counts_and_a_forwarded_cert_does_not_without_a_trusted_hop() {
    let w = workload("{}");
    let forged = format!("URI={GATEWAY}");
    let headers = [("x-forwarded-client-cert", forged.as_str())];
    assert_eq!(
        name(&w, &request(Some(ORDERS), &headers)),
        Some((ORDERS.into(), Origin::Peer))
    );
    assert_eq!(name(&w, &request(None, &headers)), None);
    assert_eq!(name(&w, &request(Some(""), &[])), None);
    assert!(!w.trusted_hop(&request(Some(ORDERS), &headers)));
    assert_eq!(&*w.header, "x-ward-principal");
}

#[test]
fn a_trusted_hop_speaks_for_its_client_and_only_through_the_header() {
    let w = workload(&format!(
        "workload: {{forwarded_cert: {{header: xfcc, trusted_peers: [\"{GATEWAY}\"]}}}}"
    ));
    let xfcc = format!("By={GATEWAY};Hash=h;URI={ORDERS}");
    let headers = [("x-forwarded-client-cert", xfcc.as_str())];
    assert_eq!(
        name(&w, &request(Some(GATEWAY), &headers)),
        Some((ORDERS.into(), Origin::Xfcc))
    );
    // The hop without a header: no principal (never the hop's own).
    assert_eq!(name(&w, &request(Some(GATEWAY), &[])), None);
    // Another peer: its own principal, the header ignored.
    let other = "spiffe://cluster.local/ns/x/sa/y";
    assert_eq!(
        name(&w, &request(Some(other), &headers)),
        Some((other.into(), Origin::Peer))
    );
    let bad = [("x-forwarded-client-cert", "URI=\"open")];
    assert!(w.principal(&request(Some(GATEWAY), &bad)).is_err());
}

#[test]
fn any_peer_trusts_the_header_and_unsafe_names_are_refused() {
    let w = workload("workload: {forwarded_cert: {header: xfcc, any_peer: true}}");
    let headers = [("x-forwarded-client-cert", "URI=\"spiffe://a/b\\\"\"")];
    assert_eq!(
        name(
            &w,
            &request(None, &[("x-forwarded-client-cert", "URI=spiffe://a/b")])
        ),
        Some(("spiffe://a/b".into(), Origin::Xfcc))
    );
    assert!(w.principal(&request(None, &headers)).is_ok());
    let nl = [("x-forwarded-client-cert", "URI=\"spiffe://a/b\nX\"")];
    assert_eq!(
        w.principal(&request(None, &nl)).unwrap_err(),
        WorkloadError::Unsafe
    );
    let long = format!("URI=spiffe://a/{}", "b".repeat(MAX_PRINCIPAL_BYTES));
    let long = [("x-forwarded-client-cert", long.as_str())];
    assert_eq!(
        w.principal(&request(None, &long)).unwrap_err(),
        WorkloadError::Unsafe
    );
}

#[test]
fn client_cert_byte_sequences_are_strict() {
    for bad in ["", "abc", ":abc", ":!!!!:", ":AAAA:"] {
        assert!(principal_of_client_cert(bad).is_err(), "{bad:?}");
    }
}

/// A real certificate (rcgen): the URI SAN wins over a DNS name listed
/// before it; padding may be left out; bytes after it are refused.
#[test]
fn client_cert_names_its_uri_san() {
    use base64::Engine;
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["orders.shop".to_string()]).unwrap();
    let uri = rcgen::SanType::URI(ORDERS.try_into().unwrap());
    params.subject_alt_names.push(uri);
    let der = params.self_signed(&key).unwrap().der().to_vec();
    let b64 = base64::engine::general_purpose::STANDARD.encode(&der);
    let read = |v: &str| principal_of_client_cert(v);
    assert_eq!(
        read(&format!(" :{b64}: ")).unwrap().as_deref(),
        Some(ORDERS)
    );
    let unpadded = b64.trim_end_matches('=');
    assert_eq!(
        read(&format!(":{unpadded}:")).unwrap().as_deref(),
        Some(ORDERS)
    );
    let mut longer = der.clone();
    longer.push(0);
    let longer = base64::engine::general_purpose::STANDARD.encode(&longer);
    assert!(read(&format!(":{longer}:")).is_err());
    let params = rcgen::CertificateParams::new(vec!["billing.shop".to_string()]).unwrap();
    let der = params.self_signed(&key).unwrap().der().to_vec();
    let b64 = base64::engine::general_purpose::STANDARD.encode(&der);
    assert_eq!(
        read(&format!(":{b64}:")).unwrap().as_deref(),
        Some("billing.shop")
    );
}
