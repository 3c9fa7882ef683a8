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

/// Whether `path` is committed as it is: the file's content is the blob at
/// HEAD (compared by content, so `--skip-worktree` or `--assume-unchanged`
/// cannot hide an edit); `Err` says why not.
pub fn committed(path: &Path) -> Result<(), String> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .arg("-C")
            .arg(folder(path))
            .args(args)
            .output()
            .map_err(|e| format!("cannot run git: {e}"))
    };
    let at_head = git(&[
        "rev-parse",
        "--verify",
        "--quiet",
        &format!("HEAD:./{name}"),
    ])?;
    if !at_head.status.success() {
        return Err(format!(
            "{} is not tracked by git in the commit checked out (HEAD)",
            path.display()
        ));
    }
    let here = git(&["hash-object", "--", &name])?;
    if !here.status.success() || here.stdout.trim_ascii() != at_head.stdout.trim_ascii() {
        return Err(format!(
            "{} has uncommitted changes (its content differs from the commit checked out)",
            path.display()
        ));
    }
    Ok(())
}
