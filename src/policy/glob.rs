//! Glob routes as a segment trie, so that thousands of globs cost a few
//! hash lookups per path segment.
//!
//! A first version compiled every glob to a regex in one `RegexSet`: with
//! 3,333 globs a match took ~120 µs (the lazy DFA's cache thrashed), 10×
//! a whole cache-hit check. Globs have a simple shape (literal segments,
//! `*` within a segment, `**` for any number of segments), which a trie
//! keyed on literal segments answers directly; only segments holding a
//! `*` are tried one by one.

use super::RouteError;
use std::collections::HashMap;

#[derive(Debug, Default)]
struct Node {
    /// Children by literal segment.
    literal: HashMap<String, Node, foldhash::fast::RandomState>,
    /// Children by a segment with `*`: its literal parts around the stars.
    patterns: Vec<(Vec<String>, Node)>,
    /// The rest of the glob after a `**`.
    globstar: Option<Box<Node>>,
    /// Routes whose glob ends here.
    routes: Vec<u32>,
}

impl Node {
    fn is_empty(&self) -> bool {
        self.literal.is_empty()
            && self.patterns.is_empty()
            && self.globstar.is_none()
            && self.routes.is_empty()
    }
}

/// Case-sensitive and case-insensitive globs.
#[derive(Debug, Default)]
pub(super) struct GlobSet {
    sensitive: Node,
    insensitive: Node,
    len: usize,
}

impl GlobSet {
    /// Adds `glob` (starting with `/`) for `route`.
    pub(super) fn insert(
        &mut self,
        glob: &str,
        case_sensitive: bool,
        route: u32,
    ) -> Result<(), RouteError> {
        let glob = glob.strip_prefix('/').ok_or(RouteError::NotAbsolute)?;
        let folded;
        let (root, glob) = if case_sensitive {
            (&mut self.sensitive, glob)
        } else {
            folded = glob.to_ascii_lowercase();
            (&mut self.insensitive, folded.as_str())
        };
        let mut node = root;
        for seg in glob.split('/').filter(|s| !s.is_empty()) {
            node = if seg == "**" {
                node.globstar.get_or_insert_with(Box::default)
            } else if seg.contains("**") {
                return Err(RouteError::BadGlob);
            } else if seg.contains('*') {
                let parts: Vec<String> = seg.split('*').map(str::to_string).collect();
                match node.patterns.iter().position(|(p, _)| *p == parts) {
                    Some(i) => &mut node.patterns[i].1,
                    None => {
                        node.patterns.push((parts, Node::default()));
                        let last = node.patterns.len() - 1;
                        &mut node.patterns[last].1
                    }
                }
            } else {
                node.literal.entry(seg.to_string()).or_default()
            };
        }
        node.routes.push(route);
        self.len += 1;
        Ok(())
    }

    pub(super) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Every route whose glob matches the canonical `path` (`lower` is the
    /// same path ASCII-lowercased), appended to `out`.
    pub(super) fn matches(&self, path: &str, lower: &str, out: &mut Vec<u32>) {
        if self.len == 0 {
            return;
        }
        for (root, path) in [(&self.sensitive, path), (&self.insensitive, lower)] {
            if !root.is_empty() {
                walk(root, &segments(path), out);
            }
        }
    }
}

fn segments(path: &str) -> Vec<&str> {
    path.split('/').filter(|s| !s.is_empty()).collect()
}

fn walk(node: &Node, segs: &[&str], out: &mut Vec<u32>) {
    if segs.is_empty() {
        out.extend_from_slice(&node.routes);
    }
    if let Some(rest) = &node.globstar {
        for k in 0..=segs.len() {
            walk(rest, &segs[k..], out);
        }
    }
    if let Some((first, rest)) = segs.split_first() {
        if let Some(child) = node.literal.get(*first) {
            walk(child, rest, out);
        }
        for (parts, child) in &node.patterns {
            if segment_matches(parts, first) {
                walk(child, rest, out);
            }
        }
    }
}

/// Whether `seg` matches a segment pattern given as its literal parts
/// around `*`s (`*.pdf` is `["", ".pdf"]`).
fn segment_matches(parts: &[String], seg: &str) -> bool {
    let (Some(first), Some(last)) = (parts.first(), parts.last()) else {
        return false;
    };
    if parts.len() == 1 {
        return seg == first;
    }
    if seg.len() < first.len() + last.len() || !seg.starts_with(first.as_str()) {
        return false;
    }
    if !seg.ends_with(last.as_str()) {
        return false;
    }
    let mut middle = &seg[first.len()..seg.len() - last.len()];
    for part in &parts[1..parts.len() - 1] {
        match middle.find(part.as_str()) {
            Some(i) => middle = &middle[i + part.len()..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(globs: &[&str]) -> GlobSet {
        let mut s = GlobSet::default();
        for (i, g) in globs.iter().enumerate() {
            s.insert(g, false, i as u32).unwrap();
        }
        s
    }

    fn hits(s: &GlobSet, path: &str) -> Vec<u32> {
        let mut out = Vec::new();
        s.matches(path, &path.to_ascii_lowercase(), &mut out);
        out.sort();
        out.dedup();
        out
    }

    #[test]
    fn segments_stars_and_globstars() {
        let s = set(&[
            "/a/*/c",
            "/files/*.pdf",
            "/x/**",
            "/**/end",
            "/v*-beta/api",
            "/",
            "/m/a*b*c",
        ]);
        assert_eq!(hits(&s, "/a/b/c"), vec![0]);
        assert_eq!(hits(&s, "/a/b/b/c"), Vec::<u32>::new());
        assert_eq!(hits(&s, "/files/report.pdf"), vec![1]);
        assert_eq!(hits(&s, "/files/.pdf"), vec![1]);
        assert_eq!(hits(&s, "/files/report.pdfx"), Vec::<u32>::new());
        assert_eq!(hits(&s, "/x"), vec![2]);
        assert_eq!(hits(&s, "/x/y/z"), vec![2]);
        assert_eq!(hits(&s, "/x/y/end"), vec![2, 3]);
        assert_eq!(hits(&s, "/end"), vec![3]);
        assert_eq!(hits(&s, "/V2-BETA/api"), vec![4]);
        assert_eq!(hits(&s, "/"), vec![5]);
        assert_eq!(hits(&s, "/m/abc"), vec![6]);
        assert_eq!(hits(&s, "/m/aXbYc"), vec![6]);
        assert_eq!(hits(&s, "/m/acb"), Vec::<u32>::new());
        assert_eq!(hits(&s, "/xy"), Vec::<u32>::new());
    }

    #[test]
    fn case_sensitive_globs_keep_case() {
        let mut s = GlobSet::default();
        s.insert("/Docs/*", true, 0).unwrap();
        assert_eq!(hits(&s, "/Docs/a"), vec![0]);
        assert_eq!(hits(&s, "/docs/a"), Vec::<u32>::new());
        assert_eq!(s.insert("/a**", true, 1), Err(RouteError::BadGlob));
        assert_eq!(s.insert("a/*", true, 1), Err(RouteError::NotAbsolute));
    }
}
