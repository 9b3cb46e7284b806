//! The architecture, held by a test: the rules of ARCHITECTURE.md that a
//! reader of `src/` can check, checked on every run.
//!
//! - **The core names no shell crate.** A core module (ARCHITECTURE.md,
//!   "## Core modules"; a listed module includes its descendants) writes
//!   no path whose first segment is tokio, tonic, envoy_types, redis,
//!   moka, reqwest, axum, prometheus, or the other crates of the shell
//!   (`SHELL_CRATES`), attributes and macros included. A child module or
//!   alias of that name (`mod redis;`) is not the crate.
//! - **The core is closed**: a core module names only core modules (its
//!   non-core ancestors and the crate root included: `crate::unix_now`
//!   would read the clock). Every listed module must exist.
//! - **No import circles**: the module graph has no strongly connected
//!   component of more than one module.
//! - **`config` is at the bottom**: `config` and its children name no
//!   module outside `config` except `credential_kind`.
//! - **The layout maps are complete**: every top-level module has a row
//!   in `src/lib.rs`'s `# Layout` table, and every `src/**/*.rs` file one
//!   in ARCHITECTURE.md's codemap (a row names files from the repository
//!   root; `` `a.rs` (+ `a/`) `` also covers what is under `a/`, relative
//!   to `a.rs`'s directory); no row names a module or file that is gone.
//! - **Every invariant names its tests**: each bullet of "## Invariants"
//!   ends with a `Checked by:` line naming tests as
//!   `` `tests/it/<file>.rs::<fn>` `` or `` `src/<file>.rs::<fn>` ``: the
//!   file exists and holds `fn <fn>(` under `#[test]` or `#[tokio::test]`
//!   (a text check: attributes and comments just above it), not
//!   `#[ignore]`d. `review (<why>)` stands in for an invariant no test
//!   can hold, at most `MAX_REVIEWED` times in all.
//!
//! Test-only code (an inline `#[cfg(test)] mod`, a file declared
//! `#[cfg(test)] mod tests;`) is out of the core and `config` rules, a
//! `#[tokio::test]` is how an async unit test runs, but in the graph: a
//! test that imports from above still makes a circle.
//!
//! How a path counts as naming a module or crate (comments and strings
//! blanked, `use` trees, aliases, children, the longest prefix that is a
//! module) is in `support/modgraph.rs`. To see the edges:
//! `cargo nextest run -E 'test(architecture)' --run-ignored all --no-capture`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support::modgraph::{Graph, Mod, name, parse_mod, read_src, under, walk};
use std::collections::BTreeSet;
use std::path::Path;

/// Crates of the imperative shell: runtime, transports, store clients,
/// caches, metrics, the limiter, snapshots.
const SHELL_CRATES: &[&str] = &[
    "tokio",
    "tokio_stream",
    "tonic",
    "tonic_health",
    "envoy_types",
    "redis",
    "moka",
    "reqwest",
    "axum",
    "prometheus",
    "hyper",
    "hyper_util",
    "h2",
    "governor",
    "arc_swap",
];

/// The core modules: each `` - `name`: `` bullet of "## Core modules".
fn core_modules(architecture: &str) -> Vec<Mod> {
    section(architecture, "## Core modules")
        .filter_map(|l| {
            l.strip_prefix("- `")?
                .split_once("`:")
                .map(|(m, _)| parse_mod(m))
        })
        .collect()
}

/// The lines after `heading`, up to the next heading of its level.
fn section<'a>(text: &'a str, heading: &'a str) -> impl Iterator<Item = &'a str> {
    let level = heading.split(' ').next().unwrap_or("#").to_string() + " ";
    text.lines()
        .skip_while(move |l| l.trim() != heading)
        .skip(1)
        .take_while(move |l| !l.starts_with(&level))
}

/// The backticked names in `text`.
fn ticked(text: &str) -> impl Iterator<Item = &str> {
    text.split('`').skip(1).step_by(2)
}

fn is_core(m: &Mod, core: &[Mod]) -> bool {
    core.iter().any(|c| under(m, c))
}

fn at(file: &str, line: usize) -> String {
    format!("{file}:{line}")
}

