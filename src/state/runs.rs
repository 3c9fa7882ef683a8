//! Runs: one folder each under `<state>/runs/`, holding `run.json` (written
//! atomically) and `journal.jsonl`. Like jj's operation log, history is
//! append-only: a rollback is a new run that names the run it undoes, and no
//! run is ever rewritten except to record how it ended.

use super::atomic;
use super::journal::Journal;
use crate::plan::Approval;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunKind {
    Apply,
    Rollback,
    /// An interrupted run accepted as it stands.
    Accept,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Under way, or interrupted (when no process holds the lock).
    Running,
    /// Every change made.
    Applied,
    /// A step failed; nothing was rolled back (`rollback_on_failure = false`).
    Failed,
    /// A step failed and every completed step was undone.
    RolledBack,
    /// A step failed and the undo did not finish.
    RollbackIncomplete,
    /// Stopped by Ctrl-C.
    Cancelled,
    /// A rollback or accept run that finished.
    Completed,
    /// A rollback run that could not undo everything.
    Incomplete,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Applied => "applied",
            RunStatus::Failed => "failed",
            RunStatus::RolledBack => "rolled_back",
            RunStatus::RollbackIncomplete => "rollback_incomplete",
            RunStatus::Cancelled => "cancelled",
            RunStatus::Completed => "completed",
            RunStatus::Incomplete => "incomplete",
        }
    }
}

/// Everything recorded about one run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunRecord {
    pub id: String,
    pub kind: RunKind,
    pub status: RunStatus,
    pub started_at: String,
    #[serde(default)]
    pub finished_at: Option<String>,
    /// `user@host`.
    pub who: String,
    pub provider: String,
    /// The plan's provider block, to reopen the same account for a rollback.
    #[serde(default)]
    pub provider_spec: Option<crate::plan::Provider>,
    pub plan_path: String,
    pub plan_sha256: String,
    #[serde(default)]
    pub plan_name: Option<String>,
    #[serde(default)]
    pub git_commit: Option<String>,
    /// The saved plan's lineage, when a saved plan was applied.
    #[serde(default)]
    pub lineage: Option<String>,
    #[serde(default)]
    pub approvals: Vec<Approval>,
    /// For rollback and accept runs: the run they resolve.
    #[serde(default)]
    pub resolves: Option<String>,
    /// Recommendations completed / failed / skipped.
    #[serde(default)]
    pub completed: Vec<String>,
    #[serde(default)]
    pub failed: Vec<String>,
    #[serde(default)]
    pub skipped: Vec<String>,
    /// Monthly savings the completed recommendations account for.
    #[serde(default)]
    pub savings_monthly_usd: f64,
    /// Resources a rollback recreated: old id → new id.
    #[serde(default)]
    pub renamed: BTreeMap<String, String>,
    /// What is left to do, in words, when the run did not end cleanly.
    #[serde(default)]
    pub left: Vec<String>,
}

/// Why the state directory cannot be used.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum StateError {
    #[error("another pare run holds the lock on {0}")]
    #[diagnostic(
        code(state::locked),
        help(
            "wait for it to finish (`pare history` shows it); one run at a time per state directory"
        )
    )]
    Locked(PathBuf),
    #[error("state directory {path}: {source}")]
    #[diagnostic(code(state::io), help("check the permissions of the state directory"))]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("run {0} is not in the history")]
    #[diagnostic(code(state::unknown_run), help("`pare history` lists the runs"))]
    UnknownRun(String),
    #[error("the record of run {id} is damaged: {message}")]
    #[diagnostic(
        code(state::damaged),
        help(
            "the run's folder under runs/ holds run.json and journal.jsonl; restore them from a backup"
        )
    )]
    Damaged { id: String, message: String },
}

/// The state directory.
pub struct Store {
    dir: PathBuf,
}

/// Held for the whole of a run; released on drop (or by the OS on a crash).
pub struct Lock {
    _file: File,
}

