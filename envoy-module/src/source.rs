//! Where a filter config's ward YAML comes from: inline (the
//! `filter_config` string is ward's YAML), or a file, when the string is
//! a YAML mapping whose only key is `config_file` (`config_file:
//! /etc/ward/ward.yaml`), so the module and `ward serve` can share one
//! file (a mounted ConfigMap, say) instead of a copy inside Envoy's.
//!
//! A relative `config_file` is read from Envoy's working directory, as
//! every path inside ward's config is (`store.seed_file`, key files).
//! The file is read each time Envoy builds the filter config (a listener
//! update), never watched.

use serde::Deserialize;
use std::path::PathBuf;

/// The filter config that names a file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileRef {
    config_file: PathBuf,
}

/// ward's YAML for this filter config, and the file it came from (none
/// when inline). `Err` names the file and why it could not be read.
pub fn ward_yaml(filter_config: &str) -> Result<(String, Option<PathBuf>), String> {
    // Anything else (ward's own sections, or a typo beside
    // `config_file`) is inline YAML: ward's parser then names the field.
    let Ok(FileRef { config_file }) = serde_yaml_ng::from_str::<FileRef>(filter_config) else {
        return Ok((filter_config.to_owned(), None));
    };
    match std::fs::read_to_string(&config_file) {
        Ok(text) => Ok((text, Some(config_file))),
        Err(e) => Err(format!(
            "config_file: cannot read {}: {e}",
            config_file.display()
        )),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn ward_yaml_is_inline_unless_config_file_is_the_only_key() {
        let inline = "jwt:\n  keys: []\n";
        assert_eq!(ward_yaml(inline).unwrap(), (inline.to_owned(), None));
        // Beside other keys, `config_file` is left to ward's parser (which
        // refuses the unknown field).
        let mixed = "config_file: x.yaml\njwt: {}\n";
        assert_eq!(ward_yaml(mixed).unwrap().1, None);
        assert_eq!(ward_yaml("").unwrap().1, None);
    }

    #[test]
    fn a_config_file_is_read_and_a_missing_one_is_named() {
        let path = std::env::temp_dir().join(format!("ward-module-{}.yaml", std::process::id()));
        std::fs::write(&path, "store: {}\n").unwrap();
        let named = format!("config_file: {}\n", path.display());
        let (text, from) = ward_yaml(&named).unwrap();
        assert_eq!((text.as_str(), from), ("store: {}\n", Some(path.clone())));
        std::fs::remove_file(&path).unwrap();
        let e = ward_yaml(&named).unwrap_err();
        assert!(
            e.starts_with(&format!("config_file: cannot read {}: ", path.display())),
            "{e}"
        );
    }
}
