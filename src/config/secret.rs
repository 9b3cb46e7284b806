//! Secrets in config: an HMAC key (later a Redis password) may be written
//! inline, read from a file (a mounted Kubernetes Secret), or taken from an
//! environment variable. Whatever the source, the value never prints: its
//! `Debug` is redacted so a config dump or a log line cannot leak it.

use serde::Deserialize;
use std::path::PathBuf;

/// Where a secret comes from, as written in YAML: exactly one of
/// `value`, `file` or `env`.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SecretSource {
    #[serde(default)]
    pub value: Option<String>,
    #[serde(default)]
    pub file: Option<PathBuf>,
    #[serde(default)]
    pub env: Option<String>,
}

impl std::fmt::Debug for SecretSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretSource")
            .field("value", &self.value.as_ref().map(|_| "<redacted>"))
            .field("file", &self.file)
            .field("env", &self.env)
            .finish()
    }
}

/// Why a secret could not be read. Names the source, never the value.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SecretError {
    #[error("exactly one of `value`, `file` or `env` must be set")]
    NotExactlyOne,
    #[error("cannot read secret file {path}: {reason}")]
    File { path: String, reason: String },
    #[error("environment variable {0} is not set")]
    Env(String),
    #[error("secret is empty")]
    Empty,
}

/// Reads environment variables; injectable so tests never touch the
/// process environment.
pub trait EnvSource {
    fn var(&self, name: &str) -> Option<String>;
}

/// The real process environment.
pub struct ProcessEnv;

impl EnvSource for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

impl SecretSource {
    /// Resolves the secret's bytes. A trailing newline in a file (as
    /// `echo > file` writes) is not part of the secret.
    pub fn resolve(&self, env: &dyn EnvSource) -> Result<Secret, SecretError> {
        let value = match (&self.value, &self.file, &self.env) {
            (Some(v), None, None) => v.clone().into_bytes(),
            (None, Some(path), None) => {
                let mut bytes = std::fs::read(path).map_err(|e| SecretError::File {
                    path: path.display().to_string(),
                    reason: e.to_string(),
                })?;
                while bytes.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                    bytes.pop();
                }
                bytes
            }
            (None, None, Some(name)) => env
                .var(name)
                .ok_or_else(|| SecretError::Env(name.clone()))?
                .into_bytes(),
            _ => return Err(SecretError::NotExactlyOne),
        };
        if value.is_empty() {
            return Err(SecretError::Empty);
        }
        Ok(Secret(value))
    }
}

/// A resolved secret. Its bytes are reachable only through `expose()`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl Secret {
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    struct FakeEnv(HashMap<&'static str, &'static str>);
    impl EnvSource for FakeEnv {
        fn var(&self, name: &str) -> Option<String> {
            self.0.get(name).map(|v| v.to_string())
        }
    }

    fn source(value: Option<&str>, file: Option<PathBuf>, env: Option<&str>) -> SecretSource {
        SecretSource {
            value: value.map(str::to_string),
            file,
            env: env.map(str::to_string),
        }
    }

    #[test]
    fn resolves_each_source_and_never_prints_the_value() {
        let env = FakeEnv(HashMap::from([("HMAC", "from-env")]));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        std::fs::write(&path, "from-file\n").unwrap();

        let inline = source(Some("inline-secret"), None, None);
        assert_eq!(inline.resolve(&env).unwrap().expose(), b"inline-secret");
        assert!(!format!("{inline:?}").contains("inline-secret"));
        let file = source(None, Some(path), None).resolve(&env).unwrap();
        assert_eq!(file.expose(), b"from-file");
        assert!(!format!("{file:?}").contains("from-file"));
        let from_env = source(None, None, Some("HMAC")).resolve(&env).unwrap();
        assert_eq!(from_env.expose(), b"from-env");
    }

    #[test]
    fn rejects_ambiguous_missing_and_empty_sources() {
        let env = FakeEnv(HashMap::new());
        assert_eq!(
            source(Some("a"), None, Some("B")).resolve(&env),
            Err(SecretError::NotExactlyOne)
        );
        assert_eq!(
            source(None, None, None).resolve(&env),
            Err(SecretError::NotExactlyOne)
        );
        assert_eq!(
            source(None, None, Some("NOPE")).resolve(&env),
            Err(SecretError::Env("NOPE".into()))
        );
        assert_eq!(
            source(Some(""), None, None).resolve(&env),
            Err(SecretError::Empty)
        );
        assert!(matches!(
            source(None, Some("/nonexistent/x".into()), None).resolve(&env),
            Err(SecretError::File { .. })
        ));
    }
}
