#![no_main]
// The harness and its properties: src/fuzzing/ (replayed by tests/it/fuzz_corpora.rs).
libfuzzer_sys::fuzz_target!(|data: &[u8]| ward::fuzzing::workload(data));
