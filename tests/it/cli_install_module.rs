//! `ward install-module DIR`, through the real binary: what the Helm
//! chart's init container runs to hand the Envoy module from ward's
//! (distroless) image to Envoy's container.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support::cli::ward;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

const MODULE: &str = "libward_envoy.so";

/// The names in `dir`, sorted: no temporary file may be left behind.
fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn install_module_copies_the_given_file_whole_with_mode_0644_and_replaces_an_old_one() {
    let src = tempfile::tempdir().unwrap();
    let dest = tempfile::tempdir().unwrap();
    let from = src.path().join("module.so");
    std::fs::write(&from, b"first module bytes").unwrap();
    std::fs::set_permissions(&from, std::fs::Permissions::from_mode(0o600)).unwrap();
    let (dir, from_arg) = (dest.path().to_str().unwrap(), from.to_str().unwrap());

    let (ok, text) = ward(&["install-module", dir, "--from", from_arg]);
    assert!(ok, "{text}");
    let installed = dest.path().join(MODULE);
    assert_eq!(std::fs::read(&installed).unwrap(), b"first module bytes");
    assert_eq!(mode(&installed), 0o644, "Envoy's user must read it");
    assert!(text.contains(&installed.display().to_string()), "{text}");

    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(&from, &big).unwrap();
    let (ok, text) = ward(&["install-module", dir, "--from", from_arg]);
    assert!(ok, "{text}");
    assert_eq!(std::fs::read(&installed).unwrap(), big);
    assert_eq!(names(dest.path()), vec![MODULE], "only the module is left");
}

#[test]
fn install_module_fails_clearly_when_the_module_or_the_directory_is_missing() {
    let dest = tempfile::tempdir().unwrap();
    let dir = dest.path().to_str().unwrap();
    let (ok, text) = ward(&["install-module", dir, "--from", "/nonexistent/ward.so"]);
    assert!(!ok);
    assert!(
        text.contains("no Envoy module at /nonexistent/ward.so") && text.contains("--from"),
        "{text}"
    );
    assert!(names(dest.path()).is_empty(), "nothing written: {text}");

    let src = tempfile::tempdir().unwrap();
    let from = src.path().join("module.so");
    std::fs::write(&from, b"bytes").unwrap();
    let missing = dest.path().join("not-created");
    let (ok, text) = ward(&[
        "install-module",
        missing.to_str().unwrap(),
        "--from",
        from.to_str().unwrap(),
    ]);
    assert!(!ok);
    assert!(
        text.contains(&format!("cannot write into {}", missing.display())),
        "{text}"
    );
}

/// Without `--from`, the module is the one beside the `ward` binary, as
/// the image lays them out (`/ward`, `/libward_envoy.so`): a copy of the
/// binary in a directory of its own finds its neighbour, or names it.
#[test]
fn install_module_takes_the_module_beside_the_binary_by_default() {
    // The target directory's tmp: same filesystem as the binary, so a
    // hard link is enough (a symlink would resolve back to target/).
    let bin_dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let bin = bin_dir.path().join("ward");
    std::fs::hard_link(env!("CARGO_BIN_EXE_ward"), &bin)
        .or_else(|_| std::fs::copy(env!("CARGO_BIN_EXE_ward"), &bin).map(drop))
        .unwrap();
    let dest = tempfile::tempdir().unwrap();
    let run = || {
        let out = Command::new(&bin)
            .args(["install-module", dest.path().to_str().unwrap()])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        (out.status.success(), text)
    };

    let (ok, text) = run();
    assert!(!ok);
    let beside = bin_dir.path().join(MODULE);
    assert!(
        text.contains(&format!("no Envoy module at {}", beside.display())),
        "{text}"
    );

    std::fs::write(&beside, b"the image's module").unwrap();
    let (ok, text) = run();
    assert!(ok, "{text}");
    let installed = std::fs::read(dest.path().join(MODULE)).unwrap();
    assert_eq!(installed, b"the image's module");
}

/// The image (`Dockerfile`, which cannot be built here: no Docker) builds
/// the module and puts it beside the binary its ENTRYPOINT runs: the
/// place `install-module` looks without `--from`.
#[test]
fn the_image_carries_the_module_where_install_module_looks() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dockerfile = std::fs::read_to_string(root.join("Dockerfile")).unwrap();
    let (build, runtime) = dockerfile
        .rsplit_once("\nFROM ")
        .expect("a build stage and a runtime stage");
    assert!(
        build.contains("cargo build --release --locked -p ward-envoy-module"),
        "the build stage builds the module"
    );
    let copied: Vec<&str> = runtime
        .lines()
        .filter_map(|l| l.strip_prefix("COPY --from=build "))
        .filter_map(|l| l.split_whitespace().nth(1))
        .collect();
    let entrypoint = runtime
        .lines()
        .find_map(|l| l.strip_prefix("ENTRYPOINT [\""))
        .and_then(|l| l.split('"').next())
        .expect("an ENTRYPOINT");
    assert!(copied.contains(&entrypoint), "{copied:?}");
    let beside = Path::new(entrypoint).with_file_name(MODULE);
    assert!(
        copied.contains(&beside.to_str().unwrap()),
        "the runtime stage must copy the module to {}: {copied:?}",
        beside.display()
    );
}
