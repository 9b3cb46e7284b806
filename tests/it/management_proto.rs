//! The management API's Rust code is generated from
//! `proto/ward/admin/v1/admin.proto` and checked in
//! (`src/server/management/proto.rs`), so a build needs no `protoc`. This
//! test generates it again (tonic-prost-build, with the `protoc` of
//! `protoc-bin-vendored`) and fails when the checked-in file differs: a
//! changed proto must come with its code. `WARD_WRITE_PROTO=1` writes the
//! file instead of failing (docs/operations.md#the-management-api).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

const PROTO: &str = "proto/ward/admin/v1/admin.proto";
const CHECKED_IN: &str = "src/server/management/proto.rs";

/// The code tonic-prost-build generates for the proto today.
fn generate() -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = tempfile::tempdir().unwrap();
    let mut config = prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path().unwrap());
    tonic_prost_build::configure()
        .build_transport(false)
        .emit_rerun_if_changed(false)
        .out_dir(out.path())
        .compile_with_config(config, &[root.join(PROTO)], &[root.join("proto")])
        .unwrap();
    std::fs::read_to_string(out.path().join("ward.admin.v1.rs")).unwrap()
}

#[test]
fn the_checked_in_management_code_is_generated_from_the_proto() {
    let generated = generate();
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(CHECKED_IN);
    if std::env::var_os("WARD_WRITE_PROTO").is_some() {
        std::fs::write(&path, &generated).unwrap();
        return;
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        checked_in == generated,
        "{CHECKED_IN} is not what {PROTO} generates: run \
         `WARD_WRITE_PROTO=1 cargo nextest run -E 'test(/checked_in_management_code/)'` \
         and commit the result"
    );
}
