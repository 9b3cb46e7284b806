//! `workload`: the forwarded client certificate headers a trusted hop
//! sets, read as `workload.rs` reads them.
//!
//! The first byte picks a mode (low bit):
//! - `0`: the text as an `x-forwarded-client-cert` value, read without
//!   and with a hop to pass over; a principal found in a value without
//!   escapes is a piece of the value's last element (or the one before
//!   it, for a hop), and reading it again is stable; through
//!   [`Workload::principal`] (any peer trusted) an accepted principal is
//!   always safe to put in a header;
//! - `1`: the bytes as the DER of a `Client-Cert` (`:base64:`), read by
//!   `x509-parser`: an error or a non-empty name, never a panic.

use crate::config::Config;
use crate::request::{Headers, Request};
use crate::workload::{Workload, principal_of_client_cert, principal_of_xfcc};
use base64::Engine;

const HOP: &str = "spiffe://cluster.local/ns/edge/sa/gateway";

pub fn workload(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode & 1 {
        0 => xfcc(&super::text(rest)),
        _ => client_cert(rest),
    }
}

fn xfcc(value: &str) {
    for hop in [None, Some(HOP)] {
        let Ok(Some(found)) = principal_of_xfcc(value, hop) else {
            continue;
        };
        assert!(!found.is_empty(), "{value:?}: an empty principal");
        if !value.contains('\\') {
            assert!(value.contains(&*found), "{value:?}: {found:?} is not in it");
        }
        let again = principal_of_xfcc(value, hop).ok().flatten();
        assert_eq!(again.as_deref(), Some(&*found), "{value:?}: unstable");
    }
    let config: Config =
        serde_yaml_ng::from_str("workload: {forwarded_cert: {header: xfcc, any_peer: true}}")
            .unwrap_or_default();
    let pairs = [("x-forwarded-client-cert", value)];
    let req = Request {
        method: "GET",
        host: "h",
        path: "/",
        headers: Headers::new(&pairs),
        policy: None,
        source_ip: None,
        principal: None,
    };
    if let Ok(Some(p)) = Workload::from_config(&config).principal(&req) {
        assert!(
            p.name.bytes().all(|b| (0x20..0x7f).contains(&b)) && p.name.trim() == p.name,
            "{value:?}: {:?} cannot go into a header",
            p.name
        );
    }
}

fn client_cert(der: &[u8]) {
    let value = format!(
        ":{}:",
        base64::engine::general_purpose::STANDARD.encode(der)
    );
    if let Ok(Some(name)) = principal_of_client_cert(&value) {
        assert!(!name.is_empty());
    }
}