fn unknown_core(g: &Graph, core: &[Mod]) -> Vec<String> {
    core.iter()
        .filter(|m| !g.modules.contains_key(*m))
        .map(|m| format!("`{}` is no module", name(m)))
        .collect()
}

fn shell_crates_in_core(g: &Graph, core: &[Mod]) -> Vec<String> {
    let found = g
        .foreign
        .iter()
        .filter(|f| !f.test && is_core(&f.from, core) && SHELL_CRATES.contains(&f.head.as_str()));
    found
        .map(|f| format!("{} -> {} ({})", name(&f.from), f.head, at(&f.file, f.line)))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// Each edge `from -> to` of a non-test reference that `bad` refuses, at
/// its first place.
fn bad_edges(g: &Graph, bad: impl Fn(&Mod, &Mod) -> bool) -> Vec<String> {
    let mut seen = BTreeSet::new();
    let found = g
        .references
        .iter()
        .filter(|r| !r.test && r.from != r.to && bad(&r.from, &r.to));
    let found = found.filter(|r| seen.insert((r.from.clone(), r.to.clone())));
    found
        .map(|r| {
            format!(
                "{} -> {} ({})",
                name(&r.from),
                name(&r.to),
                at(&r.file, r.line)
            )
        })
        .collect()
}

fn core_not_closed(g: &Graph, core: &[Mod]) -> Vec<String> {
    bad_edges(g, |from, to| is_core(from, core) && !is_core(to, core))
}

fn config_not_at_bottom(g: &Graph) -> Vec<String> {
    let (config, kind) = (parse_mod("config"), parse_mod("credential_kind"));
    bad_edges(g, |from, to| {
        under(from, &config) && !under(to, &config) && *to != kind
    })
}

fn circles(g: &Graph) -> Vec<String> {
    let edges = g.edges();
    let mut found = Vec::new();
    for circle in g.circles() {
        let mut text = format!(
            "circle: {}",
            circle
                .iter()
                .map(|m| name(m))
                .collect::<Vec<_>>()
                .join(", ")
        );
        for (a, b) in edges
            .iter()
            .filter(|(a, b)| circle.contains(a) && circle.contains(b))
        {
            text += &format!("\n    {} -> {}", name(a), name(b));
        }
        found.push(text);
    }
    found
}

/// Top-level modules without a row in lib.rs's `# Layout` table, and rows
/// naming no module.
fn layout_gaps(g: &Graph, lib_rs: &str) -> Vec<String> {
    let doc: String = lib_rs
        .lines()
        .filter_map(|l| Some(l.strip_prefix("//!")?.trim_start().to_string() + "\n"))
        .collect();
    let rows = section(&doc, "# Layout").filter_map(|l| l.strip_prefix('|')?.split('|').next());
    let listed: BTreeSet<&str> = rows.flat_map(ticked).collect();
    let declared: BTreeSet<&str> = g
        .children
        .get(&Vec::new())
        .into_iter()
        .flatten()
        .map(String::as_str)
        .collect();
    let missing = declared
        .difference(&listed)
        .map(|m| format!("src/lib.rs # Layout has no row for `{m}`"));
    missing
        .chain(
            listed
                .difference(&declared)
                .map(|m| format!("src/lib.rs # Layout names `{m}`, no module")),
        )
        .collect()
}

/// Files without a row in ARCHITECTURE.md's codemap, and rows naming a
/// file under `src/` that is gone. `files` are paths from the root.
fn codemap_gaps(architecture: &str, files: &[String]) -> Vec<String> {
    let mut covered = Vec::new();
    let cells = section(architecture, "## Codemap").filter(|l| l.starts_with("| `"));
    for cell in cells.filter_map(|l| l[1..].split(" |").next()) {
        let (roots, more) = cell.split_once("(+").unwrap_or((cell, ""));
        let roots: Vec<&str> = ticked(roots).collect();
        let dir = roots
            .last()
            .and_then(|r| r.rsplit_once('/'))
            .map_or("", |(d, _)| d);
        covered.extend(roots.iter().map(|r| r.to_string()));
        covered.extend(ticked(more).map(|m| format!("{dir}/{m}")));
    }
    let covers = |c: &String, f: &String| c == f || (c.ends_with('/') && f.starts_with(c.as_str()));
    let missing = files
        .iter()
        .filter(|f| !covered.iter().any(|c| covers(c, f)));
    let missing = missing.map(|f| format!("ARCHITECTURE.md codemap has no row for `{f}`"));
    let gone = covered
        .iter()
        .filter(|c| c.starts_with("src/") && !files.iter().any(|f| covers(c, f)));
    missing
        .chain(gone.map(|c| format!("ARCHITECTURE.md codemap names `{c}`, no file")))
        .collect()
}

/// At most this many invariants may be checked only by review.
const MAX_REVIEWED: usize = 3;

/// The bullets of "## Invariants": each one's title (its bold lead) and
/// its lines, the continuation lines trimmed.
fn invariants(architecture: &str) -> Vec<(String, Vec<&str>)> {
    let mut bullets: Vec<(String, Vec<&str>)> = Vec::new();
    let mut open = false;
    for line in section(architecture, "## Invariants") {
        if let Some(text) = line.strip_prefix("- ") {
            let title = text.split("**").nth(1).unwrap_or(text);
            bullets.push((title.trim_end_matches('.').to_string(), vec![text]));
            open = true;
        } else if open && line.starts_with("  ") && !line.trim().is_empty() {
            if let Some((_, lines)) = bullets.last_mut() {
                lines.push(line.trim());
            }
        } else {
            open = false;
        }
    }
    bullets
}

/// `text` without its `review (...)` entries (parentheses balanced), and
/// how many there were.
fn without_reviews(text: &str) -> (String, usize) {
    let (mut rest, mut out, mut n) = (text, String::new(), 0);
    while let Some(at) = rest.find("review (") {
        out += &rest[..at];
        let mut depth = 0;
        let end = rest[at..].char_indices().find_map(|(i, c)| {
            match c {
                '(' => depth += 1,
                ')' if depth == 1 => return Some(at + i + 1),
                ')' => depth -= 1,
                _ => {}
            }
            None
        });
        n += 1;
        rest = end.map_or("", |e| &rest[e..]);
    }
    (out + rest, n)
}

/// Whether `text` has `fn name(` under a `#[test]` or `#[tokio::test]`
/// (`Err` if only an ignored one).
fn test_fn(text: &str, name: &str) -> Result<bool, ()> {
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    let declares = |l: &str| {
        let l = l.strip_prefix("pub ").unwrap_or(l);
        let l = l.strip_prefix("async ").unwrap_or(l);
        l.strip_prefix("fn ")
            .and_then(|l| l.strip_prefix(name))
            .is_some_and(|l| l.starts_with('('))
    };
    let mut ignored = false;
    for at in (0..lines.len()).filter(|&i| declares(lines[i])) {
        let above = lines[..at]
            .iter()
            .rev()
            .take_while(|l| l.starts_with("#[") || l.starts_with("//"));
        let attrs: Vec<&&str> = above.filter(|l| l.starts_with("#[")).collect();
        if attrs
            .iter()
            .any(|a| **a == "#[test]" || a.starts_with("#[tokio::test"))
        {
            if !attrs.iter().any(|a| a.starts_with("#[ignore")) {
                return Ok(true);
            }
            ignored = true;
        }
    }
    if ignored { Err(()) } else { Ok(false) }
}

/// Invariants without a `Checked by:` line, named tests that do not exist
/// (`read` gives a file's text by its path from the root), and reviews
/// past `MAX_REVIEWED`.
fn unchecked_invariants(architecture: &str, read: impl Fn(&str) -> Option<String>) -> Vec<String> {
    let mut found = Vec::new();
    let mut reviewed = Vec::new();
    for (title, lines) in invariants(architecture) {
        let Some(at) = lines.iter().rposition(|l| l.starts_with("Checked by:")) else {
            found.push(format!("`{title}`: no `Checked by:` line"));
            continue;
        };
        let tail = lines[at..].join(" ");
        let tail = &tail["Checked by:".len()..];
        let (tests, reviews) = without_reviews(tail);
        if reviews > 0 {
            reviewed.push(title.clone());
        }
        let names: Vec<&str> = ticked(&tests).collect();
        let unticked: Vec<&str> = tests
            .split('`')
            .step_by(2)
            .flat_map(|t| t.split(','))
            .map(|t| t.trim().trim_end_matches('.'))
            .filter(|t| !t.is_empty())
            .collect();
        if !unticked.is_empty() {
            let words = unticked.join(", ");
            found.push(format!(
                "`{title}`: `Checked by:` holds `{words}` outside backticks"
            ));
        }
        if names.is_empty() && reviews == 0 {
            found.push(format!("`{title}`: `Checked by:` names nothing"));
        }
        for entry in names {
            let Some((file, name)) = entry
                .rsplit_once("::")
                .filter(|(f, _)| {
                    (f.starts_with("tests/it/") || f.starts_with("src/")) && f.ends_with(".rs")
                })
                .filter(|(_, n)| {
                    !n.is_empty() && n.chars().all(|c| c == '_' || c.is_ascii_alphanumeric())
                })
            else {
                found.push(format!(
                    "`{title}`: `{entry}` is not `tests/it/<file>.rs::<fn>` or `src/<file>.rs::<fn>`"
                ));
                continue;
            };
            match read(file).map(|text| test_fn(&text, name)) {
                None => found.push(format!("`{title}`: `{entry}`: no file `{file}`")),
                Some(Ok(true)) => {}
                Some(Ok(false)) => {
                    found.push(format!("`{title}`: `{entry}`: no test `fn {name}(`"))
                }
                Some(Err(())) => found.push(format!("`{title}`: `{entry}` is ignored")),
            }
        }
    }
    if reviewed.len() > MAX_REVIEWED {
        found.push(format!(
            "{} invariants are checked only by review (at most {MAX_REVIEWED}): {}",
            reviewed.len(),
            reviewed.join(", ")
        ));
    }
    found
}

fn assert_none(violations: Vec<String>, rule: &str) {
    assert!(
        violations.is_empty(),
        "{rule}:\n  {}",
        violations.join("\n  ")
    );
}

/// The real tree: `src/`, `src/lib.rs`, ARCHITECTURE.md.
struct Tree {
    graph: Graph,
    core: Vec<Mod>,
    lib_rs: String,
    architecture: String,
    files: Vec<String>,
}

fn tree() -> Tree {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let read = |p: &str| std::fs::read_to_string(root.join(p)).expect("readable");
    let architecture = read("ARCHITECTURE.md");
    let mut files = Vec::new();
    walk(&root.join("src"), &mut files);
    let files = files
        .iter()
        .map(|f| {
            f.strip_prefix(root)
                .expect("under root")
                .display()
                .to_string()
        })
        .collect();
    let graph = Graph::build(&read_src(&root.join("src")));
    Tree {
        core: core_modules(&architecture),
        graph,
        lib_rs: read("src/lib.rs"),
        architecture,
        files,
    }
}

#[test]
fn core_modules_exist() {
    let t = tree();
    assert!(
        t.core.len() > 10,
        "ARCHITECTURE.md ## Core modules lists {} modules",
        t.core.len()
    );
    assert_none(
        unknown_core(&t.graph, &t.core),
        "ARCHITECTURE.md ## Core modules lists modules that do not exist",
    );
}

#[test]
fn core_names_no_shell_crate() {
    let t = tree();
    assert_none(
        shell_crates_in_core(&t.graph, &t.core),
        "core modules name shell crates",
    );
}

#[test]
fn core_imports_only_core() {
    let t = tree();
    assert_none(core_not_closed(&t.graph, &t.core), "core -> non-core");
}

#[test]
fn no_import_circles() {
    let g = tree().graph;
    let summary = format!("{} modules, {} edges", g.modules.len(), g.edges().len());
    assert_none(circles(&g), &format!("import circles ({summary})"));
}

#[test]
fn config_is_at_the_bottom() {
    assert_none(
        config_not_at_bottom(&tree().graph),
        "config names modules above it",
    );
}

#[test]
fn layout_maps_are_complete() {
    let t = tree();
    let gaps = [
        layout_gaps(&t.graph, &t.lib_rs),
        codemap_gaps(&t.architecture, &t.files),
    ]
    .concat();
    assert_none(gaps, "layout maps");
}

#[test]
fn every_invariant_names_its_tests() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let architecture = std::fs::read_to_string(root.join("ARCHITECTURE.md")).expect("readable");
    let bullets = invariants(&architecture).len();
    assert!(
        bullets > 10,
        "ARCHITECTURE.md ## Invariants has {bullets} bullets"
    );
    assert_none(
        unchecked_invariants(&architecture, |p| {
            std::fs::read_to_string(root.join(p)).ok()
        }),
        "ARCHITECTURE.md ## Invariants",
    );
}

