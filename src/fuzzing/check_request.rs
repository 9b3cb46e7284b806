//! `check_request`: ward's `CheckRequest` reader against envoy-types'.
//!
//! Differential: whenever prost's full `CheckRequest::decode` accepts the
//! bytes, [`CheckView::parse`] must accept them too and read the same
//! method, path, host, headers (the `headers` map, or the folded raw
//! `header_map` when the map is empty), context extensions and source IP.
//! When prost refuses, ward may still accept: prost also checks fields
//! ward skips (UTF-8 of strings ward never reads, the shape of skipped
//! sub-messages), and reading less is the point of the reader. The same
//! comparison runs on random and mangled messages in this module's tests.

use crate::server::wire::{Attributes, CheckView};
use envoy_types::ext_authz::v3::pb::CheckRequest;
use envoy_types::pb::envoy::config::core::v3 as core;
use prost::Message;
use prost::bytes::Bytes;
use std::collections::BTreeMap;
use std::net::IpAddr;

/// What both readers must agree on: (method, path, host, headers,
/// extensions, source IP); maps sorted, the last value of a key kept.
type Read = (
    String,
    String,
    String,
    Vec<(String, String)>,
    Vec<(String, String)>,
    Option<IpAddr>,
);

pub fn check_request(data: &[u8]) {
    let ours = CheckView::parse(Bytes::copy_from_slice(data));
    if let Ok(view) = &ours
        && let Ok(a) = view.attributes()
    {
        exercise(&a);
    }
    let Ok(theirs) = CheckRequest::decode(data) else {
        return;
    };
    let ours = match ours {
        Ok(view) => view,
        Err(e) => panic!("envoy-types decoded the request, ward refused it: {e}"),
    };
    assert_eq!(
        read_by_ward(&ours),
        read_by_envoy_types(&theirs),
        "ward reads the request differently from envoy-types"
    );
}

/// What the checker does with the attributes: header and extension
/// look-ups.
fn exercise(a: &Attributes<'_>) {
    let headers = a.headers();
    for name in ["authorization", "cookie", "x-request-id", ":authority"] {
        let _ = headers.get(name);
    }
    assert_eq!(headers.names().count(), headers.len());
    let _ = a.extension("ward_policy");
}

fn last_wins(pairs: impl Iterator<Item = (String, String)>) -> Vec<(String, String)> {
    pairs.collect::<BTreeMap<_, _>>().into_iter().collect()
}

