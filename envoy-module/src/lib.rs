//! ward's checker as an Envoy dynamic module: an HTTP filter Envoy loads
//! in-process (`libward_envoy.so`), deciding each request with the same
//! `Checker` as `ward serve` without the ext_authz hop.
//!
//! - `abi.rs`: the hand-written subset of Envoy's dynamic-module ABI
//!   (1.40, `v0.2.0`): the hooks Envoy calls and the callbacks ward uses.
//!   The only file with `unsafe`.
//! - `filter.rs`: the filter config (ward's YAML, validated as `ward
//!   check-config` does) and one request's check, over the `Host` trait
//!   (Envoy's stream, or a fake in the unit tests).
//! - `view.rs`: the request's headers as the check reads them, borrowed
//!   from Envoy's buffers when they are already in ward's form.
//! - `peer.rs`: the downstream peer's principal (mTLS), read from the
//!   peer certificate as Envoy's ext_authz derives `source.principal`.
//! - `plan.rs`: what a decision changes on the stream, worked out while
//!   the headers are borrowed, made after.
//! - `fuzzing.rs`: the `module_headers` fuzz harness (feature `fuzzing`,
//!   `fuzz/`; replayed by its unit tests): the borrowed reading against
//!   the folded one, and the plan against a model of Envoy's header map.
//! - `runtime.rs`: the module's one Tokio runtime, process-wide, sized by
//!   the first filter config.
//! - `source.rs`: where the filter config's ward YAML comes from (inline,
//!   or `config_file: PATH`).
//! - `stats.rs`: ward's counters and latency as Envoy stats (defined with
//!   the filter config, changed on the stream's worker), under the gRPC
//!   mode's metric names.
//!
//! A check that needs nothing outside the process is decided on Envoy's
//! worker; one that must wait (a store read, a JWKS refetch) holds the
//! request, runs on the module's one Tokio runtime and resumes through
//! Envoy's scheduler. See `docs/envoy-module.md`.

#![deny(unsafe_op_in_unsafe_fn)]

// Not in unit tests nor the fuzz build: the callbacks it declares exist
// only inside Envoy.
#[cfg(not(any(test, feature = "fuzzing")))]
mod abi;
pub mod filter;
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod fuzzing;
pub mod peer;
mod plan;
mod runtime;
mod source;
pub mod stats;
mod view;
