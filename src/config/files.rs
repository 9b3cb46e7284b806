//! Which files a config reads besides itself, and which part of ward each
//! one feeds: what `ward serve` watches for a reload, and what decides
//! whether a reload may keep a cache (a rotated key file means tokens
//! verified with the old key must be verified again).

use super::Config;
use std::path::PathBuf;

/// The part of a running ward a file (or a config section) feeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Part {
    /// JWT verification keys (`jwt`).
    Keys,
    /// The store and its connection (`store`).
    Store,
    /// Identity-token signing keys (`identity_token`).
    IdentityKeys,
    /// An introspection provider's client secret or private key: read by
    /// each new checker, so a changed file is reloaded like the config.
    Introspection,
}

impl Config {
    /// Every file this config names, with the part it feeds, in config
    /// order. A file named twice is listed twice.
    pub fn files(&self) -> Vec<(Part, PathBuf)> {
        let mut files = Vec::new();
        for key in &self.jwt.keys {
            files.extend(key.pem_file.clone().map(|f| (Part::Keys, f)));
            let secret = key.secret.as_ref().and_then(|s| s.file.clone());
            files.extend(secret.map(|f| (Part::Keys, f)));
        }
        for source in &self.jwt.jwks {
            files.extend(source.file.clone().map(|f| (Part::Keys, f)));
        }
        for key in &self.identity_token.keys {
            files.push((Part::IdentityKeys, key.pem_file.clone()));
        }
        for provider in &self.introspection.providers {
            for secret in [&provider.client_secret, &provider.private_key] {
                let file = secret.as_ref().and_then(|s| s.file.clone());
                files.extend(file.map(|f| (Part::Introspection, f)));
            }
        }
        files.extend(self.store.seed_file.clone().map(|f| (Part::Store, f)));
        let password = self.store.redis.as_ref().and_then(|r| r.password.as_ref());
        files.extend(
            password
                .and_then(|s| s.file.clone())
                .map(|f| (Part::Store, f)),
        );
        files
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_referenced_file_is_listed_with_its_part() {
        let config = Config::from_yaml(
            r#"
jwt:
  keys:
    - {alg: RS256, pem_file: /k/rsa.pem}
    - {alg: HS256, secret: {file: /k/hmac}}
  jwks:
    - {file: /k/jwks.json}
    - {url: "http://127.0.0.1:1/jwks"}
store:
  seed_file: /s/seed.yaml
"#,
        )
        .unwrap();
        let files: Vec<_> = config
            .files()
            .into_iter()
            .map(|(part, f)| (part, f.display().to_string()))
            .collect();
        assert_eq!(
            files,
            vec![
                (Part::Keys, "/k/rsa.pem".to_string()),
                (Part::Keys, "/k/hmac".to_string()),
                (Part::Keys, "/k/jwks.json".to_string()),
                (Part::Store, "/s/seed.yaml".to_string()),
            ]
        );
    }
}
