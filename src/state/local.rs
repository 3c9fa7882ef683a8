//! The state in a local directory (`.pare/` by default):
//!
//! ```text
//! .pare/lock                    the lock (flock), holding who has it
//! .pare/runs/<run>/run.json     each run's record, written atomically
//! .pare/runs/<run>/journal.jsonl  its write-ahead journal, append-only
//! .pare/sandbox.yaml, sandbox.log, sandbox.seed   the sandbox account
//! ```
//!
//! Everything is created owner-only and opened without following symlinks;
//! a directory pare did not create is left as it is, and refused if others
//! can write it.

use super::{Holder, LockGuard, RunId, RunRecord, StateError, StateStore};
use crate::durable::{self, AppendLog, DirDocs, DocStore, FileLog, ReadError};
use std::io::{Seek, Write};
use std::path::{Path, PathBuf};

/// The state in a local directory.
pub struct LocalStore {
    dir: PathBuf,
    docs: DirDocs,
}

struct FileLock {
    _file: std::fs::File,
}

impl LockGuard for FileLock {}

impl LocalStore {
    /// Opens (creating owner-only) the state directory `dir`.
    pub fn open(dir: &Path) -> Result<LocalStore, StateError> {
        let unsafe_dir = |e: durable::DirError| StateError::Unsafe {
            location: dir.display().to_string(),
            error: e.to_string(),
        };
        let docs = DirDocs::open(dir).map_err(unsafe_dir)?;
        durable::inner_dir(&dir.join("runs")).map_err(unsafe_dir)?;
        Ok(LocalStore {
            dir: dir.to_owned(),
            docs,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn run_dir(&self, id: &RunId) -> PathBuf {
        self.dir.join("runs").join(id.to_string())
    }

    /// A run's folder, checked before anything in it is read: a real,
    /// private directory (a symlink to elsewhere, or a folder others can
    /// write, is refused: its journal would say what to undo).
    fn checked_run_dir(&self, id: &RunId) -> Result<PathBuf, StateError> {
        let dir = self.run_dir(id);
        match durable::check_inner_dir(&dir) {
            Ok(()) => Ok(dir),
            Err(durable::DirError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(StateError::UnknownRun(id.to_string()))
            }
            Err(e) => Err(StateError::Unsafe {
                location: dir.display().to_string(),
                error: e.to_string(),
            }),
        }
    }

    fn io(&self, e: impl std::fmt::Display) -> StateError {
        StateError::io(self.dir.display(), e)
    }
}

impl DocStore for LocalStore {
    fn location(&self) -> String {
        self.docs.location()
    }
    fn read_doc(&self, name: &str) -> std::io::Result<Option<Vec<u8>>> {
        self.docs.read_doc(name)
    }
    fn write_doc(&self, name: &str, bytes: &[u8]) -> std::io::Result<()> {
        self.docs.write_doc(name, bytes)
    }
    fn remove_doc(&self, name: &str) -> std::io::Result<()> {
        self.docs.remove_doc(name)
    }
    fn open_log(&self, name: &str) -> std::io::Result<Box<dyn AppendLog>> {
        self.docs.open_log(name)
    }
    fn read_log(&self, name: &str) -> std::io::Result<Option<String>> {
        self.docs.read_log(name)
    }
    fn remove_log(&self, name: &str) -> std::io::Result<()> {
        self.docs.remove_log(name)
    }
    fn names(&self) -> std::io::Result<Vec<String>> {
        self.docs.names()
    }
}

impl StateStore for LocalStore {
    fn lock(&self, holder: &Holder) -> Result<Box<dyn LockGuard>, StateError> {
        let path = self.dir.join("lock");
        let mut file =
            durable::open_lock(&path).map_err(|e| self.io(format!("{}: {e}", path.display())))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(StateError::Locked {
                    location: self.location(),
                    holder: self.lock_holder().map(Box::new),
                    help: "wait for it to finish (`pare history` shows the runs): one run at a time per state; a local lock is released by the system as soon as its process ends".into(),
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(self.io(e)),
        }
        // Say who holds it, for the next one who asks.
        let json = serde_json::to_string(holder).map_err(|e| self.io(e))? + "\n";
        let said = file
            .set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| file.write_all(json.as_bytes()));
        if let Err(e) = said {
            tracing::warn!(
                "could not record the lock's holder in {}: {e}",
                path.display()
            );
        }
        Ok(Box::new(FileLock { _file: file }))
    }

    fn lock_holder(&self) -> Option<Holder> {
        let bytes = durable::read_owned(&self.dir.join("lock")).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    fn run_ids(&self) -> Result<Vec<RunId>, StateError> {
        let dir = self.dir.join("runs");
        let entries = std::fs::read_dir(&dir).map_err(|e| self.io(e))?;
        // Links are listed too: reading them is refused, so they are named
        // as damaged rather than silently left out.
        Ok(entries
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir() || t.is_symlink()))
            .filter_map(|e| e.file_name().to_str().and_then(RunId::parse))
            .collect())
    }

    fn read_run(&self, id: &RunId) -> Result<RunRecord, StateError> {
        let path = self.checked_run_dir(id)?.join("run.json");
        let bytes = match durable::read_owned(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == Some(std::io::ErrorKind::NotFound) => {
                return Err(StateError::UnknownRun(id.to_string()));
            }
            Err(e) => {
                return Err(StateError::Damaged {
                    id: id.to_string(),
                    message: format!("{}: {e}", path.display()),
                    location: self.location(),
                });
            }
        };
        serde_json::from_slice(&bytes).map_err(|e| StateError::Damaged {
            id: id.to_string(),
            message: format!("{}: {e}", path.display()),
            location: self.location(),
        })
    }

    fn create_run(&self, record: &RunRecord) -> Result<Box<dyn AppendLog>, StateError> {
        let id = RunId::parse(&record.id).ok_or_else(|| StateError::BadRunId(record.id.clone()))?;
        let dir = self.run_dir(&id);
        let mut b = std::fs::DirBuilder::new();
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt;
            b.mode(0o700);
        }
        b.create(&dir)
            .map_err(|e| self.io(format!("{}: {e}", dir.display())))?;
        durable::sync_dir(&self.dir.join("runs")).map_err(|e| self.io(e))?;
        self.save_run(record)?;
        let log = FileLog::open(&dir.join("journal.jsonl")).map_err(|e| self.io(e))?;
        Ok(Box::new(log))
    }

    fn save_run(&self, record: &RunRecord) -> Result<(), StateError> {
        let id = RunId::parse(&record.id).ok_or_else(|| StateError::BadRunId(record.id.clone()))?;
        let path = self.run_dir(&id).join("run.json");
        let json = serde_json::to_string_pretty(record).map_err(|e| self.io(e))? + "\n";
        durable::write_atomic(&path, json.as_bytes())
            .map_err(|e| self.io(format!("{}: {e}", path.display())))
    }

    fn read_journal(&self, id: &RunId) -> Result<String, StateError> {
        let path = self.checked_run_dir(id)?.join("journal.jsonl");
        match durable::read_owned(&path) {
            Ok(b) => String::from_utf8(b).map_err(|e| StateError::Damaged {
                id: id.to_string(),
                message: format!("{}: {e}", path.display()),
                location: self.location(),
            }),
            Err(ReadError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
            Err(e) => Err(self.io(format!("{}: {e}", path.display()))),
        }
    }

    fn unlock(&self, _lock_id: &str, _force: bool) -> Result<Option<Holder>, StateError> {
        let path = self.dir.join("lock");
        let file = match std::fs::OpenOptions::new().read(true).open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.io(format!("{}: {e}", path.display()))),
        };
        match file.try_lock() {
            Ok(()) => Ok(None),
            Err(std::fs::TryLockError::WouldBlock) => Err(StateError::UnlockRefused {
                message: format!(
                    "the lock on the state in {} is held by a live process{}",
                    self.location(),
                    self.lock_holder()
                        .map_or(String::new(), |h| format!(": {}", h.describe()))
                ),
                help: "wait for it to finish, or stop that process: the system releases a local lock as soon as its process ends, so there is never a stale one to remove".into(),
            }),
            Err(std::fs::TryLockError::Error(e)) => Err(self.io(e)),
        }
    }

    fn journal_name(&self, id: &RunId) -> String {
        self.run_dir(id).join("journal.jsonl").display().to_string()
    }
}
