//! The `module_headers` fuzz harness: arbitrary request headers through
//! the module's reader (`view.rs`) and its plan (`plan.rs`).
//!
//! The reader borrows Envoy's bytes when they are in ward's form and folds
//! a copy when not; both must read the same request, or the module and
//! `ward serve` decide differently on the same bytes. The plan must leave
//! no managed header the client sent (the forged-header contract), in any
//! case or repetition of its name. Bytes in, a panic when a property fails:
//! `fuzz/fuzz_targets/module_headers.rs` wraps it (nightly), and the tests
//! below replay its seeds and regressions on stable. Not an API.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::IpAddr;
use std::sync::{Arc, OnceLock};
use ward::request::fold_headers;

use crate::filter::{Config, Filter, Host, LogLevel, Resume, Verdict};
use crate::peer::CertField;
use crate::stats::{Commit, ConfigHost, Flush};
use crate::view::{RawHeader, View};

/// The names ward reads beside those of the input.
const READ: [&str; 14] = [
    ":method",
    ":path",
    ":authority",
    "host",
    "authorization",
    "cookie",
    "x-forwarded-for",
    "x-request-id",
    "x-session-id",
    "x-api-key",
    "x-user-id",
    "x-auth-method",
    "x-forwarded-client-cert",
    "",
];

/// The session the harness can present (`x-session-id`), from the
/// config's seed file.
pub const SESSION: &str = "112f551c-d6fe-4e67-a818-01deee0e47c9";

/// `data`: a mode byte, then `name: value` lines (split at the first
/// `": "`; a line without one is a name with an empty value). The mode
/// picks the route's policy (`% 4`: none, `public`, an unknown one, none)
/// and whether the session's id is added last (`& 4`).
pub fn module_headers(data: &[u8]) {
    let Some((&mode, lines)) = data.split_first() else {
        return;
    };
    let mut raw = headers(lines);
    same_reading(&raw);
    if mode & 4 != 0 {
        raw.push((b"x-session-id", SESSION.as_bytes()));
    }
    if !envoy_accepts(&raw) {
        return;
    }
    let policy = match mode % 4 {
        1 => Some("public"),
        2 => Some("no-such-policy"),
        _ => None,
    };
    forged_headers_never_pass(&raw, policy);
}

fn headers(lines: &[u8]) -> Vec<RawHeader<'_>> {
    let lines = lines.split(|&b| b == b'\n').filter(|l| !l.is_empty());
    lines
        .map(|line| match line.windows(2).position(|w| w == b": ") {
            Some(at) => (&line[..at], &line[at + 2..]),
            None => (line, &b""[..]),
        })
        .collect()
}

