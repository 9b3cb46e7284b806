//! What a cached JWT identity costs in memory, counted by allocation: the
//! budget that lets a million active tokens fit in under a gigabyte.
//!
//! Its own test binary, with a counting global allocator (`stats_alloc`)
//! and one test, so no other test's allocations are counted. The identity
//! is the benchmark bed's (`benches/tools/loadgen.rs --gen-hs256`, read by
//! `scripts/bench/phases/memory.py`): a subject, `jti`, e-mail and one
//! role, rendered with the default claim mapping, its allow encoded as the
//! gRPC server encodes it on first use, and kept in the token cache.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::json;
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use std::alloc::System;
use std::sync::Arc;
use ward::cache::TokenCache;
use ward::config::{CacheConfig, Config};
use ward::credential_kind::CredentialKind;
use ward::credentials::hash_credential;
use ward::identity::{ClaimRenderer, HeaderRules};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Entries counted: enough that moka's tables, grown by doubling, weigh
/// per entry about what they do at a million.
const ENTRIES: usize = 50_000;

/// The budget per cached identity, allocator overhead included: a million
/// active tokens in under a gigabyte.
const BUDGET: f64 = 1024.0;

/// What glibc's malloc adds to each block, on average: an 8-byte header,
/// and the size rounded up to 16 bytes.
const BLOCK_OVERHEAD: f64 = 16.0;

/// The heap `f` leaves behind per entry: bytes asked for, and blocks.
fn live_per_entry(f: impl FnOnce()) -> (f64, f64) {
    let region = Region::new(GLOBAL);
    f();
    let c = region.change();
    // A realloc counts its growth in `bytes_allocated` too.
    let bytes = c.bytes_allocated as f64 - c.bytes_deallocated as f64;
    let blocks = c.allocations as f64 - c.deallocations as f64;
    (bytes / ENTRIES as f64, blocks / ENTRIES as f64)
}

#[test]
fn a_cached_identity_fits_in_a_kilobyte() {
    let config = Config::default();
    let renderer = ClaimRenderer::new(&config.jwt.claims, HeaderRules::new(&config.headers));
    let cache = TokenCache::new(&CacheConfig {
        max_entries: 2 * ENTRIES as u64,
        max_ttl: std::time::Duration::from_secs(3600),
        ..CacheConfig::default()
    });
    let claims: Vec<_> = (0..ENTRIES)
        .map(|i| {
            let sub = format!("fill-{}", 1_000_000 + i);
            json!({"sub": sub, "iss": "https://idp.test", "aud": "api", "iat": 1_000,
                   "exp": 4_600, "jti": sub, "email": format!("{sub}@example.com"),
                   "roles": ["reader"]})
        })
        .collect();
    let keys: Vec<_> = (0..ENTRIES)
        .map(|i| hash_credential(&format!("token-{i}")))
        .collect();
    let mut identities = Vec::with_capacity(ENTRIES);
    let identity = live_per_entry(|| {
        for c in &claims {
            let id = renderer
                .render(c.as_object().unwrap(), CredentialKind::Jwt)
                .unwrap();
            identities.push(Arc::new(id));
        }
    });
    let encoded = live_per_entry(|| {
        for id in &identities {
            ward::server::pre_encode(id);
        }
    });
    let cached = live_per_entry(|| {
        for (key, id) in keys.iter().zip(identities.drain(..)) {
            cache.insert(*key, id, 4_600, 0x5eed, 1_000);
        }
        cache.sync();
    });
    assert!(cache.get(&keys[ENTRIES - 1], 1_000).is_some());
    let parts = [identity, encoded, cached];
    let total: f64 = parts.iter().map(|(b, n)| b + n * BLOCK_OVERHEAD).sum();
    let report = format!(
        "per entry: identity {:.0} B in {:.1} blocks, encoded allow {:.0} B in {:.1}, \
         cache entry {:.0} B in {:.1}: {total:.0} B with the allocator's overhead",
        identity.0, identity.1, encoded.0, encoded.1, cached.0, cached.1
    );
    eprintln!("{report}");
    assert!(total <= BUDGET, "over the {BUDGET} B budget: {report}");
}