/// The edge list, `from<TAB>to`, sorted: for debugging a rule.
#[test]
#[ignore = "a debugging aid: prints the module graph"]
fn print_edges() {
    for (a, b) in tree().graph.edges() {
        println!("{}\t{}", name(&a), name(&b));
    }
}

/// Each rule fails when it should, on a small tree in memory.
mod fake {
    use super::*;

    const ARCH: &str = "# ward\n\
                        ## Core modules\n\n\
                        - `check`: the check\n\
                        - `store::reply`: a read's result\n\
                        - `config`: the config\n\n\
                        ## Next\n\
                        - `lookup`: not core\n";

    fn core() -> Vec<Mod> {
        core_modules(ARCH)
    }

    #[test]
    fn core_modules_are_parsed_and_must_exist() {
        assert_eq!(core(), ["check", "store::reply", "config"].map(parse_mod));
        let g = Graph::fake(&[("", ""), ("check", ""), ("config", "")]);
        assert_eq!(unknown_core(&g, &core()), ["`store::reply` is no module"]);
    }

    #[test]
    fn a_shell_crate_in_the_core_is_refused_but_not_a_child_a_comment_or_a_test() {
        let check = "mod redis;\n\
                     fn f() { redis::Store::get(); }\n\
                     // tokio::spawn\n\
                     const S: &str = \"moka::sync\";\n\
                     fn g() { tokio::spawn(async {}); }\n\
                     #[cfg(test)]\n\
                     mod tests { #[tokio::test] async fn t() {} }";
        let g = Graph::fake(&[
            ("", ""),
            ("check", check),
            ("check::redis", ""),
            ("store", "fn f() { tokio::spawn(x); }"),
        ]);
        assert_eq!(
            shell_crates_in_core(&g, &core()),
            ["check -> tokio (src/check.rs:5)"]
        );
    }

