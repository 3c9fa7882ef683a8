//! The one integration test binary: drives the real `pare` binary.

mod apply;
#[cfg(feature = "aws")]
mod aws;
mod plan;
mod schema;
mod validate;

use assert_cmd::Command;
use std::path::{Path, PathBuf};

/// The repository root (where Cargo.toml is).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `pare` with a pinned, colourless, quiet-logging environment, run from `dir`.
pub fn pare(dir: &Path) -> Command {
    let mut cmd = Command::cargo_bin("pare").expect("the pare binary is built");
    cmd.current_dir(dir)
        .env_remove("PARE_LOG")
        .env("NO_COLOR", "1")
        .env("COLUMNS", "100");
    cmd
}

/// A temporary directory holding `files` (name → contents).
pub fn workdir(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("a temp dir");
    for (name, text) in files {
        let path = dir.path().join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::write(path, text).expect("write");
    }
    dir
}
