//! The one integration test binary: drives the real `pare` binary.

mod apply;
#[cfg(feature = "aws")]
mod aws;
mod chaos;
mod github;
mod harness;
mod import;
mod messages;
mod plan;
mod safety;
mod schema;
mod serve;
#[cfg(feature = "aws")]
mod team_state;
mod validate;

use assert_cmd::Command;
use std::path::{Path, PathBuf};

/// The repository root (where Cargo.toml is).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `pare` with the harness's pinned, colourless environment, run from `dir`.
pub fn pare(dir: &Path) -> Command {
    harness::pare_in(dir)
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
