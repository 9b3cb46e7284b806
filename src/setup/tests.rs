//! Every problem a config can have, through the one function commands
//! use ([`super::problems`]): the config's own checks and its artefacts'.

use crate::config::{Config, ProcessEnv};

fn problems(yaml: &str) -> Vec<String> {
    super::problems(&Config::from_yaml(yaml).unwrap(), &ProcessEnv)
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
    let ok =
        "listen: {handshake_timeout: 1ms, keepalive_interval: 1s, max_header_list_size: 16777216}";
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
    let http =
        format!("listen: {{http: \"127.0.0.1:9002\"}}\njwt:\n  from_query: access_token\n{key}");
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

#[test]
fn the_verification_pool_is_bounded() {
    let pool = |threads: usize, queue: usize| {
        problems(&format!(
            "jwt: {{keys: [{{alg: RS256, pem_file: tests/fixtures/keys/rsa.pub}}], verify: {{threads: {threads}, queue: {queue}}}}}"
        ))
    };
    assert!(pool(0, 1).is_empty(), "{:?}", pool(0, 1));
    assert!(pool(64, 65_536).is_empty());
    assert_eq!(
        pool(65, 0),
        [
            "jwt.verify.threads: must be at most 64 (0: verify on the checking thread)",
            "jwt.verify.queue: must be between 1 and 65536",
        ]
    );
    assert_eq!(
        pool(1, 65_537),
        ["jwt.verify.queue: must be between 1 and 65536"]
    );
    let normal = Config::from_yaml("jwt: {verify: {priority: normal}}").unwrap();
    assert_eq!(
        normal.jwt.verify.priority,
        crate::config::VerifyPriority::Normal
    );
    let err = Config::from_yaml("jwt: {verify: {priority: high}}").unwrap_err();
    assert!(err.to_string().starts_with("jwt.verify.priority"), "{err}");
}

#[test]
fn identity_token_keys_that_do_not_load_name_their_field() {
    let yaml = "identity_token:\n  issuer: https://ward.test\n  keys:\n    - {pem_file: tests/fixtures/keys/ec256.key}\n    - {pem_file: tests/fixtures/keys/ec256.pub}\n    - {pem_file: tests/fixtures/keys/ec256.key, algorithm: Ed25519}\n    - {pem_file: tests/fixtures/keys/ed25519.key, algorithm: EdDSA}\n    - {pem_file: /nonexistent.pem}\npolicies: {a: {identity_token: {audience: a}}}\n";
    let got = problems(yaml);
    let paths: Vec<&str> = got.iter().map(|p| p.split(':').next().unwrap()).collect();
    assert_eq!(
        paths,
        [
            "identity_token.keys[1].pem_file",
            "identity_token.keys[2].pem_file",
            "identity_token.keys[4].pem_file",
        ],
        "{got:?}"
    );
    // Keys nothing signs with are not read.
    let unused = "identity_token: {keys: [{pem_file: /nonexistent.pem}]}\n";
    assert!(problems(unused).is_empty());
}

#[test]
fn backchannel_logout_is_checked_against_the_jwks_issuers() {
    let idp = "https://idp.example/realms/shop";
    let base = format!("jwt: {{issuers: [\"{idp}\"], jwks: [{{issuer: \"{idp}\"}}]}}\n");
    let with = |logout: &str| {
        problems(&format!(
            "{base}management: {{backchannel_logout: {logout}}}\n"
        ))
    };
    assert_eq!(
        with(&format!("{{client_id: web, issuers: [\"{idp}\"]}}")),
        Vec::<String>::new()
    );
    let got = with(&format!(
        "{{client_id: \"\", issuers: [\"{idp}\", \"https://other\"], path: \"logout\", max_token_age: 2d, allowed_types: [\"a b\"]}}"
    ));
    let paths: Vec<&str> = got.iter().map(|p| p.split(": ").next().unwrap()).collect();
    assert_eq!(
        paths,
        [
            "management.backchannel_logout.client_id",
            "management.backchannel_logout.issuers[1]",
            "management.backchannel_logout.path",
            "management.backchannel_logout.max_token_age",
            "management.backchannel_logout.allowed_types[0]",
        ],
        "{got:?}"
    );
    assert!(got[1].contains("jwt.jwks[].issuer"), "{got:?}");
    let none = with("{client_id: web, issuers: []}");
    assert!(
        none.iter()
            .any(|p| p.starts_with("management.backchannel_logout.issuers:")),
        "{none:?}"
    );
    let parse = Config::from_yaml(
        "management: {backchannel_logout: {client_id: web, issuers: [], nope: 1}}",
    );
    assert!(
        parse
            .unwrap_err()
            .to_string()
            .contains("management.backchannel_logout"),
    );
}

#[test]
fn workload_policies_and_trusted_hops_are_checked() {
    let got = problems(&format!(
        r#"{KEY}
workload:
  header: "X-Bad"
  forwarded_cert: {{header: xfcc, any_peer: true, trusted_peers: ["spiffe://td/gw", {{glob: "spiffe://td/a**"}}]}}
policies:
  svc: {{accept: [mtls]}}
  stray: {{principals: ["spiffe://td/a"]}}
  both: {{accept: [mtls], principals: ["spiffe://td/a", ""], workload: {{principals: []}}, identity_token: {{audience: x}}}}
  open: {{mode: public, accept: [jwt], workload: {{principals: [{{glob: "spiffe://td/**x**"}}]}}}}
  fine: {{accept: [jwt, mtls], principals: [{{prefix: "spiffe://td/ns"}}], workload: {{principals: ["spiffe://td/b"]}}}}
"#
    ));
    let paths: Vec<&str> = got.iter().map(|p| p.split(": ").next().unwrap()).collect();
    for want in [
        "workload.header",
        "workload.forwarded_cert",
        "workload.forwarded_cert.trusted_peers[1]",
        "policies.svc.principals",
        "policies.stray.principals",
        "policies.both.principals[1]",
        "policies.both.workload.principals",
        "policies.both.workload",
        "policies.both.identity_token",
        "policies.open.workload.principals[0]",
        "policies.open.mode",
    ] {
        assert!(paths.contains(&want), "{want} not in {got:#?}");
    }
    assert!(
        !paths.iter().any(|p| p.starts_with("policies.fine")),
        "{got:#?}"
    );
}

#[test]
fn introspection_problems_name_their_field_and_a_slow_timeout_only_warns() {
    let got = problems(
        r#"
introspection:
  max_concurrency: 0
  providers:
    - {issuer: "http://idp.example/realms/x", endpoint: "https://idp.example/i", client_id: ward}
    - {endpoint: "http://idp.example/i", client_id: "", client_auth: private_key_jwt, client_secret: {value: s}, timeout: 6s}
    - {endpoint: "https://idp.example/i", client_id: ward, client_secret: {value: s}, max_ttl: 0s}
    - {endpoint: "https://idp.example/i", client_id: ward, client_auth: private_key_jwt, private_key: {file: tests/fixtures/keys/rsa.pub}, prefix: "at_"}
policies:
  api: {accept: [opaque]}
"#,
    );
    let paths: Vec<&str> = got.iter().map(|p| p.split(": ").next().unwrap()).collect();
    assert_eq!(
        paths,
        [
            "introspection.max_concurrency",
            "introspection.providers[0]",
            "introspection.providers[0].client_secret",
            "introspection.providers[0].prefix",
            "introspection.providers[1].endpoint",
            "introspection.providers[1].client_id",
            "introspection.providers[1].private_key",
            "introspection.providers[1].timeout",
            "introspection.providers[1].prefix",
            "introspection.providers[2].max_ttl",
            "introspection.providers[2].prefix",
            "introspection.providers[0].client_secret",
            "introspection.providers[1].private_key",
            "introspection.providers[3].private_key",
        ],
        "{got:?}"
    );
    // Valid, opaque accepted, and a timeout above 150 ms is a warning.
    let yaml = r#"
introspection:
  providers:
    - {endpoint: "http://127.0.0.1:9/i", client_id: ward, client_secret: {value: s}, timeout: 300ms}
policies:
  api: {accept: [opaque]}
"#;
    assert_eq!(problems(yaml), Vec::<String>::new());
    let warnings = Config::from_yaml(yaml).unwrap().warnings();
    assert_eq!(warnings.len(), 1);
    assert_eq!(warnings[0].path, "introspection.providers[0].timeout");
    let off = problems("sessions: {enabled: true}\npolicies:\n  api: {accept: [opaque]}\n");
    assert!(
        off.iter()
            .any(|p| p.contains("`opaque` cannot be accepted: no introspection.providers")),
        "{off:?}"
    );
}

/// HTTP mode has no client IP unless it reads `x-forwarded-for`: a config
/// that relies on one (the per-IP limiter, a fingerprint over `client_ip`)
/// without `trusted_hops` is warned about, never refused.
#[test]
fn http_mode_without_trusted_hops_is_warned_about() {
    let warned = |yaml: &str| -> Vec<String> {
        let config = Config::from_yaml(yaml).unwrap();
        config.warnings().into_iter().map(|w| w.path).collect()
    };
    let http = "listen: {http: 127.0.0.1:9002}\n";
    assert_eq!(warned(http), ["sessions.fingerprint.trusted_hops"]);
    let hops = format!("{http}sessions: {{fingerprint: {{trusted_hops: 1}}}}\n");
    assert!(warned(&hops).is_empty());
    let no_limits =
        format!("{http}limits: {{enabled: false}}\nsessions: {{fingerprint: {{mode: off}}}}\n");
    assert!(warned(&no_limits).is_empty());
    assert!(warned("listen: {grpc: 127.0.0.1:9001}\n").is_empty());
}
