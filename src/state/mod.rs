//! Durable state behind one small interface, [`StateStore`]: the lock, the
//! runs (their records and write-ahead journals), and the documents beside
//! them (the sandbox account and its operation log). The local directory
//! ([`LocalStore`]) is the first implementation.
//!
//! What every implementation guarantees (the README's *Applying, and what pare guarantees*), and what the
//! suite in `tests.rs` checks against each of them:
//! - **Append-only journals.** A run's journal only grows; each
//!   [`crate::durable::AppendLog::sync`] returns once everything appended
//!   before it is durable, so an intent is on record before the call it
//!   describes. A reader tolerates a torn tail (a crash mid-write).
//! - **Atomic records.** A run record and a document are replaced whole or
//!   not at all; a new run's record is created only if its id is new.
//! - **One lock per state.** [`StateStore::lock`] succeeds for one holder at
//!   a time; the others are refused at once, told who holds it. A crashed
//!   holder's lock is released (by the OS, for the local directory).
//! - Owner-only, nothing followed outside the state, no credentials stored.
//!
//! This module imports nothing from the planner, the executors or the engine.

pub mod journal;
mod local;
pub mod runs;
#[cfg(feature = "aws")]
pub mod s3;

#[cfg(test)]
mod tests;

pub use journal::{Journal, JournalError, Record};
pub use local::LocalStore;
pub use runs::{Ci, History, RunId, RunKind, RunRecord, RunStatus};

use crate::durable::{AppendLog, DocStore};
use serde::{Deserialize, Serialize};

/// Who holds (or asks for) the lock, as the refusal tells the next person.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Holder {
    /// `user@host` or the CI actor.
    pub who: String,
    pub pid: u32,
    /// What it is doing: `apply plan.yaml`, `rollback`, `sandbox reset`.
    pub doing: String,
    /// RFC 3339.
    pub since: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ci_url: Option<String>,
    /// The lock's own id (shared state): what `pare unlock` names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock_id: Option<String>,
    /// The run it is making, once it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<String>,
    /// The plan file of that run, and its sha256.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan_sha256: Option<String>,
    /// When the holder last renewed the lock (RFC 3339; shared state).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat: Option<String>,
    /// How long the lock stands without a renewal, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_s: Option<u64>,
}

impl Holder {
    /// A lock object pare could not read (see the S3 store): it has no pid,
    /// no time, and says nothing true about a holder.
    pub fn is_unreadable(&self) -> bool {
        self.pid == 0 && self.since == "unknown"
    }

    /// "alice@box (pid 4242), apply plan.yaml, since 2026-11-27T17:49:01Z".
    pub fn describe(&self) -> String {
        if self.is_unreadable() {
            return crate::vocabulary::words::clean(&self.who).into_owned();
        }
        let mut s = format!(
            "{} (pid {}), {}, since {}",
            self.who, self.pid, self.doing, self.since
        );
        if let Some(r) = &self.run {
            s.push_str(&format!(", run {r}"));
        }
        if let (Some(p), Some(h)) = (&self.plan, &self.plan_sha256) {
            s.push_str(&format!(", plan {p} (sha256 {})", &h[..h.len().min(12)]));
        }
        if let Some(u) = &self.ci_url {
            s.push_str(&format!(", CI run {u}"));
        }
        if let Some(h) = &self.heartbeat {
            s.push_str(&format!(", last heartbeat {h}"));
        }
        crate::vocabulary::words::clean(&s).into_owned()
    }

    /// Whether a shared lock's holder stopped renewing it for longer than
    /// its lease, as of `now` (a local lock never expires: the OS releases it).
    pub fn expired(&self, now: std::time::SystemTime) -> bool {
        let (Some(beat), Some(lease)) = (&self.heartbeat, self.lease_s) else {
            return false;
        };
        let Some(beat) = crate::clock::parse_rfc3339(beat) else {
            // A lock whose time cannot be read is not known to be live.
            return true;
        };
        now.duration_since(beat)
            .is_ok_and(|age| age > std::time::Duration::from_secs(lease))
    }
}

/// Held for the whole of a run; released when dropped (or when its process dies).
pub trait LockGuard: Send {}

