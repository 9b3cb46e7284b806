//! What of a credential reaches the backend on allow.
//!
//! ward answers *who* the caller is with identity headers; the credential
//! itself is the caller's secret, and a backend that receives it can leak
//! it (access logs, error reports, outbound calls). Each kind says whether
//! it is forwarded (`forward_credential` under `jwt`, `sessions`,
//! `api_keys`, like Envoy jwt_authn's `forward`): JWTs and sessions are by
//! default (backends often call on with the token, or read the session
//! cookie), API keys are not (a long-lived secret, usually meant for the
//! edge only). A kind that is not forwarded is removed on every allow,
//! anonymous ones included, whether or not it was the credential checked:
//! its header, an `Authorization` with its scheme, and for sessions the
//! cookie cut out of `cookie` (the other cookies stay). A token in the
//! query (`jwt.from_query`) is always removed: URLs are logged everywhere.
//!
//! Pure: the request in, [`Edits`] out, rendered per check by the gRPC
//! and HTTP adapters (cheap: a few header lookups).

use crate::config::Config;
use crate::credentials::{cookie_name, cookie_pieces, param_is, query_pairs, trim_ows};
use crate::request::Request;

/// The changes an allow makes to the request beside the identity headers
/// it sets. Envoy removes after it sets, so no header is both in `remove`
/// and set (here or as an identity header).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Edits {
    /// Client headers to remove (lowercase).
    pub remove: Vec<String>,
    /// Headers to overwrite for this request only: `cookie` without the
    /// session cookie.
    pub set: Vec<(String, String)>,
    /// Query parameters to remove (gRPC mode; the HTTP mode cannot, and
    /// config validation refuses what would need it there).
    pub remove_query: Vec<String>,
}

impl Edits {
    /// Adds `name` to `remove` unless it is set (by the identity or here)
    /// or already listed.
    fn remove<'s>(&mut self, name: &str, mut identity: impl Iterator<Item = (&'s str, &'s str)>) {
        let sets = |s: &str| s.eq_ignore_ascii_case(name);
        if !identity.any(|(s, _)| sets(s))
            && !self.set.iter().any(|(s, _)| sets(s))
            && !self.remove.iter().any(|r| r == name)
        {
            self.remove.push(name.to_string());
        }
    }
}

/// The credentials that must not reach the backend, from the config.
#[derive(Debug, Clone, Default)]
pub(crate) struct Forwarding {
    /// Headers removed when present (lowercase).
    headers: Vec<String>,
    /// `Authorization` schemes whose header is removed.
    schemes: Vec<String>,
    /// The session cookie, cut out of `cookie`.
    cookie: Option<String>,
    /// The query parameter carrying a JWT (`jwt.from_query`).
    query: Option<String>,
}

impl Forwarding {
    pub(crate) fn from_config(config: &Config) -> Self {
        let mut f = Forwarding::default();
        let jwt = &config.jwt;
        // Opaque tokens travel in the JWT header: the same rule.
        if config.bearer_on() && !jwt.forward_credential {
            if jwt.header == "authorization" {
                f.schemes.push("bearer".into());
            } else {
                f.headers.push(jwt.header.clone());
            }
        }
        if !(jwt.keys.is_empty() && jwt.jwks.is_empty()) {
            f.query = jwt.from_query.clone();
        }
        let sessions = &config.sessions;
        if sessions.enabled && !sessions.forward_credential {
            f.headers.push(sessions.header.clone());
            f.cookie = Some(sessions.cookie.clone());
        }
        let keys = &config.api_keys;
        if keys.enabled && !keys.forward_credential {
            f.headers.push(keys.header.clone());
            f.schemes.push(keys.scheme.clone());
        }
        f
    }

    /// Adds this request's credential edits to `edits`; `identity` is what
    /// the allow sets.
    pub(crate) fn apply<'s>(
        &self,
        req: &Request<'_>,
        identity: impl Iterator<Item = (&'s str, &'s str)> + Clone,
        edits: &mut Edits,
    ) {
        if let Some(name) = &self.cookie
            && let Some(header) = req.header("cookie")
            && let Some(rest) = without_cookie(header, name)
        {
            if rest.is_empty() {
                edits.remove("cookie", identity.clone());
            } else {
                edits.set.push(("cookie".into(), rest));
            }
        }
        for name in &self.headers {
            if req.header(name).is_some() {
                edits.remove(name, identity.clone());
            }
        }
        if !self.schemes.is_empty()
            && let Some(value) = req.header("authorization")
        {
            let value = trim_ows(value);
            let scheme = value.split([' ', '\t', ',']).next().unwrap_or(value);
            if self.schemes.iter().any(|s| s.eq_ignore_ascii_case(scheme)) {
                edits.remove("authorization", identity.clone());
            }
        }
        if let Some(param) = &self.query
            && let Some((_, query)) = req.path.split_once('?')
            && query_pairs(query).any(|(name, _)| param_is(name, param))
        {
            edits.remove_query.push(param.clone());
        }
    }
}

/// The request path without the query parameters named in `params`
/// (compared form-decoded, as the credential reader compares them), the
/// rest of the query as it was, in its order; without the `?` when nothing
/// is left. `None` when no parameter matched. For a proxy that rewrites
/// `:path` itself (the Envoy module), where the gRPC mode has Envoy apply
/// `query_parameters_to_remove`.
pub fn path_without_query(path: &str, params: &[String]) -> Option<String> {
    if params.is_empty() {
        return None;
    }
    let (base, query) = path.split_once('?')?;
    let named = |name: &str| params.iter().any(|p| param_is(name, p));
    let pieces = || {
        query
            .split('&')
            .map(|p| (p, p.split_once('=').map_or(p, |(n, _)| n)))
    };
    if !pieces().any(|(_, name)| named(name)) {
        return None;
    }
    let kept: Vec<&str> = pieces()
        .filter(|(_, name)| !named(name))
        .map(|(piece, _)| piece)
        .collect();
    Some(match kept.join("&") {
        rest if rest.is_empty() => base.to_owned(),
        rest => format!("{base}?{rest}"),
    })
}