    #[test]
    fn a_core_module_naming_the_shell_is_refused() {
        let check = "use crate::config::X;\n\
                     use crate::lookup::Y;\n\
                     fn f() { crate::unix_now(); }";
        let reply = "use super::Backend;\n\
                     #[cfg(test)]\n\
                     mod tests { use crate::lookup::Y; }";
        let g = Graph::fake(&[
            ("", "pub fn unix_now() {}"),
            ("check", check),
            ("config", ""),
            ("lookup", "use crate::check::Z;"),
            ("store", "pub mod reply;"),
            ("store::reply", reply),
        ]);
        let want = [
            "check -> lookup (src/check.rs:2)",
            "check -> crate (src/check.rs:3)",
            "store::reply -> store (src/store/reply.rs:1)",
        ];
        assert_eq!(core_not_closed(&g, &core()), want);
    }

    #[test]
    fn a_circle_is_refused_with_its_edges() {
        let g = Graph::fake(&[
            ("", ""),
            ("a", "use crate::b::X;"),
            ("b", "fn f() { crate::a::y(); }"),
            ("c", "use crate::a::Z;"),
        ]);
        assert_eq!(circles(&g), ["circle: a, b\n    a -> b\n    b -> a"]);
    }

    #[test]
    fn config_naming_anything_above_it_is_refused() {
        let config = "mod secret;\n\
                      use crate::credential_kind::K;\n\
                      fn f() { secret::x(); crate::policy::Route::new(); }";
        let g = Graph::fake(&[
            ("", ""),
            ("config", config),
            ("config::secret", "use super::Config;"),
            ("credential_kind", ""),
            ("policy", ""),
        ]);
        assert_eq!(
            config_not_at_bottom(&g),
            ["config -> policy (src/config.rs:3)"]
        );
    }

