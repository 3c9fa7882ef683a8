//! The write-ahead journal of one run: an append-only file of JSON lines.
//!
//! Before a step touches the cloud, its intent (operation, inverse, the
//! resource as observed) is appended and made durable; after, its outcome.
//! Only intents must be durable before the call: a crash that loses an
//! outcome leaves an intent without one, which recovery resolves by reading
//! the live resource. Durable appends are group-committed: concurrent steps
//! share one sync. The journal is written to an [`AppendLog`] (a local file,
//! or a series of objects in a shared store).

use crate::durable::AppendLog;
use crate::vocabulary::{Attributes, Inverse, Op, Step};
use serde::{Deserialize, Serialize};
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
        inverse: Box<Inverse>,
        /// The resource the step changes, as read just before.
        before: Option<Attributes>,
        at: String,
        /// For an undo: the `seq` of the forward step it undoes, in the
        /// journal of the apply run (so every undo runs at most once,
        /// whichever rollback made it).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        undoes: Option<u64>,
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
    /// A rollback's decision about a step whose outcome was never written
    /// (the run was killed between its intent and its outcome): the
    /// forward step `seq` of the apply run (or, with `undo`, the undo of
    /// it) took effect or not, as the cloud showed. Written before the
    /// rollback changes anything; later rollbacks use it instead of reading
    /// the cloud again (which an earlier undo may have changed since).
    Resolved {
        seq: u64,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        undo: bool,
        ok: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        created: Option<String>,
        at: String,
    },
}

/// An open journal, shared by the run's tasks. Appends go straight to the
/// log; [`Journal::commit`] makes everything appended so far durable, and
/// concurrent commits share one sync (group commit). The first write error
/// breaks the journal: every later append fails with it, so a run stops
/// rather than acting without a record.
pub struct Journal {
    name: String,
    inner: Mutex<Inner>,
    /// Held while a sync runs (without `inner`, so appends go on): how far
    /// the log is known durable.
    synced: Mutex<u64>,
    /// `false` only for benchmarks measuring the journal's own cost.
    sync: bool,
    crash_after: Option<u64>,
}

struct Inner {
    log: Box<dyn AppendLog>,
    written: u64,
    next_seq: u64,
    broken: Option<String>,
}

/// A journal that could not be written: the run must stop.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot write the journal {name}: {error}")]
pub struct JournalError {
    pub name: String,
    pub error: String,
}

impl Journal {
    /// A journal over `log`; `name` says where it is in messages. `seq` is
    /// the last sequence number already used in it (0 for a new one).
    pub fn new(name: String, log: Box<dyn AppendLog>, seq: u64) -> Journal {
        Journal {
            name,
            synced: Mutex::new(0),
            inner: Mutex::new(Inner {
                log,
                written: 0,
                next_seq: seq,
                broken: None,
            }),
            sync: std::env::var_os("PARE_UNSAFE_NO_JOURNAL_SYNC").is_none(),
            // Test hook: kill the process right after the Nth record is durable.
            crash_after: std::env::var("PARE_TEST_KILL_AFTER_RECORD")
                .ok()
                .and_then(|s| s.parse().ok()),
        }
    }

