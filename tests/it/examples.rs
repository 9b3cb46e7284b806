//! Every shipped example config passes `ward check-config`, the
//! quick-start config serves what the README promises (a demo session and
//! a demo API key from `examples/seed.yaml`), and every `ward explain`
//! transcript in the docs is what the binary prints today.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::process::Command;
use support::authz::{reason, set_header, status};
use support::cli::ward;
use support::inproc::InProc;

#[test]
fn every_example_config_is_valid() {
    let mut checked = 0;
    for entry in std::fs::read_dir("examples").unwrap() {
        let path = entry.unwrap().path();
        let name = path.display().to_string();
        if !name.ends_with(".yaml") || name.ends_with("seed.yaml") {
            continue;
        }
        let (ok, out) = ward(&["check-config", &name]);
        assert!(ok, "{name}: {out}");
        checked += 1;
    }
    assert!(
        checked >= 2,
        "expected the example configs, found {checked}"
    );
}

#[test]
fn a_broken_seed_file_fails_check_config() {
    let dir = tempfile::tempdir().unwrap();
    let seed = dir.path().join("seed.yaml");
    std::fs::write(
        &seed,
        "api_keys: [{key: ward_typo, key_id: k, user_id: u}]\n",
    )
    .unwrap();
    let cfg = dir.path().join("ward.yaml");
    std::fs::write(&cfg, format!("store: {{seed_file: {}}}\n", seed.display())).unwrap();
    let (ok, out) = ward(&["check-config", &cfg.display().to_string()]);
    assert!(!ok);
    assert!(
        out.contains("store.seed_file") && out.contains("api_keys[0].key"),
        "{out}"
    );
}

#[tokio::test]
async fn the_quick_start_serves_the_demo_session_and_api_key() {
    let yaml = std::fs::read_to_string("examples/quickstart.yaml").unwrap();
    let ward = InProc::start(&yaml).await;
    let seed: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string("examples/seed.yaml").unwrap()).unwrap();
    let sid = seed["sessions"][0]["id"].as_str().unwrap();
    let key = seed["api_keys"][0]["key"].as_str().unwrap();

    let cookie = format!("session_id={sid}");
    let resp = ward.check(&[("cookie", &cookie)]).await;
    assert_eq!(status(&resp), 200, "{}", reason(&resp));
    assert_eq!(
        set_header(&resp, "x-auth-method").as_deref(),
        Some("session")
    );

    let resp = ward.check(&[("x-api-key", key)]).await;
    assert_eq!(status(&resp), 200, "{}", reason(&resp));
    assert_eq!(
        set_header(&resp, "x-auth-method").as_deref(),
        Some("apikey")
    );

    let typo = format!("{}x", &key[..key.len() - 1]);
    let resp = ward.check(&[("x-api-key", &typo)]).await;
    assert_eq!(reason(&resp), "malformed_api_key");
}

/// Splits a documented command line the way a POSIX shell would for the
/// forms the docs use: bare words, and `'...'` / `"..."` without escapes.
fn shell_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    for c in line.chars() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => word.push(c),
            None if c == '\'' || c == '"' => {
                quote = Some(c);
                in_word = true;
            }
            None if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            None => {
                word.push(c);
                in_word = true;
            }
        }
    }
    assert!(quote.is_none(), "unbalanced quote in {line}");
    if in_word {
        words.push(word);
    }
    words
}

/// A documented `$ ward explain ...` command, its printed output, and the
/// exit code when the transcript shows `$ echo $?`.
struct Transcript {
    doc: &'static str,
    command: String,
    output: String,
    code: Option<i32>,
}

fn transcripts(doc: &'static str) -> Vec<Transcript> {
    let text = std::fs::read_to_string(doc).unwrap();
    let mut found = Vec::new();
    for block in text.split("```console\n").skip(1) {
        let block = block.split("```").next().unwrap();
        let mut lines = block.lines().peekable();
        while let Some(line) = lines.next() {
            let Some(command) = line.strip_prefix("$ ward explain ") else {
                continue;
            };
            let mut output = String::new();
            while let Some(next) = lines.peek() {
                if next.starts_with("$ ") {
                    break;
                }
                output.push_str(next);
                output.push('\n');
                lines.next();
            }
            let mut code = None;
            if lines.peek() == Some(&"$ echo $?") {
                lines.next();
                code = lines.next().map(|c| c.trim().parse().unwrap());
            }
            found.push(Transcript {
                doc,
                command: command.to_string(),
                output,
                code,
            });
        }
    }
    found
}

#[test]
fn every_documented_ward_explain_transcript_is_real() {
    let mut checked = 0;
    for doc in ["README.md", "docs/policies.md"] {
        for t in transcripts(doc) {
            let out = Command::new(env!("CARGO_BIN_EXE_ward"))
                .arg("explain")
                .args(shell_words(&t.command))
                .current_dir(env!("CARGO_MANIFEST_DIR"))
                .output()
                .unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert_eq!(
                stdout,
                t.output,
                "{}: `ward explain {}` prints something else (stderr: {})",
                t.doc,
                t.command,
                String::from_utf8_lossy(&out.stderr)
            );
            if let Some(code) = t.code {
                assert_eq!(out.status.code(), Some(code), "{}: {}", t.doc, t.command);
            }
            checked += 1;
        }
    }
    assert!(
        checked >= 4,
        "expected the documented transcripts, found {checked}"
    );
}

#[test]
fn the_readme_routes_example_is_a_valid_config() {
    let readme = std::fs::read_to_string("README.md").unwrap();
    let routes = readme
        .split("## Route policies")
        .nth(1)
        .and_then(|rest| rest.split("```yaml\n").nth(1))
        .and_then(|rest| rest.split("```").next())
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("ward.yaml");
    std::fs::write(&cfg, routes).unwrap();
    let (ok, out) = ward(&["check-config", &cfg.display().to_string()]);
    assert!(ok, "{out}");
}
