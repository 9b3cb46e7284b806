//! ward: an Envoy external-authorization server.
//!
//! Envoy asks, for every request, "may this pass?" over
//! `envoy.service.auth.v3.Authorization/Check`; ward checks the credential
//! the request carries and answers allow (with identity headers for the
//! backend) or deny (with an explicit status and a stable reason).
//!
//! # Layout
//!
//! A functional core (pure: data and `now` in, data out) wrapped by a thin
//! imperative shell (gRPC, HTTP, JWKS fetch, metrics). See
//! `ARCHITECTURE.md` for the life of a check.
//!
//! | module | job |
//! |---|---|
//! | [`config`] | the YAML config, its defaults and `validate()` |
//! | [`setup`] | a config file to a runnable config: `validate()` plus what only compiling tells (policies, keys, seed file) |
//! | [`credential_kind`] | the one enum of credential kinds (config, policy, identity, metrics) |
//! | [`request`] | ward's own view of a check request |
//! | [`credentials`] | which credential a request carries (pure) |
//! | [`workload`] | the calling workload's principal: the mTLS peer, or a trusted hop's forwarded certificate (pure) |
//! | `presented` | the credential as the later steps see it; its hash and the client IP, each computed once (pure) |
//! | `forward` | what of a credential reaches the backend on allow (pure) |
//! | [`jwt`] | JWT parsing, key choice, signature and claim rules (pure) |
//! | [`identity`] | claims rendered into identity headers (pure) |
//! | [`identity_token`] | signed identity tokens for backends: claims, signing keys and their rotation schedule, JWKS and discovery documents (pure) |
//! | [`backchannel`] | OpenID Connect back-channel logout: a logout token checked by every §2.6 rule (pure) |
//! | [`headers`] | ward's managed header set and what to strip (pure) |
//! | [`fingerprint`] | device fingerprints, v1 and v2; client IP from trusted hops (pure) |
//! | [`apikey`], [`session`] | API key and session formats; each record read and written by its one module (pure) |
//! | [`fields`] | `Fields` and strict field values, below the records and the store (pure) |
//! | [`decision`] | `Decision` and `Deny`: a decision as a value (pure) |
//! | [`reason`] | the closed `Reason` table: codes, statuses, RFC 6750 codes, bodies (pure) |
//! | [`response`] | a deny as sent: status overrides, challenges, redirects (pure) |
//! | `check` | one check, both transports and `ward explain` |
//! | `ports` | the trait through which a check asks the world: store, token cache, new tokens' verification, keys, limiter, counters |
//! | [`wiring`] | the server's ports: moka, Redis, the JWKS key store, the limiter, Prometheus (I/O) |
//! | `explain` | `ward explain`: the serve-time checker on one request |
//! | [`cli`] | the `ward` subcommands behind `main.rs`: config loading, the runtime, exit statuses |
//! | `cache` | the moka cache of verified credentials |
//! | [`background`] | one thread for work a check hands off and never waits for: identity tokens re-signed before they expire |
//! | [`clock`] | the monotonic clock of the cache and limiter windows; a manual one for tests |
//! | [`jwks`] | the key store and background JWKS fetchers (I/O) |
//! | [`introspection`] | opaque tokens: which bearer tokens are opaque, and an RFC 7662 answer read strictly (pure) |
//! | [`introspections`] | opaque tokens' calls to their providers: kept answers, single flight, global limits, breaker, discovery, invalidation (I/O) |
//! | [`policy`] | route policies; [`policy::path`] canonicalizes paths (pure) |
//! | [`limiter`] | failed-authentication budgets per IP and credential |
//! | `authn` | extract → cache → verify → identity: one check |
//! | [`verifications`] | new tokens verified off the hit thread: a bounded queue, idle-priority threads, one verification per token in flight |
//! | `flights` | single flight: one call per key in flight (store reads, verifications) |
//! | `on_store_error` | what a failed store read means: the one place `on_store_error` is applied (pure) |
//! | [`lookup`] | store reads behind the cache: fresh, negative, stale, single-flight |
//! | `record` | a cached store record and the slot for its parsed view (pure) |
//! | [`store`] | the Redis contract: Redis (standalone, Cluster, Sentinel) and the embedded store (I/O) |
//! | `manage` | the management operations behind `ward apikey` / `ward session` and the management API |
//! | [`metrics`] | Prometheus metrics in an explicit registry |
//! | [`runtime`] | the Tokio runtime for a worker count |
//! | [`server`] | listeners (connection caps and handshake timeouts: [`server::conn`]), the Envoy adapter, admin port, the management API ([`server::management`]), shutdown (I/O) |
//! | `telemetry` | `tracing` subscriber setup |
//! | `fuzzing` | the fuzz targets' harnesses (hidden; `fuzz/`, `tests/it/fuzz_corpora.rs`) |

// `pub` means used by the binary, the benches or the tests: anything
// else is `pub(crate)`, so the visible surface is the architecture.
#![warn(unreachable_pub)]

/// The `tracing` target of the spans and span events exported as traces
/// (`telemetry.rs`): never logged, and free when traces are off.
pub(crate) const TRACE_TARGET: &str = "ward::otel";

pub mod apikey;
pub(crate) mod authn;
pub mod backchannel;
pub mod background;
pub mod cache;
pub mod check;
#[cfg(feature = "server")]
pub mod cli;
pub mod clock;
pub mod config;
pub mod credential_kind;
pub mod credentials;
pub mod decision;
#[cfg(feature = "server")]
pub(crate) mod explain;
pub mod fields;
pub mod fingerprint;
pub(crate) mod flights;
pub mod forward;
#[cfg(feature = "server")]
#[doc(hidden)]
pub mod fuzzing;
pub mod headers;
pub mod identity;
pub mod identity_token;
pub mod introspection;
pub mod introspections;
pub mod jwks;
pub mod jwt;
pub mod limiter;
pub mod lookup;
#[cfg(feature = "server")]
pub(crate) mod manage;
pub mod metrics;
pub(crate) mod on_store_error;
pub mod policy;
pub mod ports;
pub mod presented;
pub mod reason;
pub mod record;
pub mod request;
pub mod response;
pub mod runtime;
#[cfg(feature = "server")]
pub mod server;
pub mod session;
pub mod setup;
pub mod store;
#[cfg(feature = "server")]
pub(crate) mod telemetry;
pub mod verifications;
pub mod wiring;
pub mod workload;

/// Seconds since the Unix epoch: the one clock read per check, handed to
/// the pure core as `now`.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