    #[test]
    fn a_module_without_a_layout_row_is_refused() {
        let lib_rs = "//! ward\n\
                      //! # Layout\n\
                      //!\n\
                      //! | module | job |\n\
                      //! |---|---|\n\
                      //! | [`a`], [`b`] | see [`c`] |\n\
                      //! | `gone` | was |\n\n\
                      pub mod a;\n\
                      mod b;\n\
                      mod c;";
        let g = Graph::fake(&[("", lib_rs), ("a", ""), ("b", ""), ("c", "")]);
        let want = [
            "src/lib.rs # Layout has no row for `c`",
            "src/lib.rs # Layout names `gone`, no module",
        ];
        assert_eq!(layout_gaps(&g, lib_rs), want);
    }

    #[test]
    fn a_file_without_a_codemap_row_is_refused() {
        let arch = "## Codemap\n\n\
                    | file | job |\n\
                    |---|---|\n\
                    | `src/a.rs` (+ `a/`) | a, see `src/c.rs` |\n\
                    | `src/b.rs`, `src/b/x.rs` | b |\n\
                    | `src/memo.rs` | gone |\n\
                    | `fuzz/` | elsewhere |\n\n\
                    ## Invariants\n\
                    | `src/c.rs` | not the codemap |\n";
        let files = [
            "src/a.rs",
            "src/a/x.rs",
            "src/a/y/z.rs",
            "src/b.rs",
            "src/b/x.rs",
            "src/c.rs",
        ];
        let want = [
            "ARCHITECTURE.md codemap has no row for `src/c.rs`",
            "ARCHITECTURE.md codemap names `src/memo.rs`, no file",
        ];
        assert_eq!(codemap_gaps(arch, &files.map(String::from)), want);
    }

