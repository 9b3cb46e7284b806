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