    /// Where the journal is, for messages.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn broken(&self, g: &mut Inner, e: std::io::Error) -> JournalError {
        let err = JournalError {
            name: self.name.clone(),
            error: e.to_string(),
        };
        g.broken.get_or_insert(err.error.clone());
        err
    }

    /// A new sequence number for an intent.
    pub fn next_seq(&self) -> u64 {
        let mut g = self.lock();
        g.next_seq += 1;
        g.next_seq
    }

    /// Appends `record`; when `durable`, returns only once it is durable.
    pub fn append(&self, record: &Record, durable: bool) -> Result<(), JournalError> {
        let line = serde_json::to_string(record).map_err(|e| JournalError {
            name: self.name.clone(),
            error: e.to_string(),
        })? + "\n";
        let mine = {
            let mut g = self.lock();
            if let Some(e) = &g.broken {
                return Err(JournalError {
                    name: self.name.clone(),
                    error: e.clone(),
                });
            }
            if let Err(e) = g.log.write(line.as_bytes()) {
                return Err(self.broken(&mut g, e));
            }
            g.written += 1;
            g.written
        };
        if durable || self.crash_after == Some(mine) {
            self.commit()?;
        }
        if self.crash_after == Some(mine) {
            kill_self();
        }
        Ok(())
    }

    /// Makes everything appended so far durable. Concurrent commits share
    /// one sync (group commit), and appends go on while it runs.
    pub fn commit(&self) -> Result<(), JournalError> {
        let target = {
            let g = self.lock();
            if let Some(e) = &g.broken {
                return Err(JournalError {
                    name: self.name.clone(),
                    error: e.clone(),
                });
            }
            g.written
        };
        let mut synced = self.synced.lock().unwrap_or_else(|p| p.into_inner());
        if *synced >= target {
            return Ok(());
        }
        if !(self.sync || self.crash_after.is_some()) {
            *synced = target;
            return Ok(());
        }
        let mut g = self.lock();
        let upto = g.written;
        match g.log.flusher() {
            Ok(Some(flush)) => {
                drop(g);
                if let Err(e) = flush() {
                    let mut g = self.lock();
                    return Err(self.broken(&mut g, e));
                }
            }
            Ok(None) => {
                if let Err(e) = g.log.sync() {
                    return Err(self.broken(&mut g, e));
                }
            }
            Err(e) => return Err(self.broken(&mut g, e)),
        }
        *synced = upto;
        Ok(())
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

/// A journal that cannot be read back, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {error}")]
pub struct Damaged {
    pub line: usize,
    pub error: String,
}

/// Parses a journal's text. A torn last line (a crash mid-write) is
/// dropped; any other damage is an error naming the line.
pub fn parse(text: &str) -> Result<Vec<Record>, Damaged> {
    crate::durable::whole_lines(text)
        .map(|(line, l)| {
            serde_json::from_str(l).map_err(|e| Damaged {
                line,
                error: e.to_string(),
            })
        })
        .collect()
}

/// The last sequence number used in `records`.
pub fn last_seq(records: &[Record]) -> u64 {
    records
        .iter()
        .filter_map(|r| match r {
            Record::Intent { seq, .. } => Some(*seq),
            _ => None,
        })
        .max()
        .unwrap_or(0)
}

/// What a journal says was done: the recommendations that finished, those
/// that failed and those never started (each as a run record words them),
/// and the steps (forward or undo) whose outcome was a success.
#[derive(Debug, Default)]
pub struct Tally {
    pub completed: Vec<String>,
    /// `rec: step N: error`.
    pub failed: Vec<String>,
    /// `rec: why`.
    pub skipped: Vec<String>,
    pub steps_done: usize,
}

/// Counts what `records` say was done (for a run that could not say so itself).
pub fn tally(records: &[Record]) -> Tally {
    let mut t = Tally::default();
    // The forward step each recommendation was last at: the one that failed.
    let mut at: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for r in records {
        match r {
            Record::Intent {
                rec,
                step,
                undoes: None,
                ..
            } => {
                at.insert(rec.as_str(), *step);
            }
            Record::RecDone { rec, ok: true, .. } => t.completed.push(rec.clone()),
            Record::RecDone {
                rec,
                ok: false,
                error,
                ..
            } => {
                let error = error.as_deref().unwrap_or("failed");
                t.failed.push(match at.get(rec.as_str()) {
                    Some(step) => format!("{rec}: step {}: {error}", step + 1),
                    None => format!("{rec}: {error}"),
                });
            }
            Record::RecSkipped { rec, why } => t.skipped.push(format!("{rec}: {why}")),
            Record::Outcome { ok: true, .. } => t.steps_done += 1,
            _ => {}
        }
    }
    t
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
    /// For an undo, the forward step it undoes (its seq in the apply's journal).
    pub undoes: Option<u64>,
    /// `None`: no outcome was recorded (the run was interrupted).
    pub outcome: Option<(bool, Option<String>)>,
    /// Where its intent and its outcome stand among the journal's records
    /// (`usize::MAX`: no outcome): steps whose spans do not overlap ran one
    /// after the other.
    pub span: (usize, usize),
}

/// The steps of a journal in the order their intents were written.
pub fn steps(records: &[Record]) -> Vec<JournaledStep> {
    let mut out: Vec<JournaledStep> = Vec::new();
    let mut by_seq = std::collections::HashMap::new();
    for (pos, r) in records.iter().enumerate() {
        match r {
            Record::Intent {
                seq,
                rec,
                step,
                op,
                inverse,
                before,
                at,
                undoes,
            } => {
                by_seq.insert(*seq, out.len());
                out.push(JournaledStep {
                    seq: *seq,
                    rec: rec.clone(),
                    step: *step,
                    op: op.as_ref().clone(),
                    inverse: inverse.as_ref().clone(),
                    before: before.clone(),
                    at: at.clone(),
                    undoes: *undoes,
                    outcome: None,
                    span: (pos, usize::MAX),
                });
            }
            Record::Outcome {
                seq, ok, created, ..
            } => {
                if let Some(&i) = by_seq.get(seq) {
                    out[i].outcome = Some((*ok, created.clone()));
                    out[i].span.1 = pos;
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
