//! A running config, as digests: one per part of ward that holds state
//! worth keeping across a reload (keys, the store connection, cached
//! records, the limiter's counts), each over the config sections and the
//! files that part was built from. A reload keeps a part, and what it has
//! cached, only when its digest is unchanged; otherwise the part is built
//! again and its cache starts empty. Comparing digests of the YAML (not of
//! the parsed structs) is conservative: reordering keys or spelling out a
//! default counts as a change, which only costs a cache refill.

use crate::config::{Config, Part};
use serde_yaml_ng::Value;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

type Sha = [u8; 32];

/// Sections (or fields, dotted) that only a restart applies: a reload
/// that changes one says so and keeps the running values. Of
/// `management`, its listener and how callers authenticate; the
/// back-channel logout's rules follow a reload.
pub(in crate::server) const RESTART_ONLY: [&str; 6] = [
    "listen",
    "runtime",
    "log",
    "tracing",
    "management.listen",
    "management.auth",
];

/// Sections whose values cached identities hold (rendered headers, roles
/// and scopes, the cache's own bounds).
const RECORDS: [&str; 4] = ["cache", "headers", "sessions", "api_keys"];

/// What each stateful part of a running ward was built from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(in crate::server) struct Digests {
    /// `jwt` and its key files: the key store, and with `records` the
    /// verified-token cache.
    pub keys: Sha,
    /// `store` and its files: the store connection, and with `records` the
    /// cached store reads.
    pub store: Sha,
    pub records: Sha,
    /// `limits`: the failed-authentication counts.
    pub limits: Sha,
    /// Each restart-only section, by name.
    pub restart: BTreeMap<&'static str, Sha>,
    /// The whole config and every file it names: equal means there is
    /// nothing to reload.
    pub all: Sha,
}

impl Digests {
    /// The digests of `config`, parsed from `text`, with its files read
    /// now (a file that cannot be read digests as empty: validation has
    /// already said whether that is a problem).
    pub(in crate::server) fn of(text: &str, config: &Config) -> Digests {
        let yaml: Value = serde_yaml_ng::from_str(text).unwrap_or(Value::Null);
        let files = config.files();
        let part = |sections: &[&str], part: Option<Part>| {
            let mut sha = Sha256::new();
            for name in sections {
                sha.update(section(&yaml, name));
            }
            for (_, path) in files.iter().filter(|(p, _)| Some(*p) == part) {
                sha.update(file_digest(path).unwrap_or_default());
            }
            sha.finalize().into()
        };
        Digests {
            keys: part(&["jwt"], Some(Part::Keys)),
            store: part(&["store"], Some(Part::Store)),
            records: part(&RECORDS, None),
            limits: part(&["limits"], None),
            restart: RESTART_ONLY
                .iter()
                .map(|name| (*name, part(&[name], None)))
                .collect(),
            all: whole(&yaml, &files),
        }
    }

    /// The restart-only sections that differ between `self` and `new`.
    pub(in crate::server) fn restart_changes(&self, new: &Digests) -> Vec<&'static str> {
        RESTART_ONLY
            .into_iter()
            .filter(|name| self.restart.get(name) != new.restart.get(name))
            .collect()
    }
}

/// The whole YAML and every named file.
fn whole(yaml: &Value, files: &[(Part, PathBuf)]) -> Sha {
    let mut sha = Sha256::new();
    sha.update(serde_yaml_ng::to_string(yaml).unwrap_or_default());
    for (_, path) in files {
        sha.update(file_digest(path).unwrap_or_default());
    }
    sha.finalize().into()
}

/// One section's YAML, as text (empty when absent).
fn section(yaml: &Value, name: &str) -> Vec<u8> {
    let found = name.split('.').try_fold(yaml, |value, key| value.get(key));
    match found {
        Some(value) => serde_yaml_ng::to_string(value)
            .unwrap_or_default()
            .into_bytes(),
        None => Vec::new(),
    }
}

/// A file's SHA-256, following symlinks (`None`: unreadable).
pub(in crate::server) fn file_digest(path: &Path) -> Option<Sha> {
    std::fs::read(path).ok().map(|b| Sha256::digest(&b).into())
}

/// The files a reload watches: the config file and those it names, each
/// with its digest now.
pub(in crate::server) fn watched(
    config_path: &Path,
    config: &Config,
) -> BTreeMap<PathBuf, Option<Sha>> {
    let mut paths = vec![config_path.to_path_buf()];
    paths.extend(config.files().into_iter().map(|(_, p)| p));
    paths
        .into_iter()
        .map(|p| {
            let digest = file_digest(&p);
            (p, digest)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digests(text: &str) -> Digests {
        Digests::of(text, &Config::from_yaml(text).unwrap())
    }

    #[test]
    fn a_section_change_moves_only_its_parts_digest() {
        let base = digests("cache: {max_ttl: 60s}\nlimits: {}\n");
        let cache = digests("cache: {max_ttl: 30s}\nlimits: {}\n");
        assert_eq!(base.keys, cache.keys);
        assert_eq!(base.store, cache.store);
        assert_eq!(base.limits, cache.limits);
        assert_ne!(base.records, cache.records);
        let listen =
            digests("cache: {max_ttl: 60s}\nlimits: {}\nlisten: {grpc: '127.0.0.1:9100'}\n");
        assert_eq!(base.restart_changes(&listen), vec!["listen"]);
        let logout = digests(
            "cache: {max_ttl: 60s}\nlimits: {}\nmanagement: {backchannel_logout: {client_id: a, issuers: [i]}}\n",
        );
        assert!(
            base.restart_changes(&logout).is_empty(),
            "logout rules reload"
        );
        let auth =
            digests("cache: {max_ttl: 60s}\nlimits: {}\nmanagement: {auth: {token_file: /t}}\n");
        assert_eq!(base.restart_changes(&auth), vec!["management.auth"]);
        assert_eq!(base.records, listen.records);
        let routes =
            digests("cache: {max_ttl: 60s}\nlimits: {}\nroutes: [{prefix: /, policy: public}]\n");
        assert_eq!((base.keys, base.records), (routes.keys, routes.records));
        assert_ne!(base.all, routes.all, "a policy change is a change");
    }

    #[test]
    fn a_key_file_change_moves_the_keys_digest() {
        let dir = std::env::temp_dir().join(format!("ward-digest-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let jwks = dir.join("jwks.json");
        std::fs::write(&jwks, r#"{"keys":[]}"#).unwrap();
        let text = format!("jwt:\n  jwks:\n    - file: {}\n", jwks.display());
        let before = digests(&text);
        std::fs::write(&jwks, r#"{"keys": []}"#).unwrap();
        let after = digests(&text);
        assert_ne!(before.keys, after.keys);
        assert_eq!(before.records, after.records);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
