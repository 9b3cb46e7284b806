//! Running the `ward` binary as a user would, for command-line tests.

use std::process::Command;

/// Runs `ward ARGS` from the crate root; whether it succeeded, and its
/// stdout followed by its stderr.
pub fn ward(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ward"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cannot run the ward binary");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

/// What `ward fingerprint ARGS` prints: the tool a login-service author
/// checks their own implementation against.
pub fn fingerprint(args: &[&str]) -> String {
    let mut all = vec!["fingerprint"];
    all.extend_from_slice(args);
    let (ok, text) = ward(&all);
    assert!(ok, "ward fingerprint {args:?}: {text}");
    text.trim().to_string()
}
