//! Fuzz harnesses, shared by the cargo-fuzz targets (`fuzz/`) and the
//! stable replay of their corpora (`tests/it/fuzz_corpora.rs`).
//!
//! Each function takes arbitrary bytes, runs one parser or rule set of
//! ward on them, and panics when a property fails (a panic is what the
//! fuzzer reports as a crash). A fuzz target is a three-line wrapper, so
//! the checked-in seeds and every minimised crash replay under plain
//! `cargo test` with no nightly toolchain. Not part of ward's API: hidden
//! from the docs, kept small, and free to change.

mod check_request;
mod config;
mod credentials;
mod formats;
mod jws;
mod logout;
mod path;
mod workload;

pub use check_request::check_request;
pub use config::config;
pub use credentials::credentials;
pub use formats::formats;
pub use jws::{NOW as JWS_NOW, jws};
pub use path::path;
pub use workload::workload;

/// A harness: arbitrary bytes in, a panic if a property fails.
pub type Harness = fn(&[u8]);

/// The fuzz targets, by name: what `scripts/fuzz.sh` runs and the replay
/// test walks.
pub const TARGETS: [(&str, Harness); 7] = [
    ("check_request", check_request),
    ("jws", jws),
    ("path", path),
    ("credentials", credentials),
    ("formats", formats),
    ("config", config),
    ("workload", workload),
];

/// Fuzzed bytes as text, the way a transport that requires UTF-8 would
/// refuse them: invalid sequences become U+FFFD.
fn text(data: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(data)
}
