//! Applying: plan a plan file (or prove a saved plan), the checks before
//! any change, the run and its record, and the automatic rollback when a
//! step fails.

use super::rollback::{UndoPlan, plan_undos, record_rollback};
use super::saved::SavedPlan;
use super::{Ending, EventsOut, Refusal, RunOutcome, Session, SessionError, git};
use crate::engine::{self, Cancel};
use crate::executor::Savings;
use crate::plan::LoadedPlan;
use crate::planner::{Planned, Status};
use crate::provider::Provider;
use crate::state::{Journal, RunKind, RunRecord, RunStatus, StateError};
use crate::vocabulary::words::{clean, plural};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What `apply` was given.
#[derive(Debug, Clone, Copy)]
pub enum Source<'a> {
    /// A plan file, or a saved plan (told apart by their contents).
    File(&'a Path),
}

/// A plan ready to apply: planned (or proven), with its provider open.
pub struct Prepared {
    pub planned: Planned,
    pub loaded: LoadedPlan,
    pub provider: Box<dyn Provider>,
    /// The saved plan's lineage, when a saved plan was proven.
    pub lineage: Option<String>,
    /// Warnings to show (a sandbox seeded from another file).
    pub warnings: Vec<String>,
}

/// A plan file planned: the plan, the file, its provider, warnings.
type PlannedFile = (Planned, LoadedPlan, Box<dyn Provider>, Vec<String>);
type OpenFile = (
    LoadedPlan,
    crate::graph::PlanGraph,
    Box<dyn Provider>,
    Option<String>,
);

/// Whether there is anything to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    NothingToDo,
    Changes(usize),
}

impl Session {
    /// Plans a plan file, or proves a saved plan (see [`super::saved`]).
    /// Nothing is changed.
    pub fn prepare_apply(&self, source: Source<'_>) -> Result<Prepared, SessionError> {
        let Source::File(path) = source;
        let text = crate::durable::read_given(path, crate::durable::SAVED_PLAN_LIMIT, "a plan")
            .map_err(|e| {
                Refusal::new(
                    "apply::unreadable",
                    format!("cannot read plan file {}: {e}", path.display()),
                    "check the path: give a plan file, or a plan saved by `pare plan PLAN --out FILE`",
                )
            })?;
        if !SavedPlan::looks_saved(&text) {
            let (planned, loaded, provider, warnings) = self.plan_file(path)?;
            return Ok(Prepared {
                planned,
                loaded,
                provider,
                lineage: None,
                warnings,
            });
        }
        let saved = SavedPlan::parse(path, &text)?;
        // A saved plan applies once: a re-run of a CI job, or an apply after
        // the run was rolled back, must plan again.
        if let Some(run) = self.store.history()?.runs.iter().find(|r| {
            r.kind == crate::state::RunKind::Apply
                && r.lineage.as_deref() == Some(saved.lineage.as_str())
        }) {
            return Err(Refusal::new(
                "saved::already-applied",
                format!(
                    "this saved plan (lineage {}) was applied already, by run {} ({})",
                    saved.lineage,
                    run.id,
                    run.status.as_str()
                ),
                "a saved plan applies once: plan again (`pare plan PLAN --out FILE`), review the new preview, and apply that",
            )
            .into());
        }
        let plan_path = PathBuf::from(&saved.preview.plan.path);
        let plan_text = match crate::durable::read_given(
            &plan_path,
            crate::durable::PLAN_LIMIT,
            "a plan file",
        ) {
            Ok(t) => t,
            Err(e) => {
                return Err(Refusal::new(
                    "saved::plan-missing",
                    format!(
                        "the saved plan was made from the plan file {}, which cannot be read here: {e}",
                        clean(&saved.preview.plan.path)
                    ),
                    "apply it from the directory it was planned in, with the plan file it was made from (a saved plan is proven against its plan file)",
                )
                .into());
            }
        };
        saved.check_plan_file(&plan_text)?;
        // Where it applies is checked before planning again: in another
        // account the plan's resources are missing, and planning would
        // report that instead of the reason.
        let (loaded, graph, provider, warning) = self.open_file(&plan_path)?;
        saved.check_state(&self.store.location())?;
        let account = super::runtime()
            .block_on(provider.account())
            .map_err(crate::planner::PlanError::from)?;
        saved.check_account(&account)?;
        let planned = self.plan_open(&loaded, graph, provider.as_ref())?;
        let warnings = warning.into_iter().collect();
        saved.prove(&planned, &self.store.location())?;
        Ok(Prepared {
            planned,
            loaded,
            provider,
            lineage: Some(saved.lineage),
            warnings,
        })
    }

    /// The plan file validated, and its provider open.
    fn open_file(&self, path: &Path) -> Result<OpenFile, SessionError> {
        let (loaded, graph) = crate::validate::validate(path)?;
        let (provider, warning) = super::open_provider(
            &loaded.plan.provider,
            &loaded.path,
            &self.store,
            &self.settings,
        )?;
        Ok((loaded, graph, provider, warning))
    }

