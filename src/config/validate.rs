//! Semantic checks over a parsed [`Config`]: everything a YAML parser cannot
//! see. Each problem carries the dotted path of its field, and every problem
//! is reported, not just the first, so one `ward check-config` run shows a
//! platform engineer the whole list.

use super::{Config, ConfigProblem, EnvSource, FingerprintMode, JwksSource, ProcessEnv, RedisMode};
use crate::headers::is_valid_header_name;
use crate::jwt::{AllowedTypes, keys};
use std::time::Duration;

/// Headers that carry the request itself; ward must never set them.
const RESERVED_HEADERS: &[&str] = &[
    "authorization",
    "cookie",
    "host",
    "content-length",
    "content-type",
    "transfer-encoding",
    "connection",
    "te",
    "upgrade",
    "x-forwarded-for",
    "x-request-id",
];

struct Problems(Vec<ConfigProblem>);

impl Problems {
    fn add(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(ConfigProblem {
            path: path.into(),
            message: message.into(),
        });
    }

    fn header(&mut self, path: &str, name: &str) {
        if RESERVED_HEADERS.contains(&name) {
            self.add(
                path,
                format!("`{name}` is not an identity header ward may set"),
            );
        } else if !is_valid_header_name(name) {
            self.add(
                path,
                format!("`{name}` is not a lowercase HTTP header name (a-z, 0-9, `-`, `_`)"),
            );
        }
    }
}

impl Config {
    /// Every semantic problem in this config, each with its field path.
    /// Empty means the config is usable.
    pub fn validate(&self, env: &dyn EnvSource) -> Vec<ConfigProblem> {
        let mut p = Problems(Vec::new());
        self.check_listen(&mut p);
        self.check_log(&mut p);
        self.check_jwt(&mut p, env);
        self.check_headers(&mut p);
        self.check_cache(&mut p);
        self.check_store(&mut p);
        self.check_sessions(&mut p);
        self.check_api_keys(&mut p);
        self.check_from_query(&mut p);
        self.check_policies(&mut p);
        self.check_limits(&mut p);
        p.0
    }

