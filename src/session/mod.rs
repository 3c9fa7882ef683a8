//! A run, as the command line (and a server) start it: the checks before
//! it, its record, apply with rollback on failure, the one rollback planner
//! (what to undo now, what drifted, what must wait and until when), the
//! proof that a saved plan is what was reviewed, and every refusal. The
//! faces translate arguments into these calls and outcomes into output; no
//! run logic lives in them.

pub mod apply;
mod git;
pub mod migrate;
mod refusal;
pub mod rollback;
pub mod saved;
pub mod undo_plan;

#[cfg(test)]
mod properties;

pub use apply::{Prepared, Source};
pub use refusal::Refusal;
pub use rollback::{RollbackPlan, Target};

use crate::durable::DocStore;
use crate::engine::Events;
use crate::plan::LoadError;
use crate::planner::PlanError;
use crate::provider::{OpenError, Provider};
use crate::settings::Settings;
use crate::state::{
    Ci, History, Holder, LocalStore, LockGuard, RunRecord, RunStatus, StateError, StateStore,
};
use std::path::Path;
use std::sync::Arc;

/// Why a session call did not happen or did not finish.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum SessionError {
    #[error(transparent)]
    #[diagnostic(transparent)]
    Refused(#[from] Refusal),
    #[error(transparent)]
    #[diagnostic(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    #[diagnostic(transparent)]
    Load(#[from] LoadError),
    #[error(transparent)]
    #[diagnostic(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    #[diagnostic(transparent)]
    Open(#[from] OpenError),
}

/// How a run ended, for the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// Every change made, or every undo done (rollback, accept).
    Done,
    /// A step failed and everything was rolled back.
    RolledBack,
    /// Changes are partly made and not (all) undone: the record says what is left.
    Unfinished,
    /// Cancelled before anything changed.
    CancelledClean,
}

/// What a run did: its record (as saved) and how it ended.
#[derive(Debug)]
pub struct RunOutcome {
    pub record: RunRecord,
    pub ending: Ending,
}

/// How a run reports its events.
#[derive(Debug, Clone)]
pub struct EventsOut {
    pub json: bool,
    pub quiet: bool,
    /// Where every event also goes, as JSON (`pare serve`).
    pub sink: Option<crate::engine::events::EventSink>,
}

impl EventsOut {
    fn events(&self, run: &str) -> Events {
        Events::new(run, self.json, self.quiet).with_sink(self.sink.clone())
    }
}

/// Opens the state the settings name (without its lock): for commands that
/// only read it.
pub fn open_store(settings: &Settings) -> Result<Arc<dyn StateStore>, StateError> {
    open_location(settings, settings.config.s3.as_ref())
}

/// Opens the state at `s3` (or, when `None`, the local directory the
/// settings name).
pub fn open_location(
    settings: &Settings,
    s3: Option<&crate::config::S3State>,
) -> Result<Arc<dyn StateStore>, StateError> {
    match s3 {
        None => Ok(Arc::new(LocalStore::open(&settings.config.state_dir)?)),
        #[cfg(feature = "aws")]
        Some(s3) => Ok(Arc::new(crate::state::s3::S3Store::open(
            s3,
            settings.config.attempts,
        )?)),
        #[cfg(not(feature = "aws"))]
        Some(s3) => Err(StateError::io(
            s3.url(),
            "this pare was built without the AWS SDK (--no-default-features), so it cannot keep its state in S3; build it with the default features",
        )),
    }
}

/// Opens the provider a plan names, its sandbox account kept in `store`.
pub fn open_provider(
    spec: &crate::plan::Provider,
    plan_path: &Path,
    store: &Arc<dyn StateStore>,
    settings: &Settings,
) -> Result<(Box<dyn Provider>, Option<String>), OpenError> {
    let docs: Arc<dyn DocStore> = Arc::clone(store) as Arc<dyn DocStore>;
    crate::provider::open(spec, plan_path, docs, settings.connection())
}

/// Who runs pare, from this process's environment.
pub fn who() -> (String, Option<Ci>) {
    crate::state::runs::who(&Settings::env)
}

/// A session holds the state's lock for as long as it lives: one run (or
/// reset) at a time per state.
pub struct Session {
    pub settings: Settings,
    pub store: Arc<dyn StateStore>,
    _lock: Box<dyn LockGuard>,
    pub history: History,
    pub who: String,
    pub ci: Option<Ci>,
    /// The API request's `Idempotency-Key`, recorded in the run it starts.
    pub request_key: Option<String>,
}

impl Session {
    /// Takes the lock of the state `settings` name, saying what for; a run
    /// found `running` is then known to have been interrupted, and is
    /// recorded so.
    pub fn begin(settings: Settings, doing: &str) -> Result<Session, SessionError> {
        let store = open_store(&settings)?;
        Session::begin_with(settings, store, doing)
    }

    /// [`Session::begin`] on a store already open.
    pub fn begin_with(
        settings: Settings,
        store: Arc<dyn StateStore>,
        doing: &str,
    ) -> Result<Session, SessionError> {
        let (who, ci) = who();
        let holder = Holder {
            who: who.clone(),
            pid: std::process::id(),
            doing: doing.to_string(),
            since: crate::clock::rfc3339(crate::clock::now()),
            ci_url: ci.as_ref().and_then(|c| c.url.clone()),
            ..Holder::default()
        };
        let lock = store.lock(&holder)?;
        let mut history = store.history()?;
        for r in history.runs.iter_mut() {
            if r.status == RunStatus::Running {
                // We hold the lock: whoever was running this is gone. What it
                // did is in its journal.
                match crate::state::parse_run_id(&r.id).map(|id| store.journal(&id)) {
                    Ok(Ok(records)) => crate::state::mark_interrupted(r, &records),
                    _ => r.status = RunStatus::Interrupted,
                }
                store.save_run(r)?;
            }
        }
        Ok(Session {
            settings,
            store,
            _lock: lock,
            history,
            who,
            ci,
            request_key: None,
        })
    }

    /// Refuses when the account may be half changed by an earlier run that
    /// nobody resolved, or when a run record cannot be read (it might be
    /// that run).
    pub fn check_clear(&self) -> Result<(), Refusal> {
        if let Some((id, why)) = self.history.damaged.first() {
            return Err(Refusal::new(
                "state::damaged-record",
                format!(
                    "the record of run {id} cannot be read ({why}), so pare cannot tell whether it left changes to undo"
                ),
                format!(
                    "look at it (`pare show {id}` says what it can), then move its folder out of {}/runs/ (keep it for a post-mortem) and try again",
                    self.store.location().trim_end_matches('/')
                ),
            ));
        }
        let Some(r) = self.history.unresolved() else {
            return Ok(());
        };
        let how = match r.status {
            RunStatus::Running | RunStatus::Interrupted => "was interrupted",
            RunStatus::Cancelled => "was cancelled after changing something",
            RunStatus::Failed => {
                "failed and was not rolled back (rollback_on_failure is off in pare.toml)"
            }
            _ => "did not finish rolling back",
        };
        // An unfinished rollback is finished by rolling back its apply run again.
        let sf = crate::vocabulary::words::state_flag();
        let undo = match (&r.kind, &r.resolves) {
            (crate::state::RunKind::Rollback, Some(target)) => format!(
                "finish it with `pare rollback --run {target}{sf}` (it undoes only what is left)"
            ),
            _ => format!("undo it with `pare rollback --run {}{sf}`", r.id),
        };
        Err(Refusal::new(
            "apply::unresolved-run",
            format!(
                "run {} ({} of {}, started {}) {how}; its changes are only partly made",
                r.id,
                r.kind.as_str(),
                crate::vocabulary::words::clean(&r.plan_path),
                r.started_at
            ),
            format!(
                "{undo}, or keep things as they are with `pare rollback --run {} --accept{sf}`",
                r.id
            ),
        ))
    }

    /// A new run's record, with who and where.
    fn new_record(&self, id: &str, kind: crate::state::RunKind) -> RunRecord {
        RunRecord {
            id: id.to_string(),
            kind,
            status: RunStatus::Running,
            started_at: crate::clock::rfc3339(crate::clock::now()),
            finished_at: None,
            who: self.who.clone(),
            ci: self.ci.clone(),
            provider: String::new(),
            provider_spec: None,
            plan_path: String::new(),
            plan_sha256: String::new(),
            plan_name: None,
            git_commit: None,
            lineage: None,
            approvals: Vec::new(),
            resolves: None,
            completed: Vec::new(),
            failed: Vec::new(),
            skipped: Vec::new(),
            undone: Vec::new(),
            steps_done: 0,
            savings_planned_monthly_usd: 0.0,
            savings_monthly_usd: 0.0,
            renamed: Default::default(),
            left: Vec::new(),
            request_key: self.request_key.clone(),
        }
    }

    /// Ends a run, in this order: fold the provider's changes into its
    /// compact form, stamp and save the run's record, close the progress.
    fn finish(
        &mut self,
        provider: &dyn Provider,
        record: &mut RunRecord,
        events: &Events,
    ) -> Result<(), SessionError> {
        if let Err(e) = provider.checkpoint() {
            tracing::warn!("{e}");
        }
        record.finished_at = Some(crate::clock::rfc3339(crate::clock::now()));
        self.store.save_run(record)?;
        events.finish();
        events.run_done(record.status.as_str());
        self.history.runs.retain(|r| r.id != record.id);
        self.history.runs.insert(0, record.clone());
        Ok(())
    }
}

/// Sets `cancel` on Ctrl-C, SIGTERM or SIGHUP (what a CI runner sends when a
/// job is cancelled), saying `then` on stderr: the run drains instead of
/// dying mid-step. Call inside the runtime; abort the handle when done.
pub fn watch_signals(
    cancel: crate::engine::Cancel,
    then: &'static str,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let (Ok(mut term), Ok(mut hup)) = (
                signal(SignalKind::terminate()),
                signal(SignalKind::hangup()),
            ) else {
                return;
            };
            let name = tokio::select! {
                r = tokio::signal::ctrl_c() => if r.is_ok() { "Ctrl-C" } else { return },
                _ = term.recv() => "SIGTERM",
                _ = hup.recv() => "SIGHUP",
            };
            eprintln!("{name}: {then}");
        }
        #[cfg(not(unix))]
        {
            if tokio::signal::ctrl_c().await.is_err() {
                return;
            }
            eprintln!("Ctrl-C: {then}");
        }
        cancel.set();
        crate::hooks::seen("ctrl-c");
    })
}

/// How the engine runs the run `run`, from the settings.
pub fn engine_settings(settings: &Settings, run: &str) -> crate::engine::Settings {
    let c = &settings.config;
    crate::engine::Settings {
        parallelism: c.parallelism.max(1),
        attempts: c.attempts,
        backoff: c.retry_backoff,
        run: run.to_string(),
        batch: c.batch_size,
        gather: c.gather,
    }
}

/// A runtime for the engine: a few worker threads (the work is waiting on
/// the cloud, not the CPU).
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime starts")
}
