//! What a decision does to the stream, worked out in full before the
//! first change is made.
//!
//! The check reads the request's headers straight out of Envoy's buffers
//! (`view.rs`), and Envoy invalidates those as soon as a header is set or
//! removed. So everything that reads the request (which identity headers
//! replace a forged copy, the managed headers to remove, the path without
//! a query token, a deny's body and log line) happens here, into a
//! [`Plan`] that owns or borrows only the decision and the config; only
//! then does [`Plan::apply`] call into Envoy.

use std::borrow::Cow;
use std::time::Instant;
use ward::decision::{Decision, Deny};
use ward::request::Request;

use crate::filter::{Host, LogLevel, METADATA_NAMESPACE, Shared, Verdict};

/// One decision's changes to its stream, in the order they are made.
pub struct Plan<'d> {
    decision: &'d Decision,
    action: Action<'d>,
}

enum Action<'d> {
    /// The request goes on with these header edits.
    Allow(Edits<'d>),
    /// ward answers it locally.
    Deny(Reply),
}

/// An allow's edits to the request headers.
struct Edits<'d> {
    headers: Vec<HeaderEdit<'d>>,
    /// `:path` without a query token (`jwt.from_query`), if it had one.
    path: Option<String>,
}

/// One header set (added if the client did not send it, else every value
/// replaced) or removed (`value: None`).
struct HeaderEdit<'d> {
    name: Cow<'d, str>,
    value: Option<Cow<'d, str>>,
    /// Whether the client sent it: `http_set_header` (which first finds
    /// and removes every value) only then; else the cheaper add.
    sent: bool,
}

/// A deny, rendered.
struct Reply {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: String,
    details: String,
    log: String,
}

impl<'d> Plan<'d> {
    /// Everything `decision` does to `req`'s stream, read from `req` now.
    pub fn new(shared: &Shared, req: &Request<'_>, decision: &'d Decision, start: Instant) -> Self {
        let action = match decision {
            Decision::Allow(allowed) => Action::Allow(edits(shared, req, allowed.headers())),
            Decision::AllowAnonymous { .. } => {
                Action::Allow(edits(shared, req, std::iter::empty()))
            }
            Decision::Deny(deny) => Action::Deny(reply(shared, req, deny, start)),
        };
        Plan { decision, action }
    }

    /// Counts the decision, and makes its changes: the identity headers,
    /// or the local reply.
    pub fn apply(self, shared: &Shared, host: &mut impl Host, start: Instant) -> Verdict {
        let micros = u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX);
        shared
            .stats
            .record(host, self.decision, micros, &shared.metrics);
        set_metadata(host, self.decision);
        match self.action {
            Action::Allow(edits) => {
                edits.apply(host);
                Verdict::Continue
            }
            Action::Deny(reply) => {
                let headers: Vec<(&str, &str)> = reply
                    .headers
                    .iter()
                    .map(|(k, v)| (*k, v.as_str()))
                    .collect();
                host.send_response(reply.status, &headers, &reply.body, &reply.details);
                host.log(LogLevel::Info, &reply.log);
                Verdict::Answered
            }
        }
    }
}

/// Sets the identity headers, removes forged managed headers and
/// credentials not forwarded (a `jwt.from_query` token cut out of
/// `:path`, as Envoy's `query_parameters_to_remove` does in gRPC mode).
fn edits<'d>(
    shared: &Shared,
    req: &Request<'_>,
    set: impl Iterator<Item = (&'d str, &'d str)> + Clone,
) -> Edits<'d> {
    let edits = shared.managed.edits(req, set.clone());
    let path = ward::forward::path_without_query(req.path, &edits.remove_query);
    let sent = |name: &str| req.headers.get(name).is_some();
    let mut headers: Vec<HeaderEdit<'d>> = Vec::with_capacity(8);
    for (name, value) in set {
        // A name set twice (config validation refuses that; this is the
        // backstop) replaces the first value, as ext_authz's
        // OVERWRITE_IF_EXISTS_OR_ADD does: the last one wins.
        let planned = headers.iter().any(|e| e.name == name);
        headers.push(HeaderEdit {
            sent: planned || sent(name),
            name: Cow::Borrowed(name),
            value: Some(Cow::Borrowed(value)),
        });
    }
    for (name, value) in edits.set {
        headers.push(HeaderEdit {
            sent: sent(&name),
            name: Cow::Owned(name),
            value: Some(Cow::Owned(value)),
        });
    }
    for name in edits.remove {
        headers.push(HeaderEdit {
            sent: true,
            name: Cow::Owned(name),
            value: None,
        });
    }
    Edits { headers, path }
}

