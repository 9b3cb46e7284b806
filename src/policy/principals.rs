//! Which workload principals a policy lets through: exact names,
//! segment prefixes and globs, compiled once.
//!
//! A principal is a URI (`spiffe://cluster.local/ns/shop/sa/orders`), so
//! its `/`-separated segments are matched the way route globs match a
//! path: the same segment trie (`glob.rs`), case-sensitive (a SPIFFE ID's
//! path is). A principal with an empty segment past its `scheme://`
//! (`spiffe://td//x`) never matches a prefix or a glob, so a lenient
//! split cannot make two names one.

use super::RouteError;
use super::glob::GlobSet;
use crate::config::{PatternForm, PrincipalPattern};

/// A compiled principal list.
#[derive(Debug, Default)]
pub struct Principals {
    exact: Vec<String>,
    prefixes: Vec<String>,
    globs: GlobSet,
    /// The patterns as written, for `explain` and equality.
    written: Vec<String>,
}

impl PartialEq for Principals {
    fn eq(&self, other: &Self) -> bool {
        self.written == other.written
    }
}

impl Eq for Principals {}

impl Principals {
    /// Compiles `patterns`; a glob with a `**` inside a segment is an error.
    pub fn new(patterns: &[PrincipalPattern]) -> Result<Self, (usize, RouteError)> {
        let mut p = Principals::default();
        for (i, pattern) in patterns.iter().enumerate() {
            match pattern {
                PrincipalPattern::Exact(s) | PrincipalPattern::Form(PatternForm::Exact(s)) => {
                    p.exact.push(s.clone());
                }
                PrincipalPattern::Form(PatternForm::Prefix(s)) => p.prefixes.push(s.clone()),
                PrincipalPattern::Form(PatternForm::Glob(s)) => {
                    let id = u32::try_from(i).map_err(|_| (i, RouteError::BadGlob))?;
                    p.globs
                        .insert(&format!("/{s}"), true, id)
                        .map_err(|e| (i, e))?;
                }
            }
            p.written.push(pattern.text().to_string());
        }
        Ok(p)
    }

    /// Whether `principal` is one of these.
    pub fn allows(&self, principal: &str) -> bool {
        if self.exact.iter().any(|e| e == principal) {
            return true;
        }
        if !well_formed(principal) {
            return false;
        }
        let prefixed = |p: &String| {
            principal.starts_with(p.as_str())
                && (principal.len() == p.len()
                    || p.ends_with('/')
                    || principal.as_bytes()[p.len()] == b'/')
        };
        if self.prefixes.iter().any(prefixed) {
            return true;
        }
        let mut hits = Vec::new();
        let path = format!("/{principal}");
        self.globs.matches(&path, &path, &mut hits);
        !hits.is_empty()
    }

    /// The patterns as written.
    pub fn written(&self) -> &[String] {
        &self.written
    }
}

/// No empty segment except the one of `scheme://`.
fn well_formed(principal: &str) -> bool {
    let rest = match principal.split_once("://") {
        Some((scheme, rest)) if !scheme.contains('/') => rest,
        _ => principal,
    };
    !rest.is_empty() && rest.split('/').all(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compile(yaml: &str) -> Principals {
        let patterns: Vec<PrincipalPattern> = serde_yaml_ng::from_str(yaml).unwrap();
        Principals::new(&patterns).unwrap()
    }

    #[test]
    fn exact_prefix_and_glob_forms() {
        let p = compile(
            r#"
- spiffe://cluster.local/ns/shop/sa/orders
- {prefix: "spiffe://cluster.local/ns/billing"}
- {glob: "spiffe://cluster.local/ns/*/sa/reports-*"}
- {glob: "spiffe://other.td/**/admin"}
"#,
        );
        for yes in [
            "spiffe://cluster.local/ns/shop/sa/orders",
            "spiffe://cluster.local/ns/billing",
            "spiffe://cluster.local/ns/billing/sa/x",
            "spiffe://cluster.local/ns/any/sa/reports-daily",
            "spiffe://other.td/admin",
            "spiffe://other.td/a/b/admin",
        ] {
            assert!(p.allows(yes), "{yes}");
        }
        for no in [
            "spiffe://cluster.local/ns/shop/sa/orders2",
            "spiffe://cluster.local/ns/shop/sa/Orders",
            "spiffe://cluster.local/ns/billingx",
            "spiffe://cluster.local/ns/billing//sa/x",
            "spiffe://cluster.local/ns/any/sa/other",
            "spiffe://cluster.local/ns/a/b/sa/reports-x",
            "spiffe://other.td//admin",
            "",
        ] {
            assert!(!p.allows(no), "{no}");
        }
        assert_eq!(p.written().len(), 4);
    }

    #[test]
    fn a_bad_glob_is_an_error() {
        let patterns: Vec<PrincipalPattern> =
            serde_yaml_ng::from_str(r#"[{glob: "spiffe://td/a**"}]"#).unwrap();
        assert_eq!(Principals::new(&patterns).unwrap_err().0, 0);
    }
}