/// Why the state cannot be used.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum StateError {
    #[error("another pare run holds the lock on the state in {location}{}", .holder.as_ref().map_or(String::new(), |h| format!(": {}", h.describe())))]
    #[diagnostic(code(state::locked), help("{help}"))]
    Locked {
        location: String,
        holder: Option<Box<Holder>>,
        /// What to do: wait, or the exact `pare unlock` command.
        help: String,
    },
    #[error("the state in {location} cannot be used: {error}")]
    #[diagnostic(
        code("state::unsafe-dir"),
        help(
            "keep pare's state in a directory only you can write: pass --state-dir (or set [state] dir in pare.toml) to a private one, or `chmod go-w` it if it is yours"
        )
    )]
    Unsafe { location: String, error: String },
    #[error("state {location}: {error}")]
    #[diagnostic(
        code(state::io),
        help("check the permissions and free space of the state")
    )]
    Io { location: String, error: String },
    #[error("state {location}: {error}")]
    #[diagnostic(
        code("state::remote-failed"),
        help(
            "check that the bucket exists, that these credentials may read and write under the prefix (`pare iam-policy PLAN --state s3://…` lists the S3 actions the state needs) and that S3 is reachable; pare already retried what S3 asked it to retry"
        )
    )]
    Remote { location: String, error: String },
    #[error("state {location}: {error}")]
    #[diagnostic(
        code("state::no-conditional-writes"),
        help(
            "use Amazon S3 (or a store that honours If-None-Match and If-Match on PutObject), or keep the state local (`--state-dir`)"
        )
    )]
    Unconditional { location: String, error: String },
    #[error("{message}")]
    #[diagnostic(code("state::unlock-refused"), help("{help}"))]
    UnlockRefused { message: String, help: String },
    #[error("run {0} is not in the history")]
    #[diagnostic(code("state::unknown-run"), help("`pare history` lists the runs"))]
    UnknownRun(String),
    #[error("`{0}` is not a run id")]
    #[diagnostic(
        code("state::bad-run-id"),
        help(
            "run ids look like r20261127-174901 (or r20261127-174901-2); `pare history` lists them"
        )
    )]
    BadRunId(String),
    #[error("the record of run {id} is damaged: {message}")]
    #[diagnostic(
        code(state::damaged),
        help(
            "move the run's folder aside (out of {location}/runs/) to go on without it, after saving it for a post-mortem"
        )
    )]
    Damaged {
        id: String,
        message: String,
        location: String,
    },
}

impl StateError {
    /// An I/O problem at `location`.
    pub fn io(location: impl std::fmt::Display, e: impl std::fmt::Display) -> StateError {
        StateError::Io {
            location: location.to_string(),
            error: e.to_string(),
        }
    }
}

/// The one door to durable state. See the module documentation for what
/// every implementation guarantees.
pub trait StateStore: DocStore {
    /// Takes the state's lock for `holder`, or says who holds it.
    fn lock(&self, holder: &Holder) -> Result<Box<dyn LockGuard>, StateError>;

    /// Who holds the lock now, if anyone (for messages; may be stale).
    fn lock_holder(&self) -> Option<Holder>;

    /// The ids of every run recorded, in no particular order. Entries that
    /// are not run ids are ignored.
    fn run_ids(&self) -> Result<Vec<RunId>, StateError>;

    /// One run's record.
    fn read_run(&self, id: &RunId) -> Result<RunRecord, StateError>;

