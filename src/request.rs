//! ward's own view of a check: the few request attributes decisions use,
//! borrowed from whatever the transport decoded. Only the gRPC adapter
//! knows Envoy's `CheckRequest`; everything after it sees this.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::net::IpAddr;

/// One request to authorize. Header names are lowercase, as Envoy sends
/// them; a repeated header arrives as one comma-joined value.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub method: &'a str,
    pub host: &'a str,
    pub path: &'a str,
    pub headers: Headers<'a>,
    /// The policy an Envoy route selected through its ext_authz
    /// `context_extensions` (key `ward_policy`), if any.
    pub policy: Option<&'a str>,
    /// The peer address Envoy saw (not necessarily the client: see
    /// `fingerprint::client_ip`).
    pub source_ip: Option<IpAddr>,
    /// The principal of the peer's certificate as Envoy reports it
    /// (`source.principal`: downstream mTLS), if any. Only the gRPC mode
    /// learns it; see `workload.rs` for what else may name a workload.
    pub principal: Option<&'a str>,
}

impl<'a> Request<'a> {
    pub fn header(&self, name: &str) -> Option<&'a str> {
        self.headers.get(name)
    }

    /// `x-request-id`, which Envoy sets on every request, for logs.
    pub fn request_id(&self) -> Option<&'a str> {
        self.header("x-request-id")
    }

    /// The path as a deny's log line shows it: without its query, which
    /// may carry a token (`jwt.from_query`, a stray `access_token`) or
    /// another secret, and credentials are never logged.
    pub fn logged_path(&self) -> &'a str {
        self.path
            .split_once('?')
            .map_or(self.path, |(path, _)| path)
    }

    pub fn header_names(&self) -> impl Iterator<Item = &'a str> + use<'a> {
        self.headers.names()
    }
}

/// A request's headers as `(name, value)` pairs, names lowercase.
///
/// A slice searched from the end, not a map: a check reads a handful of
/// headers out of a dozen or two, and comparing names costs less than
/// hashing them into a map first. The gRPC adapter borrows the pairs from
/// the request bytes as decoded, without copying them; HTTP mode and
/// `ward explain` hold owned pairs. If a name occurs twice, the last one
/// counts (as when a protobuf map is decoded).
#[derive(Debug, Clone, Copy)]
pub enum Headers<'a> {
    Borrowed(&'a [(&'a str, &'a str)]),
    Owned(&'a [(String, String)]),
}

impl Default for Headers<'_> {
    fn default() -> Self {
        Headers::Borrowed(&[])
    }
}

impl<'a> Headers<'a> {
    pub fn new(pairs: &'a [(&'a str, &'a str)]) -> Self {
        Headers::Borrowed(pairs)
    }

    pub fn owned(pairs: &'a [(String, String)]) -> Self {
        Headers::Owned(pairs)
    }

