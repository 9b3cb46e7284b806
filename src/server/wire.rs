//! The part of Envoy's `CheckRequest` ward reads, decoded without copying.
//!
//! envoy-types' `CheckRequest` decodes everything Envoy sends into owned
//! strings and hash maps: every header name and value is allocated and
//! hashed, and so are the addresses, the TLS session, the metadata, none
//! of which ward reads. That decode was the largest single cost of a
//! cache-hit check after HTTP/2 itself.
//!
//! [`CheckView`] declares only the fields ward reads, with the same field
//! numbers as `envoy/service/auth/v3/attribute_context.proto` (prost skips
//! the others), and each string as [`Bytes`]: a slice of the request
//! buffer, not a copy. A protobuf `map<string, string>` is a repeated
//! message of `key = 1, value = 2` on the wire, so maps are read as
//! [`Entry`] lists. The strings are checked to be UTF-8 when
//! [`CheckView::attributes`] borrows them; a request whose strings are not
//! text is malformed (Envoy's own `CheckRequest` would not decode either).
//! A test encodes envoy-types' `CheckRequest` and compares what both read.

use crate::request::{Headers, fold_header};
use prost::bytes::Bytes;
use std::net::IpAddr;

/// `envoy.service.auth.v3.CheckRequest`, as ward reads it.
#[derive(Clone, PartialEq, prost::Message)]
pub struct CheckView {
    #[prost(message, optional, tag = "1")]
    pub attributes: Option<AttributeContext>,
}

/// `AttributeContext`: `source` (1), `request` (4), `context_extensions` (10).
#[derive(Clone, PartialEq, prost::Message)]
pub struct AttributeContext {
    #[prost(message, optional, tag = "1")]
    pub source: Option<Peer>,
    #[prost(message, optional, tag = "4")]
    pub request: Option<RequestContext>,
    #[prost(message, repeated, tag = "10")]
    pub context_extensions: Vec<Entry>,
}

/// `AttributeContext.Peer`: `address` (1).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Peer {
    #[prost(message, optional, tag = "1")]
    pub address: Option<Address>,
}

/// `envoy.config.core.v3.Address`: the `socket_address` member (1) of its
/// `oneof`; pipes and internal addresses have no IP.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Address {
    #[prost(message, optional, tag = "1")]
    pub socket_address: Option<SocketAddress>,
}

/// `envoy.config.core.v3.SocketAddress`: `address` (2).
#[derive(Clone, PartialEq, prost::Message)]
pub struct SocketAddress {
    #[prost(bytes = "bytes", tag = "2")]
    pub address: Bytes,
}

/// `AttributeContext.Request`: `http` (2).
#[derive(Clone, PartialEq, prost::Message)]
pub struct RequestContext {
    #[prost(message, optional, tag = "2")]
    pub http: Option<HttpRequest>,
}

/// `AttributeContext.HttpRequest`: `method` (2), `headers` (3), `path`
/// (4), `host` (5), and `header_map` (13), which Envoy sends instead of
/// `headers` with `encode_raw_headers: true`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct HttpRequest {
    #[prost(bytes = "bytes", tag = "2")]
    pub method: Bytes,
    #[prost(message, repeated, tag = "3")]
    pub headers: Vec<Entry>,
    #[prost(bytes = "bytes", tag = "4")]
    pub path: Bytes,
    #[prost(bytes = "bytes", tag = "5")]
    pub host: Bytes,
    #[prost(message, optional, tag = "13")]
    pub header_map: Option<HeaderMap>,
}

/// One entry of a `map<string, string>`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Entry {
    #[prost(bytes = "bytes", tag = "1")]
    pub key: Bytes,
    #[prost(bytes = "bytes", tag = "2")]
    pub value: Bytes,
}

/// `envoy.config.core.v3.HeaderMap`: `headers` (1).
#[derive(Clone, PartialEq, prost::Message)]
pub struct HeaderMap {
    #[prost(message, repeated, tag = "1")]
    pub headers: Vec<RawHeader>,
}

/// `envoy.config.core.v3.HeaderValue`: `key` (1), `value` (2), `raw_value` (3).
#[derive(Clone, PartialEq, prost::Message)]
pub struct RawHeader {
    #[prost(bytes = "bytes", tag = "1")]
    pub key: Bytes,
    #[prost(bytes = "bytes", tag = "2")]
    pub value: Bytes,
    #[prost(bytes = "bytes", tag = "3")]
    pub raw_value: Bytes,
}

