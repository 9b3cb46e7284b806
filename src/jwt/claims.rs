//! The registered-claim rules (RFC 7519 §4.1), applied by ward itself with
//! an injected `now` rather than left to the library's defaults, which do
//! not check `nbf` or `iat`, do not require `iss`/`aud`, and accept any
//! `exp` however absurd.

use super::JwtError;
use serde_json::{Map, Value};
use std::time::Duration;

/// The latest `exp` ward accepts at all: 9999-12-31T23:59:59Z.
const MAX_NUMERIC_DATE: u64 = 253_402_300_799;

/// What a token's claims must satisfy.
#[derive(Debug, Clone, Default)]
pub struct Rules {
    pub leeway: Duration,
    pub issuers: Vec<String>,
    pub audiences: Vec<String>,
    pub max_lifetime: Option<Duration>,
}

/// Checks `claims` at `now` (unix seconds); returns the token's `exp`.
pub(super) fn check(claims: &Map<String, Value>, rules: &Rules, now: u64) -> Result<u64, JwtError> {
    let leeway = rules.leeway.as_secs();
    let exp = numeric_date(claims, "exp")?.ok_or(JwtError::MissingClaim("exp"))?;
    if now >= exp.saturating_add(leeway) {
        return Err(JwtError::Expired);
    }
    if let Some(max) = rules.max_lifetime
        && exp > now.saturating_add(max.as_secs())
    {
        return Err(JwtError::LifetimeTooLong);
    }
    if let Some(nbf) = numeric_date(claims, "nbf")?
        && nbf > now.saturating_add(leeway)
    {
        return Err(JwtError::NotYetValid);
    }
    if let Some(iat) = numeric_date(claims, "iat")?
        && iat > now.saturating_add(leeway)
    {
        return Err(JwtError::NotYetValid);
    }
    if !rules.issuers.is_empty() {
        let ok =
            matches!(claims.get("iss"), Some(Value::String(iss)) if rules.issuers.contains(iss));
        if !ok {
            return Err(JwtError::WrongIssuer);
        }
    }
    if !rules.audiences.is_empty() && !audience_matches(claims.get("aud"), &rules.audiences) {
        return Err(JwtError::WrongAudience);
    }
    Ok(exp)
}

/// `aud` is a string or an array of strings; it matches when any of its
/// values is an accepted audience.
fn audience_matches(aud: Option<&Value>, accepted: &[String]) -> bool {
    match aud {
        Some(Value::String(a)) => accepted.contains(a),
        Some(Value::Array(list)) => list
            .iter()
            .any(|v| matches!(v, Value::String(a) if accepted.contains(a))),
        _ => false,
    }
}

/// A NumericDate claim: a non-negative JSON number of seconds (fractions
/// are truncated). A string, a negative number or a date past year 9999 is
/// an invalid claim, not an absent one.
fn numeric_date(claims: &Map<String, Value>, name: &'static str) -> Result<Option<u64>, JwtError> {
    let Some(value) = claims.get(name) else {
        return Ok(None);
    };
    let secs = match value {
        Value::Number(n) => n.as_u64().or_else(|| {
            n.as_f64()
                .filter(|f| f.is_finite() && *f >= 0.0)
                .map(|f| f as u64)
        }),
        _ => None,
    };
    match secs {
        Some(s) if s <= MAX_NUMERIC_DATE => Ok(Some(s)),
        _ => Err(JwtError::InvalidClaim(name)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: u64 = 1_700_000_000;

    fn rules() -> Rules {
        Rules {
            leeway: Duration::from_secs(60),
            issuers: vec!["https://idp".into()],
            audiences: vec!["api".into(), "web".into()],
            max_lifetime: Some(Duration::from_secs(86_400)),
        }
    }

    fn check_json(v: Value) -> Result<u64, JwtError> {
        let Value::Object(map) = v else {
            panic!("object")
        };
        check(&map, &rules(), NOW)
    }

    #[test]
    fn table() {
        let ok = |extra: Value| {
            let mut base = json!({"exp": NOW + 600, "iss": "https://idp", "aud": "api"});
            for (k, v) in extra.as_object().unwrap() {
                base[k] = v.clone();
            }
            check_json(base)
        };
        let cases: Vec<(&str, Value, Result<u64, JwtError>)> = vec![
            ("valid", json!({}), Ok(NOW + 600)),
            (
                "fractional exp",
                json!({"exp": (NOW + 600) as f64 + 0.5}),
                Ok(NOW + 600),
            ),
            (
                "aud array containing one",
                json!({"aud": ["other", "web"]}),
                Ok(NOW + 600),
            ),
            (
                "expired beyond leeway",
                json!({"exp": NOW - 61}),
                Err(JwtError::Expired),
            ),
            (
                "expired within leeway",
                json!({"exp": NOW - 59}),
                Ok(NOW - 59),
            ),
            (
                "exp as string",
                json!({"exp": "9999999999"}),
                Err(JwtError::InvalidClaim("exp")),
            ),
            (
                "exp negative",
                json!({"exp": -1}),
                Err(JwtError::InvalidClaim("exp")),
            ),
            (
                "exp absurd",
                json!({"exp": 1e300}),
                Err(JwtError::InvalidClaim("exp")),
            ),
            (
                "exp too far",
                json!({"exp": NOW + 86_401}),
                Err(JwtError::LifetimeTooLong),
            ),
            (
                "nbf future",
                json!({"nbf": NOW + 61}),
                Err(JwtError::NotYetValid),
            ),
            ("nbf within leeway", json!({"nbf": NOW + 59}), Ok(NOW + 600)),
            (
                "iat future",
                json!({"iat": NOW + 3600}),
                Err(JwtError::NotYetValid),
            ),
            (
                "nbf bad type",
                json!({"nbf": true}),
                Err(JwtError::InvalidClaim("nbf")),
            ),
            (
                "wrong issuer",
                json!({"iss": "https://evil"}),
                Err(JwtError::WrongIssuer),
            ),
            (
                "issuer not a string",
                json!({"iss": ["https://idp"]}),
                Err(JwtError::WrongIssuer),
            ),
            (
                "wrong audience",
                json!({"aud": "other"}),
                Err(JwtError::WrongAudience),
            ),
            (
                "audience array without match",
                json!({"aud": ["x", "y"]}),
                Err(JwtError::WrongAudience),
            ),
            (
                "audience wrong type",
                json!({"aud": 7}),
                Err(JwtError::WrongAudience),
            ),
        ];
        for (name, extra, want) in cases {
            assert_eq!(ok(extra), want, "{name}");
        }
        assert_eq!(
            check_json(json!({"iss": "https://idp", "aud": "api"})),
            Err(JwtError::MissingClaim("exp"))
        );
        assert_eq!(
            check_json(json!({"exp": NOW + 600, "aud": "api"})),
            Err(JwtError::WrongIssuer)
        );
        assert_eq!(
            check_json(json!({"exp": NOW + 600, "iss": "https://idp"})),
            Err(JwtError::WrongAudience)
        );
    }

    #[test]
    fn unconfigured_issuer_and_audience_are_not_checked() {
        let map = json!({"exp": NOW + 10}).as_object().unwrap().clone();
        assert_eq!(check(&map, &Rules::default(), NOW), Ok(NOW + 10));
    }
}
