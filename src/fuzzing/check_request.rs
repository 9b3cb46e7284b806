//! `check_request`: ward's `CheckRequest` reader against envoy-types'.
//!
//! Differential: whenever prost's full `CheckRequest::decode` accepts the
//! bytes, [`CheckView::parse`] must accept them too and read the same
//! method, path, host, headers (the `headers` map, or the folded raw
//! `header_map` when the map is empty), context extensions and source IP.
//! When prost refuses, ward may still accept: prost also checks fields
//! ward skips (UTF-8 of strings ward never reads, the shape of skipped
//! sub-messages), and reading less is the point of the reader. The
//! comparison is the one of the differential tests in `server/wire.rs`,
//! extended to `header_map`.

use crate::server::wire::{Attributes, CheckView};
use envoy_types::ext_authz::v3::pb::CheckRequest;
use envoy_types::pb::envoy::config::core::v3 as core;
use prost::Message;
use prost::bytes::Bytes;
use std::collections::BTreeMap;
use std::net::IpAddr;

/// What both readers must agree on: (method, path, host, headers,
/// extensions, source IP); maps sorted, the last value of a key kept.
pub(crate) type Read = (
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

pub(crate) fn read_by_ward(v: &CheckView) -> Option<Read> {
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

pub(crate) fn read_by_envoy_types(req: &CheckRequest) -> Option<Read> {
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