impl Store {
    pub fn open(dir: &Path) -> Result<Store, StateError> {
        atomic::create_private_dir(&dir.join("runs")).map_err(|source| StateError::Io {
            path: dir.to_owned(),
            source,
        })?;
        Ok(Store {
            dir: dir.to_owned(),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Takes the state lock, or says who has it.
    pub fn lock(&self) -> Result<Lock, StateError> {
        let path = self.dir.join("lock");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|source| StateError::Io {
                path: path.clone(),
                source,
            })?;
        match file.try_lock() {
            Ok(()) => Ok(Lock { _file: file }),
            Err(std::fs::TryLockError::WouldBlock) => Err(StateError::Locked(self.dir.clone())),
            Err(std::fs::TryLockError::Error(source)) => Err(StateError::Io { path, source }),
        }
    }

    fn run_dir(&self, id: &str) -> PathBuf {
        self.dir.join("runs").join(id)
    }

    pub fn journal_path(&self, id: &str) -> PathBuf {
        self.run_dir(id).join("journal.jsonl")
    }

    /// A new run id: sortable by time, unique.
    pub fn new_run_id(&self) -> String {
        let now = crate::clock::now();
        let stamp = crate::clock::rfc3339(now)
            .replace(['-', ':'], "")
            .replace('T', "-")
            .trim_end_matches('Z')
            .to_string();
        let mut n = 0;
        loop {
            let id = if n == 0 {
                format!("r{stamp}")
            } else {
                format!("r{stamp}-{n}")
            };
            if !self.run_dir(&id).exists() {
                return id;
            }
            n += 1;
        }
    }

    /// Records a new run and opens its journal.
    pub fn create(&self, record: &RunRecord) -> Result<Journal, StateError> {
        let dir = self.run_dir(&record.id);
        atomic::create_private_dir(&dir).map_err(|source| StateError::Io {
            path: dir.clone(),
            source,
        })?;
        self.save(record)?;
        Journal::create(&self.journal_path(&record.id))
            .map_err(|source| StateError::Io { path: dir, source })
    }

    /// Writes the run's record (atomically).
    pub fn save(&self, record: &RunRecord) -> Result<(), StateError> {
        let path = self.run_dir(&record.id).join("run.json");
        let json = serde_json::to_string_pretty(record).expect("a run record serialises") + "\n";
        atomic::write(&path, json.as_bytes()).map_err(|source| StateError::Io { path, source })
    }

    pub fn run(&self, id: &str) -> Result<RunRecord, StateError> {
        let path = self.run_dir(id).join("run.json");
        let text =
            std::fs::read_to_string(&path).map_err(|_| StateError::UnknownRun(id.to_string()))?;
        serde_json::from_str(&text).map_err(|e| StateError::Damaged {
            id: id.to_string(),
            message: e.to_string(),
        })
    }

    /// Every run, newest first.
    pub fn runs(&self) -> Result<Vec<RunRecord>, StateError> {
        let dir = self.dir.join("runs");
        let mut ids: Vec<String> = std::fs::read_dir(&dir)
            .map_err(|source| StateError::Io {
                path: dir.clone(),
                source,
            })?
            .filter_map(|e| e.ok())
            .filter(|e| e.path().join("run.json").exists())
            .filter_map(|e| e.file_name().to_str().map(str::to_string))
            .collect();
        ids.sort();
        ids.reverse();
        ids.iter().map(|id| self.run(id)).collect()
    }

    /// The newest run that left the account in an unknown or partial state
    /// and that no later run resolved: interrupted (still `running` while we
    /// hold the lock) or a rollback that did not finish.
    pub fn unresolved(&self) -> Result<Option<RunRecord>, StateError> {
        let runs = self.runs()?;
        let resolved: Vec<&str> = runs
            .iter()
            .filter(|r| r.status == RunStatus::Completed)
            .filter_map(|r| r.resolves.as_deref())
            .collect();
        // A rollback left incomplete is also resolved once a later rollback
        // of the same run finishes (it resumes where this one stopped).
        Ok(runs
            .iter()
            .find(|r| {
                matches!(
                    r.status,
                    RunStatus::Running | RunStatus::RollbackIncomplete | RunStatus::Incomplete
                ) && !resolved.contains(&r.id.as_str())
                    && !(r.kind == RunKind::Rollback
                        && r.resolves.as_deref().is_some_and(|t| resolved.contains(&t)))
            })
            .cloned())
    }
}

/// `user@host`, for the history.
pub fn who() -> String {
    let user = std::env::var("PARE_FAKE_USER")
        .or_else(|_| std::env::var("USER"))
        .or_else(|_| std::env::var("USERNAME"))
        .unwrap_or_else(|_| "unknown".into());
    let host = std::env::var("PARE_FAKE_HOST").unwrap_or_else(|_| hostname());
    format!("{user}@{host}")
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .or_else(|_| std::fs::read_to_string("/etc/hostname").map(|s| s.trim().to_string()))
        .unwrap_or_else(|_| "localhost".into())
}

/// The git commit of the repository holding `path`, if any.
pub fn git_commit(path: &Path) -> Option<String> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["rev-parse", "HEAD"])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Whether `path` is tracked by git with no uncommitted changes; `Err` says why not.
pub fn committed(path: &Path) -> Result<(), String> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    let tracked = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["ls-files", "--error-unmatch"])
        .arg(&name)
        .output()
        .map_err(|e| format!("cannot run git: {e}"))?;
    if !tracked.status.success() {
        return Err(format!("{} is not tracked by git", path.display()));
    }
    let status = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["status", "--porcelain", "--"])
        .arg(&name)
        .output()
        .map_err(|e| format!("cannot run git: {e}"))?;
    if !status.stdout.is_empty() {
        return Err(format!("{} has uncommitted changes", path.display()));
    }
    Ok(())
}