impl Edits<'_> {
    /// The edits, then a new route choice if anything changed (routes may
    /// match on the headers ward sets or removes: docs/security.md).
    fn apply(self, host: &mut impl Host) {
        let changed = !self.headers.is_empty() || self.path.is_some();
        for edit in &self.headers {
            match call(edit.value.as_deref(), edit.sent) {
                Call::Add(value) => host.add_header(&edit.name, value),
                Call::Set(value) => host.set_header(&edit.name, Some(value)),
                Call::Remove => host.set_header(&edit.name, None),
                Call::Nothing => {}
            }
        }
        if let Some(path) = &self.path {
            host.set_header(":path", Some(path));
        }
        if changed {
            host.clear_route_cache();
        }
    }
}

/// The call into Envoy one header edit makes.
#[derive(Debug, PartialEq, Eq)]
enum Call<'v> {
    Add(&'v str),
    Set(&'v str),
    Remove,
    Nothing,
}

/// Setting `value` (`None`: removing) on a header the client `sent` or
/// not. An empty value is no header on every Envoy: 1.40's callbacks
/// remove on an empty value and never add one, a later Envoy may set it
/// empty, so ward decides instead of Envoy.
fn call(value: Option<&str>, sent: bool) -> Call<'_> {
    match (value, sent) {
        (Some(""), false) | (None, false) => Call::Nothing,
        (Some(""), true) | (None, true) => Call::Remove,
        (Some(value), false) => Call::Add(value),
        (Some(value), true) => Call::Set(value),
    }
}

/// The deny's response, and its log line as `ward serve` writes it.
fn reply(shared: &Shared, req: &Request<'_>, deny: &Deny, start: Instant) -> Reply {
    let d = shared.responder.deny(Some(req), deny);
    let log = format!(
        "ward: deny request_id={} reason={} status={} policy={} method={} credential={} path={} transport=module micros={}",
        req.request_id().unwrap_or(""),
        deny.reason.as_str(),
        d.status,
        deny.policy.as_ref().map_or("", |p| p.name.as_str()),
        deny.method.map_or("none", |m| m.as_str()),
        deny.credential
            .as_ref()
            .map(ward::credentials::short_hash)
            .unwrap_or_default(),
        req.logged_path(),
        start.elapsed().as_micros(),
    );
    Reply {
        status: d.status,
        headers: d.headers,
        body: d.body,
        details: format!("ward_{}", deny.reason.as_str()),
        log,
    }
}

/// The decision in the stream's dynamic metadata, with the gRPC mode's
/// keys (docs/decisions.md#dynamic-metadata), in one call: Envoy builds
/// and merges a protobuf `Struct` per call, the costliest thing an allow
/// asks of it.
fn set_metadata(host: &mut impl Host, decision: &Decision) {
    let allow;
    let entries: &[(&str, &str)] = match decision {
        Decision::Allow(allowed) => {
            allow = [
                ("user_id", allowed.identity.user_id()),
                ("auth_method", allowed.identity.method.as_str()),
            ];
            &allow
        }
        Decision::AllowAnonymous { .. } => &[("auth_method", "none")],
        Decision::Deny(deny) => &[("reason", deny.reason.as_str())],
    };
    host.set_metadata(METADATA_NAMESPACE, entries);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_value_is_no_header_and_a_sent_one_is_replaced_or_removed() {
        assert_eq!(call(Some("carol"), false), Call::Add("carol"));
        assert_eq!(call(Some("carol"), true), Call::Set("carol"));
        assert_eq!(call(Some(""), false), Call::Nothing);
        assert_eq!(call(Some(""), true), Call::Remove);
        assert_eq!(call(None, true), Call::Remove);
        assert_eq!(call(None, false), Call::Nothing);
    }

    #[test]
    fn a_header_planned_twice_keeps_the_last_value() {
        let yaml = b"jwt:\n  keys:\n    - kid: k\n      alg: HS256\n      secret:\n        value: s3cr3t-s3cr3t-s3cr3t-s3cr3t-s3cr3t\n";
        let defined = &mut crate::stats::tests::Defined::default();
        let config = crate::filter::Config::new(yaml, defined).unwrap();
        let pairs = [(":path", "/"), ("x-user-id", "forged")];
        let req = Request {
            method: "GET",
            host: "h",
            path: "/",
            headers: ward::request::Headers::new(&pairs),
            policy: None,
            source_ip: None,
            principal: None,
        };
        let set = [("x-a", "1"), ("x-a", "2"), ("x-user-id", "u")];
        let edits = edits(&config.shared, &req, set.into_iter());
        let calls: Vec<_> = edits
            .headers
            .iter()
            .map(|e| (&*e.name, call(e.value.as_deref(), e.sent)))
            .collect();
        assert_eq!(
            calls,
            [
                ("x-a", Call::Add("1")),
                ("x-a", Call::Set("2")),
                ("x-user-id", Call::Set("u"))
            ]
        );
    }
}
