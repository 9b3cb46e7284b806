//! The policy sections of a config (`policies`, `routes`,
//! `default_policy`) compiled into [`Policies`]: built-ins first, each
//! route's policy named or inline, the route table, and every problem with
//! its field path, so `ward check-config` shows them all at once.

use super::{
    KINDS, PathMatch, Policies, Policy, PolicyProblem, Principals, RouteSpec, RouteTable,
    enabled_kinds, route, slot,
};
use crate::config::{Config, Mode, PolicyConfig, RouteConfig};
use crate::credential_kind::CredentialKind;
use crate::identity_token::Profile;
use std::collections::HashMap;
use std::sync::Arc;

impl Policies {
    /// Compiles the policy sections; every problem is returned with its
    /// field path (`config::validate` reports them).
    pub fn from_config(config: &Config) -> Result<Self, Vec<PolicyProblem>> {
        let mut problems = Vec::new();
        let mut add =
            |path: String, message: String| problems.push(PolicyProblem { path, message });
        let enabled = enabled_kinds(config);
        let named = named_policies(config, enabled, &mut add);
        let mut specs = Vec::with_capacity(config.routes.len());
        let mut route_policies = Vec::with_capacity(config.routes.len());
        for (i, r) in config.routes.iter().enumerate() {
            let path = format!("routes[{i}]");
            let name = r.name.clone().unwrap_or_else(|| path.clone());
            let policy = route_policy(&path, &name, r, &named, enabled, config, &mut add);
            specs.push(
                route_spec(r)
                    .map_err(|message| add(path.clone(), message))
                    .ok(),
            );
            if let Some(policy) = policy {
                route_policies.push((name, policy));
            }
        }
        let default = default_policy(config, &named, &mut add);
        let routes = route_table(specs, &mut add);
        match (routes, default) {
            (Some(routes), Some(default)) if problems.is_empty() => Ok(Self {
                has_routes: !routes.is_empty(),
                named,
                routes,
                route_policies,
                default,
            }),
            _ => Err(problems),
        }
    }
}

fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// The built-in policies, then `policies`: a name redefining a built-in
/// or not a valid name is a problem, not a policy.
fn named_policies(
    config: &Config,
    enabled: [bool; KINDS],
    add: &mut impl FnMut(String, String),
) -> HashMap<String, Arc<Policy>> {
    let mut named: HashMap<String, Arc<Policy>> = HashMap::new();
    for (name, mode) in [
        ("required", Mode::Required),
        ("optional", Mode::Optional),
        ("public", Mode::Public),
        ("deny", Mode::Deny),
    ] {
        named.insert(name.into(), Arc::new(Policy::builtin(name, mode, enabled)));
    }
    for (name, p) in &config.policies {
        let path = format!("policies.{name}");
        if named.contains_key(name) {
            let why = format!("`{name}` is a built-in policy and cannot be redefined");
            add(path, why);
            continue;
        }
        if !valid_name(name) {
            add(path, "a policy name is 1-64 of a-z, 0-9, `-`, `_`".into());
            continue;
        }
        check_policy(&path, p, enabled, add);
        let policy = Arc::new(compiled(name, p, enabled, config));
        named.insert(name.clone(), policy);
    }
    named
}

/// A route's policy: named (`policy`) or inline (its own fields), never
/// both.
fn route_policy(
    path: &str,
    name: &str,
    r: &RouteConfig,
    named: &HashMap<String, Arc<Policy>>,
    enabled: [bool; KINDS],
    config: &Config,
    add: &mut impl FnMut(String, String),
) -> Option<Arc<Policy>> {
    match (&r.policy, r.has_inline_policy()) {
        (Some(_), true) => {
            add(
                path.to_string(),
                "set either `policy` or inline policy fields (mode, accept, roles, scopes, on_store_error, login_url, identity_token, principals, workload), not both".into(),
            );
            None
        }
        (Some(p), false) => {
            let policy = named.get(p).cloned();
            if policy.is_none() {
                add(format!("{path}.policy"), format!("no policy named `{p}`"));
            }
            policy
        }
        (None, _) => {
            let inline = r.inline_policy();
            check_policy(path, &inline, enabled, add);
            Some(Arc::new(compiled(name, &inline, enabled, config)))
        }
    }
}

/// A policy with its identity token profile (which needs the whole
/// config: the other profiles decide its slot).
fn compiled(name: &str, p: &PolicyConfig, enabled: [bool; KINDS], config: &Config) -> Policy {
    let mut policy = Policy::from_config(name, p, enabled);
    policy.identity_token = p
        .identity_token
        .as_ref()
        .map(|t| Arc::new(Profile::new(t, config)));
    policy
}

/// `default_policy`, else `required` without routes and `deny` with them.
fn default_policy(
    config: &Config,
    named: &HashMap<String, Arc<Policy>>,
    add: &mut impl FnMut(String, String),
) -> Option<Arc<Policy>> {
    let default_name = config.default_policy.clone().unwrap_or_else(|| {
        if config.routes.is_empty() {
            "required".into()
        } else {
            "deny".into()
        }
    });
    let default = named.get(&default_name).cloned();
    if default.is_none() {
        let why = format!("no policy named `{default_name}`");
        add("default_policy".into(), why);
    }
    default
}