    fn plan_file(&self, path: &Path) -> Result<PlannedFile, SessionError> {
        let (loaded, graph, provider, warning) = self.open_file(path)?;
        let planned = self.plan_open(&loaded, graph, provider.as_ref())?;
        Ok((planned, loaded, provider, warning.into_iter().collect()))
    }

    /// Plans a validated plan file with its provider.
    fn plan_open(
        &self,
        loaded: &LoadedPlan,
        graph: crate::graph::PlanGraph,
        provider: &dyn Provider,
    ) -> Result<Planned, SessionError> {
        Ok(super::runtime().block_on(crate::planner::plan(
            loaded,
            graph,
            &self.settings.config,
            provider,
        ))?)
    }

    /// The checks before any change, on what was planned: nothing blocked,
    /// within `max_changes`, committed if pare.toml asks for it.
    pub fn check_apply(&self, p: &Prepared) -> Result<Verdict, Refusal> {
        let blocked: Vec<&str> = p
            .planned
            .recs
            .iter()
            .filter(|r| r.status == Status::Blocked)
            .map(|r| r.id.as_str())
            .collect();
        if !blocked.is_empty() {
            return Err(Refusal::new(
                "apply::blocked",
                format!("{} blocked: {}", blocked.len(), blocked.join(", ")),
                "the preview says why for each; fix those (or remove them from the plan) and apply again",
            ));
        }
        let changes = p.planned.summary.changes;
        if changes == 0 {
            return Ok(Verdict::NothingToDo);
        }
        let max = self.settings.config.max_changes;
        if changes > max {
            return Err(Refusal::new(
                "apply::too-many-changes",
                format!(
                    "{} exceed max_changes = {max} (pare.toml)",
                    plural(changes, "change")
                ),
                "split the plan, or raise max_changes on purpose",
            ));
        }
        if self.settings.config.require_committed_plan
            && let Err(why) = git::committed(&p.loaded.path)
        {
            return Err(Refusal::new(
                "apply::not-committed",
                format!("{}, and pare.toml sets require_committed_plan", clean(&why)),
                "commit the plan (the reviewed plan is the approval record), then apply",
            ));
        }
        Ok(Verdict::Changes(changes))
    }

