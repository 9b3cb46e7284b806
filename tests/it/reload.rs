//! Reload without restart, black-box through the real binary: SIGHUP and
//! a changed file (polled every `reload.watch_interval`) apply a new
//! config; a broken one is refused whole and the running one keeps
//! serving; a rotated key file is picked up; a Kubernetes-style `..data`
//! symlink swap is noticed; no check fails across 20 reloads under load;
//! caches survive a reload that does not change what they hold.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use jsonwebtoken::Algorithm;
use serde_yaml_ng::Value;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use support::authz::{check, connect, metric, reason, status};
use support::tokens::{claims, jwk, sign};
use support::ward::Ward;

/// A JWKS file holding the fixture key of `alg` as `kid`.
fn write_jwks(path: &Path, alg: Algorithm, kid: &str) {
    let doc = serde_json::json!({ "keys": [jwk(alg, kid)] });
    std::fs::write(path, doc.to_string()).unwrap();
}

/// A config whose JWT keys come from `{{tmp}}/jwks.json`, polled every
/// 100 ms, with a route to a policy of our choosing.
fn config(policy: &str) -> String {
    format!(
        r#"log: {{format: text, level: info}}
reload: {{watch_interval: 100ms}}
jwt:
  issuers: ["https://idp.test"]
  audiences: [api]
  jwks:
    - file: "{{{{tmp}}}}/jwks.json"
routes:
  - {{prefix: /, policy: {policy}}}
policies:
  readers: {{roles: {{any_of: [reader]}}}}
  admins: {{roles: {{any_of: [admin]}}}}
"#
    )
}

/// Starts ward on `config("readers")` with an ES256 JWKS file.
async fn start() -> Ward {
    let dir = tempfile::tempdir().unwrap();
    // The JWKS file must exist before ward starts: written into the
    // ward's own directory once it has one, so start with a placeholder
    // that the first Ward writes.
    let yaml = config("readers").replace("{{tmp}}", &dir.path().display().to_string());
    write_jwks(&dir.path().join("jwks.json"), Algorithm::ES256, "a");
    let ward = Ward::start(&yaml).await;
    // Keep the key file beside ward's config from now on.
    std::fs::copy(dir.path().join("jwks.json"), ward.dir().join("jwks.json")).unwrap();
    rewrite(&ward, |doc| {
        doc["jwt"]["jwks"][0]["file"] =
            Value::from(ward.dir().join("jwks.json").display().to_string());
    });
    wait_reloads(&ward, 1.0).await;
    ward
}

/// Edits ward's config file in place (as a text editor would: a new file
/// renamed over the old one).
fn rewrite(ward: &Ward, edit: impl FnOnce(&mut Value)) {
    let path = ward.config_path();
    let mut doc: Value = serde_yaml_ng::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    edit(&mut doc);
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, serde_yaml_ng::to_string(&doc).unwrap()).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn hangup(ward: &Ward) {
    ward.signal("HUP");
}

async fn reloads(ward: &Ward, result: &str) -> f64 {
    metric(
        ward.admin_addr,
        "ward_config_reload_total",
        &[("result", result)],
    )
    .await
}