/// The route table, if every route's spec is sound; else the problems of
/// the routes that are (reported all the same).
fn route_table(
    specs: Vec<Option<RouteSpec>>,
    add: &mut impl FnMut(String, String),
) -> Option<RouteTable> {
    if specs.iter().all(Option::is_some) {
        let table = RouteTable::new(specs.into_iter().flatten().collect());
        return table
            .map_err(|problems| {
                for (i, e) in problems {
                    add(format!("routes[{i}]"), e.to_string());
                }
            })
            .ok();
    }
    for (i, spec) in specs.iter().enumerate() {
        if let Some(Err(e)) = spec.as_ref().map(route::check_spec) {
            add(format!("routes[{i}]"), e.to_string());
        }
    }
    None
}

fn check_policy(
    path: &str,
    p: &PolicyConfig,
    enabled: [bool; KINDS],
    add: &mut impl FnMut(String, String),
) {
    for (i, kind) in p.accept.iter().enumerate() {
        let method = *kind;
        if !enabled[slot(method)] {
            let why = match method {
                CredentialKind::Jwt => "no jwt.keys or jwt.jwks are configured",
                CredentialKind::Session => "sessions.enabled is false",
                CredentialKind::ApiKey => "api_keys.enabled is false",
                CredentialKind::Opaque => "no introspection.providers are configured",
                CredentialKind::Mtls => "it is always available",
            };
            add(
                format!("{path}.accept[{i}]"),
                format!("`{}` cannot be accepted: {why}", method.as_str()),
            );
        }
    }
    check_workload(path, p, add);
    if matches!(p.mode, Mode::Public | Mode::Optional | Mode::Deny)
        && !(p.roles.is_empty() && p.scopes.is_empty())
    {
        add(
            format!("{path}.mode"),
            "roles and scopes need `mode: required`".into(),
        );
    }
    if let Some(url) = &p.login_url {
        let ok =
            (url.starts_with("https://") || url.starts_with("http://") || url.starts_with('/'))
                && !url.starts_with("//")
                && url.bytes().all(|b| b.is_ascii_graphic());
        if !ok {
            add(
                format!("{path}.login_url"),
                "must be an absolute http(s) URL or a path starting with `/`, without spaces or control characters".into(),
            );
        }
    }
    for (field, req) in [("roles", &p.roles), ("scopes", &p.scopes)] {
        for (list, values) in [("any_of", &req.any_of), ("all_of", &req.all_of)] {
            if values
                .iter()
                .any(|v| v.is_empty() || v.contains([',', ' ']))
            {
                add(
                    format!("{path}.{field}.{list}"),
                    "values must be non-empty and contain no comma or space".into(),
                );
            }
        }
    }
}

/// `accept: [mtls]` with its `principals`, and `workload` beside a user
/// credential: each where it means something, every pattern compiling.
fn check_workload(path: &str, p: &PolicyConfig, add: &mut impl FnMut(String, String)) {
    let mtls = p.accept.contains(&CredentialKind::Mtls);
    let users = p.accept.iter().any(|k| *k != CredentialKind::Mtls);
    if mtls && p.principals.is_empty() {
        add(
            format!("{path}.principals"),
            "`accept: [mtls]` needs the principals it lets in".into(),
        );
    }
    if !mtls && !p.principals.is_empty() {
        add(format!("{path}.principals"), "principals are for `accept: [mtls]`; beside a user credential use `workload.principals`".into());
    }
    let lists = [
        ("principals", Some(&p.principals)),
        (
            "workload.principals",
            p.workload.as_ref().map(|w| &w.principals),
        ),
    ];
    for (field, list) in lists {
        let Some(list) = list else { continue };
        let mut problems = crate::config::Problems(Vec::new());
        crate::config::check_principal_patterns(&format!("{path}.{field}"), list, &mut problems);
        for problem in problems.0 {
            add(problem.path, problem.message);
        }
        if let Err((i, e)) = Principals::new(list) {
            add(format!("{path}.{field}[{i}]"), e.to_string());
        }
    }
    if let Some(w) = &p.workload {
        if w.principals.is_empty() {
            add(
                format!("{path}.workload.principals"),
                "must name at least one principal".into(),
            );
        }
        if mtls && !users {
            add(format!("{path}.workload"), "needs a user credential kind in `accept`; with `accept: [mtls]` alone, list the workloads in `principals`".into());
        }
    }
    let any = mtls || p.workload.is_some();
    if any && matches!(p.mode, Mode::Public | Mode::Deny) {
        add(
            format!("{path}.mode"),
            "principals and workload need `mode: required` or `optional`".into(),
        );
    }
    if mtls && p.identity_token.is_some() {
        add(format!("{path}.identity_token"), "a policy accepting `mtls` cannot send an identity token (a workload has no user to sign for)".into());
    }
}

fn route_spec(r: &RouteConfig) -> Result<RouteSpec, String> {
    let forms = [
        r.exact.clone().map(PathMatch::Exact),
        r.prefix.clone().map(PathMatch::Prefix),
        r.glob.clone().map(PathMatch::Glob),
        r.regex.clone().map(PathMatch::Regex),
    ];
    let mut set = forms.into_iter().flatten();
    let path = match (set.next(), set.next()) {
        (Some(p), None) => p,
        _ => return Err("set exactly one of `exact`, `prefix`, `glob`, `regex`".into()),
    };
    Ok(RouteSpec {
        path,
        hosts: r.hosts.iter().map(|h| h.to_ascii_lowercase()).collect(),
        methods: r.methods.clone(),
        case_sensitive: r.case_sensitive,
    })
}
