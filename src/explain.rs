//! `ward explain`: why a request is allowed or denied, without Envoy.
//!
//! The tool a platform engineer reaches for when a request is denied and
//! nobody knows why. It builds the same [`Checker`] `ward serve` builds
//! (same config, keys, store) and runs one request through
//! [`Checker::explain`], which records every step the real check takes:
//! the policy and where it came from, the credential found, the
//! authentication and authorization results, then the response Envoy
//! would get (status, headers set and removed, body).
//!
//! The request comes from `-H`/`-X`/URL flags or a JSON file
//! ([`ExplainRequest::from_flags`], [`ExplainRequest::from_file`]) and is
//! read here, not in the CLI, so its header rules (order and repeats kept,
//! folded as `ward serve` folds them) are written once.

use crate::config::Config;
use crate::decision::Decision;
use crate::headers::ManagedHeaders;
use crate::jwks::KeyStore;
use crate::lookup::Lookups;
use crate::metrics::Metrics;
use crate::policy::path;
use crate::request::{Headers, Request, fold_headers};
use crate::response::Responder;
use crate::store::Store;
use crate::wiring;
use serde::Deserialize;
use serde::de::{Deserializer, MapAccess, Visitor};
use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// How long `explain` waits for JWKS URLs to load.
const KEYS_WAIT: Duration = Duration::from_secs(5);

/// The request to explain (flags, or a JSON file of this shape).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct ExplainRequest {
    pub method: String,
    /// `https://host/path?query`, or `/path?query` with a `host` header.
    pub url: String,
    /// `(name, value)` in the order given; a name may repeat, and is then
    /// folded as `ward serve` folds it ([`fold_headers`]). In a file:
    /// `{"name": "value"}` or `{"name": ["value", "value"]}`.
    #[serde(deserialize_with = "header_list")]
    pub headers: Vec<(String, String)>,
    pub source_ip: Option<IpAddr>,
    /// The peer's principal Envoy would report (`source.principal`).
    pub principal: Option<String>,
    /// The `ward_policy` an Envoy route would set in `context_extensions`.
    pub envoy_policy: Option<String>,
}

