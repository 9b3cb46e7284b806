//! The Envoy module (`libward_envoy.so`), built for tests that load it
//! the way a deployment does: beside the `ward` binary in the target
//! directory, as the image lays them out (`/ward`, `/libward_envoy.so`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// Builds the module once per test process (cargo does nothing if it is
/// fresh; `scripts/test.sh` builds it before the tests) and returns the
/// directory holding it and the `ward` binary.
pub fn dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let status = Command::new(env!("CARGO"))
            .args(["build", "--quiet", "-p", "ward-envoy-module"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("cargo build -p ward-envoy-module");
        assert!(status.success(), "cargo build -p ward-envoy-module failed");
        let dir = Path::new(env!("CARGO_BIN_EXE_ward"))
            .parent()
            .expect("the ward binary's directory")
            .to_path_buf();
        assert!(
            dir.join("libward_envoy.so").is_file(),
            "no libward_envoy.so beside {}",
            env!("CARGO_BIN_EXE_ward")
        );
        dir
    })
}

/// Turns a bootstrap rendered for the gRPC mode
/// ([`super::envoy::render_config`], perhaps changed since) into the
/// module's, so one test runs the same Envoy both ways: ward's module
/// filter, with `ward_yaml`, instead of the ext_authz filter, and each
/// route's ext_authz setting as the module's (`disabled` stays disabled;
/// `context_extensions.ward_policy` becomes the per-route policy).
pub fn into_module(config: &mut serde_json::Value, ward_yaml: &str) {
    use serde_json::{Value, json};
    let string = |value: &str| json!({"@type": "type.googleapis.com/google.protobuf.StringValue", "value": value});
    let hcm = &mut config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"];
    hcm["http_filters"][0] = json!({
        "name": "ward",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.dynamic_modules.v3.DynamicModuleFilter",
            "dynamic_module_config": {"name": "ward_envoy", "metrics_namespace": "ward"},
            "filter_name": "ward",
            "filter_config": string(ward_yaml),
        },
    });
    let routes = hcm["route_config"]["virtual_hosts"][0]["routes"]
        .as_array_mut()
        .expect("routes");
    for route in routes {
        let Some(setting) = route["typed_per_filter_config"]
            .get("envoy.filters.http.ext_authz")
            .cloned()
        else {
            continue;
        };
        let ward = if setting["disabled"] == Value::Bool(true) {
            json!({"@type": "type.googleapis.com/envoy.config.route.v3.FilterConfig", "disabled": true})
        } else {
            let policy = setting["check_settings"]["context_extensions"]["ward_policy"]
                .as_str()
                .expect("a ward_policy");
            json!({
                "@type": "type.googleapis.com/envoy.extensions.filters.http.dynamic_modules.v3.DynamicModuleFilterPerRoute",
                "dynamic_module_config": {"name": "ward_envoy"},
                "filter_name": "ward",
                "filter_config": string(policy),
            })
        };
        route["typed_per_filter_config"] = json!({ "ward": ward });
    }
}

/// The environment Envoy needs to find the module.
pub fn search_path() -> [(&'static str, &'static std::ffi::OsStr); 1] {
    [("ENVOY_DYNAMIC_MODULES_SEARCH_PATH", dir().as_os_str())]
}
