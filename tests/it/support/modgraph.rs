//! The module graph of ward's library crate, read from its source text:
//! which module names which, and which external crate each names. The
//! rules that judge it are in `tests/it/architecture.rs`; this is the
//! parser, kept apart so those rules read as rules.
//!
//! Why a parser of our own, not `syn` or rustc: no new dependency, and
//! the rules below are deliberately simple, so anyone can predict what
//! counts as a dependency (they were first written as a Python script;
//! this port finds the same edges, and replaced it).
//!
//! - Nodes are files of the library crate. `src/lib.rs` is the crate root
//!   (`[]`); `src/a/b.rs` (or `src/a/b/mod.rs`) is `a::b`; `a.rs` with a
//!   directory `a/` is the parent `a` of `a::b`. `src/main.rs` and
//!   `src/bin/` are a separate crate on top of the library (they import
//!   `ward::`, never the reverse) and are not nodes. Inline modules
//!   (`mod tests { ... }`) belong to their file.
//! - Comments, string and character literals are blanked first: a path in
//!   a doc comment or a message is not a dependency.
//! - A reference `m -> n` is a path naming module `n` or an item in it,
//!   written in `m`: `use crate::n::...`, `crate::n::item(...)` anywhere,
//!   `super::...` and `self::...` (resolved from `m`, counting inline
//!   modules for `super`), `use` trees with braces, `self` and `as`, a
//!   name imported as a module alias (`use crate::store; store::keys::X`
//!   names `store::keys`), and a child module declared in `m` (`mod seed;`
//!   then `seed::load`). A path names the longest prefix that is a node:
//!   `crate::store::Hash` names `store`, `crate::store::keys::KeyNames`
//!   names `store::keys`.
//! - An edge of the graph is a reference to another module that is not
//!   one of `m`'s own ancestors (`store::records` using
//!   `super::StoreError`): a child naturally uses its parent's types. An
//!   edge from a parent to its child counts, so `store -> store::seed ->
//!   session -> store` is a circle.
//! - An external crate is named by a path (in a `use` or anywhere, an
//!   attribute such as `#[tokio::test]` or a macro such as
//!   `tokio::select!` included) whose first segment is not `crate`,
//!   `self`, `super`, a child module or a module alias of that file; or by
//!   `::name::...` and `extern crate name`.
//! - Test-only code is marked: a reference inside an inline module under
//!   `#[cfg(test)]`, or in a file declared `#[cfg(test)] mod name;` (or
//!   below one), or in a file starting `#![cfg(test)]`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A module path: `["store", "keys"]`; the crate root is `[]`.
pub type Mod = Vec<String>;

/// `store::keys`, or `crate` for the root.
pub fn name(m: &[String]) -> String {
    if m.is_empty() {
        "crate".to_string()
    } else {
        m.join("::")
    }
}

/// `"store::keys"` → `["store", "keys"]`.
pub fn parse_mod(s: &str) -> Mod {
    s.split("::").map(str::to_string).collect()
}

/// Whether `m` is `root` or one of its descendants.
pub fn under(m: &[String], root: &[String]) -> bool {
    m.starts_with(root)
}

/// One source file: its module, the path shown in reports, its text.
pub struct Source {
    pub module: Mod,
    pub file: String,
    pub text: String,
}

impl Graph {
    /// The graph of an in-memory tree: `(module, text)` pairs, the module
    /// as `"store::keys"` (`""` for the root), for tests of the rules.
    pub fn fake(files: &[(&str, &str)]) -> Graph {
        let source = |(module, text): &(&str, &str)| {
            let module: Mod = module
                .split("::")
                .filter(|p| !p.is_empty())
                .map(str::to_string)
                .collect();
            let file = match module.is_empty() {
                true => "src/lib.rs".to_string(),
                false => format!("src/{}.rs", module.join("/")),
            };
            Source {
                module,
                file,
                text: text.to_string(),
            }
        };
        Graph::build(&files.iter().map(source).collect::<Vec<_>>())
    }
}

/// Every file of the library crate under `src` (`main.rs` and `bin/`
/// excluded), with paths shown relative to `src`'s parent.
pub fn read_src(src: &Path) -> Vec<Source> {
    let mut files = Vec::new();
    walk(src, &mut files);
    files.sort();
    files
        .into_iter()
        .filter_map(|path| {
            let rel = path.strip_prefix(src).expect("under src");
            let first = rel.components().next()?.as_os_str();
            if first == "bin" || rel == Path::new("main.rs") {
                return None;
            }
            let text = std::fs::read_to_string(&path).expect("readable source");
            Some(Source {
                module: module_of(rel),
                file: format!("src/{}", rel.display()),
                text,
            })
        })
        .collect()
}