/// The request attributes as text, borrowed from a [`CheckView`].
#[derive(Debug)]
pub struct Attributes<'a> {
    pub method: &'a str,
    pub host: &'a str,
    pub path: &'a str,
    /// `headers`, each pair borrowed; empty when Envoy sent `header_map`.
    pub pairs: Vec<(&'a str, &'a str)>,
    /// `header_map` (raw headers) made into ward's form: lowercase names,
    /// repeated headers joined with `,`.
    pub raw: Option<Vec<(String, String)>>,
    /// `context_extensions`, each pair borrowed.
    pub extensions: Vec<(&'a str, &'a str)>,
    pub source_ip: Option<IpAddr>,
}

/// Why a `CheckRequest` cannot be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Malformed {
    /// No `attributes.request.http`.
    NoHttpAttributes,
    /// A string ward reads is not UTF-8.
    NotText,
}

impl CheckView {
    /// The attributes ward reads, or why they cannot be read.
    pub fn attributes(&self) -> Result<Attributes<'_>, Malformed> {
        let attrs = self
            .attributes
            .as_ref()
            .ok_or(Malformed::NoHttpAttributes)?;
        let http = attrs
            .request
            .as_ref()
            .and_then(|r| r.http.as_ref())
            .ok_or(Malformed::NoHttpAttributes)?;
        let raw = match &http.header_map {
            Some(map) if http.headers.is_empty() => Some(raw_headers(map)),
            _ => None,
        };
        Ok(Attributes {
            method: text(&http.method)?,
            host: text(&http.host)?,
            path: text(&http.path)?,
            pairs: entries(&http.headers)?,
            raw,
            extensions: entries(&attrs.context_extensions)?,
            source_ip: source_ip(attrs),
        })
    }
}

impl<'a> Attributes<'a> {
    /// The request headers: `headers`, or the raw `header_map`.
    pub fn headers(&self) -> Headers<'_> {
        match &self.raw {
            Some(raw) => Headers::owned(raw),
            None => Headers::new(&self.pairs),
        }
    }

    /// A `context_extensions` value (the last, if a key repeats).
    pub fn extension(&self, key: &str) -> Option<&'a str> {
        let found = self.extensions.iter().rev().find(|(k, _)| *k == key);
        found.map(|(_, v)| *v)
    }
}

fn text(bytes: &Bytes) -> Result<&str, Malformed> {
    std::str::from_utf8(bytes).map_err(|_| Malformed::NotText)
}

fn entries(entries: &[Entry]) -> Result<Vec<(&str, &str)>, Malformed> {
    entries
        .iter()
        .map(|e| Ok((text(&e.key)?, text(&e.value)?)))
        .collect()
}

/// `header_map` as ward's headers: names lowercase, a repeated header
/// folded into one value. `raw_value` (bytes) is preferred, as Envoy fills
/// it; a value that is not UTF-8 is read lossily (it cannot match a
/// credential, and dropping it would hide it from the forged-header check).
fn raw_headers(map: &HeaderMap) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::with_capacity(map.headers.len());
    for h in &map.headers {
        let value = if h.raw_value.is_empty() {
            String::from_utf8_lossy(&h.value)
        } else {
            String::from_utf8_lossy(&h.raw_value)
        };
        let name = String::from_utf8_lossy(&h.key).to_ascii_lowercase();
        fold_header(&mut out, &name, &value);
    }
    out
}

/// The socket address of the peer Envoy saw.
fn source_ip(attrs: &AttributeContext) -> Option<IpAddr> {
    let address = attrs
        .source
        .as_ref()?
        .address
        .as_ref()?
        .socket_address
        .as_ref()?;
    std::str::from_utf8(&address.address).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
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
            principal: "spiffe://cluster.local/ns/a/sa/b".into(),
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
        CheckView::decode(req.encode_to_vec().as_slice()).unwrap()
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
        let bad = Entry {
            key: Bytes::from_static(b"x-latin1"),
            value: Bytes::from_static(&[b'a', 0xe9]),
        };
        let mut v = view(&envoy_request(false));
        let http = v.attributes.as_mut().unwrap().request.as_mut().unwrap();
        http.http.as_mut().unwrap().headers.push(bad);
        let bytes = v.encode_to_vec();
        assert!(CheckRequest::decode(bytes.as_slice()).is_err());
        let v = CheckView::decode(bytes.as_slice()).unwrap();
        assert_eq!(v.attributes().unwrap_err(), Malformed::NotText);
    }

    #[test]
    fn strings_are_slices_of_the_request_buffer() {
        let bytes = Bytes::from(envoy_request(false).encode_to_vec());
        let v = CheckView::decode(bytes.clone()).unwrap();
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
            assert!(CheckView::decode(bytes).is_err(), "{bytes:?}");
        }
    }
}