/// The `Cookie` header without cookie `name`, the other cookies as they
/// were; `None` when `name` is not in it. Pieces are found as the
/// extractor finds them (`;`, and `,` where Envoy folded two headers), so
/// every session cookie ward could read is cut.
pub(crate) fn without_cookie(header: &str, name: &str) -> Option<String> {
    let is_it = |piece: &str| cookie_name(piece) == Some(name);
    if !cookie_pieces(header).any(is_it) {
        return None;
    }
    let kept: Vec<String> = header
        .split(';')
        .filter_map(|part| {
            if !part.split(',').any(|c| is_it(trim_ows(c))) {
                let part = trim_ows(part);
                return (!part.is_empty()).then(|| part.to_string());
            }
            let crumbs: Vec<&str> = part
                .split(',')
                .map(trim_ows)
                .filter(|c| !c.is_empty() && !is_it(c))
                .collect();
            (!crumbs.is_empty()).then(|| crumbs.join(","))
        })
        .collect();
    Some(kept.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::Headers;

    fn forwarding(yaml: &str) -> Forwarding {
        let base = "jwt:\n  keys: [{alg: RS256, pem_file: tests/fixtures/keys/rsa.pub}]\n";
        let config = Config::from_yaml(&format!("{base}{yaml}")).unwrap();
        Forwarding::from_config(&config)
    }

    fn edits(f: &Forwarding, path: &str, headers: &[(&str, &str)], set: &[(&str, &str)]) -> Edits {
        let req = Request {
            method: "GET",
            host: "h",
            path,
            headers: Headers::new(headers),
            policy: None,
            source_ip: None,
            principal: None,
        };
        let mut e = Edits::default();
        f.apply(&req, set.iter().copied(), &mut e);
        e
    }

    #[test]
    fn api_keys_are_removed_by_default_and_jwts_and_sessions_forwarded() {
        let f = forwarding("");
        for (name, value) in [
            ("x-api-key", "k"),
            ("authorization", "ApiKey k"),
            ("authorization", "apikey\tk"),
            ("authorization", " APIKEY k"),
        ] {
            let e = edits(&f, "/", &[(name, value)], &[]);
            assert_eq!(e.remove, vec![name.to_string()], "{value:?}");
        }
        let kept = [
            ("authorization", "Bearer t"),
            ("cookie", "session_id=s"),
            ("x-session-id", "s"),
            ("authorization", "ApiKeyX k"),
        ];
        for header in kept {
            assert_eq!(
                edits(&f, "/?access_token=t", &[header], &[]),
                Edits::default()
            );
        }
    }

    #[test]
    fn kinds_not_forwarded_are_removed() {
        let f = forwarding(
            "  forward_credential: false\n  from_query: tok\n\
             sessions: {forward_credential: false}\napi_keys: {forward_credential: true}\n",
        );
        let e = edits(
            &f,
            "/a?x=1&t%6Fk=t",
            &[
                ("authorization", "Bearer t"),
                ("x-session-id", "s"),
                ("x-api-key", "k"),
                ("cookie", "a=1; session_id=s,b=2; c=3"),
            ],
            &[],
        );
        assert_eq!(e.remove, vec!["x-session-id", "authorization"]);
        assert_eq!(
            e.set,
            vec![("cookie".to_string(), "a=1; b=2; c=3".to_string())]
        );
        assert_eq!(e.remove_query, vec!["tok"]);
        let e = edits(&f, "/", &[("cookie", " session_id=s ")], &[]);
        assert_eq!(e.remove, vec!["cookie"]);
        assert!(e.set.is_empty());
    }

    #[test]
    fn a_header_the_allow_sets_is_never_removed() {
        let f = forwarding("api_keys: {header: x-key}\n");
        let e = edits(&f, "/", &[("x-key", "k")], &[("X-Key", "v")]);
        assert!(e.remove.is_empty());
    }

    #[test]
    fn a_query_parameter_is_cut_from_the_path() {
        let tok = ["access_token".to_string()];
        let cases = [
            ("/a?x=1&access_token=t&y=2", Some("/a?x=1&y=2")),
            ("/a?access_token=t", Some("/a")),
            ("/a?access_token=t&access_token=u&x", Some("/a?x")),
            ("/a?access%5Ftoken=t&b=%20", Some("/a?b=%20")),
            ("/a?access_token", Some("/a")),
            ("/a?x=access_token&xaccess_token=1", None),
            ("/a?x=1", None),
            ("/a", None),
        ];
        for (path, want) in cases {
            assert_eq!(path_without_query(path, &tok).as_deref(), want, "{path}");
        }
    }

    #[test]
    fn cutting_the_session_cookie() {
        let cases = [
            ("a=1; session_id=s; b=2", Some("a=1; b=2")),
            ("session_id=s", Some("")),
            ("session_id=s; session_id=t", Some("")),
            ("a=1,session_id=s", Some("a=1")),
            ("a=x,y; session_id=s", Some("a=x,y")),
            ("a=1;;\tsession_id = s ;b", Some("a=1; b")),
            ("a=1; xsession_id=s", None),
            ("a=session_id=s", None),
            ("", None),
        ];
        for (header, want) in cases {
            assert_eq!(
                without_cookie(header, "session_id").as_deref(),
                want,
                "{header:?}"
            );
        }
    }
}