    /// Every run's record, or what is wrong with it (a damaged record is
    /// an `Err` with the reason; one unsafe to read, too).
    #[allow(clippy::type_complexity)]
    fn history_records(&self) -> Result<Vec<(RunId, Result<RunRecord, String>)>, StateError> {
        let mut out = Vec::new();
        for id in self.run_ids()? {
            match self.read_run(&id) {
                Ok(r) => out.push((id, Ok(r))),
                Err(StateError::Damaged { message, .. }) => out.push((id, Err(message))),
                Err(StateError::Unsafe { error, .. }) => out.push((id, Err(error))),
                Err(StateError::UnknownRun(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// Records a new run (refused if its id exists) and opens its journal.
    fn create_run(&self, record: &RunRecord) -> Result<Box<dyn AppendLog>, StateError>;

    /// Replaces a run's record, atomically.
    fn save_run(&self, record: &RunRecord) -> Result<(), StateError>;

    /// A run's journal text as written (a torn tail is the reader's to drop).
    fn read_journal(&self, id: &RunId) -> Result<String, StateError>;

    /// Where a run's journal is, for messages.
    fn journal_name(&self, id: &RunId) -> String;

    /// Removes a lock whose holder is gone (`pare unlock`): only the lock
    /// whose id is `lock_id`, and, unless `force`, only once it expired.
    /// The holder it had; `None`: nothing was locked.
    fn unlock(&self, lock_id: &str, force: bool) -> Result<Option<Holder>, StateError>;
}

impl<'a> dyn StateStore + 'a {
    /// Every run record, newest first, with the damaged ones named apart.
    pub fn history(&self) -> Result<History, StateError> {
        let mut records = self.history_records()?;
        records.sort_by(|a, b| b.0.cmp(&a.0));
        let mut h = History::default();
        for (id, r) in records {
            match r {
                Ok(r) => h.runs.push(r),
                Err(why) => h.damaged.push((id.to_string(), why)),
            }
        }
        Ok(h)
    }

    /// A new run id: the time, then a sequence number within the second.
    pub fn new_run_id(&self) -> Result<RunId, StateError> {
        let stamp = crate::clock::rfc3339(crate::clock::now())
            .replace(['-', ':'], "")
            .replace('T', "-")
            .trim_end_matches('Z')
            .to_string();
        let first = RunId::new(&stamp, 0).ok_or_else(|| {
            StateError::io(
                self.location(),
                format!("the clock gives no usable time ({stamp})"),
            )
        })?;
        // Always after every run there is, even if the clock went back: the
        // newest run is the one with the highest id.
        let taken: std::collections::BTreeSet<RunId> = self.run_ids()?.into_iter().collect();
        let mut id = match taken.last() {
            Some(last) if *last >= first => last.next(),
            _ => first,
        };
        while taken.contains(&id) {
            id = id.next();
        }
        Ok(id)
    }

    /// A run's journal, parsed. A run whose record says it finished, yet
    /// whose journal shows fewer changes made than the record counts, lost
    /// the end of its journal (deleted, not torn: a finished run's journal
    /// was whole): that is damage, or a rollback would undo less.
    pub fn journal(&self, id: &RunId) -> Result<Vec<Record>, StateError> {
        let text = self.read_journal(id)?;
        let records = journal::parse(&text).map_err(|d| StateError::Damaged {
            id: id.to_string(),
            message: format!("its journal {}: {d}", self.journal_name(id)),
            location: self.location(),
        })?;
        if let Ok(r) = self.read_run(id)
            && !matches!(r.status, RunStatus::Running | RunStatus::Interrupted)
        {
            let found = journal::tally(&records).steps_done;
            if found < r.steps_done {
                return Err(StateError::Damaged {
                    id: id.to_string(),
                    message: format!(
                        "its record counts {} made, and its journal {} shows only {found}: the end of the journal is missing",
                        crate::vocabulary::words::plural(r.steps_done, "step"),
                        self.journal_name(id)
                    ),
                    location: self.location(),
                });
            }
        }
        Ok(records)
    }
}

/// Marks a run found `running` by someone who knows its process is gone as
/// interrupted, with what its journal records as done, failed and skipped
/// (its record was last saved before it ran).
pub fn mark_interrupted(r: &mut RunRecord, records: &[Record]) {
    r.status = RunStatus::Interrupted;
    let t = journal::tally(records);
    r.completed = t.completed;
    r.failed = t.failed;
    r.skipped = t.skipped;
    r.steps_done = t.steps_done;
    r.left = vec![format!(
        "interrupted: its journal records {} done; `pare show {}` lists them",
        crate::vocabulary::words::plural(t.steps_done, "step"),
        r.id
    )];
}

impl<'a> dyn StateStore + 'a {
    /// Run `r` as it stands: one marked running while no live process holds
    /// the lock (`holder_alive` false) was interrupted, and is shown so,
    /// counted from its journal (the record itself is rewritten by the next
    /// run that takes the lock).
    pub fn as_found(&self, mut r: RunRecord, holder_alive: bool) -> RunRecord {
        if r.status == RunStatus::Running
            && !holder_alive
            && let Ok(id) = parse_run_id(&r.id)
            && let Ok(records) = self.journal(&id)
        {
            mark_interrupted(&mut r, &records);
        }
        r
    }
}

/// A run id from user input, checked.
pub fn parse_run_id(s: &str) -> Result<RunId, StateError> {
    RunId::parse(s)
        .ok_or_else(|| StateError::BadRunId(crate::vocabulary::words::clean(s).into_owned()))
}
