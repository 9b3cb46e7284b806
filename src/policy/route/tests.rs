use super::*;

fn spec(path: PathMatch) -> RouteSpec {
    RouteSpec {
        path,
        hosts: vec![],
        methods: vec![],
        case_sensitive: false,
    }
}

fn table(specs: Vec<RouteSpec>) -> RouteTable {
    RouteTable::new(specs).unwrap()
}

#[test]
fn first_match_wins_across_kinds() {
    let t = table(vec![
        spec(PathMatch::Glob("/api/*/admin".into())),
        spec(PathMatch::Prefix("/api".into())),
        spec(PathMatch::Exact("/api/v1/admin".into())),
        spec(PathMatch::Prefix("/".into())),
    ]);
    assert_eq!(t.find("h", "GET", "/api/v1/admin"), Some(0));
    assert_eq!(t.find("h", "GET", "/api/v1"), Some(1));
    assert_eq!(t.find("h", "GET", "/api"), Some(1));
    assert_eq!(t.find("h", "GET", "/apix"), Some(3));
    assert_eq!(t.find("h", "GET", "/"), Some(3));
}

#[test]
fn prefixes_are_whole_segments() {
    let t = table(vec![spec(PathMatch::Prefix("/admin".into()))]);
    assert_eq!(t.find("h", "GET", "/admin"), Some(0));
    assert_eq!(t.find("h", "GET", "/admin/users"), Some(0));
    assert_eq!(t.find("h", "GET", "/administrator"), None);
    assert_eq!(t.find("h", "GET", "/"), None);
}

#[test]
fn case_is_ignored_unless_asked() {
    let mut sensitive = spec(PathMatch::Exact("/Docs".into()));
    sensitive.case_sensitive = true;
    let t = table(vec![
        sensitive,
        spec(PathMatch::Prefix("/admin".into())),
        spec(PathMatch::Glob("/files/*.PDF".into())),
    ]);
    assert_eq!(t.find("h", "GET", "/ADMIN/x"), Some(1));
    assert_eq!(t.find("h", "GET", "/Docs"), Some(0));
    assert_eq!(t.find("h", "GET", "/docs"), None);
    assert_eq!(t.find("h", "GET", "/FILES/a.pdf"), Some(2));
}

#[test]
fn globs() {
    let t = table(vec![
        spec(PathMatch::Glob("/a/**".into())),
        spec(PathMatch::Glob("/b/*/c".into())),
        spec(PathMatch::Glob("/v*/x".into())),
    ]);
    assert_eq!(t.find("h", "GET", "/a"), Some(0));
    assert_eq!(t.find("h", "GET", "/a/b/c/d"), Some(0));
    assert_eq!(t.find("h", "GET", "/ab"), None);
    assert_eq!(t.find("h", "GET", "/b/1/c"), Some(1));
    assert_eq!(t.find("h", "GET", "/b/1/2/c"), None);
    assert_eq!(t.find("h", "GET", "/v2/x"), Some(2));
    assert_eq!(
        RouteTable::new(vec![spec(PathMatch::Glob("/a**".into()))]).err(),
        Some(vec![(0, RouteError::BadGlob)])
    );
}

#[test]
fn regexes_are_anchored() {
    let t = table(vec![spec(PathMatch::Regex("/users/[0-9]+".into()))]);
    assert_eq!(t.find("h", "GET", "/users/42"), Some(0));
    assert_eq!(t.find("h", "GET", "/users/42/x"), None);
    assert_eq!(t.find("h", "GET", "/x/users/42"), None);
    let bad = vec![
        spec(PathMatch::Exact("/ok".into())),
        spec(PathMatch::Regex("(".into())),
    ];
    assert!(matches!(
        RouteTable::new(bad).err().as_deref(),
        Some([(1, RouteError::BadRegex(_))])
    ));
}

#[test]
fn hosts_and_methods_filter() {
    let mut admin = spec(PathMatch::Prefix("/".into()));
    admin.hosts = vec!["admin.example.com".into()];
    let mut wild = spec(PathMatch::Prefix("/".into()));
    wild.hosts = vec!["*.example.com".into()];
    wild.methods = vec!["GET".into()];
    let t = table(vec![admin, wild, spec(PathMatch::Prefix("/".into()))]);
    assert_eq!(t.find("admin.example.com:8443", "POST", "/x"), Some(0));
    assert_eq!(t.find("ADMIN.example.com", "POST", "/x"), Some(0));
    assert_eq!(t.find("api.example.com", "GET", "/x"), Some(1));
    assert_eq!(t.find("api.example.com", "POST", "/x"), Some(2));
    assert_eq!(t.find("example.com", "GET", "/x"), Some(2));
    assert_eq!(t.find("evilexample.com", "GET", "/x"), Some(2));
}

#[test]
fn patterns_must_be_canonical() {
    for bad in ["/admin/", "//admin", "/a/../b", "/%61"] {
        assert!(
            matches!(
                RouteTable::new(vec![spec(PathMatch::Prefix(bad.into()))])
                    .err()
                    .as_deref(),
                Some([(0, RouteError::NotCanonical(_))])
            ),
            "{bad}"
        );
    }
    assert!(RouteTable::new(vec![spec(PathMatch::Exact("admin".into()))]).is_err());
}

#[test]
fn ten_thousand_routes() {
    let specs = (0..10_000)
        .map(|i| match i % 3 {
            0 => spec(PathMatch::Exact(format!("/svc{i}/health"))),
            1 => spec(PathMatch::Prefix(format!("/svc{i}"))),
            _ => spec(PathMatch::Glob(format!("/g{i}/*/x"))),
        })
        .collect();
    let t = table(specs);
    assert_eq!(t.find("h", "GET", "/svc9999/health"), Some(9999));
    assert_eq!(t.find("h", "GET", "/svc3/health"), Some(3));
    assert_eq!(t.find("h", "GET", "/svc4/a/b"), Some(4));
    assert_eq!(t.find("h", "GET", "/g5/a/x"), Some(5));
    assert_eq!(t.find("h", "GET", "/nope"), None);
}
