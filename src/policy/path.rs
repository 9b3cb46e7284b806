//! Path canonicalization before route matching.
//!
//! A route policy is only as strong as the path it is matched against. If
//! ward matched the raw path, `/public/../admin`, `//admin`, `/%61dmin` or
//! `/admin;x` would miss a rule for `/admin` while a lenient backend still
//! serves `/admin`. So ward matches the path *as the most lenient backend
//! would resolve it*: decoded once, with `\` and encoded slashes as
//! separators, path parameters dropped, and dot segments resolved. Anything
//! that a second decoder or parser could read differently (`%25`, an encoded
//! `?` or `#`, control characters, bytes that are not UTF-8) is refused
//! rather than guessed at: the caller denies the request.
//!
//! Envoy should already normalize paths (`docs/paths.md` lists the settings);
//! this is the second line of defence. The result is for matching only; the
//! request that reaches the backend is unchanged.

/// Paths longer than this (after the query is stripped) are refused.
pub const MAX_PATH_BYTES: usize = 8192;

/// Why a path cannot be canonicalized. Every variant means "deny".
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("path is longer than {MAX_PATH_BYTES} bytes")]
    TooLong,
    #[error("path does not start with `/`")]
    NotAbsolute,
    #[error("path has a `%` not followed by two hex digits")]
    BadPercentEncoding,
    #[error("path has an encoded `%` (%25): a backend that decodes twice would see another path")]
    DoubleEncoding,
    #[error("path has an encoded `?` or `#` (%3F, %23): backends disagree on where the path ends")]
    EncodedDelimiter,
    #[error("path has a control character")]
    ControlCharacter,
    #[error("path does not decode to UTF-8")]
    NotUtf8,
}

/// The path as the most lenient backend would resolve it, for matching only.
///
/// `raw` is the request's `:path` (query and fragment allowed). The result
/// starts with `/`, has no empty, `.` or `..` segment, no trailing `/`
/// (except the root itself), and no `\`, `;`, `%`, `?`, `#` or control
/// character. Case is preserved. `canonicalize` of a result is the result.
pub fn canonicalize(raw: &str) -> Result<String, PathError> {
    let path = match raw.find(['?', '#']) {
        Some(end) => &raw[..end],
        None => raw,
    };
    if !path.starts_with('/') {
        return Err(PathError::NotAbsolute);
    }
    if path.len() > MAX_PATH_BYTES {
        return Err(PathError::TooLong);
    }
    let decoded = percent_decode(path.as_bytes())?;
    refuse_ambiguous_bytes(&decoded)?;
    let text = String::from_utf8(decoded).map_err(|_| PathError::NotUtf8)?;
    // C1 controls (U+0080..U+009F; NEL is a line break to some parsers).
    if text.chars().any(char::is_control) {
        return Err(PathError::ControlCharacter);
    }
    Ok(resolve(&text))
}

/// Decodes every `%XX` exactly once.
fn percent_decode(raw: &[u8]) -> Result<Vec<u8>, PathError> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'%' {
            let hi = raw.get(i + 1).and_then(|b| hex_value(*b));
            let lo = raw.get(i + 2).and_then(|b| hex_value(*b));
            match (hi, lo) {
                (Some(hi), Some(lo)) => out.push(hi << 4 | lo),
                _ => return Err(PathError::BadPercentEncoding),
            }
            i += 3;
        } else {
            out.push(raw[i]);
            i += 1;
        }
    }
    Ok(out)
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// After one decode, a `%` can only have come from `%25`, and a `?` or `#`
/// only from `%3F`/`%23` (the raw ones were cut off as query and fragment).
fn refuse_ambiguous_bytes(decoded: &[u8]) -> Result<(), PathError> {
    for &b in decoded {
        match b {
            0x00..=0x1F | 0x7F => return Err(PathError::ControlCharacter),
            b'%' => return Err(PathError::DoubleEncoding),
            b'?' | b'#' => return Err(PathError::EncodedDelimiter),
            _ => {}
        }
    }
    Ok(())
}

/// Splits on `/` and `\`, drops `;params`, empty and `.` segments, and
/// resolves `..` without ever climbing above the root.
fn resolve(decoded: &str) -> String {
    let mut segments: Vec<&str> = Vec::new();
    for segment in decoded.split(['/', '\\']) {
        let segment = segment.split_once(';').map_or(segment, |(head, _)| head);
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            name => segments.push(name),
        }
    }
    let mut out = String::with_capacity(decoded.len().max(1));
    for name in &segments {
        out.push('/');
        out.push_str(name);
    }
    if out.is_empty() {
        out.push('/');
    }
    out
}

#[cfg(test)]
mod tests;
