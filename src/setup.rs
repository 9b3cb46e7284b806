//! From a config file to a config ward can run on: the checks that need
//! the parts a config describes built, not just read. `config/` checks
//! what the YAML alone can tell ([`Config::validate`]); this module adds
//! what only compiling tells: the policies and routes, the static keys
//! and JWKS files (a key too weak, a file without a usable key), the
//! `typ` lists, the reason names in `responses.status`, the seed file.
//!
//! Why here: these checks use the modules above `config/` (policy, jwt,
//! reason, store), so living in `config/` made it import its own users.
//! Every command loads its config through [`load`], so `ward check-config`
//! and `ward serve` cannot disagree about what is valid.

use crate::config::{Config, ConfigError, ConfigProblem, EnvSource, JwksSource, Problems};
use crate::jwt::{AllowedTypes, keys};
use crate::policy::Policies;
use crate::reason::Reason;
use std::path::Path;

/// Reads, parses and checks a config file: every problem, with its field.
pub fn load(path: &Path, env: &dyn EnvSource) -> Result<Config, ConfigError> {
    load_with_text(path, env).map(|(config, _)| config)
}

/// [`load`], and the text the config was parsed from (a reload compares
/// it with the next one, section by section).
pub fn load_with_text(path: &Path, env: &dyn EnvSource) -> Result<(Config, String), ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.display().to_string(),
        source,
    })?;
    parse(&text, env).map(|config| (config, text))
}

/// Parses and checks a config's text: every problem, with its field.
pub fn parse(text: &str, env: &dyn EnvSource) -> Result<Config, ConfigError> {
    let config = Config::from_yaml(text)?;
    let problems = problems(&config, env);
    if problems.is_empty() {
        Ok(config)
    } else {
        Err(ConfigError::Invalid(problems))
    }
}

/// Every problem of a parsed config: its own, then its artefacts'.
pub fn problems(config: &Config, env: &dyn EnvSource) -> Vec<ConfigProblem> {
    let mut all = config.validate();
    all.extend(artefact_problems(config, env));
    all
}

fn artefact_problems(config: &Config, env: &dyn EnvSource) -> Vec<ConfigProblem> {
    let mut p = Problems(Vec::new());
    check_keys(config, &mut p, env);
    check_introspection(config, &mut p, env);
    check_signing_keys(config, &mut p);
    check_seed(config, &mut p);
    check_policies(config, &mut p);
    p.0
}

fn check_keys(config: &Config, p: &mut Problems, env: &dyn EnvSource) {
    let jwt = &config.jwt;
    check_types(p, "jwt.allowed_types", Some(&jwt.allowed_types));
    let types = AllowedTypes::new(&jwt.allowed_types);
    for (i, key) in jwt.keys.iter().enumerate() {
        let path = format!("jwt.keys[{i}]");
        if let Err(e) = keys::load_static(key, &types, env) {
            // A weak RSA key is the key material's fault: name it.
            let field = match (&e, &key.pem_file) {
                (keys::KeyError::WeakRsa { .. }, Some(_)) => ".pem_file",
                (keys::KeyError::WeakRsa { .. }, None) => ".pem",
                _ => "",
            };
            p.add(format!("{path}{field}"), e.to_string());
        }
        let path = format!("{path}.allowed_types");
        check_types(p, &path, key.allowed_types.as_ref());
    }
    for (i, src) in jwt.jwks.iter().enumerate() {
        let path = format!("jwt.jwks[{i}]");
        check_jwks_file(p, &path, src);
        let path = format!("{path}.allowed_types");
        check_types(p, &path, src.allowed_types.as_ref());
    }
    if let Some(logout) = &config.management.backchannel_logout {
        let path = "management.backchannel_logout.allowed_types";
        check_types(p, path, Some(&logout.allowed_types));
    }
}

/// Every introspection provider's client secret or private key reads.
fn check_introspection(config: &Config, p: &mut Problems, env: &dyn EnvSource) {
    for (i, provider) in config.introspection.providers.iter().enumerate() {
        if let Err((field, why)) = crate::introspections::ClientCredentials::load(provider, env) {
            p.add(format!("introspection.providers[{i}].{field}"), why);
        }
    }
}

/// Every identity-token key loads (a PEM of its algorithm), when a
/// policy sends tokens.
fn check_signing_keys(config: &Config, p: &mut Problems) {
    if config.token_profiles().next().is_none() {
        return;
    }
    for (i, key) in config.identity_token.keys.iter().enumerate() {
        if let Err(e) = crate::identity_token::keys::SigningKey::load(key) {
            p.add(format!("identity_token.keys[{i}].pem_file"), e.to_string());
        }
    }
}

fn check_types(p: &mut Problems, path: &str, types: Option<&Vec<String>>) {
    for (i, typ) in types.into_iter().flatten().enumerate() {
        if let Err(why) = crate::jwt::typ::check_type(typ) {
            p.add(format!("{path}[{i}]"), why);
        }
    }
}

/// A `jwt.jwks[]` file is loaded now; a key in it that ward would skip
/// (too weak, not for signatures) is not a problem unless no key is left.
fn check_jwks_file(p: &mut Problems, path: &str, src: &JwksSource) {
    let (None, Some(file)) = (&src.url, &src.file) else {
        return;
    };
    match std::fs::read(file) {
        Err(e) => p.add(format!("{path}.file"), format!("cannot read: {e}")),
        Ok(bytes) => match keys::from_jwks(&bytes, &AllowedTypes::default()) {
            Err(e) => p.add(format!("{path}.file"), format!("not a JWKS: {e}")),
            Ok((found, skipped)) if found.is_empty() => {
                let why: Vec<String> = skipped.iter().map(ToString::to_string).collect();
                p.add(
                    format!("{path}.file"),
                    format!("no usable signing key in it ({})", why.join("; ")),
                )
            }
            Ok(_) => {}
        },
    }
}

fn check_seed(config: &Config, p: &mut Problems) {
    let s = &config.store;
    if let (Some(path), None) = (&s.seed_file, &s.redis)
        && let Err(e) = crate::store::seed::check(path, &config.api_keys)
    {
        p.add("store.seed_file", e.to_string());
    }
}

fn check_policies(config: &Config, p: &mut Problems) {
    if let Err(problems) = Policies::from_config(config) {
        for problem in problems {
            p.add(problem.path, problem.message);
        }
    }
    if let Some(fwd) = &config.workload.forwarded_cert
        && let Err((i, e)) = crate::policy::Principals::new(&fwd.trusted_peers)
    {
        let path = format!("workload.forwarded_cert.trusted_peers[{i}]");
        p.add(path, e.to_string());
    }
    for code in config.responses.status.keys() {
        if !Reason::ALL.iter().any(|r| r.as_str() == code) {
            p.add(
                format!("responses.status.{code}"),
                format!("`{code}` is not a deny reason (see docs/decisions.md)"),
            );
        }
    }
}

#[cfg(test)]
mod tests;