/// Every `.rs` file under `dir`, recursively.
pub fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable directory") {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            walk(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `a/b.rs` and `a/b/mod.rs` → `a::b`; `lib.rs` → the root.
pub fn module_of(rel: &Path) -> Mod {
    let mut parts: Mod = rel
        .with_extension("")
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    if parts == ["lib"] {
        return Vec::new();
    }
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    parts
}

/// The source with comments, string and char literals blanked; line
/// breaks are kept, so lines still count.
pub fn strip(text: &str) -> String {
    let s: Vec<char> = text.chars().collect();
    let n = s.len();
    let at = |i: usize, pat: &str| {
        pat.chars()
            .enumerate()
            .all(|(k, c)| s.get(i + k) == Some(&c))
    };
    let lines = |from: usize, to: usize| {
        "\n".repeat(s[from..to.min(n)].iter().filter(|&&c| c == '\n').count())
    };
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < n {
        let c = s[i];
        let from = i;
        if at(i, "//") {
            while i < n && s[i] != '\n' {
                i += 1;
            }
        } else if at(i, "/*") {
            let mut depth = 1;
            i += 2;
            while i < n && depth > 0 {
                if at(i, "/*") {
                    depth += 1;
                    i += 2;
                } else if at(i, "*/") {
                    depth -= 1;
                    i += 2;
                } else {
                    i += 1;
                }
            }
            out.push(' ');
            out.push_str(&lines(from, i));
        } else if let Some((hashes, open)) = raw_string_start(&s, i) {
            let end: String = std::iter::once('"')
                .chain(std::iter::repeat_n('#', hashes))
                .collect();
            let mut j = i + open;
            while j < n && !at(j, &end) {
                j += 1;
            }
            i = if j < n { j + end.chars().count() } else { n };
            out.push_str(" \"\" ");
            out.push_str(&lines(from, i));
        } else if c == '"' {
            i += 1;
            while i < n && s[i] != '"' {
                i += if s[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str(" \"\" ");
            out.push_str(&lines(from, i));
        } else if c == '\'' {
            // A char literal ('a', '\n', '\u{..}') or a lifetime ('a).
            match char_literal_len(&s, i) {
                Some(len) => {
                    i += len;
                    out.push_str(" ' ");
                }
                None => {
                    out.push(c);
                    i += 1;
                }
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

/// `r"`, `r#"`, `br##"`... at `i`, not inside an identifier: the number of
/// `#`s and the length of the opening.
fn raw_string_start(s: &[char], i: usize) -> Option<(usize, usize)> {
    if i > 0 && (s[i - 1].is_alphanumeric() || s[i - 1] == '_') {
        return None;
    }
    let mut j = i;
    if s.get(j) == Some(&'b') {
        j += 1;
    }
    if s.get(j) != Some(&'r') {
        return None;
    }
    j += 1;
    let hashes = s[j..].iter().take_while(|&&c| c == '#').count();
    j += hashes;
    (s.get(j) == Some(&'"')).then_some((hashes, j + 1 - i))
}

/// The length of the char literal at `i` (`'a'`, `'\n'`, `'\u{1F600}'`),
/// or `None` for a lifetime.
fn char_literal_len(s: &[char], i: usize) -> Option<usize> {
    let get = |k: usize| s.get(i + k).copied();
    if get(1) == Some('\\') && get(2) == Some('u') && get(3) == Some('{') {
        let hex = s[(i + 4).min(s.len())..]
            .iter()
            .take_while(|c| c.is_ascii_hexdigit())
            .count();
        if hex > 0 && get(4 + hex) == Some('}') && get(5 + hex) == Some('\'') {
            return Some(6 + hex);
        }
    }
    if get(1) == Some('\\') && get(2).is_some() && get(3) == Some('\'') {
        return Some(4);
    }
    match (get(1), get(2)) {
        (Some(c), Some('\'')) if c != '\\' && c != '\'' => Some(3),
        _ => None,
    }
}

/// A token of the blanked source: an identifier, `::`, or one character.
#[derive(Debug, Clone)]
struct Tok {
    text: String,
    line: usize,
}

fn tokens(stripped: &str) -> Vec<Tok> {
    let s: Vec<char> = stripped.chars().collect();
    let mut out = Vec::new();
    let (mut i, mut line) = (0, 1);
    while i < s.len() {
        let c = s[i];
        let start = i;
        if c.is_ascii_alphabetic() || c == '_' {
            while i < s.len() && (s[i].is_ascii_alphanumeric() || s[i] == '_') {
                i += 1;
            }
        } else if c == ':' && s.get(i + 1) == Some(&':') {
            i += 2;
        } else {
            i += 1;
            if c == '\n' {
                line += 1;
            }
            if c.is_whitespace() {
                continue;
            }
        }
        out.push(Tok {
            text: s[start..i].iter().collect(),
            line,
        });
    }
    out
}

/// Whether `::` after this token starts a path (`::tokio::spawn`) rather
/// than continuing one (`a::b`, `Vec::<u8>::new`).
fn leading(before: &str) -> bool {
    !is_ident(before) && before != ">"
}

fn is_ident(t: &str) -> bool {
    t.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
}

/// A path as written: its segments, where, in how many inline modules,
/// and whether in test-only code.
#[derive(Debug, Clone)]
struct Written {
    path: Vec<String>,
    alias: Option<String>,
    line: usize,
    inline: usize,
    test: bool,
}

/// What one file writes.
#[derive(Default)]
struct Scan {
    uses: Vec<Written>,
    paths: Vec<Written>,
    /// `::name::...` in a path or `use`, and `extern crate name`.
    absolute: Vec<Written>,
    /// `mod name;` at file level, and whether under `#[cfg(test)]`.
    children: BTreeMap<String, bool>,
    /// `#![cfg(test)]`.
    test_file: bool,
}

fn scan(text: &str) -> Scan {
    let t = tokens(&strip(text));
    let tok = |i: usize| t.get(i).map_or("", |x| x.text.as_str());
    let mut scan = Scan::default();
    let mut inline: Vec<(usize, bool)> = Vec::new(); // brace depth and cfg(test) of each open inline module
    let mut brace = 0;
    let mut cfg_test = false; // a `#[cfg(test)]` waiting for its item
    let mut i = 0;
    while i < t.len() {
        let depth = inline.len();
        let test = inline.iter().any(|&(_, test)| test);
        let here = |path: Vec<String>, alias: Option<String>, line: usize| Written {
            path,
            alias,
            line,
            inline: depth,
            test,
        };
        match tok(i) {
            "#" if (i + 1..i + 8)
                .map(tok)
                .eq(["!", "[", "cfg", "(", "test", ")", "]"]) =>
            {
                scan.test_file |= depth == 0;
                i += 8;
                continue;
            }
            "#" if (i + 1..i + 7)
                .map(tok)
                .eq(["[", "cfg", "(", "test", ")", "]"]) =>
            {
                cfg_test = true;
                i += 7;
                continue;
            }
            "{" => {
                brace += 1;
                cfg_test = false;
            }
            "}" => {
                brace -= 1;
                if inline.last().is_some_and(|&(b, _)| b == brace) {
                    inline.pop();
                }
                cfg_test = false;
            }
            ";" => cfg_test = false,
            "mod" if depth == 0 && is_ident(tok(i + 1)) && tok(i + 2) == ";" => {
                scan.children.insert(tok(i + 1).to_string(), cfg_test);
            }
            "mod" if is_ident(tok(i + 1)) && tok(i + 2) == "{" => {
                inline.push((brace, cfg_test || test));
                brace += 1;
                cfg_test = false;
                i += 3;
                continue;
            }
            "extern" if tok(i + 1) == "crate" && is_ident(tok(i + 2)) => {
                scan.absolute
                    .push(here(vec![tok(i + 2).to_string()], None, t[i].line));
            }
            "use" if i == 0 || tok(i - 1) != "::" => {
                let absolute = tok(i + 1) == "::";
                let mut out = Vec::new();
                i = use_tree(&t, i + 1 + usize::from(absolute), &[], &mut out);
                let list = if absolute {
                    &mut scan.absolute
                } else {
                    &mut scan.uses
                };
                let out = out.into_iter().filter(|(path, ..)| !path.is_empty());
                list.extend(out.map(|(path, alias, line)| here(path, alias, line)));
                continue;
            }
            w if is_ident(w)
                && tok(i + 1) == "::"
                && (i == 0 || tok(i - 1) != "::" || leading(tok(i.wrapping_sub(2)))) =>
            {
                let absolute = i > 0 && tok(i - 1) == "::";
                let mut path = vec![w.to_string()];
                let mut j = i + 1;
                while tok(j) == "::" && is_ident(tok(j + 1)) {
                    path.push(tok(j + 1).to_string());
                    j += 2;
                }
                let list = if absolute {
                    &mut scan.absolute
                } else {
                    &mut scan.paths
                };
                list.push(here(path, None, t[i].line));
                i = j;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    scan
}

/// Parses one use tree at `t[i]`; appends (path, alias, line) triples.
fn use_tree(
    t: &[Tok],
    mut i: usize,
    prefix: &[String],
    out: &mut Vec<(Vec<String>, Option<String>, usize)>,
) -> usize {
    let tok = |i: usize| t.get(i).map_or("", |x| x.text.as_str());
    let mut path = prefix.to_vec();
    while i < t.len() {
        match tok(i) {
            "{" => {
                i += 1;
                while i < t.len() && tok(i) != "}" {
                    i = use_tree(t, i, &path, out);
                    if tok(i) == "," {
                        i += 1;
                    }
                }
                return i + 1;
            }
            "*" => {
                out.push((path, None, t[i].line));
                return i + 1;
            }
            w if is_ident(w) => {
                let line = t[i].line;
                let mut alias = w.to_string();
                if w == "self" && !path.is_empty() {
                    alias = path.last().cloned().unwrap_or_default();
                } else {
                    path.push(w.to_string());
                }
                i += 1;
                if tok(i) == "::" {
                    i += 1;
                    continue;
                }
                if tok(i) == "as" && i + 1 < t.len() {
                    alias = tok(i + 1).to_string();
                    i += 2;
                }
                out.push((path, Some(alias), line));
                return i;
            }
            _ => return i + 1,
        }
    }
    i
}

/// One path of module `from`, resolved to the module `to` it names.
#[derive(Debug, Clone)]
pub struct Reference {
    pub from: Mod,
    pub to: Mod,
    pub file: String,
    pub line: usize,
    pub test: bool,
}

/// One path of module `from` whose first segment, `head`, is no module of
/// the crate: an external crate, std, or a local name (a type, a
/// variant); the rules look for crate names among them.
#[derive(Debug, Clone)]
pub struct Foreign {
    pub from: Mod,
    pub head: String,
    pub file: String,
    pub line: usize,
    pub test: bool,
}

/// The crate's modules and what each names.
pub struct Graph {
    /// Each module and its file.
    pub modules: BTreeMap<Mod, String>,
    /// Each module's `mod name;` declarations at file level.
    pub children: BTreeMap<Mod, BTreeSet<String>>,
    pub references: Vec<Reference>,
    pub foreign: Vec<Foreign>,
}

impl Graph {
    pub fn build(sources: &[Source]) -> Graph {
        let modules: BTreeMap<Mod, String> = sources
            .iter()
            .map(|s| (s.module.clone(), s.file.clone()))
            .collect();
        let scans: BTreeMap<&Mod, Scan> =
            sources.iter().map(|s| (&s.module, scan(&s.text))).collect();
        // A file is test-only if it, or a module above it, is declared under
        // `#[cfg(test)]` or starts `#![cfg(test)]`.
        let test_file = |m: &Mod| {
            (0..=m.len()).any(|k| {
                scans.get(&m[..k].to_vec()).is_some_and(|s| s.test_file)
                    || (k > 0
                        && scans
                            .get(&m[..k - 1].to_vec())
                            .and_then(|s| s.children.get(&m[k - 1]))
                            == Some(&true))
            })
        };
        let mut graph = Graph {
            modules: modules.clone(),
            children: BTreeMap::new(),
            references: Vec::new(),
            foreign: Vec::new(),
        };
        for source in sources {
            let here = &source.module;
            let scan = &scans[here];
            let file_test = test_file(here);
            let children: BTreeSet<String> = scan.children.keys().cloned().collect();
            let (mut aliases, mut named, mut foreign) = (BTreeMap::new(), Vec::new(), Vec::new());
            // `use` paths first, with no alias yet: one naming a whole module
            // makes its last name an alias (`use crate::store;`).
            for w in &scan.uses {
                match resolve(
                    &w.path,
                    here,
                    w.inline,
                    &modules,
                    &BTreeMap::new(),
                    &children,
                ) {
                    Some((node, whole)) => {
                        if let Some(alias) = w.alias.as_ref().filter(|a| whole && *a != "_") {
                            aliases.insert(alias.clone(), node.clone());
                        }
                        named.push((w, node));
                    }
                    None => foreign.push(w),
                }
            }
            for w in &scan.paths {
                match resolve(&w.path, here, w.inline, &modules, &aliases, &children) {
                    Some((node, _)) => named.push((w, node)),
                    None => foreign.push(w),
                }
            }
            foreign.retain(|w| !is_relative(&w.path[0], &children, &aliases));
            foreign.extend(&scan.absolute);
            let test = |w: &Written| w.test || file_test;
            graph
                .references
                .extend(named.into_iter().map(|(w, to)| Reference {
                    from: here.clone(),
                    to,
                    file: source.file.clone(),
                    line: w.line,
                    test: test(w),
                }));
            graph.foreign.extend(foreign.into_iter().map(|w| Foreign {
                from: here.clone(),
                head: w.path[0].clone(),
                file: source.file.clone(),
                line: w.line,
                test: test(w),
            }));
            graph.children.insert(here.clone(), children);
        }
        graph
    }

    /// The edges: references to another module that is not an ancestor.
    pub fn edges(&self) -> BTreeSet<(Mod, Mod)> {
        self.references
            .iter()
            .filter(|r| !under(&r.from, &r.to))
            .map(|r| (r.from.clone(), r.to.clone()))
            .collect()
    }

    /// The import circles: each strongly connected component of more than
    /// one module, its members sorted (Tarjan).
    pub fn circles(&self) -> Vec<Vec<Mod>> {
        let edges = self.edges();
        let mut tarjan = Tarjan::default();
        for (a, b) in &edges {
            tarjan.succ.entry(a.clone()).or_default().push(b.clone());
        }
        for v in self.modules.keys() {
            if !tarjan.index.contains_key(v) {
                tarjan.visit(v);
            }
        }
        tarjan.out.into_iter().filter(|c| c.len() > 1).collect()
    }
}

/// A path head that names no external crate in this file.
fn is_relative(head: &str, children: &BTreeSet<String>, aliases: &BTreeMap<String, Mod>) -> bool {
    matches!(head, "crate" | "self" | "super" | "Self")
        || children.contains(head)
        || aliases.contains_key(head)
}

/// The module a path names (the longest prefix that is a module), and
/// whether the whole path is that module; `None` for external crates, std
/// and local names.
fn resolve(
    path: &[String],
    here: &Mod,
    inline: usize,
    modules: &BTreeMap<Mod, String>,
    aliases: &BTreeMap<String, Mod>,
    children: &BTreeSet<String>,
) -> Option<(Mod, bool)> {
    let (head, mut rest) = (path.first()?.as_str(), &path[1..]);
    let base = match head {
        "crate" => Vec::new(),
        "self" => here.clone(),
        "super" => {
            let (mut base, mut ups) = (here.clone(), inline);
            loop {
                if ups > 0 {
                    ups -= 1; // out of an inline module, still in this file
                } else {
                    base.pop()?;
                }
                match rest.first() {
                    Some(s) if s == "super" => rest = &rest[1..],
                    _ => break,
                }
            }
            base
        }
        _ => match aliases.get(head) {
            Some(m) => m.clone(),
            None if children.contains(head) => [here.as_slice(), &[head.to_string()]].concat(),
            None => return None,
        },
    };
    if !modules.contains_key(&base) {
        return None;
    }
    let mut node = base;
    let mut used = 0;
    for part in rest {
        node.push(part.clone());
        if !modules.contains_key(&node) {
            node.pop();
            break;
        }
        used += 1;
    }
    Some((node, used == rest.len()))
}

#[derive(Default)]
struct Tarjan {
    succ: BTreeMap<Mod, Vec<Mod>>,
    index: BTreeMap<Mod, usize>,
    low: BTreeMap<Mod, usize>,
    stack: Vec<Mod>,
    on: BTreeSet<Mod>,
    out: Vec<Vec<Mod>>,
}

impl Tarjan {
    fn visit(&mut self, v: &Mod) {
        let n = self.index.len();
        self.index.insert(v.clone(), n);
        self.low.insert(v.clone(), n);
        self.stack.push(v.clone());
        self.on.insert(v.clone());
        for w in self.succ.get(v).cloned().unwrap_or_default() {
            if !self.index.contains_key(&w) {
                self.visit(&w);
                let low = self.low[v].min(self.low[&w]);
                self.low.insert(v.clone(), low);
            } else if self.on.contains(&w) {
                let low = self.low[v].min(self.index[&w]);
                self.low.insert(v.clone(), low);
            }
        }
        if self.low[v] == self.index[v] {
            let mut comp = Vec::new();
            loop {
                let w = self.stack.pop().expect("v is on the stack");
                self.on.remove(&w);
                let done = &w == v;
                comp.push(w);
                if done {
                    break;
                }
            }
            comp.sort();
            self.out.push(comp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edges(g: &Graph) -> Vec<String> {
        g.edges()
            .iter()
            .map(|(a, b)| format!("{} -> {}", name(a), name(b)))
            .collect()
    }

    #[test]
    fn strip_blanks_comments_strings_and_chars_and_keeps_lines() {
        let src = "a // x::y\n\
                   /* b::c /* nested */\n*/ \"s::t\\\"\" r#\"u::v\"# '\\'' 'a' &'b x";
        let stripped = strip(src);
        assert_eq!(stripped.lines().count(), src.lines().count());
        for gone in ["x::y", "b::c", "s::t", "u::v", "'a'"] {
            assert!(!stripped.contains(gone), "{gone} in {stripped:?}");
        }
        assert!(stripped.contains("&'b x"), "a lifetime stays: {stripped:?}");
    }

    #[test]
    fn resolves_use_trees_aliases_children_super_and_longest_prefix() {
        let a = "use crate::{store::{self as st, keys::K}, b};\n\
                 mod c;\n\
                 fn f() { st::X; c::y(); crate::store::Hash; }\n\
                 mod inner { fn g() { super::super::b::z(); } }";
        let g = Graph::fake(&[
            ("", "pub mod a; pub mod store;"),
            ("a", a),
            ("a::c", "use super::super::b::Q;"),
            ("b", ""),
            ("store", "pub mod keys;"),
            (
                "store::keys",
                "use super::Thing; use crate::store::keys::Other;",
            ),
        ]);
        let want = [
            "a -> a::c",
            "a -> b",
            "a -> store",
            "a -> store::keys",
            "a::c -> b",
        ];
        assert_eq!(edges(&g), want);
        let line = g
            .references
            .iter()
            .find(|r| name(&r.to) == "a::c")
            .map(|r| r.line);
        assert_eq!(line, Some(3));
    }

    #[test]
    fn names_foreign_heads_but_not_children_aliases_or_text() {
        let store = "mod redis;\n\
                     use redis::Thing;\n\
                     fn f() { redis::RedisStore::new(); ::moka::x(); }\n\
                     // tokio::spawn\n\
                     const S: &str = \"tokio::spawn\";\n\
                     #[tokio::main]\n\
                     async fn main() { std::mem::drop(1); }\n\
                     #[cfg(test)]\n\
                     mod tests { #[tokio::test] async fn t() {} }";
        let g = Graph::fake(&[
            ("", "mod store;"),
            ("store", store),
            ("store::redis", "extern crate h2;"),
        ]);
        let found: Vec<String> = g
            .foreign
            .iter()
            .map(|e| format!("{}:{}:{}:{}", name(&e.from), e.head, e.line, e.test))
            .collect();
        let want = [
            "store:tokio:6:false",
            "store:std:7:false",
            "store:tokio:9:true",
            "store:moka:3:false",
            "store::redis:h2:1:false",
        ];
        assert_eq!(found, want);
    }

    #[test]
    fn marks_files_declared_under_cfg_test() {
        let g = Graph::fake(&[
            ("", "mod setup;"),
            ("setup", "#[cfg(test)]\nmod tests;"),
            ("setup::tests", "use tokio::x;"),
        ]);
        assert!(g.foreign.iter().all(|e| e.test));
        assert_eq!(g.foreign.len(), 1);
    }

    #[test]
    fn finds_circles_through_a_parent_but_not_to_an_ancestor() {
        let g = Graph::fake(&[
            ("", ""),
            ("store", "mod seed; fn f() { seed::load(); }"),
            ("store::seed", "use crate::session::S; use super::Store;"),
            ("session", "use crate::store::Store;"),
            ("other", ""),
        ]);
        let want = ["session", "store", "store::seed"].map(parse_mod);
        assert_eq!(g.circles(), [want]);
        let g = Graph::fake(&[
            ("", ""),
            ("store", "mod seed;"),
            ("store::seed", "use super::Store;"),
        ]);
        assert!(g.circles().is_empty());
    }
}
