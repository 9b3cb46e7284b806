//! Placeholder until the canonicalization module lands (being written on
//! another branch): percent-decoding, dot segments, slashes.

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("path must start with `/`")]
    NotAbsolute,
}

pub fn canonicalize(raw: &str) -> Result<String, PathError> {
    let raw = raw.split(['?', '#']).next().unwrap_or("");
    if !raw.starts_with('/') {
        return Err(PathError::NotAbsolute);
    }
    let mut out: Vec<&str> = Vec::new();
    for seg in raw.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s),
        }
    }
    if raw.contains('%') {
        return Ok(format!("/{}%", out.join("/")));
    }
    Ok(format!("/{}", out.join("/")))
}
