//! The route table: which route a request hits, first match wins, in
//! time that does not grow with the number of routes.
//!
//! A linear scan over thousands of routes would cost microseconds per
//! check; instead exact paths and segment prefixes are hash lookups (one
//! per path segment), globs walk a segment trie (`glob.rs`), and regexes
//! run as one `RegexSet` pass (fast for tens of regexes; a config with
//! thousands should prefer globs).
//! Each index yields candidate route numbers; the lowest candidate whose
//! host and method also match wins, which is exactly "first match wins"
//! over the list as written.
//!
//! Paths are matched in canonical form (`policy::path`), so route
//! patterns are canonicalized the same way when the table is built.

use super::glob::GlobSet;
use super::path;
use regex::RegexSet;
use std::collections::HashMap;

/// Route tables hash request paths on every check: foldhash (seeded per
/// process) is several times cheaper than SipHash for short keys, and
/// lookups never insert, so a request cannot grow a bucket.
type Map<V> = HashMap<String, V, foldhash::fast::RandomState>;

/// How a route matches the path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathMatch {
    Exact(String),
    Prefix(String),
    Glob(String),
    Regex(String),
}

impl PathMatch {
    pub fn describe(&self) -> String {
        match self {
            PathMatch::Exact(p) => format!("exact {p}"),
            PathMatch::Prefix(p) => format!("prefix {p}"),
            PathMatch::Glob(p) => format!("glob {p}"),
            PathMatch::Regex(p) => format!("regex {p}"),
        }
    }
}

/// One route as the table sees it.
#[derive(Debug, Clone)]
pub struct RouteSpec {
    pub path: PathMatch,
    /// Lowercase host names, or `*.suffix`; empty means any.
    pub hosts: Vec<String>,
    /// Upper-case methods; empty means any.
    pub methods: Vec<String>,
    pub case_sensitive: bool,
}

/// Why a route could not be compiled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    #[error("must start with `/`")]
    NotAbsolute,
    #[error("is not a canonical path (it would never match): use `{0}`")]
    NotCanonical(String),
    #[error("is not a valid regular expression: {0}")]
    BadRegex(String),
    #[error("`**` must be a whole segment")]
    BadGlob,
    #[error("`{0}` is not a valid host (lowercase name, or `*.` and a name)")]
    BadHost(String),
    #[error("`{0}` is not an HTTP method (upper-case letters)")]
    BadMethod(String),
}

#[derive(Debug, Default)]
struct Index {
    exact: Map<Vec<u32>>,
    prefix: Map<Vec<u32>>,
}

/// The compiled table.
#[derive(Debug)]
pub struct RouteTable {
    specs: Vec<RouteSpec>,
    /// Case-sensitive and case-insensitive (keys lowercased) indexes.
    sensitive: Index,
    insensitive: Index,
    globs: GlobSet,
    patterns: RegexSet,
    /// Route number of each pattern in `patterns`.
    pattern_routes: Vec<u32>,
}

impl RouteTable {
    /// Compiles `specs`; every route's problem is returned with its
    /// position.
    pub fn new(specs: Vec<RouteSpec>) -> Result<Self, Vec<(usize, RouteError)>> {
        let problems: Vec<(usize, RouteError)> = specs
            .iter()
            .enumerate()
            .filter_map(|(i, spec)| check_spec(spec).err().map(|e| (i, e)))
            .collect();
        if !problems.is_empty() {
            return Err(problems);
        }
        Self::compile(specs).map_err(|e| vec![e])
    }

    fn compile(specs: Vec<RouteSpec>) -> Result<Self, (usize, RouteError)> {
        let mut sensitive = Index::default();
        let mut insensitive = Index::default();
        let mut globs = GlobSet::default();
        let mut patterns = Vec::new();
        let mut pattern_routes = Vec::new();
        for (i, spec) in specs.iter().enumerate() {
            let n = u32::try_from(i).unwrap_or(u32::MAX);
            let index = if spec.case_sensitive {
                &mut sensitive
            } else {
                &mut insensitive
            };
            let fold = |p: &str| {
                if spec.case_sensitive {
                    p.to_string()
                } else {
                    p.to_ascii_lowercase()
                }
            };
            match &spec.path {
                PathMatch::Exact(p) => index.exact.entry(fold(p)).or_default().push(n),
                PathMatch::Prefix(p) => index.prefix.entry(fold(p)).or_default().push(n),
                PathMatch::Glob(g) => globs
                    .insert(g, spec.case_sensitive, n)
                    .map_err(|e| (i, e))?,
                PathMatch::Regex(r) => {
                    patterns.push(format!("{}^(?:{r})$", flags(spec)));
                    pattern_routes.push(n);
                }
            }
        }
        let patterns = RegexSet::new(&patterns).map_err(|e| {
            // RegexSet reports no position; find the offending pattern.
            let at = patterns
                .iter()
                .position(|p| regex::Regex::new(p).is_err())
                .map_or(0, |k| pattern_routes[k] as usize);
            (at, RouteError::BadRegex(e.to_string()))
        })?;
        Ok(Self {
            specs,
            sensitive,
            insensitive,
            globs,
            patterns,
            pattern_routes,
        })
    }

