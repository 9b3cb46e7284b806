//! `ward install-module DIR`: copies the Envoy module (`libward_envoy.so`)
//! out of ward's image into a directory Envoy loads modules from.
//!
//! ward's image is distroless (no shell, no `cp`), so in Kubernetes the
//! module reaches Envoy's container through an init container running
//! this command from ward's image into a shared `emptyDir`
//! (`helm/ward`, `module.enabled`). The module ships next to the `ward`
//! binary (`/libward_envoy.so` beside `/ward` in the image,
//! `target/release/` after a build); `--from` names another file.
//!
//! The copy is atomic: a temporary file in DIR is written, synced, given
//! mode 0644 and renamed over `DIR/libward_envoy.so`, so an Envoy that
//! starts (or a second init container that runs) meanwhile sees either
//! the old module or the whole new one, never a torn file.

use super::{Failure, Outcome};
use clap::Args;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The module's file name: Envoy looks for `lib<name>.so` with
/// `dynamic_module_config.name: ward_envoy`.
pub const MODULE_FILE: &str = "libward_envoy.so";

#[derive(Args)]
pub struct InstallModuleArgs {
    /// The directory to install into (Envoy's
    /// ENVOY_DYNAMIC_MODULES_SEARCH_PATH); it must exist.
    #[arg(value_name = "DIR")]
    dir: PathBuf,
    /// The module to copy [default: libward_envoy.so next to the ward
    /// binary].
    #[arg(long, value_name = "FILE")]
    from: Option<PathBuf>,
}

/// Why the module could not be installed.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("cannot find the ward binary's own path: {0}")]
    OwnPath(io::Error),
    #[error(
        "no Envoy module at {0}: this ward was shipped without it \
         (build it with `cargo build --release -p ward-envoy-module`, \
         or pass --from FILE)"
    )]
    Missing(PathBuf),
    #[error("cannot read the module {0}: {1}")]
    Read(PathBuf, io::Error),
    #[error("cannot write into {0}: {1}")]
    Write(PathBuf, io::Error),
}

/// Installs the module and prints where it went.
pub fn run(args: &InstallModuleArgs) -> Outcome {
    let from = match &args.from {
        Some(path) => path.clone(),
        None => default_source().map_err(|e| Failure(format!("ward install-module: {e}")))?,
    };
    let to = install(&from, &args.dir).map_err(|e| Failure(format!("ward install-module: {e}")))?;
    println!("{} -> {}", from.display(), to.display());
    Ok(ExitCode::SUCCESS)
}

/// `libward_envoy.so` in the directory of the running `ward` binary.
pub fn default_source() -> Result<PathBuf, InstallError> {
    let exe = std::env::current_exe().map_err(InstallError::OwnPath)?;
    let dir = exe.parent().unwrap_or(Path::new("/"));
    Ok(dir.join(MODULE_FILE))
}

/// Copies `from` to `dir/libward_envoy.so` atomically (temporary file in
/// `dir`, fsync, mode 0644, rename, fsync of `dir`); returns the path.
pub fn install(from: &Path, dir: &Path) -> Result<PathBuf, InstallError> {
    let mut source = File::open(from).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => InstallError::Missing(from.to_path_buf()),
        _ => InstallError::Read(from.to_path_buf(), e),
    })?;
    if !source.metadata().is_ok_and(|m| m.is_file()) {
        return Err(InstallError::Missing(from.to_path_buf()));
    }
    let to = dir.join(MODULE_FILE);
    let temp = dir.join(format!(".{MODULE_FILE}.{}.tmp", std::process::id()));
    let written = write_synced(&mut source, &temp)
        .and_then(|()| fs::rename(&temp, &to))
        .and_then(|()| File::open(dir)?.sync_all());
    if let Err(e) = written {
        let _ = fs::remove_file(&temp);
        return Err(InstallError::Write(dir.to_path_buf(), e));
    }
    Ok(to)
}

/// Writes all of `source` into a new file at `temp`, mode 0644, synced.
fn write_synced(source: &mut File, temp: &Path) -> io::Result<()> {
    let mut out = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(temp)?;
    io::copy(source, &mut out)?;
    // The umask may have narrowed the mode given at creation.
    out.set_permissions(fs::Permissions::from_mode(0o644))?;
    out.flush()?;
    out.sync_all()
}