    /// The value of header `name` (lowercase).
    pub fn get(&self, name: &str) -> Option<&'a str> {
        match *self {
            Headers::Borrowed(p) => p.iter().rev().find(|(k, _)| *k == name).map(|(_, v)| *v),
            Headers::Owned(p) => p
                .iter()
                .rev()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str()),
        }
    }

    pub fn names(&self) -> impl Iterator<Item = &'a str> + use<'a> {
        let (borrowed, owned) = match *self {
            Headers::Borrowed(p) => (p, &[][..]),
            Headers::Owned(p) => (&[][..], p),
        };
        let borrowed = borrowed.iter().map(|(k, _)| *k);
        borrowed.chain(owned.iter().map(|(k, _)| k.as_str()))
    }

    pub fn len(&self) -> usize {
        match self {
            Headers::Borrowed(p) => p.len(),
            Headers::Owned(p) => p.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Owned pairs from headers in the order received, names lowercased (ASCII)
/// and a repeated name folded into one value the way a proxy folds it: `,`
/// between values (`; ` for `cookie`). The one fold every front end uses
/// (gRPC's raw `header_map`, HTTP mode, the Envoy module, `ward explain`),
/// so they read a request alike. It runs on every check: a request's few
/// names are compared in place (no allocation beyond the output); past
/// `FOLD_SCAN` names an index by name hash keeps it linear in the number
/// of headers, however many repeat.
pub fn fold_headers(headers: impl IntoIterator<Item = (String, String)>) -> Vec<(String, String)> {
    let headers = headers.into_iter();
    let mut out: Vec<(String, String)> = Vec::with_capacity(headers.size_hint().0);
    // Built past FOLD_SCAN names: a seeded hash of each name, its place.
    let mut index: Option<(foldhash::fast::RandomState, HashMap<u64, usize, NoHash>)> = None;
    for (mut name, value) in headers {
        name.make_ascii_lowercase();
        let found = match &mut index {
            None => out.iter().position(|(n, _)| *n == name),
            Some((hasher, index)) => {
                let hash = hasher.hash_one(&name);
                match index.get(&hash) {
                    Some(&i) if out[i].0 == name => Some(i),
                    // A hash collision (or none yet): find it the slow way.
                    Some(_) => out.iter().position(|(n, _)| *n == name),
                    None => {
                        index.insert(hash, out.len());
                        None
                    }
                }
            }
        };
        match found {
            Some(i) => {
                let folded = &mut out[i].1;
                folded.push_str(if name == "cookie" { "; " } else { "," });
                folded.push_str(&value);
            }
            None => {
                out.push((name, value));
                if index.is_none() && out.len() > FOLD_SCAN {
                    let hasher = foldhash::fast::RandomState::default();
                    let places = out.iter().enumerate();
                    let places = places.map(|(i, (n, _))| (hasher.hash_one(n), i)).collect();
                    index = Some((hasher, places));
                }
            }
        }
    }
    out
}

/// How many distinct names [`fold_headers`] compares one by one before it
/// indexes them.
const FOLD_SCAN: usize = 24;

/// A map keyed by a hash already computed: the key is its own hash.
type NoHash = std::hash::BuildHasherDefault<IdentityHasher>;

#[derive(Default)]
struct IdentityHasher(u64);

impl std::hash::Hasher for IdentityHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A query token never reaches a log line through the path.
    #[test]
    fn the_logged_path_has_no_query() {
        let logged = |path| {
            let req = Request {
                method: "GET",
                host: "h",
                path,
                headers: Headers::default(),
                policy: None,
                source_ip: None,
                principal: None,
            };
            req.logged_path()
        };
        assert_eq!(logged("/api?access_token=a.b.c&x=1"), "/api");
        assert_eq!(logged("/api?"), "/api");
        assert_eq!(logged("/a/b"), "/a/b");
        assert_eq!(logged(""), "");
    }

    #[test]
    fn lookup_by_name_last_one_wins() {
        let pairs = [("a", "1"), ("cookie", "x=1"), ("a", "2")];
        let h = Headers::new(&pairs);
        assert_eq!(h.get("a"), Some("2"));
        assert_eq!(h.get("cookie"), Some("x=1"));
        assert_eq!(h.get("Cookie"), None, "names are compared as given");
        assert_eq!(h.get("b"), None);
        assert_eq!(h.names().collect::<Vec<_>>(), ["a", "cookie", "a"]);
        assert_eq!(Headers::default().get("a"), None);
        let owned = vec![("a".to_string(), "1".to_string()), ("a".into(), "3".into())];
        let h = Headers::owned(&owned);
        assert_eq!(h.get("a"), Some("3"));
        assert_eq!(h.names().count(), 2);
    }

    #[test]
    fn repeated_headers_fold_into_one() {
        let own = |(k, v): (&str, &str)| (k.to_string(), v.to_string());
        let pairs = fold_headers(
            [
                ("accept", "a"),
                ("cookie", "x=1"),
                ("Accept", "b"),
                ("cookie", "y=2"),
            ]
            .map(own),
        );
        assert_eq!(pairs.len(), 2);
        assert_eq!(Headers::owned(&pairs).get("accept"), Some("a,b"));
        assert_eq!(Headers::owned(&pairs).get("cookie"), Some("x=1; y=2"));
    }

    /// Past the names compared one by one (an index takes over), the fold
    /// is the same: every size up to well past it, with repeats early and
    /// late, in mixed case, against the plainest fold.
    #[test]
    fn many_headers_fold_as_few_do() {
        fn plain(pairs: &[(String, String)]) -> Vec<(String, String)> {
            let mut out: Vec<(String, String)> = Vec::new();
            for (name, value) in pairs {
                let name = name.to_ascii_lowercase();
                match out.iter_mut().find(|(n, _)| *n == name) {
                    Some((_, v)) => {
                        v.push_str(if name == "cookie" { "; " } else { "," });
                        v.push_str(value);
                    }
                    None => out.push((name, value.clone())),
                }
            }
            out
        }
        for size in 0..(3 * FOLD_SCAN) {
            let pairs: Vec<(String, String)> = (0..size)
                .map(|i| {
                    let name = match i % 7 {
                        0 => "cookie".to_string(),
                        3 => format!("X-Repeat-{}", i % 5),
                        _ => format!("x-header-{i}"),
                    };
                    (name, format!("v{i}"))
                })
                .collect();
            assert_eq!(fold_headers(pairs.clone()), plain(&pairs), "{size} headers");
        }
    }
}