    /// Applies a prepared (and checked) plan: a new run, journaled; if a
    /// step fails and `rollback_on_failure` is on, everything completed is
    /// undone by the same planner `pare rollback` uses.
    pub fn apply(
        &mut self,
        p: Prepared,
        out: EventsOut,
        cancel: Cancel,
    ) -> Result<RunOutcome, SessionError> {
        let id = self.store.new_run_id()?.to_string();
        let mut record = self.new_record(&id, RunKind::Apply);
        record.provider = p.provider.name().to_string();
        record.provider_spec = Some(p.planned.provider_spec.clone());
        record.plan_path = p.planned.plan_path.clone();
        record.plan_sha256 = p.planned.plan_sha256.clone();
        record.plan_name = p.planned.name.clone();
        record.git_commit = git::commit(&p.loaded.path);
        record.lineage = p.lineage.clone();
        record.approvals = p.loaded.plan.approvals.clone();
        record.savings_planned_monthly_usd =
            crate::state::runs::usd_total([p.planned.summary.monthly_savings_usd]);
        let log = self.store.create_run(&record)?;
        let journal = Arc::new(Journal::new(
            self.store.journal_name(&crate::state::parse_run_id(&id)?),
            log,
            0,
        ));
        let provider: Arc<dyn Provider> = Arc::from(p.provider);
        let items = Arc::new(engine::items::items(&p.planned, provider.as_ref()));
        let events = out.events(&id);
        events.steps(items.iter().map(|i| i.steps.len()).sum());
        let engine_settings = super::engine_settings(&self.settings, &id);
        events.run_start("apply", items.len());
        crate::hooks::pause("apply-started");
        let rt = super::runtime();
        let report = rt.block_on(async {
            let watch = super::watch_signals(
                cancel.clone(),
                "no new changes start; the ones under way finish their steps…",
            );
            let report = engine::apply(
                Arc::clone(&items),
                Arc::clone(&provider),
                Arc::clone(&journal),
                &events,
                &engine_settings,
                cancel.clone(),
            )
            .await;
            watch.abort();
            report
        });
        record.completed = report
            .completed
            .iter()
            .map(|&i| items[i].rec.clone())
            .collect();
        record.failed = report
            .failed
            .iter()
            .map(|(i, e)| format!("{}: {e}", items[*i].rec))
            .collect();
        record.skipped = report
            .skipped
            .iter()
            .map(|(i, why)| format!("{}: {why}", items[*i].rec))
            .collect();
        record.steps_done = report.steps_done;
        record.savings_monthly_usd =
            crate::state::runs::usd_total(report.completed.iter().map(|&i| items[i].savings));

        let mut ending = Ending::Done;
        record.status = RunStatus::Applied;
        if let Some(e) = &report.journal {
            // Nothing can be undone without a journal to record it in.
            record.status = RunStatus::RollbackIncomplete;
            record.left = vec![format!(
                "{e}: nothing more was started; once the state can be written again, `pare rollback --run {id}` undoes what was done"
            )];
            ending = Ending::Unfinished;
        } else if !report.failed.is_empty() {
            if self.settings.config.rollback_on_failure {
                journal
                    .commit()
                    .map_err(|e| StateError::io(self.store.location(), e))?;
                let records = self.store.journal(&crate::state::parse_run_id(&id)?)?;
                let undo = rt.block_on(plan_undos(
                    &id,
                    &[(id.clone(), records)],
                    &Default::default(),
                    provider.as_ref(),
                    crate::clock::now(),
                ));
                let undo: UndoPlan = match undo {
                    Ok(u) => u,
                    Err(e) => {
                        record.status = RunStatus::RollbackIncomplete;
                        record.left = vec![format!(
                            "the rollback could not start: {e}; `pare rollback --run {id}` tries again"
                        )];
                        self.finish(provider.as_ref(), &mut record, &events)?;
                        return Ok(RunOutcome {
                            record,
                            ending: Ending::Unfinished,
                        });
                    }
                };
                for d in &undo.decisions {
                    journal
                        .append(d, true)
                        .map_err(|e| StateError::io(self.store.location(), e))?;
                }
                events.rollback_start(undo.reversible_count());
                let rb = rt.block_on(engine::rollback(
                    &undo.undos,
                    &id,
                    Arc::clone(&provider),
                    Arc::clone(&journal),
                    &events,
                    &engine_settings,
                    undo.renamed.clone(),
                    &Default::default(),
                ));
                let summary = record_rollback(&undo, &rb, &id);
                // What is still applied is what still saves.
                let undone: std::collections::BTreeSet<&str> =
                    summary.completed.iter().map(String::as_str).collect();
                record.savings_monthly_usd = crate::state::runs::usd_total(
                    report
                        .completed
                        .iter()
                        .filter(|&&i| !undone.contains(items[i].rec.as_str()))
                        .map(|&i| items[i].savings),
                );
                record.renamed = rb.renamed.clone();
                record.left = summary.left;
                record.undone = summary.undone;
                if summary.finished {
                    record.status = RunStatus::RolledBack;
                    record.savings_monthly_usd = 0.0;
                    ending = Ending::RolledBack;
                } else {
                    record.status = RunStatus::RollbackIncomplete;
                    ending = Ending::Unfinished;
                }
            } else {
                record.status = RunStatus::Failed;
                record.left = vec![format!(
                    "rollback_on_failure is off: the completed changes stay; `pare rollback --run {id}` undoes them"
                )];
                ending = Ending::Unfinished;
            }
        } else if report.cancelled && !report.skipped.is_empty() {
            record.status = RunStatus::Cancelled;
            if report.steps_done > 0 {
                record.left = vec![format!(
                    "cancelled with {} made ({} complete); `pare rollback --run {id}` undoes them, or `pare rollback --run {id} --accept` keeps them",
                    plural(report.steps_done, "step"),
                    plural(report.completed.len(), "recommendation"),
                )];
                ending = Ending::Unfinished;
            } else {
                record.left = vec!["cancelled before anything changed".into()];
                ending = Ending::CancelledClean;
            }
        }
        self.finish(provider.as_ref(), &mut record, &events)?;
        Ok(RunOutcome { record, ending })
    }
}

/// The savings of a planned recommendation, for the record.
pub fn savings_of(s: &Savings) -> f64 {
    match s {
        Savings::Usd(x) => *x,
        Savings::Unknown(_) => 0.0,
    }
}

/// The record of a run as one line: "run r…: applied; 9 completed."
pub fn summary_line(r: &RunRecord) -> String {
    let mut s = format!("run {}: {}", r.id, r.status.as_str().replace('_', " "));
    match r.kind {
        RunKind::Apply => {
            s.push_str(&format!("; {} completed", r.completed.len()));
            if !r.failed.is_empty() {
                s.push_str(&format!(", {} failed", r.failed.len()));
            }
            if !r.skipped.is_empty() {
                s.push_str(&format!(", {} skipped", r.skipped.len()));
            }
            if !r.undone.is_empty() {
                s.push_str(&format!(", {} undone", plural(r.undone.len(), "step")));
            }
        }
        RunKind::Rollback => {
            s.push_str(&format!("; {} undone", plural(r.steps_done, "step")));
            if !r.failed.is_empty() {
                s.push_str(&format!(", {} failed", r.failed.len()));
            }
        }
        RunKind::Accept => {}
    }
    s.push('.');
    s
}