/// Why a request could not be explained.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ExplainError {
    #[error("url: {0}")]
    Url(String),
    #[error("keys: {0}")]
    Keys(#[from] crate::jwt::keys::KeyError),
    #[error("store: {0}")]
    Store(#[from] crate::store::OpenError),
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error("policies: {0}")]
    Policies(#[from] crate::policy::PolicyErrors),
    /// The request flags or file could not be read (the message names
    /// which).
    #[error("{0}")]
    Request(String),
}

impl ExplainRequest {
    /// The request of a JSON file; a file without `method` takes `method`
    /// (the `-X` flag's value).
    pub(crate) fn from_file(path: &Path, method: &str) -> Result<Self, ExplainError> {
        let name = path.display();
        let text = std::fs::read_to_string(path)
            .map_err(|e| ExplainError::Request(format!("cannot read {name}: {e}")))?;
        let mut req: ExplainRequest = serde_json::from_str(&text)
            .map_err(|e| ExplainError::Request(format!("{name}: {e}")))?;
        if req.url.is_empty() {
            return Err(ExplainError::Request(format!("{name}: `url` is required")));
        }
        if req.method.is_empty() {
            req.method = method.to_string();
        }
        Ok(req)
    }

    /// The request of the command line's flags: `headers` as `-H` gives
    /// them (`Name: value`), kept in order with repeats (explain folds
    /// them as `ward serve` does). Only optional whitespace (SP, HTAB) is
    /// dropped around a value, as an HTTP parser drops it.
    pub(crate) fn from_flags(
        method: &str,
        url: &str,
        headers: &[String],
        source_ip: Option<IpAddr>,
        envoy_policy: Option<&str>,
    ) -> Result<Self, ExplainError> {
        let mut pairs = Vec::with_capacity(headers.len());
        for h in headers {
            let Some((name, value)) = h.split_once(':') else {
                return Err(ExplainError::Request(format!(
                    "-H takes `Name: value`, got {h:?}"
                )));
            };
            let value = crate::credentials::trim_ows(value).to_string();
            pairs.push((name.trim().to_ascii_lowercase(), value));
        }
        Ok(ExplainRequest {
            method: method.to_string(),
            url: url.to_string(),
            headers: pairs,
            source_ip,
            principal: None,
            envoy_policy: envoy_policy.map(str::to_string),
        })
    }
}

/// The report, and whether the request would be allowed.
pub(crate) struct Explanation {
    pub text: String,
    pub allowed: bool,
}

/// Explains `request` under `config` at `now` (unix seconds).
pub(crate) async fn explain(
    config: &Config,
    request: &ExplainRequest,
    now: u64,
) -> Result<Explanation, ExplainError> {
    let metrics = Arc::new(Metrics::new()?);
    let keys = KeyStore::new(&config.jwt)?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    keys.spawn(metrics.clone(), stop_rx);
    let waited = tokio::time::Instant::now();
    while !keys.is_ready() && waited.elapsed() < KEYS_WAIT {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let store = Store::open(config).await?;
    let lookups = Arc::new(Lookups::new(config, store, metrics.clone()));
    let checker = wiring::checker(config, keys.clone(), lookups, metrics)?;
    let parts = Parts::of(request)?;
    let req = parts.request();

    let mut out = String::new();
    let mut line = |k: &str, v: &str| {
        let _ = writeln!(out, "{k:<12} {v}");
    };
    line(
        "request",
        &format!("{} {}{}", req.method, req.host, req.path),
    );
    if !keys.is_ready() {
        line(
            "keys",
            "WARNING: not every JWKS source loaded; JWTs may fail",
        );
    }
    match path::canonicalize(req.path) {
        Ok(p) => line("path", &format!("{p} (canonical, what routes match)")),
        Err(e) => line("path", &format!("cannot canonicalize: {e}")),
    }
    let (decision, trace) = checker.explain(&req, now).await;
    let _ = stop_tx.send(true);
    for (step, detail) in &trace.steps {
        line(step, detail);
    }
    let responder = Responder::from_config(config);
    let managed = ManagedHeaders::from_config(config);
    let allowed = render_decision(&mut out, &req, &decision, &responder, &managed);
    Ok(Explanation { text: out, allowed })
}

/// What a running checker decides for a request, and why.
pub(crate) struct Introspection {
    pub decision: Decision,
    /// The HTTP status Envoy would answer with (200 on allow).
    pub status: u16,
    /// Each step of the check and its result, as `explain` prints them.
    pub steps: Vec<(String, String)>,
}

/// `request` through a running `checker` at `now`, without side effects
/// (`Checker::introspect`): the management API's `Introspect`.
pub(crate) async fn introspect<P: crate::ports::Ports>(
    checker: &crate::check::Checker<P>,
    responder: &Responder,
    request: &ExplainRequest,
    now: u64,
) -> Result<Introspection, ExplainError> {
    let parts = Parts::of(request)?;
    let req = parts.request();
    let (decision, trace) = checker.introspect(&req, now).await;
    let status = match &decision {
        Decision::Deny(deny) => responder.deny(Some(&req), deny).status,
        _ => 200,
    };
    Ok(Introspection {
        decision,
        status,
        steps: trace.steps,
    })
}

/// What the checked [`Request`] borrows: the request to explain as
/// `ward serve` would see it.
struct Parts<'a> {
    from: &'a ExplainRequest,
    method: String,
    host: String,
    path: &'a str,
    headers: Vec<(String, String)>,
}

impl<'a> Parts<'a> {
    fn of(request: &'a ExplainRequest) -> Result<Self, ExplainError> {
        let (host, path, scheme) = split_url(&request.url)?;
        // Repeated names folded by the one function every front end uses.
        let mut headers = fold_headers(request.headers.iter().cloned());
        if let Some(scheme) = scheme
            && Headers::owned(&headers).get("x-forwarded-proto").is_none()
        {
            headers.push(("x-forwarded-proto".into(), scheme.to_string()));
        }
        let host = match host {
            Some(h) => h.to_string(),
            None => Headers::owned(&headers)
                .get("host")
                .unwrap_or_default()
                .to_string(),
        };
        let method = if request.method.is_empty() {
            "GET".to_string()
        } else {
            request.method.to_ascii_uppercase()
        };
        Ok(Parts {
            from: request,
            method,
            host,
            path,
            headers,
        })
    }

    fn request(&self) -> Request<'_> {
        Request {
            method: &self.method,
            host: &self.host,
            path: self.path,
            headers: Headers::owned(&self.headers),
            policy: self.from.envoy_policy.as_deref(),
            source_ip: self.from.source_ip,
            principal: self.from.principal.as_deref(),
        }
    }
}