/// The borrowed reading and the folded one give the same pairs, in the
/// same order, and the same answer for every name.
fn same_reading(raw: &[RawHeader<'_>]) {
    let lossy = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let folded = fold_headers(raw.iter().map(|(k, v)| (lossy(k), lossy(v))));
    let view = View::new(raw);
    let reference = View::Folded(folded.clone());
    let (got, want) = (view.headers(), reference.headers());
    let asked = raw.iter().map(|(k, _)| lossy(k).to_ascii_lowercase());
    for name in asked.chain(READ.iter().map(|n| (*n).to_owned())) {
        assert_eq!(got.get(&name), want.get(&name), "header {name:?}");
    }
    let names: Vec<&str> = got.names().collect();
    assert_eq!(names, want.names().collect::<Vec<_>>());
    if let View::Borrowed(pairs) = &view {
        assert_eq!(pairs.len(), raw.len(), "a borrowed reading drops nothing");
    }
    assert_eq!(view.into_owned(), folded);
}

/// Whether Envoy lets the request reach a filter at all: its codecs
/// refuse a name that is not an HTTP token (RFC 9110), an uppercase or
/// repeated pseudo-header; its connection manager a `:path` that does not
/// start with `/` (`absolute_path_rejected`).
fn envoy_accepts(raw: &[RawHeader<'_>]) -> bool {
    let token = |name: &[u8]| {
        !name.is_empty()
            && name
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(b))
    };
    let pseudo = raw
        .iter()
        .filter_map(|(n, v)| Some((n.strip_prefix(b":")?, v)));
    let mut seen: Vec<&[u8]> = Vec::new();
    for (name, value) in pseudo {
        let fine = !name.iter().any(u8::is_ascii_uppercase) && !seen.contains(&name);
        if !fine || (name == b"path" && !value.starts_with(b"/")) {
            return false;
        }
        seen.push(name);
    }
    raw.iter()
        .all(|(n, _)| token(n.strip_prefix(b":").unwrap_or(n)))
}

/// One check of `raw` on a stream modelled as Envoy's header map; what
/// reaches the backend holds no client copy of a managed header.
fn forged_headers_never_pass(raw: &[RawHeader<'_>], policy: Option<&str>) {
    let config = config();
    let mut stream = Stream::new(raw, policy);
    let verdict = Filter::new(config).on_request_headers(&mut stream);
    match verdict {
        Verdict::Continue => reaches_backend_unforged(&stream, config),
        Verdict::Answered => {
            assert_eq!(stream.replies, 1, "one local reply");
            assert!(stream.map.len() == raw.len(), "a deny edits no header");
        }
        Verdict::Wait => panic!("nothing waits: a memory store and local keys"),
    }
}

/// An allowed stream: no managed header left from the client; ward's
/// identity headers, each once.
fn reaches_backend_unforged(stream: &Stream, config: &Config) {
    assert_eq!(stream.replies, 0);
    let managed = &config.shared.managed;
    for (name, value, by) in &stream.map {
        let name = String::from_utf8_lossy(name);
        let forged = *by == By::Client && managed.is_managed(&name);
        assert!(
            !forged,
            "the client's {name}: {value:?} reaches the backend"
        );
    }
    let paths = stream.values(":path");
    assert!(
        paths.len() <= 1 && paths.iter().all(|p| p.starts_with('/')),
        "{paths:?}"
    );
    if stream.user.as_deref() == Some("carol") {
        assert_eq!(stream.values("x-user-id"), ["carol"]);
        assert_eq!(stream.values("x-auth-method"), ["session"]);
    }
}

/// One filter config for every run: sessions from a seed file, an HMAC
/// key, a token read from the query.
fn config() -> &'static Config {
    static CONFIG: OnceLock<Config> = OnceLock::new();
    CONFIG.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("ward-fuzz-module-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let seed = dir.join("seed.yaml");
        let sessions = format!("sessions:\n  - {{id: {SESSION}, user_id: carol, roles: [r]}}\n");
        std::fs::write(&seed, sessions).unwrap();
        let yaml = format!(
            "store: {{seed_file: {}}}\njwt:\n  keys: [{{kid: k, alg: HS256, secret: {{value: s3cr3t-s3cr3t-s3cr3t-s3cr3t-s3cr3t}}}}]\n  from_query: access_token\n",
            seed.display()
        );
        Config::new(yaml.as_bytes(), &mut NoStats).unwrap()
    })
}

/// Who put a header in the map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum By {
    Client,
    Ward,
}

/// A stream as Envoy 1.40's callbacks treat it (`abi_impl.cc`): names
/// matched without regard to case (Envoy's codecs lowercase them),
/// `set_header` replacing every value, or removing them all when the
/// value is null *or empty*; `add_header` appending one, and doing
/// nothing with an empty value.
struct Stream {
    map: Vec<(Vec<u8>, String, By)>,
    policy: Option<Arc<str>>,
    replies: usize,
    /// The `user_id` ward put in the stream's metadata.
    user: Option<String>,
}

impl Stream {
    fn new(raw: &[RawHeader<'_>], policy: Option<&str>) -> Self {
        let map = raw.iter().map(|(k, v)| {
            let value = String::from_utf8_lossy(v).into_owned();
            (k.to_vec(), value, By::Client)
        });
        Stream {
            map: map.collect(),
            policy: policy.map(Arc::from),
            replies: 0,
            user: None,
        }
    }

    fn values(&self, name: &str) -> Vec<&str> {
        let named = self
            .map
            .iter()
            .filter(|(k, ..)| k.eq_ignore_ascii_case(name.as_bytes()));
        named.map(|(_, v, _)| v.as_str()).collect()
    }
}

impl Host for Stream {
    fn request_headers(&mut self) -> Vec<RawHeader<'_>> {
        let map = self.map.iter();
        map.map(|(k, v, _)| (k.as_slice(), v.as_bytes())).collect()
    }
    fn set_header(&mut self, name: &str, value: Option<&str>) {
        assert_eq!(self.replies, 0, "a header set after the reply");
        self.map
            .retain(|(k, ..)| !k.eq_ignore_ascii_case(name.as_bytes()));
        if let Some(value) = value {
            self.add_header(name, value);
        }
    }
    fn add_header(&mut self, name: &str, value: &str) {
        assert_eq!(self.replies, 0, "a header added after the reply");
        if !value.is_empty() {
            let name = name.as_bytes().to_vec();
            self.map.push((name, value.into(), By::Ward));
        }
    }
    fn clear_route_cache(&mut self) {}
    fn send_response(&mut self, status: u16, _: &[(&str, &str)], _: &str, _: &str) {
        assert!((400..600).contains(&status), "a deny's status {status}");
        self.replies += 1;
    }
    fn source_ip(&mut self) -> Option<IpAddr> {
        crate::filter::parse_ip("127.0.0.1:5000")
    }
    fn peer_certificate(&mut self, _: CertField) -> Option<&[u8]> {
        None
    }
    fn route_policy(&mut self) -> Option<Arc<str>> {
        self.policy.clone()
    }
    fn log(&mut self, _: LogLevel, _: &str) {}
    fn resumer(&mut self) -> Option<Box<dyn Resume>> {
        None
    }
    fn continue_decoding(&mut self) {}
    fn increment_counter(&mut self, _: usize, _: &[&str], _: u64) {}
    fn record_histogram(&mut self, _: usize, _: u64) {}
    fn set_metadata(&mut self, _: &str, entries: &[(&str, &str)]) {
        for (key, value) in entries {
            if *key == "user_id" {
                self.user = Some((*value).into());
            }
        }
    }
}

