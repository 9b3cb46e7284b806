#![no_main]
// The harness and its properties: envoy-module/src/fuzzing.rs (replayed by its unit tests).
libfuzzer_sys::fuzz_target!(|data: &[u8]| ward_envoy::fuzzing::module_headers(data));
