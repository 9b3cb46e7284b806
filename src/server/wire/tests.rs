use super::*;
use envoy_types::ext_authz::v3::pb::CheckRequest;
use envoy_types::pb::envoy::config::core::v3 as core;
use envoy_types::pb::envoy::service::auth::v3::AttributeContext as Context;
use envoy_types::pb::envoy::service::auth::v3::attribute_context;
use prost::Message;

/// A full `CheckRequest` with every field ward skips filled in too.
fn envoy_request(raw: bool) -> CheckRequest {
    let headers: std::collections::HashMap<String, String> = [
        (":authority", "api.example.com"),
        ("cookie", "session_id=abc"),
        ("x-api-key", "ward_key"),
        ("user-agent", "curl/8"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let header_map = raw.then(|| core::HeaderMap {
        headers: vec![
            core::HeaderValue {
                key: "Cookie".into(),
                raw_value: b"a=1".to_vec(),
                ..Default::default()
            },
            core::HeaderValue {
                key: "cookie".into(),
                value: "b=2".into(),
                ..Default::default()
            },
            core::HeaderValue {
                key: "x-bin".into(),
                raw_value: vec![b'o', 0xff, b'k'],
                ..Default::default()
            },
        ],
    });
    let peer = |ip: &str| attribute_context::Peer {
        address: Some(core::Address {
            address: Some(core::address::Address::SocketAddress(core::SocketAddress {
                address: ip.into(),
                port_specifier: Some(core::socket_address::PortSpecifier::PortValue(443)),
                ..Default::default()
            })),
        }),
        principal: format!("spiffe://cluster.local/ns/a/sa/{}", ip.len()),
        ..Default::default()
    };
    CheckRequest {
        attributes: Some(Context {
            source: Some(peer("2001:db8::7")),
            destination: Some(peer("10.0.0.1")),
            request: Some(attribute_context::Request {
                time: Some(Default::default()),
                http: Some(attribute_context::HttpRequest {
                    id: "1234".into(),
                    method: "POST".into(),
                    headers: if raw { Default::default() } else { headers },
                    header_map,
                    path: "/v1/orders?x=1".into(),
                    host: "api.example.com".into(),
                    scheme: "https".into(),
                    protocol: "HTTP/2".into(),
                    body: "{}".into(),
                    size: 2,
                    ..Default::default()
                }),
            }),
            context_extensions: [("ward_policy".to_string(), "admin".to_string())]
                .into_iter()
                .collect(),
            tls_session: Some(attribute_context::TlsSession { sni: "api".into() }),
            ..Default::default()
        }),
    }
}

fn view(req: &CheckRequest) -> CheckView {
    CheckView::parse(Bytes::from(req.encode_to_vec())).unwrap()
}

#[test]
fn reads_what_envoys_message_holds() {
    let req = envoy_request(false);
    let v = view(&req);
    let a = v.attributes().unwrap();
    let http = req.attributes.as_ref().unwrap().request.as_ref().unwrap();
    let http = http.http.as_ref().unwrap();
    assert_eq!(
        (a.method, a.host, a.path),
        ("POST", "api.example.com", "/v1/orders?x=1")
    );
    let mut pairs = a.pairs.clone();
    pairs.sort();
    let mut expected: Vec<(&str, &str)> = http
        .headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    expected.sort();
    assert_eq!(pairs, expected);
    assert_eq!(a.extension("ward_policy"), Some("admin"));
    assert_eq!(a.extension("other"), None);
    assert_eq!(a.source_ip, "2001:db8::7".parse().ok());
    // The source's principal, not the destination's (both are set).
    assert_eq!(a.principal, Some("spiffe://cluster.local/ns/a/sa/11"));
}

#[test]
fn an_absent_or_empty_principal_is_none() {
    let mut req = envoy_request(false);
    let source = req.attributes.as_mut().unwrap().source.as_mut().unwrap();
    source.principal = String::new();
    assert_eq!(view(&req).attributes().unwrap().principal, None);
    req.attributes.as_mut().unwrap().source = None;
    assert_eq!(view(&req).attributes().unwrap().principal, None);
}

#[test]
fn raw_header_map_is_lowercased_and_joined() {
    let v = view(&envoy_request(true));
    let a = v.attributes().unwrap();
    let h = a.headers();
    assert_eq!(h.get("cookie"), Some("a=1; b=2"));
    assert_eq!(h.get("x-bin"), Some("o\u{fffd}k"));
    assert_eq!(h.len(), 2);
}

#[test]
fn missing_attributes_and_non_text_are_malformed() {
    assert_eq!(
        CheckView::default().attributes().unwrap_err(),
        Malformed::NoHttpAttributes
    );
    let mut req = envoy_request(false);
    req.attributes
        .as_mut()
        .unwrap()
        .request
        .as_mut()
        .unwrap()
        .http = None;
    assert_eq!(
        view(&req).attributes().unwrap_err(),
        Malformed::NoHttpAttributes
    );

    // A header value that is not UTF-8, as a C++ client can send it:
    // envoy-types refuses the whole message, ward denies it.
    let mut req = envoy_request(false);
    let http = req.attributes.as_mut().unwrap().request.as_mut().unwrap();
    let http = http.http.as_mut().unwrap();
    http.headers.insert("x-latin1".into(), "Jos\u{e9}".into());
    let mut bytes = req.encode_to_vec();
    let at = bytes
        .windows(5)
        .position(|w| w == "Jos\u{e9}".as_bytes())
        .unwrap();
    bytes[at + 3..at + 5].copy_from_slice(&[0xe9, b'!']); // Latin-1 "Jos\xe9!"
    assert!(CheckRequest::decode(bytes.as_slice()).is_err());
    let v = CheckView::parse(Bytes::from(bytes)).unwrap();
    assert_eq!(v.attributes().unwrap_err(), Malformed::NotText);
}

#[test]
fn strings_are_slices_of_the_request_buffer() {
    let bytes = Bytes::from(envoy_request(false).encode_to_vec());
    let v = CheckView::parse(bytes.clone()).unwrap();
    let a = v.attributes().unwrap();
    let range = bytes.as_ptr_range();
    assert_eq!(a.pairs.len(), 4);
    for (k, val) in a.pairs {
        assert!(range.contains(&k.as_ptr()) && range.contains(&val.as_ptr()));
    }
}

#[test]
fn garbage_is_an_error_not_a_panic() {
    for bytes in [&[0xff_u8, 0xff, 0xff][..], &[0x0a, 0x05, 0x22], &[0x0a]] {
        assert!(
            CheckView::parse(Bytes::copy_from_slice(bytes)).is_err(),
            "{bytes:?}"
        );
    }
}