/// Envoy's stats, not kept (also `benches/filter.rs`'s).
pub struct NoStats;

impl Flush for NoStats {
    fn add_counter(&mut self, _: usize, _: &[&str], _: u64) {}
    fn set_gauge(&mut self, _: usize, _: u64) {}
}

impl ConfigHost for NoStats {
    fn counter(&mut self, _: &str, _: &[&str]) -> Result<usize, String> {
        Ok(0)
    }
    fn histogram(&mut self, _: &str, _: &[&str]) -> Result<usize, String> {
        Ok(0)
    }
    fn gauge(&mut self, _: &str) -> Result<usize, String> {
        Ok(0)
    }
    fn warn(&mut self, _: &str) {}
    fn flusher(&mut self) -> Option<Box<dyn Commit>> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    /// The files of `fuzz/<kind>/module_headers/`.
    fn inputs(kind: &str) -> Vec<PathBuf> {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
        let Ok(dir) = std::fs::read_dir(dir.join(kind).join("module_headers")) else {
            return Vec::new();
        };
        let mut files: Vec<PathBuf> = dir.map(|e| e.unwrap().path()).collect();
        files.retain(|p| p.is_file());
        files.sort();
        files
    }

    fn stream(raw: &[(&str, &str)], policy: Option<&str>) -> (Stream, Verdict) {
        let raw: Vec<RawHeader<'_>> = raw
            .iter()
            .map(|(k, v)| (k.as_bytes(), v.as_bytes()))
            .collect();
        let mut stream = Stream::new(&raw, policy);
        let verdict = Filter::new(config()).on_request_headers(&mut stream);
        (stream, verdict)
    }

    /// The harness reaches an allow with an identity, and its model sees
    /// ward's headers replace the client's (every case and repetition).
    #[test]
    fn the_session_allows_and_replaces_forged_copies() {
        let forged = [
            ("x-user-id", "mallory"),
            ("X-User-Id", "eve"),
            ("x_auth_method", "jwt"),
        ];
        let raw = [&forged[..], &[("x-session-id", SESSION)]].concat();
        let (stream, verdict) = stream(&raw, None);
        assert_eq!(verdict, Verdict::Continue);
        assert_eq!(stream.user.as_deref(), Some("carol"));
        reaches_backend_unforged(&stream, config());
        assert_eq!(stream.values("x_auth_method"), Vec::<&str>::new());
    }

    /// The property fails on a stream that still holds a forged copy: the
    /// harness could catch a plan that forgot one.
    #[test]
    fn a_forged_copy_left_in_place_fails_the_property() {
        let (mut stream, verdict) = stream(&[("x-a", "1")], Some("public"));
        assert_eq!(verdict, Verdict::Continue);
        reaches_backend_unforged(&stream, config());
        stream
            .map
            .push((b"X-User-Id".to_vec(), "mallory".into(), By::Client));
        let run = std::panic::catch_unwind(|| reaches_backend_unforged(&stream, config()));
        assert!(run.is_err());
    }

    #[test]
    fn module_headers_seeds_and_regressions_replay() {
        let seeds = inputs("seeds");
        assert!(seeds.len() >= 5, "only {} seeds", seeds.len());
        for file in [seeds, inputs("regressions")].concat() {
            let data = std::fs::read(&file).unwrap();
            let run = std::panic::catch_unwind(|| module_headers(&data));
            assert!(run.is_ok(), "{} fails", file.display());
        }
    }
}
