//! ward's own view of a check: the few request attributes decisions use,
//! borrowed from whatever the transport decoded. Only the gRPC adapter
//! knows Envoy's `CheckRequest`; everything after it sees this.

use std::collections::HashMap;
use std::net::IpAddr;

/// One request to authorize. Header names are lowercase, as Envoy sends
/// them; a repeated header arrives as one comma-joined value.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub method: &'a str,
    pub host: &'a str,
    pub path: &'a str,
    pub headers: &'a HashMap<String, String>,
    /// The policy an Envoy route selected through its ext_authz
    /// `context_extensions` (key `ward_policy`), if any.
    pub policy: Option<&'a str>,
    /// The peer address Envoy saw (not necessarily the client: see
    /// `fingerprint::client_ip`).
    pub source_ip: Option<IpAddr>,
}

impl<'a> Request<'a> {
    pub fn header(&self, name: &str) -> Option<&'a str> {
        self.headers.get(name).map(String::as_str)
    }

    /// `x-request-id`, which Envoy sets on every request, for logs.
    pub fn request_id(&self) -> Option<&'a str> {
        self.header("x-request-id")
    }

    pub fn header_names(&self) -> impl Iterator<Item = &'a str> {
        self.headers.keys().map(String::as_str)
    }
}
