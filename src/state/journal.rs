//! The write-ahead journal of one run: an append-only file of JSON lines.
//!
//! Before a step touches the cloud, its intent (operation, inverse, the
//! resource as observed) is appended and made durable; after, its outcome.
//! Only intents must be durable before the call: a crash that loses an
//! outcome leaves an intent without one, which recovery resolves by reading
//! the live resource. Durable appends are group-committed: concurrent steps
//! share one `sync_data`.

use crate::executor::Step;
use crate::planner::Attributes;
use crate::provider::{Inverse, Op};
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// One line of the journal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "record", rename_all = "snake_case")]
pub enum Record {
    /// A step is about to run.
    Intent {
        seq: u64,
        rec: String,
        step: usize,
        /// The operation with every reference resolved.
        #[serde(flatten)]
        op: Box<Op>,
        /// The undo as planned (references to what this recommendation's
        /// steps created are resolved from their outcomes).
        inverse: Inverse,
        /// The resource the step changes, as read just before.
        before: Option<Attributes>,
        at: String,
    },
    /// How it went.
    Outcome {
        seq: u64,
        ok: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        created: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
        attempts: u32,
        duration_ms: u64,
        at: String,
    },
    /// A recommendation finished; its resource as it was left.
    RecDone {
        rec: String,
        ok: bool,
        resource: Option<String>,
        after: Option<Attributes>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
    /// A recommendation was not started.
    RecSkipped { rec: String, why: String },
}

/// An open journal, shared by the run's tasks.
pub struct Journal {
    path: PathBuf,
    inner: Mutex<Inner>,
    flush: Mutex<u64>,
    /// `false` only for benchmarks measuring the journal's own cost.
    sync: bool,
    crash_after: Option<u64>,
}

struct Inner {
    file: File,
    written: u64,
    next_seq: u64,
}

impl Journal {
    /// Creates the journal of a new run at `path`.
    pub fn create(path: &Path) -> std::io::Result<Journal> {
        let file = super::atomic::open_append(path)?;
        Ok(Journal {
            path: path.to_owned(),
            inner: Mutex::new(Inner {
                file,
                written: 0,
                next_seq: 0,
            }),
            flush: Mutex::new(0),
            sync: std::env::var_os("PARE_UNSAFE_NO_JOURNAL_SYNC").is_none(),
            // Test hook: kill the process right after the Nth record is durable.
            crash_after: std::env::var("PARE_TEST_KILL_AFTER_RECORD")
                .ok()
                .and_then(|s| s.parse().ok()),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A new sequence number for an intent.
    pub fn next_seq(&self) -> u64 {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        g.next_seq += 1;
        g.next_seq
    }

    /// Appends `record`; when `durable`, returns only once it is on disk.
    pub fn append(&self, record: &Record, durable: bool) -> std::io::Result<()> {
        let line = serde_json::to_string(record).map_err(std::io::Error::other)? + "\n";
        let mine = {
            let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
            g.file.write_all(line.as_bytes())?;
            g.written += 1;
            g.written
        };
        if durable && self.sync {
            let mut synced = self.flush.lock().unwrap_or_else(|p| p.into_inner());
            if *synced < mine {
                // Everything written so far is covered by this one sync.
                let upto = self.inner.lock().unwrap_or_else(|p| p.into_inner()).written;
                let file = self
                    .inner
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .file
                    .try_clone()?;
                file.sync_data()?;
                *synced = upto;
            }
        }
        if self.crash_after == Some(mine) {
            if !durable || !self.sync {
                let f = self
                    .inner
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .file
                    .try_clone()?;
                f.sync_data()?;
            }
            kill_self();
        }
        Ok(())
    }

    /// Makes everything written durable.
    pub fn sync(&self) -> std::io::Result<()> {
        let f = self
            .inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .file
            .try_clone()?;
        f.sync_data()
    }
}

fn kill_self() -> ! {
    #[cfg(unix)]
    // SAFETY: sending SIGKILL to our own pid; nothing runs after it.
    unsafe {
        libc::kill(libc::getpid(), libc::SIGKILL);
    }
    std::process::abort()
}

/// Reads a journal. A torn last line (a crash mid-write) is dropped; any
/// other damage is an error naming the line.
pub fn read(path: &Path) -> Result<Vec<Record>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let mut out = Vec::with_capacity(lines.len());
    for (i, line) in lines.iter().enumerate() {
        if !line.ends_with('\n') && i == lines.len() - 1 {
            break;
        }
        out.push(
            serde_json::from_str(line)
                .map_err(|e| format!("{} line {}: {e}", path.display(), i + 1))?,
        );
    }
    Ok(out)
}

/// A step as the journal knows it: its intent, and its outcome if recorded.
#[derive(Debug, Clone)]
pub struct JournaledStep {
    pub seq: u64,
    pub rec: String,
    pub step: usize,
    pub op: Op,
    pub inverse: Inverse,
    pub before: Option<Attributes>,
    /// When the intent was written (RFC 3339).
    pub at: String,
    /// `None`: no outcome was recorded (the run was interrupted).
    pub outcome: Option<(bool, Option<String>)>,
}

/// The steps of a journal in the order their intents were written.
pub fn steps(records: &[Record]) -> Vec<JournaledStep> {
    let mut out: Vec<JournaledStep> = Vec::new();
    let mut by_seq = std::collections::HashMap::new();
    for r in records {
        match r {
            Record::Intent {
                seq,
                rec,
                step,
                op,
                inverse,
                before,
                at,
            } => {
                by_seq.insert(*seq, out.len());
                out.push(JournaledStep {
                    seq: *seq,
                    rec: rec.clone(),
                    step: *step,
                    op: op.as_ref().clone(),
                    inverse: inverse.clone(),
                    before: before.clone(),
                    at: at.clone(),
                    outcome: None,
                });
            }
            Record::Outcome {
                seq, ok, created, ..
            } => {
                if let Some(&i) = by_seq.get(seq) {
                    out[i].outcome = Some((*ok, created.clone()));
                }
            }
            _ => {}
        }
    }
    out
}

impl JournaledStep {
    pub fn as_step(&self) -> Step {
        Step {
            op: self.op.clone(),
            inverse: self.inverse.clone(),
        }
    }
}
