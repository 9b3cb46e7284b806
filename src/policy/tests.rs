use super::*;

fn policies(yaml: &str) -> Result<Policies, Vec<PolicyProblem>> {
    Policies::from_config(&Config::from_yaml(yaml).unwrap())
}

fn paths(result: Result<Policies, Vec<PolicyProblem>>) -> Vec<String> {
    result.err().unwrap().into_iter().map(|p| p.path).collect()
}

#[test]
fn no_routes_means_everything_is_required() {
    let p = policies("").unwrap();
    let s = p.select(None, "h", "GET", "/anything").unwrap();
    assert_eq!(s.policy.mode, Mode::Required);
    assert_eq!(s.source, Source::Default);
}

#[test]
fn unmatched_requests_are_denied_once_routes_exist() {
    let p = policies("routes: [{exact: /healthz, policy: public}]").unwrap();
    assert_eq!(
        p.select(None, "h", "GET", "/healthz").unwrap().policy.mode,
        Mode::Public
    );
    let s = p.select(None, "h", "GET", "/other").unwrap();
    assert_eq!(s.policy.mode, Mode::Deny);
    assert_eq!(s.source, Source::Default);
}

#[test]
fn envoy_names_a_policy() {
    let p = policies("policies: {partner: {accept: [apikey]}}").unwrap();
    let s = p.select(Some("partner"), "h", "GET", "/").unwrap();
    assert!(s.policy.accepts(CredentialKind::ApiKey));
    assert!(!s.policy.accepts(CredentialKind::Jwt));
    assert_eq!(s.source, Source::Envoy);
    assert_eq!(
        p.select(Some("public"), "h", "GET", "/")
            .unwrap()
            .policy
            .mode,
        Mode::Public
    );
    assert_eq!(
        p.select(Some("nope"), "h", "GET", "/").err(),
        Some(SelectError::UnknownPolicy)
    );
}

#[test]
fn inline_and_named_route_policies() {
    let p = policies(
        "policies: {admins: {roles: {any_of: [admin]}}}\n\
         routes:\n\
         - {name: admin, prefix: /admin, policy: admins}\n\
         - {prefix: /api, methods: [GET], scopes: {all_of: [read]}}\n\
         default_policy: required\n",
    )
    .unwrap();
    let s = p.select(None, "h", "GET", "/admin/x").unwrap();
    assert_eq!(s.policy.roles.any_of, vec!["admin".to_string()]);
    assert_eq!(
        s.source,
        Source::Route {
            index: 0,
            name: "admin".into()
        }
    );
    let s = p.select(None, "h", "GET", "/api/v1").unwrap();
    assert_eq!(s.policy.name, "routes[1]");
    assert_eq!(s.policy.scopes.all_of, vec!["read".to_string()]);
    let s = p.select(None, "h", "POST", "/api/v1").unwrap();
    assert_eq!(s.source, Source::Default);
    assert_eq!(s.policy.mode, Mode::Required);
}

#[test]
fn problems_name_their_fields() {
    assert_eq!(
        paths(policies(
            "policies: {public: {}, Bad: {}, ok: {mode: public, roles: {any_of: [a]}}}\n\
             routes:\n\
             - {prefix: /a, policy: missing}\n\
             - {prefix: /b, exact: /b}\n\
             - {prefix: /c, policy: ok, mode: required}\n\
             - {prefix: /d/}\n\
             - {prefix: /e, login_url: 'javascript:alert(1)'}\n\
             default_policy: nope\n"
        )),
        vec![
            "policies.Bad",
            "policies.ok.mode",
            "policies.public",
            "routes[0].policy",
            "routes[1]",
            "routes[2]",
            "routes[4].login_url",
            "default_policy",
            "routes[3]",
        ]
    );
    assert_eq!(
        paths(policies("routes: [{prefix: /d/}]")),
        vec!["routes[0]"]
    );
    // Every route's problem, even when another route has no path form.
    assert_eq!(
        paths(policies(
            "routes: [{prefix: /a/}, {policy: public}, {glob: /x**}, {regex: '('}, {prefix: /ok, methods: [get]}]"
        )),
        vec![
            "routes[1]",
            "routes[0]",
            "routes[2]",
            "routes[3]",
            "routes[4]"
        ]
    );
}

#[test]
fn roles_and_scopes() {
    let p = policies(
        "routes:\n\
         - {prefix: /a, roles: {any_of: [admin, ops]}, scopes: {all_of: [read, write]}}\n",
    )
    .unwrap();
    let policy = p.select(None, "h", "GET", "/a").unwrap().policy.clone();
    let mut parts = crate::identity::IdentityParts {
        user_id: "u".into(),
        method: CredentialKind::Jwt,
        headers: vec![],
        jti: None,
        session_id: None,
        roles: vec!["ops".into()],
        scopes: vec!["read".into(), "write".into()],
    };
    let authorize =
        |parts: &crate::identity::IdentityParts| policy.authorize(&Identity::from(parts.clone()));
    assert_eq!(authorize(&parts), Ok(()));
    parts.scopes.pop();
    assert_eq!(authorize(&parts), Err(Reason::InsufficientScope));
    parts.roles = vec!["dev".into()];
    assert_eq!(authorize(&parts), Err(Reason::InsufficientRole));
}
