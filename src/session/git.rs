//! What git says about a plan file: the commit it is at, and whether it is
//! committed as it is (for `require_committed_plan`).

use std::path::Path;

fn folder(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// The git commit of the repository holding `path`, if any.
pub fn commit(path: &Path) -> Option<String> {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(folder(path))
        .args(["rev-parse", "HEAD"])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Whether `path` is tracked by git with no uncommitted changes; `Err` says why not.
pub fn committed(path: &Path) -> Result<(), String> {
    let name = path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .arg("-C")
            .arg(folder(path))
            .args(args)
            .arg(&name)
            .output()
            .map_err(|e| format!("cannot run git: {e}"))
    };
    if !git(&["ls-files", "--error-unmatch"])?.status.success() {
        return Err(format!("{} is not tracked by git", path.display()));
    }
    if !git(&["status", "--porcelain", "--"])?.stdout.is_empty() {
        return Err(format!("{} has uncommitted changes", path.display()));
    }
    Ok(())
}