    pub fn len(&self) -> usize {
        self.specs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.specs.is_empty()
    }

    /// The first route (by position) matching a canonical path, host and
    /// method.
    pub fn find(&self, host: &str, method: &str, path: &str) -> Option<usize> {
        let mut best: Option<u32> = None;
        let host = host_without_port(host);
        let mut consider = |candidates: &[u32]| {
            for &n in candidates {
                if best.is_some_and(|b| b <= n) {
                    // Candidate lists are ascending.
                    break;
                }
                if self.host_and_method(n as usize, host, method) {
                    best = Some(n);
                    break;
                }
            }
        };
        let lower = lowercase(path);
        for (index, path) in [(&self.sensitive, path), (&self.insensitive, lower.as_ref())] {
            if index.exact.is_empty() && index.prefix.is_empty() {
                continue;
            }
            if let Some(c) = index.exact.get(path) {
                consider(c);
            }
            if !index.prefix.is_empty() {
                for prefix in segment_prefixes(path) {
                    if let Some(c) = index.prefix.get(prefix) {
                        consider(c);
                    }
                }
            }
        }
        if !self.globs.is_empty() {
            let mut matched = Vec::new();
            self.globs.matches(path, &lower, &mut matched);
            matched.sort_unstable();
            for n in matched {
                if best.is_some_and(|b| b <= n) {
                    break;
                }
                if self.host_and_method(n as usize, host, method) {
                    best = Some(n);
                    break;
                }
            }
        }
        if !self.pattern_routes.is_empty() {
            for k in self.patterns.matches(path).iter() {
                let n = self.pattern_routes[k];
                if best.is_some_and(|b| b <= n) {
                    continue;
                }
                if self.host_and_method(n as usize, host, method) {
                    best = Some(n);
                }
            }
        }
        best.map(|n| n as usize)
    }

    fn host_and_method(&self, n: usize, host: &str, method: &str) -> bool {
        let Some(spec) = self.specs.get(n) else {
            return false;
        };
        (spec.methods.is_empty() || spec.methods.iter().any(|m| m == method))
            && (spec.hosts.is_empty() || spec.hosts.iter().any(|h| host_matches(h, host)))
    }
}

/// One route's own problems (everything but how routes combine).
pub(super) fn check_spec(spec: &RouteSpec) -> Result<(), RouteError> {
    match &spec.path {
        PathMatch::Exact(p) | PathMatch::Prefix(p) => {
            let canonical = path::canonicalize(p).map_err(|_| RouteError::NotAbsolute)?;
            if canonical != *p {
                return Err(RouteError::NotCanonical(canonical));
            }
        }
        PathMatch::Glob(g) => {
            if !g.starts_with('/') {
                return Err(RouteError::NotAbsolute);
            }
            if g.split('/').any(|seg| seg != "**" && seg.contains("**")) {
                return Err(RouteError::BadGlob);
            }
        }
        PathMatch::Regex(r) => {
            regex::Regex::new(&format!("^(?:{r})$"))
                .map_err(|e| RouteError::BadRegex(e.to_string()))?;
        }
    }
    for h in &spec.hosts {
        let name = h.strip_prefix("*.").unwrap_or(h);
        let ok = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
        if !ok {
            return Err(RouteError::BadHost(h.clone()));
        }
    }
    for m in &spec.methods {
        if m.is_empty() || !m.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(RouteError::BadMethod(m.clone()));
        }
    }
    Ok(())
}

fn flags(spec: &RouteSpec) -> String {
    if spec.case_sensitive {
        String::new()
    } else {
        "(?i)".into()
    }
}

fn lowercase(path: &str) -> std::borrow::Cow<'_, str> {
    if path.bytes().any(|b| b.is_ascii_uppercase()) {
        std::borrow::Cow::Owned(path.to_ascii_lowercase())
    } else {
        std::borrow::Cow::Borrowed(path)
    }
}

/// `/a/b/c` → `/`, `/a`, `/a/b`, `/a/b/c`.
fn segment_prefixes(path: &str) -> impl Iterator<Item = &str> {
    std::iter::once("/")
        .chain(
            path.match_indices('/')
                .skip(1)
                .map(move |(i, _)| &path[..i]),
        )
        .chain((path.len() > 1).then_some(path))
}

fn host_without_port(host: &str) -> &str {
    if host.starts_with('[') {
        // [v6]:port
        return host
            .split_once(']')
            .map_or(host, |(h, _)| &host[..=h.len()]);
    }
    host.rsplit_once(':')
        .filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit()))
        .map_or(host, |(h, _)| h)
}

fn host_matches(pattern: &str, host: &str) -> bool {
    match pattern.strip_prefix("*.") {
        Some(suffix) => {
            host.len() > suffix.len() + 1
                && host.as_bytes()[host.len() - suffix.len() - 1] == b'.'
                && host[host.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
        }
        None => pattern.eq_ignore_ascii_case(host),
    }
}

#[cfg(test)]
mod tests;