    fn check_policies(&self, p: &mut Problems) {
        if let Err(problems) = crate::policy::Policies::from_config(self) {
            for problem in problems {
                p.add(problem.path, problem.message);
            }
        }
        for (code, status) in &self.responses.status {
            let path = format!("responses.status.{code}");
            if !crate::reason::Reason::ALL
                .iter()
                .any(|r| r.as_str() == code)
            {
                p.add(
                    path,
                    format!("`{code}` is not a deny reason (see docs/decisions.md)"),
                );
            } else if !(400..=599).contains(status) {
                p.add(path, "a deny status must be 400-599".to_string());
            }
        }
        let param = &self.responses.return_param;
        if param.is_empty()
            || !param
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            p.add(
                "responses.return_param",
                "must be a non-empty query parameter name (letters, digits, `_`, `-`)",
            );
        }
    }

    fn check_listen(&self, p: &mut Problems) {
        if self.listen.grpc == self.listen.admin && self.listen.grpc.port() != 0 {
            p.add("listen.admin", "must differ from listen.grpc");
        }
        if let Some(http) = self.listen.http
            && http.port() != 0
            && (http == self.listen.grpc || http == self.listen.admin)
        {
            p.add(
                "listen.http",
                "must differ from listen.grpc and listen.admin",
            );
        }
        if !super::MAX_REQUEST_BYTES_RANGE.contains(&self.listen.max_request_bytes) {
            p.add(
                "listen.max_request_bytes",
                "must be between 65536 (64 KiB) and 1073741824 (1 GiB)",
            );
        }
        if let Some(path) = &self.listen.unix_socket
            && path.as_os_str().is_empty()
        {
            p.add("listen.unix_socket", "must not be empty");
        }
        self.check_connections(p);
        if self.runtime.drain_delay.as_secs() > 300 {
            p.add("runtime.drain_delay", "must be at most 300s");
        }
        if self.runtime.worker_threads > 1024 {
            p.add(
                "runtime.worker_threads",
                "must be at most 1024 (0 = one per CPU)",
            );
        }
    }

    /// The connection limits of `listen` (`src/server/conn.rs`).
    fn check_connections(&self, p: &mut Problems) {
        let l = &self.listen;
        if l.handshake_timeout.is_zero() || l.handshake_timeout > Duration::from_secs(300) {
            p.add(
                "listen.handshake_timeout",
                "must be greater than 0s and at most 300s",
            );
        }
        if !(1..=super::MAX_CONNECTIONS_LIMIT).contains(&l.max_connections) {
            p.add(
                "listen.max_connections",
                format!("must be between 1 and {}", super::MAX_CONNECTIONS_LIMIT),
            );
        }
        if !l.keepalive_interval.is_zero()
            && !(Duration::from_secs(1)..=Duration::from_secs(3600)).contains(&l.keepalive_interval)
        {
            p.add(
                "listen.keepalive_interval",
                "must be 0s (no pings) or between 1s and 3600s",
            );
        }
        if l.keepalive_timeout.is_zero() || l.keepalive_timeout > Duration::from_secs(300) {
            p.add(
                "listen.keepalive_timeout",
                "must be greater than 0s and at most 300s",
            );
        }
        if l.max_concurrent_streams == 0 {
            p.add("listen.max_concurrent_streams", "must be at least 1");
        }
        if !super::MAX_HEADER_LIST_SIZE_RANGE.contains(&l.max_header_list_size) {
            p.add(
                "listen.max_header_list_size",
                "must be between 4096 (4 KiB) and 16777216 (16 MiB)",
            );
        }
    }

    fn check_log(&self, p: &mut Problems) {
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.log.level) {
            p.add("log.level", format!("not a valid filter: {e}"));
        }
    }

    fn check_jwt(&self, p: &mut Problems, env: &dyn EnvSource) {
        let jwt = &self.jwt;
        if !is_valid_header_name(&jwt.header) {
            p.add("jwt.header", "must be a lowercase HTTP header name");
        }
        if !(64..=65_536).contains(&jwt.max_token_bytes) {
            p.add("jwt.max_token_bytes", "must be between 64 and 65536");
        }
        let jwt_on = !(jwt.keys.is_empty() && jwt.jwks.is_empty());
        if !jwt_on && !self.sessions.enabled && !self.api_keys.enabled {
            p.add(
                "jwt",
                "no credential kind is enabled: set jwt.keys or jwt.jwks, or enable sessions or api_keys",
            );
        }
        check_types(p, "jwt.allowed_types", Some(&jwt.allowed_types));
        let types = AllowedTypes::new(&jwt.allowed_types);
        for (i, key) in jwt.keys.iter().enumerate() {
            let path = format!("jwt.keys[{i}]");
            if let Err(e) = keys::load_static(key, &types, env) {
                // A weak RSA key is the key material's fault: name it.
                let field = match (&e, &key.pem_file) {
                    (keys::KeyError::WeakRsa { .. }, Some(_)) => ".pem_file",
                    (keys::KeyError::WeakRsa { .. }, None) => ".pem",
                    _ => "",
                };
                p.add(format!("{path}{field}"), e.to_string());
            }
            check_types(
                p,
                &format!("{path}.allowed_types"),
                key.allowed_types.as_ref(),
            );
        }
        for (i, src) in jwt.jwks.iter().enumerate() {
            check_jwks(p, &format!("jwt.jwks[{i}]"), src);
        }
        for (field, list) in [
            ("jwt.issuers", &jwt.issuers),
            ("jwt.audiences", &jwt.audiences),
        ] {
            if list.iter().any(|v| v.is_empty()) {
                p.add(field, "must not contain an empty string");
            }
        }
        if jwt.claims.user_id.is_empty() {
            p.add("jwt.claims.user_id", "must name a claim");
        }
        for (i, m) in jwt.claims.headers.iter().enumerate() {
            let path = format!("jwt.claims.headers[{i}]");
            if m.claim.is_empty() {
                p.add(format!("{path}.claim"), "must name a claim");
            }
            p.header(&format!("{path}.header"), &m.header);
            if m.header == self.headers.user_id || m.header == self.headers.auth_method {
                p.add(
                    format!("{path}.header"),
                    format!("`{}` is set by ward itself", m.header),
                );
            }
        }
    }

    fn check_headers(&self, p: &mut Problems) {
        let h = &self.headers;
        p.header("headers.user_id", &h.user_id);
        p.header("headers.auth_method", &h.auth_method);
        if h.user_id == h.auth_method {
            p.add("headers.auth_method", "must differ from headers.user_id");
        }
        for (field, name) in [
            ("headers.email", &h.email),
            ("headers.roles", &h.roles),
            ("headers.scopes", &h.scopes),
        ] {
            p.header(field, name);
            if *name == h.user_id || *name == h.auth_method {
                p.add(
                    field,
                    "must differ from headers.user_id and headers.auth_method",
                );
            }
        }
        for (i, prefix) in h.managed_prefixes.iter().enumerate() {
            if prefix.len() < 2 || !is_valid_header_name(prefix) {
                p.add(
                    format!("headers.managed_prefixes[{i}]"),
                    "must be a lowercase header-name prefix of at least 2 characters",
                );
            }
        }
        if !(16..=8192).contains(&h.max_value_bytes) {
            p.add("headers.max_value_bytes", "must be between 16 and 8192");
        }
        if h.realm.is_empty() || h.realm.contains(['"', '\\', '\r', '\n']) {
            p.add(
                "headers.realm",
                "must be non-empty, without quotes, backslashes or newlines",
            );
        }
    }

    fn check_cache(&self, p: &mut Problems) {
        let c = &self.cache;
        if c.enabled && c.max_entries == 0 {
            p.add(
                "cache.max_entries",
                "must be greater than 0 (or set cache.enabled: false)",
            );
        }
        if c.enabled && c.max_ttl.as_secs() < 1 {
            p.add("cache.max_ttl", "must be at least 1s");
        }
        if c.store_ttl.is_zero() {
            p.add("cache.store_ttl", "must be greater than 0");
        }
        if c.negative_ttl > c.store_ttl {
            p.add("cache.negative_ttl", "must not exceed cache.store_ttl");
        }
        if c.store_max_entries == 0 {
            p.add("cache.store_max_entries", "must be greater than 0");
        }
    }

    fn check_store(&self, p: &mut Problems) {
        let s = &self.store;
        if s.key_prefix.contains(char::is_whitespace) {
            p.add("store.key_prefix", "must not contain whitespace");
        }
        if let (Some(path), None) = (&s.seed_file, &s.redis)
            && let Err(e) = crate::store::seed::check(path, &self.api_keys)
        {
            p.add("store.seed_file", e.to_string());
        }
        let Some(r) = &s.redis else { return };
        if s.seed_file.is_some() {
            p.add(
                "store.seed_file",
                "only for the embedded store (remove store.redis)",
            );
        }
        let url_ok = |u: &str| u.starts_with("redis://") || u.starts_with("rediss://");
        match r.mode {
            RedisMode::Standalone => match &r.url {
                Some(u) if url_ok(u) => {}
                Some(_) => p.add("store.redis.url", "must start with redis:// or rediss://"),
                None => p.add("store.redis.url", "required in standalone mode"),
            },
            RedisMode::Cluster | RedisMode::Sentinel => {
                if r.nodes.is_empty() {
                    p.add("store.redis.nodes", "list at least one node URL");
                }
                for (i, n) in r.nodes.iter().enumerate() {
                    if !url_ok(n) {
                        p.add(
                            format!("store.redis.nodes[{i}]"),
                            "must start with redis:// or rediss://",
                        );
                    }
                }
            }
        }
        if r.mode == RedisMode::Sentinel && r.master_name.as_deref().unwrap_or("").is_empty() {
            p.add("store.redis.master_name", "required in sentinel mode");
        }
        if r.command_timeout.is_zero() || r.command_timeout > std::time::Duration::from_secs(1) {
            p.add(
                "store.redis.command_timeout",
                "must be between 1ms and 1s (keep it well under Envoy's ext_authz timeout)",
            );
        }
        if r.breaker_failures == 0 {
            p.add("store.redis.breaker_failures", "must be at least 1");
        }
        if let Some(pw) = &r.password
            && let Err(e) = pw.resolve(&ProcessEnv)
        {
            p.add("store.redis.password", e.to_string());
        }
    }

    fn check_sessions(&self, p: &mut Problems) {
        let s = &self.sessions;
        if !s.enabled {
            return;
        }
        if s.cookie.is_empty()
            || !s
                .cookie
                .bytes()
                .all(|b| b.is_ascii_graphic() && !b"=;,\"".contains(&b))
        {
            p.add(
                "sessions.cookie",
                "must be a cookie name (visible ASCII, no = ; , or quote)",
            );
        }
        if !is_valid_header_name(&s.header) {
            p.add("sessions.header", "must be a lowercase HTTP header name");
        }
        for (i, f) in s.fields.iter().enumerate() {
            if f.field.is_empty() {
                p.add(
                    format!("sessions.fields[{i}].field"),
                    "must name a hash field",
                );
            }
            p.header(&format!("sessions.fields[{i}].header"), &f.header);
        }
        let fp = &s.fingerprint;
        if fp.mode != FingerprintMode::Off && fp.attributes.is_empty() {
            p.add(
                "sessions.fingerprint.attributes",
                "list at least one attribute (or set mode: off)",
            );
        }
        for (i, a) in fp.attributes.iter().enumerate() {
            if a != crate::fingerprint::CLIENT_IP && !is_valid_header_name(a) {
                p.add(
                    format!("sessions.fingerprint.attributes[{i}]"),
                    "must be `client_ip` or a lowercase request header name",
                );
            }
        }
        if fp.ipv4_prefix > 32 {
            p.add("sessions.fingerprint.ipv4_prefix", "must be at most 32");
        }
        if fp.ipv6_prefix > 128 {
            p.add("sessions.fingerprint.ipv6_prefix", "must be at most 128");
        }
        if fp.trusted_hops > 16 {
            p.add("sessions.fingerprint.trusted_hops", "must be at most 16");
        }
    }

    /// `jwt.from_query`: a parameter name, JWTs on, and the gRPC mode only:
    /// the HTTP mode cannot have the proxy remove a query parameter, so
    /// the token would reach the backend (and its access logs) in the URL.
    fn check_from_query(&self, p: &mut Problems) {
        let Some(param) = &self.jwt.from_query else {
            return;
        };
        if param.is_empty()
            || !param
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b))
        {
            p.add(
                "jwt.from_query",
                "must be a query parameter name (letters, digits, `_`, `-`, `.`)",
            );
        }
        if self.jwt.keys.is_empty() && self.jwt.jwks.is_empty() {
            p.add("jwt.from_query", "needs JWTs on (jwt.keys or jwt.jwks)");
        }
        if self.listen.http.is_some() {
            p.add(
                "jwt.from_query",
                "not with listen.http: the HTTP mode cannot remove the token from the forwarded URL",
            );
        }
    }

    fn check_api_keys(&self, p: &mut Problems) {
        let a = &self.api_keys;
        if !a.enabled {
            return;
        }
        if !is_valid_header_name(&a.header) {
            p.add("api_keys.header", "must be a lowercase HTTP header name");
        }
        if a.scheme.is_empty()
            || !a
                .scheme
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            p.add(
                "api_keys.scheme",
                "must be an HTTP auth scheme name (letters, digits, -)",
            );
        }
        if a.scheme.eq_ignore_ascii_case("bearer") {
            p.add("api_keys.scheme", "`Bearer` is for JWTs");
        }
        if !(1..=16).contains(&a.prefix.len())
            || !a
                .prefix
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        {
            p.add("api_keys.prefix", "must be 1-16 characters of a-z and 0-9");
        }
        p.header("api_keys.id_header", &a.id_header);
        self.not_set_by_ward(p, "api_keys.id_header", &a.id_header);
    }

    /// A configurable header must not be one ward already sets.
    fn check_limits(&self, p: &mut Problems) {
        let l = &self.limits;
        for (path, budget) in [
            ("limits.per_ip", &l.per_ip),
            ("limits.per_credential", &l.per_credential),
        ] {
            if budget.failures == 0 {
                p.add(format!("{path}.failures"), "must be at least 1");
            }
            if budget.per.is_zero() || budget.per > Duration::from_secs(24 * 3600) {
                p.add(
                    format!("{path}.per"),
                    "must be greater than 0 and at most 24h",
                );
            }
        }
        if l.max_tracked == 0 {
            p.add("limits.max_tracked", "must be at least 1");
        }
    }

    fn not_set_by_ward(&self, p: &mut Problems, path: &str, name: &str) {
        let h = &self.headers;
        let fixed = [&h.user_id, &h.auth_method, &h.email, &h.roles, &h.scopes];
        if fixed.iter().any(|f| *f == name) {
            p.add(path, format!("`{name}` is set by ward itself"));
        }
    }
}