    #[test]
    fn an_invariant_without_existing_tests_is_refused() {
        let arch = "## Invariants\n\n\
                    - **Held.** By a unit test and an integration test.\n  \
                    Checked by: `src/a.rs::unit`,\n  \
                    `tests/it/b.rs::wire`.\n\
                    - **Unchecked.** Says nothing of tests.\n\
                    - **Inline.** Checked by: `src/a.rs::unit` (not a line of its own).\n\
                    - **Named wrong.** `src/a.rs::helper` in the text is no entry.\n  \
                    Checked by: `src/a.rs::helper`, `src/gone.rs::t`, `a.rs::t`,\n  \
                    `tests/it/b.rs::by_hand`, src/a.rs::unit.\n\
                    - **Empty.** Nothing named.\n  \
                    Checked by:\n\
                    - **R1.** Held by review.\n  \
                    Checked by: review (a `fn` in (nested) parens).\n\
                    - **R2.**\n  Checked by: review (why).\n\
                    - **R3.**\n  Checked by: review (why).\n\
                    - **R4.**\n  Checked by: `src/a.rs::unit`, review (why).\n\n\
                    ## Cross-cutting concerns\n\
                    - **Not an invariant.**\n";
        let a = "fn helper() {}\n\
                 #[test]\n\
                 // a comment between\n\
                 fn unit() {}";
        let b = "#[tokio::test(flavor = \"multi_thread\")]\n\
                 /// Over the wire.\n\
                 async fn wire() {}\n\
                 #[tokio::test]\n\
                 #[ignore = \"slow\"]\n\
                 async fn by_hand() {}";
        let read = |p: &str| match p {
            "src/a.rs" => Some(a.to_string()),
            "tests/it/b.rs" => Some(b.to_string()),
            _ => None,
        };
        let want = [
            "`Unchecked`: no `Checked by:` line",
            "`Inline`: no `Checked by:` line",
            "`Named wrong`: `Checked by:` holds `src/a.rs::unit` outside backticks",
            "`Named wrong`: `src/a.rs::helper`: no test `fn helper(`",
            "`Named wrong`: `src/gone.rs::t`: no file `src/gone.rs`",
            "`Named wrong`: `a.rs::t` is not `tests/it/<file>.rs::<fn>` or `src/<file>.rs::<fn>`",
            "`Named wrong`: `tests/it/b.rs::by_hand` is ignored",
            "`Empty`: `Checked by:` names nothing",
            "4 invariants are checked only by review (at most 3): R1, R2, R3, R4",
        ];
        assert_eq!(unchecked_invariants(arch, read), want);
    }
}
