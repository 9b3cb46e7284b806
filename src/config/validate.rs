//! Semantic checks over a parsed [`Config`]: everything a YAML parser cannot
//! see. Each problem carries the dotted path of its field, and every problem
//! is reported, not just the first, so one `ward check-config` run shows a
//! platform engineer the whole list.
//!
//! Only what the config alone can tell: the checks that need a compiled
//! artefact (the policies and routes, the keys, a JWKS or seed file, the
//! reason names a status override uses) live with the parts that compile
//! them, in `setup.rs`, so `config/` imports nothing above it.

use super::{
    CLIENT_IP, Config, ConfigProblem, FingerprintMode, JwksSource, MAX_VERIFY_QUEUE,
    MAX_VERIFY_THREADS, ProcessEnv, RedisMode,
};
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

/// Problems found so far; `setup.rs` adds the artefacts' to the same list.
pub struct Problems(pub Vec<ConfigProblem>);

impl Problems {
    pub fn add(&mut self, path: impl Into<String>, message: impl Into<String>) {
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
    pub fn validate(&self) -> Vec<ConfigProblem> {
        let mut p = Problems(Vec::new());
        self.check_listen(&mut p);
        self.check_log(&mut p);
        self.check_jwt(&mut p);
        self.check_headers(&mut p);
        self.check_cache(&mut p);
        self.check_store(&mut p);
        self.check_sessions(&mut p);
        self.check_api_keys(&mut p);
        self.check_from_query(&mut p);
        self.check_responses(&mut p);
        self.check_limits(&mut p);
        self.check_reload(&mut p);
        self.check_tracing(&mut p);
        self.check_identity_token(&mut p);
        self.workload.check(&mut p);
        self.beside_identity(&mut p, "workload.header", &self.workload.header);
        self.introspection.check(&mut p);
        let listeners = [
            Some(self.listen.grpc),
            Some(self.listen.admin),
            self.listen.http,
        ];
        let listeners: Vec<_> = listeners.into_iter().flatten().collect();
        self.management.check(&listeners, &mut p);
        if let Some(logout) = &self.management.backchannel_logout {
            logout.check(&self.jwt, &mut p);
        }
        p.0
    }

    fn check_identity_token(&self, p: &mut Problems) {
        for (name, policy) in &self.policies {
            if let Some(profile) = &policy.identity_token {
                let path = format!("policies.{name}.identity_token");
                super::identity_token::check_profile(profile, &path, p);
                self.beside_identity(p, &format!("{path}.header"), &profile.header);
            }
        }
        for (i, route) in self.routes.iter().enumerate() {
            if let Some(profile) = &route.identity_token {
                let path = format!("routes[{i}].identity_token");
                super::identity_token::check_profile(profile, &path, p);
                self.beside_identity(p, &format!("{path}.header"), &profile.header);
            }
        }
        let used = self.token_profiles().next().is_some();
        super::identity_token::check_section(&self.identity_token, used, p);
    }

    fn check_responses(&self, p: &mut Problems) {
        for (code, status) in &self.responses.status {
            // Whether `code` names a reason is checked in setup.rs.
            if !(400..=599).contains(status) {
                let path = format!("responses.status.{code}");
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

    fn check_jwt(&self, p: &mut Problems) {
        let jwt = &self.jwt;
        if !is_valid_header_name(&jwt.header) {
            p.add("jwt.header", "must be a lowercase HTTP header name");
        }
        if !(64..=65_536).contains(&jwt.max_token_bytes) {
            p.add("jwt.max_token_bytes", "must be between 64 and 65536");
        }
        let jwt_on = !(jwt.keys.is_empty() && jwt.jwks.is_empty());
        if !jwt_on && !self.sessions.enabled && !self.api_keys.enabled && !self.introspection_on() {
            p.add(
                "jwt",
                "no credential kind is enabled: set jwt.keys, jwt.jwks or introspection.providers, or enable sessions or api_keys",
            );
        }
        // Keys, JWKS files and `typ` lists are loaded in setup.rs.
        for (i, src) in jwt.jwks.iter().enumerate() {
            check_jwks(p, &format!("jwt.jwks[{i}]"), src, &jwt.issuers);
        }
        for (field, list) in [
            ("jwt.issuers", &jwt.issuers),
            ("jwt.audiences", &jwt.audiences),
        ] {
            if list.iter().any(|v| v.is_empty()) {
                p.add(field, "must not contain an empty string");
            }
        }
        if jwt.verify.threads.is_some_and(|t| t > MAX_VERIFY_THREADS) {
            p.add(
                "jwt.verify.threads",
                format!("must be at most {MAX_VERIFY_THREADS} (0: verify on the checking thread)"),
            );
        }
        if !(1..=MAX_VERIFY_QUEUE).contains(&jwt.verify.queue) {
            p.add(
                "jwt.verify.queue",
                format!("must be between 1 and {MAX_VERIFY_QUEUE}"),
            );
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

    fn check_tracing(&self, p: &mut Problems) {
        let t = &self.tracing;
        if !(0.0..=1.0).contains(&t.sampling_ratio) {
            p.add("tracing.sampling_ratio", "must be between 0.0 and 1.0");
        }
        if t.service_name.trim().is_empty() {
            p.add("tracing.service_name", "must not be empty");
        }
        if let Some(otlp) = &t.otlp {
            let scheme_ok =
                otlp.endpoint.starts_with("http://") || otlp.endpoint.starts_with("https://");
            if !scheme_ok || otlp.endpoint.len() <= "https://".len() {
                p.add(
                    "tracing.otlp.endpoint",
                    "must be an http:// or https:// URL",
                );
            }
            if otlp.timeout.is_zero() {
                p.add("tracing.otlp.timeout", "must be greater than 0");
            }
        }
    }

    fn check_reload(&self, p: &mut Problems) {
        let r = &self.reload;
        if !r.watch_interval.is_zero() && r.watch_interval < std::time::Duration::from_millis(100) {
            p.add(
                "reload.watch_interval",
                "must be 0s (SIGHUP only) or at least 100ms",
            );
        }
        if r.keys_timeout.is_zero() {
            p.add("reload.keys_timeout", "must be greater than 0");
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
            if a != CLIENT_IP && !is_valid_header_name(a) {
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

    /// A header an allow sets beside the identity's own (`workload.header`,
    /// an `identity_token.header`) must be none of them, nor a reserved
    /// name: the same name set twice would reach the backend as two values
    /// through the module and as one through ext_authz. (Syntax is checked
    /// with the field itself.)
    fn beside_identity(&self, p: &mut Problems, path: &str, name: &str) {
        if RESERVED_HEADERS.contains(&name) {
            p.add(
                path,
                format!("`{name}` is not an identity header ward may set"),
            );
            return;
        }
        let fixed = self.fixed_identity_headers();
        let claims = self.jwt.claims.headers.iter().map(|m| &m.header);
        let fields = self.sessions.fields.iter().map(|f| &f.header);
        let fields = fields.filter(|_| self.sessions.enabled);
        let key_id = Some(&self.api_keys.id_header).filter(|_| self.api_keys.enabled);
        let identity = fixed.into_iter().chain(claims).chain(fields).chain(key_id);
        // An identity token goes beside the principal too.
        let principal = Some(&self.workload.header).filter(|_| path != "workload.header");
        if identity.chain(principal).any(|t| t == name) {
            p.add(
                path,
                format!("`{name}` is already set by ward on an allow: pick another header"),
            );
        }
    }

    /// The `headers` section's names, which every kind of identity may
    /// carry.
    fn fixed_identity_headers(&self) -> [&String; 5] {
        let h = &self.headers;
        [&h.user_id, &h.auth_method, &h.email, &h.roles, &h.scopes]
    }

    fn not_set_by_ward(&self, p: &mut Problems, path: &str, name: &str) {
        if self.fixed_identity_headers().iter().any(|f| *f == name) {
            p.add(path, format!("`{name}` is set by ward itself"));
        }
    }
}

/// One `jwt.jwks[]` source, as far as the config tells (a file's
/// content is checked in setup.rs).
fn check_jwks(p: &mut Problems, path: &str, src: &JwksSource, issuers: &[String]) {
    let is_http = |u: &str| u.starts_with("https://") || u.starts_with("http://");
    match (&src.url, &src.file, &src.issuer) {
        (Some(url), None, None) => {
            if !is_http(url) {
                p.add(format!("{path}.url"), "must start with https:// or http://");
            }
        }
        (None, Some(_), None) => {}
        (None, None, Some(issuer)) => {
            if !is_http(issuer) {
                p.add(
                    format!("{path}.issuer"),
                    "must start with https:// or http://",
                );
            } else if !issuers.contains(issuer) {
                p.add(
                    format!("{path}.issuer"),
                    "must also be listed in jwt.issuers (tokens are checked against that list)",
                );
            }
        }
        _ => p.add(path, "exactly one of `url`, `file` or `issuer` must be set"),
    }
    if src.refresh_interval.as_secs() < 1 {
        p.add(format!("{path}.refresh_interval"), "must be at least 1s");
    }
    if src.timeout.is_zero() {
        p.add(format!("{path}.timeout"), "must be greater than 0");
    }
}

/// A lowercase HTTP header name ward may set or match: `a-z`, `0-9`, `-`, `_`.
pub fn is_valid_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}