/// Waits (bounded) until `ward_config_reload_total{result="success"}`
/// reaches `n`.
async fn wait_reloads(ward: &Ward, n: f64) {
    for _ in 0..200 {
        if reloads(ward, "success").await >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("no reload #{n}; ward said:\n{}", ward.logs());
}

fn bearer(alg: Algorithm, kid: &str, sub: &str) -> String {
    format!("Bearer {}", sign(alg, Some(kid), &claims(sub)))
}

#[tokio::test]
async fn a_changed_file_applies_the_new_policy_without_restart() {
    let ward = start().await;
    let client = connect(ward.grpc_addr).await;
    let token = bearer(Algorithm::ES256, "a", "alice");
    let resp = check(&client, &[("authorization", &token)]).await;
    assert_eq!(status(&resp), 200, "{}", reason(&resp));
    rewrite(&ward, |doc| {
        doc["routes"][0]["policy"] = Value::from("admins")
    });
    wait_reloads(&ward, 2.0).await;
    let resp = check(&client, &[("authorization", &token)]).await;
    assert_eq!(
        (status(&resp), reason(&resp).as_str()),
        (403, "insufficient_role")
    );
    assert!(ward.logs().contains("config reloaded"), "{}", ward.logs());
}

#[tokio::test]
async fn a_broken_config_is_refused_and_the_running_one_keeps_serving() {
    let ward = start().await;
    let client = connect(ward.grpc_addr).await;
    let token = bearer(Algorithm::ES256, "a", "alice");
    rewrite(&ward, |doc| {
        doc["cache"] = serde_yaml_ng::from_str("{max_ttl: 0s, bogus: 1}").unwrap()
    });
    hangup(&ward);
    for _ in 0..200 {
        if reloads(&ward, "failure").await >= 1.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(reloads(&ward, "failure").await >= 1.0, "{}", ward.logs());
    assert!(
        ward.logs().contains("cache.bogus"),
        "the field path is logged:\n{}",
        ward.logs()
    );
    let resp = check(&client, &[("authorization", &token)]).await;
    assert_eq!(status(&resp), 200, "{}", reason(&resp));
    // A config that parses but fails validation: every problem, by path.
    rewrite(&ward, |doc| {
        doc["cache"] = serde_yaml_ng::from_str("{max_ttl: 0s}").unwrap()
    });
    hangup(&ward);
    for _ in 0..200 {
        if ward.logs().contains("cache.max_ttl") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(ward.logs().contains("cache.max_ttl"), "{}", ward.logs());
    assert_eq!(reloads(&ward, "success").await, 1.0);
    let resp = check(&client, &[("authorization", &token)]).await;
    assert_eq!(status(&resp), 200, "{}", reason(&resp));
}

#[tokio::test]
async fn a_rotated_key_file_is_picked_up() {
    let ward = start().await;
    let client = connect(ward.grpc_addr).await;
    let old = bearer(Algorithm::ES256, "a", "alice");
    let new = bearer(Algorithm::RS256, "b", "bob");
    assert_eq!(
        status(&check(&client, &[("authorization", &old)]).await),
        200
    );
    assert_eq!(
        status(&check(&client, &[("authorization", &new)]).await),
        401
    );
    // Rotated in place: same file name, new content; the config is unchanged.
    let file = ward.dir().join("jwks.json");
    let tmp = ward.dir().join("jwks.json.new");
    write_jwks(&tmp, Algorithm::RS256, "b");
    std::fs::rename(&tmp, &file).unwrap();
    wait_reloads(&ward, 2.0).await;
    let resp = check(&client, &[("authorization", &new)]).await;
    assert_eq!(status(&resp), 200, "{}", reason(&resp));
    // The old key is gone, and so is the token the cache held for it.
    let resp = check(&client, &[("authorization", &old)]).await;
    assert_eq!(status(&resp), 401, "{}", reason(&resp));
}

#[tokio::test]
async fn a_kubernetes_symlink_swap_is_noticed() {
    let ward = start().await;
    let client = connect(ward.grpc_addr).await;
    let token = bearer(Algorithm::ES256, "a", "alice");
    let dir = ward.dir();
    let path = ward.config_path();
    let text = std::fs::read_to_string(path).unwrap();
    // The kubelet's layout: ward.yaml -> ..data/ward.yaml, ..data -> ..v1.
    std::fs::create_dir(dir.join("..v1")).unwrap();
    std::fs::write(dir.join("..v1/ward.yaml"), &text).unwrap();
    std::os::unix::fs::symlink("..v1", dir.join("..data")).unwrap();
    std::os::unix::fs::symlink("..data/ward.yaml", dir.join("ward.yaml.link")).unwrap();
    std::fs::rename(dir.join("ward.yaml.link"), path).unwrap();
    // Same content: nothing to reload.
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(reloads(&ward, "success").await, 1.0, "{}", ward.logs());
    // The update: a new directory, then ..data swapped to it atomically.
    std::fs::create_dir(dir.join("..v2")).unwrap();
    let admins = text.replace("policy: readers", "policy: admins");
    assert_ne!(admins, text);
    std::fs::write(dir.join("..v2/ward.yaml"), admins).unwrap();
    std::os::unix::fs::symlink("..v2", dir.join("..data_tmp")).unwrap();
    std::fs::rename(dir.join("..data_tmp"), dir.join("..data")).unwrap();
    wait_reloads(&ward, 2.0).await;
    let resp = check(&client, &[("authorization", &token)]).await;
    assert_eq!(status(&resp), 403, "{}", reason(&resp));
}

#[tokio::test]
async fn no_check_fails_across_twenty_reloads_under_load() {
    let ward = start().await;
    let client = connect(ward.grpc_addr).await;
    let token = bearer(Algorithm::ES256, "a", "alice");
    let stop = Arc::new(AtomicBool::new(false));
    let (sent, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut load = Vec::new();
    for _ in 0..4 {
        let (client, token, stop) = (client.clone(), token.clone(), stop.clone());
        let (sent, failed) = (sent.clone(), failed.clone());
        load.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let resp = client
                    .clone()
                    .check(support::inproc::check_request(
                        "GET",
                        "/api",
                        &[("authorization", &token)],
                    ))
                    .await;
                sent.fetch_add(1, Ordering::Relaxed);
                let allowed = resp.is_ok_and(|r| status(&r.into_inner()) == 200);
                if !allowed {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for i in 0..20 {
        // Alternate a change that keeps the caches (a policy no route
        // uses) and one that clears them (the rendered headers).
        rewrite(&ward, |doc| {
            if i % 2 == 0 {
                doc["policies"]["others"] =
                    serde_yaml_ng::from_str(&format!("{{roles: {{any_of: [r{i}]}}}}")).unwrap();
            } else {
                doc["headers"] =
                    serde_yaml_ng::from_str(&format!("{{email: x-mail-{i}}}")).unwrap();
            }
        });
        hangup(&ward);
        wait_reloads(&ward, 2.0 + f64::from(i)).await;
        // Checks on the new generation before the next reload, however
        // fast reloads are on this machine.
        let before = sent.load(Ordering::Relaxed);
        for _ in 0..400 {
            if sent.load(Ordering::Relaxed) >= before + 8 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    stop.store(true, Ordering::Relaxed);
    for task in load {
        task.await.unwrap();
    }
    let (sent, failed) = (sent.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    assert!(sent > 100, "too little load to mean anything: {sent}");
    assert_eq!(
        failed, 0,
        "{failed} of {sent} checks failed across 20 reloads"
    );
    assert_eq!(reloads(&ward, "failure").await, 0.0, "{}", ward.logs());
}

#[tokio::test]
async fn caches_survive_a_reload_that_keeps_their_meaning() {
    let ward = start().await;
    let client = connect(ward.grpc_addr).await;
    let token = bearer(Algorithm::ES256, "a", "alice");
    let verifications = || metric(ward.admin_addr, "ward_jwt_verifications_total", &[]);
    assert_eq!(
        status(&check(&client, &[("authorization", &token)]).await),
        200
    );
    let once = verifications().await;
    // Policies only: the verified token is still the same identity.
    rewrite(&ward, |doc| {
        doc["policies"]["others"] = serde_yaml_ng::from_str("{roles: {any_of: [x]}}").unwrap()
    });
    wait_reloads(&ward, 2.0).await;
    assert_eq!(
        status(&check(&client, &[("authorization", &token)]).await),
        200
    );
    assert_eq!(verifications().await, once, "the token cache was kept");
    // The rendered headers change: the cached identity must be rebuilt.
    rewrite(&ward, |doc| {
        doc["headers"] = serde_yaml_ng::from_str("{user_id: x-user-name}").unwrap()
    });
    wait_reloads(&ward, 3.0).await;
    let resp = check(&client, &[("authorization", &token)]).await;
    assert_eq!(status(&resp), 200);
    assert_eq!(
        verifications().await,
        once + 1.0,
        "the token cache was cleared"
    );
    assert_eq!(
        support::authz::set_header(&resp, "x-user-name").as_deref(),
        Some("alice")
    );
}

#[tokio::test]
async fn a_reload_whose_keys_do_not_load_is_refused() {
    let ward = start().await;
    let client = connect(ward.grpc_addr).await;
    let token = bearer(Algorithm::ES256, "a", "alice");
    let [dead] = support::free_addrs::<1>();
    rewrite(&ward, |doc| {
        doc["reload"]["keys_timeout"] = Value::from("300ms");
        let source = serde_yaml_ng::from_str(&format!("{{url: \"http://{dead}/jwks\"}}")).unwrap();
        doc["jwt"]["jwks"].as_sequence_mut().unwrap().push(source);
    });
    hangup(&ward);
    for _ in 0..200 {
        if reloads(&ward, "failure").await >= 1.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(
        ward.logs().contains("reload.keys_timeout"),
        "{}",
        ward.logs()
    );
    let resp = check(&client, &[("authorization", &token)]).await;
    assert_eq!(status(&resp), 200, "{}", reason(&resp));
}

#[tokio::test]
async fn a_restart_only_change_is_named_and_the_running_values_kept() {
    let ward = start().await;
    let client = connect(ward.grpc_addr).await;
    rewrite(&ward, |doc| {
        doc["listen"]["max_connections"] = Value::from(10);
        doc["routes"][0]["policy"] = Value::from("admins");
    });
    wait_reloads(&ward, 2.0).await;
    assert!(
        ward.logs().contains("take effect at restart"),
        "{}",
        ward.logs()
    );
    assert!(ward.logs().contains("listen"), "{}", ward.logs());
    // The rest of the config applied, on the same port.
    let token = bearer(Algorithm::ES256, "a", "alice");
    assert_eq!(
        status(&check(&client, &[("authorization", &token)]).await),
        403
    );
}
