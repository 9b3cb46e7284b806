//! Every shipped example config passes `ward check-config`, and the
//! quick-start config serves what the README promises: a demo session and
//! a demo API key from `examples/seed.yaml`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

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