fn read_by_ward(v: &CheckView) -> Option<Read> {
    let a = v.attributes().ok()?;
    let own = |p: &[(&str, &str)]| last_wins(p.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let headers = match &a.raw {
        Some(raw) => last_wins(raw.iter().cloned()),
        None => own(&a.pairs),
    };
    Some((
        a.method.into(),
        a.path.into(),
        a.host.into(),
        headers,
        own(&a.extensions),
        a.source_ip,
    ))
}

fn read_by_envoy_types(req: &CheckRequest) -> Option<Read> {
    let attrs = req.attributes.as_ref()?;
    let http = attrs.request.as_ref()?.http.as_ref()?;
    let source = attrs
        .source
        .as_ref()
        .and_then(|p| p.address.as_ref()?.address.as_ref());
    let ip = match source {
        Some(core::address::Address::SocketAddress(sa)) => sa.address.parse().ok(),
        _ => None,
    };
    let own = |m: &std::collections::HashMap<String, String>| {
        last_wins(m.iter().map(|(k, v)| (k.clone(), v.clone())))
    };
    let headers = match &http.header_map {
        Some(map) if http.headers.is_empty() => folded(map),
        _ => own(&http.headers),
    };
    Some((
        http.method.clone(),
        http.path.clone(),
        http.host.clone(),
        headers,
        own(&attrs.context_extensions),
        ip,
    ))
}

/// A raw `header_map` as a proxy folds it, written independently of
/// `request::fold_headers`: names lowercased, `raw_value` preferred, a
/// repeated name joined with `,` (`; ` for `cookie`).
fn folded(map: &core::HeaderMap) -> Vec<(String, String)> {
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    for h in &map.headers {
        let value = if h.raw_value.is_empty() {
            h.value.clone()
        } else {
            String::from_utf8_lossy(&h.raw_value).into_owned()
        };
        let name = h.key.to_ascii_lowercase();
        match out.get_mut(&name) {
            Some(v) => {
                v.push_str(if name == "cookie" { "; " } else { "," });
                v.push_str(&value);
            }
            None => {
                out.insert(name, value);
            }
        }
    }
    out.into_iter().collect()
}

#[cfg(test)]
mod tests {
    //! The differential check on random and mangled messages, under plain
    //! `cargo test`: here, beside the rule it applies, so that the reader
    //! (`server/wire.rs`) never imports its own fuzz harness.

    use super::*;
    use envoy_types::pb::envoy::service::auth::v3::AttributeContext as Context;
    use envoy_types::pb::envoy::service::auth::v3::attribute_context;

    /// A small deterministic generator (xorshift).
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: u64) -> usize {
            (self.next() % n) as usize
        }
        fn word(&mut self) -> String {
            let len = self.below(12);
            (0..len)
                .map(|_| (b'a' + self.below(26) as u8) as char)
                .collect()
        }
    }

    /// A random `CheckRequest`, with the fields ward skips filled in too.
    fn random_request(rng: &mut Rng) -> CheckRequest {
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
        let http = attribute_context::HttpRequest {
            id: "1234".into(),
            method: rng.word(),
            headers: (0..rng.below(20))
                .map(|_| (rng.word(), rng.word()))
                .collect(),
            path: format!("/{}", rng.word()),
            host: rng.word(),
            scheme: "https".into(),
            protocol: "HTTP/2".into(),
            body: "{}".into(),
            size: 2,
            ..Default::default()
        };
        CheckRequest {
            attributes: Some(Context {
                source: (rng.below(4) != 0).then(|| peer("2001:db8::7")),
                destination: Some(peer("10.0.0.1")),
                request: Some(attribute_context::Request {
                    time: Some(Default::default()),
                    http: Some(http),
                }),
                context_extensions: (0..rng.below(3))
                    .map(|_| (rng.word(), rng.word()))
                    .collect(),
                tls_session: Some(attribute_context::TlsSession { sni: "api".into() }),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn reads_the_same_as_envoy_types_on_random_and_mangled_messages() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let (mut agreed, mut refused) = (0, 0);
        for _ in 0..2000 {
            let req = random_request(&mut rng);
            let bytes = req.encode_to_vec();
            let ours = CheckView::parse(Bytes::from(bytes.clone())).unwrap();
            assert_eq!(read_by_ward(&ours), read_by_envoy_types(&req));
            // Two messages back to back are one, merged: the last string
            // of a field wins, maps and sub-messages are merged.
            let twice = [bytes.clone(), random_request(&mut rng).encode_to_vec()].concat();
            let merged = CheckRequest::decode(twice.as_slice()).unwrap();
            let ours = CheckView::parse(Bytes::from(twice)).unwrap();
            assert_eq!(read_by_ward(&ours), read_by_envoy_types(&merged));
            // Mangle it: flip, drop or insert bytes, or cut it short.
            let mut bad = bytes.clone();
            for _ in 0..1 + rng.below(3) {
                let at = rng.below(bad.len() as u64 + 1);
                match rng.below(4) {
                    0 if at < bad.len() => bad[at] ^= 1 << rng.below(8),
                    1 if at < bad.len() => {
                        bad.remove(at);
                    }
                    2 => bad.insert(at, rng.next() as u8),
                    _ => bad.truncate(at),
                }
            }
            let ours = CheckView::parse(Bytes::from(bad.clone())); // never panics
            match CheckRequest::decode(bad.as_slice()) {
                Ok(theirs) => {
                    // Whatever envoy-types reads, ward reads the same.
                    let ours = ours.expect("envoy-types decoded it, ward must too");
                    assert_eq!(read_by_ward(&ours), read_by_envoy_types(&theirs), "{bad:?}");
                    agreed += 1;
                }
                Err(_) => refused += 1,
            }
        }
        // Both outcomes were exercised.
        assert!(agreed > 100 && refused > 100, "{agreed} {refused}");
    }
}