/// Each media type in a `typ` list (absent: nothing to check).
fn check_types(p: &mut Problems, path: &str, types: Option<&Vec<String>>) {
    for (i, typ) in types.into_iter().flatten().enumerate() {
        if let Err(why) = crate::jwt::typ::check_type(typ) {
            p.add(format!("{path}[{i}]"), why);
        }
    }
}

/// One `jwt.jwks[]` source. A file is loaded now; a key in it that ward
/// would skip (too weak, not for signatures) is not a problem unless no
/// key is left.
fn check_jwks(p: &mut Problems, path: &str, src: &JwksSource) {
    match (&src.url, &src.file) {
        (Some(url), None) => {
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                p.add(format!("{path}.url"), "must start with https:// or http://");
            }
        }
        (None, Some(file)) => match std::fs::read(file) {
            Err(e) => p.add(format!("{path}.file"), format!("cannot read: {e}")),
            Ok(bytes) => match keys::from_jwks(&bytes, &AllowedTypes::default()) {
                Err(e) => p.add(format!("{path}.file"), format!("not a JWKS: {e}")),
                Ok((found, skipped)) if found.is_empty() => {
                    let why: Vec<String> = skipped.iter().map(ToString::to_string).collect();
                    p.add(
                        format!("{path}.file"),
                        format!("no usable signing key in it ({})", why.join("; ")),
                    )
                }
                Ok(_) => {}
            },
        },
        _ => p.add(path, "exactly one of `url` or `file` must be set"),
    }
    if src.refresh_interval.as_secs() < 1 {
        p.add(format!("{path}.refresh_interval"), "must be at least 1s");
    }
    if src.timeout.is_zero() {
        p.add(format!("{path}.timeout"), "must be greater than 0");
    }
    check_types(
        p,
        &format!("{path}.allowed_types"),
        src.allowed_types.as_ref(),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ProcessEnv;

    fn problems(yaml: &str) -> Vec<String> {
        Config::from_yaml(yaml)
            .unwrap()
            .validate(&ProcessEnv)
            .into_iter()
            .map(|p| p.to_string())
            .collect()
    }

    const KEY: &str = "jwt: {keys: [{alg: RS256, pem_file: tests/fixtures/keys/rsa.pub}]}";

    #[test]
    fn weak_rsa_keys_and_bad_types_name_their_field() {
        let dir = tempfile::tempdir().unwrap();
        let weak_jwks = dir.path().join("weak.json");
        let n = "wQ".repeat(64); // 96 bytes: a 768-bit modulus
        let doc = format!(r#"{{"keys":[{{"kty":"RSA","kid":"w","n":"{n}","e":"AQAB"}}]}}"#);
        std::fs::write(&weak_jwks, doc).unwrap();
        let yaml = format!(
            "jwt:\n  allowed_types: [JWT, \"application/\"]\n  keys:\n    - {{alg: RS256, pem_file: tests/fixtures/keys/rsa1024.pub}}\n    - {{alg: RS256, pem_file: tests/fixtures/keys/rsa.pub, allowed_types: [at+jwt, \"a b\"]}}\n  jwks:\n    - {{file: {}, allowed_types: []}}\n",
            weak_jwks.display()
        );
        let got = problems(&yaml);
        let paths: Vec<&str> = got.iter().map(|p| p.split(':').next().unwrap()).collect();
        assert_eq!(
            paths,
            [
                "jwt.allowed_types[1]",
                "jwt.keys[0].pem_file",
                "jwt.keys[1].allowed_types[1]",
                "jwt.jwks[0].file",
            ],
            "{got:?}"
        );
        assert!(got[1].contains("1024 bits"), "{got:?}");
        assert!(
            got[3].contains("kid \"w\"") && got[3].contains("768 bits"),
            "{got:?}"
        );
        assert!(problems("jwt: {allowed_types: []}\n").is_empty());
    }

    #[test]
    fn a_minimal_config_is_valid() {
        assert_eq!(problems(KEY), Vec::<String>::new());
    }

    #[test]
    fn reports_every_problem_with_its_path() {
        let got = problems(
            r#"
listen: {grpc: "127.0.0.1:7000", admin: "127.0.0.1:7000", max_request_bytes: 1024}
log: {level: "ward=nope=x"}
jwt:
  header: "Authorization"
  keys:
    - {alg: RS999, pem_file: tests/fixtures/keys/rsa.pub}
    - {alg: HS256}
    - {alg: ES256, pem_file: /nonexistent.pem}
  jwks: [{url: "ftp://x"}, {}, {file: /nonexistent.json}]
  claims: {headers: [{claim: sub, header: x-user-id}, {claim: h, header: host}]}
headers: {max_value_bytes: 1, managed_prefixes: ["X"]}
cache: {max_entries: 0}
"#,
        );
        let paths: Vec<&str> = got.iter().map(|s| s.split(':').next().unwrap()).collect();
        for want in [
            "listen.admin",
            "listen.max_request_bytes",
            "log.level",
            "jwt.header",
            "jwt.keys[0]",
            "jwt.keys[1]",
            "jwt.keys[2]",
            "jwt.jwks[0].url",
            "jwt.jwks[1]",
            "jwt.jwks[2].file",
            "jwt.claims.headers[0].header",
            "jwt.claims.headers[1].header",
            "headers.managed_prefixes[0]",
            "headers.max_value_bytes",
            "cache.max_entries",
        ] {
            assert!(paths.contains(&want), "missing {want} in {got:#?}");
        }
    }

    #[test]
    fn record_header_names_are_checked_like_the_others() {
        let got = problems(
            r#"
headers: {email: Host, roles: x-user-id, scopes: x-scopes}
api_keys: {id_header: x-scopes}
"#,
        );
        let paths: Vec<&str> = got.iter().map(|s| s.split(':').next().unwrap()).collect();
        assert_eq!(
            paths,
            ["headers.email", "headers.roles", "api_keys.id_header"],
            "{got:#?}"
        );
        assert!(problems("headers: {email: x-mail, roles: x-r, scopes: x-s}\n").is_empty());
    }

    #[test]
    fn a_config_without_any_credential_kind_is_rejected() {
        assert!(
            problems("{}").is_empty(),
            "sessions and API keys are on by default"
        );
        let none = "sessions: {enabled: false}\napi_keys: {enabled: false}\n";
        assert!(problems(none).iter().any(|p| p.starts_with("jwt:")));
    }

    #[test]
    fn store_and_credential_sections_are_checked() {
        let got = problems(
            r#"
store:
  redis: {mode: sentinel, nodes: ["http://x"], command_timeout: 5s}
  seed_file: seed.yaml
sessions:
  cookie: "a;b"
  fingerprint: {attributes: ["client_ip", "User-Agent"], ipv4_prefix: 33}
api_keys: {prefix: "Bad_Prefix", scheme: Bearer, id_header: host}
cache: {store_ttl: 1s, negative_ttl: 2s}
"#,
        );
        let paths: Vec<&str> = got.iter().map(|s| s.split(':').next().unwrap()).collect();
        for want in [
            "store.seed_file",
            "store.redis.nodes[0]",
            "store.redis.master_name",
            "store.redis.command_timeout",
            "sessions.cookie",
            "sessions.fingerprint.attributes[1]",
            "sessions.fingerprint.ipv4_prefix",
            "api_keys.prefix",
            "api_keys.scheme",
            "api_keys.id_header",
            "cache.negative_ttl",
        ] {
            assert!(paths.contains(&want), "missing {want} in {got:#?}");
        }
    }

    #[test]
    fn limits_are_checked() {
        let got = problems(
            "limits: {per_ip: {failures: 0, per: 1m}, per_credential: {failures: 3, per: 25h}, max_tracked: 0}",
        );
        assert_eq!(
            got,
            [
                "limits.per_ip.failures: must be at least 1",
                "limits.per_credential.per: must be greater than 0 and at most 24h",
                "limits.max_tracked: must be at least 1",
            ]
        );
        let got = problems("limits: {per_ip: {failures: 1, per: 0s}}");
        assert_eq!(
            got,
            ["limits.per_ip.per: must be greater than 0 and at most 24h"]
        );
        assert!(problems("limits: {per_credential: {failures: 1, per: 24h}}").is_empty());
    }

    #[test]
    fn max_request_bytes_is_bounded() {
        for (bytes, ok) in [
            (65_535, false),
            (65_536, true),
            (1 << 30, true),
            ((1 << 30) + 1, false),
        ] {
            let got = problems(&format!("{KEY}\nlisten: {{max_request_bytes: {bytes}}}"));
            let named = got
                .iter()
                .any(|p| p.starts_with("listen.max_request_bytes"));
            assert_eq!(named, !ok, "{bytes}: {got:?}");
        }
    }

    #[test]
    fn connection_limits_are_checked() {
        let got = problems(&format!(
            "{KEY}\nlisten: {{handshake_timeout: 0s, max_connections: 0, keepalive_interval: 500ms, keepalive_timeout: 301s, max_concurrent_streams: 0, max_header_list_size: 100}}"
        ));
        assert_eq!(
            got,
            [
                "listen.handshake_timeout: must be greater than 0s and at most 300s",
                "listen.max_connections: must be between 1 and 1048576",
                "listen.keepalive_interval: must be 0s (no pings) or between 1s and 3600s",
                "listen.keepalive_timeout: must be greater than 0s and at most 300s",
                "listen.max_concurrent_streams: must be at least 1",
                "listen.max_header_list_size: must be between 4096 (4 KiB) and 16777216 (16 MiB)",
            ]
        );
        let ok = "listen: {handshake_timeout: 300s, max_connections: 1048576, keepalive_interval: 0s, keepalive_timeout: 1ms, max_concurrent_streams: 1, max_header_list_size: 4096}";
        assert_eq!(problems(&format!("{KEY}\n{ok}")), Vec::<String>::new());
        let ok = "listen: {handshake_timeout: 1ms, keepalive_interval: 1s, max_header_list_size: 16777216}";
        assert_eq!(problems(&format!("{KEY}\n{ok}")), Vec::<String>::new());
        let err = Config::from_yaml("listen: {handshake_timeout: soon}").unwrap_err();
        assert!(
            err.to_string().starts_with("listen.handshake_timeout"),
            "{err}"
        );
        let err = Config::from_yaml("listen: {max_connections: -1}").unwrap_err();
        assert!(
            err.to_string().starts_with("listen.max_connections"),
            "{err}"
        );
    }

    #[test]
    fn parse_errors_name_the_field() {
        let err = Config::from_yaml("jwt: {leeway: soon}").unwrap_err();
        assert!(err.to_string().starts_with("jwt.leeway"), "{err}");
        let err = Config::from_yaml("jwt: {keyz: []}").unwrap_err();
        assert!(err.to_string().contains("keyz"), "{err}");
        let err = Config::from_yaml("listen: {grpc: nowhere}").unwrap_err();
        assert!(err.to_string().starts_with("listen.grpc"), "{err}");
    }

    #[test]
    fn from_query_is_a_parameter_name_for_the_grpc_mode_only() {
        let key = "  keys: [{alg: RS256, pem_file: tests/fixtures/keys/rsa.pub}]\n";
        assert!(problems(&format!("jwt:\n  from_query: access_token\n{key}")).is_empty());
        let http = format!(
            "listen: {{http: \"127.0.0.1:9002\"}}\njwt:\n  from_query: access_token\n{key}"
        );
        let got = problems(&http);
        assert!(
            got.iter()
                .any(|p| p.starts_with("jwt.from_query:") && p.contains("listen.http")),
            "{got:?}"
        );
        let got = problems(&format!("jwt:\n  from_query: \"a&b\"\n{key}"));
        assert!(
            got.iter().any(|p| p.starts_with("jwt.from_query:")),
            "{got:?}"
        );
        let got = problems("jwt: {from_query: access_token}");
        assert!(
            got.iter().any(|p| p.starts_with("jwt.from_query:")),
            "{got:?}"
        );
    }
}
