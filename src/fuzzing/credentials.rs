//! `credentials`: credential extraction over arbitrary header lists.
//!
//! Input: one byte choosing what the extractor looks for (JWT header,
//! sessions, API keys), then `name: value` lines. The lines are folded as
//! a proxy folds repeated headers ([`fold_headers`]), then
//! [`Extractor::extract`] runs. Properties: folding keeps every value
//! under one name each; an extracted credential is a non-empty substring
//! of a header the client sent, with no control character, space or comma
//! (a comma means two credentials joined by a proxy).

use crate::credentials::{Credential, Extractor};
use crate::request::{Headers, Request, fold_headers};

pub fn credentials(data: &[u8]) {
    let Some((&choice, rest)) = data.split_first() else {
        return;
    };
    let text = super::text(rest);
    let sent: Vec<(String, String)> = text
        .split('\n')
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| {
            let value = value.strip_prefix(' ').unwrap_or(value);
            (name.to_ascii_lowercase(), value.to_string())
        })
        .collect();
    let folded = fold_headers(sent.clone());
    check_folding(&sent, &folded);
    // A `:path` line, if any, is the request path (and its query).
    let path = folded
        .iter()
        .find(|(n, _)| n == ":path")
        .map_or("/", |(_, v)| v.as_str());
    let req = Request {
        method: "GET",
        host: "api.example.com",
        path,
        headers: Headers::owned(&folded),
        policy: None,
        source_ip: None,
        principal: None,
    };
    let mut decoded = String::new();
    let Ok(credential) = extractor(choice).extract(&req, &mut decoded) else {
        return;
    };
    let value = match credential {
        Credential::Bearer(v)
        | Credential::Session(v)
        | Credential::ApiKey(v)
        | Credential::Opaque(v) => v,
    };
    assert!(!value.is_empty(), "empty credential");
    // A query token is form-decoded: it need not appear as sent.
    let from_query = path.contains(value) || path.contains('%') || path.contains('+');
    assert!(
        from_query || sent.iter().any(|(_, v)| v.contains(value)),
        "{credential:?} is not within any header sent"
    );
    assert!(
        !value.contains(|c: char| c.is_control() || c == ' ' || c == ','),
        "{credential:?} holds a control character, space or comma"
    );
}

fn check_folding(sent: &[(String, String)], folded: &[(String, String)]) {
    let mut names: Vec<&str> = sent.iter().map(|(n, _)| n.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), folded.len(), "one folded header per name");
    for (name, value) in sent {
        let joined = Headers::owned(folded).get(name);
        assert!(
            joined.is_some_and(|j| j.contains(value.as_str())),
            "{name}: {value:?} lost in folding"
        );
    }
}

/// Bits 0-1: the JWT header (`authorization`, `x-jwt`, none); bit 2:
/// sessions; bit 3: API keys; bit 4: JWTs from the query
/// (`access_token`).
fn extractor(choice: u8) -> Extractor {
    let jwt_header = match choice & 3 {
        0 | 3 => Some("authorization".into()),
        1 => Some("x-jwt".into()),
        _ => None,
    };
    Extractor {
        jwt_query: (choice & 16 != 0 && jwt_header.is_some()).then(|| "access_token".into()),
        jwt_header,
        session: (choice & 4 == 0).then(|| ("session_id".into(), "x-session-id".into())),
        api_key: (choice & 8 == 0).then(|| ("x-api-key".into(), "ApiKey".into())),
        opaque: Default::default(),
    }
}
