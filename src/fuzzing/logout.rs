//! The back-channel logout rules (`backchannel.rs`), run by the `jws`
//! target on every token it signs: whatever the header and payload, a
//! logout token is accepted only from the one configured issuer, and what
//! an accepted one yields fits a store key and a bounded replay window.

use crate::backchannel::{self, LOGOUT_EVENT, LogoutRules, MAX_ID_BYTES, Target};
use crate::jwt::{AllowedTypes, KeySet};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

/// The one issuer whose keys (the `jws` key set) verify logout tokens.
pub(super) const ISSUER: &str = "https://idp.example";

/// Checks `token` (signed by the `jws` harness) as a logout token at `now`.
pub(super) fn logout(token: &str, keys: &Arc<KeySet>, now: u64) {
    let rules = LogoutRules {
        client_id: "api".into(),
        leeway: Duration::from_secs(60),
        max_age: Duration::from_secs(600),
        max_token_bytes: 8192,
        types: AllowedTypes::new(&["logout+jwt"]),
    };
    let Ok(logout) = backchannel::verify(
        token,
        |iss| (iss == ISSUER).then(|| keys.clone()),
        &rules,
        now,
    ) else {
        return;
    };
    assert_eq!(logout.issuer, ISSUER);
    let (max_age, leeway) = (rules.max_age.as_secs(), rules.leeway.as_secs());
    assert!(
        (now..=now + max_age + 2 * leeway).contains(&logout.replay_until),
        "replay window out of bounds: {logout:?}"
    );
    let (Target::Session(id) | Target::Subject(id)) = &logout.target;
    for value in [id, &logout.jti] {
        assert!(
            !value.is_empty() && value.len() <= MAX_ID_BYTES,
            "{logout:?}"
        );
        assert!(!value.chars().any(char::is_control), "{logout:?}");
    }
    // What was accepted carries the event and no nonce.
    let payload = token.split('.').nth(1).unwrap_or_default();
    let claims: Value =
        base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, payload)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default();
    assert!(claims["events"][LOGOUT_EVENT].is_object(), "{claims}");
    assert!(claims.get("nonce").is_none(), "{claims}");
}