fn render_decision(
    out: &mut String,
    req: &Request<'_>,
    decision: &Decision,
    responder: &Responder,
    managed: &ManagedHeaders,
) -> bool {
    match decision {
        Decision::Allow(allowed) => {
            let _ = writeln!(out, "{:<13}ALLOW (200)", "decision");
            render_edits(out, req, allowed.headers(), managed);
            true
        }
        Decision::AllowAnonymous { .. } => {
            let _ = writeln!(out, "{:<13}ALLOW (200), anonymous", "decision");
            render_edits(out, req, std::iter::empty(), managed);
            true
        }
        Decision::Deny(deny) => {
            let d = responder.deny(Some(req), deny);
            let _ = writeln!(
                out,
                "{:<13}DENY {} {}",
                "decision",
                d.status,
                deny.reason.as_str()
            );
            for (k, v) in &d.headers {
                let _ = writeln!(out, "  header  {k}: {v}");
            }
            if !d.body.is_empty() {
                let _ = writeln!(out, "  body    {}", d.body);
            }
            false
        }
    }
}

/// What an allow setting `set` does to the request on its way upstream.
fn render_edits<'s>(
    out: &mut String,
    req: &Request<'_>,
    set: impl Iterator<Item = (&'s str, &'s str)> + Clone,
    managed: &ManagedHeaders,
) {
    let edits = managed.edits(req, set.clone());
    for (k, v) in set {
        let _ = writeln!(out, "  set     {k}: {v}");
    }
    for (k, v) in &edits.set {
        let _ = writeln!(out, "  set     {k}: {v}");
    }
    for k in &edits.remove {
        let _ = writeln!(out, "  remove  {k}");
    }
    for k in &edits.remove_query {
        let _ = writeln!(out, "  remove  query parameter {k}");
    }
}

/// Request headers from a JSON object in document order: each name to a
/// value or a list of values.
fn header_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<(String, String)>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Values {
        One(String),
        Many(Vec<String>),
    }
    struct Pairs;
    impl<'de> Visitor<'de> for Pairs {
        type Value = Vec<(String, String)>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a map from header names to a value or a list of values")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut pairs = Vec::new();
            while let Some((name, values)) = map.next_entry::<String, Values>()? {
                match values {
                    Values::One(v) => pairs.push((name, v)),
                    Values::Many(vs) => pairs.extend(vs.into_iter().map(|v| (name.clone(), v))),
                }
            }
            Ok(pairs)
        }
    }
    d.deserialize_map(Pairs)
}

/// `(host, path-and-query, scheme)` of a URL or a bare path.
fn split_url(url: &str) -> Result<(Option<&str>, &str, Option<&str>), ExplainError> {
    if url.starts_with('/') {
        return Ok((None, url, None));
    }
    let (scheme, rest) = url
        .split_once("://")
        .filter(|(s, _)| matches!(*s, "http" | "https"))
        .ok_or_else(|| ExplainError::Url(format!("`{url}` is not http(s)://host/path or /path")))?;
    let (host, path) = match rest.find(['/', '?']) {
        Some(i) if rest.as_bytes()[i] == b'/' => (&rest[..i], &rest[i..]),
        Some(_) => {
            return Err(ExplainError::Url(format!(
                "`{url}`: put a `/` between the host and the query"
            )));
        }
        None => (rest, "/"),
    };
    if host.is_empty() {
        return Err(ExplainError::Url(format!("`{url}` has no host")));
    }
    Ok((Some(host), path, Some(scheme)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_file_headers_keep_order_and_repeats() {
        let req: ExplainRequest = serde_json::from_str(
            r#"{"url": "/", "headers": {"Cookie": "a=1", "accept": ["x", "y"], "cookie": "b=2"}}"#,
        )
        .unwrap();
        let pairs: Vec<(&str, &str)> = req
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            pairs,
            [
                ("Cookie", "a=1"),
                ("accept", "x"),
                ("accept", "y"),
                ("cookie", "b=2")
            ]
        );
        assert!(serde_json::from_str::<ExplainRequest>(r#"{"headers": {"a": 1}}"#).is_err());
    }

    #[test]
    fn urls() {
        assert_eq!(
            split_url("https://a.example.com/x/y?z=1").unwrap(),
            (Some("a.example.com"), "/x/y?z=1", Some("https"))
        );
        assert_eq!(
            split_url("http://a:8080").unwrap(),
            (Some("a:8080"), "/", Some("http"))
        );
        assert_eq!(split_url("/p?q").unwrap(), (None, "/p?q", None));
        assert!(split_url("ftp://x/").is_err());
        assert!(split_url("a.example.com/x").is_err());
        assert!(split_url("https:///x").is_err());
    }
}
