//! ward's integration tests, as one test binary: `support/` (real
//! redis-server, Envoy, echo upstream and ward processes) compiles once,
//! and each file here is a module named after what it tests. nextest
//! still runs every test in its own process.

mod support;

mod api_keys;
mod architecture;
mod backchannel;
mod cached_records;
mod cli;
mod cli_install_module;
mod cli_manage;
mod cluster_invalidation;
mod connections;
mod corrupt_records;
mod credentials_hostile;
mod discovery;
mod envoy_credentials;
mod envoy_e2e;
mod envoy_modes;
mod envoy_module;
mod envoy_smoke;
mod examples;
mod explain;
mod fingerprint;
mod fuzz_corpora;
mod grpc_check;
mod helm_gateway;
mod helm_gateway_module;
mod identity_tokens;
mod introspect;
mod introspection;
mod jwks;
mod jwt_hostile;
mod limits;
mod management;
mod management_proto;
mod management_tls;
mod policies;
mod propagation;
mod properties;
mod reload;
mod request_size;
mod revocation;
mod sentinel_failover;
mod sessions;
mod shipped_envoy;
mod shipped_module;
mod store_contract;
mod store_failure;
mod traces;
mod verifications;
mod workload_identity;
mod wycheproof;
